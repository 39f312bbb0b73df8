#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The processor over the real embedded log: accounting, DLQ, duplicates, restarts, links
//! that arrive out of order, and writers fighting over the same partitions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{DLQ_TOPIC, LEDGER_TOPIC, Log, LogReader, RAW_TOPIC, Record, append_by_key};
use provenant_processor::audit::{Audit, audit};
use provenant_processor::{
    History, HistoryError, Processor, ProcessorConfig, ProcessorError, Redact, ReplayFuture,
};
use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{
    DuplicateMarker, Fence, LedgerEntry, LedgerRecord, LinkStatus, RecordBody, Redaction,
    RedactionAction,
};
use provenant_schemas::validity::{ReaderState, Validator, Verdict};
use provenant_schemas::{Event, Limits, binary_mode};
use tokio::sync::oneshot;

/// Masks any string containing `SECRET` (the real policy engine is tested in its own crate;
/// here only the processor's use of the stage matters).
struct MaskSecrets;

fn mask(path: &str, s: &mut String, out: &mut Vec<Redaction>) {
    if s.contains("SECRET") {
        *s = "[REDACTED]".into();
        out.push(Redaction {
            path: path.into(),
            detector: "test_secret".into(),
            action: RedactionAction::Mask,
        });
    }
}

impl Redact for MaskSecrets {
    fn redact_event(&self, event: &mut Event) -> Vec<Redaction> {
        let mut out = Vec::new();
        if let provenant_schemas::EventData::Build(b) = &mut event.data {
            for (k, v) in &mut b.annotations {
                mask(&format!("data.annotations.{k}"), v, &mut out);
            }
        }
        out
    }
    fn redact_json(&self, value: &mut serde_json::Value) -> Vec<Redaction> {
        let mut out = Vec::new();
        walk("", value, &mut out);
        out
    }
}

fn walk(path: &str, v: &mut serde_json::Value, out: &mut Vec<Redaction>) {
    match v {
        serde_json::Value::String(s) => {
            let mut owned = std::mem::take(s);
            mask(path, &mut owned, out);
            *s = owned;
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                walk(&format!("{path}[{i}]"), x, out);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                walk(&format!("{path}.{k}"), x, out);
            }
        }
        _ => {}
    }
}

fn ev(json: &str) -> Event {
    Event::from_json(json.as_bytes(), &Limits::DEFAULT).unwrap()
}

fn digest(i: u64) -> String {
    format!("sha256:{i:064x}")
}

fn build(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"build-{i}","source":"https://ci.example/shop","type":"io.provenant.build.v1","data":{{"commit_sha":"{:040x}","build_id":"github:acme/shop/{i}/1","build_timestamp":"2026-11-23T09:58:00Z","annotations":{{"log":"token=SECRET-{i}"}}}}}}"#,
        i + 1
    ))
}

fn artifact(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"artifact-{i}","source":"https://ci.example/shop","type":"io.provenant.artifact.v1","data":{{"artifact_digest":"{}","build_id":"github:acme/shop/{i}/1"}}}}"#,
        digest(i)
    ))
}

fn deploy(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"deploy-{i}","source":"https://cd.example","type":"io.provenant.deploy.v1","data":{{"deploy_id":"argocd:prod/shop/{i}","artifact_digest":"{}","environment":"prod","service":"shop","deploy_timestamp":"2026-11-23T10:05:00Z"}}}}"#,
        digest(i)
    ))
}

fn runtime(i: u64) -> Event {
    ev(&format!(
        r#"{{"specversion":"1.0","id":"runtime-{i}","source":"https://k8s.example","type":"io.provenant.runtime.v1","data":{{"instance_id":"pod-{i}","service":"shop","environment":"prod","deploy_id":"argocd:prod/shop/{i}","artifact_digest":"{}"}}}}"#,
        digest(i)
    ))
}

fn raw(event: &Event) -> Record {
    let (headers, value) = binary_mode::encode(event);
    let mut r = Record::new(event.partition_key(), value);
    for (name, v) in headers {
        r = r.with_header(name, v);
    }
    r
}

fn bad(i: u64) -> Record {
    Record::new(
        format!("bad-{i}"),
        format!("{{\"not\": \"an event SECRET-{i}\""),
    )
    .with_header("content-type", "application/cloudevents+json")
}

async fn open(dir: &std::path::Path) -> Arc<EmbeddedLog> {
    Arc::new(
        EmbeddedLog::open(
            dir,
            EmbeddedConfig {
                partitions: 4,
                ..EmbeddedConfig::default()
            },
        )
        .unwrap(),
    )
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    registry: prometheus::Registry,
}

async fn start(log: &Arc<EmbeddedLog>, group: &str) -> Running {
    start_with(log, group, ProcessorConfig::default()).await
}

/// `cfg` with the tests' group, short polls and small batches.
async fn start_with(log: &Arc<EmbeddedLog>, group: &str, cfg: ProcessorConfig) -> Running {
    let registry = prometheus::Registry::new();
    let cfg = ProcessorConfig {
        group: group.into(),
        batch_max: 200,
        poll_ms: 20,
        recheck_ms: 20,
        ..cfg
    };
    let p = Processor::new(log.clone(), cfg, Arc::new(MaskSecrets), &registry)
        .await
        .unwrap();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        p.run(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        stop,
        task,
        registry,
    }
}

impl Running {
    /// Stops the processor; returns its registry.
    async fn stop_keeping_metrics(self) -> prometheus::Registry {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("processor stops within 30 s")
            .unwrap();
        self.registry
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("processor stops within 30 s")
            .unwrap();
    }

    fn metric(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
            .sum()
    }
}

/// Waits until every raw offset is accounted for and no link is pending (or 60 s).
async fn settled(log: &Arc<EmbeddedLog>, want_pending_zero: bool) -> Audit {
    let started = Instant::now();
    loop {
        let a = audit(log.as_ref()).await.unwrap();
        let done = a.partitions.iter().all(|p| p.missing_count == 0)
            && (!want_pending_zero || a.pending_links() == 0);
        if done || started.elapsed() > Duration::from_secs(60) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_all(log: &EmbeddedLog, topic: &str) -> Vec<(u32, provenant_log::StoredRecord)> {
    let mut out = Vec::new();
    for p in 0..log.partition_count(topic).await.unwrap() {
        let wm = log.watermarks(topic, p).await.unwrap();
        let mut r = log.reader(topic, p, wm.start).await.unwrap();
        while r.position() < wm.end {
            for s in r
                .next_batch(1000, Duration::from_millis(200))
                .await
                .unwrap()
            {
                out.push((p, s));
            }
        }
    }
    out
}

async fn valid_records(log: &EmbeddedLog, p: u32) -> Vec<LedgerRecord> {
    valid_records_after(log, p, ReaderState::START).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_raw_offset_is_accounted_for_once_with_dlq_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let mut records = Vec::new();
    for i in 0..1_000 {
        records.push(raw(&build(i)));
        if i % 20 == 0 {
            records.push(raw(&build(i))); // a producer retry
            records.push(bad(i));
        }
    }
    append_by_key(log.as_ref(), RAW_TOPIC, records)
        .await
        .unwrap();
    let running = start(&log, "g").await;
    let a = settled(&log, false).await;
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events, 1_000);
    let by = |body: &str| -> u64 {
        a.partitions
            .iter()
            .map(|p| p.by_body.get(body).copied().unwrap_or(0))
            .sum()
    };
    assert_eq!(by("duplicate"), 50);
    assert_eq!(by("rejected"), 50);
    assert_eq!(running.metric("provenant_processor_duplicates_total"), 50.0);
    assert_eq!(running.metric("provenant_processor_dlq_total"), 50.0);
    assert_eq!(
        running.metric("provenant_processor_redactions_total"),
        1_000.0
    );
    running.stop().await;

    // The DLQ holds each rejected record once, with its reason and source position, and no
    // planted secret; nothing unredacted reached the ledger either.
    let dlq = read_all(&log, DLQ_TOPIC).await;
    assert_eq!(dlq.len(), 50);
    for (_, s) in &dlq {
        let h = |n: &str| String::from_utf8(s.record.header(n).unwrap().to_vec()).unwrap();
        assert_eq!(h("provenant.dlq.reason"), "malformed_json");
        assert_eq!(h("provenant.dlq.source.topic"), RAW_TOPIC);
        h("provenant.dlq.source.offset").parse::<u64>().unwrap();
        assert!(!String::from_utf8_lossy(&s.record.value).contains("SECRET"));
    }
    for (_, s) in read_all(&log, LEDGER_TOPIC).await {
        assert!(
            !s.record.value.windows(6).any(|w| w == b"SECRET"),
            "a planted secret reached the ledger"
        );
    }
    // Markers point at the DLQ record that holds their reason.
    for p in 0..4 {
        for r in valid_records(&log, p).await {
            if let RecordBody::Rejected(m) = &r.body {
                let (_, s) = dlq
                    .iter()
                    .find(|(dp, s)| {
                        *dp as i32 == m.dlq_partition && s.offset as i64 == m.dlq_offset
                    })
                    .expect("the marker's DLQ record exists");
                assert_eq!(
                    s.record
                        .header("provenant.dlq.source.offset")
                        .unwrap()
                        .as_ref(),
                    r.raw_offset.to_string().as_bytes()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_the_chains_without_doubling_anything() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let first: Vec<Record> = (0..500).map(|i| raw(&build(i))).collect();
    append_by_key(log.as_ref(), RAW_TOPIC, first).await.unwrap();
    let running = start(&log, "g").await;
    settled(&log, false).await;
    running.stop().await;
    let heads: Vec<usize> = {
        let mut v = Vec::new();
        for p in 0..4 {
            v.push(valid_records(&log, p).await.len());
        }
        v
    };
    // More events, including retries of ones already in the ledger.
    let mut more: Vec<Record> = (500..800).map(|i| raw(&build(i))).collect();
    more.extend((0..100).map(|i| raw(&build(i))));
    append_by_key(log.as_ref(), RAW_TOPIC, more).await.unwrap();
    let running = start(&log, "g").await;
    let a = settled(&log, false).await;
    assert!(running.metric("provenant_processor_chain_head_seq") > 0.0);
    let registry = running.stop_keeping_metrics().await;
    // Partitions given up leave no per-partition series behind (their next owner reports them).
    for f in registry.gather() {
        let per_partition = f
            .get_metric()
            .iter()
            .any(|m| m.get_label().iter().any(|l| l.name() == "partition"));
        assert!(!per_partition, "{} still has partition series", f.name());
    }
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events, 800);
    for (p, pa) in a.partitions.iter().enumerate() {
        assert_eq!(pa.fences, 2, "one counted fence per takeover");
        // The chain grew from where it was: the old records are still its prefix.
        assert!(pa.chain_len as usize > heads[p]);
        assert_eq!(pa.ignored.values().sum::<u64>(), 0);
    }
}

/// The tailer of a partition this process writes reads its own records by their head
/// (crate `own`): of the records one processor writes, the tailers decode the fences and at
/// most a few records the worker had not learned in time, not the records themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tailers_read_this_processors_own_records_by_their_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let events: Vec<Record> = (0..2000).map(|i| raw(&build(i))).collect();
    append_by_key(log.as_ref(), RAW_TOPIC, events)
        .await
        .unwrap();
    let running = start(&log, "g").await;
    let a = settled(&log, false).await;
    assert!(a.exactly_once(), "{a:#?}");
    let entries: u64 = a.partitions.iter().map(|p| p.chain_len + p.fences).sum();
    // The tailers trail the workers: wait until they have read every entry.
    let read = |running: &Running, how: &str| {
        running
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "provenant_processor_tailer_entries_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == how))
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    let started = Instant::now();
    while read(&running, "head") + read(&running, "full") < entries as f64
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (head, full) = (read(&running, "head"), read(&running, "full"));
    running.stop().await;
    assert!(
        head >= 2000.0 * 0.9,
        "records read by their head: {head} of 2000"
    );
    let fences: u64 = a.partitions.iter().map(|p| p.fences).sum();
    assert!(
        full >= fences as f64 && full < 2000.0 * 0.1 + fences as f64,
        "entries decoded in full: {full} (fences {fences})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_that_arrive_out_of_order_all_end_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let running = start(&log, "g").await;
    // runtime before deploy before artifact before build, each in its own batch.
    for e in [runtime(7), deploy(7), artifact(7), build(7)] {
        append_by_key(log.as_ref(), RAW_TOPIC, vec![raw(&e)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = settled(&log, true).await;
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.pending_links(), 0, "{a:#?}");
    assert!(running.metric("provenant_processor_pending_links") == 0.0);
    running.stop().await;

    // Each resolution carries the hash of the record that introduced its target.
    let mut all = Vec::new();
    for p in 0..4 {
        all.extend(valid_records(&log, p).await.into_iter().map(|r| (p, r)));
    }
    let intro = |key: &str| {
        all.iter()
            .find(|(_, r)| match &r.body {
                RecordBody::Event(er) => er.event.subject_key().to_string() == key,
                _ => false,
            })
            .map(|(p, r)| (*p, r.seq, r.hash))
            .unwrap()
    };
    let mut resolved = 0;
    for (_, r) in &all {
        match &r.body {
            RecordBody::LinkResolution(lr) => {
                let (p, seq, hash) = intro(&lr.target);
                assert_eq!(
                    (lr.target_partition as u32, lr.target_seq, lr.target_hash),
                    (p, seq, hash)
                );
                resolved += 1;
            }
            RecordBody::Event(er) => {
                for l in er.links.iter().filter(|l| l.status == LinkStatus::Resolved) {
                    let (p, seq, hash) = intro(&l.target);
                    assert_eq!(
                        (l.target_partition.unwrap() as u32, l.target_seq.unwrap()),
                        (p, seq)
                    );
                    assert_eq!(l.target_hash.unwrap(), hash);
                    resolved += 1;
                }
            }
            _ => {}
        }
    }
    // runtime → deploy, runtime → artifact, deploy → artifact, artifact → build.
    assert_eq!(resolved, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_listing_one_input_twice_gets_both_links_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let running = start(&log, "g").await;
    let run = |id: &str, job: &str, run_id: &str, inputs: &str, outputs: &str| {
        ev(&format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"https://etl.example","type":"io.provenant.data.v1","data":{{"job":{{"namespace":"etl","name":"{job}"}},"run_id":"{run_id}","event_type":"COMPLETE","inputs":[{inputs}],"outputs":[{outputs}]}}}}"#
        ))
    };
    let orders = r#"{"namespace":"pg://db","name":"orders"}"#;
    let reader = run(
        "data-1",
        "report",
        "01973a9c-2f40-7b1e-9c55-3d2e8f6a1b70",
        &format!("{orders},{orders}"),
        "",
    );
    append_by_key(log.as_ref(), RAW_TOPIC, vec![raw(&reader)])
        .await
        .unwrap();
    settled(&log, false).await;
    let writer = run(
        "data-2",
        "load",
        "01973a9c-2f40-7b1e-9c55-3d2e8f6a1b71",
        "",
        orders,
    );
    append_by_key(log.as_ref(), RAW_TOPIC, vec![raw(&writer)])
        .await
        .unwrap();
    let a = settled(&log, true).await;
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.pending_links(), 0, "{a:#?}");
    assert_eq!(running.metric("provenant_processor_pending_links"), 0.0);
    running.stop().await;
    // The reader's two links wait (the writer's own link to what it writes is pending at
    // write too); every pending link gets its own resolution.
    let (mut pending_at_write, mut resolutions, mut readers) = (0, 0, 0);
    for p in 0..4 {
        for r in valid_records(&log, p).await {
            match &r.body {
                RecordBody::Event(er) => {
                    let pending = er
                        .links
                        .iter()
                        .filter(|l| l.status == LinkStatus::Pending)
                        .count();
                    if er.event.id == "data-1" {
                        assert_eq!(pending, 2);
                        readers += 1;
                    }
                    pending_at_write += pending;
                }
                RecordBody::LinkResolution(lr) => {
                    assert_eq!(lr.target, "dataset:pg://db/orders");
                    resolutions += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(readers, 1);
    assert_eq!(resolutions, pending_at_write);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_links_over_the_cap_stay_pending_and_a_takeover_rebuilds_the_same_set() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let cfg = ProcessorConfig {
        max_pending_links: 2,
        ..ProcessorConfig::default()
    };
    let running = start_with(&log, "g", cfg.clone()).await;
    // 12 runtime events, each with two links (deploy, artifact) that cannot resolve yet: 24
    // pending links over 4 partitions (more once artifacts meet builds not yet learned), at
    // most 2 kept per partition.
    let runtimes: Vec<Record> = (0..12).map(|i| raw(&runtime(i))).collect();
    append_by_key(log.as_ref(), RAW_TOPIC, runtimes)
        .await
        .unwrap();
    settled(&log, false).await;
    // Now every target arrives (artifacts before deploys, so those links resolve at write).
    let mut targets: Vec<Record> = (0..12).map(|i| raw(&build(i))).collect();
    targets.extend((0..12).map(|i| raw(&artifact(i))));
    append_by_key(log.as_ref(), RAW_TOPIC, targets)
        .await
        .unwrap();
    settled(&log, false).await;
    let deploys: Vec<Record> = (0..12).map(|i| raw(&deploy(i))).collect();
    append_by_key(log.as_ref(), RAW_TOPIC, deploys)
        .await
        .unwrap();
    // The kept links get link records; the dropped ones stay pending in the ledger.
    let started = Instant::now();
    let (untracked, a) = loop {
        let a = settled(&log, false).await;
        let untracked = running.metric("provenant_processor_untracked_links");
        if (a.pending_links() as f64 == untracked && untracked > 0.0)
            || started.elapsed() > Duration::from_secs(60)
        {
            break (untracked, a);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(a.exactly_once(), "{a:#?}");
    assert!(untracked > 0.0);
    assert_eq!(a.pending_links() as f64, untracked, "{a:#?}");
    assert_eq!(
        running.metric("provenant_processor_pending_links"),
        untracked
    );
    // Every link written pending was either resolved by a link record or dropped.
    let (mut written_pending, mut before) = (0, 0);
    for p in 0..4 {
        for r in valid_records(&log, p).await {
            match &r.body {
                RecordBody::Event(er) => {
                    written_pending += er
                        .links
                        .iter()
                        .filter(|l| l.status == LinkStatus::Pending)
                        .count();
                }
                RecordBody::LinkResolution(_) => before += 1,
                _ => {}
            }
        }
    }
    assert!(written_pending >= 24);
    assert_eq!((written_pending - before) as f64, untracked);
    running.stop().await;

    // A takeover replays the ledger with the same cap: the same links are dropped, so none
    // of them is resolved now although every target is known.
    let running = start_with(&log, "g", cfg).await;
    let started = Instant::now();
    while running.metric("provenant_processor_untracked_links") != untracked
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        running.metric("provenant_processor_untracked_links"),
        untracked
    );
    assert_eq!(
        running.metric("provenant_processor_pending_links"),
        untracked
    );
    running.stop().await;
    let mut after = 0;
    for p in 0..4 {
        after += valid_records(&log, p)
            .await
            .iter()
            .filter(|r| matches!(r.body, RecordBody::LinkResolution(_)))
            .count();
    }
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_fence_stops_the_old_writer_and_its_late_writes_count_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    let running = start(&log, "g").await;
    let first: Vec<Record> = (0..200).map(|i| raw(&build(i))).collect();
    append_by_key(log.as_ref(), RAW_TOPIC, first).await.unwrap();
    settled(&log, false).await;

    // Another writer takes partition 0 over (epoch far above), and a paused writer of an
    // old epoch appends a record that would extend the head it knew.
    let before = valid_records(&log, 0).await;
    let head = ChainHead::after(before.last().unwrap());
    let fence = LedgerEntry::Fence(Fence {
        writer_epoch: 1_000,
        writer_id: [7; 16],
    });
    let late = chain_next(
        &head,
        0,
        before.last().unwrap().writer_epoch,
        RecordBody::Duplicate(DuplicateMarker {
            original_partition: 0,
            original_seq: 0,
            source: "zombie".into(),
            id: "late".into(),
        }),
    )
    .unwrap();
    log.append(
        LEDGER_TOPIC,
        0,
        vec![
            Record {
                key: None,
                headers: vec![],
                value: fence.to_avro().into(),
            },
            Record {
                key: None,
                headers: vec![],
                value: LedgerEntry::Record(late).to_avro().into(),
            },
        ],
    )
    .await
    .unwrap();

    // The running writer meets the fence on its next append, stops, takes over again above it.
    let more: Vec<Record> = (200..400).map(|i| raw(&build(i))).collect();
    append_by_key(log.as_ref(), RAW_TOPIC, more).await.unwrap();
    let a = settled(&log, false).await;
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events, 400);
    assert!(running.metric("provenant_processor_fenced_out_total") >= 1.0);
    assert!(running.metric("provenant_processor_ignored_ledger_entries_total") >= 1.0);
    running.stop().await;
    let p0 = &a.partitions[0];
    // The zombie's record, and the old writer's batch that landed after the intruder's fence
    // (it finds the fence in the gap before its offsets, stops, and writes it again).
    assert!(
        p0.ignored.get("stale_epoch").copied().unwrap_or(0) >= 1,
        "{p0:#?}"
    );
    assert!(
        p0.fences >= 3,
        "first owner, the intruder, the owner again: {p0:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_the_same_partitions_never_fork_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path()).await;
    // Two processors in different groups both own every partition of the embedded log: the
    // worst case of a rebalance gone wrong. They fence each other out over and over.
    let a = start(&log, "a").await;
    let b = start(&log, "b").await;
    for chunk in 0..10u64 {
        let batch: Vec<Record> = (chunk * 100..(chunk + 1) * 100)
            .map(|i| raw(&build(i)))
            .collect();
        append_by_key(log.as_ref(), RAW_TOPIC, batch).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let audit_live = settled(&log, false).await;
    a.stop().await;
    b.stop().await;
    assert!(audit_live.exactly_once(), "{audit_live:#?}");
    assert_eq!(audit_live.events, 1_000);
    // After both stop, one writer takes over cleanly from whatever they left.
    let c = start(&log, "c").await;
    append_by_key(
        log.as_ref(),
        RAW_TOPIC,
        (1_000..1_100).map(|i| raw(&build(i))).collect(),
    )
    .await
    .unwrap();
    let final_audit = settled(&log, false).await;
    c.stop().await;
    assert!(final_audit.exactly_once(), "{final_audit:#?}");
    assert_eq!(final_audit.events, 1_100);
}

/// The archive as a [`History`], as the CLI wires it.
struct ArchiveHistory(provenant_archive::ArchiveStore);

impl History for ArchiveHistory {
    fn replay<'a>(
        &'a self,
        partition: u32,
        each: &'a mut (dyn FnMut(LedgerRecord) -> Result<(), String> + Send),
    ) -> ReplayFuture<'a> {
        Box::pin(async move {
            provenant_archive::read::replay_partition(&self.0, partition, each)
                .await
                .map_err(|e| HistoryError {
                    message: e.to_string(),
                    retryable: false,
                })
        })
    }
}

/// Archives every valid entry of the ledger with the real archive sink, as `provenant sink
/// archive` does, and returns the archived reader state per partition.
async fn archive_ledger(
    log: &EmbeddedLog,
    store: &provenant_archive::ArchiveStore,
) -> Vec<ReaderState> {
    let cfg = provenant_archive::ArchiveConfig {
        rotate_records: 40,
        ..provenant_archive::ArchiveConfig::default()
    };
    let key = provenant_archive::conformance::test_key();
    let mut sink = provenant_archive::ArchiveSink::with_store(&cfg, store.clone(), key).unwrap();
    for p in 0..4 {
        assert!(sink.resume(p).await.unwrap().is_none());
        let wm = log.watermarks(LEDGER_TOPIC, p).await.unwrap();
        let mut r = log.reader(LEDGER_TOPIC, p, 0).await.unwrap();
        let mut v = Validator::new(ReaderState::START);
        let mut entries = Vec::new();
        while r.position() < wm.end {
            for s in r
                .next_batch(1000, Duration::from_millis(200))
                .await
                .unwrap()
            {
                let (verdict, entry) = v.observe_bytes(s.offset, &s.record.value);
                if matches!(verdict, Verdict::Valid | Verdict::CountedFence { .. }) {
                    entries.push((s.offset, entry.unwrap()));
                }
            }
        }
        sink.write(p, &entries, v.state()).await.unwrap();
    }
    sink.close().await.unwrap();
    let mut again = provenant_archive::ArchiveSink::with_store(
        &cfg,
        store.clone(),
        provenant_archive::conformance::test_key(),
    )
    .unwrap();
    let mut states = Vec::new();
    for p in 0..4 {
        states.push(again.resume(p).await.unwrap().unwrap());
    }
    states
}

/// Valid records of partition `p` from the archived state `from` on (the ledger's beginning
/// is gone).
async fn valid_records_after(log: &EmbeddedLog, p: u32, from: ReaderState) -> Vec<LedgerRecord> {
    let wm = log.watermarks(LEDGER_TOPIC, p).await.unwrap();
    let mut r = log
        .reader(LEDGER_TOPIC, p, from.ledger_offset)
        .await
        .unwrap();
    let mut v = Validator::new(from);
    let mut out = Vec::new();
    while r.position() < wm.end {
        for s in r
            .next_batch(1000, Duration::from_millis(200))
            .await
            .unwrap()
        {
            if let (Verdict::Valid, Some(LedgerEntry::Record(rec))) =
                v.observe_bytes(s.offset, &s.record.value)
            {
                out.push(rec);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_retention_a_takeover_resumes_from_the_archive_with_dedup_and_links_intact() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments and no time-based retention: whatever is archived can be deleted.
    let config = EmbeddedConfig {
        partitions: 4,
        segment_bytes: 8 * 1024,
        retention: Duration::ZERO,
        ..EmbeddedConfig::default()
    };
    let log = Arc::new(EmbeddedLog::open(dir.path(), config).unwrap());
    let mut first: Vec<Record> = (0..200).map(|i| raw(&build(i))).collect();
    first.extend((0..200).map(|i| raw(&artifact(i))));
    append_by_key(log.as_ref(), RAW_TOPIC, first).await.unwrap();
    let running = start(&log, "g").await;
    let a = settled(&log, true).await;
    running.stop().await;
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events, 400);

    // Archive the ledger, then let retention delete what the archive holds.
    let store = provenant_archive::ArchiveStore::open(
        &dir.path().join("archive").display().to_string(),
        &provenant_archive::S3Options::default(),
    )
    .unwrap();
    let archived = archive_ledger(&log, &store).await;
    for (p, state) in archived.iter().enumerate() {
        let p = p as u32;
        let marks = log
            .mark_archived(LEDGER_TOPIC, p, state.ledger_offset)
            .await
            .unwrap();
        assert!(
            marks.start > 0,
            "partition {p}: retention deleted nothing: {marks:?}"
        );
    }

    // New events: deploys of the archived artifacts, producer retries of archived builds,
    // and new builds.
    let mut more: Vec<Record> = (0..200).map(|i| raw(&deploy(i))).collect();
    more.extend((0..50).map(|i| raw(&build(i))));
    more.extend((200..300).map(|i| raw(&build(i))));
    append_by_key(log.as_ref(), RAW_TOPIC, more).await.unwrap();

    // Without the archive the processor refuses to guess the chain head.
    let registry = prometheus::Registry::new();
    let p = Processor::new(
        log.clone(),
        ProcessorConfig::default(),
        Arc::new(MaskSecrets),
        &registry,
    )
    .await
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), p.run(std::future::pending()))
        .await
        .expect("the processor stops")
        .unwrap_err();
    assert!(
        matches!(err, ProcessorError::LedgerTruncated { .. }),
        "{err}"
    );

    // With the archive it resumes where the archive ends.
    let registry = prometheus::Registry::new();
    let cfg = ProcessorConfig {
        group: "g".into(),
        batch_max: 200,
        poll_ms: 20,
        recheck_ms: 20,
        ..ProcessorConfig::default()
    };
    let p = Processor::new(log.clone(), cfg, Arc::new(MaskSecrets), &registry)
        .await
        .unwrap()
        .with_history(Arc::new(ArchiveHistory(store.clone())));
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(p.run(async {
        let _ = rx.await;
    }));
    let started = Instant::now();
    let tails = loop {
        let mut tails = Vec::new();
        for p in 0..4u32 {
            tails.push(valid_records_after(&log, p, archived[p as usize]).await);
        }
        let n: usize = tails.iter().map(Vec::len).sum();
        let resolved_all = tails.iter().flatten().all(|r| match &r.body {
            RecordBody::Event(e) => e.links.iter().all(|l| l.status == LinkStatus::Resolved),
            _ => true,
        });
        if (n >= 350 && resolved_all) || started.elapsed() > Duration::from_secs(60) {
            break tails;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("processor stops within 30 s")
        .unwrap()
        .unwrap();

    let (mut events, mut dups, mut deploys_linked) = (0, 0, 0);
    for (p, tail) in tails.iter().enumerate() {
        let from = archived[p];
        // The chain continues from the archived head: no fork, no gap.
        if let Some(first) = tail.first() {
            assert_eq!(first.seq, from.head.next_seq, "partition {p}");
            assert_eq!(first.prev_hash, from.head.head_hash, "partition {p}");
        }
        for r in tail {
            match &r.body {
                RecordBody::Event(e) => {
                    events += 1;
                    if e.event.id.starts_with("deploy-") {
                        assert!(
                            e.links.iter().any(|l| l.status == LinkStatus::Resolved),
                            "{} has no resolved link: {:?}",
                            e.event.id,
                            e.links
                        );
                        deploys_linked += 1;
                    }
                }
                // Retries of builds that only the archive remembers.
                RecordBody::Duplicate(DuplicateMarker { original_seq, .. }) => {
                    assert!(*original_seq < from.head.next_seq);
                    dups += 1;
                }
                other => panic!("unexpected record {other:?}"),
            }
        }
    }
    assert_eq!(events, 300, "200 deploys and 100 new builds");
    assert_eq!(deploys_linked, 200);
    assert_eq!(dups, 50, "every retry of an archived build is a duplicate");
}
