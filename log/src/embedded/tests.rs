use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;
use crate::{LEDGER_TOPIC, RAW_TOPIC};

fn small_segments() -> EmbeddedConfig {
    EmbeddedConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..EmbeddedConfig::default()
    }
}

fn record(i: u64) -> Record {
    Record::new(
        format!("key-{i}"),
        format!("value-{i}-{}", "x".repeat((i % 37) as usize)),
    )
    .with_header("n", i.to_string())
}

fn segment_files(dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("topics").join(topic).join(partition.to_string()))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
    files.sort();
    files
}

async fn read_all(log: &EmbeddedLog, topic: &str, partition: u32, from: u64) -> Vec<StoredRecord> {
    let end = log.watermarks(topic, partition).await.unwrap().end;
    let mut reader = log.reader(topic, partition, from).await.unwrap();
    let mut out = Vec::new();
    while reader.position() < end {
        let batch = reader
            .next_batch(7, Duration::from_millis(10))
            .await
            .unwrap();
        assert!(!batch.is_empty(), "reader stalled at {}", reader.position());
        out.extend(batch);
    }
    out
}

fn open(dir: &Path, config: EmbeddedConfig) -> EmbeddedLog {
    EmbeddedLog::open(dir, config).unwrap()
}

#[tokio::test]
async fn first_open_creates_the_three_topics_and_persists_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    for topic in TOPICS {
        assert_eq!(
            log.partition_count(topic).await.unwrap(),
            DEFAULT_PARTITIONS
        );
    }
    log.create_topic("other", 2).unwrap();
    log.create_topic("other", 2).unwrap();
    assert!(log.create_topic("other", 3).is_err());
    assert!(log.create_topic("../escape", 1).is_err());
    drop(log);
    // The persisted counts win over the configuration on reopen.
    let log = open(
        tmp.path(),
        EmbeddedConfig {
            partitions: 9,
            ..EmbeddedConfig::default()
        },
    );
    assert_eq!(
        log.partition_count(RAW_TOPIC).await.unwrap(),
        DEFAULT_PARTITIONS
    );
    assert_eq!(log.partition_count("other").await.unwrap(), 2);
    assert!(matches!(
        log.partition_count("missing").await,
        Err(LogError::UnknownPartition { .. })
    ));
    assert!(matches!(
        log.append("other", 2, vec![record(0)]).await,
        Err(LogError::UnknownPartition { partition: 2, .. })
    ));
}

#[tokio::test]
async fn offsets_are_contiguous_across_rotation_and_readable_from_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), small_segments());
    let mut expected = Vec::new();
    let mut next = 0u64;
    for batch in 0..40u64 {
        let records: Vec<Record> = (0..(batch % 5 + 1)).map(|j| record(next + j)).collect();
        let offsets = log.append(RAW_TOPIC, 1, records.clone()).await.unwrap();
        assert_eq!(
            offsets,
            (next..next + records.len() as u64).collect::<Vec<_>>()
        );
        next += records.len() as u64;
        expected.extend(records);
    }
    assert!(
        segment_files(tmp.path(), RAW_TOPIC, 1).len() > 5,
        "expected several segments"
    );
    assert_eq!(
        log.watermarks(RAW_TOPIC, 1).await.unwrap(),
        Watermarks {
            start: 0,
            end: next
        }
    );
    assert_eq!(
        log.watermarks(RAW_TOPIC, 0).await.unwrap(),
        Watermarks { start: 0, end: 0 }
    );
    for from in 0..=next {
        let got = read_all(&log, RAW_TOPIC, 1, from).await;
        let want: Vec<&Record> = expected.iter().skip(from as usize).collect();
        assert_eq!(got.len(), want.len(), "from {from}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.offset, from + i as u64);
            assert_eq!(&g.record, w);
            assert!(g.timestamp_ms > 0);
        }
    }
    // Same after reopening (recovery rebuilds the index).
    drop(log);
    let log = open(tmp.path(), small_segments());
    assert_eq!(log.watermarks(RAW_TOPIC, 1).await.unwrap().end, next);
    let got = read_all(&log, RAW_TOPIC, 1, 13).await;
    assert_eq!(got.first().unwrap().offset, 13);
    assert_eq!(got.len() as u64, next - 13);
    let offsets = log.append(RAW_TOPIC, 1, vec![record(next)]).await.unwrap();
    assert_eq!(offsets, vec![next]);
    assert!(matches!(
        log.reader(RAW_TOPIC, 1, next + 2).await,
        Err(LogError::Fatal { .. })
    ));
}

#[tokio::test]
async fn large_records_and_record_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        segment_bytes: 1024,
        read_bytes: 100,
        max_record_bytes: 10_000,
        ..EmbeddedConfig::default()
    };
    let log = open(tmp.path(), config);
    let big = Record::new("k", vec![7u8; 5000]);
    let small = Record::new("k", "s");
    log.append(
        LEDGER_TOPIC,
        0,
        vec![small.clone(), big.clone(), small.clone()],
    )
    .await
    .unwrap();
    let got = read_all(&log, LEDGER_TOPIC, 0, 0).await;
    let values: Vec<usize> = got.iter().map(|r| r.record.value.len()).collect();
    assert_eq!(values, vec![1, 5000, 1]);
    let err = log
        .append(LEDGER_TOPIC, 0, vec![Record::new("k", vec![0u8; 20_000])])
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("max_record_bytes"), "{err}");
    assert_eq!(
        log.append(LEDGER_TOPIC, 0, vec![]).await.unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(log.watermarks(LEDGER_TOPIC, 0).await.unwrap().end, 3);
}

#[tokio::test]
async fn reader_wakes_up_on_append_and_times_out_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    let mut reader = log.reader(RAW_TOPIC, 2, 0).await.unwrap();
    let started = Instant::now();
    assert!(
        reader
            .next_batch(10, Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(50));

    let writer = log.clone();
    let append = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer
            .append(RAW_TOPIC, 2, vec![record(0), record(1)])
            .await
            .unwrap()
    });
    let started = Instant::now();
    let batch = reader
        .next_batch(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reader was not woken"
    );
    assert_eq!(append.await.unwrap(), vec![0, 1]);
    assert_eq!(
        batch.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(reader.position(), 2);
    assert!(
        reader
            .next_batch(0, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_reader_is_told_when_the_log_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    let mut reader = log.reader(RAW_TOPIC, 0, 0).await.unwrap();
    drop(log);
    assert!(matches!(
        reader.next_batch(1, Duration::from_secs(30)).await,
        Err(LogError::Closed)
    ));
}

// The gate is a std mutex held across awaits on purpose: it blocks the writer thread.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_one_fdatasync() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    log.append(RAW_TOPIC, 0, vec![record(0)]).await.unwrap();
    let part = log.partition(RAW_TOPIC, 0).unwrap();
    let before = log.data_syncs();

    // Hold the writer: the first append it receives waits, the others queue behind it.
    let gate = part.gate.lock().unwrap();
    let appends: Vec<_> = (0..64u64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(RAW_TOPIC, 0, vec![record(i)]).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while part.queued() < 64 {
        assert!(Instant::now() < deadline, "appends did not queue");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(gate);
    let mut offsets = Vec::new();
    for append in appends {
        offsets.extend(append.await.unwrap().unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (1..65).collect::<Vec<u64>>());
    assert_eq!(
        log.data_syncs() - before,
        1,
        "64 concurrent appends, one sync"
    );

    assert_eq!(log.watermarks(RAW_TOPIC, 0).await.unwrap().end, 65);
}

#[tokio::test]
async fn retention_deletes_only_archived_and_old_segments() {
    let tmp = tempfile::tempdir().unwrap();
    // Old: retention zero, every segment is past it as soon as it is written.
    let config = EmbeddedConfig {
        retention: Duration::ZERO,
        ..small_segments()
    };
    let log = open(tmp.path(), config.clone());
    for i in 0..60 {
        log.append(RAW_TOPIC, 3, vec![record(i)]).await.unwrap();
    }
    let files = segment_files(tmp.path(), RAW_TOPIC, 3);
    assert!(files.len() >= 4, "{files:?}");
    // Nothing archived yet: nothing deleted.
    log.apply_retention().await.unwrap();
    assert_eq!(segment_files(tmp.path(), RAW_TOPIC, 3), files);
    assert_eq!(log.watermarks(RAW_TOPIC, 3).await.unwrap().start, 0);

    // Archived below the middle of the third segment: the first two go, the third stays.
    let bases: Vec<u64> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    let marks = log.mark_archived(RAW_TOPIC, 3, bases[2] + 1).await.unwrap();
    assert_eq!(
        marks,
        Watermarks {
            start: bases[2],
            end: 60
        }
    );
    assert_eq!(segment_files(tmp.path(), RAW_TOPIC, 3), files[2..].to_vec());
    assert_eq!(log.watermarks(RAW_TOPIC, 3).await.unwrap().start, bases[2]);
    assert!(matches!(
        log.reader(RAW_TOPIC, 3, bases[2] - 1).await,
        Err(LogError::OffsetOutOfRange { requested, start, .. }) if requested == bases[2] - 1 && start == bases[2]
    ));
    let got = read_all(&log, RAW_TOPIC, 3, bases[2]).await;
    assert_eq!(got.first().unwrap().offset, bases[2]);

    // A reader left behind by retention is told, never moved forward.
    let mut behind = log.reader(RAW_TOPIC, 3, bases[2]).await.unwrap();
    // The mark never moves back, and the active segment is never deleted.
    log.mark_archived(RAW_TOPIC, 3, 0).await.unwrap();
    assert_eq!(log.watermarks(RAW_TOPIC, 3).await.unwrap().start, bases[2]);
    let marks = log.mark_archived(RAW_TOPIC, 3, 60).await.unwrap();
    assert_eq!(marks.start, *bases.last().unwrap());
    assert_eq!(segment_files(tmp.path(), RAW_TOPIC, 3).len(), 1);
    assert!(matches!(
        behind.next_batch(10, Duration::ZERO).await,
        Err(LogError::OffsetOutOfRange { .. })
    ));
    drop(log);
    // The start survives reopening.
    let log = open(tmp.path(), config);
    assert_eq!(
        log.watermarks(RAW_TOPIC, 3).await.unwrap(),
        Watermarks {
            start: *bases.last().unwrap(),
            end: 60
        }
    );

    // Not old: with a week of retention, archived segments stay.
    let tmp2 = tempfile::tempdir().unwrap();
    let log = open(tmp2.path(), small_segments());
    for i in 0..60 {
        log.append(RAW_TOPIC, 3, vec![record(i)]).await.unwrap();
    }
    let files = segment_files(tmp2.path(), RAW_TOPIC, 3);
    let marks = log.mark_archived(RAW_TOPIC, 3, 60).await.unwrap();
    assert_eq!(marks.start, 0);
    assert_eq!(segment_files(tmp2.path(), RAW_TOPIC, 3), files);
}

#[tokio::test]
async fn group_has_one_member_and_committed_positions_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    assert_eq!(log.committed("sink", LEDGER_TOPIC, 1).await.unwrap(), None);
    let mut member = log.join_group("sink", LEDGER_TOPIC).await.unwrap();
    match member.next_event().await.unwrap() {
        GroupEvent::Assigned {
            partitions,
            generation,
        } => {
            assert_eq!(partitions, vec![0, 1, 2, 3]);
            assert_eq!(generation, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(member.assignment(), vec![0, 1, 2, 3]);
    // No further event while the log is open.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), member.next_event())
            .await
            .is_err()
    );
    assert!(log.join_group("sink", LEDGER_TOPIC).await.is_err());
    member.commit(1, 42).await.unwrap();
    member.commit(3, 7).await.unwrap();
    member.commit(1, 43).await.unwrap();
    assert!(matches!(
        member.commit(4, 1).await,
        Err(LogError::UnknownPartition { partition: 4, .. })
    ));
    assert_eq!(
        log.committed("sink", LEDGER_TOPIC, 1).await.unwrap(),
        Some(43)
    );
    assert_eq!(log.committed("sink", RAW_TOPIC, 1).await.unwrap(), None);
    assert_eq!(log.committed("other", LEDGER_TOPIC, 1).await.unwrap(), None);
    member.leave().await.unwrap();
    let mut again = log.join_group("sink", LEDGER_TOPIC).await.unwrap();
    assert!(matches!(
        again.next_event().await.unwrap(),
        GroupEvent::Assigned { generation: 2, .. }
    ));
    drop(log);
    assert!(matches!(again.next_event().await, Err(LogError::Closed)));
    assert!(matches!(again.commit(0, 1).await, Err(LogError::Closed)));

    let log = open(tmp.path(), EmbeddedConfig::default());
    assert_eq!(
        log.committed("sink", LEDGER_TOPIC, 1).await.unwrap(),
        Some(43)
    );
    assert_eq!(
        log.committed("sink", LEDGER_TOPIC, 3).await.unwrap(),
        Some(7)
    );
    assert_eq!(log.committed("sink", LEDGER_TOPIC, 0).await.unwrap(), None);
}

#[tokio::test]
async fn a_second_open_of_a_locked_directory_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    let err = EmbeddedLog::open(tmp.path(), EmbeddedConfig::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&tmp.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("already open"), "{message}");
    drop(log);
    open(tmp.path(), EmbeddedConfig::default());
}

/// Writes 10 records to one segment and returns the file and the byte positions of each
/// record's frame.
async fn ten_records(dir: &Path) -> (PathBuf, Vec<u64>) {
    let log = open(dir, EmbeddedConfig::default());
    let mut positions = Vec::new();
    let mut pos = 0u64;
    for i in 0..10 {
        positions.push(pos);
        pos += frame::frame_len(&record(i)) as u64;
        log.append(RAW_TOPIC, 0, vec![record(i)]).await.unwrap();
    }
    drop(log);
    let file = segment_files(dir, RAW_TOPIC, 0).pop().unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), pos);
    (file, positions)
}

async fn assert_recovered(dir: &Path, file: &Path, keep: u64, len: u64) {
    let log = open(dir, EmbeddedConfig::default());
    assert_eq!(log.watermarks(RAW_TOPIC, 0).await.unwrap().end, keep);
    assert_eq!(std::fs::metadata(file).unwrap().len(), len, "file cut");
    let got = read_all(&log, RAW_TOPIC, 0, 0).await;
    assert_eq!(got.len() as u64, keep);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.record, record(i as u64));
    }
    // Appends continue right after the cut.
    assert_eq!(
        log.append(RAW_TOPIC, 0, vec![record(keep)]).await.unwrap(),
        vec![keep]
    );
    drop(log);
    let log = open(dir, EmbeddedConfig::default());
    assert_eq!(read_all(&log, RAW_TOPIC, 0, 0).await.len() as u64, keep + 1);
}

#[tokio::test]
async fn a_corrupt_last_record_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, positions) = ten_records(tmp.path()).await;
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    assert_recovered(tmp.path(), &file, 9, positions[9]).await;
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_cut_is_logged_with_where_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, positions) = ten_records(tmp.path()).await;
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(positions[9] + 12).unwrap();
    drop(f);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let log = tracing::subscriber::with_default(subscriber, || {
        EmbeddedLog::open(tmp.path(), EmbeddedConfig::default())
    })
    .unwrap();
    assert_eq!(log.watermarks(RAW_TOPIC, 0).await.unwrap().end, 9);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("cut torn tail of segment"))
        .unwrap_or_else(|| panic!("no cut logged in {text:?}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&format!("cut_at={}", positions[9])), "{line}");
    assert!(line.contains("dropped_bytes=12"), "{line}");
    assert!(line.contains("last_good_offset=8"), "{line}");
    assert!(line.contains(&file.display().to_string()), "{line}");
}

#[tokio::test]
async fn garbage_after_the_last_record_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, _) = ten_records(tmp.path()).await;
    let good = std::fs::metadata(&file).unwrap().len();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[0u8; 700]);
    bytes.extend_from_slice(b"\x20\x00\x00\x00garbage that is not a frame at all");
    std::fs::write(&file, &bytes).unwrap();
    assert_recovered(tmp.path(), &file, 10, good).await;
}

#[tokio::test]
async fn a_record_truncated_in_the_middle_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, positions) = ten_records(tmp.path()).await;
    // Inside the header, and inside the body.
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(positions[9] + 12).unwrap();
    drop(f);
    assert_recovered(tmp.path(), &file, 9, positions[9]).await;
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(positions[5] + 3).unwrap();
    drop(f);
    assert_recovered(tmp.path(), &file, 5, positions[5]).await;
}

#[tokio::test]
async fn a_well_formed_record_with_the_wrong_offset_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, positions) = ten_records(tmp.path()).await;
    // A stale copy of record 3 where record 9 should be: valid CRC, wrong offset.
    let bytes = std::fs::read(&file).unwrap();
    let mut stale = bytes[..positions[9] as usize].to_vec();
    stale.extend_from_slice(&bytes[positions[3] as usize..positions[4] as usize]);
    std::fs::write(&file, &stale).unwrap();
    assert_recovered(tmp.path(), &file, 9, positions[9]).await;
}

#[tokio::test]
async fn corruption_inside_a_sealed_segment_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), small_segments());
    for i in 0..40 {
        log.append(RAW_TOPIC, 0, vec![record(i)]).await.unwrap();
    }
    drop(log);
    let files = segment_files(tmp.path(), RAW_TOPIC, 0);
    assert!(files.len() >= 3);
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&files[1], &bytes).unwrap();
    let err = EmbeddedLog::open(tmp.path(), small_segments()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LogError::Fatal { .. }), "{message}");
    assert!(message.contains("sealed segment"), "{message}");
    assert!(
        message.contains(&files[1].display().to_string()),
        "{message}"
    );
    // Nothing was cut.
    assert_eq!(std::fs::read(&files[1]).unwrap(), bytes);

    // A missing segment in the middle is an error too.
    bytes[40] ^= 1;
    std::fs::write(&files[1], &bytes).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let message = EmbeddedLog::open(tmp.path(), small_segments())
        .unwrap_err()
        .to_string();
    assert!(message.contains("missing"), "{message}");
}

#[tokio::test]
async fn corruption_after_open_is_reported_by_the_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    for i in 0..5 {
        log.append(RAW_TOPIC, 0, vec![record(i)]).await.unwrap();
    }
    let file = segment_files(tmp.path(), RAW_TOPIC, 0).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let mut reader = log.reader(RAW_TOPIC, 0, 0).await.unwrap();
    let err = reader.next_batch(10, Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("corrupt record"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_missing_partition_directory_is_an_error_not_an_empty_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    log.append(LEDGER_TOPIC, 2, vec![record(0)]).await.unwrap();
    drop(log);
    let part_dir = tmp.path().join("topics").join(LEDGER_TOPIC).join("2");
    std::fs::remove_dir_all(&part_dir).unwrap();
    let message = EmbeddedLog::open(tmp.path(), EmbeddedConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&part_dir.display().to_string()),
        "{message}"
    );
    std::fs::create_dir(&part_dir).unwrap();
    let message = EmbeddedLog::open(tmp.path(), EmbeddedConfig::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("no segment file"), "{message}");
}

#[tokio::test]
async fn lowering_max_record_bytes_keeps_larger_records_written_before() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open(tmp.path(), EmbeddedConfig::default());
    let big = Record::new("k", vec![1u8; 50_000]);
    log.append(RAW_TOPIC, 0, vec![big.clone()]).await.unwrap();
    drop(log);
    let small = EmbeddedConfig {
        max_record_bytes: 1000,
        ..EmbeddedConfig::default()
    };
    let log = open(tmp.path(), small);
    assert_eq!(log.watermarks(RAW_TOPIC, 0).await.unwrap().end, 1);
    assert_eq!(read_all(&log, RAW_TOPIC, 0, 0).await[0].record, big);
    assert!(log.append(RAW_TOPIC, 0, vec![big]).await.is_err());
    let too_large = EmbeddedConfig {
        max_record_bytes: MAX_RECORD_BYTES_LIMIT + 1,
        ..EmbeddedConfig::default()
    };
    drop(log);
    assert!(EmbeddedLog::open(tmp.path(), too_large).is_err());
}
