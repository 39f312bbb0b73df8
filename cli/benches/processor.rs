#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing
)]
//! Processor throughput against a plain consume→produce pass-through of the same messages on
//! the same log, interleaved, several rounds, medians (BENCHMARKS.md, "Processor").
//!
//! `cargo bench -p provenant --bench processor [-- EVENTS ROUNDS PARTITIONS]`
//! (defaults 50,000 events, 3 rounds, 4 partitions). Runs on the embedded log and on an
//! in-process librdkafka mock broker (the same mock as `provenant dev-kafka`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use provenant_kafka::{DevKafka, KafkaConfig, KafkaLog};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{LEDGER_TOPIC, Log, LogReader, RAW_TOPIC, Record, append_by_key};
use provenant_processor::{Processor, ProcessorConfig};
use provenant_redact::{Policy, Redactor, Secret};
use provenant_schemas::{Event, EventData, Runtime, binary_mode};

fn event(i: usize) -> Event {
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert("team".to_owned(), "payments".to_owned());
    annotations.insert("region".to_owned(), "eu-west-1".to_owned());
    annotations.insert(
        "note".to_owned(),
        format!(
            "rollout wave {} of the checkout service, canary healthy",
            i % 7
        ),
    );
    Event::new(
        "https://k8s.example/clusters/prod-eu",
        format!("evt-{i:09}"),
        EventData::Runtime(Runtime {
            instance_id: format!("checkout-7d9f8c6b5-{:05}", i % 5000),
            service: "checkout".into(),
            environment: "production".into(),
            deploy_id: Some(format!("argocd:prod/checkout/{}", i % 50)),
            artifact_digest: Some(format!("sha256:{:064x}", i % 50)),
            trace_id: Some(format!("{:032x}", i)),
            message: Some("container started; readiness probe passed after 3 attempts".into()),
            annotations,
        }),
    )
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let e = event(i);
            let (headers, value) = binary_mode::encode(&e);
            let mut r = Record::new(e.partition_key(), value);
            for (name, v) in headers {
                r = r.with_header(name, v);
            }
            r
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc/self/stat (fields 14 and 15, in ticks).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn ledger_total<L: Log>(log: &L, partitions: u32) -> u64 {
    let mut t = 0;
    for p in 0..partitions {
        t += log.watermarks(LEDGER_TOPIC, p).await.unwrap().end;
    }
    t
}

/// Consume raw, append the same records to the ledger topic, per partition concurrently.
async fn passthrough<L: Log>(log: Arc<L>, partitions: u32, n: usize) -> (f64, f64) {
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..partitions {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let end = log.watermarks(RAW_TOPIC, p).await.unwrap().end;
            let mut r = log.reader(RAW_TOPIC, p, 0).await.unwrap();
            while r.position() < end {
                let batch = r
                    .next_batch(1000, Duration::from_millis(100))
                    .await
                    .unwrap();
                let out: Vec<Record> = batch.into_iter().map(|s| s.record).collect();
                if !out.is_empty() {
                    log.append(LEDGER_TOPIC, p, out).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    (n as f64 / secs, n as f64 / (cpu_seconds() - cpu).max(1e-9))
}

async fn processor<L: Log>(log: Arc<L>, partitions: u32, n: usize) -> (f64, f64) {
    let redactor = Redactor::new(&Policy::default_policy(), Secret::generate()).unwrap();
    let registry = prometheus::Registry::new();
    let cfg = ProcessorConfig {
        group: format!("bench-{}", rand::random::<u32>()),
        ..ProcessorConfig::default()
    };
    let cpu = cpu_seconds();
    let started = Instant::now();
    let p = Processor::new(log.clone(), cfg, Arc::new(redactor), &registry)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(p.run(async {
        let _ = rx.await;
    }));
    // n records plus one fence per partition.
    let want = n as u64 + u64::from(partitions);
    while ledger_total(log.as_ref(), partitions).await < want {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_used = cpu_seconds() - cpu;
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    (n as f64 / secs, n as f64 / cpu_used.max(1e-9))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report(name: &str, ours: &[(f64, f64)], base: &[(f64, f64)]) {
    let o = median(ours.iter().map(|x| x.0).collect());
    let b = median(base.iter().map(|x| x.0).collect());
    let ocpu = median(ours.iter().map(|x| x.1).collect());
    let bcpu = median(base.iter().map(|x| x.1).collect());
    println!(
        "{name:<10} processor {o:>9.0} ev/s ({ocpu:>9.0} ev/CPU-s) | pass-through {b:>9.0} ev/s ({bcpu:>9.0} ev/CPU-s) | ratio {:.2}",
        o / b
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(50_000);
    let rounds = args.get(1).copied().unwrap_or(3);
    let partitions = args.get(2).copied().unwrap_or(4) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let recs = records(n);
    let avg = recs.iter().map(|r| r.value.len()).sum::<usize>() / n.max(1);
    println!(
        "{n} events (~{avg} bytes of Avro value each), {partitions} partitions, {rounds} rounds"
    );

    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for which in ["pass", "proc"] {
            let dir = tempfile::tempdir().unwrap();
            let log = Arc::new(
                EmbeddedLog::open(
                    dir.path(),
                    EmbeddedConfig {
                        partitions,
                        ..EmbeddedConfig::default()
                    },
                )
                .unwrap(),
            );
            rt.block_on(append_by_key(log.as_ref(), RAW_TOPIC, recs.clone()))
                .unwrap();
            if which == "pass" {
                base.push(rt.block_on(passthrough(log, partitions, n)));
            } else {
                ours.push(rt.block_on(processor(log, partitions, n)));
            }
        }
    }
    report("embedded", &ours, &base);

    // The mock broker keeps about 5 MiB per partition: 16 partitions keep raw and ledger
    // well under it at 50,000 events.
    let kafka_partitions = partitions.max(16);
    let partitions = kafka_partitions;
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for which in ["pass", "proc"] {
            let kafka = DevKafka::start(partitions).unwrap();
            let log = Arc::new(KafkaLog::new(KafkaConfig::new(kafka.bootstrap_servers())).unwrap());
            rt.block_on(append_by_key(log.as_ref(), RAW_TOPIC, recs.clone()))
                .unwrap();
            if which == "pass" {
                base.push(rt.block_on(passthrough(log, partitions, n)));
            } else {
                ours.push(rt.block_on(processor(log, partitions, n)));
            }
            drop(kafka);
        }
    }
    report(&format!("dev-kafka ({kafka_partitions}p)"), &ours, &base);
    println!("peak RSS of the bench process: {:.0} MiB", peak_rss_mib());
}
