//! # The embedded log: [`Log`] on the local disk of one machine
//!
//! Used by `provenant up --data-dir DIR`: every role runs in one process over this log.
//!
//! ## Layout of the data directory
//!
//! ```text
//! DIR/LOCK                                  held (flock) while a process has the log open
//! DIR/topics.json                           topic -> partition count
//! DIR/topics/<topic>/<partition>/<base>.log segment files, named by their first offset
//! DIR/groups/<group>.json                   committed group positions
//! ```
//!
//! Each record is one frame with its own CRC32C (see `frame.rs`). A partition is a run of
//! segment files; a segment is sealed (fdatasync'd) when the next record would take it past
//! [`EmbeddedConfig::segment_bytes`], then the next one starts at the next offset.
//!
//! ## Invariants
//!
//! * **Durable when acknowledged.** [`Log::append`] returns only after the records were
//!   written and the segment file fdatasync'd. One writer thread per partition takes every
//!   queued append at once, writes them in queue order, syncs once and then acknowledges all
//!   of them (group commit): concurrent appenders share one fdatasync. Async callers only
//!   await a oneshot channel; the runtime never blocks on disk (reads and group-file writes
//!   go through `spawn_blocking`).
//! * **Visible when durable.** Readers see a record only after its sync; offsets of a
//!   partition are contiguous from its start, across segment files.
//! * **Recovery.** On open every segment is scanned (length bounds, CRC32C, offsets in
//!   sequence). A bad frame in the last segment is a torn or corrupt tail: the file is cut at
//!   the last good record and the cut logged (`cut torn tail of segment`). Records that were
//!   acknowledged are never cut by a crash: they were synced before the acknowledgement and
//!   every later write lies after them. A bad frame in a sealed segment, or a missing
//!   segment, is an error (damage, not a crash); so is a failed write or sync, after which
//!   the partition refuses appends until reopened.
//! * **Retention.** [`EmbeddedLog::mark_archived`] says which records are safe in the
//!   archive. A sealed segment is deleted only when all its records are below that mark
//!   and its newest record is older than [`EmbeddedConfig::retention`]; the start offset
//!   moves to the first remaining segment, and reading before it is
//!   [`LogError::OffsetOutOfRange`]. The mark is held in memory: after a restart nothing is
//!   deleted until the archiver marks again.
//! * **One process.** The directory is locked (`LOCK`, `File::try_lock`); a second open fails
//!   with an error naming the directory.
//! * **Groups.** A group over a topic has one member at a time, owning every partition
//!   (first event: `Assigned { all, generation }`, the generation counting joins since
//!   open, starting at 1). Commits are written to `groups/<group>.json` (temp file, fsync,
//!   rename, directory fsync) and survive reopening.
//!
//! Unix only (positional reads and writes, `fdatasync`).
//!
//! ## Why not a crate
//!
//! * `commitlog` 0.2 (offset-addressed segments with a CRC32C per message, the closest fit)
//!   syncs only when the caller calls `flush` (no group commit), and on open it trusts its
//!   memory-mapped index instead of scanning and cutting a torn tail (its own TODOs say a
//!   crash before an index write is not repaired; a missing index panics).
//! * `okaywal` 0.3 has CRC32C and batched fsyncs across threads, but it is a write-ahead log
//!   of entries recycled by checkpointing, not an offset-addressed partition with retention
//!   by segment, and it warns that its format is unstable.
//! * `simple_wal` 0.3 is one file, one writer, fsync per entry (no group commit) and only a
//!   compact-to-index operation, no segments.
//!
//! What we need (per-record CRC, group commit, torn-tail cut, offset-addressed reads,
//! deletion by segment gated on the archive) is a few hundred lines here.

mod frame;
mod partition;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use self::partition::{AppendRequest, Partition};
use crate::{
    GroupEvent, GroupMember, Log, LogError, LogReader, PendingAppend, Record, StoredRecord, TOPICS,
    Watermarks,
};

/// Partitions of each of [`TOPICS`] created on first open.
pub const DEFAULT_PARTITIONS: u32 = 4;
/// Size at which a segment is sealed and the next one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// How long a segment is kept after its newest record, even once archived.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest accepted record (key, headers and value, encoded).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;
/// The largest `max_record_bytes` accepted. Recovery and reads accept frames up to this
/// size whatever `max_record_bytes` is now, so lowering the setting never turns records
/// written under a higher one into "corruption".
pub const MAX_RECORD_BYTES_LIMIT: usize = 256 * 1024 * 1024;
/// A sparse index entry at least every this many bytes of a segment.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4096;
/// About how many bytes one [`LogReader::next_batch`] reads at most.
pub const DEFAULT_READ_BYTES: usize = 1024 * 1024;

/// Configuration of the embedded log. Plain values with named defaults; the binary maps
/// its own (serde) configuration onto it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// Partitions of each of [`TOPICS`] when the directory is new. An existing directory
    /// keeps the counts in its `topics.json`.
    pub partitions: u32,
    pub segment_bytes: u64,
    pub retention: Duration,
    pub max_record_bytes: usize,
    pub index_interval_bytes: u64,
    pub read_bytes: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            partitions: DEFAULT_PARTITIONS,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention: DEFAULT_RETENTION,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            read_bytes: DEFAULT_READ_BYTES,
        }
    }
}

/// The limits a partition needs, checked once at open.
#[derive(Clone, Copy, Debug)]
struct Limits {
    segment_bytes: u64,
    max_record_bytes: usize,
    index_interval_bytes: u64,
    read_bytes: usize,
}

impl Limits {
    /// The largest frame body a valid frame on disk may have.
    fn max_frame_body(&self) -> usize {
        MAX_RECORD_BYTES_LIMIT
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.display().to_string();
    move |source| LogError::Io { op, path, source }
}

/// Fsyncs a directory so that created, renamed and deleted entries are durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Writes a small file atomically: temp file, fsync, rename, directory fsync.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err("rename into", path))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Topic and group names become file names: Kafka's rules (`[A-Za-z0-9._-]`, at most 249
/// characters, not `.` or `..`).
fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: use 1 to 249 of A-Z a-z 0-9 . _ - (and not . or ..)"
        ))
    }
}

struct PartitionHandle {
    part: Arc<Partition>,
    tx: Option<mpsc::Sender<AppendRequest>>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Groups {
    /// group -> topic -> partition -> next offset.
    offsets: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
    /// (group, topic) with a live member.
    members: HashMap<(String, String), ()>,
    /// Joins since open per (group, topic).
    generations: HashMap<(String, String), i32>,
}

struct Inner {
    dir: PathBuf,
    config: EmbeddedConfig,
    limits: Limits,
    topics: RwLock<BTreeMap<String, Vec<PartitionHandle>>>,
    groups: Mutex<Groups>,
    syncs: Arc<AtomicU64>,
    /// Dropped with the log: members waiting for events learn that it closed.
    _closed: watch::Sender<()>,
    closed_rx: watch::Receiver<()>,
    /// Held (flock) while open; released when the file closes.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop the writers (they finish what is queued) and wait for them, so that a reopen
        // in this process never races a writer of the previous instance.
        let topics = self
            .topics
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for handle in topics.values_mut().flatten() {
            handle.tx = None;
        }
        for handle in topics.values_mut().flatten() {
            if let Some(thread) = handle.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The embedded log. Cloning gives another handle to the same open log; it closes when the
/// last handle is dropped: dropping it waits for the writer threads to write what is queued
/// already queued, then releases the directory lock.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// Opens the log in `dir` (created if missing), recovering every partition, and creates
    /// [`TOPICS`] on first open. Blocking (recovery reads every segment): from async code,
    /// call it through `tokio::task::spawn_blocking`.
    pub fn open(dir: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self, LogError> {
        let dir = dir.as_ref().to_path_buf();
        let bad_config = |message: String| LogError::Fatal {
            op: "open",
            topic: String::new(),
            partition: 0,
            message: format!("embedded log in {}: {message}", dir.display()),
        };
        if config.partitions == 0 {
            return Err(bad_config("partitions must be at least 1".to_owned()));
        }
        if config.max_record_bytes == 0 || config.max_record_bytes > MAX_RECORD_BYTES_LIMIT {
            return Err(bad_config(format!(
                "max_record_bytes must be between 1 and {MAX_RECORD_BYTES_LIMIT}"
            )));
        }
        std::fs::create_dir_all(&dir).map_err(io_err("create data directory", &dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Io {
                    op: "lock",
                    path: lock_path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::ResourceBusy,
                        format!(
                            "the data directory {} is already open in another process (or another EmbeddedLog in this one); stop it or use another data directory",
                            dir.display()
                        ),
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(io_err("lock", &lock_path)(source));
            }
        }
        let limits = Limits {
            segment_bytes: config.segment_bytes.max(1),
            max_record_bytes: config.max_record_bytes,
            index_interval_bytes: config.index_interval_bytes.max(1),
            read_bytes: config.read_bytes.max(1),
        };
        let (closed_tx, closed_rx) = watch::channel(());
        let log = EmbeddedLog {
            inner: Arc::new(Inner {
                dir: dir.clone(),
                config,
                limits,
                topics: RwLock::new(BTreeMap::new()),
                groups: Mutex::new(Groups::default()),
                syncs: Arc::new(AtomicU64::new(0)),
                _closed: closed_tx,
                closed_rx,
                _lock: lock,
            }),
        };
        let topics_path = dir.join("topics.json");
        let mut counts: BTreeMap<String, u32> = match std::fs::read(&topics_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                bad_config(format!(
                    "{} is not a topic -> partition count map: {e}",
                    topics_path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_err("read", &topics_path)(e)),
        };
        let persisted: std::collections::BTreeSet<String> = counts.keys().cloned().collect();
        for topic in TOPICS {
            counts
                .entry(topic.to_owned())
                .or_insert(log.inner.config.partitions);
        }
        for (topic, partitions) in &counts {
            // A topic listed in topics.json has its partitions on disk; one created now
            // (a new directory, or one of TOPICS missing from an older file) does not.
            let listed = persisted.contains(topic);
            log.open_topic(topic, *partitions, listed)?;
        }
        log.write_topics()?;
        log.load_groups()?;
        tracing::info!(dir = %dir.display(), topics = counts.len(), "opened embedded log");
        Ok(log)
    }

    /// Creates a topic with `partitions` partitions (no-op when it exists with that count).
    /// Blocking (creates files and fsyncs).
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        let existing = self.topics_read().get(topic).map(Vec::len);
        match existing {
            Some(n) if n == partitions as usize => Ok(()),
            Some(n) => Err(LogError::Fatal {
                op: "create_topic",
                topic: topic.to_owned(),
                partition: 0,
                message: format!("the topic exists with {n} partitions, not {partitions}"),
            }),
            None => {
                self.open_topic(topic, partitions, false)?;
                self.write_topics()
            }
        }
    }

    /// Says that the records of `topic`/`partition` below `below` are archived. Deletes the
    /// sealed segments wholly below the archived mark whose newest record is older than the
    /// retention, and returns the watermarks after deletion.
    pub async fn mark_archived(
        &self,
        topic: &str,
        partition: u32,
        below: u64,
    ) -> Result<Watermarks, LogError> {
        let part = self.partition(topic, partition)?;
        let retention = retention_ms(self.inner.config.retention);
        spawn_blocking(topic, partition, move || part.retain(below, retention)).await
    }

    /// Applies retention again to every partition with the archived marks already given
    /// (segments age past retention as time passes).
    pub async fn apply_retention(&self) -> Result<(), LogError> {
        let parts: Vec<Arc<Partition>> = self
            .topics_read()
            .values()
            .flatten()
            .map(|h| Arc::clone(&h.part))
            .collect();
        let retention = retention_ms(self.inner.config.retention);
        for part in parts {
            let (topic, index) = (part.topic.clone(), part.index);
            spawn_blocking(&topic, index, move || part.retain(0, retention)).await?;
        }
        Ok(())
    }

    /// How many segment fdatasyncs the writers have done since open (metrics; tests compare
    /// it with the number of appends to see group commit at work).
    pub fn data_syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn topics_read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Vec<PartitionHandle>>> {
        self.inner
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, LogError> {
        self.topics_read()
            .get(topic)
            .and_then(|parts| parts.get(partition as usize))
            .map(|h| Arc::clone(&h.part))
            .ok_or_else(|| LogError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            })
    }

    /// Opens (`listed`: the partitions must exist) or creates the partitions of a topic.
    fn open_topic(&self, topic: &str, partitions: u32, listed: bool) -> Result<(), LogError> {
        let fatal = |message: String| LogError::Fatal {
            op: "create_topic",
            topic: topic.to_owned(),
            partition: 0,
            message,
        };
        check_name("topic", topic).map_err(fatal)?;
        if partitions == 0 {
            return Err(fatal("a topic needs at least one partition".to_owned()));
        }
        let topic_dir = self.inner.dir.join("topics").join(topic);
        let mut handles = Vec::with_capacity(partitions as usize);
        for index in 0..partitions {
            let (part, tx, thread) = Partition::open(
                topic_dir.join(index.to_string()),
                topic,
                index,
                self.inner.limits,
                Arc::clone(&self.inner.syncs),
                listed,
            )?;
            handles.push(PartitionHandle {
                part,
                tx: Some(tx),
                thread: Some(thread),
            });
        }
        sync_dir(&topic_dir)?;
        if let Some(parent) = topic_dir.parent() {
            sync_dir(parent)?;
        }
        sync_dir(&self.inner.dir)?;
        self.inner
            .topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), handles);
        Ok(())
    }

    fn write_topics(&self) -> Result<(), LogError> {
        let counts: BTreeMap<String, usize> = self
            .topics_read()
            .iter()
            .map(|(name, parts)| (name.clone(), parts.len()))
            .collect();
        let path = self.inner.dir.join("topics.json");
        let bytes = serde_json::to_vec_pretty(&counts).map_err(|e| LogError::Fatal {
            op: "create_topic",
            topic: String::new(),
            partition: 0,
            message: format!("encode {}: {e}", path.display()),
        })?;
        write_atomic(&path, &bytes)
    }

    fn load_groups(&self) -> Result<(), LogError> {
        let dir = self.inner.dir.join("groups");
        std::fs::create_dir_all(&dir).map_err(io_err("create groups directory", &dir))?;
        sync_dir(&self.inner.dir)?;
        let mut groups = self
            .inner
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in std::fs::read_dir(&dir).map_err(io_err("list groups directory", &dir))? {
            let entry = entry.map_err(io_err("list groups directory", &dir))?;
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let bytes = std::fs::read(&path).map_err(io_err("read group positions", &path))?;
            let offsets: BTreeMap<String, BTreeMap<u32, u64>> = serde_json::from_slice(&bytes)
                .map_err(|e| LogError::Fatal {
                    op: "open",
                    topic: String::new(),
                    partition: 0,
                    message: format!("{} is not a group position file: {e}", path.display()),
                })?;
            groups.offsets.insert(name.to_owned(), offsets);
        }
        Ok(())
    }
}

fn retention_ms(retention: Duration) -> i64 {
    i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)
}

async fn spawn_blocking<T: Send + 'static>(
    topic: &str,
    partition: u32,
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Fatal {
            op: "blocking task",
            topic: topic.to_owned(),
            partition,
            message: e.to_string(),
        })?
}

impl Log for EmbeddedLog {
    type Reader = EmbeddedReader;
    type Member = EmbeddedMember;

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        self.topics_read()
            .get(topic)
            .map(|parts| u32::try_from(parts.len()).unwrap_or(u32::MAX))
            .ok_or_else(|| LogError::UnknownPartition {
                topic: topic.to_owned(),
                partition: 0,
            })
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<Vec<u64>, LogError> {
        self.start_append(topic, partition, records).await?.await
    }

    /// Hands the records to the partition's writer (which appends requests in the order it
    /// receives them) and returns; the pending append resolves once they are fsync'd.
    async fn start_append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<PendingAppend, LogError> {
        if let Some(too_large) = records
            .iter()
            .map(frame::frame_len)
            .find(|len| *len - frame::FRAME_HEADER > self.inner.limits.max_record_bytes)
        {
            return Err(LogError::Fatal {
                op: "append",
                topic: topic.to_owned(),
                partition,
                message: format!(
                    "record of {too_large} bytes encoded exceeds max_record_bytes {}",
                    self.inner.limits.max_record_bytes
                ),
            });
        }
        let (reply, rx) = oneshot::channel();
        let count = records.len();
        {
            let topics = self.topics_read();
            let handle = topics
                .get(topic)
                .and_then(|parts| parts.get(partition as usize))
                .ok_or_else(|| LogError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition,
                })?;
            if count == 0 {
                return Ok(Box::pin(std::future::ready(Ok(Vec::new()))));
            }
            let tx = handle.tx.as_ref().ok_or(LogError::Closed)?;
            #[cfg(test)]
            handle.part.queued.fetch_add(1, Ordering::SeqCst);
            tx.send(AppendRequest { records, reply })
                .map_err(|_| LogError::Closed)?;
        }
        Ok(Box::pin(
            async move { rx.await.map_err(|_| LogError::Closed)? },
        ))
    }

    async fn watermarks(&self, topic: &str, partition: u32) -> Result<Watermarks, LogError> {
        Ok(self.partition(topic, partition)?.state().watermarks())
    }

    async fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> Result<EmbeddedReader, LogError> {
        let part = self.partition(topic, partition)?;
        let marks = part.state().watermarks();
        if from < marks.start {
            return Err(LogError::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition,
                requested: from,
                start: marks.start,
            });
        }
        if from > marks.end {
            return Err(LogError::Fatal {
                op: "reader",
                topic: topic.to_owned(),
                partition,
                message: format!("offset {from} is past the end {}", marks.end),
            });
        }
        let changes = part.subscribe();
        Ok(EmbeddedReader {
            part,
            position: from,
            changes,
        })
    }

    async fn join_group(&self, group: &str, topic: &str) -> Result<EmbeddedMember, LogError> {
        let partitions = self.partition_count(topic).await?;
        check_name("group", group).map_err(|message| LogError::Fatal {
            op: "join_group",
            topic: topic.to_owned(),
            partition: 0,
            message,
        })?;
        let key = (group.to_owned(), topic.to_owned());
        let generation = {
            let mut groups = self
                .inner
                .groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if groups.members.contains_key(&key) {
                return Err(LogError::Fatal {
                    op: "join_group",
                    topic: topic.to_owned(),
                    partition: 0,
                    message: format!(
                        "group {group} already has its member on the embedded log (one member owns every partition); leave with that member first"
                    ),
                });
            }
            groups.members.insert(key.clone(), ());
            let generation = groups.generations.entry(key).or_insert(0);
            *generation = generation.saturating_add(1);
            *generation
        };
        Ok(EmbeddedMember {
            log: Arc::downgrade(&self.inner),
            group: group.to_owned(),
            topic: topic.to_owned(),
            partitions: (0..partitions).collect(),
            generation,
            assigned_sent: false,
            closed: self.inner.closed_rx.clone(),
        })
    }

    async fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        self.partition(topic, partition)?;
        let groups = self
            .inner
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(groups
            .offsets
            .get(group)
            .and_then(|topics| topics.get(topic))
            .and_then(|parts| parts.get(&partition))
            .copied())
    }
}

/// Reads one partition of the embedded log (see [`LogReader`]).
#[derive(Debug)]
pub struct EmbeddedReader {
    part: Arc<Partition>,
    position: u64,
    changes: watch::Receiver<u64>,
}

impl LogReader for EmbeddedReader {
    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StoredRecord>, LogError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now().checked_add(wait);
        loop {
            // Mark the current end as seen before looking, so no append is missed between
            // the look and the wait.
            self.changes.borrow_and_update();
            let marks = self.part.state().watermarks();
            if self.position < marks.start {
                return Err(LogError::OffsetOutOfRange {
                    topic: self.part.topic.clone(),
                    partition: self.part.index,
                    requested: self.position,
                    start: marks.start,
                });
            }
            if self.position < marks.end {
                let part = Arc::clone(&self.part);
                let from = self.position;
                let records = spawn_blocking(&self.part.topic, self.part.index, move || {
                    part.read(from, max)
                })
                .await?;
                if let Some(last) = records.last() {
                    self.position = last.offset + 1;
                }
                return Ok(records);
            }
            let changed = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                        Ok(changed) => changed,
                        Err(_) => return Ok(Vec::new()),
                    }
                }
                None => self.changes.changed().await,
            };
            if changed.is_err() {
                return Err(LogError::Closed);
            }
        }
    }

    fn position(&self) -> u64 {
        self.position
    }
}

/// The single member of a group on the embedded log (see [`GroupMember`]).
#[derive(Debug)]
pub struct EmbeddedMember {
    log: Weak<Inner>,
    group: String,
    topic: String,
    partitions: Vec<u32>,
    generation: i32,
    assigned_sent: bool,
    closed: watch::Receiver<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EmbeddedMember {
    fn release(&self) {
        if let Some(inner) = self.log.upgrade() {
            inner
                .groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .members
                .remove(&(self.group.clone(), self.topic.clone()));
        }
    }
}

impl Drop for EmbeddedMember {
    fn drop(&mut self) {
        self.release();
    }
}

impl GroupMember for EmbeddedMember {
    async fn next_event(&mut self) -> Result<GroupEvent, LogError> {
        if !self.assigned_sent {
            self.assigned_sent = true;
            return Ok(GroupEvent::Assigned {
                partitions: self.partitions.clone(),
                generation: self.generation,
            });
        }
        // A single member's assignment never changes: wait until the log closes.
        while self.closed.changed().await.is_ok() {}
        Err(LogError::Closed)
    }

    fn assignment(&self) -> Vec<u32> {
        self.partitions.clone()
    }

    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), LogError> {
        if !self.partitions.contains(&partition) {
            return Err(LogError::UnknownPartition {
                topic: self.topic.clone(),
                partition,
            });
        }
        let inner = self.log.upgrade().ok_or(LogError::Closed)?;
        let (group, topic) = (self.group.clone(), self.topic.clone());
        spawn_blocking(&self.topic, partition, move || {
            let mut groups = inner.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let mut offsets = groups.offsets.get(&group).cloned().unwrap_or_default();
            offsets
                .entry(topic.clone())
                .or_default()
                .insert(partition, next_offset);
            let path = inner.dir.join("groups").join(format!("{group}.json"));
            let bytes = serde_json::to_vec_pretty(&offsets).map_err(|e| LogError::Fatal {
                op: "commit",
                topic,
                partition,
                message: format!("encode {}: {e}", path.display()),
            })?;
            write_atomic(&path, &bytes)?;
            // Only what is on disk is visible to `committed`.
            groups.offsets.insert(group, offsets);
            Ok(())
        })
        .await
    }

    async fn leave(self) -> Result<(), LogError> {
        // Dropping releases the group for the next member.
        Ok(())
    }
}
