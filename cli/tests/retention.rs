#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `provenant up` over the embedded log lets retention delete the ledger that the archive and
//! the index both hold, and the raw records the ledger accounts for; a processor that takes a partition over afterwards resumes from the
//! archive: the chains continue, retries of archived events are duplicates, and links to
//! archived entities resolve. The same on `dev-kafka`, whose partitions drop their oldest data
//! past about 5 MiB (TESTING.md), with `provenant process --archive` and `provenant sink
//! archive` as their own processes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Broker, Role, Up, free_port};
use provenant_archive::{ArchiveStore, S3Options};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{LEDGER_TOPIC, Log, RAW_TOPIC, Record, append_by_key};
use provenant_schemas::ledger::{LedgerRecord, LinkStatus, RecordBody};
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{Event, Limits, binary_mode};

const PARTITIONS: u32 = 4;

fn config() -> EmbeddedConfig {
    EmbeddedConfig {
        partitions: PARTITIONS,
        segment_bytes: 16 * 1024,
        retention: Duration::ZERO,
        ..EmbeddedConfig::default()
    }
}

fn ev(json: &str) -> Event {
    Event::from_json(json.as_bytes(), &Limits::DEFAULT).unwrap()
}

fn build(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"build-{i}","source":"https://ci.example/shop","type":"io.provenant.build.v1","data":{{"commit_sha":"{:040x}","build_id":"github:acme/shop/{i}/1","build_timestamp":"2026-11-23T09:58:00Z"}}}}"#,
        i + 1
    ))
}

/// A build whose annotations carry 512 hex digits that do not compress (a build log digest
/// list), so that dev-kafka's 5 MiB per partition fill up with fewer events.
fn noisy_build(i: u64) -> Event {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let noise: String = (0..32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("{x:016x}")
        })
        .collect();
    ev(&format!(
        r#"{{"specversion":"1.0","id":"build-{i}","source":"https://ci.example/shop","type":"io.provenant.build.v1","data":{{"commit_sha":"{:040x}","build_id":"github:acme/shop/{i}/1","build_timestamp":"2026-11-23T09:58:00Z","annotations":{{"digests":"{noise}"}}}}}}"#,
        i + 1
    ))
}

fn artifact(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"artifact-{i}","source":"https://ci.example/shop","type":"io.provenant.artifact.v1","data":{{"artifact_digest":"sha256:{i:064x}","build_id":"github:acme/shop/{i}/1"}}}}"#
    ))
}

fn deploy(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"deploy-{i}","source":"https://cd.example","type":"io.provenant.deploy.v1","data":{{"deploy_id":"argocd:prod/shop/{i}","artifact_digest":"sha256:{i:064x}","environment":"prod","service":"shop","deploy_timestamp":"2026-11-23T10:05:00Z"}}}}"#
    ))
}

fn raw(e: &Event) -> Record {
    let (headers, value) = binary_mode::encode(e);
    let mut r = Record::new(e.partition_key(), value);
    for (n, v) in headers {
        r = r.with_header(n, v);
    }
    r
}

async fn append(dir: &std::path::Path, events: Vec<Event>) {
    let log = EmbeddedLog::open(dir.join("log"), config()).unwrap();
    append_by_key(&log, RAW_TOPIC, events.iter().map(raw).collect())
        .await
        .unwrap();
}

/// Every valid record of partition `p`: the archived ones, then the ledger's from the
/// archive's newest reader state on; and the ledger's start.
async fn partition_history<L: Log>(
    log: &L,
    store: &ArchiveStore,
    p: u32,
) -> (Vec<LedgerRecord>, u64) {
    let mut records = Vec::new();
    let state = provenant_archive::read::replay_partition(store, p, |r| {
        records.push(r);
        Ok(())
    })
    .await
    .unwrap()
    .unwrap_or(ReaderState::START);
    let start = log.watermarks(LEDGER_TOPIC, p).await.unwrap().start;
    records.extend(
        common::crash::read_partition_from(log, p, state)
            .await
            .records,
    );
    (records, start)
}

/// [`partition_history`] of every partition of the embedded log in `dir`.
async fn history(dir: &std::path::Path) -> (Vec<Vec<LedgerRecord>>, Vec<u64>) {
    let store = ArchiveStore::open(
        &dir.join("archive").display().to_string(),
        &S3Options::default(),
    )
    .unwrap();
    let log = EmbeddedLog::open(dir.join("log"), config()).unwrap();
    let (mut all, mut starts) = (Vec::new(), Vec::new());
    for p in 0..PARTITIONS {
        let (records, start) = partition_history(&log, &store, p).await;
        all.push(records);
        starts.push(start);
    }
    (all, starts)
}

fn event_count(h: &[Vec<LedgerRecord>]) -> usize {
    h.iter()
        .flatten()
        .filter(|r| matches!(r.body, RecordBody::Event(_)))
        .count()
}

/// Runs `up` (stopping it cleanly every few seconds to look) until `done` holds for the
/// history, or 180 s pass.
async fn run_until(
    dir: &std::path::Path,
    port: u16,
    cfg: &str,
    done: impl Fn(&[Vec<LedgerRecord>]) -> bool,
) -> Vec<Vec<LedgerRecord>> {
    let started = Instant::now();
    loop {
        let up = Up::start(dir, port, &["--config", cfg]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        up.stop();
        let (h, _) = history(dir).await;
        if done(&h) || started.elapsed() > Duration::from_secs(180) {
            return h;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_deletes_archived_ledger_and_the_processor_resumes_from_the_archive() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let cfg = dir.join("up.toml");
    std::fs::write(&cfg, "[log]\nsegment_bytes = 16384\nretention = \"0s\"\n").unwrap();
    let cfg = cfg.display().to_string();
    let port = free_port();

    let mut first: Vec<Event> = (0..600).map(build).collect();
    first.extend((0..600).map(artifact));
    append(dir, first).await;
    // Until the ledger holds all 1200 events and the archive and the index hold the ledger.
    let index_url = dir.join("index.db").display().to_string();
    let started = Instant::now();
    loop {
        let h = run_until(dir, port, &cfg, |h| event_count(h) >= 1200).await;
        assert_eq!(event_count(&h), 1200);
        let index = provenant_index::open(&index_url).await.unwrap();
        let indexed = provenant_index::Index::stats(&index).await.unwrap().events;
        drop(index);
        let store = ArchiveStore::open(
            &dir.join("archive").display().to_string(),
            &S3Options::default(),
        )
        .unwrap();
        let states = provenant_archive::read::archived_states(&store)
            .await
            .unwrap();
        // Each partition's records (events and link resolutions) all archived.
        let archived = (0..PARTITIONS).all(|p| {
            states.get(&p).map(|s| s.head.next_seq)
                == Some(i64::try_from(h[p as usize].len()).unwrap())
        });
        if (indexed >= 1200 && archived) || started.elapsed() > Duration::from_secs(180) {
            assert_eq!(indexed, 1200);
            assert!(archived, "{states:?}");
            break;
        }
    }
    // The next start lets retention delete every sealed ledger segment both sinks hold.
    let up = Up::start(dir, port, &["--config", &cfg]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    up.stop();
    let (before, starts) = history(dir).await;
    for (p, start) in starts.iter().enumerate() {
        assert!(*start > 0, "partition {p}: retention deleted nothing");
    }
    // prov.raw too, below what the processor accounted for.
    {
        let log = EmbeddedLog::open(dir.join("log"), config()).unwrap();
        for p in 0..PARTITIONS {
            let wm = log.watermarks(RAW_TOPIC, p).await.unwrap();
            assert!(wm.start > 0, "raw partition {p}: retention deleted nothing");
        }
    }
    let heads: Vec<(i64, [u8; 32])> = before
        .iter()
        .map(|rs| {
            let last = rs.last().unwrap();
            (last.seq, last.hash)
        })
        .collect();

    // Deploys of archived artifacts, retries of archived builds, new builds.
    let mut more: Vec<Event> = (0..200).map(deploy).collect();
    more.extend((0..50).map(build));
    more.extend((600..700).map(build));
    append(dir, more).await;
    let after = run_until(dir, port, &cfg, |h| {
        let dups = h
            .iter()
            .flatten()
            .filter(|r| matches!(r.body, RecordBody::Duplicate(_)))
            .count();
        event_count(h) >= 1500 && dups >= 50
    })
    .await;

    // Every event once; the retries are duplicates of the archived originals; the chains
    // continue from where they were (no fork: the old records are the prefix).
    let mut t = Tally::default();
    for (p, rs) in after.iter().enumerate() {
        t.add_chain(&format!("partition {p}"), rs);
        let (seq, hash) = heads[p];
        assert_eq!(
            rs[usize::try_from(seq).unwrap()].hash,
            hash,
            "partition {p}"
        );
    }
    assert_eq!(t.ids.len(), 1500);
    assert!(t.ids.values().all(|n| *n == 1), "an event twice");
    assert_eq!(t.dups, 50);

    common::assert_up_archive_verifies(dir);
}

/// What a partition's chain holds after a resume from the archive, checked record by record.
#[derive(Default)]
struct Tally {
    /// Event id → how many event records carry it.
    ids: HashMap<String, usize>,
    deploys: usize,
    dups: usize,
}

impl Tally {
    /// Checks that `records` is one chain from seq 0 (no gap, no fork), that every deploy's
    /// link to its (archived) artifact is resolved and that every duplicate is a build retry;
    /// counts event ids, deploys and duplicates.
    fn add_chain(&mut self, label: &str, records: &[LedgerRecord]) {
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.seq, i as i64, "{label}: seq gap or fork");
            if i > 0 {
                assert_eq!(
                    r.prev_hash,
                    records[i - 1].hash,
                    "{label}: chain broken at {i}"
                );
            }
            match &r.body {
                RecordBody::Event(e) => {
                    *self.ids.entry(e.event.id.clone()).or_default() += 1;
                    if e.event.id.starts_with("deploy-") {
                        self.deploys += 1;
                        assert!(
                            e.links.iter().any(|l| l.status == LinkStatus::Resolved),
                            "{}: link to the archived artifact not resolved: {:?}",
                            e.event.id,
                            e.links
                        );
                    }
                }
                RecordBody::Duplicate(d) => {
                    assert!(d.id.starts_with("build-"), "{d:?}");
                    self.dups += 1;
                }
                _ => {}
            }
        }
    }
}

/// Waits until the archive accounts for every raw record appended so far (the processor and
/// the archive sink both caught up; segments close after 1 s).
async fn archived_up_to_raw_end(log: &provenant_kafka::KafkaLog, store: &ArchiveStore) {
    let end = log.watermarks(RAW_TOPIC, 0).await.unwrap().end;
    let started = Instant::now();
    loop {
        let states = provenant_archive::read::archived_states(store)
            .await
            .unwrap();
        let at = states.get(&0).and_then(|s| s.raw_offset);
        if at == Some(i64::try_from(end).unwrap() - 1) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the archive reached raw offset {at:?}, the raw end is {end}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_dev_kafka_a_new_processor_resumes_from_the_archive_once_the_ledger_head_is_gone() {
    let broker = Broker::start(&["--partitions", "1"]);
    let log = broker.log();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let archive = dir.join("archive");
    let kafka = "[kafka]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 2000\n";
    let sink_cfg = dir.join("sink-archive.toml");
    std::fs::write(
        &sink_cfg,
        format!(
            "{kafka}[archive]\nurl = \"{}\"\narchive_id = \"kafka\"\nkey_dir = \"{}\"\nspool_dir = \"{}\"\nrotate_records = 500\nrotate_age = \"1s\"\n",
            archive.display(),
            dir.join("keys").display(),
            dir.join("spool").display()
        ),
    )
    .unwrap();
    let process_cfg = dir.join("process.toml");
    std::fs::write(
        &process_cfg,
        format!("{kafka}[archive]\nurl = \"{}\"\n", archive.display()),
    )
    .unwrap();
    let role = |name: &str, args: &[&str], cfg: &std::path::Path| {
        let cfg = cfg.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--brokers",
            &broker.bootstrap,
            "--http",
            "127.0.0.1:0",
            "--config",
            &cfg,
        ]);
        Role::start(name, &all)
    };
    let mut sink = role("sink archive", &["sink", "archive"], &sink_cfg);
    let mut process = role("process", &["process"], &process_cfg);
    let store = ArchiveStore::open(&archive.display().to_string(), &S3Options::default()).unwrap();

    // Builds and artifacts in chunks, each processed and archived before the next, until the
    // broker has dropped the ledger's beginning.
    let mut next = 0u64;
    let start = loop {
        let chunk: Vec<Event> = (next..next + 500)
            .flat_map(|i| [noisy_build(i), artifact(i)])
            .collect();
        next += 500;
        append_by_key(&log, RAW_TOPIC, chunk.iter().map(raw).collect())
            .await
            .unwrap();
        archived_up_to_raw_end(&log, &store).await;
        let start = log.watermarks(LEDGER_TOPIC, 0).await.unwrap().start;
        if start > 0 {
            break start;
        }
        assert!(
            next < 20_000,
            "dev-kafka never dropped the ledger's beginning"
        );
    };
    sink.assert_running();
    process.assert_running();

    // A new processor must take over: the old one is killed.
    common::crash::kill9(&mut process.child);
    let mut process = role("process (after kill -9)", &["process"], &process_cfg);
    // Deploys of the first artifacts (their records are only in the archive now), and
    // retries of the first builds.
    let mut more: Vec<Event> = (0..100).map(deploy).collect();
    more.extend((0..50).map(noisy_build));
    append_by_key(&log, RAW_TOPIC, more.iter().map(raw).collect())
        .await
        .unwrap();
    archived_up_to_raw_end(&log, &store).await;
    process.assert_running();
    sink.assert_running();

    let (records, ledger_start) = partition_history(&log, &store, 0).await;
    assert!(ledger_start >= start && start > 0);
    let mut t = Tally::default();
    t.add_chain("partition 0", &records);
    assert_eq!(t.deploys, 100);
    assert_eq!(
        t.dups, 50,
        "every retry of an archived build is a duplicate"
    );
    assert_eq!(t.ids.len() as u64, 2 * next + 100);
    assert!(t.ids.values().all(|n| *n == 1), "an event twice");
    process.stop(Duration::from_secs(30));
    sink.stop(Duration::from_secs(30));
}
