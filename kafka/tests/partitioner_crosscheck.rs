//! librdkafka's own `murmur2_random` partitioner (a producer that names no partition) puts
//! keyed records on the partitions `provenant_log::partitioner::partition_for_key` computes,
//! so Provenant's producers and any librdkafka/Java producer agree on where a key lives.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use provenant_kafka::DevKafka;
use provenant_log::partitioner::partition_for_key;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Keys of many lengths (every tail length of murmur2's 4-byte blocks), binary ones, and the
/// typed entity keys Provenant uses.
fn keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = (0..200u32)
        .map(|n| format!("commit:{:x}", n.wrapping_mul(2_654_435_761)).into_bytes())
        .collect();
    keys.extend((1..=17).map(|len| (0..len).map(|i| (i * 37 + 11) as u8).collect()));
    keys.push(vec![0xff; 9]);
    // The empty key is hashed like any key (only a null key is spread at random).
    keys.push(Vec::new());
    keys.push(
        b"artifact:sha256:0000000000000000000000000000000000000000000000000000000000000000"
            .to_vec(),
    );
    keys.push("dataset:s3://bücket/ünïcode".as_bytes().to_vec());
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_murmur2_random_agrees_with_partition_for_key() {
    let kafka = DevKafka::start_empty().unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let keys = keys();
    for partitions in [2u32, 3, 4, 7, 16, 50] {
        let topic = format!("xcheck.{partitions}");
        kafka.create_topic(&topic, partitions).unwrap();
        let mut deliveries = Vec::new();
        for key in &keys {
            let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                .key(key.as_slice())
                .payload(b"x".as_slice());
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
        let mut used = std::collections::BTreeSet::new();
        for (key, delivery) in keys.iter().zip(deliveries) {
            let delivered = tokio::time::timeout(Duration::from_secs(30), delivery)
                .await
                .expect("delivery in time")
                .unwrap()
                .map_err(|(e, _)| e)
                .unwrap();
            let ours = partition_for_key(key, partitions);
            assert_eq!(
                u32::try_from(delivered.partition).unwrap(),
                ours,
                "key {:?} with {partitions} partitions",
                String::from_utf8_lossy(key)
            );
            used.insert(ours);
        }
        assert_eq!(
            used.len() as u32,
            partitions,
            "keys did not cover every partition"
        );
    }
}
