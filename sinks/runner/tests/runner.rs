#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The runner over the real embedded log, with a sink that remembers what it was given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{LEDGER_TOPIC, Log, Record};
use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{DuplicateMarker, Fence, LedgerEntry, RecordBody};
use provenant_schemas::validity::ReaderState;
use provenant_sink::{LedgerSink, RunnerConfig, SinkError, SinkMetrics, run};

/// (partition, ledger offset, seq of a record or None for a fence)
type Seen = Vec<(u32, u64, Option<i64>)>;

#[derive(Clone, Default)]
struct Memory {
    seen: Arc<Mutex<Seen>>,
    states: Arc<Mutex<HashMap<u32, ReaderState>>>,
    /// Once this many entries were written, every later write hangs (a stuck store).
    hang_after: Option<usize>,
}

impl LedgerSink for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    async fn resume(&mut self, partition: u32) -> Result<Option<ReaderState>, SinkError> {
        Ok(self.states.lock().unwrap().get(&partition).copied())
    }
    async fn write(
        &mut self,
        partition: u32,
        entries: &[(u64, LedgerEntry)],
        state: &ReaderState,
    ) -> Result<(), SinkError> {
        if self
            .hang_after
            .is_some_and(|n| self.seen.lock().unwrap().len() >= n)
        {
            std::future::pending::<()>().await;
        }
        let mut seen = self.seen.lock().unwrap();
        for (offset, e) in entries {
            let seq = match e {
                LedgerEntry::Record(r) => Some(r.seq),
                LedgerEntry::Fence(_) => None,
            };
            seen.push((partition, *offset, seq));
        }
        self.states.lock().unwrap().insert(partition, *state);
        Ok(())
    }
    async fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn close_partition(&mut self, _partition: u32) -> Result<(), SinkError> {
        Ok(())
    }
}

fn rec(entry: &LedgerEntry) -> Record {
    Record {
        key: None,
        headers: vec![],
        value: entry.to_avro().into(),
    }
}

fn marker(head: &ChainHead, raw: i64, epoch: i64) -> provenant_schemas::LedgerRecord {
    chain_next(
        head,
        raw,
        epoch,
        RecordBody::Duplicate(DuplicateMarker {
            original_partition: 0,
            original_seq: 0,
            source: "s".into(),
            id: format!("{raw}"),
        }),
    )
    .unwrap()
}

async fn run_until(log: &Arc<EmbeddedLog>, sink: Memory, want: usize) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let registry = prometheus::Registry::new();
    let task = tokio::spawn(run(
        log.clone(),
        sink.clone(),
        RunnerConfig::new("memory-sink"),
        SinkMetrics::new(&registry).unwrap(),
        async {
            let _ = rx.await;
        },
    ));
    for _ in 0..200 {
        if sink.seen.lock().unwrap().len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// A two-partition embedded log in `dir`.
fn open_log(dir: &std::path::Path) -> Arc<EmbeddedLog> {
    Arc::new(
        EmbeddedLog::open(
            dir,
            EmbeddedConfig {
                partitions: 2,
                ..EmbeddedConfig::default()
            },
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_gets_what_counts_in_order_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let fence = |e| {
        LedgerEntry::Fence(Fence {
            writer_epoch: e,
            writer_id: [e as u8; 16],
        })
    };
    let r0 = marker(&ChainHead::GENESIS, 0, 0);
    let r1 = marker(&ChainHead::after(&r0), 1, 0);
    let zombie = marker(&ChainHead::after(&r1), 2, 0);
    let r2 = marker(&ChainHead::after(&r1), 2, 1);
    // offsets: 0 fence(0), 1 r0, 2 r1, 3 fence(1), 4 zombie (stale epoch), 5 r2
    let entries = [
        fence(0),
        LedgerEntry::Record(r0),
        LedgerEntry::Record(r1),
        fence(1),
        LedgerEntry::Record(zombie),
        LedgerEntry::Record(r2.clone()),
    ];
    log.append(LEDGER_TOPIC, 1, entries.iter().map(rec).collect())
        .await
        .unwrap();
    let sink = Memory::default();
    run_until(&log, sink.clone(), 5).await;
    assert_eq!(
        *sink.seen.lock().unwrap(),
        vec![
            (1, 0, None),
            (1, 1, Some(0)),
            (1, 2, Some(1)),
            (1, 3, None),
            (1, 5, Some(2))
        ]
    );
    // Restart from the stored state: only what is new arrives.
    let r3 = marker(&ChainHead::after(&r2), 3, 1);
    log.append(LEDGER_TOPIC, 1, vec![rec(&LedgerEntry::Record(r3))])
        .await
        .unwrap();
    run_until(&log, sink.clone(), 6).await;
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[5], (1, 6, Some(3)));
    let state = sink.states.lock().unwrap()[&1];
    assert_eq!(state.ledger_offset, 7);
    assert_eq!(state.head.next_seq, 4);
    assert_eq!(state.epoch(), Some(1));
}

fn lag(registry: &prometheus::Registry) -> HashMap<String, i64> {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "provenant_sink_lag")
        .flat_map(|f| f.get_metric().iter())
        .map(|m| {
            let p = m
                .get_label()
                .iter()
                .find(|l| l.name() == "partition")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            (p, m.get_gauge().get_value() as i64)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_keeps_growing_while_the_sink_is_stuck_and_goes_with_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let mut head = ChainHead::GENESIS;
    let mut records = |n: i64, from: i64| {
        (from..from + n)
            .map(|raw| {
                let r = marker(&head, raw, 0);
                head = ChainHead::after(&r);
                rec(&LedgerEntry::Record(r))
            })
            .collect::<Vec<_>>()
    };
    let mut first = vec![rec(&LedgerEntry::Fence(Fence {
        writer_epoch: 0,
        writer_id: [0; 16],
    }))];
    first.extend(records(3, 0));
    log.append(LEDGER_TOPIC, 1, first).await.unwrap();

    let registry = prometheus::Registry::new();
    let sink = Memory {
        hang_after: Some(4),
        ..Memory::default()
    };
    let cfg = RunnerConfig {
        lag_interval: Duration::from_millis(50),
        ..RunnerConfig::new("stuck-sink")
    };
    let task = tokio::spawn(run(
        log.clone(),
        sink.clone(),
        cfg,
        SinkMetrics::new(&registry).unwrap(),
        std::future::pending(),
    ));
    let wait_for = |want: HashMap<String, i64>| {
        let registry = registry.clone();
        async move {
            for _ in 0..400 {
                if lag(&registry) == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("lag is {:?}, expected {want:?}", lag(&registry));
        }
    };
    // Everything written: no lag on either owned partition.
    wait_for(HashMap::from([("0".into(), 0), ("1".into(), 0)])).await;
    assert_eq!(sink.seen.lock().unwrap().len(), 4);
    // The store hangs on the next write; the ledger grows by 10; the lag says so.
    log.append(LEDGER_TOPIC, 1, records(10, 3)).await.unwrap();
    wait_for(HashMap::from([("0".into(), 0), ("1".into(), 10)])).await;
    assert_eq!(sink.seen.lock().unwrap().len(), 4);
    task.abort();

    // A runner that stops cleanly leaves no lag series behind for partitions it gave up.
    let registry = prometheus::Registry::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(
        log.clone(),
        Memory::default(),
        RunnerConfig {
            lag_interval: Duration::from_millis(50),
            ..RunnerConfig::new("clean-sink")
        },
        SinkMetrics::new(&registry).unwrap(),
        async {
            let _ = rx.await;
        },
    ));
    for _ in 0..400 {
        if lag(&registry).get("1") == Some(&0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(lag(&registry).get("1"), Some(&0));
    let _ = tx.send(());
    task.await.unwrap().unwrap();
    assert!(lag(&registry).is_empty(), "{:?}", lag(&registry));
}
