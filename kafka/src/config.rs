//! [`KafkaConfig`]: everything [`crate::KafkaLog`] needs to reach a cluster, with named
//! defaults. The settings the log's contract depends on (idempotence, `acks=all`, no
//! auto-commit, no offset reset) are fixed and cannot be overridden through
//! [`KafkaConfig::settings`].

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::Deserialize;

/// The level librdkafka logs at (to `tracing`, target `librdkafka`, which filters further).
/// Info: its warnings and connection problems stay visible (TESTING.md).
pub const LIBRDKAFKA_LOG_LEVEL: rdkafka::config::RDKafkaLogLevel =
    rdkafka::config::RDKafkaLogLevel::Info;

/// librdkafka settings that [`crate::KafkaLog`] sets itself because the log's contract
/// depends on them. Passing one of them in [`KafkaConfig::settings`] is a configuration error.
pub const RESERVED_SETTINGS: [&str; 9] = [
    "bootstrap.servers",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "group.id",
    "allow.auto.create.topics",
];

/// How to reach a Kafka cluster and how to produce to it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// `client.id`, shown in broker logs and quotas.
    pub client_id: String,
    /// `compression.type` of produced batches.
    pub compression: String,
    /// `linger.ms`: how long the producer waits to fill a batch.
    pub linger_ms: u32,
    /// `message.timeout.ms`: how long a record may wait for delivery before the append fails
    /// (retryably).
    pub message_timeout_ms: u32,
    /// Timeout of metadata, watermark and offset calls.
    pub request_timeout_ms: u32,
    /// Group members: `session.timeout.ms` (librdkafka default 45 s; tests use a few seconds).
    pub session_timeout_ms: Option<u32>,
    /// Group members: `heartbeat.interval.ms` (about a third of the session timeout).
    pub heartbeat_interval_ms: Option<u32>,
    /// Group members: `group.instance.id`, for static membership (a restarted member gets its
    /// partitions back without a rebalance, within the session timeout). With it, leaving
    /// sends no LeaveGroup: the member's partitions move only after the session timeout.
    pub group_instance_id: Option<String>,
    /// How long a rebalance waits for a member to acknowledge a revocation before it goes
    /// on anyway (logged as an error). Must stay below `max.poll.interval.ms` (5 min).
    pub revoke_timeout_ms: u32,
    /// Any other librdkafka setting, passed through to every client (TLS, SASL, tuning),
    /// e.g. `security.protocol`, `ssl.ca.location`, `sasl.mechanisms`. TLS and SASL need an
    /// rdkafka build with the `ssl` / `sasl` features; this workspace's build has neither, so
    /// such settings fail at start-up with librdkafka's message.
    pub settings: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// The default compression (`lz4`: cheap on CPU, and it keeps more events under the mock
    /// broker's per-partition cap).
    pub const DEFAULT_COMPRESSION: &'static str = "lz4";
    /// The default `linger.ms`.
    pub const DEFAULT_LINGER_MS: u32 = 5;
    /// The default `message.timeout.ms`.
    pub const DEFAULT_MESSAGE_TIMEOUT_MS: u32 = 30_000;
    /// The default timeout of metadata, watermark and offset calls.
    pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 10_000;
    /// The default revoke acknowledgement timeout.
    pub const DEFAULT_REVOKE_TIMEOUT_MS: u32 = 60_000;

    /// A configuration with defaults for `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            ..Self::default()
        }
    }

    /// Sets a passed-through librdkafka setting.
    #[must_use]
    pub fn with_setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.insert(name.into(), value.into());
        self
    }

    /// The timeout of metadata, watermark and offset calls.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.request_timeout_ms))
    }

    /// The revoke acknowledgement timeout.
    pub fn revoke_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.revoke_timeout_ms))
    }

    /// Checks what librdkafka cannot: a bootstrap list is present and no reserved setting is
    /// overridden.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::NoBootstrapServers);
        }
        if let Some(name) = self
            .settings
            .keys()
            .find(|name| RESERVED_SETTINGS.contains(&name.as_str()))
        {
            return Err(ConfigError::Reserved { name: name.clone() });
        }
        Ok(())
    }

    /// Settings every client shares: servers, client id, pass-through settings.
    pub(crate) fn base(&self, role: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("{}-{role}", self.client_id))
            .set("allow.auto.create.topics", "false")
            .set_log_level(LIBRDKAFKA_LOG_LEVEL);
        for (name, value) in &self.settings {
            config.set(name, value);
        }
        config
    }

    /// The idempotent producer.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string());
        // Pass-through settings may tune the above; the contract settings come last.
        for (name, value) in self.base("producer").config_map() {
            config.set(name, value);
        }
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set_log_level(LIBRDKAFKA_LOG_LEVEL);
        config
    }

    /// A consumer that never commits and never moves its position on its own.
    pub(crate) fn consumer(&self, role: &str, group: &str) -> ClientConfig {
        let mut config = self.base(role);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "error");
        config
    }

    /// A group member: membership only, never fetches for the roles.
    pub(crate) fn member(&self, group: &str) -> ClientConfig {
        let mut config = self.consumer("member", group);
        // The member's partitions are paused; a position is still needed when a partition
        // has no committed offset, and "error" would only produce noise here.
        config.set("auto.offset.reset", "latest");
        if let Some(ms) = self.session_timeout_ms {
            config.set("session.timeout.ms", ms.to_string());
        }
        if let Some(ms) = self.heartbeat_interval_ms {
            config.set("heartbeat.interval.ms", ms.to_string());
        }
        if let Some(id) = &self.group_instance_id {
            config.set("group.instance.id", id);
        }
        config
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            client_id: "provenant".to_owned(),
            compression: Self::DEFAULT_COMPRESSION.to_owned(),
            linger_ms: Self::DEFAULT_LINGER_MS,
            message_timeout_ms: Self::DEFAULT_MESSAGE_TIMEOUT_MS,
            request_timeout_ms: Self::DEFAULT_REQUEST_TIMEOUT_MS,
            session_timeout_ms: None,
            heartbeat_interval_ms: None,
            group_instance_id: None,
            revoke_timeout_ms: Self::DEFAULT_REVOKE_TIMEOUT_MS,
            settings: BTreeMap::new(),
        }
    }
}

/// A configuration [`crate::KafkaLog`] cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `bootstrap_servers` is empty.
    #[error("no Kafka bootstrap servers configured; set bootstrap_servers to host:port")]
    NoBootstrapServers,
    /// A pass-through setting would override one the log depends on.
    #[error(
        "librdkafka setting `{name}` cannot be passed through: the Kafka log sets it itself (idempotent producer, acks=all, manual commits, no offset reset)"
    )]
    Reserved { name: String },
    /// librdkafka rejected the configuration.
    #[error("librdkafka rejected the {role} configuration: {source}")]
    Client {
        role: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_contract_settings() {
        let config = KafkaConfig::new("127.0.0.1:9092").with_setting("linger.ms", "20");
        config.validate().unwrap();
        let producer = config.producer();
        assert_eq!(producer.get("compression.type"), Some("lz4"));
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("acks"), Some("all"));
        let reader = config.consumer("reader", "g");
        assert_eq!(reader.get("auto.offset.reset"), Some("error"));
        assert_eq!(reader.get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn parses_from_serde_with_defaults_and_refuses_unknown_fields() {
        let config: KafkaConfig = serde_json::from_str(
            r#"{"bootstrap_servers": "k1:9092,k2:9092", "session_timeout_ms": 6000,
                "settings": {"security.protocol": "ssl", "ssl.ca.location": "/etc/ca.pem"}}"#,
        )
        .unwrap();
        assert_eq!(config.bootstrap_servers, "k1:9092,k2:9092");
        assert_eq!(config.compression, "lz4");
        assert_eq!(config.linger_ms, KafkaConfig::DEFAULT_LINGER_MS);
        assert_eq!(config.session_timeout_ms, Some(6000));
        assert_eq!(
            config.producer().get("security.protocol"),
            Some("ssl"),
            "settings pass through"
        );
        config.validate().unwrap();
        let unknown = serde_json::from_str::<KafkaConfig>(r#"{"bootstrap_server": "k:9092"}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn every_client_logs_at_info() {
        let config = KafkaConfig::new("b:9092");
        for client in [
            config.producer(),
            config.base("meta"),
            config.consumer("reader", "g"),
            config.member("g"),
        ] {
            assert!(
                matches!(client.log_level, rdkafka::config::RDKafkaLogLevel::Info),
                "{:?}",
                client.log_level
            );
        }
    }

    #[test]
    fn reserved_settings_are_refused() {
        let config = KafkaConfig::new("b:9092").with_setting("enable.idempotence", "false");
        assert!(
            matches!(config.validate(), Err(ConfigError::Reserved { name }) if name == "enable.idempotence")
        );
        assert!(matches!(
            KafkaConfig::default().validate(),
            Err(ConfigError::NoBootstrapServers)
        ));
    }

    #[test]
    fn member_settings_for_tests() {
        let config = KafkaConfig {
            session_timeout_ms: Some(6000),
            heartbeat_interval_ms: Some(500),
            group_instance_id: Some("proc-1".to_owned()),
            ..KafkaConfig::new("b:9092")
        };
        let member = config.member("g");
        assert_eq!(member.get("session.timeout.ms"), Some("6000"));
        assert_eq!(member.get("heartbeat.interval.ms"), Some("500"));
        assert_eq!(member.get("group.instance.id"), Some("proc-1"));
        assert_eq!(member.get("enable.auto.commit"), Some("false"));
    }
}
