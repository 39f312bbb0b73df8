//! The processor's settings (the `[processor]` table of `provenant process --config FILE`).

use std::time::Duration;

use serde::Deserialize;

/// Processor settings. Every field has a default; unknown fields are refused.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// The consumer group over `prov.raw`.
    pub group: String,
    /// Raw records read and written per ledger append.
    pub batch_max: usize,
    /// How long a read waits for new raw records, in milliseconds.
    pub poll_ms: u64,
    /// Event identities (`source`, `id`) remembered per partition for deduplication. A
    /// producer retry older than this many events of its partition is not caught.
    pub dedup_window: usize,
    /// How often pending links are checked against newly learned entities, in milliseconds.
    pub recheck_ms: u64,
    /// Pending links kept in memory per partition, waiting for their target. Past it the
    /// oldest are dropped: they stay pending in the ledger for good (the index still has
    /// the reference as an edge) and show in `provenant_processor_untracked_links`. Bounds
    /// memory when events keep referring to entities no producer reports (~60 bytes each).
    pub max_pending_links: usize,
    /// Store the raw bytes of rejected records in the DLQ. Off by default: the DLQ then holds
    /// the reason and a redacted JSON copy of what could be read, so it never becomes a PII
    /// leak. Turn on only where the DLQ is protected like the raw topic.
    pub dlq_raw_bytes: bool,
    /// How many times a writer whose fence lost a race tries again with a higher epoch.
    pub takeover_attempts: u32,
    /// How often the raw position is committed to the group (lag metrics only), in ms.
    pub commit_interval_ms: u64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            group: "provenant-processor".into(),
            batch_max: 1000,
            poll_ms: 100,
            dedup_window: 100_000,
            recheck_ms: 200,
            max_pending_links: 250_000,
            dlq_raw_bytes: false,
            takeover_attempts: 5,
            commit_interval_ms: 1000,
        }
    }
}

impl ProcessorConfig {
    pub(crate) fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(1))
    }
    pub(crate) fn recheck(&self) -> Duration {
        Duration::from_millis(self.recheck_ms.max(1))
    }
    pub(crate) fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: ProcessorConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, ProcessorConfig::default());
        let c: ProcessorConfig = serde_json::from_str(r#"{"batch_max": 10}"#).unwrap();
        assert_eq!(c.batch_max, 10);
        assert!(serde_json::from_str::<ProcessorConfig>(r#"{"batchmax": 10}"#).is_err());
    }
}
