//! One partition on disk: its segment files, recovery, the writer thread (group commit),
//! positional reads and retention.
//!
//! Invariants kept here:
//! * `segments` is never empty, sorted by base offset, and contiguous: each segment's base is
//!   the previous one's `next`. The last one is the active segment; all others are sealed
//!   (fully written and fdatasync'd before the next one was created).
//! * A segment's `len` and `next` only cover bytes that were fdatasync'd: readers never see a
//!   record before its append was made durable.
//! * Only the writer thread writes to segment files and changes `len`/`next`/`index` of the
//!   active segment or adds segments; retention only removes sealed segments from the front.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::frame::{self, FrameError};
use super::{Limits, io_err, sync_dir};
use crate::{LogError, Record, StoredRecord, Watermarks};

const SEGMENT_SUFFIX: &str = ".log";

thread_local! {
    /// The read buffer of the thread reading (reads run on tokio's blocking threads).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many queued appends one group commit takes at most.
const MAX_REQUESTS_PER_COMMIT: usize = 4096;

pub(super) fn segment_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One segment file.
#[derive(Debug)]
pub(super) struct Segment {
    pub(super) base: u64,
    pub(super) path: PathBuf,
    file: Arc<File>,
    /// Durable bytes (the whole file for a sealed segment).
    pub(super) len: u64,
    /// Offset after the last durable record.
    pub(super) next: u64,
    /// Sparse index: `(offset, byte position)`, first entry `(base, 0)`, one more at least
    /// every `index_interval_bytes`.
    index: Vec<(u64, u64)>,
    /// Newest record timestamp (`i64::MIN` when empty).
    max_timestamp_ms: i64,
}

impl Segment {
    fn position_of(&self, offset: u64) -> u64 {
        let after = self.index.partition_point(|(o, _)| *o <= offset);
        after
            .checked_sub(1)
            .and_then(|i| self.index.get(i))
            .map_or(0, |(_, pos)| *pos)
    }

    fn last_indexed_pos(&self) -> u64 {
        self.index.last().map_or(0, |(_, pos)| *pos)
    }
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) segments: VecDeque<Segment>,
    /// Records below this offset are archived (held in memory; after a restart nothing is
    /// deleted until the archiver says so again, which errs on the side of keeping data).
    archived_below: u64,
    /// Set when a write or sync failed: the partition accepts no more appends until reopened
    /// (after a failed fsync the page cache cannot be trusted; recovery on open decides).
    failed: Option<String>,
}

impl State {
    pub(super) fn watermarks(&self) -> Watermarks {
        Watermarks {
            start: self.segments.front().map_or(0, |s| s.base),
            end: self.segments.back().map_or(0, |s| s.next),
        }
    }
}

/// A queued append and where to send its result.
#[derive(Debug)]
pub(super) struct AppendRequest {
    pub(super) records: Vec<Record>,
    pub(super) reply: oneshot::Sender<Result<Vec<u64>, LogError>>,
}

/// A partition just opened: shared part, the writer's queue and its thread.
pub(super) type Opened = (
    Arc<Partition>,
    mpsc::Sender<AppendRequest>,
    std::thread::JoinHandle<()>,
);

/// The shared part of a partition (readers, retention and the writer hold it).
#[derive(Debug)]
pub(super) struct Partition {
    pub(super) topic: String,
    pub(super) index: u32,
    dir: PathBuf,
    limits: Limits,
    state: Mutex<State>,
    end_rx: watch::Receiver<u64>,
    syncs: Arc<AtomicU64>,
    /// Test hook: held by a test to keep the writer from draining its queue.
    #[cfg(test)]
    pub(super) gate: Mutex<()>,
    /// Test hook: appends sent and not yet taken by the writer.
    #[cfg(test)]
    pub(super) queued: std::sync::atomic::AtomicUsize,
}

impl Partition {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.end_rx.clone()
    }

    fn fatal(&self, op: &'static str, message: String) -> LogError {
        LogError::Fatal {
            op,
            topic: self.topic.clone(),
            partition: self.index,
            message,
        }
    }

    /// Opens (creating it if needed) and recovers a partition, and starts its writer thread.
    pub(super) fn open(
        dir: PathBuf,
        topic: &str,
        index: u32,
        limits: Limits,
        syncs: Arc<AtomicU64>,
        must_exist: bool,
    ) -> Result<Opened, LogError> {
        if !must_exist {
            std::fs::create_dir_all(&dir).map_err(io_err("create partition directory", &dir))?;
        }
        let segments = recover(&dir, topic, index, &limits, must_exist)?;
        let state = State {
            segments,
            archived_below: 0,
            failed: None,
        };
        let end = state.watermarks().end;
        let (end_tx, end_rx) = watch::channel(end);
        let part = Arc::new(Partition {
            topic: topic.to_owned(),
            index,
            dir,
            limits,
            state: Mutex::new(state),
            end_rx,
            syncs,
            #[cfg(test)]
            gate: Mutex::new(()),
            #[cfg(test)]
            queued: std::sync::atomic::AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let writer_part = Arc::clone(&part);
        let thread = std::thread::Builder::new()
            .name(format!("log-writer-{topic}-{index}"))
            .spawn(move || writer_loop(&writer_part, &rx, &end_tx))
            .map_err(io_err("spawn writer thread for", &part.dir))?;
        Ok((part, tx, thread))
    }

    /// Writes the records of every request in order, syncs once, and publishes the new end.
    /// Returns each request's offsets.
    fn write_batch(&self, batch: &[AppendRequest]) -> Result<Vec<Vec<u64>>, LogError> {
        let timestamp = now_ms();
        let (mut file, mut path, mut written, mut next, mut last_indexed) = {
            let state = self.state();
            if let Some(reason) = &state.failed {
                return Err(self.fatal(
                    "append",
                    format!("an earlier write failed ({reason}); reopen the log to recover"),
                ));
            }
            let active = state
                .segments
                .back()
                .ok_or_else(|| self.fatal("append", "partition has no segment".to_owned()))?;
            (
                Arc::clone(&active.file),
                active.path.clone(),
                active.len,
                active.next,
                active.last_indexed_pos(),
            )
        };
        // Sized for the whole batch up front (capped at a segment): growing it by doubling
        // copied every frame several times (measured in the processor bench profile).
        let total: u64 = batch
            .iter()
            .flat_map(|r| &r.records)
            .map(|r| frame::frame_len(r) as u64)
            .sum();
        let mut buf: Vec<u8> =
            Vec::with_capacity(usize::try_from(total.min(self.limits.segment_bytes)).unwrap_or(0));
        let mut buf_at = written;
        let mut new_index: Vec<(u64, u64)> = Vec::new();
        let mut out = Vec::with_capacity(batch.len());
        for request in batch {
            let mut offsets = Vec::with_capacity(request.records.len());
            for record in &request.records {
                let len = frame::frame_len(record) as u64;
                if written > 0 && written + len > self.limits.segment_bytes {
                    // Seal the active segment (durable first), then start the next one.
                    self.flush(&file, &path, &buf, buf_at)?;
                    self.publish(written, next, &mut new_index, timestamp);
                    buf.clear();
                    let (new_file, new_path) = self.roll(next)?;
                    file = new_file;
                    path = new_path;
                    written = 0;
                    buf_at = 0;
                    last_indexed = 0;
                }
                if written - last_indexed >= self.limits.index_interval_bytes {
                    new_index.push((next, written));
                    last_indexed = written;
                }
                frame::encode(&mut buf, next, timestamp, record);
                offsets.push(next);
                next += 1;
                written += len;
            }
            out.push(offsets);
        }
        self.flush(&file, &path, &buf, buf_at)?;
        self.publish(written, next, &mut new_index, timestamp);
        Ok(out)
    }

    /// Writes `buf` at `at` and fdatasyncs the file.
    fn flush(&self, file: &File, path: &Path, buf: &[u8], at: u64) -> Result<(), LogError> {
        file.write_all_at(buf, at)
            .map_err(io_err("write segment", path))?;
        file.sync_data()
            .map_err(io_err("fdatasync segment", path))?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Makes durable bytes of the active segment visible.
    fn publish(&self, len: u64, next: u64, new_index: &mut Vec<(u64, u64)>, timestamp: i64) {
        let mut state = self.state();
        if let Some(active) = state.segments.back_mut() {
            if next > active.next {
                active.max_timestamp_ms = active.max_timestamp_ms.max(timestamp);
            }
            active.len = len;
            active.next = next;
            active.index.append(new_index);
        }
    }

    /// Creates the segment starting at `base` and makes it the active one.
    fn roll(&self, base: u64) -> Result<(Arc<File>, PathBuf), LogError> {
        let path = self.dir.join(segment_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create segment", &path))?;
        sync_dir(&self.dir)?;
        let file = Arc::new(file);
        self.state().segments.push_back(Segment {
            base,
            path: path.clone(),
            file: Arc::clone(&file),
            len: 0,
            next: base,
            index: vec![(base, 0)],
            max_timestamp_ms: i64::MIN,
        });
        tracing::debug!(topic = %self.topic, partition = self.index, base, "rolled segment");
        Ok((file, path))
    }

    /// Reads records from `from` on (at most `max`, about `read_bytes` of them at most, all
    /// from one segment). Empty when `from` is the end.
    ///
    /// The file is read into this thread's buffer ([`READ_BUFFER`], kept from read to read)
    /// and each record is copied out of it into an allocation of its own. Slicing one shared
    /// buffer per read instead kept a whole read (up to `read_bytes`) alive for as long as any
    /// of its records lived, and left large buffers allocated on the blocking thread to be
    /// freed on others, which made the process's resident set grow with the events read
    /// (BENCHMARKS.md, "Processor").
    pub(super) fn read(&self, from: u64, max: usize) -> Result<Vec<StoredRecord>, LogError> {
        READ_BUFFER.with_borrow_mut(|scratch| {
            let out = self.read_into(from, max, scratch);
            if scratch.capacity() > 2 * self.limits.read_bytes {
                // A frame larger than a read grew it: do not keep that much for ever.
                *scratch = Vec::new();
            }
            out
        })
    }

    fn read_into(
        &self,
        from: u64,
        max: usize,
        scratch: &mut Vec<u8>,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let (file, path, mut pos, seg_len) = {
            let state = self.state();
            let marks = state.watermarks();
            if from < marks.start {
                return Err(LogError::OffsetOutOfRange {
                    topic: self.topic.clone(),
                    partition: self.index,
                    requested: from,
                    start: marks.start,
                });
            }
            if from >= marks.end || max == 0 {
                return Ok(Vec::new());
            }
            let after = state.segments.partition_point(|s| s.base <= from);
            let Some(seg) = after.checked_sub(1).and_then(|i| state.segments.get(i)) else {
                return Ok(Vec::new());
            };
            (
                Arc::clone(&seg.file),
                seg.path.clone(),
                seg.position_of(from),
                seg.len,
            )
        };
        let max_body = self.limits.max_frame_body();
        let mut out: Vec<StoredRecord> = Vec::new();
        let mut want = self.limits.read_bytes;
        let mut total = 0usize;
        while pos < seg_len && out.len() < max && total < self.limits.read_bytes {
            let len = usize::try_from((seg_len - pos).min(want as u64)).unwrap_or(want);
            scratch.clear();
            scratch.resize(len, 0);
            file.read_exact_at(scratch, pos)
                .map_err(io_err("read segment", &path))?;
            let buf: &[u8] = scratch;
            let mut local = 0usize;
            while out.len() < max {
                let Some(rest) = buf.get(local..) else { break };
                if rest.is_empty() {
                    break;
                }
                match frame::check(rest, max_body) {
                    Ok(info) => {
                        if info.offset >= from {
                            let expected = from + out.len() as u64;
                            if info.offset != expected {
                                return Err(self.corrupt(
                                    &path,
                                    pos + local as u64,
                                    &format!(
                                        "offset {} where {expected} was expected",
                                        info.offset
                                    ),
                                ));
                            }
                            let frame = buf.get(local..local + info.len).unwrap_or_default();
                            let record = frame::decode(Bytes::copy_from_slice(frame), info)
                                .map_err(|e| {
                                    self.corrupt(&path, pos + local as u64, &e.to_string())
                                })?;
                            out.push(record);
                        }
                        local += info.len;
                    }
                    Err(FrameError::Incomplete { needed }) => {
                        if local == 0 {
                            // A frame larger than the read: read it whole next time round.
                            want = needed;
                        }
                        break;
                    }
                    Err(e) => return Err(self.corrupt(&path, pos + local as u64, &e.to_string())),
                }
            }
            if local == 0 {
                // Only an incomplete frame gets here; `want` now holds its whole length.
                if want <= len || want as u64 > seg_len - pos {
                    return Err(self.corrupt(
                        &path,
                        pos,
                        "frame runs past the durable end of the segment",
                    ));
                }
                continue;
            }
            pos += local as u64;
            total += local;
        }
        Ok(out)
    }

    fn corrupt(&self, path: &Path, at: u64, what: &str) -> LogError {
        self.fatal(
            "read",
            format!(
                "corrupt record at byte {at} of {}: {what}; restore the segment from the archive or a backup",
                path.display()
            ),
        )
    }

    /// Records that offsets below `below` are archived (the mark never moves back), then
    /// deletes every sealed segment from the front that lies wholly below the mark and whose
    /// newest record is older than `retention_ms`. Returns the new watermarks.
    pub(super) fn retain(&self, below: u64, retention_ms: i64) -> Result<Watermarks, LogError> {
        let cutoff = now_ms().saturating_sub(retention_ms);
        let mut removed = Vec::new();
        let marks = {
            let mut state = self.state();
            state.archived_below = state.archived_below.max(below);
            while state.segments.len() > 1 {
                let Some(first) = state.segments.front() else {
                    break;
                };
                if first.next > state.archived_below || first.max_timestamp_ms > cutoff {
                    break;
                }
                if let Some(seg) = state.segments.pop_front() {
                    removed.push(seg);
                }
            }
            state.watermarks()
        };
        for seg in &removed {
            std::fs::remove_file(&seg.path).map_err(io_err("delete segment", &seg.path))?;
            tracing::info!(topic = %self.topic, partition = self.index, base = seg.base, next = seg.next, path = %seg.path.display(), "deleted archived segment past retention");
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(marks)
    }
}

fn writer_loop(part: &Partition, rx: &mpsc::Receiver<AppendRequest>, end_tx: &watch::Sender<u64>) {
    while let Ok(first) = rx.recv() {
        #[cfg(test)]
        let _gate = part.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS_PER_COMMIT {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        #[cfg(test)]
        part.queued.fetch_sub(batch.len(), Ordering::SeqCst);
        match part.write_batch(&batch) {
            Ok(offsets) => {
                end_tx.send_replace(part.state().watermarks().end);
                for (request, offsets) in batch.into_iter().zip(offsets) {
                    let _ = request.reply.send(Ok(offsets));
                }
            }
            Err(error) => {
                tracing::error!(topic = %part.topic, partition = part.index, %error, "append failed; the partition refuses appends until reopened");
                {
                    let mut state = part.state();
                    if state.failed.is_none() {
                        state.failed = Some(error.to_string());
                    }
                }
                // Records sealed before the failure are durable and visible.
                end_tx.send_replace(part.state().watermarks().end);
                for request in batch {
                    let _ = request.reply.send(Err(copy_error(&error)));
                }
            }
        }
    }
}

/// The same error for each request of a failed group commit (`LogError` is not `Clone`).
fn copy_error(error: &LogError) -> LogError {
    match error {
        LogError::Io { op, path, source } => LogError::Io {
            op,
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        LogError::Fatal {
            op,
            topic,
            partition,
            message,
        } => LogError::Fatal {
            op,
            topic: topic.clone(),
            partition: *partition,
            message: message.clone(),
        },
        other => LogError::Fatal {
            op: "append",
            topic: String::new(),
            partition: 0,
            message: other.to_string(),
        },
    }
}

/// Lists, checks and recovers the segments of a partition directory.
///
/// Every segment is scanned (length bounds, CRC32C, offsets in sequence). A bad frame in the
/// last segment is a torn or corrupt tail: the file is truncated at the last good record
/// and the cut is logged. A bad frame in a sealed segment is an error: sealed segments were
/// synced before the next one was created, so a crash cannot have torn them.
fn recover(
    dir: &Path,
    topic: &str,
    index: u32,
    limits: &Limits,
    must_exist: bool,
) -> Result<VecDeque<Segment>, LogError> {
    if must_exist && !dir.is_dir() {
        return Err(LogError::Fatal {
            op: "open",
            topic: topic.to_owned(),
            partition: index,
            message: format!(
                "the partition directory {} is missing although topics.json lists the partition: its data is gone; restore it from a backup",
                dir.display()
            ),
        });
    }
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("list partition directory", dir))? {
        let entry = entry.map_err(io_err("list partition directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX)
            && stem.len() == 20
            && let Ok(base) = stem.parse::<u64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    if bases.is_empty() {
        if must_exist {
            // Retention always keeps the active segment, so an existing partition has one.
            return Err(LogError::Fatal {
                op: "open",
                topic: topic.to_owned(),
                partition: index,
                message: format!(
                    "no segment file in {} although topics.json lists the partition: its data is gone; restore it from a backup",
                    dir.display()
                ),
            });
        }
        let path = dir.join(segment_name(0));
        File::create(&path).map_err(io_err("create segment", &path))?;
        sync_dir(dir)?;
        bases.push(0);
    }
    let fatal = |message: String| LogError::Fatal {
        op: "open",
        topic: topic.to_owned(),
        partition: index,
        message,
    };
    let last = bases.len() - 1;
    let mut segments = VecDeque::with_capacity(bases.len());
    let mut expected_base: Option<u64> = None;
    for (i, base) in bases.into_iter().enumerate() {
        let path = dir.join(segment_name(base));
        if let Some(expected) = expected_base
            && expected != base
        {
            return Err(fatal(format!(
                "segment {} starts at offset {base} but the previous segment ends at {expected}: a segment is missing",
                path.display()
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open segment", &path))?;
        let data = std::fs::read(&path).map_err(io_err("read segment", &path))?;
        let mut seg = Segment {
            base,
            path: path.clone(),
            file: Arc::new(file),
            len: 0,
            next: base,
            index: vec![(base, 0)],
            max_timestamp_ms: i64::MIN,
        };
        let mut pos = 0usize;
        let mut bad: Option<String> = None;
        while let Some(rest) = data.get(pos..) {
            if rest.is_empty() {
                break;
            }
            match frame::check(rest, limits.max_frame_body()) {
                Ok(info) if info.offset == seg.next => {
                    let at = pos as u64;
                    if at - seg.last_indexed_pos() >= limits.index_interval_bytes {
                        seg.index.push((seg.next, at));
                    }
                    seg.max_timestamp_ms = seg.max_timestamp_ms.max(info.timestamp_ms);
                    seg.next += 1;
                    pos += info.len;
                }
                Ok(info) => {
                    bad = Some(format!(
                        "offset {} where {} was expected",
                        info.offset, seg.next
                    ));
                    break;
                }
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            }
        }
        seg.len = pos as u64;
        if let Some(reason) = bad {
            if i != last {
                return Err(fatal(format!(
                    "corrupt record at byte {pos} of sealed segment {} ({reason}); sealed segments are synced before the next one starts, so this is damage, not a torn write: restore the segment from the archive or a backup",
                    path.display()
                )));
            }
            tracing::warn!(
                topic,
                partition = index,
                path = %path.display(),
                cut_at = pos,
                dropped_bytes = data.len() - pos,
                last_good_offset = seg.next.checked_sub(1),
                reason = %reason,
                "cut torn tail of segment"
            );
            seg.file
                .set_len(seg.len)
                .map_err(io_err("truncate segment", &path))?;
            seg.file
                .sync_all()
                .map_err(io_err("sync truncated segment", &path))?;
        }
        expected_base = Some(seg.next);
        segments.push_back(seg);
    }
    Ok(segments)
}
