//! The Kafka log against `provenant dev-kafka` run as a separate process, as the pipeline's
//! crash tests use it: the conformance suite, the mock's retention cap (OffsetOutOfRange),
//! a two-member rebalance, a killed broker, and a clean stop on SIGTERM.
//!
//! Every test starts its own broker on a free port and kills it when done (`Broker` kills on
//! drop, also when a test fails). Sizes stay far under the mock's per-partition cap (about
//! 5 MiB / 100,000 message sets) except in the test that crosses it on purpose.

// Test code: helpers outside `#[test]` functions may unwrap and panic too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;
use std::time::{Duration, Instant};

use provenant_log::{GroupEvent, GroupMember, Log, LogError, Record, conformance};

mod common;
use common::{Broker, init_logs};

/// Bytes that lz4 cannot shrink (xorshift), so the mock's size cap is reached for real.
fn incompressible(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_against_dev_kafka_process() {
    init_logs();
    let mut broker = Broker::start(&["--partitions", "2", "--topic", "conf.flag:3"]);
    let log = broker.log();
    // The three Provenant topics exist with --partitions partitions.
    for topic in provenant_log::TOPICS {
        assert_eq!(log.partition_count(topic).await.unwrap(), 2, "{topic}");
    }
    // A topic from --topic, and one created at run time through stdin.
    conformance::run_all(&log, "conf.flag", "conf-flag-group")
        .await
        .unwrap();
    broker.create_topic("conf.stdin", 2);
    conformance::run_all(&log, "conf.stdin", "conf-stdin-group")
        .await
        .unwrap();
}

/// The mock keeps about 5 MiB per partition and drops older data silently; the log must then
/// refuse to read before the new start instead of skipping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_before_the_start_is_out_of_range() {
    init_logs();
    let mut broker = Broker::start(&["--partitions", "1"]);
    broker.create_topic("cap.one", 1);
    let log = broker.log();
    // 8 MiB of incompressible values in 100 KiB records: past the 5 MiB cap.
    for batch in 0..8u64 {
        let records: Vec<Record> = (0..10u64)
            .map(|n| Record::new(format!("k{n}"), incompressible(batch * 100 + n, 100 * 1024)))
            .collect();
        log.append("cap.one", 0, records).await.unwrap();
    }
    let marks = log.watermarks("cap.one", 0).await.unwrap();
    assert_eq!(marks.end, 80);
    assert!(marks.start > 0, "the mock kept everything: {marks:?}");
    let err = log.reader("cap.one", 0, 0).await.unwrap_err();
    assert!(
        matches!(err, LogError::OffsetOutOfRange { requested: 0, start, .. } if start == marks.start),
        "{err:?}"
    );
    conformance::offset_before_start_is_out_of_range(&log, "cap.one", 0)
        .await
        .unwrap();
}

async fn event(member: &mut impl GroupMember, within: Duration) -> GroupEvent {
    tokio::time::timeout(within, member.next_event())
        .await
        .expect("a group event in time")
        .unwrap()
}

fn assigned(event: GroupEvent) -> (Vec<u32>, i32) {
    match event {
        GroupEvent::Assigned {
            mut partitions,
            generation,
        } => {
            partitions.sort_unstable();
            (partitions, generation)
        }
        GroupEvent::Revoked { partitions, .. } => {
            panic!("expected Assigned, got Revoked {partitions:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_rebalance_and_revoke_waits_for_the_ack() {
    init_logs();
    let mut broker = Broker::start(&["--partitions", "1"]);
    broker.create_topic("grp.four", 4);
    let log = broker.log();
    let long = Duration::from_secs(30);

    let mut a = log.join_group("grp-two", "grp.four").await.unwrap();
    let (owned, generation) = assigned(event(&mut a, long).await);
    assert_eq!(owned, vec![0, 1, 2, 3]);
    assert_eq!(generation, 1);
    a.commit(2, 0).await.unwrap();

    // B joins: A must give its partitions back first.
    let mut b = log.join_group("grp-two", "grp.four").await.unwrap();
    let GroupEvent::Revoked { partitions, ack } = event(&mut a, long).await else {
        panic!("A expected Revoked");
    };
    assert_eq!(partitions, vec![0, 1, 2, 3]);
    // While A holds the ack, the rebalance must not complete: B gets nothing. (Without the
    // wait, the mock assigns B about 4.5 s after it joins; 6 s tells the two apart.)
    let early = tokio::time::timeout(Duration::from_secs(6), b.next_event()).await;
    assert!(
        early.is_err(),
        "B was assigned before A acknowledged: {early:?}"
    );
    assert_eq!(
        a.assignment(),
        vec![0, 1, 2, 3],
        "A still owns them until it acks"
    );
    ack.ack();

    // Drive both members until the group settles with each owning a non-empty, disjoint share
    // of the four partitions, and A has been told of its new share by an Assigned event of a
    // later generation (its assignment() can change before that event is read). Under load
    // the mock may go through an extra generation (B alone first, then A rejoins): every
    // further revoke is acknowledged at once.
    let mut generation_a = generation;
    let started = Instant::now();
    let owned_b = loop {
        let (oa, ob) = (a.assignment(), b.assignment());
        let mut all: Vec<u32> = oa.iter().chain(&ob).copied().collect();
        all.sort_unstable();
        if generation_a > generation && !oa.is_empty() && !ob.is_empty() && all == vec![0, 1, 2, 3]
        {
            break ob;
        }
        assert!(
            started.elapsed() < long,
            "the group did not settle: A {oa:?} (last Assigned event: generation \
             {generation_a}) B {ob:?}"
        );
        let e = tokio::select! {
            e = a.next_event() => Some((true, e.unwrap())),
            e = b.next_event() => Some((false, e.unwrap())),
            () = tokio::time::sleep(Duration::from_millis(500)) => None,
        };
        match e {
            Some((_, GroupEvent::Revoked { ack, .. })) => ack.ack(),
            Some((true, GroupEvent::Assigned { generation, .. })) => generation_a = generation,
            Some((false, GroupEvent::Assigned { .. })) | None => {}
        }
    };
    // A member may only commit what it owns.
    let not_a = owned_b[0];
    let err = a.commit(not_a, 1).await.unwrap_err();
    assert!(
        matches!(err, LogError::Fatal { op: "commit", .. }),
        "{err:?}"
    );
    b.commit(not_a, 1).await.unwrap();
    assert_eq!(
        log.committed("grp-two", "grp.four", not_a).await.unwrap(),
        Some(1)
    );

    // B leaves: A gets everything back (after revoking what it had).
    b.leave().await.unwrap();
    let mut owned = a.assignment();
    let started = Instant::now();
    while owned != vec![0, 1, 2, 3] {
        assert!(started.elapsed() < long, "A owns {owned:?} after B left");
        match event(&mut a, long).await {
            GroupEvent::Revoked { ack, .. } => ack.ack(),
            GroupEvent::Assigned { .. } => {}
        }
        owned = a.assignment();
    }
    a.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_broker_gives_retryable_errors() {
    init_logs();
    let mut broker = Broker::start(&["--partitions", "2"]);
    let log = broker.log();
    log.append(
        provenant_log::RAW_TOPIC,
        1,
        vec![Record::new("k", "before")],
    )
    .await
    .unwrap();
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();

    let started = Instant::now();
    let err = log
        .append(provenant_log::RAW_TOPIC, 1, vec![Record::new("k", "after")])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "append to a dead broker: {err:?}");
    assert!(
        matches!(
            err,
            LogError::Retryable {
                op: "append",
                partition: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    let err = log
        .watermarks(provenant_log::RAW_TOPIC, 1)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "watermarks from a dead broker: {err:?}");
}

#[test]
fn sigterm_stops_dev_kafka_cleanly() {
    let mut broker = Broker::start(&[]);
    let pid = broker.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = broker.child.try_wait().unwrap() {
            assert!(status.success(), "dev-kafka exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "dev-kafka ignored SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn help_says_what_dev_kafka_is() {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["dev-kafka", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "librdkafka",
        "mock",
        "memory only",
        "5 MiB",
        "100,000",
        "dropped silently",
    ] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
}
