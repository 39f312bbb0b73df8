//! Sorting rdkafka errors into the log's error kinds, the way vector's kafka sink does
//! (`src/sinks/kafka/service.rs`): a full local queue, timeouts and brokers that are down or
//! moving leadership are worth retrying; a record too large, an unknown topic, bad
//! configuration and failed authentication are not.
//!
//! Invariant: an error code we do not know sorts as **fatal**. A fatal error stops the
//! caller with an alarm; an unknown code that is really transient costs a restart, while an
//! unknown code that is really permanent, sorted as retryable, would retry forever.

use provenant_log::LogError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What an rdkafka error means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSort {
    /// Trying the same call again later may succeed.
    Retry,
    /// Trying again will not help.
    Fail,
    /// The topic or partition does not exist.
    UnknownPartition,
    /// The client was shut down.
    Closed,
}

/// Sorts a librdkafka error code.
pub fn sort_code(code: RDKafkaErrorCode) -> ErrorSort {
    use RDKafkaErrorCode as C;
    match code {
        // The local queue is full, or something took too long: back off and retry.
        C::QueueFull
        | C::MessageTimedOut
        | C::OperationTimedOut
        | C::RequestTimedOut
        | C::TimedOutQueue
        // Brokers down, unreachable or moving partitions around.
        | C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::Resolve
        | C::BrokerNotAvailable
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::PreferredLeaderNotAvailable
        | C::ReplicaNotAvailable
        | C::NetworkException
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::ISRInsufficient
        | C::KafkaStorageError
        | C::FencedLeaderEpoch
        | C::UnknownLeaderEpoch
        | C::OffsetNotAvailable
        | C::ThrottlingQuotaExceeded
        // The group coordinator is moving or the group is rebalancing.
        | C::CoordinatorLoadInProgress
        | C::CoordinatorNotAvailable
        | C::NotCoordinator
        | C::WaitingForCoordinator
        | C::RebalanceInProgress
        | C::IllegalGeneration
        | C::UnknownMemberId
        | C::UnstableOffsetCommit
        | C::Retry
        | C::InProgress
        | C::PreviousInProgress
        | C::Interrupted
        | C::RebootstrapRequired => ErrorSort::Retry,

        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition | C::UnknownTopicId => {
            ErrorSort::UnknownPartition
        }

        C::BrokerDestroy | C::DestroyBroker => ErrorSort::Closed,

        // Everything else, and in particular: records too large or malformed, bad topic
        // names or configuration, authentication and authorization failures, idempotence
        // violations (fenced or out-of-sequence producers) and fatal client states.
        _ => ErrorSort::Fail,
    }
}

/// Sorts any rdkafka error.
pub fn sort(error: &KafkaError) -> ErrorSort {
    match error {
        KafkaError::Canceled => ErrorSort::Closed,
        KafkaError::NoMessageReceived => ErrorSort::Retry,
        KafkaError::MessageConsumptionFatal(_)
        | KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Nul(_) => ErrorSort::Fail,
        other => other
            .rdkafka_error_code()
            .map_or(ErrorSort::Fail, sort_code),
    }
}

/// Turns an rdkafka error of operation `op` on `topic`/`partition` into a [`LogError`].
pub fn to_log_error(op: &'static str, topic: &str, partition: u32, error: &KafkaError) -> LogError {
    match sort(error) {
        ErrorSort::Retry => LogError::Retryable {
            op,
            topic: topic.to_owned(),
            partition,
            message: error.to_string(),
        },
        ErrorSort::Fail => LogError::Fatal {
            op,
            topic: topic.to_owned(),
            partition,
            message: error.to_string(),
        },
        ErrorSort::UnknownPartition => LogError::UnknownPartition {
            topic: topic.to_owned(),
            partition,
        },
        ErrorSort::Closed => LogError::Closed,
    }
}

/// A fatal error for a failure that is not an rdkafka error (a bad setting, a broken
/// invariant).
pub(crate) fn fatal(
    op: &'static str,
    topic: &str,
    partition: u32,
    message: impl Into<String>,
) -> LogError {
    LogError::Fatal {
        op,
        topic: topic.to_owned(),
        partition,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn retryable_like_vector() {
        for code in [
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::OperationTimedOut,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NetworkException,
            RDKafkaErrorCode::CoordinatorNotAvailable,
        ] {
            let error = to_log_error("append", "t", 1, &produce(code));
            assert!(error.is_retryable(), "{code:?} sorted as {error:?}");
            assert!(matches!(
                error,
                LogError::Retryable {
                    op: "append",
                    partition: 1,
                    ..
                }
            ));
        }
    }

    #[test]
    fn fatal_like_vector() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidMessageSize,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::InvalidConfig,
            RDKafkaErrorCode::InvalidArgument,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::Authentication,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::SSL,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::Unknown,
        ] {
            let error = to_log_error("append", "t", 0, &produce(code));
            assert!(!error.is_retryable(), "{code:?} sorted as {error:?}");
            assert!(
                matches!(error, LogError::Fatal { .. }),
                "{code:?} sorted as {error:?}"
            );
        }
    }

    #[test]
    fn unknown_topic_or_partition_is_its_own_kind() {
        for code in [
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownPartition,
        ] {
            let error = to_log_error("append", "nope", 7, &produce(code));
            assert!(
                matches!(&error, LogError::UnknownPartition { topic, partition: 7 } if topic == "nope"),
                "{code:?} sorted as {error:?}"
            );
            assert!(!error.is_retryable());
        }
    }

    #[test]
    fn non_code_errors() {
        assert_eq!(sort(&KafkaError::Canceled), ErrorSort::Closed);
        assert_eq!(sort(&KafkaError::NoMessageReceived), ErrorSort::Retry);
        let config = rdkafka::ClientConfig::new()
            .set("linger.ms", "-1")
            .create::<rdkafka::producer::BaseProducer>()
            .err()
            .unwrap();
        assert!(matches!(config, KafkaError::ClientConfig(..)), "{config:?}");
        assert_eq!(sort(&config), ErrorSort::Fail);
        assert_eq!(
            sort(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown
            )),
            ErrorSort::Retry
        );
        assert_eq!(
            sort(&KafkaError::ConsumerCommit(
                RDKafkaErrorCode::RebalanceInProgress
            )),
            ErrorSort::Retry
        );
        assert_eq!(
            sort(&KafkaError::ClientCreation("no brokers".to_owned())),
            ErrorSort::Fail
        );
    }
}
