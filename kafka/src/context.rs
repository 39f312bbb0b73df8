//! rdkafka client contexts: librdkafka's log lines and global errors go to `tracing`
//! (target `librdkafka`), and the group member's rebalance callbacks become
//! [`GroupEvent`]s.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use provenant_log::{GroupEvent, RevokeAck};
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use tokio::sync::mpsc;

/// Forwards a librdkafka log line to `tracing`.
pub(crate) fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Forwards a librdkafka global error (broker down, all brokers down…) to `tracing`. These
/// are informational: librdkafka keeps retrying; the operations that fail report it.
pub(crate) fn forward_error(error: &KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", %error, reason, "librdkafka error");
}

/// The context of the producer, readers and metadata clients.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

impl ConsumerContext for TracingContext {}

impl rdkafka::producer::ProducerContext for TracingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, (): Self::DeliveryOpaque) {}
}

/// What a member's rebalance callbacks share with the [`crate::KafkaMember`].
#[derive(Debug)]
pub(crate) struct MemberState {
    pub(crate) topic: String,
    pub(crate) group: String,
    /// The partitions owned now.
    pub(crate) owned: Mutex<BTreeSet<u32>>,
    /// Assignments this member has received (see `GroupEvent::Assigned::generation`).
    pub(crate) generation: AtomicI32,
}

impl MemberState {
    pub(crate) fn owned(&self) -> Vec<u32> {
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }
}

/// The group member's context: turns rebalances into [`GroupEvent`]s and holds a revocation
/// until the member acknowledges it.
pub(crate) struct GroupContext {
    pub(crate) state: Arc<MemberState>,
    pub(crate) events: mpsc::UnboundedSender<GroupEvent>,
    pub(crate) revoke_timeout: Duration,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext")
            .field("state", &self.state)
            .field("revoke_timeout", &self.revoke_timeout)
            .finish_non_exhaustive()
    }
}

impl GroupContext {
    /// The partitions of our topic in a rebalance's list, sorted.
    fn partitions(&self, list: &TopicPartitionList) -> Vec<u32> {
        let mut out: Vec<u32> = list
            .elements_for_topic(&self.state.topic)
            .iter()
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect();
        out.sort_unstable();
        out
    }

    /// Sends `Revoked` and waits, on the polling thread, for the member's ack.
    fn revoke(&self, partitions: &[u32]) {
        let (ack, mut done) = RevokeAck::pair();
        let group = &self.state.group;
        tracing::info!(
            group,
            ?partitions,
            "partitions revoked; waiting for the member"
        );
        if self
            .events
            .send(GroupEvent::Revoked {
                partitions: partitions.to_vec(),
                ack,
            })
            .is_err()
        {
            // The member is gone; the event (and its ack) were dropped, which acknowledges.
            return;
        }
        let started = Instant::now();
        loop {
            match done.try_recv() {
                Ok(()) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => break,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            if started.elapsed() > self.revoke_timeout {
                tracing::error!(
                    group,
                    ?partitions,
                    timeout_ms = self.revoke_timeout.as_millis(),
                    "member did not acknowledge the revocation in time; the rebalance goes on"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let partitions = self.partitions(list);
                if !partitions.is_empty() {
                    self.revoke(&partitions);
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                tracing::error!(group = %self.state.group, %error, "rebalance failed");
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked = self.partitions(list);
                let mut owned = self
                    .state
                    .owned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for partition in revoked {
                    owned.remove(&partition);
                }
            }
            Rebalance::Assign(list) => {
                // Membership only: the roles read through their own readers, so this consumer
                // must not fetch. Pause what was just assigned.
                if let Err(error) = consumer.pause(list) {
                    tracing::warn!(group = %self.state.group, %error, "could not pause assigned partitions");
                }
                let partitions = self.partitions(list);
                let generation = self.state.generation.fetch_add(1, Ordering::SeqCst) + 1;
                self.state
                    .owned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(partitions.iter().copied());
                tracing::info!(group = %self.state.group, ?partitions, generation, "partitions assigned");
                // A send error means the member is gone; nothing to tell.
                let _ = self.events.send(GroupEvent::Assigned {
                    partitions,
                    generation,
                });
            }
            Rebalance::Error(_) => {}
        }
    }
}
