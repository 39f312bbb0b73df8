//! `emit_vs_raw_producer`: the producer library (`Emitter` over the Kafka log) against a raw
//! rdkafka producer sending the same bytes to the same broker, in the same run.
//!
//! * ours: `Emitter::emit(event)` for every event (validation, queueing; the worker encodes
//!   the binary-mode record and appends through `KafkaLog`), then `shutdown()` (everything
//!   acknowledged). Per-call cost is timed around each `emit`.
//! * raw: the records `provenant_producer::raw_record` makes of the same events, encoded
//!   before timing, sent by [`provenant_kafka::raw::RawProducer`]: one `send_result` each (partition chosen by the
//!   same murmur2 partitioner), then every delivery awaited. Per-call cost is timed around
//!   each `send_result`.
//!
//! Throughput on both sides runs from the first call to the last acknowledgement. Both use
//! idempotence, `acks=all`, lz4 and `linger.ms=5`. Each round uses fresh topics with 16
//! partitions on one in-process librdkafka mock broker (the broker of `provenant dev-kafka`;
//! it keeps ~5 MiB per partition); round 0 is a warm-up; the order of the sides alternates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use provenant_kafka::raw::RawProducer;
use provenant_kafka::{DevKafka, KafkaConfig, KafkaLog};
use provenant_producer::{Emitter, EmitterConfig, LogTransport, raw_record};
use provenant_schemas::{Event, EventData, Runtime};

use super::{Comparison, Plan, median, progress};

const PARTITIONS: u32 = 16;

fn events(n: usize) -> Vec<Event> {
    (0..n)
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

struct Outcome {
    calls: Vec<Duration>,
    total: Duration,
}

async fn run_ours(log: Arc<KafkaLog>, topic: &str, events: &[Event]) -> Result<Outcome> {
    let emitter = Emitter::start(
        EmitterConfig {
            queue_capacity: events.len(),
            ..EmitterConfig::default()
        },
        LogTransport::new(log, topic),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut calls = Vec::with_capacity(events.len());
    let start = Instant::now();
    for e in events {
        // The caller builds its event before emitting it; only the call is timed.
        let e = e.clone();
        let t = Instant::now();
        emitter.emit(e).map_err(|e| anyhow!("{e}"))?;
        calls.push(t.elapsed());
    }
    emitter.shutdown().await.map_err(|e| anyhow!("{e}"))?;
    let total = start.elapsed();
    let s = emitter.stats();
    if s.delivered != events.len() as u64 {
        bail!("emitter delivered {} of {}", s.delivered, events.len());
    }
    Ok(Outcome { calls, total })
}

async fn run_raw(producer: &RawProducer, topic: &str, events: &[Event]) -> Result<Outcome> {
    let records: Vec<_> = events.iter().map(raw_record).collect();
    let o = producer
        .send_all(topic, PARTITIONS, &records)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(Outcome {
        calls: o.calls,
        total: o.total,
    })
}

/// Nearest-rank percentile in µs.
fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

pub(crate) async fn measure(plan: &Plan) -> Result<Comparison> {
    let n = plan.events;
    let kafka = DevKafka::start_empty().map_err(|e| anyhow!("{e}"))?;
    let bootstrap = kafka.bootstrap_servers().to_owned();
    let log = Arc::new(KafkaLog::new(KafkaConfig::new(&bootstrap)).map_err(|e| anyhow!("{e}"))?);
    let producer = RawProducer::new(&bootstrap).map_err(anyhow::Error::msg)?;
    let events = events(n);
    let bytes: usize = events.iter().map(|e| raw_record(e).value.len()).sum();
    let (mut ours_tp, mut raw_tp) = (Vec::new(), Vec::new());
    let (mut ours_calls, mut raw_calls) = (Vec::new(), Vec::new());
    // Round 0 is a warm-up (topics, connections, allocator) and is not counted.
    for round in 0..=plan.rounds {
        progress(&format!("emit: round {round}/{}", plan.rounds));
        let (ot, rt) = (format!("bench.emit.{round}"), format!("bench.raw.{round}"));
        kafka
            .create_topic(&ot, PARTITIONS)
            .map_err(|e| anyhow!("{e}"))?;
        kafka
            .create_topic(&rt, PARTITIONS)
            .map_err(|e| anyhow!("{e}"))?;
        let (ours, raw) = if round % 2 == 0 {
            let o = run_ours(Arc::clone(&log), &ot, &events).await?;
            (o, run_raw(&producer, &rt, &events).await?)
        } else {
            let r = run_raw(&producer, &rt, &events).await?;
            (run_ours(Arc::clone(&log), &ot, &events).await?, r)
        };
        if round == 0 {
            continue;
        }
        ours_tp.push(n as f64 / ours.total.as_secs_f64());
        raw_tp.push(n as f64 / raw.total.as_secs_f64());
        ours_calls.extend(ours.calls);
        raw_calls.extend(raw.calls);
    }
    ours_calls.sort();
    raw_calls.sort();
    Ok(Comparison::new(median(ours_tp), median(raw_tp), "events/s")
        .with("events", n)
        .with("partitions", PARTITIONS)
        .with("avg_value_bytes", bytes / n.max(1))
        .with("broker", "librdkafka mock broker (dev-kafka), in process")
        .with("call_p99_us", percentile_us(&ours_calls, 99.0))
        .with("raw_call_p99_us", percentile_us(&raw_calls, 99.0)))
}
