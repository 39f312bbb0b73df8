//! What the crash trials share (`process_crash.rs`, `sink_crash.rs`): the trial sizes, the
//! events, a paced raw producer, starting and stopping `provenant process`, the ledger audit
//! and the ledger as the validity rule reads it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use provenant_log::{LEDGER_TOPIC, Log, LogReader, RAW_TOPIC, Record, append_by_key};
use provenant_processor::audit::{Audit, audit};
use provenant_schemas::ledger::{LedgerEntry, LedgerRecord};
use provenant_schemas::validity::{ReaderState, Validator, Verdict};
use provenant_schemas::{Event, EventData, Runtime, binary_mode};

/// A size from the environment (`PROVENANT_CRASH_TRIALS`, `PROVENANT_CRASH_EVENTS`), or
/// `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Event `i`: a runtime event of instance `pod-{i % 997}` started by deploy `dep-{i % 13}`,
/// with an e-mail in its message (redacted by the processor).
pub fn event(i: usize) -> Event {
    Event::new(
        "test://crash",
        format!("e-{i:07}"),
        EventData::Runtime(Runtime {
            instance_id: format!("pod-{}", i % 997),
            service: "shop".into(),
            environment: "prod".into(),
            deploy_id: Some(format!("dep-{}", i % 13)),
            message: Some(format!("started by ops-{i}@example.com")),
            ..Runtime::default()
        }),
    )
}

/// `e` as a binary-mode CloudEvents raw record.
pub fn raw(e: &Event) -> Record {
    let (headers, value) = binary_mode::encode(e);
    let mut r = Record::new(e.partition_key(), value);
    for (n, v) in headers {
        r = r.with_header(n, v);
    }
    r
}

/// A malformed raw record (the processor rejects it to the DLQ).
pub fn bad(i: usize) -> Record {
    Record::new(format!("bad-{i}"), "{\"specversion\": 1}")
        .with_header("content-type", "application/cloudevents+json")
}

/// Appends events `0, 1, 2, …` to `prov.raw` in chunks of 250, with a retry of every 50th and
/// a malformed record every 100th, paced so that `events` take about `spread`; it stops after
/// `events`, or, while `more` is set, goes on at the same pace. Returns the valid events.
pub fn spawn_producer<L: Log>(
    log: Arc<L>,
    events: usize,
    spread: Duration,
    more: Option<Arc<AtomicBool>>,
) -> tokio::task::JoinHandle<u64> {
    let chunks = u32::try_from(events.div_ceil(250).max(1)).unwrap_or(u32::MAX);
    let pace = spread / chunks;
    tokio::spawn(async move {
        let mut start = 0;
        while start < events || more.as_ref().is_some_and(|m| m.load(Ordering::SeqCst)) {
            let mut batch = Vec::new();
            let end = if start < events {
                (start + 250).min(events)
            } else {
                start + 250
            };
            for i in start..end {
                batch.push(raw(&event(i)));
                if i % 50 == 0 {
                    batch.push(raw(&event(i)));
                }
                if i % 100 == 0 {
                    batch.push(bad(i));
                }
            }
            append_by_key(log.as_ref(), RAW_TOPIC, batch).await.unwrap();
            start = end;
            tokio::time::sleep(pace).await;
        }
        start as u64
    })
}

/// SIGKILL, and reap.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGTERM, then waits for a clean exit (status 0).
pub fn sigterm(mut child: Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "process exited with {status}");
}

/// Processor settings for the trials: short group session, small batches.
pub const KAFKA_CONFIG: &str = r#"
[kafka]
session_timeout_ms = 6000
heartbeat_interval_ms = 2000
[processor]
batch_max = 500
"#;

/// `provenant process --brokers BOOTSTRAP --config CONFIG` ([`KAFKA_CONFIG`]).
pub fn start_process(config: &Path, bootstrap: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args([
            "process",
            "--brokers",
            bootstrap,
            "--http",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config)
        .env("PROVENANT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start provenant process")
}

/// Polls the audit until every raw offset is accounted for (or `limit`).
pub async fn settled<L: Log>(log: &L, limit: Duration) -> Audit {
    let started = Instant::now();
    loop {
        let a = audit(log).await.unwrap();
        if a.partitions.iter().all(|p| p.missing_count == 0) || started.elapsed() > limit {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The audit says: every raw offset once, every chain valid, `valid_events` events.
pub fn check(a: &Audit, valid_events: u64) {
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events, valid_events, "{a:#?}");
    for p in &a.partitions {
        assert_eq!(
            p.chain_len,
            p.raw_end + p.by_body.get("link_resolution").copied().unwrap_or(0)
        );
    }
}

/// One ledger partition as the validity rule reads it: the records that count, in seq order,
/// and the reader state after the whole partition.
pub struct LedgerPartition {
    pub records: Vec<LedgerRecord>,
    pub state: ReaderState,
}

/// Every partition of `prov.ledger`, read to its end under the validity rule.
pub async fn read_ledger<L: Log>(log: &L) -> Vec<LedgerPartition> {
    let mut out = Vec::new();
    for p in 0..log.partition_count(LEDGER_TOPIC).await.unwrap() {
        out.push(read_partition_from(log, p, ReaderState::START).await);
    }
    out
}

/// Ledger partition `p` read under the validity rule from `state` (a reader state saved by a
/// sink or the archive) to the end it had when the read began.
pub async fn read_partition_from<L: Log>(log: &L, p: u32, state: ReaderState) -> LedgerPartition {
    let end = log.watermarks(LEDGER_TOPIC, p).await.unwrap().end;
    let mut r = log
        .reader(LEDGER_TOPIC, p, state.ledger_offset)
        .await
        .unwrap();
    let mut v = Validator::new(state);
    let mut records = Vec::new();
    while r.position() < end {
        for s in r.next_batch(2000, Duration::from_secs(1)).await.unwrap() {
            if let (Verdict::Valid, Some(LedgerEntry::Record(rec))) =
                v.observe_bytes(s.offset, &s.record.value)
            {
                records.push(rec);
            }
        }
    }
    LedgerPartition {
        records,
        state: *v.state(),
    }
}
