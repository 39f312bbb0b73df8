//! [`KafkaLog`]: the [`Log`] trait on rdkafka, and its partition reader.
//!
//! * **Append**: one idempotent producer (`enable.idempotence=true`, `acks=all`, batching by
//!   `linger.ms`, lz4) shared by all appends; every record is sent to an explicit partition,
//!   and `append` returns once librdkafka reported every record's delivery. With idempotence,
//!   librdkafka keeps the records of one partition in order across its internal retries.
//!   `start_append` returns once the records are in librdkafka's queue (handed over: a later
//!   append to the partition lands after them) and leaves the delivery reports to the pending
//!   append, so a producer can keep several appends in flight.
//! * **Read**: a [`KafkaReader`] is a consumer *assigned* (never subscribed) to one partition,
//!   with `auto.offset.reset=error`, so it never jumps: an offset before the log start is
//!   [`LogError::OffsetOutOfRange`], at creation or while reading.
//! * **Blocking calls** (metadata, watermarks, committed offsets, consumer polls) run on
//!   tokio's blocking pool, never on the async workers.
//! * The log never creates topics (`allow.auto.create.topics=false`): a misspelt topic is an
//!   error, not a new topic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use provenant_log::{
    Header, Log, LogError, LogReader, PendingAppend, Record, StoredRecord, Watermarks,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::{ConfigError, KafkaConfig};
use crate::context::TracingContext;
use crate::errors::{fatal, to_log_error};
use crate::group::KafkaMember;

/// How long an append waits for room in librdkafka's local queue before it fails retryably.
const QUEUE_FULL_WAIT: Duration = Duration::from_secs(10);

/// The Kafka implementation of [`Log`].
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer<TracingContext>,
    /// Metadata and watermark queries (no group).
    meta: Arc<BaseConsumer<TracingContext>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// Converts a partition number to rdkafka's `i32`; a number beyond `i32` cannot exist.
fn to_i32(topic: &str, partition: u32) -> Result<i32, LogError> {
    i32::try_from(partition).map_err(|_| LogError::UnknownPartition {
        topic: topic.to_owned(),
        partition,
    })
}

/// Runs a blocking rdkafka call on the blocking pool.
async fn blocking<T: Send + 'static>(
    op: &'static str,
    topic: &str,
    partition: u32,
    work: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => Err(fatal(
            op,
            topic,
            partition,
            format!("worker failed: {join}"),
        )),
    }
}

/// A partition's watermarks, by a blocking call.
fn query_watermarks<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: u32,
    timeout: Duration,
) -> Result<Watermarks, LogError> {
    let p = to_i32(topic, partition)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, p, timeout)
        .map_err(|e| to_log_error("watermarks", topic, partition, &e))?;
    let start = u64::try_from(low).map_err(|_| {
        fatal(
            "watermarks",
            topic,
            partition,
            format!("negative low watermark {low}"),
        )
    })?;
    let end = u64::try_from(high).map_err(|_| {
        fatal(
            "watermarks",
            topic,
            partition,
            format!("negative high watermark {high}"),
        )
    })?;
    Ok(Watermarks { start, end })
}

/// The partition count of a topic, by a blocking metadata call.
fn query_partition_count<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<u32, LogError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| to_log_error("partition_count", topic, 0, &e))?;
    let unknown = || LogError::UnknownPartition {
        topic: topic.to_owned(),
        partition: 0,
    };
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(unknown)?;
    if let Some(code) = found.error() {
        let error = KafkaError::MetadataFetch(RDKafkaErrorCode::from(code));
        return Err(to_log_error("partition_count", topic, 0, &error));
    }
    let count = u32::try_from(found.partitions().len()).unwrap_or(u32::MAX);
    if count == 0 {
        return Err(unknown());
    }
    Ok(count)
}

/// A record's headers as rdkafka headers.
fn to_kafka_headers(headers: &[Header]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |acc, header| {
            acc.insert(rdkafka::message::Header {
                key: &header.name,
                value: Some(header.value.as_ref()),
            })
        },
    )
}

/// A consumed message as a stored record. Kafka has null headers values and null payloads;
/// the log's record has bytes, so null reads as empty.
fn to_stored(message: &BorrowedMessage<'_>, offset: u64) -> StoredRecord {
    let headers = message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    name: h.key.to_owned(),
                    value: h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    StoredRecord {
        offset,
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        record: Record {
            key: message.key().map(Bytes::copy_from_slice),
            headers,
            value: message
                .payload()
                .map(Bytes::copy_from_slice)
                .unwrap_or_default(),
        },
    }
}

/// Sorts a delivery error. librdkafka reports a record for a topic that does not exist as
/// timed out (it waits for the topic to appear); ask the cluster, so that an unknown topic is
/// reported as such (fatal), not as a timeout (retryable).
async fn delivery_error(
    meta: Arc<BaseConsumer<TracingContext>>,
    timeout: Duration,
    topic: &str,
    partition: u32,
    error: &KafkaError,
) -> LogError {
    let sorted = to_log_error("append", topic, partition, error);
    if error.rdkafka_error_code() != Some(RDKafkaErrorCode::MessageTimedOut) {
        return sorted;
    }
    let name = topic.to_owned();
    let count = blocking("partition_count", topic, 0, move || {
        query_partition_count(&meta, &name, timeout)
    })
    .await;
    match count {
        Err(unknown @ LogError::UnknownPartition { .. }) => unknown,
        Ok(count) if partition >= count => LogError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        },
        _ => sorted,
    }
}

/// Awaits the deliveries of one append, in order; the offsets, or the first failure sorted.
async fn await_deliveries(
    deliveries: Vec<DeliveryFuture>,
    meta: Arc<BaseConsumer<TracingContext>>,
    timeout: Duration,
    topic: String,
    partition: u32,
    p: i32,
) -> Result<Vec<u64>, LogError> {
    let mut offsets = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(delivered)) => {
                if delivered.partition != p {
                    return Err(fatal(
                        "append",
                        &topic,
                        partition,
                        format!("record delivered to partition {}", delivered.partition),
                    ));
                }
                let offset = u64::try_from(delivered.offset).map_err(|_| {
                    fatal(
                        "append",
                        &topic,
                        partition,
                        format!("delivered without an offset ({})", delivered.offset),
                    )
                })?;
                offsets.push(offset);
            }
            Ok(Err((error, _))) => {
                return Err(delivery_error(meta, timeout, &topic, partition, &error).await);
            }
            Err(_canceled) => return Err(LogError::Closed),
        }
    }
    Ok(offsets)
}

impl KafkaLog {
    /// Connects (lazily: librdkafka connects in the background) with `config`.
    pub fn new(config: KafkaConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let producer: FutureProducer<TracingContext> = config
            .producer()
            .create_with_context(TracingContext)
            .map_err(|source| ConfigError::Client {
                role: "producer",
                source,
            })?;
        let meta: BaseConsumer<TracingContext> = config
            .base("meta")
            .create_with_context(TracingContext)
            .map_err(|source| ConfigError::Client {
                role: "metadata client",
                source,
            })?;
        Ok(Self {
            config,
            producer,
            meta: Arc::new(meta),
        })
    }

    /// The configuration this log was built with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Waits up to `timeout` for records still queued in the producer to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        self.producer
            .flush(timeout)
            .map_err(|e| to_log_error("flush", "*", 0, &e))
    }

    /// Enqueues one record, waiting for room while librdkafka's queue is full.
    async fn enqueue(
        &self,
        topic: &str,
        partition: u32,
        p: i32,
        record: &Record,
    ) -> Result<DeliveryFuture, LogError> {
        let mut kafka_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(p)
            .payload(record.value.as_ref());
        if let Some(key) = &record.key {
            kafka_record = kafka_record.key(key.as_ref());
        }
        if !record.headers.is_empty() {
            kafka_record = kafka_record.headers(to_kafka_headers(&record.headers));
        }
        let started = Instant::now();
        loop {
            match self.producer.send_result(kafka_record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < QUEUE_FULL_WAIT =>
                {
                    kafka_record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => return Err(to_log_error("append", topic, partition, &error)),
            }
        }
    }
}

impl Log for KafkaLog {
    type Reader = KafkaReader;
    type Member = KafkaMember;

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        let meta = Arc::clone(&self.meta);
        let timeout = self.config.request_timeout();
        let name = topic.to_owned();
        blocking("partition_count", topic, 0, move || {
            query_partition_count(&meta, &name, timeout)
        })
        .await
    }

    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<Vec<u64>, LogError> {
        self.start_append(topic, partition, records).await?.await
    }

    /// Hands every record to librdkafka (waiting only while its queue is full) and returns;
    /// librdkafka sends a partition's records in the order they were handed over. The
    /// pending append awaits every delivery report.
    async fn start_append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<PendingAppend, LogError> {
        if records.is_empty() {
            return Ok(Box::pin(std::future::ready(Ok(Vec::new()))));
        }
        let p = to_i32(topic, partition)?;
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            deliveries.push(self.enqueue(topic, partition, p, record).await?);
        }
        Ok(Box::pin(await_deliveries(
            deliveries,
            Arc::clone(&self.meta),
            self.config.request_timeout(),
            topic.to_owned(),
            partition,
            p,
        )))
    }

    async fn watermarks(&self, topic: &str, partition: u32) -> Result<Watermarks, LogError> {
        let meta = Arc::clone(&self.meta);
        let timeout = self.config.request_timeout();
        let name = topic.to_owned();
        blocking("watermarks", topic, partition, move || {
            // Ask for the count first: an unknown partition is then a clear error instead of
            // a leader lookup that runs into the timeout.
            let count = match query_partition_count(&meta, &name, timeout) {
                Err(LogError::UnknownPartition { topic, .. }) => {
                    return Err(LogError::UnknownPartition { topic, partition });
                }
                other => other?,
            };
            if partition >= count {
                return Err(LogError::UnknownPartition {
                    topic: name,
                    partition,
                });
            }
            query_watermarks(&meta, &name, partition, timeout)
        })
        .await
    }

    async fn reader(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
    ) -> Result<KafkaReader, LogError> {
        let marks = self.watermarks(topic, partition).await?;
        if from < marks.start {
            return Err(LogError::OffsetOutOfRange {
                topic: topic.to_owned(),
                partition,
                requested: from,
                start: marks.start,
            });
        }
        if from > marks.end {
            return Err(fatal(
                "reader",
                topic,
                partition,
                format!("offset {from} is beyond the end {}", marks.end),
            ));
        }
        KafkaReader::new(&self.config, topic, partition, from)
    }

    async fn join_group(&self, group: &str, topic: &str) -> Result<KafkaMember, LogError> {
        // Fail early on an unknown topic: a subscription to it would just wait.
        self.partition_count(topic).await?;
        KafkaMember::join(&self.config, group, topic)
    }

    async fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        let config = self.config.clone();
        let group = group.to_owned();
        let name = topic.to_owned();
        let p = to_i32(topic, partition)?;
        blocking("committed", topic, partition, move || {
            let consumer: BaseConsumer<TracingContext> = config
                .consumer("offsets", &group)
                .create_with_context(TracingContext)
                .map_err(|e| to_log_error("committed", &name, partition, &e))?;
            let mut list = TopicPartitionList::new();
            list.add_partition(&name, p);
            let offsets = consumer
                .committed_offsets(list, config.request_timeout())
                .map_err(|e| to_log_error("committed", &name, partition, &e))?;
            let element = offsets.find_partition(&name, p);
            match element.map(|e| (e.offset(), e.error())) {
                Some((_, Err(error))) => Err(to_log_error("committed", &name, partition, &error)),
                Some((Offset::Offset(n), Ok(()))) => Ok(u64::try_from(n).ok()),
                _ => Ok(None),
            }
        })
        .await
    }
}

/// What a reader's polling thread and its async side share.
struct ReaderShared {
    consumer: BaseConsumer<TracingContext>,
    /// Records polled but not yet returned (a cancelled `next_batch` loses nothing).
    buffered: VecDeque<StoredRecord>,
    /// The offset the consumer is expected to deliver next.
    next: u64,
    request_timeout: Duration,
}

/// Reads one partition forward; see [`LogReader`].
pub struct KafkaReader {
    topic: String,
    partition: u32,
    position: u64,
    shared: Arc<tokio::sync::Mutex<ReaderShared>>,
}

impl std::fmt::Debug for KafkaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaReader")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl KafkaReader {
    fn new(config: &KafkaConfig, topic: &str, partition: u32, from: u64) -> Result<Self, LogError> {
        let p = to_i32(topic, partition)?;
        // librdkafka wants a group.id to assign partitions; the reader never subscribes, so
        // it never joins that group, and it never commits.
        let group = format!("{}-reader", config.client_id);
        let consumer: BaseConsumer<TracingContext> = config
            .consumer("reader", &group)
            .create_with_context(TracingContext)
            .map_err(|e| to_log_error("reader", topic, partition, &e))?;
        let offset = i64::try_from(from).map_err(|_| {
            fatal(
                "reader",
                topic,
                partition,
                format!("offset {from} too large"),
            )
        })?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, p, Offset::Offset(offset))
            .map_err(|e| to_log_error("reader", topic, partition, &e))?;
        consumer
            .assign(&list)
            .map_err(|e| to_log_error("reader", topic, partition, &e))?;
        Ok(Self {
            topic: topic.to_owned(),
            partition,
            position: from,
            shared: Arc::new(tokio::sync::Mutex::new(ReaderShared {
                consumer,
                buffered: VecDeque::new(),
                next: from,
                request_timeout: config.request_timeout(),
            })),
        })
    }
}

/// Polls until `max` records are buffered or, with none buffered, `wait` passed.
fn fill(
    shared: &mut ReaderShared,
    topic: &str,
    partition: u32,
    max: usize,
    wait: Duration,
) -> Result<(), LogError> {
    let deadline = Instant::now() + wait;
    while shared.buffered.len() < max {
        let timeout = if shared.buffered.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        let Some(polled) = shared.consumer.poll(timeout) else {
            if shared.buffered.is_empty() && Instant::now() < deadline {
                continue;
            }
            return Ok(());
        };
        match polled {
            Ok(message) => {
                let Ok(offset) = u64::try_from(message.offset()) else {
                    continue;
                };
                if offset < shared.next {
                    tracing::debug!(topic, partition, offset, "dropping a record already read");
                    continue;
                }
                if offset > shared.next {
                    // Not written by Provenant's producers (transaction markers, compaction);
                    // the processor accounts for gaps in the ledger (DESIGN.md rule 5).
                    tracing::warn!(
                        topic,
                        partition,
                        expected = shared.next,
                        offset,
                        "gap in offsets"
                    );
                }
                shared.next = offset + 1;
                shared.buffered.push_back(to_stored(&message, offset));
            }
            Err(error) => {
                let code = error.rdkafka_error_code();
                if matches!(
                    code,
                    Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
                ) {
                    if !shared.buffered.is_empty() {
                        return Ok(());
                    }
                    let start = query_watermarks(
                        &shared.consumer,
                        topic,
                        partition,
                        shared.request_timeout,
                    )
                    .map_or(0, |m| m.start);
                    return Err(LogError::OffsetOutOfRange {
                        topic: topic.to_owned(),
                        partition,
                        requested: shared.next,
                        start,
                    });
                }
                let log_error = to_log_error("read", topic, partition, &error);
                if log_error.is_retryable() {
                    // librdkafka reconnects and refetches on its own; these are reports.
                    tracing::warn!(topic, partition, %error, "consumer error; librdkafka retries");
                    if code == Some(RDKafkaErrorCode::AllBrokersDown) && shared.buffered.is_empty()
                    {
                        return Err(log_error);
                    }
                    continue;
                }
                if shared.buffered.is_empty() {
                    return Err(log_error);
                }
                return Ok(());
            }
        }
    }
    Ok(())
}

impl LogReader for KafkaReader {
    async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<StoredRecord>, LogError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let shared = Arc::clone(&self.shared);
        let topic = self.topic.clone();
        let partition = self.partition;
        blocking("read", &self.topic, self.partition, move || {
            let mut guard = shared.blocking_lock();
            fill(&mut guard, &topic, partition, max, wait)
        })
        .await?;
        // Take the records here, not on the blocking pool: if this future is dropped, they
        // stay buffered for the next call.
        let batch: Vec<StoredRecord> = {
            let mut guard = self.shared.lock().await;
            let take = guard.buffered.len().min(max);
            guard.buffered.drain(..take).collect()
        };
        if let Some(last) = batch.last() {
            self.position = last.offset + 1;
        }
        Ok(batch)
    }

    fn position(&self) -> u64 {
        self.position
    }
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        // Destroying a consumer waits for its threads; do it off the async workers.
        let shared = Arc::clone(&self.shared);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn_blocking(move || drop(shared)));
        }
    }
}
