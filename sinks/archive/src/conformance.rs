//! The archive conformance suite, run against every store: the local filesystem
//! (`tests/conformance_fs.rs`) and a real S3 server, SeaweedFS (`tests/conformance_s3.rs`).
//!
//! Each check takes a factory that opens a fresh, empty archive at a prefix of its choosing
//! (every check uses its own prefixes), drives [`ArchiveSink`] as the runner would, and returns
//! `Ok(())` or a message saying what differed. Nothing here panics. The checks use only what
//! both stores do: create-if-absent, get, list, delete (to simulate a crash's leftovers).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use provenant_schemas::ledger::LedgerEntry;

use crate::config::ArchiveConfig;
use crate::error::ArchiveError;
use crate::layout::{self, ObjectKind};
use crate::manifest::Manifest;
use crate::note::ArchiveKey;
use crate::read::for_each_record;
use crate::sink::ArchiveSink;
use crate::store::{ArchiveStore, Created};
use crate::testkit::LedgerGen;
use crate::verify::{VerifyOptions, verify};

/// Opens a fresh archive at the given prefix (a name unique to the check).
pub type StoreFactory = dyn Fn(&str) -> Result<ArchiveStore, ArchiveError> + Send + Sync;

type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
/// One check: runs on archives the factory opens.
pub type CheckFn = for<'a> fn(&'a StoreFactory) -> CheckFuture<'a>;

/// The checks, by name.
pub fn checks() -> Vec<(&'static str, CheckFn)> {
    vec![
        ("write_rotate_verify_dump", |f| {
            Box::pin(write_rotate_verify_dump(f))
        }),
        ("age_rotation_fires_without_new_data", |f| {
            Box::pin(age_rotation_fires_without_new_data(f))
        }),
        ("restart_resumes_after_newest_complete_segment", |f| {
            Box::pin(restart_resumes_after_newest_complete_segment(f))
        }),
        ("crash_leftovers_are_completed_never_rewritten", |f| {
            Box::pin(crash_leftovers_are_completed_never_rewritten(f))
        }),
        ("second_writer_loses_and_sink_reports_conflict", |f| {
            Box::pin(second_writer_loses_and_sink_reports_conflict(f))
        }),
        ("concurrent_creates_have_one_winner", |f| {
            Box::pin(concurrent_creates_have_one_winner(f))
        }),
        ("invalid_entries_are_refused", |f| {
            Box::pin(invalid_entries_are_refused(f))
        }),
    ]
}

/// Runs every check; returns the names of those that failed with their messages.
pub async fn run_all(factory: &StoreFactory) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for (name, check) in checks() {
        if let Err(e) = check(factory).await {
            failed.push((name.to_owned(), e));
        }
    }
    failed
}

/// The key every check signs with.
pub fn test_key() -> ArchiveKey {
    #[allow(clippy::expect_used)]
    ArchiveKey::new("provenant-test", SigningKey::from_bytes(&[42; 32])).expect("valid key name")
}

fn config(rotate_records: u64) -> ArchiveConfig {
    ArchiveConfig {
        archive_id: "conformance".into(),
        rotate_records,
        block_bytes: 2048,
        ..ArchiveConfig::default()
    }
}

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

async fn verify_ok(store: &ArchiveStore, records: u64) -> Result<(), String> {
    let report = verify(
        store,
        &VerifyOptions {
            pubkey: Some(test_key().verifier()),
            ..VerifyOptions::default()
        },
    )
    .await
    .map_err(e2s)?;
    ensure(report.ok && report.warnings.is_empty(), || {
        format!(
            "verify failed: {:?} warnings {:?}",
            report
                .failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            report
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        )
    })?;
    ensure(report.records == records, || {
        format!(
            "verify counted {} records, expected {records}",
            report.records
        )
    })
}

async fn snapshot(store: &ArchiveStore) -> Result<BTreeMap<String, Bytes>, String> {
    let mut out = BTreeMap::new();
    for (k, _) in store.list("").await.map_err(e2s)? {
        let b = store.get(&k).await.map_err(e2s)?;
        out.insert(k, b);
    }
    Ok(out)
}

async fn unchanged(store: &ArchiveStore, before: &BTreeMap<String, Bytes>) -> Result<(), String> {
    let after = snapshot(store).await?;
    for (k, b) in before {
        ensure(after.get(k) == Some(b), || {
            format!("{k} was changed or removed")
        })?;
    }
    Ok(())
}

/// Records and fences on two partitions, rotation by count, several blocks per segment; then
/// verify, dump every record back, and a new sink resumes exactly after the last one.
pub async fn write_rotate_verify_dump(factory: &StoreFactory) -> Result<(), String> {
    let store = factory("write_rotate_verify_dump").map_err(e2s)?;
    let cfg = config(10);
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
    ensure(sink.resume(0).await.map_err(e2s)?.is_none(), || {
        "fresh p0 resumed somewhere".into()
    })?;
    ensure(sink.resume(1).await.map_err(e2s)?.is_none(), || {
        "fresh p1 resumed somewhere".into()
    })?;
    let mut g0 = LedgerGen::new(0);
    let mut g1 = LedgerGen::new(1);
    let mut expected: Vec<(u32, LedgerEntry)> = Vec::new();
    let mut remaining = 25;
    let mut batch = vec![g0.fence()];
    while remaining > 0 {
        let n = remaining.min(7);
        batch.extend(g0.records(n)?);
        sink.write(0, &batch, &g0.state()).await.map_err(e2s)?;
        expected.extend(batch.drain(..).map(|(_, e)| (0, e)));
        remaining -= n;
    }
    g0.ignored(2);
    let second_fence = g0.fence();
    let mut batch = vec![second_fence.clone()];
    batch.extend(g0.records(7)?);
    sink.write(0, &batch, &g0.state()).await.map_err(e2s)?;
    expected.extend(batch.iter().map(|(_, e)| (0, e.clone())));
    let mut batch = vec![g1.fence()];
    batch.extend(g1.records(12)?);
    sink.write(1, &batch, &g1.state()).await.map_err(e2s)?;
    expected.extend(batch.iter().map(|(_, e)| (1, e.clone())));
    let closed = sink.close().await.map_err(e2s)?;
    ensure(closed.len() == 2, || {
        format!("close() closed {} segments, expected 2", closed.len())
    })?;
    verify_ok(&store, 44).await?;

    let mut seen: Vec<(u32, [u8; 32])> = Vec::new();
    for_each_record(&store, None, |p, _, r| {
        seen.push((p, r.hash));
        Ok(())
    })
    .await
    .map_err(e2s)?;
    let want: Vec<(u32, [u8; 32])> = expected
        .iter()
        .filter_map(|(p, e)| match e {
            LedgerEntry::Record(r) => Some((*p, r.hash)),
            LedgerEntry::Fence(_) => None,
        })
        .collect();
    ensure(seen == want, || {
        "dump does not give back the records written, in order".into()
    })?;

    // Fences: the first one (before any record) is in the first segment's manifest, the second
    // (between seq 25 and 26) in the segment holding seq 20..=29.
    let m0 = Manifest::parse(
        &store
            .get(&layout::key(0, 0, ObjectKind::Manifest))
            .await
            .map_err(e2s)?,
    )?;
    let m20 = Manifest::parse(
        &store
            .get(&layout::key(0, 20, ObjectKind::Manifest))
            .await
            .map_err(e2s)?,
    )?;
    ensure(
        m0.fences.len() == 1 && m0.fences.first().map(|f| f.writer_epoch) == Some(0),
        || format!("first manifest fences: {:?}", m0.fences),
    )?;
    ensure(
        m20.fences.len() == 1
            && m20.fences.first().map(|f| f.ledger_offset) == Some(second_fence.0),
        || format!("seq 20 manifest fences: {:?}", m20.fences),
    )?;

    let mut again = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
    let s0 = again.resume(0).await.map_err(e2s)?;
    let s1 = again.resume(1).await.map_err(e2s)?;
    ensure(s0 == Some(g0.state()), || {
        format!("p0 resumed at {s0:?}, expected {:?}", g0.state())
    })?;
    ensure(s1 == Some(g1.state()), || {
        format!("p1 resumed at {s1:?}, expected {:?}", g1.state())
    })?;
    Ok(())
}

/// A segment is closed by age through `tick`, with no new data after its first record.
pub async fn age_rotation_fires_without_new_data(factory: &StoreFactory) -> Result<(), String> {
    let store = factory("age_rotation").map_err(e2s)?;
    let cfg = ArchiveConfig {
        rotate_age: Duration::from_secs(5),
        ..config(1000)
    };
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
    sink.resume(0).await.map_err(e2s)?;
    let mut g = LedgerGen::new(0);
    let mut batch = vec![g.fence()];
    batch.extend(g.records(3)?);
    let t0 = Instant::now();
    sink.write(0, &batch, &g.state()).await.map_err(e2s)?;
    let early = sink.tick(t0).await.map_err(e2s)?;
    ensure(early.is_empty(), || {
        "tick closed a segment before its age".into()
    })?;
    let due = sink.tick(t0 + Duration::from_secs(6)).await.map_err(e2s)?;
    ensure(
        due.len() == 1 && due.first().map(|s| s.records) == Some(3),
        || format!("tick after the age limit closed {due:?}"),
    )?;
    ensure(sink.durable_state(0) == Some(g.state()), || {
        "durable state did not move".into()
    })?;
    let again = sink.tick(t0 + Duration::from_secs(60)).await.map_err(e2s)?;
    ensure(again.is_empty(), || "tick closed an empty segment".into())?;
    verify_ok(&store, 3).await
}

/// A sink that stops without closing (a crash) loses only its open segment: the next one
/// resumes after the newest complete segment, skips what it is given again, and rewrites
/// nothing that exists.
pub async fn restart_resumes_after_newest_complete_segment(
    factory: &StoreFactory,
) -> Result<(), String> {
    let store = factory("restart").map_err(e2s)?;
    let cfg = config(10);
    let mut g = LedgerGen::new(0);
    let mut all = vec![g.fence()];
    all.extend(g.records(25)?);
    let state_25 = g.state();
    {
        let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
        sink.resume(0).await.map_err(e2s)?;
        sink.write(0, &all, &state_25).await.map_err(e2s)?;
        // Dropped without close: seq 20..=24 were only in the spool.
    }
    let before = snapshot(&store).await?;
    ensure(before.len() == 6, || {
        format!("{} objects after the crash, expected 6", before.len())
    })?;
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
    let resumed = sink
        .resume(0)
        .await
        .map_err(e2s)?
        .ok_or("nothing to resume from")?;
    ensure(resumed.head.next_seq == 20, || {
        format!("resumed at seq {}", resumed.head.next_seq)
    })?;
    ensure(resumed.ledger_offset == 21, || {
        format!("resumed at ledger offset {}", resumed.ledger_offset)
    })?;
    // The runner re-reads from the resumed offset; giving everything again must be harmless.
    sink.write(0, &all, &state_25).await.map_err(e2s)?;
    let more = g.records(5)?;
    sink.write(0, &more, &g.state()).await.map_err(e2s)?;
    sink.close().await.map_err(e2s)?;
    unchanged(&store, &before).await?;
    verify_ok(&store, 30).await
}

/// A crash after the segment upload (no manifest, or no checkpoint) is completed on restart from
/// the segment's own bytes; the segment is never rewritten. Two leftovers are an alarm.
pub async fn crash_leftovers_are_completed_never_rewritten(
    factory: &StoreFactory,
) -> Result<(), String> {
    let store = factory("leftovers").map_err(e2s)?;
    let cfg = config(10);
    let mut g = LedgerGen::new(0);
    let mut all = vec![g.fence()];
    all.extend(g.records(20)?);
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
    sink.resume(0).await.map_err(e2s)?;
    sink.write(0, &all, &g.state()).await.map_err(e2s)?;
    sink.close().await.map_err(e2s)?;
    let seg = layout::key(0, 10, ObjectKind::Segment);
    let man = layout::key(0, 10, ObjectKind::Manifest);
    let cp = layout::key(0, 10, ObjectKind::Checkpoint);
    let seg_bytes = store.get(&seg).await.map_err(e2s)?;
    let cp_bytes = store.get(&cp).await.map_err(e2s)?;

    for (what, delete) in [
        ("manifest and checkpoint", vec![&man, &cp]),
        ("checkpoint", vec![&cp]),
    ] {
        for k in &delete {
            store.delete(k).await.map_err(e2s)?;
        }
        let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
        let resumed = sink
            .resume(0)
            .await
            .map_err(|e| format!("resume after losing the {what}: {e}"))?;
        ensure(resumed == Some(g.state()), || {
            format!("after losing the {what}, resumed at {resumed:?}")
        })?;
        ensure(store.get(&seg).await.map_err(e2s)? == seg_bytes, || {
            "the segment was rewritten".into()
        })?;
        // Ed25519 is deterministic: the re-signed checkpoint is the same note.
        ensure(store.get(&cp).await.map_err(e2s)? == cp_bytes, || {
            "a different checkpoint".into()
        })?;
        verify_ok(&store, 20).await?;
    }

    // Another incomplete segment appearing after the leftover: an alarm, nothing written.
    store.delete(&cp).await.map_err(e2s)?;
    store
        .create(
            &layout::key(0, 25, ObjectKind::Segment),
            Bytes::from_static(b"not a segment"),
        )
        .await
        .map_err(e2s)?;
    let before = snapshot(&store).await?;
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).map_err(e2s)?;
    match sink.resume(0).await {
        Err(ArchiveError::Corrupt { .. }) => {}
        other => {
            return Err(format!(
                "two leftovers: resume gave {other:?}, expected Corrupt"
            ));
        }
    }
    let after = snapshot(&store).await?;
    ensure(after == before, || {
        "resume wrote something despite the alarm".into()
    })
}

/// Two sinks write the same partition: the second to create a segment key loses, its sink
/// reports the conflict, and the winner's objects stay as they were.
pub async fn second_writer_loses_and_sink_reports_conflict(
    factory: &StoreFactory,
) -> Result<(), String> {
    let store = factory("second_writer").map_err(e2s)?;
    let mut g = LedgerGen::new(0);
    let mut all = vec![g.fence()];
    all.extend(g.records(10)?);
    let mut a = ArchiveSink::with_store(&config(10), store.clone(), test_key()).map_err(e2s)?;
    let mut b = ArchiveSink::with_store(&config(5), store.clone(), test_key()).map_err(e2s)?;
    a.resume(0).await.map_err(e2s)?;
    b.resume(0).await.map_err(e2s)?;
    let closed = a.write(0, &all, &g.state()).await.map_err(e2s)?;
    ensure(closed.len() == 1, || {
        format!("writer A closed {} segments", closed.len())
    })?;
    let before = snapshot(&store).await?;
    match b.write(0, &all, &g.state()).await {
        Err(ArchiveError::Conflict { key }) => {
            ensure(key == layout::key(0, 0, ObjectKind::Segment), || {
                format!("conflict on {key}")
            })?;
        }
        other => return Err(format!("writer B: {other:?}, expected a conflict")),
    }
    unchanged(&store, &before).await?;
    verify_ok(&store, 10).await
}

/// Eight concurrent creates of one key with different bytes: exactly one wins; the same bytes
/// again are accepted as already there.
pub async fn concurrent_creates_have_one_winner(factory: &StoreFactory) -> Result<(), String> {
    let store = factory("create_race").map_err(e2s)?;
    let key = layout::key(7, 0, ObjectKind::Segment);
    let tasks: Vec<_> = (0u8..8)
        .map(|i| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move { store.create(&key, Bytes::from(vec![i; 1000])).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.map_err(e2s)? {
            Ok(Created::New) => winners.push(i),
            Ok(Created::AlreadyIdentical) => {
                return Err("different bytes taken as identical".into());
            }
            Err(ArchiveError::Conflict { .. }) => {}
            Err(e) => return Err(format!("create {i}: {e}")),
        }
    }
    ensure(winners.len() == 1, || {
        format!("{} winners: {winners:?}", winners.len())
    })?;
    let stored = store.get(&key).await.map_err(e2s)?;
    let w = winners.first().copied().unwrap_or(0);
    ensure(stored == vec![u8::try_from(w).unwrap_or(0); 1000], || {
        "the stored object is not the winner's".into()
    })?;
    match store.create(&key, stored.clone()).await {
        Ok(Created::AlreadyIdentical) => Ok(()),
        other => Err(format!("re-creating identical bytes: {other:?}")),
    }
}

/// Entries that are not valid (a record before any fence, a record that skips a seq) and
/// writes before `resume` are refused, and nothing is written.
pub async fn invalid_entries_are_refused(factory: &StoreFactory) -> Result<(), String> {
    let store = factory("invalid_entries").map_err(e2s)?;
    let mut sink = ArchiveSink::with_store(&config(10), store.clone(), test_key()).map_err(e2s)?;
    let mut g = LedgerGen::new(0);
    let f = g.fence();
    let r0 = g.record()?;
    let _skipped = g.record()?;
    let r2 = g.record()?;
    match sink.write(0, std::slice::from_ref(&r0), &g.state()).await {
        Err(ArchiveError::NotResumed { .. }) => {}
        other => return Err(format!("write before resume: {other:?}")),
    }
    sink.resume(0).await.map_err(e2s)?;
    match sink.write(0, std::slice::from_ref(&r0), &g.state()).await {
        Err(ArchiveError::Chain { .. }) => {}
        other => return Err(format!("record before any fence: {other:?}")),
    }
    let mut sink = ArchiveSink::with_store(&config(10), store.clone(), test_key()).map_err(e2s)?;
    sink.resume(0).await.map_err(e2s)?;
    match sink.write(0, &[f, r0, r2], &g.state()).await {
        Err(ArchiveError::Chain { offset: 3, .. }) => {}
        other => return Err(format!("a record that skips a seq: {other:?}")),
    }
    ensure(store.list("").await.map_err(e2s)?.is_empty(), || {
        "objects were written".into()
    })
}
