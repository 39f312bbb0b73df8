//! The embedded log against plain file I/O on the same disk, with the same bytes, in one run.
//!
//! * **append**: `APPENDERS` tasks append ~500-byte records concurrently to one partition
//!   in batches of `B` records (`B` in `BATCHES`); the log group-commits them. Baseline: one
//!   thread writes the very bytes the log wrote (read back from its segment files), `B`
//!   frames per `write`, each followed by `fdatasync` — a log without group commit.
//! * **read**: one reader reads a partition of `READ_RECORDS` records from offset 0 with
//!   `next_batch` (CRC check and decoding included). Baseline: `cat` of the same segment
//!   files to `/dev/null`. Both with a warm page cache (each side runs once untimed first).
//!
//! Each figure is the median of `ROUNDS` rounds. MB/s counts bytes on disk (frames), 10^6.
//! Run: `cargo bench -p provenant-log --bench embedded` (the data goes to a temporary
//! directory under `$TMPDIR`, so set `TMPDIR` to measure another disk).

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, LogReader, Record};

const APPENDERS: usize = 8;
const RECORDS_PER_APPENDER: usize = 2_500;
const BATCHES: [usize; 3] = [1, 4, 16];
const VALUE_BYTES: usize = 500;
const READ_RECORDS: usize = 200_000;
const ROUNDS: usize = 3;
const TOPIC: &str = "bench";

type BoxError = Box<dyn Error + Send + Sync>;

/// Incompressible bytes (xorshift).
fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

fn record(appender: usize, n: usize) -> Record {
    let seed = (appender as u64) << 32 | n as u64;
    Record::new(
        format!("appender-{appender:02}-{n:08}"),
        noise(seed, VALUE_BYTES),
    )
}

fn segment_files(dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.join("topics").join(TOPIC).join("0"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "log") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn bytes_of(files: &[PathBuf]) -> Result<u64, BoxError> {
    let mut total = 0;
    for f in files {
        total += std::fs::metadata(f)?.len();
    }
    Ok(total)
}

#[derive(Clone, Copy, Debug)]
struct Figure {
    records: usize,
    bytes: u64,
    elapsed: Duration,
    syncs: u64,
}

impl Figure {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
    fn rec_s(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

fn median(mut figures: Vec<Figure>) -> Result<Figure, BoxError> {
    figures.sort_by_key(|f| f.elapsed);
    figures
        .get(figures.len() / 2)
        .copied()
        .ok_or_else(|| "no rounds".into())
}

/// Concurrent appends to one partition; returns the figure and the data directory.
async fn embedded_append(batch: usize) -> Result<(Figure, tempfile::TempDir), BoxError> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().to_owned();
    let log =
        tokio::task::spawn_blocking(move || EmbeddedLog::open(path, EmbeddedConfig::default()))
            .await??;
    log.create_topic(TOPIC, 1)?;
    let data: Vec<Vec<Record>> = (0..APPENDERS)
        .map(|a| (0..RECORDS_PER_APPENDER).map(|n| record(a, n)).collect())
        .collect();
    let syncs_before = log.data_syncs();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for records in data {
        let log = log.clone();
        tasks.spawn(async move {
            for chunk in records.chunks(batch) {
                log.append(TOPIC, 0, chunk.to_vec()).await?;
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = started.elapsed();
    let syncs = log.data_syncs() - syncs_before;
    drop(log);
    let bytes = bytes_of(&segment_files(tmp.path())?)?;
    Ok((
        Figure {
            records: APPENDERS * RECORDS_PER_APPENDER,
            bytes,
            elapsed,
            syncs,
        },
        tmp,
    ))
}

/// The same bytes, `batch` frames per write, one fdatasync per write, one writer.
fn plain_write_fdatasync(source: &Path, batch: usize) -> Result<Figure, BoxError> {
    let mut data = Vec::new();
    for f in segment_files(source)? {
        data.extend(std::fs::read(f)?);
    }
    let records = APPENDERS * RECORDS_PER_APPENDER;
    // All records have the same size, so every frame has the same length.
    let frame = data.len() / records;
    let tmp = tempfile::tempdir()?;
    let mut file = File::create(tmp.path().join("plain.log"))?;
    let started = Instant::now();
    let mut syncs = 0;
    for chunk in data.chunks(frame * batch) {
        file.write_all(chunk)?;
        file.sync_data()?;
        syncs += 1;
    }
    Ok(Figure {
        records,
        bytes: data.len() as u64,
        elapsed: started.elapsed(),
        syncs,
    })
}

async fn fill_for_reading() -> Result<(EmbeddedLog, tempfile::TempDir), BoxError> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().to_owned();
    let log =
        tokio::task::spawn_blocking(move || EmbeddedLog::open(path, EmbeddedConfig::default()))
            .await??;
    log.create_topic(TOPIC, 1)?;
    let records: Vec<Record> = (0..READ_RECORDS).map(|n| record(0, n)).collect();
    for chunk in records.chunks(2_000) {
        log.append(TOPIC, 0, chunk.to_vec()).await?;
    }
    Ok((log, tmp))
}

async fn embedded_read(log: &EmbeddedLog, bytes: u64) -> Result<Figure, BoxError> {
    let started = Instant::now();
    let mut reader = log.reader(TOPIC, 0, 0).await?;
    let mut got = 0usize;
    let mut value_bytes = 0usize;
    while got < READ_RECORDS {
        let batch = reader.next_batch(10_000, Duration::from_secs(5)).await?;
        if batch.is_empty() {
            return Err(format!("read stalled at {got}").into());
        }
        got += batch.len();
        value_bytes += batch.iter().map(|r| r.record.value.len()).sum::<usize>();
    }
    let elapsed = started.elapsed();
    if value_bytes != READ_RECORDS * VALUE_BYTES {
        return Err("read back the wrong amount of data".into());
    }
    Ok(Figure {
        records: got,
        bytes,
        elapsed,
        syncs: 0,
    })
}

fn cat(files: &[PathBuf], bytes: u64) -> Result<Figure, BoxError> {
    let started = Instant::now();
    let status = Command::new("cat")
        .args(files)
        .stdout(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(format!("cat failed: {status}").into());
    }
    Ok(Figure {
        records: READ_RECORDS,
        bytes,
        elapsed,
        syncs: 0,
    })
}

fn row(name: &str, f: &Figure) -> String {
    format!(
        "| {name} | {} | {:.1} | {:.0} | {:.1} | {} |",
        f.records,
        f.mb_s(),
        f.rec_s(),
        f.elapsed.as_secs_f64() * 1e3,
        f.syncs
    )
}

async fn run() -> Result<(), BoxError> {
    let mut out = Vec::new();
    out.push(format!(
        "append: {APPENDERS} concurrent appenders x {RECORDS_PER_APPENDER} records of {VALUE_BYTES}-byte values, median of {ROUNDS}"
    ));
    out.push("| side | records | MB/s | records/s | ms | fdatasyncs |".to_owned());
    out.push("|---|---|---|---|---|---|".to_owned());
    let mut ratios = Vec::new();
    for batch in BATCHES {
        let mut log_rounds = Vec::new();
        let mut plain_rounds = Vec::new();
        for _ in 0..ROUNDS {
            let (figure, dir) = embedded_append(batch).await?;
            log_rounds.push(figure);
            let path = dir.path().to_owned();
            plain_rounds.push(
                tokio::task::spawn_blocking(move || plain_write_fdatasync(&path, batch)).await??,
            );
            drop(dir);
        }
        let log = median(log_rounds)?;
        let plain = median(plain_rounds)?;
        out.push(row(
            &format!("embedded log, {batch} record(s) per append, group commit"),
            &log,
        ));
        out.push(row(
            &format!("plain write + fdatasync, {batch} record(s) per write"),
            &plain,
        ));
        ratios.push(format!(
            "append, batch {batch}: embedded / plain = {:.2}x records/s",
            log.rec_s() / plain.rec_s()
        ));
    }

    let (log, dir) = fill_for_reading().await?;
    let files = segment_files(dir.path())?;
    let bytes = bytes_of(&files)?;
    // Warm both paths (page cache, allocator) untimed.
    embedded_read(&log, bytes).await?;
    cat(&files, bytes)?;
    let mut log_rounds = Vec::new();
    let mut cat_rounds = Vec::new();
    for _ in 0..ROUNDS {
        log_rounds.push(embedded_read(&log, bytes).await?);
        let files = files.clone();
        cat_rounds.push(tokio::task::spawn_blocking(move || cat(&files, bytes)).await??);
    }
    let read = median(log_rounds)?;
    let cat_figure = median(cat_rounds)?;
    out.push(String::new());
    out.push(format!(
        "read: {READ_RECORDS} records ({:.1} MB in {} segment files), warm page cache, median of {ROUNDS}",
        bytes as f64 / 1e6,
        files.len()
    ));
    out.push("| side | records | MB/s | records/s | ms | fdatasyncs |".to_owned());
    out.push("|---|---|---|---|---|---|".to_owned());
    out.push(row("embedded reader (next_batch, CRC + decode)", &read));
    out.push(row("cat segment files > /dev/null", &cat_figure));
    ratios.push(format!(
        "read: embedded / cat = {:.2}x MB/s",
        read.mb_s() / cat_figure.mb_s()
    ));
    out.push(String::new());
    out.extend(ratios);
    let mut stdout = std::io::stdout().lock();
    for line in out {
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}
