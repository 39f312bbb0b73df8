//! The emitter against a transport whose availability the test controls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provenant_producer::{
    EmitError, Emitter, EmitterConfig, OverflowPolicy, Transport, TransportError,
};
use provenant_schemas::{Event, EventData, Runtime};

#[derive(Clone, Default)]
struct Switch {
    down: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<String>>>,
}

impl Transport for Switch {
    async fn send(&self, events: &[Event]) -> Result<(), TransportError> {
        // An unreachable destination answers only after a network-like delay.
        tokio::time::sleep(Duration::from_millis(2)).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::Unavailable("down".into()));
        }
        self.got
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.id.clone()));
        Ok(())
    }
    fn name(&self) -> &'static str {
        "switch"
    }
}

fn event(i: usize) -> Event {
    Event::new(
        "test://emitter",
        format!("e{i:06}"),
        EventData::Runtime(Runtime {
            instance_id: format!("pod-{}", i % 7),
            service: "shop".into(),
            environment: "staging".into(),
            deploy_id: Some("dep-1".into()),
            ..Runtime::default()
        }),
    )
}

/// Asserts that `got` is exactly e000000..e{n-1}, naming the first difference.
fn assert_exactly_in_order(got: &[String], n: usize) {
    for (i, id) in got.iter().enumerate() {
        assert_eq!(*id, format!("e{i:06}"), "first difference at position {i}");
    }
    assert_eq!(got.len(), n, "count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_in_order_and_counts() {
    let t = Switch::default();
    let emitter = Emitter::start(EmitterConfig::default(), t.clone()).unwrap();
    for i in 0..2_000 {
        emitter.emit(event(i)).unwrap();
    }
    emitter.flush().await.unwrap();
    assert_exactly_in_order(&t.got.lock().unwrap(), 2_000);
    let s = emitter.stats();
    assert_eq!((s.emitted, s.delivered, s.dropped), (2_000, 2_000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_events_are_refused_and_nothing_is_sent() {
    let t = Switch::default();
    let emitter = Emitter::start(EmitterConfig::default(), t.clone()).unwrap();
    let mut bad = event(0);
    bad.id = String::new();
    assert!(matches!(emitter.emit(bad), Err(EmitError::Invalid(_))));
    emitter.flush().await.unwrap();
    assert!(t.got.lock().unwrap().is_empty());
    assert_eq!(emitter.stats().invalid, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_spools_then_delivers_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let t = Switch::default();
    t.down.store(true, Ordering::SeqCst);
    let config = EmitterConfig {
        queue_capacity: 256,
        spool_dir: Some(dir.path().to_owned()),
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..EmitterConfig::default()
    };
    let emitter = Emitter::start(config, t.clone()).unwrap();
    let mut slowest = Duration::ZERO;
    for i in 0..10_000 {
        let start = Instant::now();
        emitter.emit(event(i)).unwrap();
        slowest = slowest.max(start.elapsed());
    }
    // Every call returned while the destination was down. This is a hang detector, not a
    // speed check (emit() is a plain function that never awaits the network; its cost is
    // measured in benches/): a call that waited for the send would sit out the backoff and
    // retries of an outage that never ends here.
    assert!(slowest < Duration::from_secs(5), "slowest emit {slowest:?}");
    emitter.flush().await.unwrap();
    let s = emitter.stats();
    assert!(t.got.lock().unwrap().is_empty());
    assert_eq!(s.emitted, 10_000);
    assert_eq!(s.spooled, 10_000, "{s:?}");
    assert_eq!(s.dropped, 0);
    t.down.store(false, Ordering::SeqCst);
    emitter.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while emitter.stats().replayed < 10_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_exactly_in_order(&t.got.lock().unwrap(), 10_000);
    let s = emitter.stats();
    assert_eq!((s.delivered, s.replayed, s.dropped), (10_000, 10_000, 0));
    // An event emitted after the outage is delivered too, after everything before it. (If
    // the worker has not yet seen the spool empty, flush() may return once the event is
    // spooled — "delivered or spooled" — and the replay delivers it: wait for it.)
    emitter.emit(event(10_000)).unwrap();
    emitter.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.got.lock().unwrap().len() < 10_001 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_exactly_in_order(&t.got.lock().unwrap(), 10_001);
    emitter.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_survives_shutdown_and_next_emitter_delivers_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let down = Switch::default();
    down.down.store(true, Ordering::SeqCst);
    let config = EmitterConfig {
        spool_dir: Some(dir.path().to_owned()),
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..EmitterConfig::default()
    };
    let first = Emitter::start(config.clone(), down.clone()).unwrap();
    for i in 0..500 {
        first.emit(event(i)).unwrap();
    }
    first.shutdown().await.unwrap();
    assert!(matches!(first.emit(event(0)), Err(EmitError::Closed)));
    drop(first);

    let up = Switch::default();
    let second = Emitter::start(config, up.clone()).unwrap();
    for i in 500..600 {
        second.emit(event(i)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.got.lock().unwrap().len() < 600 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_exactly_in_order(&up.got.lock().unwrap(), 600);
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_counts_every_dropped_event() {
    let t = Switch::default();
    t.down.store(true, Ordering::SeqCst);
    let config = EmitterConfig {
        queue_capacity: 100,
        overflow: OverflowPolicy::DropNewest,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        ..EmitterConfig::default()
    };
    let emitter = Emitter::start(config, t.clone()).unwrap();
    let mut refused = 0u64;
    for i in 0..1_000 {
        match emitter.emit(event(i)) {
            Ok(()) => {}
            Err(EmitError::Dropped { capacity: 100 }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 1_000 - 100 - 500, "refused {refused}");
    t.down.store(false, Ordering::SeqCst);
    emitter.flush().await.unwrap();
    let s = emitter.stats();
    assert_eq!(s.dropped, refused);
    assert_eq!(s.delivered + s.dropped, 1_000, "{s:?}");
    // What was delivered is in order, with gaps only where events were dropped.
    let got = t.got.lock().unwrap().clone();
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "delivered out of order"
    );
}
