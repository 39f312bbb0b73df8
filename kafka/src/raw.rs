//! A plain rdkafka producer for baselines: what an application that links librdkafka
//! directly would do to send the same records. `provenant bench` measures the producer
//! library against it (`emit_vs_raw_producer`), so it lives here, in the one crate that links
//! rdkafka.

use std::time::{Duration, Instant};

use provenant_log::Record;
use provenant_log::partitioner::partition_for_key;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A `FutureProducer` with the settings the log's producer uses: idempotence, `acks=all`, lz4,
/// `linger.ms=5`.
pub struct RawProducer(FutureProducer);

impl std::fmt::Debug for RawProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawProducer")
    }
}

/// What one [`RawProducer::send_all`] took: each `send_result` call, and first call → last
/// acknowledgement.
#[derive(Debug)]
pub struct RawOutcome {
    pub calls: Vec<Duration>,
    pub total: Duration,
}

/// The baseline producer's settings for `bootstrap` (the log's producer settings:
/// idempotence, `acks=all`, lz4, `linger.ms=5`); also used by `benches/log_vs_raw.rs`.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5");
    config
}

impl RawProducer {
    /// A producer for `bootstrap`.
    pub fn new(bootstrap: &str) -> Result<Self, String> {
        producer_config(bootstrap)
            .create()
            .map(Self)
            .map_err(|e| e.to_string())
    }

    /// Sends every record to `topic` (partition chosen by the log's murmur2 partitioner over
    /// `partitions`) with one `send_result` each, then awaits every delivery.
    pub async fn send_all(
        &self,
        topic: &str,
        partitions: u32,
        records: &[Record],
    ) -> Result<RawOutcome, String> {
        let mut calls = Vec::with_capacity(records.len());
        let mut pending = Vec::with_capacity(records.len());
        let start = Instant::now();
        for r in records {
            let key = r.key.as_deref().unwrap_or_default();
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for h in &r.headers {
                headers = headers.insert(Header {
                    key: &h.name,
                    value: Some(h.value.as_ref()),
                });
            }
            let partition =
                i32::try_from(partition_for_key(key, partitions)).map_err(|e| e.to_string())?;
            let t = Instant::now();
            let record = FutureRecord::to(topic)
                .key(key)
                .payload(r.value.as_ref())
                .headers(headers)
                .partition(partition);
            match self.0.send_result(record) {
                Ok(f) => pending.push(f),
                Err((e, _)) => return Err(format!("raw send: {e}")),
            }
            calls.push(t.elapsed());
        }
        for f in pending {
            f.await
                .map_err(|e| e.to_string())?
                .map_err(|(e, _)| format!("raw delivery: {e}"))?;
        }
        Ok(RawOutcome {
            calls,
            total: start.elapsed(),
        })
    }
}
