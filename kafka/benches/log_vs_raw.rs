//! `KafkaLog` against raw rdkafka on the same mock broker, in the same run.
//!
//! Both sides produce the same messages (same count, ~500-byte incompressible values, 32-byte
//! keys, the same partitions named explicitly) with the same producer settings (idempotent,
//! `acks=all`, lz4, `linger.ms=5`), then read them back from offset 0 with one consumer per
//! partition:
//!
//! * log: `KafkaLog::append` (batches of `BATCH` records, one task per partition) and one
//!   `KafkaReader` per partition (`next_batch`);
//! * raw: one `FutureProducer`, `send_result` for every message, then every delivery awaited;
//!   one `BaseConsumer` per partition, `assign` + `poll`.
//!
//! The mock keeps about 5 MiB per partition and silently drops older data, so each topic gets
//! `PARTITIONS` partitions and at most `PER_PARTITION` × 532 bytes ≈ 4.3 MB per partition.
//! Every round uses fresh topics; round 0 warms both sides up and is not counted; each side
//! closes its consumers outside its timed region; producers are created once, before timing. Run: `cargo bench -p provenant-kafka --bench log_vs_raw`.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use provenant_kafka::{DevKafka, KafkaConfig, KafkaLog};
use provenant_log::{Log, LogReader, Record};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const PARTITIONS: u32 = 8;
const PER_PARTITION: usize = 8_000;
const VALUE_BYTES: usize = 500;
const KEY_BYTES: usize = 32;
const BATCH: usize = 1_000;
const ROUNDS: usize = 10;

type BoxError = Box<dyn Error + Send + Sync>;

/// Incompressible bytes (xorshift), so lz4 does not flatter either side.
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

/// The messages of one partition.
fn messages(partition: u32) -> Vec<Record> {
    (0..PER_PARTITION)
        .map(|n| {
            let seed = u64::from(partition) << 32 | n as u64;
            Record {
                key: Some(noise(seed ^ 0xABCD, KEY_BYTES)),
                headers: Vec::new(),
                value: noise(seed, VALUE_BYTES),
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
struct Timing {
    produce: Duration,
    consume: Duration,
}

async fn run_log(
    log: Arc<KafkaLog>,
    topic: &str,
    data: &Arc<Vec<Vec<Record>>>,
) -> Result<Timing, BoxError> {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for partition in 0..PARTITIONS {
        let log = Arc::clone(&log);
        let data = Arc::clone(data);
        let topic = topic.to_owned();
        tasks.spawn(async move {
            let records = data.get(partition as usize).cloned().unwrap_or_default();
            for chunk in records.chunks(BATCH) {
                log.append(&topic, partition, chunk.to_vec()).await?;
            }
            Ok::<(), BoxError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let produce = started.elapsed();

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for partition in 0..PARTITIONS {
        let log = Arc::clone(&log);
        let topic = topic.to_owned();
        tasks.spawn(async move {
            let mut reader = log.reader(&topic, partition, 0).await?;
            let mut got = 0usize;
            while got < PER_PARTITION {
                let batch = reader.next_batch(10_000, Duration::from_secs(5)).await?;
                if batch.is_empty() {
                    return Err::<_, BoxError>(
                        format!("log read stalled at {got} on {partition}").into(),
                    );
                }
                got += batch.len();
            }
            Ok(reader)
        });
    }
    let mut readers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        readers.push(done??);
    }
    let consume = started.elapsed();
    // Closing consumers is not part of consuming: close them outside the timed region.
    drop(readers);
    Ok(Timing { produce, consume })
}

async fn run_raw(
    producer: &FutureProducer,
    bootstrap: &str,
    topic: &str,
    data: &Arc<Vec<Vec<Record>>>,
) -> Result<Timing, BoxError> {
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(PER_PARTITION * PARTITIONS as usize);
    for (partition, records) in (0i32..).zip(data.iter()) {
        for record in records {
            let mut message: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
                .partition(partition)
                .payload(record.value.as_ref());
            if let Some(key) = &record.key {
                message = message.key(key.as_ref());
            }
            let mut message = message;
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
        }
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let produce = started.elapsed();

    let started = Instant::now();
    let mut threads = Vec::new();
    for partition in 0..PARTITIONS {
        let bootstrap = bootstrap.to_owned();
        let topic = topic.to_owned();
        threads.push(std::thread::spawn(
            move || -> Result<BaseConsumer, BoxError> {
                let consumer: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", "bench-raw")
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "error")
                    .create()?;
                let mut list = TopicPartitionList::new();
                list.add_partition_offset(&topic, i32::try_from(partition)?, Offset::Offset(0))?;
                consumer.assign(&list)?;
                let mut got = 0usize;
                let deadline = Instant::now() + Duration::from_secs(60);
                while got < PER_PARTITION {
                    if Instant::now() > deadline {
                        return Err(format!("raw read stalled at {got} on {partition}").into());
                    }
                    if let Some(message) = consumer.poll(Duration::from_millis(500)) {
                        let message = message?;
                        // Touch the data as the log does (copying it out).
                        let _owned = (
                            message.key().map(<[u8]>::to_vec),
                            message.payload().map(<[u8]>::to_vec),
                        );
                        got += 1;
                    }
                }
                Ok(consumer)
            },
        ));
    }
    let mut consumers = Vec::new();
    for thread in threads {
        consumers.push(
            thread
                .join()
                .map_err(|_| "raw consumer thread panicked")??,
        );
    }
    let consume = started.elapsed();
    // Closing consumers is not part of consuming: close them outside the timed region.
    drop(consumers);
    Ok(Timing { produce, consume })
}

fn rate(count: usize, bytes: usize, took: Duration) -> (f64, f64) {
    let secs = took.as_secs_f64().max(1e-9);
    (count as f64 / secs, bytes as f64 / secs / 1e6)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a quick round.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let kafka = DevKafka::start_empty()?;
        let bootstrap = kafka.bootstrap_servers().to_owned();
        let log = Arc::new(KafkaLog::new(KafkaConfig::new(&bootstrap))?);
        let producer: FutureProducer = provenant_kafka::raw::producer_config(&bootstrap).create()?;
        let data: Arc<Vec<Vec<Record>>> = Arc::new((0..PARTITIONS).map(messages).collect());
        let count = PER_PARTITION * PARTITIONS as usize;
        let bytes = count * (VALUE_BYTES + KEY_BYTES);
        let (mut log_times, mut raw_times) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which side goes first, so neither always runs on a warm broker.
            let log_topic = format!("bench.log.{round}");
            let raw_topic = format!("bench.raw.{round}");
            kafka.create_topic(&log_topic, PARTITIONS)?;
            kafka.create_topic(&raw_topic, PARTITIONS)?;
            let (l, r) = if round % 2 == 0 {
                let l = run_log(Arc::clone(&log), &log_topic, &data).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                (l, run_raw(&producer, &bootstrap, &raw_topic, &data).await?)
            } else {
                let r = run_raw(&producer, &bootstrap, &raw_topic, &data).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                (run_log(Arc::clone(&log), &log_topic, &data).await?, r)
            };
            // Let the broker and the background threads settle before the next round.
            tokio::time::sleep(Duration::from_millis(500)).await;
            println!(
                "round {round}: log produce {:?} consume {:?} | raw produce {:?} consume {:?}",
                l.produce, l.consume, r.produce, r.consume
            );
            if round == 0 && !quick {
                println!("(round 0 is a warm-up, not counted)");
                continue;
            }
            log_times.push(l);
            raw_times.push(r);
        }
        println!(
            "\n{count} messages ({PARTITIONS} partitions x {PER_PARTITION}), {VALUE_BYTES} B values + {KEY_BYTES} B keys, median of {} rounds after a warm-up", log_times.len()
        );
        println!("| operation | KafkaLog msgs/s | KafkaLog MB/s | raw rdkafka msgs/s | raw MB/s | log / raw |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, pick) in [
            ("produce (acked)", (|t: &Timing| t.produce) as fn(&Timing) -> Duration),
            ("consume from 0", |t: &Timing| t.consume),
        ] {
            let l = median(log_times.iter().map(pick).collect());
            let r = median(raw_times.iter().map(pick).collect());
            let (lm, lb) = rate(count, bytes, l);
            let (rm, rb) = rate(count, bytes, r);
            println!(
                "| {name} | {lm:.0} | {lb:.1} | {rm:.0} | {rb:.1} | {:.2} |",
                lm / rm.max(1e-9)
            );
        }
        Ok::<(), BoxError>(())
    })
}
