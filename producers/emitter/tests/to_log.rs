//! Emitters writing through the log transport into the real embedded log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, LogReader, RAW_TOPIC};
use provenant_producer::{Emitter, EmitterConfig, LogTransport};
use provenant_schemas::{Event, EventData, Runtime};

const EMITTERS: usize = 4;
const PER_EMITTER: usize = 25_000;
const KEYS_PER_EMITTER: usize = 8;

fn event(emitter: usize, seq: usize) -> Event {
    Event::new(
        format!("test://emitter/{emitter}"),
        format!("{emitter}-{seq:06}"),
        EventData::Runtime(Runtime {
            instance_id: format!("pod-{emitter}-{}", seq % KEYS_PER_EMITTER),
            service: "shop".into(),
            environment: "staging".into(),
            deploy_id: Some("dep-1".into()),
            ..Runtime::default()
        }),
    )
}

/// Reads every record of `prov.raw` and checks: the expected count, no duplicate ids, and per
/// key the sequence numbers increase.
async fn check_raw<L: Log>(log: &L, expected: usize) {
    let mut per_key: HashMap<Vec<u8>, Vec<(usize, usize)>> = HashMap::new();
    let mut ids = HashSet::new();
    for p in 0..log.partition_count(RAW_TOPIC).await.unwrap() {
        let end = log.watermarks(RAW_TOPIC, p).await.unwrap().end;
        let mut reader = log.reader(RAW_TOPIC, p, 0).await.unwrap();
        while reader.position() < end {
            for r in reader
                .next_batch(10_000, Duration::from_secs(5))
                .await
                .unwrap()
            {
                let id = String::from_utf8(r.record.header("ce_id").unwrap().to_vec()).unwrap();
                assert!(ids.insert(id.clone()), "duplicate {id}");
                let (emitter, seq) = id.split_once('-').unwrap();
                per_key
                    .entry(r.record.key.clone().unwrap().to_vec())
                    .or_default()
                    .push((emitter.parse().unwrap(), seq.parse().unwrap()));
            }
        }
    }
    assert_eq!(ids.len(), expected, "events in prov.raw");
    for (key, seqs) in per_key {
        assert!(
            seqs.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "order broken for key {}",
            String::from_utf8_lossy(&key)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_emitters_100k_events_reach_the_embedded_log_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    let mut tasks = Vec::new();
    for e in 0..EMITTERS {
        let emitter = Emitter::start(
            EmitterConfig {
                spool_dir: Some(dir.path().join(format!("spool-{e}"))),
                ..EmitterConfig::default()
            },
            LogTransport::new(log.clone(), RAW_TOPIC),
        )
        .unwrap();
        tasks.push(tokio::spawn(async move {
            for seq in 0..PER_EMITTER {
                emitter.emit(event(e, seq)).unwrap();
                if seq % 1_000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            emitter.shutdown().await.unwrap();
            emitter.stats()
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert_eq!(s.emitted, PER_EMITTER as u64);
        assert_eq!(s.delivered, PER_EMITTER as u64, "{s:?}");
        assert_eq!(s.dropped + s.rejected, 0, "{s:?}");
    }
    check_raw(&log, EMITTERS * PER_EMITTER).await;
}
