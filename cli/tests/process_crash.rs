#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The processor under `kill -9`, rebalances and restarts, as real processes:
//!
//! * on `dev-kafka` (its own process): `provenant process` killed at random moments while
//!   events flow into `prov.raw`, restarted each time; then two instances with a rebalance;
//! * on the embedded log: `provenant up` (ingest + processor) killed at random moments while
//!   a library emitter sends events over HTTP.
//!
//! Afterwards the ledger audit must say (and for `up`, the index and `provenant verify` of the
//! archive agree): every raw offset accounted for exactly once, every
//! chain valid from seq 0 under the validity rule, every valid event once.
//!
//! Sizes: the default run uses `PROVENANT_CRASH_TRIALS` (default 3) trials and
//! `PROVENANT_CRASH_EVENTS` (default 5,000) events; `scripts/soak` runs the full 20 × 50,000.
//! dev-kafka runs with 16 partitions so that 50,000 raw events and their ledger records stay
//! well under the mock broker's per-partition cap (TESTING.md).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::crash::{
    KAFKA_CONFIG, check, event, kill9, knob, raw, read_ledger, settled, sigterm, spawn_producer,
    start_process,
};
use common::{Broker, Up, free_port};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{RAW_TOPIC, append_by_key};
use provenant_processor::audit::audit;
use provenant_producer::{Emitter, EmitterConfig, HttpTransport};
use provenant_schemas::ledger::RecordBody;
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_processor_on_dev_kafka_loses_and_doubles_nothing() {
    let trials = knob("PROVENANT_CRASH_TRIALS", 3);
    let events = knob("PROVENANT_CRASH_EVENTS", 5_000);
    let broker = Broker::start(&["--partitions", "16"]);
    let log = Arc::new(broker.log());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("process.toml");
    std::fs::write(&config, KAFKA_CONFIG).unwrap();

    // Producer: events (with a retry of every 50th and a bad record every 100th) in chunks,
    // spread over the trials.
    let producing = spawn_producer(
        log.clone(),
        events,
        Duration::from_millis(trials as u64 * 2_500),
        None,
    );

    let mut rng = rand::rng();
    for _ in 0..trials {
        let mut p = start_process(&config, &broker.bootstrap);
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_500..5_000))).await;
        kill9(&mut p);
    }
    let valid = producing.await.unwrap();
    let last = start_process(&config, &broker.bootstrap);
    let a = settled(log.as_ref(), Duration::from_secs(180)).await;
    sigterm(last);
    check(&a, valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processors_with_a_rebalance_in_the_middle_on_dev_kafka() {
    let events = knob("PROVENANT_CRASH_EVENTS", 5_000);
    let broker = Broker::start(&["--partitions", "16"]);
    let log = Arc::new(broker.log());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("process.toml");
    std::fs::write(&config, KAFKA_CONFIG).unwrap();
    let half = events / 2;
    append_by_key(
        log.as_ref(),
        RAW_TOPIC,
        (0..half).map(|i| raw(&event(i))).collect(),
    )
    .await
    .unwrap();
    let a = start_process(&config, &broker.bootstrap);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // B joins: the group rebalances while A is writing.
    let b = start_process(&config, &broker.bootstrap);
    for start in (half..events).step_by(250) {
        append_by_key(
            log.as_ref(),
            RAW_TOPIC,
            (start..(start + 250).min(events))
                .map(|i| raw(&event(i)))
                .collect(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A leaves cleanly: B takes everything, and must process what comes next on all of it.
    sigterm(a);
    append_by_key(
        log.as_ref(),
        RAW_TOPIC,
        (events..events + 500).map(|i| raw(&event(i))).collect(),
    )
    .await
    .unwrap();
    let audit_after = settled(log.as_ref(), Duration::from_secs(180)).await;
    sigterm(b);
    check(&audit_after, events as u64 + 500);
    // Both instances took partitions over at least once (fences beyond one per partition).
    let fences: u64 = audit_after.partitions.iter().map(|p| p.fences).sum();
    assert!(fences > 16, "no partition changed hands: {fences} fences");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_up_on_the_embedded_log_loses_no_acknowledged_event() {
    let trials = knob("PROVENANT_CRASH_TRIALS", 3);
    let events = knob("PROVENANT_CRASH_EVENTS", 5_000);
    let data = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut up = Up::start(data.path(), port, &[]);
    let transport = HttpTransport::new(&up.base, None, Duration::from_secs(5)).unwrap();
    let emitter = Arc::new(
        Emitter::start(
            EmitterConfig {
                spool_dir: Some(spool.path().to_owned()),
                min_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(300),
                ..EmitterConfig::default()
            },
            transport,
        )
        .unwrap(),
    );
    let sending = {
        let emitter = emitter.clone();
        let pace = Duration::from_millis((trials as u64 * 2_000) / (events as u64 / 100).max(1));
        tokio::spawn(async move {
            for i in 0..events {
                emitter.emit(event(i)).unwrap();
                if i % 100 == 99 {
                    tokio::time::sleep(pace).await;
                }
            }
        })
    };
    let mut rng = rand::rng();
    for _ in 0..trials {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
        kill9(&mut up.child);
        up = Up::start(data.path(), port, &[]);
    }
    sending.await.unwrap();
    tokio::time::timeout(Duration::from_secs(120), emitter.flush())
        .await
        .expect("every event acknowledged within 2 minutes")
        .unwrap();
    assert_eq!(emitter.stats().dropped, 0);
    // Let the processor catch up: stop cleanly, audit the log directly (the embedded log
    // admits one process), and start `up` again while offsets are still unprocessed.
    let started = Instant::now();
    let (log, a) = loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        up.stop();
        let log = EmbeddedLog::open(data.path().join("log"), EmbeddedConfig::default()).unwrap();
        let a = audit(&log).await.unwrap();
        if a.partitions.iter().all(|p| p.missing_count == 0)
            || started.elapsed() > Duration::from_secs(300)
        {
            break (log, a);
        }
        drop(log);
        up = Up::start(data.path(), port, &[]);
    };
    // Every acknowledged event is in the ledger exactly once (retries of events whose 202
    // was lost in a kill are duplicates in prov.raw, and duplicate markers in the ledger).
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events, events as u64, "{a:#?}");
    let ids = ledger_event_ids(&log).await;
    let want: HashSet<String> = (0..events).map(|i| format!("e-{i:07}")).collect();
    assert_eq!(ids, want);

    // The sinks of `up` resumed across every kill too: the index holds each event once, and
    // the archive (segments closed and signed by the clean stop) verifies. The sinks trail the
    // processor: run `up` until the index has caught up with the complete ledger.
    drop(log);
    let index_url = data.path().join("index.db").display().to_string();
    let started = Instant::now();
    let stats = loop {
        let index = provenant_index::open(&index_url).await.unwrap();
        let stats = provenant_index::Index::stats(&index).await.unwrap();
        drop(index);
        if stats.events >= events as u64 || started.elapsed() > Duration::from_secs(300) {
            break stats;
        }
        let up = Up::start(data.path(), port, &[]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        up.stop();
    };
    assert_eq!(stats.events, events as u64, "{stats:?}");
    common::assert_up_archive_verifies(data.path());
}

async fn ledger_event_ids(log: &EmbeddedLog) -> HashSet<String> {
    let mut ids = HashSet::new();
    for p in read_ledger(log).await {
        for r in p.records {
            if let RecordBody::Event(er) = r.body {
                assert!(ids.insert(er.event.id.clone()), "{} twice", er.event.id);
            }
        }
    }
    ids
}
