//! The conformance suite of the [`Log`] contract (see the crate documentation), run against
//! every implementation: the embedded log in this crate's tests, Kafka (through
//! `provenant dev-kafka`) in `cli/tests/kafka_conformance.rs`.
//!
//! Each check is a plain async function that returns `Ok(())` or a [`ConformanceError`]
//! naming the check and what differed; nothing here panics, so a caller decides how to fail.
//! Every awaited call is bounded by [`OP_TIMEOUT`], so an implementation that hangs fails a
//! check instead of hanging the suite.
//!
//! ## Preconditions
//!
//! [`run_all`] wants a topic that exists, is **empty** and has **at least two partitions**,
//! and a group name never used before. Nothing else may write the topic while it runs.
//! The individual checks only assume that nobody else writes the topic while they run:
//! they measure the end watermark before appending, so they can run in any order, on a topic
//! earlier checks wrote to.
//!
//! ## What cannot be checked generically
//!
//! [`offset_before_start_is_out_of_range`] can only ask for an offset before the start when
//! the partition's start is above 0, and the trait has no way to delete data (retention is an
//! implementation matter). On a partition whose start is 0 the check verifies that reading at
//! the start succeeds and returns; implementations prove the error in their own tests by
//! deleting data first (embedded: retention; Kafka: `DeleteRecords`) and then calling this
//! check.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{
    GroupEvent, GroupMember, Header, Log, LogError, LogReader, Record, StoredRecord, append_by_key,
    partitioner,
};

/// The longest any single call may take before the check fails as hung.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a reader waits for records that are already in the log before giving up.
const READ_DEADLINE: Duration = Duration::from_secs(20);

/// A failed conformance check: which check, and what differed or failed.
#[derive(Debug, thiserror::Error)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct ConformanceError {
    /// The name of the check (the function's name).
    pub check: &'static str,
    /// What was expected and what the implementation did.
    pub detail: String,
}

impl ConformanceError {
    fn new(check: &'static str, detail: impl Into<String>) -> Self {
        Self {
            check,
            detail: detail.into(),
        }
    }
}

/// Fails `check` with `detail` unless `condition` holds.
fn ensure(
    condition: bool,
    check: &'static str,
    detail: impl FnOnce() -> String,
) -> Result<(), ConformanceError> {
    if condition {
        Ok(())
    } else {
        Err(ConformanceError::new(check, detail()))
    }
}

/// Awaits `fut` for at most [`OP_TIMEOUT`]; a log error or a timeout fails `check`.
async fn call<T>(
    check: &'static str,
    what: &str,
    fut: impl Future<Output = Result<T, LogError>>,
) -> Result<T, ConformanceError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(ConformanceError::new(check, format!("{what}: {error}"))),
        Err(_) => Err(ConformanceError::new(
            check,
            format!("{what}: no answer within {OP_TIMEOUT:?}"),
        )),
    }
}

/// Reads until `count` records arrived (or [`READ_DEADLINE`] passed) and returns exactly
/// `count` records; fewer is an error, and so is a batch that overshoots what was asked for.
async fn read_exact<R: LogReader>(
    check: &'static str,
    reader: &mut R,
    count: usize,
) -> Result<Vec<StoredRecord>, ConformanceError> {
    let started = Instant::now();
    let mut out: Vec<StoredRecord> = Vec::with_capacity(count);
    while out.len() < count {
        if started.elapsed() > READ_DEADLINE {
            return Err(ConformanceError::new(
                check,
                format!(
                    "read {} of {count} records already in the log within {READ_DEADLINE:?}",
                    out.len()
                ),
            ));
        }
        let want = count - out.len();
        let batch = call(
            check,
            "next_batch",
            reader.next_batch(want, Duration::from_millis(500)),
        )
        .await?;
        ensure(batch.len() <= want, check, || {
            format!("next_batch(max = {want}) returned {} records", batch.len())
        })?;
        out.extend(batch);
    }
    Ok(out)
}

/// Checks that records read back carry offsets `first, first + 1, …` and equal `expected`.
fn compare_records(
    check: &'static str,
    first: u64,
    read: &[StoredRecord],
    expected: &[Record],
) -> Result<(), ConformanceError> {
    ensure(read.len() == expected.len(), check, || {
        format!("read {} records, expected {}", read.len(), expected.len())
    })?;
    for (index, (stored, want)) in (0u64..).zip(read.iter().zip(expected)) {
        let offset = first + index;
        ensure(stored.offset == offset, check, || {
            format!(
                "record #{index} has offset {}, expected {offset}",
                stored.offset
            )
        })?;
        ensure(stored.record == *want, check, || {
            format!(
                "record at offset {offset} differs: read {:?}, appended {:?}",
                stored.record, want
            )
        })?;
    }
    Ok(())
}

/// Checks that `offsets` are `first, first + 1, …` (`len` of them).
fn expect_contiguous(
    check: &'static str,
    what: &str,
    offsets: &[u64],
    first: u64,
    len: usize,
) -> Result<(), ConformanceError> {
    let expected: Vec<u64> = (first..).take(len).collect();
    ensure(offsets == expected.as_slice(), check, || {
        format!("{what}: offsets {offsets:?}, expected {expected:?}")
    })
}

/// A small record whose value names the check and a sequence number.
fn tagged(check: &str, partition: u32, n: usize) -> Record {
    Record::new(
        format!("{check}-key-{partition}-{n}"),
        format!("{check} p{partition} #{n}"),
    )
}

/// The topic's partition count, which must be at least `min`.
async fn partitions_at_least<L: Log>(
    check: &'static str,
    log: &L,
    topic: &str,
    min: u32,
) -> Result<u32, ConformanceError> {
    let count = call(check, "partition_count", log.partition_count(topic)).await?;
    ensure(count >= min, check, || {
        format!("topic {topic} has {count} partitions; this check needs at least {min}")
    })?;
    Ok(count)
}

/// Runs every check, in an order that suits a fresh, empty topic with at least two
/// partitions and a fresh group. Stops at the first failure.
pub async fn run_all<L: Log>(log: &L, topic: &str, group: &str) -> Result<(), ConformanceError> {
    const CHECK: &str = "run_all";
    let count = partitions_at_least(CHECK, log, topic, 2).await?;
    for partition in 0..count {
        let marks = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
        ensure(marks.start == marks.end, CHECK, || {
            format!("precondition: {topic}/{partition} must be empty, has {marks:?}")
        })?;
    }
    let last = count - 1;
    empty_partition_times_out(log, topic, last).await?;
    offsets_contiguous(log, topic, 0).await?;
    watermarks_follow_appends(log, topic, last).await?;
    per_partition_ordering(log, topic).await?;
    started_appends_keep_order(log, topic, last).await?;
    records_intact(log, topic, 0).await?;
    read_from_any_offset(log, topic, last).await?;
    append_by_key_routes_by_murmur2(log, topic).await?;
    unknown_partition_is_an_error(log, topic).await?;
    offset_before_start_is_out_of_range(log, topic, 0).await?;
    lone_member_owns_every_partition(log, group, topic).await?;
    commit_then_committed(log, group, topic).await?;
    Ok(())
}

/// A reader at the end of a partition nobody writes returns an empty batch after about
/// `wait`, keeps its position, and stays usable.
pub async fn empty_partition_times_out<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "empty_partition_times_out";
    let marks = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    let mut reader = call(
        CHECK,
        "reader at end",
        log.reader(topic, partition, marks.end),
    )
    .await?;
    ensure(reader.position() == marks.end, CHECK, || {
        format!(
            "new reader at {} reports position {}",
            marks.end,
            reader.position()
        )
    })?;
    let wait = Duration::from_millis(300);
    for attempt in 0..2 {
        let started = Instant::now();
        let batch = call(CHECK, "next_batch", reader.next_batch(10, wait)).await?;
        let took = started.elapsed();
        ensure(batch.is_empty(), CHECK, || {
            format!(
                "attempt {attempt}: a reader at the end of {topic}/{partition} returned {} records",
                batch.len()
            )
        })?;
        // It must wait (not spin back at once) and must not wait far longer than asked.
        ensure(took + Duration::from_millis(50) >= wait, CHECK, || {
            format!("attempt {attempt}: returned empty after {took:?}, asked to wait {wait:?}")
        })?;
        ensure(took <= wait + Duration::from_secs(10), CHECK, || {
            format!("attempt {attempt}: returned after {took:?}, asked to wait {wait:?}")
        })?;
        ensure(reader.position() == marks.end, CHECK, || {
            format!(
                "attempt {attempt}: position moved to {} on an empty batch",
                reader.position()
            )
        })?;
    }
    Ok(())
}

/// A single writer's appends get contiguous offsets starting at the end watermark, across
/// appends, and the records read back at those offsets.
pub async fn offsets_contiguous<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "offsets_contiguous";
    let before = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    let first: Vec<Record> = (0..5).map(|n| tagged(CHECK, partition, n)).collect();
    let second: Vec<Record> = (5..8).map(|n| tagged(CHECK, partition, n)).collect();
    let single = vec![tagged(CHECK, partition, 8)];
    let offsets = call(
        CHECK,
        "append 5",
        log.append(topic, partition, first.clone()),
    )
    .await?;
    expect_contiguous(CHECK, "first append", &offsets, before.end, 5)?;
    let offsets = call(
        CHECK,
        "append 3",
        log.append(topic, partition, second.clone()),
    )
    .await?;
    expect_contiguous(CHECK, "second append", &offsets, before.end + 5, 3)?;
    let offsets = call(
        CHECK,
        "append 1",
        log.append(topic, partition, single.clone()),
    )
    .await?;
    expect_contiguous(CHECK, "single append", &offsets, before.end + 8, 1)?;
    let empty = call(CHECK, "append 0", log.append(topic, partition, Vec::new())).await?;
    ensure(empty.is_empty(), CHECK, || {
        format!("an empty append returned offsets {empty:?}")
    })?;

    let mut reader = call(CHECK, "reader", log.reader(topic, partition, before.end)).await?;
    let read = read_exact(CHECK, &mut reader, 9).await?;
    let expected: Vec<Record> = first.into_iter().chain(second).chain(single).collect();
    compare_records(CHECK, before.end, &read, &expected)?;
    ensure(reader.position() == before.end + 9, CHECK, || {
        format!(
            "after reading 9 records from {} the position is {}",
            before.end,
            reader.position()
        )
    })
}

/// The end watermark grows by exactly the number of appended records and equals the offset
/// the next append gets; the start does not move.
pub async fn watermarks_follow_appends<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "watermarks_follow_appends";
    let before = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    ensure(before.start <= before.end, CHECK, || {
        format!("start after end: {before:?}")
    })?;
    for round in 1..=3usize {
        let batch: Vec<Record> = (0..round * 4)
            .map(|n| tagged(CHECK, partition, n))
            .collect();
        let len = batch.len();
        let prior = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
        let offsets = call(CHECK, "append", log.append(topic, partition, batch)).await?;
        expect_contiguous(CHECK, "append", &offsets, prior.end, len)?;
        let after = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        ensure(after.end == prior.end + len64, CHECK, || {
            format!(
                "round {round}: end was {}, appended {len}, end is now {}",
                prior.end, after.end
            )
        })?;
        ensure(after.start == before.start, CHECK, || {
            format!(
                "round {round}: start moved from {} to {}",
                before.start, after.start
            )
        })?;
    }
    Ok(())
}

/// Appends interleaved across two partitions are read back, per partition, in append order
/// and at the offsets the appends returned.
pub async fn per_partition_ordering<L: Log>(log: &L, topic: &str) -> Result<(), ConformanceError> {
    const CHECK: &str = "per_partition_ordering";
    partitions_at_least(CHECK, log, topic, 2).await?;
    let parts = [0u32, 1u32];
    let mut starts = [0u64; 2];
    let mut appended: [Vec<Record>; 2] = [Vec::new(), Vec::new()];
    let mut offsets: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for (slot, partition) in starts.iter_mut().zip(parts) {
        *slot = call(CHECK, "watermarks", log.watermarks(topic, partition))
            .await?
            .end;
    }
    // Interleave: batches of different sizes alternate between the partitions.
    let mut counters = [0usize; 2];
    for round in 0..6usize {
        for ((partition, records), (offs, counter)) in parts
            .iter()
            .zip(appended.iter_mut())
            .zip(offsets.iter_mut().zip(counters.iter_mut()))
        {
            let size = 1 + (round + *partition as usize) % 3;
            let batch: Vec<Record> = (0..size)
                .map(|_| {
                    *counter += 1;
                    tagged(CHECK, *partition, *counter)
                })
                .collect();
            let got = call(
                CHECK,
                "append",
                log.append(topic, *partition, batch.clone()),
            )
            .await?;
            ensure(got.len() == batch.len(), CHECK, || {
                format!(
                    "append of {} records returned {} offsets",
                    batch.len(),
                    got.len()
                )
            })?;
            records.extend(batch);
            offs.extend(got);
        }
    }
    for ((partition, start), (records, offs)) in parts
        .iter()
        .zip(starts)
        .zip(appended.iter().zip(offsets.iter()))
    {
        ensure(offs.is_sorted_by(|a, b| a < b), CHECK, || {
            format!("offsets of {topic}/{partition} are not increasing: {offs:?}")
        })?;
        let mut reader = call(CHECK, "reader", log.reader(topic, *partition, start)).await?;
        let read = read_exact(CHECK, &mut reader, records.len()).await?;
        compare_records(CHECK, start, &read, records)?;
        let read_offsets: Vec<u64> = read.iter().map(|r| r.offset).collect();
        ensure(read_offsets == *offs, CHECK, || {
            format!(
                "{topic}/{partition}: append returned {offs:?}, records were read at {read_offsets:?}"
            )
        })?;
    }
    Ok(())
}

/// The records of the "intact" check: keys (none, text, binary), headers in order with
/// duplicate names and binary and empty values, binary and large values.
pub fn tricky_records() -> Vec<Record> {
    let binary: Bytes = (0u8..=255).collect::<Vec<u8>>().into();
    let large: Bytes = (0..200_000u32)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into();
    vec![
        Record {
            key: None,
            headers: Vec::new(),
            value: Bytes::from_static(b"no key, no headers"),
        },
        Record::new("text key", "one header").with_header("content-type", "application/json"),
        Record {
            key: Some(Bytes::from_static(&[0, 159, 146, 150, 255, 0])),
            headers: vec![
                Header::new("dup", "first"),
                Header::new("other", Bytes::from_static(&[0xff, 0x00, 0xfe])),
                Header::new("dup", "second"),
                Header::new("dup", "third"),
                Header::new("empty", Bytes::new()),
                Header::new("ce_id", "a-1"),
            ],
            value: binary.clone(),
        },
        Record {
            key: None,
            headers: vec![Header::new("bin", binary.clone()), Header::new("b", "x")],
            value: Bytes::from_static(b"no key, with headers"),
        },
        Record::new("large", large),
        Record::new("utf8 \u{2603} key", "ünïcödé value \u{1F600}").with_header("ü", "ß"),
    ]
}

/// Keys (including none), headers (order, duplicate names, binary and empty values) and
/// values (binary, 200 kB) read back exactly as appended.
pub async fn records_intact<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "records_intact";
    let records = tricky_records();
    let before = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    let offsets = call(
        CHECK,
        "append",
        log.append(topic, partition, records.clone()),
    )
    .await?;
    expect_contiguous(CHECK, "append", &offsets, before.end, records.len())?;
    let mut reader = call(CHECK, "reader", log.reader(topic, partition, before.end)).await?;
    let read = read_exact(CHECK, &mut reader, records.len()).await?;
    compare_records(CHECK, before.end, &read, &records)?;
    for stored in &read {
        ensure(stored.timestamp_ms > 0, CHECK, || {
            format!(
                "record at {} has timestamp {}",
                stored.offset, stored.timestamp_ms
            )
        })?;
    }
    Ok(())
}

/// A reader can start at the start, in the middle, and at the end; at the end it waits,
/// returns nothing in time, and then returns a record appended while it waits.
pub async fn read_from_any_offset<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "read_from_any_offset";
    let records: Vec<Record> = (0..10).map(|n| tagged(CHECK, partition, n)).collect();
    let before = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    call(
        CHECK,
        "append",
        log.append(topic, partition, records.clone()),
    )
    .await?;
    let marks = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;

    // From the start: everything up to the end, contiguous, ours last.
    let mut reader = call(
        CHECK,
        "reader at start",
        log.reader(topic, partition, marks.start),
    )
    .await?;
    let total = usize::try_from(marks.end - marks.start).unwrap_or(usize::MAX);
    let all = read_exact(CHECK, &mut reader, total).await?;
    for (index, stored) in (0u64..).zip(&all) {
        ensure(stored.offset == marks.start + index, CHECK, || {
            format!(
                "from start {}: record #{index} has offset {}",
                marks.start, stored.offset
            )
        })?;
    }
    let tail = all
        .get(all.len().saturating_sub(records.len())..)
        .unwrap_or_default();
    compare_records(CHECK, before.end, tail, &records)?;

    // From the middle of our records.
    for skip in [1usize, 4, 9] {
        let from = before.end + u64::try_from(skip).unwrap_or(0);
        let mut reader = call(
            CHECK,
            "reader in middle",
            log.reader(topic, partition, from),
        )
        .await?;
        ensure(reader.position() == from, CHECK, || {
            format!("reader at {from} reports position {}", reader.position())
        })?;
        let read = read_exact(CHECK, &mut reader, records.len() - skip).await?;
        compare_records(CHECK, from, &read, records.get(skip..).unwrap_or_default())?;
    }

    // At the end: nothing yet, then a record appended while the reader waits.
    let mut reader = call(
        CHECK,
        "reader at end",
        log.reader(topic, partition, marks.end),
    )
    .await?;
    let empty = call(
        CHECK,
        "next_batch at end",
        reader.next_batch(10, Duration::from_millis(200)),
    )
    .await?;
    ensure(empty.is_empty(), CHECK, || {
        format!("a reader at the end returned {} records", empty.len())
    })?;
    let late = tagged(CHECK, partition, 99);
    let append_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        call(
            CHECK,
            "append while reading",
            log.append(topic, partition, vec![late.clone()]),
        )
        .await
    };
    let (batch, appended) = tokio::join!(
        call(
            CHECK,
            "next_batch waiting for new data",
            reader.next_batch(10, Duration::from_secs(10)),
        ),
        append_later
    );
    let appended = appended?;
    let batch = batch?;
    // The wait must end with the new record, well before the 10 s are up.
    ensure(!batch.is_empty(), CHECK, || {
        "a reader waiting at the end did not return a record appended while it waited".to_owned()
    })?;
    expect_contiguous(CHECK, "append while reading", &appended, marks.end, 1)?;
    compare_records(CHECK, marks.end, &batch, std::slice::from_ref(&late))?;
    ensure(reader.position() == marks.end + 1, CHECK, || {
        format!("position after the new record is {}", reader.position())
    })
}

/// Appends started one after the other with [`Log::start_append`] (each started once the one
/// before was handed over, none awaited yet) land in that order, whatever order their pending
/// appends are then awaited in, with the offsets each pending append reports.
pub async fn started_appends_keep_order<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "started_appends_keep_order";
    let marks = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    let batches: Vec<Vec<Record>> = (0..4usize)
        .map(|b| {
            (0..1 + b % 3)
                .map(|i| tagged(CHECK, partition, b * 10 + i))
                .collect()
        })
        .collect();
    let mut pending = Vec::new();
    for batch in &batches {
        pending.push(
            call(
                CHECK,
                "start_append",
                log.start_append(topic, partition, batch.clone()),
            )
            .await?,
        );
    }
    let mut offsets = Vec::new();
    for p in pending.into_iter().rev() {
        offsets.push(call(CHECK, "pending append", p).await?);
    }
    offsets.reverse();
    let expected: Vec<Record> = batches.concat();
    let flat: Vec<u64> = offsets.concat();
    expect_contiguous(CHECK, "started appends", &flat, marks.end, expected.len())?;
    let mut reader = call(CHECK, "reader", log.reader(topic, partition, marks.end)).await?;
    let read = read_exact(CHECK, &mut reader, expected.len()).await?;
    compare_records(CHECK, marks.end, &read, &expected)
}

/// `append_by_key` puts each keyed record on `partition_for_key(key, partitions)` and
/// unkeyed ones on partition 0, returns positions in input order, and the records are there.
pub async fn append_by_key_routes_by_murmur2<L: Log>(
    log: &L,
    topic: &str,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "append_by_key_routes_by_murmur2";
    let count = partitions_at_least(CHECK, log, topic, 2).await?;
    let mut records: Vec<Record> = (0..48)
        .map(|n| Record::new(format!("commit:{n:040x}"), format!("by key #{n}")))
        .collect();
    records.insert(
        7,
        Record {
            key: None,
            headers: Vec::new(),
            value: Bytes::from_static(b"unkeyed"),
        },
    );
    let positions = call(
        CHECK,
        "append_by_key",
        append_by_key(log, topic, records.clone()),
    )
    .await?;
    ensure(positions.len() == records.len(), CHECK, || {
        format!(
            "{} records gave {} positions",
            records.len(),
            positions.len()
        )
    })?;
    let mut used = std::collections::BTreeSet::new();
    for (record, (partition, offset)) in records.iter().zip(&positions) {
        let expected = record
            .key
            .as_deref()
            .map_or(0, |k| partitioner::partition_for_key(k, count));
        ensure(*partition == expected, CHECK, || {
            format!(
                "key {:?} went to partition {partition}, murmur2 says {expected}",
                record.key
            )
        })?;
        used.insert(*partition);
        let mut reader = call(CHECK, "reader", log.reader(topic, *partition, *offset)).await?;
        let read = read_exact(CHECK, &mut reader, 1).await?;
        compare_records(CHECK, *offset, &read, std::slice::from_ref(record))?;
    }
    ensure(used.len() >= 2, CHECK, || {
        format!("48 keys all landed on partitions {used:?}; routing looks constant")
    })
}

/// Appending to a partition beyond the topic's count fails (not retryable), and so does a
/// reader of it.
pub async fn unknown_partition_is_an_error<L: Log>(
    log: &L,
    topic: &str,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "unknown_partition_is_an_error";
    let count = partitions_at_least(CHECK, log, topic, 1).await?;
    let result = tokio::time::timeout(
        OP_TIMEOUT,
        log.append(topic, count, vec![tagged(CHECK, count, 0)]),
    )
    .await;
    match result {
        Ok(Err(LogError::UnknownPartition { partition, .. })) if partition == count => {}
        other => {
            return Err(ConformanceError::new(
                CHECK,
                format!(
                    "append to partition {count} of {count}: expected UnknownPartition, got {other:?}"
                ),
            ));
        }
    }
    let result = tokio::time::timeout(OP_TIMEOUT, log.watermarks(topic, count)).await;
    match result {
        Ok(Err(LogError::UnknownPartition { .. })) => Ok(()),
        other => Err(ConformanceError::new(
            CHECK,
            format!(
                "watermarks of partition {count} of {count}: expected UnknownPartition, got {other:?}"
            ),
        )),
    }
}

/// A reader asked for an offset before the partition's start fails with
/// [`LogError::OffsetOutOfRange`] (when the start is above 0; see the module doc), and a
/// reader at the start reads the record there.
pub async fn offset_before_start_is_out_of_range<L: Log>(
    log: &L,
    topic: &str,
    partition: u32,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "offset_before_start_is_out_of_range";
    let marks = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
    if marks.start > 0 {
        let requested = marks.start - 1;
        let outcome = tokio::time::timeout(OP_TIMEOUT, async {
            let mut reader = log.reader(topic, partition, requested).await?;
            reader.next_batch(1, Duration::from_secs(2)).await
        })
        .await;
        match outcome {
            Ok(Err(LogError::OffsetOutOfRange {
                requested: r,
                start,
                ..
            })) if r == requested && start >= marks.start => {}
            other => {
                return Err(ConformanceError::new(
                    CHECK,
                    format!(
                        "reading {topic}/{partition} at {requested}, before the start {}: expected OffsetOutOfRange, got {other:?}",
                        marks.start
                    ),
                ));
            }
        }
    }
    if marks.end > marks.start {
        let mut reader = call(
            CHECK,
            "reader at start",
            log.reader(topic, partition, marks.start),
        )
        .await?;
        let read = read_exact(CHECK, &mut reader, 1).await?;
        let first = read.first().map(|r| r.offset);
        ensure(first == Some(marks.start), CHECK, || {
            format!("reader at start {} read offset {first:?}", marks.start)
        })?;
    }
    Ok(())
}

/// Waits for the member's next event, at most [`OP_TIMEOUT`].
async fn next_event<M: GroupMember>(
    check: &'static str,
    member: &mut M,
) -> Result<GroupEvent, ConformanceError> {
    call(check, "next_event", member.next_event()).await
}

/// A lone member of a fresh group first gets an `Assigned` that covers every partition, and
/// `assignment()` says so.
pub async fn lone_member_owns_every_partition<L: Log>(
    log: &L,
    group: &str,
    topic: &str,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "lone_member_owns_every_partition";
    let count = partitions_at_least(CHECK, log, topic, 1).await?;
    let mut member = call(CHECK, "join_group", log.join_group(group, topic)).await?;
    let all: Vec<u32> = (0..count).collect();
    match next_event(CHECK, &mut member).await? {
        GroupEvent::Assigned {
            mut partitions,
            generation,
        } => {
            partitions.sort_unstable();
            ensure(partitions == all, CHECK, || {
                format!(
                    "first Assigned (generation {generation}) has {partitions:?}, expected {all:?}"
                )
            })?;
        }
        GroupEvent::Revoked { partitions, .. } => {
            return Err(ConformanceError::new(
                CHECK,
                format!("first event is Revoked {partitions:?}, expected Assigned"),
            ));
        }
    }
    let owned = member.assignment();
    ensure(owned == all, CHECK, || {
        format!("assignment() is {owned:?} after Assigned {all:?}")
    })?;
    call(CHECK, "leave", member.leave()).await
}

/// A fresh group has no position; after a member commits, `committed` returns exactly what
/// was committed, also after the member left.
pub async fn commit_then_committed<L: Log>(
    log: &L,
    group: &str,
    topic: &str,
) -> Result<(), ConformanceError> {
    const CHECK: &str = "commit_then_committed";
    let count = partitions_at_least(CHECK, log, topic, 1).await?;
    let mut member = call(CHECK, "join_group", log.join_group(group, topic)).await?;
    let mut owned: Vec<u32> = Vec::new();
    let started = Instant::now();
    while owned.len() < count as usize {
        if started.elapsed() > OP_TIMEOUT {
            return Err(ConformanceError::new(
                CHECK,
                format!("a lone member owns only {owned:?} of {count} partitions"),
            ));
        }
        match next_event(CHECK, &mut member).await? {
            GroupEvent::Assigned { partitions, .. } => owned.extend(partitions),
            GroupEvent::Revoked { partitions, ack } => {
                owned.retain(|p| !partitions.contains(p));
                ack.ack();
            }
        }
    }
    owned.sort_unstable();
    let mut expected = Vec::new();
    for &partition in &owned {
        let marks = call(CHECK, "watermarks", log.watermarks(topic, partition)).await?;
        // Some positions at the end, some inside the log, one at the start.
        let position = match partition % 3 {
            0 => marks.end,
            1 => marks.start + (marks.end - marks.start) / 2,
            _ => marks.start,
        };
        call(CHECK, "commit", member.commit(partition, position)).await?;
        expected.push((partition, position));
    }
    for &(partition, position) in &expected {
        let got = call(CHECK, "committed", log.committed(group, topic, partition)).await?;
        ensure(got == Some(position), CHECK, || {
            format!("{group} {topic}/{partition}: committed {position}, read back {got:?}")
        })?;
    }
    // Commit again: the newer position wins.
    if let Some(&(partition, position)) = expected.first() {
        let newer = position + 1;
        call(CHECK, "commit again", member.commit(partition, newer)).await?;
        let got = call(CHECK, "committed", log.committed(group, topic, partition)).await?;
        ensure(got == Some(newer), CHECK, || {
            format!("after committing {newer} over {position}, read back {got:?}")
        })?;
        if let Some(entry) = expected.first_mut() {
            entry.1 = newer;
        }
    }
    call(CHECK, "leave", member.leave()).await?;
    for &(partition, position) in &expected {
        let got = call(
            CHECK,
            "committed after leave",
            log.committed(group, topic, partition),
        )
        .await?;
        ensure(got == Some(position), CHECK, || {
            format!("after leave, {group} {topic}/{partition} reads {got:?}, committed {position}")
        })?;
    }
    let fresh = format!("{group}-never-joined");
    let got = call(
        CHECK,
        "committed of a fresh group",
        log.committed(&fresh, topic, 0),
    )
    .await?;
    ensure(got.is_none(), CHECK, || {
        format!("group {fresh} never committed, yet committed() returns {got:?}")
    })
}

/// The suite checked against itself: an in-memory log that keeps the contract passes it, and
/// the same log with one fault injected fails the check meant to catch that fault.
#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use tokio::sync::Notify;

    use super::*;
    use crate::{GroupEvent, GroupMember, Watermarks};

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Fault {
        None,
        /// Offsets advance by two per record.
        OffsetGap,
        /// Headers come back in reverse order.
        ReversedHeaders,
        /// A missing key comes back as an empty key.
        NoneKeyBecomesEmpty,
        /// An empty read returns at once instead of waiting.
        NoWait,
        /// A reader sees only what existed when it was created.
        Snapshot,
        /// The end watermark lags one behind.
        LaggingEnd,
        /// The lone member is not given the last partition.
        PartialAssignment,
        /// Commits are dropped.
        LostCommits,
    }

    #[derive(Default)]
    struct State {
        topics: HashMap<String, Vec<Vec<StoredRecord>>>,
        committed: HashMap<(String, String, u32), u64>,
    }

    struct Inner {
        fault: Fault,
        state: Mutex<State>,
        appended: Notify,
    }

    struct MemLog(Arc<Inner>);

    impl MemLog {
        fn new(fault: Fault, topic: &str, partitions: usize) -> Self {
            let mut state = State::default();
            state
                .topics
                .insert(topic.to_owned(), vec![Vec::new(); partitions]);
            Self(Arc::new(Inner {
                fault,
                state: Mutex::new(state),
                appended: Notify::new(),
            }))
        }
    }

    fn unknown(topic: &str, partition: u32) -> LogError {
        LogError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        }
    }

    impl Inner {
        fn with_partition<T>(
            &self,
            topic: &str,
            partition: u32,
            f: impl FnOnce(&mut Vec<StoredRecord>) -> T,
        ) -> Result<T, LogError> {
            let mut state = self.state.lock().unwrap();
            let records = state
                .topics
                .get_mut(topic)
                .and_then(|t| t.get_mut(partition as usize))
                .ok_or_else(|| unknown(topic, partition))?;
            Ok(f(records))
        }
    }

    struct MemReader {
        inner: Arc<Inner>,
        topic: String,
        partition: u32,
        position: u64,
        limit: Option<u64>,
    }

    impl LogReader for MemReader {
        async fn next_batch(
            &mut self,
            max: usize,
            wait: Duration,
        ) -> Result<Vec<StoredRecord>, LogError> {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = self.inner.appended.notified();
                let step = if self.inner.fault == Fault::OffsetGap {
                    2
                } else {
                    1
                };
                let (position, limit) = (self.position, self.limit);
                let batch: Vec<StoredRecord> =
                    self.inner
                        .with_partition(&self.topic, self.partition, |records| {
                            records
                                .iter()
                                .filter(|r| {
                                    r.offset >= position && limit.is_none_or(|l| r.offset < l)
                                })
                                .take(max)
                                .cloned()
                                .collect()
                        })?;
                if let Some(last) = batch.last() {
                    self.position = last.offset + step;
                    return Ok(batch);
                }
                if self.inner.fault == Fault::NoWait
                    || tokio::time::timeout_at(deadline, notified).await.is_err()
                {
                    return Ok(Vec::new());
                }
            }
        }

        fn position(&self) -> u64 {
            self.position
        }
    }

    struct MemMember {
        inner: Arc<Inner>,
        group: String,
        topic: String,
        events: VecDeque<GroupEvent>,
        owned: Vec<u32>,
    }

    impl GroupMember for MemMember {
        async fn next_event(&mut self) -> Result<GroupEvent, LogError> {
            match self.events.pop_front() {
                Some(event) => Ok(event),
                None => std::future::pending().await,
            }
        }

        fn assignment(&self) -> Vec<u32> {
            self.owned.clone()
        }

        async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), LogError> {
            if self.inner.fault != Fault::LostCommits {
                self.inner.state.lock().unwrap().committed.insert(
                    (self.group.clone(), self.topic.clone(), partition),
                    next_offset,
                );
            }
            Ok(())
        }

        async fn leave(self) -> Result<(), LogError> {
            Ok(())
        }
    }

    impl Log for MemLog {
        type Reader = MemReader;
        type Member = MemMember;

        async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
            let state = self.0.state.lock().unwrap();
            let count = state
                .topics
                .get(topic)
                .ok_or_else(|| unknown(topic, 0))?
                .len();
            Ok(u32::try_from(count).unwrap())
        }

        async fn append(
            &self,
            topic: &str,
            partition: u32,
            records: Vec<Record>,
        ) -> Result<Vec<u64>, LogError> {
            let fault = self.0.fault;
            let offsets = self.0.with_partition(topic, partition, |stored| {
                let step = if fault == Fault::OffsetGap { 2 } else { 1 };
                let mut next = stored.last().map_or(0, |r| r.offset + step);
                let mut offsets = Vec::new();
                for mut record in records {
                    if fault == Fault::ReversedHeaders {
                        record.headers.reverse();
                    }
                    if fault == Fault::NoneKeyBecomesEmpty && record.key.is_none() {
                        record.key = Some(Bytes::new());
                    }
                    stored.push(StoredRecord {
                        offset: next,
                        timestamp_ms: 1_700_000_000_000,
                        record,
                    });
                    offsets.push(next);
                    next += step;
                }
                offsets
            })?;
            self.0.appended.notify_waiters();
            Ok(offsets)
        }

        async fn watermarks(&self, topic: &str, partition: u32) -> Result<Watermarks, LogError> {
            let fault = self.0.fault;
            self.0.with_partition(topic, partition, |stored| {
                let step = if fault == Fault::OffsetGap { 2 } else { 1 };
                let end = stored.last().map_or(0, |r| r.offset + step);
                let end = if fault == Fault::LaggingEnd {
                    end.saturating_sub(1)
                } else {
                    end
                };
                Watermarks { start: 0, end }
            })
        }

        async fn reader(
            &self,
            topic: &str,
            partition: u32,
            from: u64,
        ) -> Result<MemReader, LogError> {
            let end = self.watermarks(topic, partition).await?.end;
            Ok(MemReader {
                inner: Arc::clone(&self.0),
                topic: topic.to_owned(),
                partition,
                position: from,
                limit: (self.0.fault == Fault::Snapshot).then_some(end),
            })
        }

        async fn join_group(&self, group: &str, topic: &str) -> Result<MemMember, LogError> {
            let count = self.partition_count(topic).await?;
            let mut partitions: Vec<u32> = (0..count).collect();
            if self.0.fault == Fault::PartialAssignment {
                partitions.pop();
            }
            Ok(MemMember {
                inner: Arc::clone(&self.0),
                group: group.to_owned(),
                topic: topic.to_owned(),
                events: VecDeque::from([GroupEvent::Assigned {
                    partitions: partitions.clone(),
                    generation: 1,
                }]),
                owned: partitions,
            })
        }

        async fn committed(
            &self,
            group: &str,
            topic: &str,
            partition: u32,
        ) -> Result<Option<u64>, LogError> {
            let state = self.0.state.lock().unwrap();
            Ok(state
                .committed
                .get(&(group.to_owned(), topic.to_owned(), partition))
                .copied())
        }
    }

    #[tokio::test]
    async fn a_log_that_keeps_the_contract_passes() {
        let log = MemLog::new(Fault::None, "t", 3);
        run_all(&log, "t", "g").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_fault_fails_its_check() {
        let cases = [
            (Fault::OffsetGap, "offsets_contiguous"),
            (Fault::ReversedHeaders, "records_intact"),
            (Fault::NoneKeyBecomesEmpty, "records_intact"),
            (Fault::NoWait, "empty_partition_times_out"),
            (Fault::Snapshot, "read_from_any_offset"),
            (Fault::LaggingEnd, "watermarks_follow_appends"),
            (Fault::PartialAssignment, "lone_member_owns_every_partition"),
            (Fault::LostCommits, "commit_then_committed"),
        ];
        // Concurrently: some faults are only caught when a wait runs out.
        let mut runs = tokio::task::JoinSet::new();
        for (fault, check) in cases {
            runs.spawn(async move {
                let log = MemLog::new(fault, "t", 3);
                (fault, check, run_all(&log, "t", "g").await)
            });
        }
        while let Some(done) = runs.join_next().await {
            let (fault, check, result) = done.unwrap();
            let err = result.unwrap_err();
            assert_eq!(err.check, check, "{fault:?}: {err}");
        }
    }

    #[tokio::test]
    async fn preconditions_are_checked() {
        let log = MemLog::new(Fault::None, "t", 1);
        let err = run_all(&log, "t", "g").await.unwrap_err();
        assert_eq!(err.check, "run_all");
        let log = MemLog::new(Fault::None, "t", 2);
        log.append("t", 1, vec![Record::new("k", "v")])
            .await
            .unwrap();
        let err = run_all(&log, "t", "g").await.unwrap_err();
        assert!(err.detail.contains("must be empty"), "{err}");
    }
}
