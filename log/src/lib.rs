//! # provenant-log — the one log interface
//!
//! Every Provenant role (ingest, processor, sinks) reads and writes the topics `prov.raw`,
//! `prov.ledger` and `prov.dlq` through the [`Log`] trait and nothing else, so each role is
//! written once and runs on both implementations:
//!
//! * [`embedded`] — a durable log on the local disk for one machine (this crate);
//! * `provenant-kafka` — Apache Kafka (or any Kafka-compatible cluster) through rdkafka.
//!
//! ## Contract (what every implementation guarantees, and the conformance suite checks)
//!
//! * **Offsets.** Each partition is a sequence of records with offsets that start at the
//!   partition's start offset and grow by one per record. A reader sees a partition's records
//!   in offset order, each once, with key, headers and value exactly as appended.
//! * **Durability.** [`Log::append`] returns the offsets only once the records are durable
//!   (embedded: fsync'd; Kafka: acknowledged by the in-sync replicas, `acks=all`). The
//!   offsets of one append are increasing; they are contiguous on the embedded log, and on
//!   Kafka when nothing else writes the partition concurrently. A failed append may or may
//!   not have written some of the records: callers that care (the processor) check the log.
//! * **No skipping.** A read from an offset before the partition's start fails with
//!   [`LogError::OffsetOutOfRange`]; it never silently moves forward.
//! * **Partitioning.** A key maps to a partition with [`partitioner::partition_for_key`], the
//!   Java-compatible murmur2 partitioner (librdkafka's `murmur2_random`), in every
//!   implementation and every producer.
//! * **Groups.** [`Log::join_group`] makes the caller a member of a consumer group over one
//!   topic. The member learns which partitions it owns through [`GroupEvent`]s. A member must
//!   stop using a partition before it acknowledges its revocation. The embedded log has a
//!   single member that owns every partition. Group positions ([`GroupMember::commit`],
//!   [`Log::committed`]) are for lag metrics and restarts; they are not the source of truth
//!   for exactly-once processing (the ledger is, see DESIGN.md).
//! * **Errors** are typed: [`LogError::is_retryable`] tells the caller whether trying the same
//!   call again later can succeed (a full queue, a broker that is down) or not (a record too
//!   large, an unknown topic, a corrupt file).
//!
//! This crate depends on no network crate; it must stay free of rdkafka.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

pub mod conformance;
pub mod embedded;
pub mod partitioner;

/// Raw events as producers sent them.
pub const RAW_TOPIC: &str = "prov.raw";
/// The processor's validated, redacted, hash-chained output.
pub const LEDGER_TOPIC: &str = "prov.ledger";
/// Events that failed decoding or validation, with the reason in headers.
pub const DLQ_TOPIC: &str = "prov.dlq";
/// The three topics every deployment has, in the order they are created.
pub const TOPICS: [&str; 3] = [RAW_TOPIC, LEDGER_TOPIC, DLQ_TOPIC];

/// One record header. Names are UTF-8; values are bytes (CloudEvents binary mode puts the
/// `ce_*` attributes here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Bytes,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A record to append: optional key, headers in order, value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub headers: Vec<Header>,
    pub value: Bytes,
}

impl Record {
    /// A record with a key and a value and no headers.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            headers: Vec::new(),
            value: value.into(),
        }
    }

    /// Adds a header and returns the record.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// The first header with this name, if any.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }
}

/// A record as read back from the log, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: u64,
    /// Milliseconds since the Unix epoch, as the log stamped the record on append.
    pub timestamp_ms: i64,
    pub record: Record,
}

/// A partition's offset range: records live at `start..end`; `end` is the offset the next
/// append will get (Kafka's high watermark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub start: u64,
    pub end: u64,
}

/// Errors of the log layer. Every variant names the topic and partition it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Trying again later may succeed: a full queue, a broker that is down, a timeout.
    #[error("{op} on {topic}/{partition} failed, retry later: {message}")]
    Retryable {
        op: &'static str,
        topic: String,
        partition: u32,
        message: String,
    },
    /// Trying again will not help: a record too large, bad configuration, a corrupt file.
    #[error("{op} on {topic}/{partition} failed: {message}")]
    Fatal {
        op: &'static str,
        topic: String,
        partition: u32,
        message: String,
    },
    /// The topic or partition does not exist.
    #[error(
        "unknown topic or partition {topic}/{partition}; create it first (`provenant dev-kafka` and `provenant up` create prov.raw, prov.ledger and prov.dlq)"
    )]
    UnknownPartition { topic: String, partition: u32 },
    /// A read asked for data that is no longer there (retention). Readers stop with an alarm;
    /// they never skip.
    #[error(
        "offset {requested} of {topic}/{partition} is before the log start {start}: the data was deleted by retention; refusing to skip it"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: u32,
        requested: u64,
        start: u64,
    },
    /// A filesystem error on the embedded log, with the path it concerned.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The log or the group member was closed.
    #[error("the log is closed")]
    Closed,
}

impl LogError {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            LogError::Retryable { .. } => true,
            LogError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
            ),
            LogError::Fatal { .. }
            | LogError::UnknownPartition { .. }
            | LogError::OffsetOutOfRange { .. }
            | LogError::Closed => false,
        }
    }
}

/// A change in which partitions of the group's topic this member owns.
#[derive(Debug)]
pub enum GroupEvent {
    /// The member now owns these partitions (in addition to what it owned before).
    /// `generation` is the group generation that made the assignment (Kafka's generation id;
    /// the embedded log counts its own).
    Assigned {
        partitions: Vec<u32>,
        generation: i32,
    },
    /// The member loses these partitions. It must stop reading and writing them, then call
    /// [`RevokeAck::ack`] (dropping the ack acknowledges too). The rebalance waits for it.
    Revoked {
        partitions: Vec<u32>,
        ack: RevokeAck,
    },
}

/// Acknowledges a revocation: the member no longer uses the revoked partitions.
#[derive(Debug)]
pub struct RevokeAck(Option<tokio::sync::oneshot::Sender<()>>);

impl RevokeAck {
    /// An ack connected to a waiting rebalance, and the receiver that the rebalance awaits.
    pub fn pair() -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self(Some(tx)), rx)
    }

    /// An ack that nobody waits for.
    pub fn detached() -> Self {
        Self(None)
    }

    /// Tells the rebalance that the member has stopped using the revoked partitions.
    pub fn ack(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for RevokeAck {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A member of a consumer group over one topic.
pub trait GroupMember: Send + 'static {
    /// Waits for the next assignment change. The first event after joining is the initial
    /// `Assigned`. Returns [`LogError::Closed`] after the member left.
    fn next_event(&mut self) -> impl Future<Output = Result<GroupEvent, LogError>> + Send;

    /// The partitions this member owns now, sorted.
    fn assignment(&self) -> Vec<u32>;

    /// Stores the group's position for a partition this member owns: `next_offset` is the
    /// offset of the next record to process. Call it only after the effect of every earlier
    /// record is durable.
    fn commit(
        &mut self,
        partition: u32,
        next_offset: u64,
    ) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Leaves the group (revoking everything) and releases its resources.
    fn leave(self) -> impl Future<Output = Result<(), LogError>> + Send;
}

/// Reads one partition forward from an offset.
pub trait LogReader: Send + 'static {
    /// Returns the next records, in offset order, starting at [`LogReader::position`]: at most
    /// `max`, waiting up to `wait` for at least one. An empty batch means nothing arrived in
    /// time; the reader stays usable.
    fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<StoredRecord>, LogError>> + Send;

    /// The offset of the next record this reader returns.
    fn position(&self) -> u64;
}

/// The log: topics of partitions of records. See the crate documentation for the contract.
pub trait Log: Send + Sync + 'static {
    type Reader: LogReader;
    type Member: GroupMember;

    /// How many partitions the topic has.
    fn partition_count(&self, topic: &str) -> impl Future<Output = Result<u32, LogError>> + Send;

    /// Appends records, in order, to one partition, and returns their offsets once they are
    /// durable.
    fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<Vec<u64>, LogError>> + Send;

    /// Starts an append and returns once the records are *handed over*: an append (or
    /// `start_append`) to the same partition that begins after this call returned lands after
    /// these records. The returned [`PendingAppend`] resolves as [`Log::append`] would: the
    /// offsets once the records are durable, or the error. This lets a producer keep several
    /// appends in flight without giving up their order. An error of the call itself means
    /// nothing was handed over, or only a prefix of the records (as with a failed `append`).
    ///
    /// The default runs the whole append before returning (no pipelining); the embedded log
    /// and Kafka hand over without waiting for durability.
    fn start_append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<PendingAppend, LogError>> + Send {
        async move {
            let offsets = self.append(topic, partition, records).await?;
            Ok(Box::pin(std::future::ready(Ok(offsets))) as PendingAppend)
        }
    }

    /// The partition's start and end offsets.
    fn watermarks(
        &self,
        topic: &str,
        partition: u32,
    ) -> impl Future<Output = Result<Watermarks, LogError>> + Send;

    /// A reader of one partition positioned at `from` (which may equal the end, to wait for
    /// new records). `from` before the start is [`LogError::OffsetOutOfRange`].
    fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> impl Future<Output = Result<Self::Reader, LogError>> + Send;

    /// Joins a consumer group over `topic`.
    fn join_group(
        &self,
        group: &str,
        topic: &str,
    ) -> impl Future<Output = Result<Self::Member, LogError>> + Send;

    /// A group's stored position for a partition (see [`GroupMember::commit`]), if any.
    fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> impl Future<Output = Result<Option<u64>, LogError>> + Send;
}

/// An append handed over to the log whose outcome is still to come; see
/// [`Log::start_append`]. Owns everything it needs, so it can be kept while more appends are
/// started.
pub type PendingAppend =
    std::pin::Pin<Box<dyn Future<Output = Result<Vec<u64>, LogError>> + Send + 'static>>;

/// Appends a batch routed by key with the murmur2 partitioner: records are grouped by
/// partition, order kept within each partition, and the partitions are appended
/// concurrently (one append per partition, all in flight at once). Returns
/// `(partition, offset)` per record, in input order. Records without a key go to partition 0.
/// On error, some partitions' appends may have succeeded (callers retry the whole batch;
/// duplicates are removed downstream by event identity).
pub async fn append_by_key<L: Log>(
    log: &L,
    topic: &str,
    records: Vec<Record>,
) -> Result<Vec<(u32, u64)>, LogError> {
    let partitions = log.partition_count(topic).await?;
    let total = records.len();
    let mut by_partition: std::collections::BTreeMap<u32, (Vec<usize>, Vec<Record>)> =
        std::collections::BTreeMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let partition = record
            .key
            .as_deref()
            .map_or(0, |k| partitioner::partition_for_key(k, partitions));
        let entry = by_partition.entry(partition).or_default();
        entry.0.push(index);
        entry.1.push(record);
    }
    let appends = by_partition
        .into_iter()
        .map(|(partition, (indexes, batch))| async move {
            let offsets = log.append(topic, partition, batch).await?;
            Ok::<_, LogError>((partition, indexes, offsets))
        });
    let mut out = vec![(0u32, 0u64); total];
    for result in futures_util::future::join_all(appends).await {
        let (partition, indexes, offsets) = result?;
        for (index, offset) in indexes.into_iter().zip(offsets) {
            if let Some(slot) = out.get_mut(index) {
                *slot = (partition, offset);
            }
        }
    }
    Ok(out)
}

/// [`append_by_key`] in two steps, for producers that keep several batches in flight: routes
/// the records over `partitions` (the caller's, possibly cached, partition count), starts one
/// [`Log::start_append`] per partition (concurrently) and returns once every partition's
/// records are handed over, so a batch started after this returned lands after this one on
/// every partition. The returned future resolves once every partition's append is durable,
/// to the first error otherwise (the other partitions may have been written: callers retry
/// the whole batch, duplicates are removed downstream by event identity). If a partition
/// cannot be started, the error is returned at once; partitions already started may still
/// be written.
pub async fn start_append_by_key<L: Log>(
    log: &L,
    topic: &str,
    partitions: u32,
    records: Vec<Record>,
) -> Result<impl Future<Output = Result<(), LogError>> + Send + 'static, LogError> {
    let mut by_partition: std::collections::BTreeMap<u32, Vec<Record>> =
        std::collections::BTreeMap::new();
    for record in records {
        let partition = record
            .key
            .as_deref()
            .map_or(0, |k| partitioner::partition_for_key(k, partitions));
        by_partition.entry(partition).or_default().push(record);
    }
    let starts = by_partition
        .into_iter()
        .map(|(partition, batch)| log.start_append(topic, partition, batch));
    let mut pending = Vec::new();
    for started in futures_util::future::join_all(starts).await {
        pending.push(started?);
    }
    Ok(async move {
        for result in futures_util::future::join_all(pending).await {
            result?;
        }
        Ok(())
    })
}

/// A shared log is a log: roles in one process (`provenant up`) share one `Arc<L>`.
impl<L: Log> Log for std::sync::Arc<L> {
    type Reader = L::Reader;
    type Member = L::Member;

    fn partition_count(&self, topic: &str) -> impl Future<Output = Result<u32, LogError>> + Send {
        (**self).partition_count(topic)
    }

    fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<Vec<u64>, LogError>> + Send {
        (**self).append(topic, partition, records)
    }

    fn start_append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<PendingAppend, LogError>> + Send {
        (**self).start_append(topic, partition, records)
    }

    fn watermarks(
        &self,
        topic: &str,
        partition: u32,
    ) -> impl Future<Output = Result<Watermarks, LogError>> + Send {
        (**self).watermarks(topic, partition)
    }

    fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> impl Future<Output = Result<Self::Reader, LogError>> + Send {
        (**self).reader(topic, partition, from)
    }

    fn join_group(
        &self,
        group: &str,
        topic: &str,
    ) -> impl Future<Output = Result<Self::Member, LogError>> + Send {
        (**self).join_group(group, topic)
    }

    fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> impl Future<Output = Result<Option<u64>, LogError>> + Send {
        (**self).committed(group, topic, partition)
    }
}
