//! The conformance suite of the [`Index`] contract, run against every backend: SQLite in
//! `tests/sqlite.rs`, PostgreSQL in `tests/postgres.rs` (one test per check on each).
//!
//! Each check takes a **fresh, empty** index, builds real chained records with
//! [`crate::story`], and returns `Ok(())` or a [`ConformanceError`] naming the check and what
//! differed; nothing here panics, so the caller decides how to fail.

use std::collections::BTreeSet;

use provenant_schemas::ledger::{LinkResolution, RedactionAction};
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{EntityKey, RecordBody, Relation};

use crate::story::{self, Ledger, digest, names, sha, small_story};
use crate::{Direction, EdgeStatus, Index, IndexError, Lineage, MAX_LINEAGE_DEPTH, Unproven};

/// A failed conformance check.
#[derive(Debug, thiserror::Error)]
#[error("index conformance check `{check}` failed: {detail}")]
pub struct ConformanceError {
    pub check: &'static str,
    pub detail: String,
}

fn ensure(
    condition: bool,
    check: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), ConformanceError> {
    if condition {
        Ok(())
    } else {
        Err(ConformanceError {
            check,
            detail: detail(),
        })
    }
}

/// An index call that must succeed.
fn ok<T>(check: &'static str, what: &str, r: Result<T, IndexError>) -> Result<T, ConformanceError> {
    r.map_err(|e| ConformanceError {
        check,
        detail: format!("{what}: {e}"),
    })
}

fn built<T>(
    check: &'static str,
    r: Result<T, provenant_schemas::ledger::InvalidRecord>,
) -> Result<T, ConformanceError> {
    r.map_err(|e| ConformanceError {
        check,
        detail: format!("building the story: {e}"),
    })
}

fn keys(l: &Lineage) -> BTreeSet<String> {
    l.nodes.iter().map(|n| n.key.clone()).collect()
}

fn of_type(l: &Lineage, t: &str) -> BTreeSet<String> {
    l.nodes
        .iter()
        .filter(|n| n.entity_type == t)
        .map(|n| n.key.clone())
        .collect()
}

fn key(s: &str) -> EntityKey {
    // Every key this suite uses parses; an unparseable one becomes a key that is in no index.
    EntityKey::parse(s).unwrap_or_else(|_| EntityKey::Commit("unparseable".into()))
}

fn artifact_key(n: u64) -> String {
    EntityKey::artifact_from_digest(&digest(n)).to_string()
}

/// Every check, by name, in the order [`run_all`] runs them.
pub const CHECKS: [&str; 12] = [
    "apply_then_replay_writes_nothing_twice",
    "reader_state_round_trips",
    "failed_batch_leaves_nothing_visible",
    "discontinuous_batch_is_refused",
    "link_resolution_updates_edges",
    "lineage_up_from_instance_reaches_commit",
    "lineage_down_from_commit_reaches_every_environment",
    "depth_limit_is_honoured",
    "cycles_are_safe",
    "deployments_rollback_and_coverage",
    "events_markers_and_redactions",
    "datasets_keep_namespace_and_name",
];

/// Runs check `name` on `index` (a fresh, empty index).
pub async fn run<I: Index>(name: &str, index: &I) -> Result<(), ConformanceError> {
    match name {
        "apply_then_replay_writes_nothing_twice" => {
            apply_then_replay_writes_nothing_twice(index).await
        }
        "reader_state_round_trips" => reader_state_round_trips(index).await,
        "failed_batch_leaves_nothing_visible" => failed_batch_leaves_nothing_visible(index).await,
        "discontinuous_batch_is_refused" => discontinuous_batch_is_refused(index).await,
        "link_resolution_updates_edges" => link_resolution_updates_edges(index).await,
        "lineage_up_from_instance_reaches_commit" => {
            lineage_up_from_instance_reaches_commit(index).await
        }
        "lineage_down_from_commit_reaches_every_environment" => {
            lineage_down_from_commit_reaches_every_environment(index).await
        }
        "depth_limit_is_honoured" => depth_limit_is_honoured(index).await,
        "cycles_are_safe" => cycles_are_safe(index).await,
        "deployments_rollback_and_coverage" => deployments_rollback_and_coverage(index).await,
        "events_markers_and_redactions" => events_markers_and_redactions(index).await,
        "datasets_keep_namespace_and_name" => datasets_keep_namespace_and_name(index).await,
        other => Err(ConformanceError {
            check: "run",
            detail: format!("no check named {other}"),
        }),
    }
}

/// Runs every check, each on a fresh index from `fresh`.
pub async fn run_all<I, F, Fut>(mut fresh: F) -> Result<(), ConformanceError>
where
    I: Index,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<I, IndexError>>,
{
    for name in CHECKS {
        let index = ok("run_all", "opening a fresh index", fresh().await)?;
        run(name, &index).await?;
    }
    Ok(())
}

/// Applying the story, then every batch again (and an old batch, and an overlapping one),
/// leaves the same rows and the same state.
pub async fn apply_then_replay_writes_nothing_twice<I: Index>(
    index: &I,
) -> Result<(), ConformanceError> {
    const C: &str = "apply_then_replay_writes_nothing_twice";
    let ledger = built(C, small_story(2))?;
    ok(C, "apply", ledger.apply_all(index, 3).await)?;
    let before = ok(C, "stats", index.stats().await)?;
    ensure(before.events > 10 && before.edges > 20, C, || {
        format!("the story should have been indexed, got {before:?}")
    })?;
    // The whole ledger again, in other batch sizes: everything is skipped.
    for batch in [1, 3, 100] {
        for p in 0..ledger.partitions() {
            let records = ledger.records(p);
            let mut done = 0;
            for chunk in records.chunks(batch) {
                done += chunk.len();
                let s = ok(
                    C,
                    "replay",
                    index.apply(p, chunk, &ledger.state_after(p, done)).await,
                )?;
                ensure(s.written == 0 && !s.state_moved, C, || {
                    format!("a replay (batch {batch}) wrote something: {s:?}")
                })?;
            }
        }
    }
    let after = ok(C, "stats", index.stats().await)?;
    ensure(before == after, C, || {
        format!("replay changed the counts: {before:?} then {after:?}")
    })?;
    for p in 0..ledger.partitions() {
        let stored = ok(C, "reader_state", index.reader_state(p).await)?;
        ensure(stored == Some(ledger.state(p)), C, || {
            format!(
                "partition {p}: state {stored:?}, expected {:?}",
                ledger.state(p)
            )
        })?;
    }
    // Overlap: a batch reaching back over written records and on past them.
    let mut more = ledger.clone();
    built(C, more.emit(story::build("e-b9", "b9", &sha(9))))?;
    let p = more.partition_of("build:b9");
    let records = more.records(p);
    let from = records.len().saturating_sub(3);
    let s = ok(
        C,
        "overlapping apply",
        index
            .apply(p, records.get(from..).unwrap_or(&[]), &more.state(p))
            .await,
    )?;
    ensure(s.skipped == 2 && s.written == 1 && s.state_moved, C, || {
        format!("an overlapping batch should skip 2 and write 1: {s:?}")
    })?;
    let found = ok(C, "event", index.event("e-b9", None).await)?;
    ensure(found.len() == 1, C, || {
        format!("e-b9 indexed {} times", found.len())
    })?;
    Ok(())
}

/// The stored state is exactly the state given, and `None` before any write.
pub async fn reader_state_round_trips<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "reader_state_round_trips";
    let none = ok(C, "reader_state", index.reader_state(5).await)?;
    ensure(none.is_none(), C, || {
        format!("an unwritten partition has state {none:?}")
    })?;
    // Only a fence read so far: no records, no raw offset.
    let fence_only = ReaderState {
        ledger_offset: 1,
        fence: Some((3, [9; 16])),
        ..ReaderState::START
    };
    ok(C, "apply", index.apply(5, &[], &fence_only).await)?;
    let got = ok(C, "reader_state", index.reader_state(5).await)?;
    ensure(got == Some(fence_only), C, || {
        format!("stored {fence_only:?}, read {got:?}")
    })?;
    let ledger = built(C, small_story(1))?;
    ok(C, "apply", ledger.apply_all(index, 1000).await)?;
    let got = ok(C, "reader_state", index.reader_state(0).await)?;
    ensure(got == Some(ledger.state(0)), C, || {
        format!("stored {:?}, read {got:?}", ledger.state(0))
    })?;
    // A newer fence read past (epoch 2, another writer): the state moves with no record.
    let mut later = ledger.state(0);
    later.ledger_offset += 1;
    later.fence = Some((2, [1; 16]));
    let s = ok(C, "apply state only", index.apply(0, &[], &later).await)?;
    ensure(s.state_moved && s.written == 0, C, || {
        format!("a state-only apply: {s:?}")
    })?;
    let got = ok(C, "reader_state", index.reader_state(0).await)?;
    ensure(got == Some(later), C, || {
        format!("stored {later:?}, read {got:?}")
    })?;
    Ok(())
}

/// A batch the database refuses midway (an entity key over the 2048-byte limit in its last
/// record) leaves none of its rows visible and the state where it was.
pub async fn failed_batch_leaves_nothing_visible<I: Index>(
    index: &I,
) -> Result<(), ConformanceError> {
    const C: &str = "failed_batch_leaves_nothing_visible";
    let mut l = Ledger::new(1);
    for (i, b) in ["b1", "b2", "b3"].into_iter().enumerate() {
        built(
            C,
            l.emit(story::build(&format!("e-{b}"), b, &sha(i as u64))),
        )?;
    }
    built(
        C,
        l.emit(story::artifact("e-a3", &digest(3), Some("b3"), None)),
    )?;
    let long = "x".repeat(3000);
    built(C, l.emit(story::build("e-long", &long, &sha(7))))?;
    let records = l.records(0);
    ok(
        C,
        "first batch",
        index
            .apply(0, records.get(..2).unwrap_or(&[]), &l.state_after(0, 2))
            .await,
    )?;
    let before = ok(C, "stats", index.stats().await)?;
    let state_before = ok(C, "reader_state", index.reader_state(0).await)?;
    let r = index
        .apply(0, records.get(2..).unwrap_or(&[]), &l.state_after(0, 5))
        .await;
    let Err(e) = r else {
        return Err(ConformanceError {
            check: C,
            detail: "a batch with a 3000-byte key was accepted".into(),
        });
    };
    ensure(!e.is_retryable(), C, || {
        format!("a refused row is not worth retrying, but the error says so: {e}")
    })?;
    for id in ["e-b3", "e-a3", "e-long"] {
        let found = ok(C, "event", index.event(id, None).await)?;
        ensure(found.is_empty(), C, || {
            format!("{id} of the failed batch is visible")
        })?;
    }
    let after = ok(C, "stats", index.stats().await)?;
    ensure(before == after, C, || {
        format!("counts moved: {before:?} then {after:?}")
    })?;
    let state_after = ok(C, "reader_state", index.reader_state(0).await)?;
    ensure(state_before == state_after, C, || {
        format!("state moved: {state_before:?} then {state_after:?}")
    })?;
    // The good part of the batch still goes in.
    ok(
        C,
        "good prefix",
        index
            .apply(0, records.get(2..4).unwrap_or(&[]), &l.state_after(0, 4))
            .await,
    )?;
    let found = ok(C, "event", index.event("e-a3", None).await)?;
    ensure(found.len() == 1, C, || {
        "e-a3 not indexed after retry".into()
    })?;
    Ok(())
}

/// Gaps, forks and a state that does not match the records are refused, writing nothing.
pub async fn discontinuous_batch_is_refused<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "discontinuous_batch_is_refused";
    let mut l = Ledger::new(1);
    for i in 0..6u64 {
        built(
            C,
            l.emit(story::build(&format!("e-{i}"), &format!("b{i}"), &sha(i))),
        )?;
    }
    let r = l.records(0);
    ok(
        C,
        "apply",
        index
            .apply(0, r.get(..2).unwrap_or(&[]), &l.state_after(0, 2))
            .await,
    )?;
    let cases: [(&str, &[_], ReaderState); 3] = [
        ("a gap", r.get(3..5).unwrap_or(&[]), l.state_after(0, 5)),
        (
            "a state that is not the head after the records",
            r.get(2..4).unwrap_or(&[]),
            l.state_after(0, 5),
        ),
        (
            "new records with a state behind the stored one",
            r.get(2..3).unwrap_or(&[]),
            ReaderState {
                ledger_offset: 1,
                ..l.state_after(0, 3)
            },
        ),
    ];
    for (what, records, state) in cases {
        match index.apply(0, records, &state).await {
            Err(IndexError::Discontinuous { .. }) => {}
            other => {
                return Err(ConformanceError {
                    check: C,
                    detail: format!("{what}: expected Discontinuous, got {other:?}"),
                });
            }
        }
    }
    let s = ok(C, "stats", index.stats().await)?;
    ensure(s.events == 2, C, || {
        format!("refused batches wrote events: {s:?}")
    })?;
    Ok(())
}

/// A link-resolution record turns the pending edge of the record it names resolved, with the
/// target's position; one that names no edge is counted.
pub async fn link_resolution_updates_edges<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "link_resolution_updates_edges";
    let ledger = built(C, small_story(2))?;
    // Everything but the link resolutions first.
    let mut resolution_at = None;
    for p in 0..ledger.partitions() {
        let records = ledger.records(p);
        let first_resolution = records
            .iter()
            .position(|r| matches!(r.body, RecordBody::LinkResolution(_)))
            .unwrap_or(records.len());
        if first_resolution < records.len() {
            resolution_at = Some((p, first_resolution));
        }
        ok(
            C,
            "apply",
            index
                .apply(
                    p,
                    records.get(..first_resolution).unwrap_or(&[]),
                    &ledger.state_after(p, first_resolution),
                )
                .await,
        )?;
    }
    let Some((p, at)) = resolution_at else {
        return Err(ConformanceError {
            check: C,
            detail: "the story has no link resolution".into(),
        });
    };
    let pending_before = ok(C, "missing_links", index.missing_links().await)?;
    let a3 = ok(C, "event", index.event("e-a3", None).await)?;
    let link = a3.first().and_then(|e| e.links.first());
    ensure(
        link.is_some_and(|l| l.status == EdgeStatus::Pending && l.target == "build:b3"),
        C,
        || format!("before resolution, e-a3's link: {link:?}"),
    )?;
    ok(
        C,
        "apply resolutions",
        index
            .apply(
                p,
                ledger.records(p).get(at..).unwrap_or(&[]),
                &ledger.state(p),
            )
            .await,
    )?;
    let pending_after = ok(C, "missing_links", index.missing_links().await)?;
    ensure(pending_after + 1 == pending_before, C, || {
        format!("pending links {pending_before} then {pending_after}")
    })?;
    let b3 = ok(C, "event", index.event("e-b3", None).await)?;
    let b3_pos = b3.first().map(|e| e.position.clone());
    let a3 = ok(C, "event", index.event("e-a3", None).await)?;
    let link = a3.first().and_then(|e| e.links.first()).cloned();
    ensure(
        link.as_ref().is_some_and(|l| {
            l.status == EdgeStatus::Resolved
                && l.target_position == b3_pos
                && l.resolved_by_seq.is_some()
        }),
        C,
        || format!("after resolution, e-a3's link: {link:?}, b3 at {b3_pos:?}"),
    )?;
    // The lineage edge shows it too.
    let up = ok(
        C,
        "lineage",
        index
            .lineage(&key(&artifact_key(3)), Direction::Up, 1)
            .await,
    )?;
    let edge = up.edges.iter().find(|e| e.to == "build:b3");
    ensure(
        edge.is_some_and(|e| e.events.iter().all(|x| x.status == EdgeStatus::Resolved)),
        C,
        || format!("lineage edge to build:b3: {edge:?}"),
    )?;
    // A resolution naming no edge: counted, not fatal.
    let mut more = ledger.clone();
    built(
        C,
        more.append_body(
            p,
            RecordBody::LinkResolution(LinkResolution {
                resolves_seq: 0,
                relation: Relation::Approves,
                target: "deploy:nowhere".into(),
                target_hash: [1; 32],
                target_partition: 0,
                target_seq: 0,
            }),
        ),
    )?;
    let n = more.records(p).len();
    let s = ok(
        C,
        "apply unmatched resolution",
        index
            .apply(
                p,
                more.records(p).get(n - 1..).unwrap_or(&[]),
                &more.state(p),
            )
            .await,
    )?;
    ensure(s.unmatched_resolutions == 1, C, || {
        format!("an unmatched resolution: {s:?}")
    })?;
    let stats = ok(C, "stats", index.stats().await)?;
    ensure(
        stats.unmatched_resolutions == 1 && stats.link_resolutions == 2,
        C,
        || format!("stats after an unmatched resolution: {stats:?}"),
    )?;
    Ok(())
}

/// Up from a running instance at depth 4: its deploy, artifact, build and commit, with the
/// events behind each edge.
pub async fn lineage_up_from_instance_reaches_commit<I: Index>(
    index: &I,
) -> Result<(), ConformanceError> {
    const C: &str = "lineage_up_from_instance_reaches_commit";
    let ledger = built(C, small_story(3))?;
    ok(C, "apply", ledger.apply_all(index, 4).await)?;
    let l = ok(
        C,
        "lineage",
        index
            .lineage(&key(names::INSTANCE_PROD), Direction::Up, 4)
            .await,
    )?;
    let got = keys(&l);
    for want in [
        names::INSTANCE_PROD.to_owned(),
        "deploy:d5".into(),
        artifact_key(2),
        "build:b2".into(),
        format!("commit:{}", sha(2)),
        "approval:ap1".into(),
    ] {
        ensure(got.contains(&want), C, || {
            format!("up from the instance misses {want}: {got:?}")
        })?;
    }
    ensure(of_type(&l, "env").is_empty(), C, || {
        format!("walking up must not reach environments: {got:?}")
    })?;
    ensure(
        l.nodes
            .first()
            .is_some_and(|n| n.key == names::INSTANCE_PROD && n.depth == 0),
        C,
        || format!("the root comes first at depth 0: {:?}", l.nodes.first()),
    )?;
    let commit = l
        .nodes
        .iter()
        .find(|n| n.key == format!("commit:{}", sha(2)));
    ensure(
        commit.is_some_and(|n| n.depth == 2 || n.depth == 3),
        C,
        || format!("the commit's depth: {commit:?}"),
    )?;
    let started = l
        .edges
        .iter()
        .find(|e| e.from == names::INSTANCE_PROD && e.relation == "started_by");
    ensure(
        started.is_some_and(|e| {
            e.to == "deploy:d5"
                && e.event_count == 1
                && e.events.first().is_some_and(|x| {
                    x.id == "e-i1"
                        && x.source == "https://k8s.example/prod"
                        && x.status == EdgeStatus::Resolved
                        && x.position.hash.len() == 64
                })
        }),
        C,
        || format!("the started_by edge: {started:?}"),
    )?;
    let built_from = l.edges.iter().find(|e| e.relation == "built_from");
    ensure(
        built_from.is_some_and(|e| {
            e.from == "build:b2"
                && e.events
                    .first()
                    .is_some_and(|x| x.status == EdgeStatus::Unlinked)
        }),
        C,
        || format!("build → commit is a plain edge: {built_from:?}"),
    )?;
    Ok(())
}

/// Down from a commit: every environment it runs in, through build, artifact and deploy.
pub async fn lineage_down_from_commit_reaches_every_environment<I: Index>(
    index: &I,
) -> Result<(), ConformanceError> {
    const C: &str = "lineage_down_from_commit_reaches_every_environment";
    let ledger = built(C, small_story(2))?;
    ok(C, "apply", ledger.apply_all(index, 5).await)?;
    let envs = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|e| format!("env:{e}")).collect() };
    for (commit, want) in [
        (2, envs(&["production", "staging"])),
        (1, envs(&["production", "staging"])),
        (3, envs(&[])),
    ] {
        let l = ok(
            C,
            "lineage",
            index
                .lineage(&key(&format!("commit:{}", sha(commit))), Direction::Down, 4)
                .await,
        )?;
        let got = of_type(&l, "env");
        ensure(got == want, C, || {
            format!("down from commit {commit}: environments {got:?}, expected {want:?}")
        })?;
        if commit == 2 {
            let all = keys(&l);
            for k in [
                "build:b2".to_owned(),
                artifact_key(2),
                "deploy:d3".into(),
                "deploy:d4".into(),
                "deploy:d5".into(),
                names::INSTANCE_PROD.into(),
                names::INSTANCE_STAGING.into(),
            ] {
                ensure(all.contains(&k), C, || {
                    format!("down from commit 2 misses {k}: {all:?}")
                })?;
            }
        }
    }
    Ok(())
}

/// No node deeper than asked; depth 0 is the root alone; over the maximum is refused; an
/// entity not in the index is named.
pub async fn depth_limit_is_honoured<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "depth_limit_is_honoured";
    let ledger = built(C, small_story(2))?;
    ok(C, "apply", ledger.apply_all(index, 50).await)?;
    let root = key(names::INSTANCE_PROD);
    let l0 = ok(C, "lineage", index.lineage(&root, Direction::Up, 0).await)?;
    ensure(l0.nodes.len() == 1 && l0.edges.is_empty(), C, || {
        format!("depth 0: {l0:?}")
    })?;
    let l1 = ok(C, "lineage", index.lineage(&root, Direction::Up, 1).await)?;
    let want: BTreeSet<String> = [
        names::INSTANCE_PROD.to_owned(),
        "deploy:d5".into(),
        artifact_key(2),
    ]
    .into_iter()
    .collect();
    ensure(keys(&l1) == want, C, || {
        format!("depth 1: {:?}, expected {want:?}", keys(&l1))
    })?;
    let mut previous = 0;
    for depth in 1..=6 {
        let l = ok(
            C,
            "lineage",
            index.lineage(&root, Direction::Up, depth).await,
        )?;
        ensure(l.nodes.iter().all(|n| n.depth <= depth), C, || {
            format!("depth {depth}: a node deeper than asked: {:?}", l.nodes)
        })?;
        ensure(l.nodes.len() >= previous, C, || {
            format!("depth {depth} found fewer nodes than depth {}", depth - 1)
        })?;
        ensure(!l.truncated, C, || format!("depth {depth} truncated"))?;
        previous = l.nodes.len();
    }
    match index
        .lineage(&root, Direction::Up, MAX_LINEAGE_DEPTH + 1)
        .await
    {
        Err(IndexError::InvalidArgument(_)) => {}
        other => {
            return Err(ConformanceError {
                check: C,
                detail: format!("depth over the maximum: {other:?}"),
            });
        }
    }
    match index
        .lineage(&key("instance:nobody"), Direction::Up, 3)
        .await
    {
        Err(IndexError::UnknownEntity(k)) if k == "instance:nobody" => {}
        other => {
            return Err(ConformanceError {
                check: C,
                detail: format!("unknown entity: {other:?}"),
            });
        }
    }
    Ok(())
}

/// Deploys that replace each other in a ring, and one that replaces itself: walks end, each
/// entity once.
pub async fn cycles_are_safe<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "cycles_are_safe";
    let mut l = Ledger::new(2);
    let s = "loop";
    built(
        C,
        l.emit(story::deploy(
            "e-x1",
            "x1",
            &digest(1),
            s,
            "prod",
            1,
            Some("x3"),
        )),
    )?;
    built(
        C,
        l.emit(story::deploy(
            "e-x2",
            "x2",
            &digest(1),
            s,
            "prod",
            2,
            Some("x1"),
        )),
    )?;
    built(
        C,
        l.emit(story::deploy(
            "e-x3",
            "x3",
            &digest(1),
            s,
            "prod",
            3,
            Some("x2"),
        )),
    )?;
    built(
        C,
        l.emit(story::deploy(
            "e-x4",
            "x4",
            &digest(1),
            s,
            "prod",
            4,
            Some("x4"),
        )),
    )?;
    built(C, l.resolve_pending())?;
    ok(C, "apply", l.apply_all(index, 10).await)?;
    for (root, direction) in [
        ("deploy:x1", Direction::Up),
        ("deploy:x1", Direction::Down),
        ("deploy:x4", Direction::Up),
        ("deploy:x4", Direction::Down),
    ] {
        let lin = ok(
            C,
            "lineage",
            index
                .lineage(&key(root), direction, MAX_LINEAGE_DEPTH)
                .await,
        )?;
        let unique = keys(&lin);
        ensure(unique.len() == lin.nodes.len(), C, || {
            format!("{root} {direction}: a node listed twice: {:?}", lin.nodes)
        })?;
        ensure(!lin.truncated, C, || {
            format!("{root} {direction}: truncated")
        })?;
        if root == "deploy:x1" {
            for k in ["deploy:x2", "deploy:x3"] {
                ensure(unique.contains(k), C, || {
                    format!("{root} {direction}: the ring misses {k}: {unique:?}")
                })?;
            }
        }
        let depth_of = |k: &str| lin.nodes.iter().find(|n| n.key == k).map(|n| n.depth);
        if root == "deploy:x1" && direction == Direction::Up {
            ensure(
                depth_of("deploy:x3") == Some(1) && depth_of("deploy:x2") == Some(2),
                C,
                || format!("ring depths (fewest hops): {:?}", lin.nodes),
            )?;
        }
        let self_loop = lin
            .edges
            .iter()
            .filter(|e| e.from == "deploy:x4" && e.to == "deploy:x4")
            .count();
        ensure(root != "deploy:x4" || self_loop == 1, C, || {
            format!("{root} {direction}: the self loop appears {self_loop} times")
        })?;
    }
    let tree = crate::format_tree(&ok(
        C,
        "lineage",
        index.lineage(&key("deploy:x1"), Direction::Up, 10).await,
    )?);
    ensure(tree.contains("deploy:x1 (the root)"), C, || {
        format!("the tree of a ring should mark the revisit:\n{tree}")
    })?;
    Ok(())
}

/// What is deployed where, the rollback target and coverage, on the story.
pub async fn deployments_rollback_and_coverage<I: Index>(
    index: &I,
) -> Result<(), ConformanceError> {
    const C: &str = "deployments_rollback_and_coverage";
    let ledger = built(C, small_story(3))?;
    ok(C, "apply", ledger.apply_all(index, 2).await)?;
    let all = ok(C, "deployments", index.deployments(None).await)?;
    let got: Vec<(String, String, String)> = all
        .iter()
        .map(|d| {
            (
                d.environment.clone(),
                d.deploy_id.clone(),
                d.artifact.clone(),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = [
        ("dev", "d6", 4),
        ("production", "d5", 2),
        ("qa", "d7", 5),
        ("staging", "d3", 2),
    ]
    .into_iter()
    .map(|(e, d, a)| (e.to_owned(), d.to_owned(), artifact_key(a)))
    .collect();
    ensure(got == want, C, || {
        format!("deployed where: {got:?}, expected {want:?}")
    })?;
    let prod = ok(
        C,
        "deployments",
        index.deployments(Some("production")).await,
    )?;
    ensure(
        prod.len() == 1
            && prod.first().is_some_and(|d| {
                d.deploy_id == "d5"
                    && d.service == names::SERVICE
                    && d.previous_deploy_id.as_deref() == Some("d4")
                    && d.event_id == "e-d5"
                    && d.position.hash.len() == 64
            }),
        C,
        || format!("production: {prod:?}"),
    )?;
    let none = ok(C, "deployments", index.deployments(Some("mars")).await)?;
    ensure(none.is_empty(), C, || format!("env mars: {none:?}"))?;
    // Rollback skips d4 (same artifact as the current d5) and lands on d2.
    for (env, want) in [
        ("production", Some("d2")),
        ("staging", Some("d1")),
        ("dev", None),
        ("mars", None),
    ] {
        let r = ok(
            C,
            "rollback_target",
            index.rollback_target(names::SERVICE, env).await,
        )?;
        let got = r.as_ref().map(|d| d.deploy_id.as_str());
        ensure(got == want, C, || {
            format!("rollback of shop in {env}: {got:?}, expected {want:?}")
        })?;
        if let Some(d) = &r {
            ensure(d.artifact == artifact_key(1), C, || {
                format!("rollback target runs {}", d.artifact)
            })?;
        }
    }
    let c = ok(C, "coverage", index.coverage().await)?;
    let unproven: Vec<(String, Unproven)> = c
        .unproven
        .iter()
        .map(|u| (u.artifact.clone(), u.reason))
        .collect();
    ensure(
        c.deployed_artifacts == 3
            && c.proven == 1
            && c.ratio.is_some_and(|r| (r - 1.0 / 3.0).abs() < 1e-9)
            && unproven
                == vec![
                    (artifact_key(4), Unproven::NoBuild),
                    (artifact_key(5), Unproven::NoCommit),
                ],
        C,
        || format!("coverage: {c:?}"),
    )?;
    let dev = c.unproven.first().map(|u| u.deployed_as.clone());
    ensure(
        dev == Some(vec![(names::SERVICE.to_owned(), "dev".to_owned())]),
        C,
        || format!("where the unproven artifact runs: {dev:?}"),
    )?;
    Ok(())
}

/// Event lookup by id, by source and id, and by position; markers counted; redactions kept.
pub async fn events_markers_and_redactions<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "events_markers_and_redactions";
    let mut ledger = built(C, small_story(2))?;
    let mut ev = story::runtime(
        "e-i9",
        "shop-prod-9",
        "shop",
        "production",
        "d5",
        &digest(2),
    );
    if let provenant_schemas::EventData::Runtime(r) = &mut ev.data {
        r.message = Some("[masked]".into());
    }
    built(
        C,
        ledger.emit_redacted(ev, &[("data.message", "email", RedactionAction::Mask)]),
    )?;
    ok(C, "apply", ledger.apply_all(index, 7).await)?;
    let d5 = ok(C, "event", index.event("e-d5", None).await)?;
    let Some(e) = d5.first() else {
        return Err(ConformanceError {
            check: C,
            detail: "e-d5 not found".into(),
        });
    };
    ensure(
        d5.len() == 1
            && e.kind == "deploy"
            && e.subject == "deploy:d5"
            && e.source == "https://cd.example/acme"
            && e.event.pointer("/data/deploy_id").and_then(|v| v.as_str()) == Some("d5")
            && e.event.get("type").and_then(|v| v.as_str()) == Some("io.provenant.deploy.v1"),
        C,
        || format!("e-d5: {e:?}"),
    )?;
    let links: Vec<(&str, &str, EdgeStatus)> = e
        .links
        .iter()
        .map(|l| (l.relation.as_str(), l.target.as_str(), l.status))
        .collect();
    let a2 = artifact_key(2);
    let want = vec![
        ("runs", a2.as_str(), EdgeStatus::Resolved),
        ("in_environment", "env:production", EdgeStatus::Unlinked),
        ("replaces", "deploy:d4", EdgeStatus::Resolved),
    ];
    ensure(links == want, C, || {
        format!("links of e-d5: {links:?}, expected {want:?}")
    })?;
    let by_source = ok(
        C,
        "event",
        index.event("e-d5", Some("https://cd.example/acme")).await,
    )?;
    let wrong_source = ok(C, "event", index.event("e-d5", Some("elsewhere")).await)?;
    ensure(by_source == d5 && wrong_source.is_empty(), C, || {
        format!("by source: {by_source:?} / {wrong_source:?}")
    })?;
    let at = ok(
        C,
        "event_at",
        index.event_at(e.position.partition, e.position.seq).await,
    )?;
    ensure(at.as_ref() == Some(e), C, || format!("event_at: {at:?}"))?;
    let missing = ok(C, "event_at", index.event_at(0, 1_000_000).await)?;
    ensure(missing.is_none(), C, || "event_at past the end".into())?;
    let nothing = ok(C, "event", index.event("no-such-id", None).await)?;
    ensure(nothing.is_empty(), C, || "unknown id found".into())?;
    let i9 = ok(C, "event", index.event("e-i9", None).await)?;
    let red = i9.first().map(|e| e.redactions.clone()).unwrap_or_default();
    ensure(
        red.len() == 1
            && red.first().is_some_and(|r| {
                r.path == "data.message" && r.detector == "email" && r.action == "mask"
            }),
        C,
        || format!("redactions of e-i9: {red:?}"),
    )?;
    let s = ok(C, "stats", index.stats().await)?;
    ensure(
        s.rejected == 1
            && s.duplicates == 1
            && s.link_resolutions == 1
            && s.pending_links == 2
            && s.partitions == 2,
        C,
        || format!("stats: {s:?}"),
    )?;
    ensure(
        s.missing_link_rate().is_some_and(|r| r > 0.0 && r < 0.5),
        C,
        || format!("missing link rate of {s:?}"),
    )?;
    Ok(())
}

/// Datasets and jobs keep their namespace and name apart (a name may hold `/`), and a data
/// run's lineage goes output ← job ← input.
pub async fn datasets_keep_namespace_and_name<I: Index>(index: &I) -> Result<(), ConformanceError> {
    const C: &str = "datasets_keep_namespace_and_name";
    let ledger = built(C, small_story(2))?;
    ok(C, "apply", ledger.apply_all(index, 100).await)?;
    let out = EntityKey::dataset("warehouse", "clean/orders");
    let l = ok(C, "lineage", index.lineage(&out, Direction::Up, 2).await)?;
    let node = |k: &str| l.nodes.iter().find(|n| n.key == k).cloned();
    let job = node("job:etl/daily");
    let input = node("dataset:warehouse/raw/orders");
    ensure(
        job.as_ref().is_some_and(|n| {
            n.namespace.as_deref() == Some("etl")
                && n.name.as_deref() == Some("daily")
                && n.observed
        }),
        C,
        || format!("the job node: {job:?} in {:?}", l.nodes),
    )?;
    ensure(
        input.as_ref().is_some_and(|n| {
            n.namespace.as_deref() == Some("warehouse")
                && n.name.as_deref() == Some("raw/orders")
                && n.depth == 2
        }),
        C,
        || format!("the input dataset node: {input:?}"),
    )?;
    let writes = l.edges.iter().find(|e| e.relation == "writes");
    ensure(
        writes.is_some_and(|e| e.from == "job:etl/daily" && e.to == out.to_string()),
        C,
        || format!("the writes edge keeps its direction: {writes:?}"),
    )?;
    let down = ok(
        C,
        "lineage",
        index
            .lineage(
                &EntityKey::dataset("warehouse", "raw/orders"),
                Direction::Down,
                2,
            )
            .await,
    )?;
    ensure(keys(&down).contains(&out.to_string()), C, || {
        format!("down from the input reaches the output: {:?}", keys(&down))
    })?;
    Ok(())
}
