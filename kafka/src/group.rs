//! [`KafkaMember`]: a consumer-group member over one topic, for membership only.
//!
//! A dedicated thread polls the member's consumer (librdkafka serves rebalance callbacks on
//! the polling thread; its own thread sends the heartbeats). The assigned partitions are
//! paused at once, so the member never fetches data: the roles read through their own
//! [`crate::KafkaReader`]s. A revocation blocks the polling thread, and so the rebalance,
//! until the member acknowledges it (or `revoke_timeout` passes, logged as an error).
//!
//! **Generation numbers.** rdkafka does not expose librdkafka's group generation id (it is
//! only inside the opaque `ConsumerGroupMetadata`), so `GroupEvent::Assigned::generation` is
//! counted locally: 1 for this member's first assignment, +1 for each later one. It orders
//! one member's assignments; it is not comparable between members.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use provenant_log::{GroupEvent, GroupMember, LogError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::context::{GroupContext, MemberState};
use crate::errors::{fatal, to_log_error};

type MemberConsumer = BaseConsumer<GroupContext>;

/// A member of a consumer group; see [`GroupMember`].
pub struct KafkaMember {
    state: Arc<MemberState>,
    events: mpsc::UnboundedReceiver<GroupEvent>,
    consumer: Option<Arc<MemberConsumer>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    request_timeout: Duration,
}

impl std::fmt::Debug for KafkaMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaMember")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl KafkaMember {
    /// Creates the consumer, subscribes and starts the polling thread.
    pub(crate) fn join(config: &KafkaConfig, group: &str, topic: &str) -> Result<Self, LogError> {
        let state = Arc::new(MemberState {
            topic: topic.to_owned(),
            group: group.to_owned(),
            owned: Mutex::default(),
            generation: AtomicI32::new(0),
        });
        let (tx, events) = mpsc::unbounded_channel();
        let context = GroupContext {
            state: Arc::clone(&state),
            events: tx,
            revoke_timeout: config.revoke_timeout(),
        };
        let consumer: MemberConsumer = config
            .member(group)
            .create_with_context(context)
            .map_err(|e| to_log_error("join_group", topic, 0, &e))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| to_log_error("join_group", topic, 0, &e))?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            let group = group.to_owned();
            std::thread::Builder::new()
                .name(format!("group-{group}"))
                .spawn(move || poll_until_stopped(&consumer, &stop, &group))
                .map_err(|e| fatal("join_group", topic, 0, format!("cannot start thread: {e}")))?
        };
        Ok(Self {
            state,
            events,
            consumer: Some(consumer),
            stop,
            poller: Some(poller),
            request_timeout: config.request_timeout(),
        })
    }
}

/// The member's polling loop: serves rebalances; drops any message (there should be none,
/// the partitions are paused).
fn poll_until_stopped(consumer: &MemberConsumer, stop: &AtomicBool, group: &str) {
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                tracing::debug!(
                    group,
                    partition = message.partition(),
                    "member ignores a fetched record"
                );
            }
            Some(Err(error)) => tracing::warn!(group, %error, "group member error"),
        }
    }
    consumer.unsubscribe();
}

impl GroupMember for KafkaMember {
    async fn next_event(&mut self) -> Result<GroupEvent, LogError> {
        self.events.recv().await.ok_or(LogError::Closed)
    }

    fn assignment(&self) -> Vec<u32> {
        self.state.owned()
    }

    async fn commit(&mut self, partition: u32, next_offset: u64) -> Result<(), LogError> {
        let topic = self.state.topic.clone();
        if !self.state.owned().contains(&partition) {
            return Err(fatal(
                "commit",
                &topic,
                partition,
                format!(
                    "this member of group {} does not own the partition",
                    self.state.group
                ),
            ));
        }
        let consumer = self
            .consumer
            .as_ref()
            .map(Arc::clone)
            .ok_or(LogError::Closed)?;
        let p = i32::try_from(partition).map_err(|_| LogError::UnknownPartition {
            topic: topic.clone(),
            partition,
        })?;
        let offset = i64::try_from(next_offset).map_err(|_| {
            fatal(
                "commit",
                &topic,
                partition,
                format!("offset {next_offset} too large"),
            )
        })?;
        let timeout = self.request_timeout;
        let result = tokio::task::spawn_blocking(move || {
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(&topic, p, Offset::Offset(offset))
                .map_err(|e| to_log_error("commit", &topic, partition, &e))?;
            consumer
                .commit(&list, CommitMode::Sync)
                .map_err(|e| to_log_error("commit", &topic, partition, &e))?;
            // librdkafka reports per-partition commit errors in the list it commits; read
            // them back so a silently refused commit is not taken for a success.
            let stored = consumer
                .committed_offsets(list, timeout)
                .map_err(|e| to_log_error("commit", &topic, partition, &e))?;
            match stored.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) if n == offset => Ok(()),
                other => Err(fatal(
                    "commit",
                    &topic,
                    partition,
                    format!("committed {offset}, the group reads back {other:?}"),
                )),
            }
        })
        .await;
        match result {
            Ok(outcome) => outcome,
            Err(join) => Err(fatal(
                "commit",
                &self.state.topic,
                partition,
                format!("worker failed: {join}"),
            )),
        }
    }

    async fn leave(mut self) -> Result<(), LogError> {
        // Nobody listens any more: a revocation during leaving acknowledges itself.
        self.events.close();
        while self.events.try_recv().is_ok() {}
        self.stop.store(true, Ordering::SeqCst);
        let consumer = self.consumer.take();
        let poller = self.poller.take();
        let topic = self.state.topic.clone();
        let result = tokio::task::spawn_blocking(move || {
            let joined = poller.map(JoinHandle::join);
            // The last reference: closing the consumer leaves the group.
            drop(consumer);
            joined
        })
        .await;
        match result {
            Ok(None | Some(Ok(()))) => Ok(()),
            Ok(Some(Err(_))) => Err(fatal("leave", &topic, 0, "the polling thread panicked")),
            Err(join) => Err(fatal("leave", &topic, 0, format!("worker failed: {join}"))),
        }
    }
}

impl Drop for KafkaMember {
    fn drop(&mut self) {
        // Dropped without `leave`: stop polling; the polling thread leaves the group. The
        // consumer is closed by whichever reference goes last, off the async workers.
        self.events.close();
        self.stop.store(true, Ordering::SeqCst);
        if let Some(consumer) = self.consumer.take() {
            let poller = self.poller.take();
            let close = move || {
                if let Some(handle) = poller {
                    let _ = handle.join();
                }
                drop(consumer);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(close)),
                Err(_) => close(),
            }
        }
    }
}
