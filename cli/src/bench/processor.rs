//! `processor_vs_passthrough`: the processor (decode, validate, dedup, redact with the default
//! policy, link, chain, append) against a plain consume→produce pass-through of the same raw
//! messages on the same log: per partition, read prov.raw in batches of 1,000 and append the
//! same records to prov.ledger. Each round starts from a fresh log holding the same raw
//! records; the two sides alternate; throughput runs from start until the ledger holds every
//! record (the processor also writes one fence per partition).
//!
//! `ours` is the processor in steady state: timed from its first ledger entry (the first
//! fence of a takeover) to the last record, so joining the group, loading the entity state
//! and the first takeover (a fixed cost: seconds on the mock broker, whose group join alone
//! takes about 3 s) are reported apart as `startup_ms`, with `ours_including_startup` and
//! `ratio_including_startup` timed from `Processor::new`. The pass-through has no startup.
//! CPU efficiency is counted the same way: `ours_per_cpu_second` is events per CPU-second of
//! the whole process (every thread: workers, tailers, the log's writer threads, the mock
//! broker where it runs in process) over the steady-state window, and
//! `ours_per_cpu_second_including_startup` over the whole run.
//!
//! Embedded log at each `--partitions` count (the first is the headline, the rest the scaling
//! table); the full run adds the in-process librdkafka mock broker (the broker of
//! `provenant dev-kafka`) at 16 partitions, which keeps 50,000 events under the mock's
//! per-partition cap (TESTING.md).
//!
//! `rss` (full run only): one processor on a fresh embedded log (4 partitions) is fed
//! 1,000,000 events in steps of 100,000 (distinct ids; 5,000 instances; every event also
//! refers to a deploy and an artifact that never arrive, so its links stay pending), and the
//! process's resident set (VmRSS) is read once each step is in the ledger. Memory that grows
//! with events rather than with entities shows here.
//!
//! `stage_floor` times, on one thread over the same records, only the per-event work no
//! processor can skip: decode and validate, redact, seal (canonical bytes and SHA-256), encode
//! the ledger record; in µs per event. `ceiling_ratio_per_cpu` is the pass-through's CPU per
//! event over that plus the floor: the CPU-efficiency ratio a processor doing nothing else
//! (no links, dedup, tailing, metrics, batching) would reach against this baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use provenant_kafka::{DevKafka, KafkaConfig, KafkaLog};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{LEDGER_TOPIC, Log, LogReader, RAW_TOPIC, Record, append_by_key};
use provenant_processor::{Processor, ProcessorConfig};
use provenant_redact::{Policy, Redactor, Secret};
use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{EventRecord, LedgerEntry, RecordBody};
use provenant_schemas::{Event, EventData, Limits, Runtime, binary_mode};

use super::{Comparison, Plan, cpu_seconds, median, progress};

/// A runtime event of a realistic size (~600 bytes of Avro value).
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
            trace_id: Some(format!("{i:032x}")),
            message: Some("container started; readiness probe passed after 3 attempts".into()),
            annotations,
        }),
    )
}

fn records(n: usize) -> Vec<Record> {
    (0..n).map(record).collect()
}

/// Event `i` as a binary-mode raw record.
fn record(i: usize) -> Record {
    let e = event(i);
    let (headers, value) = binary_mode::encode(&e);
    let mut r = Record::new(e.partition_key(), value);
    for (name, v) in headers {
        r = r.with_header(name, v);
    }
    r
}

async fn ledger_total<L: Log>(log: &L, partitions: u32) -> Result<u64> {
    let mut t = 0;
    for p in 0..partitions {
        t += log.watermarks(LEDGER_TOPIC, p).await?.end;
    }
    Ok(t)
}

/// One run of one side.
#[derive(Clone, Copy)]
struct Rate {
    /// Events/s in steady state: from the first ledger entry written (for the processor, its
    /// first fence, so group join, entity-state load and the first takeover are excluded) to
    /// the last.
    steady: f64,
    /// Events/s from start (processor: from `Processor::new`) to the last ledger record.
    total: f64,
    /// Events per CPU-second of the whole process in steady state (same window as `steady`).
    per_cpu: f64,
    /// Events per CPU-second of the whole process over the whole run.
    per_cpu_total: f64,
    /// Seconds from start to the first ledger entry.
    startup: f64,
}

/// Consume raw, append the same records to the ledger topic, per partition concurrently.
async fn passthrough<L: Log>(log: Arc<L>, partitions: u32, n: usize) -> Result<Rate> {
    let cpu = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..partitions {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let end = log.watermarks(RAW_TOPIC, p).await?.end;
            let mut r = log.reader(RAW_TOPIC, p, 0).await?;
            while r.position() < end {
                let batch = r.next_batch(1000, Duration::from_millis(100)).await?;
                let out: Vec<Record> = batch.into_iter().map(|s| s.record).collect();
                if !out.is_empty() {
                    log.append(LEDGER_TOPIC, p, out).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = ledger_total(log.as_ref(), partitions).await?;
    if total != n as u64 {
        bail!("pass-through wrote {total} ledger records, expected {n}");
    }
    let rate = n as f64 / secs;
    let per_cpu = n as f64 / (cpu_seconds() - cpu).max(1e-9);
    Ok(Rate {
        steady: rate,
        total: rate,
        per_cpu,
        per_cpu_total: per_cpu,
        startup: 0.0,
    })
}

/// The default redaction policy with a fresh key: what every processor in this bench runs.
fn default_redactor() -> Result<Redactor> {
    Redactor::new(&Policy::default_policy(), Secret::generate()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A fresh embedded log in `dir`.
fn embedded_log(dir: &std::path::Path, partitions: u32) -> Result<Arc<EmbeddedLog>> {
    Ok(Arc::new(EmbeddedLog::open(
        dir,
        EmbeddedConfig {
            partitions,
            ..EmbeddedConfig::default()
        },
    )?))
}

/// A processor running on `log` until `stop` is called.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), provenant_processor::ProcessorError>>,
}

impl Running {
    async fn start<L: Log>(log: Arc<L>, cfg: ProcessorConfig) -> Result<Self> {
        let registry = prometheus::Registry::new();
        let p = Processor::new(log, cfg, Arc::new(default_redactor()?), &registry)
            .await
            .context("starting the processor")?;
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(p.run(async {
            let _ = rx.await;
        }));
        Ok(Self { stop, task })
    }

    fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await?.context("processor")?;
        Ok(())
    }
}

async fn processor<L: Log>(log: Arc<L>, partitions: u32, n: usize) -> Result<Rate> {
    let cfg = ProcessorConfig {
        group: format!("bench-{}", rand::random::<u32>()),
        ..ProcessorConfig::default()
    };
    let cpu = cpu_seconds();
    let started = Instant::now();
    let running = Running::start(log.clone(), cfg).await?;
    // n records plus one fence per partition.
    let want = n as u64 + u64::from(partitions);
    let deadline = Instant::now() + Duration::from_secs(600);
    // When the first ledger entry was seen: the time, the CPU used and the entries written.
    let mut first_entry = None;
    loop {
        let written = ledger_total(log.as_ref(), partitions).await?;
        if written > 0 && first_entry.is_none() {
            first_entry = Some((Instant::now(), cpu_seconds(), written));
        }
        if written >= want {
            break;
        }
        if Instant::now() > deadline || running.is_finished() {
            bail!("the processor did not write {want} ledger records");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_used = cpu_seconds() - cpu;
    running.stop().await?;
    let startup = first_entry.map_or(0.0, |(t, _, _)| (t - started).as_secs_f64());
    let (steady_cpu, steady_entries) = first_entry.map_or((cpu_used, want), |(_, c, w)| {
        (cpu_used - (c - cpu), want.saturating_sub(w))
    });
    Ok(Rate {
        steady: n as f64 / (secs - startup).max(1e-9),
        total: n as f64 / secs,
        per_cpu: steady_entries as f64 / steady_cpu.max(1e-9),
        per_cpu_total: n as f64 / cpu_used.max(1e-9),
        startup,
    })
}

#[derive(Clone, Copy)]
enum Backend {
    Embedded,
    MockKafka,
}

/// `rounds` interleaved rounds on fresh logs: (ours, baseline) per round.
async fn rounds(
    backend: Backend,
    plan: &Plan,
    partitions: u32,
    recs: &[Record],
) -> Result<(Vec<Rate>, Vec<Rate>)> {
    let n = recs.len();
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        for side in ["pass-through", "processor"] {
            progress(&format!(
                "processor: {} {partitions}p round {}/{} {side}",
                match backend {
                    Backend::Embedded => "embedded",
                    Backend::MockKafka => "mock kafka",
                },
                round + 1,
                plan.rounds
            ));
            let rate = match backend {
                Backend::Embedded => {
                    let dir = tempfile::tempdir()?;
                    let log = embedded_log(dir.path(), partitions)?;
                    append_by_key(log.as_ref(), RAW_TOPIC, recs.to_vec()).await?;
                    if side == "processor" {
                        processor(log, partitions, n).await?
                    } else {
                        passthrough(log, partitions, n).await?
                    }
                }
                Backend::MockKafka => {
                    let kafka = DevKafka::start(partitions).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let log = Arc::new(
                        KafkaLog::new(KafkaConfig::new(kafka.bootstrap_servers()))
                            .map_err(|e| anyhow::anyhow!("{e}"))?,
                    );
                    append_by_key(log.as_ref(), RAW_TOPIC, recs.to_vec()).await?;
                    if side == "processor" {
                        processor(log, partitions, n).await?
                    } else {
                        passthrough(log, partitions, n).await?
                    }
                }
            };
            if side == "processor" {
                ours.push(rate);
            } else {
                base.push(rate);
            }
        }
    }
    Ok((ours, base))
}

fn compare(ours: &[Rate], base: &[Rate], partitions: u32, log: &str) -> Comparison {
    let med = |rates: &[Rate], f: fn(&Rate) -> f64| median(rates.iter().map(f).collect());
    let total = med(ours, |r| r.total);
    let b = med(base, |r| r.steady);
    Comparison::new(med(ours, |r| r.steady), b, "events/s")
        .with("log", log)
        .with("partitions", partitions)
        .with("ours_including_startup", total.round())
        .with("ratio_including_startup", total / b.max(1e-9))
        .with(
            "startup_ms",
            (med(ours, |r| r.startup) * 1000.0 * 10.0).round() / 10.0,
        )
        .with("ours_per_cpu_second", med(ours, |r| r.per_cpu).round())
        .with(
            "ours_per_cpu_second_including_startup",
            med(ours, |r| r.per_cpu_total).round(),
        )
        .with("baseline_per_cpu_second", med(base, |r| r.per_cpu).round())
}

/// The process's resident set in MiB (VmRSS).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| (kib / 1024.0 * 10.0).round() / 10.0)
}

/// One processor fed `steps` × `step` events; `[events, VmRSS MiB]` after each step.
async fn rss_over_events(steps: usize, step: usize) -> Result<serde_json::Value> {
    let partitions = 4;
    let dir = tempfile::tempdir()?;
    let log = embedded_log(dir.path(), partitions)?;
    let running = Running::start(log.clone(), ProcessorConfig::default()).await?;
    let mut points = vec![serde_json::json!([0, rss_mib()])];
    for k in 0..steps {
        progress(&format!("processor: rss step {}/{steps}", k + 1));
        // In chunks, so that the bench's own records stay a small part of the figure.
        for chunk in (k * step..(k + 1) * step).step_by(10_000) {
            let end = (chunk + 10_000).min((k + 1) * step);
            let recs: Vec<Record> = (chunk..end).map(record).collect();
            append_by_key(log.as_ref(), RAW_TOPIC, recs).await?;
        }
        // Every event plus one fence per partition.
        let want = ((k + 1) * step) as u64 + u64::from(partitions);
        let deadline = Instant::now() + Duration::from_secs(600);
        while ledger_total(log.as_ref(), partitions).await? < want {
            if Instant::now() > deadline || running.is_finished() {
                bail!("the processor did not write {want} ledger records");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        points.push(serde_json::json!([(k + 1) * step, rss_mib()]));
    }
    running.stop().await?;
    Ok(serde_json::Value::Array(points))
}

/// The unavoidable per-event stages, timed one after the other on one thread over `recs` in
/// batches of 1,000 (the processor's batch), after one warm-up pass: µs per event each.
fn stage_floor(recs: &[Record]) -> Result<serde_json::Value> {
    let redactor = default_redactor()?;
    // Seconds per stage: decode, redact, seal, encode; and ledger bytes written.
    let mut secs = [0.0f64; 4];
    let mut bytes = 0usize;
    let mut head = ChainHead::GENESIS;
    // A warm-up pass, then the timed one: each pass starts the figures over.
    for _ in 0..2 {
        secs = [0.0; 4];
        bytes = 0;
        for batch in recs.chunks(1000) {
            let t = Instant::now();
            let mut events = Vec::with_capacity(batch.len());
            for r in batch {
                let headers: Vec<(&str, &[u8])> = r
                    .headers
                    .iter()
                    .map(|h| (h.name.as_str(), h.value.as_ref()))
                    .collect();
                events.push(binary_mode::decode(&headers, &r.value, &Limits::DEFAULT)?);
            }
            let t = lap(&mut secs[0], t);
            let redactions: Vec<_> = events
                .iter_mut()
                .map(|e| redactor.redact_event(e))
                .collect();
            let t = lap(&mut secs[1], t);
            let mut sealed = Vec::with_capacity(events.len());
            for (event, redactions) in events.into_iter().zip(redactions) {
                let body = RecordBody::Event(EventRecord {
                    event,
                    redactions,
                    links: Vec::new(),
                });
                let r = chain_next(&head, head.next_seq, 0, body)?;
                head = ChainHead::after(&r);
                sealed.push(LedgerEntry::Record(r));
            }
            let t = lap(&mut secs[2], t);
            bytes += sealed.iter().map(|e| e.to_avro().len()).sum::<usize>();
            lap(&mut secs[3], t);
        }
    }
    let n = recs.len().max(1) as f64;
    let us = |s: f64| (s * 1e6 / n * 100.0).round() / 100.0;
    let [decode, redact, seal, encode] = secs;
    Ok(serde_json::json!({
        "decode_us": us(decode), "redact_us": us(redact), "seal_us": us(seal),
        "encode_us": us(encode), "sum_us": us(decode + redact + seal + encode),
        "ledger_bytes_per_event": bytes / recs.len().max(1),
    }))
}

/// Adds the time since `t` to `acc`; returns now.
fn lap(acc: &mut f64, t: Instant) -> Instant {
    let now = Instant::now();
    *acc += (now - t).as_secs_f64();
    now
}

pub(crate) async fn measure(plan: &Plan) -> Result<Comparison> {
    let recs = records(plan.events);
    let floor = stage_floor(&recs)?;
    let mut headline: Option<Comparison> = None;
    let mut scaling = Vec::new();
    for &p in &plan.partitions {
        let (ours, base) = rounds(Backend::Embedded, plan, p, &recs).await?;
        let c = compare(&ours, &base, p, "embedded");
        scaling.push(serde_json::json!({
            "partitions": p, "ours": c.ours.round(), "baseline": c.baseline.round(),
            "ratio": c.ratio, "ours_per_cpu_second": c.detail.get("ours_per_cpu_second"),
            "ours_including_startup": c.detail.get("ours_including_startup"),
            "startup_ms": c.detail.get("startup_ms"),
        }));
        headline.get_or_insert(c);
    }
    let mut c = headline.context("no partition count given")?;
    c = c.with("events", plan.events);
    let base_cpu_us = c
        .detail
        .get("baseline_per_cpu_second")
        .and_then(serde_json::Value::as_f64)
        .filter(|v| *v > 0.0)
        .map(|v| 1e6 / v);
    if let (Some(base_us), Some(sum)) = (
        base_cpu_us,
        floor.get("sum_us").and_then(serde_json::Value::as_f64),
    ) {
        c = c.with(
            "ceiling_ratio_per_cpu",
            (base_us / (base_us + sum) * 1000.0).round() / 1000.0,
        );
    }
    c = c.with("stage_floor", floor);
    if scaling.len() > 1 {
        c = c.with("scaling_embedded", scaling);
    }
    if !plan.quick {
        let p = 16;
        let (ours, base) = rounds(Backend::MockKafka, plan, p, &recs).await?;
        let k = compare(&ours, &base, p, "librdkafka mock broker (dev-kafka)");
        c = c.with("dev_kafka", k);
        c = c.with("rss_mib_by_events", rss_over_events(10, 100_000).await?);
    }
    Ok(c)
}
