//! The conformance suite and Kafka-specific checks against an in-process mock cluster
//! (`DevKafka`). The same suite runs against the `provenant dev-kafka` process in
//! `cli/tests/kafka_conformance.rs`.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use provenant_kafka::{DevKafka, KafkaConfig, KafkaLog};
use provenant_log::{Log, LogReader, Record, conformance};

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

fn log_for(kafka: &DevKafka) -> KafkaLog {
    KafkaLog::new(KafkaConfig {
        session_timeout_ms: Some(6000),
        heartbeat_interval_ms: Some(500),
        message_timeout_ms: 3000,
        ..KafkaConfig::new(kafka.bootstrap_servers())
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_process() {
    init_logs();
    let kafka = DevKafka::start(4).unwrap();
    kafka.create_topic("conf.inproc", 3).unwrap();
    let log = log_for(&kafka);
    conformance::run_all(&log, "conf.inproc", "conf-inproc-group")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_not_created() {
    init_logs();
    let kafka = DevKafka::start(2).unwrap();
    let log = log_for(&kafka);
    let err = log.partition_count("no.such.topic").await.unwrap_err();
    assert!(
        matches!(err, provenant_log::LogError::UnknownPartition { .. }),
        "{err:?}"
    );
    let err = log
        .append("no.such.topic", 0, vec![Record::new("k", "v")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, provenant_log::LogError::UnknownPartition { .. }),
        "{err:?}"
    );
    // Still unknown: the log did not auto-create it.
    assert!(log.partition_count("no.such.topic").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_key_and_empty_value() {
    init_logs();
    let kafka = DevKafka::start(1).unwrap();
    let log = log_for(&kafka);
    let record = Record::new(bytes::Bytes::new(), bytes::Bytes::new());
    let offsets = log
        .append(provenant_log::RAW_TOPIC, 0, vec![record.clone()])
        .await
        .unwrap();
    let mut reader = log
        .reader(provenant_log::RAW_TOPIC, 0, offsets[0])
        .await
        .unwrap();
    let batch = reader.next_batch(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].record, record);
}

/// What the mock does with a topic nobody created: a client that allows auto-creation (a
/// plain librdkafka producer does by default) gets it created with 4 partitions, the mock's
/// default; `KafkaLog` never allows it (see `unknown_topic_is_not_created`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_auto_creates_topics_with_four_partitions_for_other_clients() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    init_logs();
    let kafka = DevKafka::start_empty().unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .create()
        .unwrap();
    let record: FutureRecord<'_, str, str> = FutureRecord::to("auto.created").key("k").payload("v");
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let log = log_for(&kafka);
    assert_eq!(log.partition_count("auto.created").await.unwrap(), 4);
}

/// Bytes lz4 cannot shrink (xorshift), so the mock's size cap is reached for real.
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

/// A reader that falls behind the log start while reading (the mock drops data past its
/// ~5 MiB cap, like retention) stops with `OffsetOutOfRange` at its position; it never skips
/// to the new start (DESIGN.md, exactly once, rule 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_overtaken_by_retention_stops_without_skipping() {
    init_logs();
    let kafka = DevKafka::start_empty().unwrap();
    kafka.create_topic("cap.reader", 1).unwrap();
    // Keep the reader's prefetch small, so the data it has not fetched yet can be dropped.
    let config = KafkaConfig {
        message_timeout_ms: 10_000,
        ..KafkaConfig::new(kafka.bootstrap_servers())
    }
    .with_setting("queued.max.messages.kbytes", "1")
    .with_setting("fetch.max.bytes", "1048576")
    .with_setting("max.partition.fetch.bytes", "1048576");
    let log = KafkaLog::new(config).unwrap();
    let batch = |first: u64| -> Vec<Record> {
        (first..first + 10)
            .map(|n| Record::new(format!("k{n}"), incompressible(n + 1, 100 * 1024)))
            .collect()
    };
    log.append("cap.reader", 0, batch(0)).await.unwrap();
    let mut reader = log.reader("cap.reader", 0, 0).await.unwrap();
    let first = reader.next_batch(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].offset, 0);

    // 8 MiB more: the mock drops the oldest data, including what the reader has not read.
    for round in 1..9u64 {
        log.append("cap.reader", 0, batch(round * 10))
            .await
            .unwrap();
    }
    let marks = log.watermarks("cap.reader", 0).await.unwrap();
    assert!(marks.start > 10, "the mock kept too much: {marks:?}");

    // The reader returns what it had already fetched, in order, then refuses to go on.
    let mut expected = 1u64;
    let outcome = loop {
        match reader.next_batch(100, Duration::from_secs(5)).await {
            Ok(records) if records.is_empty() => break Ok(()),
            Ok(records) => {
                for record in records {
                    assert_eq!(record.offset, expected, "the reader skipped");
                    expected += 1;
                }
            }
            Err(error) => break Err(error),
        }
    };
    let err = outcome.expect_err("the reader must not wait at a dropped offset");
    match err {
        provenant_log::LogError::OffsetOutOfRange {
            requested, start, ..
        } => {
            assert_eq!(requested, expected, "error names the reader's position");
            assert_eq!(reader.position(), expected);
            assert!(start >= marks.start, "start {start} < {marks:?}");
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}
