//! [`DevKafka`]: librdkafka's in-memory mock cluster (`rdkafka::mocking`) as a Kafka-protocol
//! broker on 127.0.0.1, for development and tests (`provenant dev-kafka`).
//!
//! What the mock does (librdkafka 2.12, read from its source and seen in tests):
//! * memory only; each partition keeps at most about 5 MiB or 100,000 message sets and drops
//!   older data silently (the start watermark moves, like retention);
//! * no CreateTopics admin call: topics are created through the mock API
//!   ([`DevKafka::create_topic`]);
//! * a Metadata request that allows auto-creation creates an unknown topic with **4**
//!   partitions (the mock's default; not configurable through rdkafka). librdkafka producers
//!   allow it by default; [`crate::KafkaLog`] never does (`allow.auto.create.topics=false`),
//!   so with the log an unknown topic is an error. A test that needs its own topics either
//!   creates them here (in-process), asks `provenant dev-kafka --topic NAME:PARTITIONS` (in
//!   another process), or sends `create-topic NAME PARTITIONS` on that process's stdin.
//! * no transactions worth the name (see TESTING.md), no DeleteRecords.

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::producer::{BaseProducer, Producer};

use crate::context::TracingContext;

/// The partitions of each of the three Provenant topics by default.
pub const DEFAULT_PARTITIONS: u32 = 4;

/// A running mock cluster with one broker. Dropping it stops the broker.
pub struct DevKafka {
    /// The client that owns the mock cluster (created with `test.mock.num.brokers`), so the
    /// mock's own log lines go through [`TracingContext`] to `tracing`.
    owner: BaseProducer<TracingContext>,
    bootstrap_servers: String,
}

impl std::fmt::Debug for DevKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKafka")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

/// The mock cluster failed to start or to create a topic.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot start librdkafka's mock cluster: {0}")]
    Start(#[source] rdkafka::error::KafkaError),
    #[error("librdkafka's mock cluster is not available in this build")]
    Unavailable,
    #[error(
        "cannot create topic {topic} with {partitions} partitions on the mock cluster: {message}"
    )]
    CreateTopic {
        topic: String,
        partitions: u32,
        message: String,
    },
}

impl DevKafka {
    /// Starts a one-broker mock cluster with no topics.
    pub fn start_empty() -> Result<Self, MockError> {
        let owner: BaseProducer<TracingContext> = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("client.id", "provenant-dev-kafka")
            .set_log_level(RDKafkaLogLevel::Info)
            .create_with_context(TracingContext)
            .map_err(MockError::Start)?;
        let bootstrap_servers = owner
            .client()
            .mock_cluster()
            .ok_or(MockError::Unavailable)?
            .bootstrap_servers();
        Ok(Self {
            owner,
            bootstrap_servers,
        })
    }

    /// Starts a one-broker mock cluster with `prov.raw`, `prov.ledger` and `prov.dlq`, each
    /// with `partitions` partitions.
    pub fn start(partitions: u32) -> Result<Self, MockError> {
        let kafka = Self::start_empty()?;
        for topic in provenant_log::TOPICS {
            kafka.create_topic(topic, partitions)?;
        }
        Ok(kafka)
    }

    /// `host:port` of the broker, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates a topic (replication factor 1). Creating a topic that exists is an error.
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), MockError> {
        let failed = |message: String| MockError::CreateTopic {
            topic: topic.to_owned(),
            partitions,
            message,
        };
        if partitions == 0 {
            return Err(failed("a topic needs at least one partition".to_owned()));
        }
        let count =
            i32::try_from(partitions).map_err(|_| failed("too many partitions".to_owned()))?;
        let cluster = self
            .owner
            .client()
            .mock_cluster()
            .ok_or(MockError::Unavailable)?;
        cluster
            .create_topic(topic, count, 1)
            .map_err(|e| failed(e.to_string()))
    }
}

/// Parses `NAME:PARTITIONS` (the `dev-kafka --topic` syntax).
pub fn parse_topic_spec(spec: &str) -> Result<(String, u32), String> {
    let (name, count) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("`{spec}`: expected NAME:PARTITIONS, e.g. test.raw:3"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{spec}`: the topic name is empty"));
    }
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{spec}`: `{count}` is not a partition count"))?;
    if count == 0 {
        return Err(format!("`{spec}`: a topic needs at least one partition"));
    }
    Ok((name.to_owned(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic_spec("a.b:3"), Ok(("a.b".to_owned(), 3)));
        assert!(parse_topic_spec("a.b").is_err());
        assert!(parse_topic_spec("a.b:0").is_err());
        assert!(parse_topic_spec(":2").is_err());
        assert!(parse_topic_spec("x:y").is_err());
    }
}
