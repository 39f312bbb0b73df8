//! librdkafka's log lines reach `tracing` (target `librdkafka`, with the librdkafka facility
//! as a field), so its warnings are visible wherever Provenant's own logs go.

// Test code: helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use provenant_kafka::{KafkaConfig, KafkaLog};
use provenant_log::{Log, Record};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Counts events of target `librdkafka` that carry a `facility` field (log callback lines).
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

struct HasFacility(bool);

impl Visit for HasFacility {
    fn record_debug(&mut self, field: &Field, _value: &dyn std::fmt::Debug) {
        self.0 |= field.name() == "facility";
    }
    fn record_str(&mut self, field: &Field, _value: &str) {
        self.0 |= field.name() == "facility";
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == "librdkafka" {
            let mut visitor = HasFacility(false);
            event.record(&mut visitor);
            if visitor.0 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_logs_reach_tracing() {
    let count = Count::default();
    // librdkafka logs from its own threads: the subscriber must be global.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(count.clone()))
        .unwrap();
    // Nothing listens on port 1: librdkafka logs its failed connection attempts.
    let log = KafkaLog::new(KafkaConfig {
        message_timeout_ms: 1500,
        request_timeout_ms: 1500,
        ..KafkaConfig::new("127.0.0.1:1")
    })
    .unwrap();
    let err = log
        .append("t", 0, vec![Record::new("k", "v")])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let started = Instant::now();
    while count.0.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        count.0.load(Ordering::SeqCst) > 0,
        "no librdkafka log line reached tracing"
    );
}
