//! Crash test of the embedded log: `kill -9` of a separate process while it appends.
//!
//! The parent test re-executes this test binary running only [`crash_child`] (ignored, so a
//! normal run skips it) with `PROVENANT_CRASH_CHILD_DIR` set. The child appends from three
//! concurrent tasks (so group commit is in play) to one partition with small segments (so
//! rotation is in play) and prints `ACK trial task seq offset` for each record only after
//! `append` returned. The parent kills it with SIGKILL after a random delay, reopens the
//! directory and checks, cumulatively over all trials on the same directory:
//!
//! * every acknowledged record is at its acknowledged offset with intact key, headers, value;
//! * every readable record is one a child attempted (decodable, bytes as generated), each at
//!   most once, and per appending task a contiguous prefix of its sequence, in order;
//! * trials appear in order in the log (a restarted writer continues after the cut).
//!
//! 20 trials by default (a few seconds); `PROVENANT_CRASH_TRIALS` and `PROVENANT_CRASH_SEED`
//! change the count and make a run reproducible.

// Test helpers outside `#[test]` functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, LogReader, RAW_TOPIC, Record, StoredRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHILD_DIR_ENV: &str = "PROVENANT_CRASH_CHILD_DIR";
const CHILD_TRIAL_ENV: &str = "PROVENANT_CRASH_TRIAL";
const TASKS: u64 = 3;
const PARTITION: u32 = 0;

fn config() -> EmbeddedConfig {
    EmbeddedConfig {
        segment_bytes: 16 * 1024,
        ..EmbeddedConfig::default()
    }
}

/// The record a child appends for `(trial, task, seq)`: everything is derived from the id,
/// so the parent can check the bytes.
fn expected_record(trial: u64, task: u64, seq: u64) -> Record {
    let prefix = format!("{trial}:{task}:{seq}:");
    let filler_len = 50 + ((trial * 7919 + task * 104_729 + seq * 31) % 700) as usize;
    let mut value = prefix.into_bytes();
    value.extend((0..filler_len).map(|i| (i as u64 ^ seq ^ (task << 5)) as u8));
    Record::new(format!("task-{task}"), value).with_header("trial", trial.to_string())
}

fn parse_id(value: &Bytes) -> Option<(u64, u64, u64)> {
    let mut parts = value.splitn(4, |b| *b == b':');
    let mut next = || -> Option<u64> { std::str::from_utf8(parts.next()?).ok()?.parse().ok() };
    Some((next()?, next()?, next()?))
}

/// The child: appends until killed (or 30 s, so it never outlives a dead parent for long).
#[test]
#[ignore = "run by kill_9_during_appends_loses_no_acknowledged_record as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let trial: u64 = std::env::var(CHILD_TRIAL_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = EmbeddedLog::open(&dir, config()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(trial * 1000 + task);
                let mut seq = 0u64;
                while tokio::time::Instant::now() < deadline {
                    let batch = rng.random_range(1..=4u64);
                    let records: Vec<Record> = (seq..seq + batch)
                        .map(|s| expected_record(trial, task, s))
                        .collect();
                    let offsets = log.append(RAW_TOPIC, PARTITION, records).await.unwrap();
                    let mut lines = String::new();
                    for (i, offset) in offsets.iter().enumerate() {
                        lines
                            .push_str(&format!("ACK {trial} {task} {} {offset}\n", seq + i as u64));
                    }
                    // One write per batch: a line is either whole or absent when killed.
                    let mut out = std::io::stdout().lock();
                    out.write_all(lines.as_bytes()).unwrap();
                    out.flush().unwrap();
                    seq += batch;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Id {
    trial: u64,
    task: u64,
    seq: u64,
}

/// Runs one child for `trial`, kills it after a random delay, returns its acknowledgements.
fn run_child(dir: &Path, trial: u64, rng: &mut StdRng) -> Vec<(Id, u64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_TRIAL_ENV, trial.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep the child's stderr (a panic message) for the failure message.
    let mut stderr = child.stderr.take().unwrap();
    let stderr_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        // Only whole lines count: `lines()` yields a final unterminated fragment too, so
        // read raw and drop anything without its newline.
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.ends_with('\n') && line.starts_with("ACK ") {
                let _ = tx.send(line.trim_end().to_owned());
            }
            line.clear();
        }
    });
    // Wait for the child to be appending, then let it run a random while.
    let first = rx.recv_timeout(Duration::from_secs(60));
    if first.is_ok() {
        std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    let stderr = stderr_thread.join().unwrap();
    assert!(
        first.is_ok(),
        "trial {trial}: the child acknowledged nothing; its stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "trial {trial}: the child failed before it was killed:\n{stderr}"
    );
    first
        .into_iter()
        .chain(rx.try_iter())
        .map(|line| {
            let f: Vec<u64> = line
                .split(' ')
                .skip(1)
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(f.len(), 4, "bad ack line {line:?}");
            (
                Id {
                    trial: f[0],
                    task: f[1],
                    seq: f[2],
                },
                f[3],
            )
        })
        .collect()
}

fn read_partition(dir: &Path) -> Vec<StoredRecord> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let log = EmbeddedLog::open(dir, config()).unwrap();
        let marks = log.watermarks(RAW_TOPIC, PARTITION).await.unwrap();
        assert_eq!(marks.start, 0);
        let mut reader = log.reader(RAW_TOPIC, PARTITION, 0).await.unwrap();
        let mut out = Vec::new();
        while reader.position() < marks.end {
            let batch = reader
                .next_batch(1000, Duration::from_millis(10))
                .await
                .unwrap();
            assert!(!batch.is_empty());
            out.extend(batch);
        }
        out
    })
}

#[test]
fn kill_9_during_appends_loses_no_acknowledged_record() {
    let trials: u64 = std::env::var("PROVENANT_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("PROVENANT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let ctx = format!("(PROVENANT_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<u64, Id> = BTreeMap::new();
    let mut segments_seen = 0usize;
    for trial in 0..trials {
        for (id, offset) in run_child(tmp.path(), trial, &mut rng) {
            let previous = acked.insert(offset, id);
            assert!(
                previous.is_none(),
                "offset {offset} acknowledged twice {ctx}"
            );
        }
        let records = read_partition(tmp.path());

        let mut seen = HashSet::new();
        let mut next_seq: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut last_trial = 0u64;
        for (i, stored) in records.iter().enumerate() {
            assert_eq!(stored.offset, i as u64, "offsets not contiguous {ctx}");
            let Some((trial_of, task, seq)) = parse_id(&stored.record.value) else {
                panic!(
                    "garbage at offset {} after trial {trial} {ctx}",
                    stored.offset
                );
            };
            let id = Id {
                trial: trial_of,
                task,
                seq,
            };
            assert!(trial_of <= trial && task < TASKS, "unknown id {id:?} {ctx}");
            assert_eq!(
                stored.record,
                expected_record(trial_of, task, seq),
                "bytes of {id:?} at offset {} {ctx}",
                stored.offset
            );
            assert!(seen.insert(id), "{id:?} readable twice {ctx}");
            assert!(
                trial_of >= last_trial,
                "trial {trial_of} after {last_trial} {ctx}"
            );
            last_trial = trial_of;
            let expected = next_seq.entry((trial_of, task)).or_insert(0);
            assert_eq!(
                seq, *expected,
                "task {task} of trial {trial_of}: seq {seq} where {expected} was next {ctx}"
            );
            *expected += 1;
        }
        for (offset, id) in &acked {
            let stored = records.get(*offset as usize);
            assert!(
                stored.is_some(),
                "acknowledged {id:?} at offset {offset} lost after trial {trial}: end is {} {ctx}",
                records.len()
            );
            let got = parse_id(&stored.unwrap().record.value);
            assert_eq!(
                got,
                Some((id.trial, id.task, id.seq)),
                "acknowledged offset {offset} holds another record {ctx}"
            );
        }
        segments_seen = std::fs::read_dir(tmp.path().join("topics").join(RAW_TOPIC).join("0"))
            .unwrap()
            .count();
    }
    assert!(
        acked.len() as u64 >= trials,
        "too few acknowledgements to mean anything {ctx}"
    );
    assert!(segments_seen > 1, "no segment rotation happened {ctx}");
    println!(
        "{trials} kill -9 trials, {} acknowledged records checked, {segments_seen} segments {ctx}",
        acked.len()
    );
}
