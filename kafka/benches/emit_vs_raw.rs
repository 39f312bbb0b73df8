//! The producer library (`Emitter` over the Kafka log) against a raw rdkafka producer sending
//! the same bytes to the same broker, in the same run.
//!
//! * ours: `Emitter::emit(event)` for every event (validation, queueing; the worker encodes
//!   the binary-mode record and appends through `KafkaLog`), then `shutdown()` (everything
//!   acknowledged). Per-call cost is timed around each `emit`.
//! * raw: the records `provenant_producer::raw_record` makes of the same events, encoded
//!   before timing, sent with one `FutureProducer::send_result` each (partition chosen by the
//!   same murmur2 partitioner), then every delivery awaited. Per-call cost is timed around
//!   each `send_result`.
//!
//! Throughput on both sides runs from the first call to the last acknowledgement. Both use
//! idempotence, `acks=all`, lz4 and `linger.ms=5`. Each round uses fresh topics with
//! `PARTITIONS` partitions (the mock keeps ~5 MiB per partition); round 0 is a warm-up; the
//! order of the two sides alternates. Run: `cargo bench -p provenant-kafka --bench emit_vs_raw`.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use provenant_kafka::{DevKafka, KafkaConfig, KafkaLog};
use provenant_log::partitioner::partition_for_key;
use provenant_producer::{Emitter, EmitterConfig, LogTransport, raw_record};
use provenant_schemas::{Event, EventData, Runtime};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: u32 = 16;
const EVENTS: usize = 50_000;
const ROUNDS: usize = 6;

type BoxError = Box<dyn Error + Send + Sync>;

fn events() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| {
            let mut e = Event::new(
                "https://k8s.acme.example/clusters/prod-eu-1",
                format!("rt-{i:08}"),
                EventData::Runtime(Runtime {
                    instance_id: format!("shop-7d9f6c-{:05}", i % 2_000),
                    service: "shop".into(),
                    environment: "production".into(),
                    deploy_id: Some("deploy-2026-11-23-0042".into()),
                    artifact_digest: Some(
                        "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
                            .into(),
                    ),
                    trace_id: Some(format!("{i:032x}")),
                    message: Some("started; serving on :8080 after 1.2s warm-up".into()),
                    annotations: [("node".to_owned(), format!("node-{}", i % 40))].into(),
                }),
            );
            e.time = Some("2026-11-23T10:00:00.000Z".into());
            e
        })
        .collect()
}

fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5");
    config
}

struct Outcome {
    calls: Vec<Duration>,
    total: Duration,
}

async fn run_ours(log: Arc<KafkaLog>, topic: &str, events: &[Event]) -> Result<Outcome, BoxError> {
    let emitter = Emitter::start(
        EmitterConfig {
            queue_capacity: EVENTS,
            ..EmitterConfig::default()
        },
        LogTransport::new(log, topic),
    )?;
    let mut calls = Vec::with_capacity(events.len());
    let start = Instant::now();
    for e in events {
        // The caller builds its event before emitting it; only the call is timed.
        let e = e.clone();
        let t = Instant::now();
        emitter.emit(e)?;
        calls.push(t.elapsed());
    }
    emitter.shutdown().await?;
    let total = start.elapsed();
    let s = emitter.stats();
    if s.delivered != events.len() as u64 {
        return Err(format!("emitter delivered {} of {}", s.delivered, events.len()).into());
    }
    Ok(Outcome { calls, total })
}

async fn run_raw(
    producer: &FutureProducer,
    topic: &str,
    events: &[Event],
) -> Result<Outcome, BoxError> {
    let records: Vec<_> = events.iter().map(raw_record).collect();
    let mut calls = Vec::with_capacity(records.len());
    let mut pending = Vec::with_capacity(records.len());
    let start = Instant::now();
    for r in &records {
        let key = r.key.as_deref().unwrap_or_default();
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for h in &r.headers {
            headers = headers.insert(Header {
                key: &h.name,
                value: Some(h.value.as_ref()),
            });
        }
        let partition = i32::try_from(partition_for_key(key, PARTITIONS))?;
        let t = Instant::now();
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(r.value.as_ref())
            .headers(headers)
            .partition(partition);
        match producer.send_result(record) {
            Ok(f) => pending.push(f),
            Err((e, _)) => return Err(format!("raw send: {e}").into()),
        }
        calls.push(t.elapsed());
    }
    for f in pending {
        f.await?.map_err(|(e, _)| format!("raw delivery: {e}"))?;
    }
    Ok(Outcome {
        calls,
        total: start.elapsed(),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest-rank percentile; `sorted` is never empty here.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: one quick round.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let kafka = DevKafka::start_empty()?;
        let bootstrap = kafka.bootstrap_servers().to_owned();
        let log = Arc::new(KafkaLog::new(KafkaConfig::new(&bootstrap))?);
        let producer: FutureProducer = producer_config(&bootstrap).create()?;
        let events = events();
        let bytes: usize = events.iter().map(|e| raw_record(e).value.len()).sum();
        let (mut ours_tp, mut raw_tp) = (Vec::new(), Vec::new());
        let (mut ours_calls, mut raw_calls) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let (ot, rt) = (format!("bench.emit.{round}"), format!("bench.raw.{round}"));
            kafka.create_topic(&ot, PARTITIONS)?;
            kafka.create_topic(&rt, PARTITIONS)?;
            let (ours, raw) = if round % 2 == 0 {
                let o = run_ours(Arc::clone(&log), &ot, &events).await?;
                (o, run_raw(&producer, &rt, &events).await?)
            } else {
                let r = run_raw(&producer, &rt, &events).await?;
                (run_ours(Arc::clone(&log), &ot, &events).await?, r)
            };
            if round == 0 && rounds > 1 {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let n = events.len() as f64;
            ours_tp.push(n / ours.total.as_secs_f64());
            raw_tp.push(n / raw.total.as_secs_f64());
            ours_calls.extend(ours.calls);
            raw_calls.extend(raw.calls);
        }
        ours_calls.sort();
        raw_calls.sort();
        let (o, r) = (median(ours_tp), median(raw_tp));
        println!(
            "{EVENTS} runtime events per round ({} B average value), {PARTITIONS} partitions, median of {} rounds after a warm-up",
            bytes / EVENTS,
            rounds.saturating_sub(1).max(1)
        );
        println!("| measure | emit() (ours) | raw rdkafka send | ours / raw |");
        println!("|---|---:|---:|---:|");
        for p in [50.0, 99.0, 99.9] {
            let (a, b) = (percentile(&ours_calls, p), percentile(&raw_calls, p));
            println!(
                "| call cost p{p} | {:.2} µs | {:.2} µs | {:.2} |",
                a.as_secs_f64() * 1e6,
                b.as_secs_f64() * 1e6,
                a.as_secs_f64() / b.as_secs_f64().max(1e-9)
            );
        }
        println!(
            "| throughput (first call → last ack) | {o:.0} ev/s | {r:.0} ev/s | {:.2} |",
            o / r
        );
        Ok(())
    })
}
