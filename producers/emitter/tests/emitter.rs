//! The emitter against a transport whose availability the test controls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provenant_log::partitioner::partition_for_key;
use provenant_producer::{
    EmitError, Emitter, EmitterConfig, OverflowPolicy, Pending, Transport, TransportError,
};
use provenant_schemas::{Event, EventData, Runtime};

/// A transport with only `send` (the default `start`, as HTTP has): one batch at a time.
#[derive(Clone, Default)]
struct Switch {
    down: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<String>>>,
    calls_in_flight: Arc<AtomicUsize>,
    most_calls_in_flight: Arc<AtomicUsize>,
}

impl Transport for Switch {
    async fn send(&self, events: &[Event]) -> Result<(), TransportError> {
        let now = self.calls_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_calls_in_flight.fetch_max(now, Ordering::SeqCst);
        // An unreachable destination answers only after a network-like delay.
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.calls_in_flight.fetch_sub(1, Ordering::SeqCst);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_without_start_has_one_batch_in_flight() {
    let t = Switch::default();
    let config = EmitterConfig {
        max_batch: 100,
        ..EmitterConfig::default()
    };
    let emitter = Emitter::start(config, t.clone()).unwrap();
    for i in 0..3_000 {
        emitter.emit(event(i)).unwrap();
    }
    emitter.flush().await.unwrap();
    assert_exactly_in_order(&t.got.lock().unwrap(), 3_000);
    assert_eq!(t.most_calls_in_flight.load(Ordering::SeqCst), 1);
}

/// Partitions of [`Pipe`]: keys map to them with the log's murmur2 partitioner.
const PARTS: u32 = 4;

fn part_of(e: &Event) -> usize {
    partition_for_key(e.partition_key().as_bytes(), PARTS) as usize
}

/// A pipelining transport modelled on Kafka's idempotent producer: `start` hands a batch over
/// at once; its acknowledgement comes after `delay`, and acknowledgements come in hand-over
/// order. Per partition, a batch's records are written unless the partition is down; once a
/// partition fails a record, every record of it handed over until then fails too (nothing is
/// written past a gap), so a failed batch can be partly delivered (its other partitions).
#[derive(Clone)]
struct Pipe {
    s: Arc<PipeState>,
}

struct PipeState {
    delay: Duration,
    /// Batches handed over so far (a batch's sequence number is its position).
    handed: AtomicU64,
    /// The sequence number of the last settled batch.
    settled: tokio::sync::watch::Sender<u64>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Batches in flight when the first failure was settled.
    in_flight_at_first_failure: AtomicUsize,
    parts: Mutex<Vec<PartState>>,
    /// An event the destination rejects, and with it any batch holding it.
    reject: Option<String>,
    /// Ids in the order they were written (duplicates included).
    got: Mutex<Vec<String>>,
}

#[derive(Clone, Copy, Default)]
struct PartState {
    down: bool,
    /// Records of batches handed over up to this sequence number fail.
    failing_up_to: u64,
}

impl Pipe {
    fn new(delay: Duration, reject: Option<String>) -> Self {
        Self {
            s: Arc::new(PipeState {
                delay,
                handed: AtomicU64::new(0),
                settled: tokio::sync::watch::channel(0).0,
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
                in_flight_at_first_failure: AtomicUsize::new(0),
                parts: Mutex::new(vec![PartState::default(); PARTS as usize]),
                reject,
                got: Mutex::new(Vec::new()),
            }),
        }
    }

    fn set_down(&self, part: usize, down: bool) {
        self.s.parts.lock().unwrap()[part].down = down;
    }

    fn got(&self) -> Vec<String> {
        self.s.got.lock().unwrap().clone()
    }
}

impl PipeState {
    /// Writes what it can of batch `seq`; the outcome of the whole batch.
    fn settle(&self, seq: u64, batch: &[(usize, String)]) -> Result<(), TransportError> {
        if let Some(bad) = &self.reject
            && batch.iter().any(|(_, id)| id == bad)
        {
            return Err(TransportError::Rejected(format!("{bad} is not welcome")));
        }
        let mut parts = self.parts.lock().unwrap();
        let handed = self.handed.load(Ordering::SeqCst);
        let mut failed = false;
        for (part, state) in parts.iter_mut().enumerate() {
            if !batch.iter().any(|(p, _)| *p == part) {
                continue;
            }
            if state.down || seq <= state.failing_up_to {
                state.failing_up_to = state.failing_up_to.max(handed);
                failed = true;
            } else {
                let mut got = self.got.lock().unwrap();
                got.extend(
                    batch
                        .iter()
                        .filter(|(p, _)| *p == part)
                        .map(|(_, id)| id.clone()),
                );
            }
        }
        if failed {
            let now = self.in_flight.load(Ordering::SeqCst);
            let _ = self.in_flight_at_first_failure.compare_exchange(
                0,
                now,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            return Err(TransportError::Unavailable("partition down".into()));
        }
        Ok(())
    }
}

impl Transport for Pipe {
    async fn send(&self, events: &[Event]) -> Result<(), TransportError> {
        self.start(events).await?.await
    }

    async fn start(&self, events: &[Event]) -> Result<Pending, TransportError> {
        let seq = self.s.handed.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.s.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let batch: Vec<(usize, String)> =
            events.iter().map(|e| (part_of(e), e.id.clone())).collect();
        let s = Arc::clone(&self.s);
        Ok(Box::pin(async move {
            tokio::time::sleep(s.delay).await;
            // Acknowledgements in hand-over order, as a partition's are.
            let mut settled = s.settled.subscribe();
            settled.wait_for(|last| *last + 1 >= seq).await.unwrap();
            let outcome = s.settle(seq, &batch);
            s.in_flight.fetch_sub(1, Ordering::SeqCst);
            s.settled.send_replace(seq);
            outcome
        }))
    }

    fn name(&self) -> &'static str {
        "pipe"
    }
}

/// Position of an id made by [`event`].
fn index_of(id: &str) -> usize {
    id.trim_start_matches('e').parse().unwrap()
}

/// Every event 0..n was delivered, nothing else was; per key, the first copies are in emit
/// order. Returns how many copies were duplicates.
fn assert_all_once_or_more_first_copies_in_order(got: &[String], n: usize) -> usize {
    let mut seen = BTreeSet::new();
    let mut last_per_key: HashMap<String, usize> = HashMap::new();
    for id in got {
        let i = index_of(id);
        assert!(i < n, "unknown event {id}");
        if !seen.insert(i) {
            continue;
        }
        let key = event(i).partition_key().to_owned();
        if let Some(before) = last_per_key.insert(key.clone(), i) {
            assert!(
                before < i,
                "key {key}: first copy of e{i:06} came after e{before:06}"
            );
        }
    }
    assert_eq!(seen.len(), n, "missing events");
    got.len() - n
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_batches_are_in_flight_and_delivered_in_order() {
    let t = Pipe::new(Duration::from_millis(20), None);
    let config = EmitterConfig {
        max_batch: 250,
        max_in_flight: 4,
        ..EmitterConfig::default()
    };
    let emitter = Emitter::start(config, t.clone()).unwrap();
    for i in 0..10_000 {
        emitter.emit(event(i)).unwrap();
    }
    emitter.flush().await.unwrap();
    // The pipe writes a batch partition by partition: the order to check is per key.
    let duplicates = assert_all_once_or_more_first_copies_in_order(&t.got(), 10_000);
    assert_eq!(duplicates, 0);
    let most = t.s.most_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "most batches in flight: {most}");
    let s = emitter.stats();
    assert_eq!(
        (s.emitted, s.delivered, s.send_failures),
        (10_000, 10_000, 0)
    );
    emitter.shutdown().await.unwrap();
}

/// The outage of one partition begins while several batches are in flight: batches fail
/// partly (their other partitions are written), the ones handed over behind them fail on
/// that partition too. Everything arrives, per key the first copies in emit order, and the
/// only duplicates are events of failed batches that had been written already.
async fn outage_with_batches_in_flight(spool: bool) {
    let dir = tempfile::tempdir().unwrap();
    let n = 8_000;
    let t = Pipe::new(Duration::from_millis(10), None);
    let config = EmitterConfig {
        queue_capacity: n,
        spool_dir: spool.then(|| dir.path().to_owned()),
        max_batch: 200,
        max_in_flight: 4,
        min_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..EmitterConfig::default()
    };
    // Take down the partition of one key; some other key is on another partition.
    let down = part_of(&event(0));
    assert!((1..7).any(|i| part_of(&event(i)) != down));
    let emitter = Emitter::start(config, t.clone()).unwrap();
    for i in 0..n {
        emitter.emit(event(i)).unwrap();
        if i == 2_000 {
            wait_until("batches in flight", || {
                t.s.in_flight.load(Ordering::SeqCst) >= 3
            })
            .await;
            t.set_down(down, true);
        }
    }
    wait_until("a failure", || emitter.stats().send_failures > 0).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    t.set_down(down, false);
    emitter.flush().await.unwrap();
    wait_until("every event", || {
        t.got().iter().collect::<BTreeSet<_>>().len() == n
    })
    .await;
    emitter.shutdown().await.unwrap();
    let got = t.got();
    let duplicates = assert_all_once_or_more_first_copies_in_order(&got, n);
    let at_failure = t.s.in_flight_at_first_failure.load(Ordering::SeqCst);
    assert!(
        at_failure >= 2,
        "batches in flight at the failure: {at_failure}"
    );
    let s = emitter.stats();
    assert_eq!(
        (s.emitted, s.delivered, s.dropped, s.rejected),
        (n as u64, n as u64, 0, 0),
        "{s:?}"
    );
    if spool {
        assert!(s.spooled > 0 && s.spooled == s.replayed, "{s:?}");
    } else {
        assert_eq!(s.spooled, 0);
    }
    // Duplicates are copies of events of failed batches written on their healthy partitions.
    assert!(
        duplicates > 0,
        "the outage was meant to hit partly written batches"
    );
    let resent = if spool {
        s.spooled
    } else {
        200 * s.send_failures
    };
    assert!(
        duplicates as u64 <= resent,
        "{duplicates} duplicates, {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_batches_in_flight_spools_them_in_order_and_loses_nothing() {
    outage_with_batches_in_flight(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_with_batches_in_flight_without_a_spool_retries_them_in_order() {
    outage_with_batches_in_flight(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_rejected_with_later_batches_in_flight_loses_only_the_bad_event() {
    let n = 3_000;
    let bad = "e001010";
    let t = Pipe::new(Duration::from_millis(10), Some(bad.into()));
    let config = EmitterConfig {
        max_batch: 100,
        max_in_flight: 4,
        ..EmitterConfig::default()
    };
    let emitter = Emitter::start(config, t.clone()).unwrap();
    for i in 0..n {
        emitter.emit(event(i)).unwrap();
    }
    emitter.flush().await.unwrap();
    let got = t.got();
    let expected: BTreeSet<String> = (0..n)
        .map(|i| format!("e{i:06}"))
        .filter(|id| id != bad)
        .collect();
    assert_eq!(got.len(), n - 1, "no event twice, only the bad one missing");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let s = emitter.stats();
    assert_eq!(
        (s.delivered, s.rejected, s.send_failures),
        (n as u64 - 1, 1, 0),
        "{s:?}"
    );
    emitter.shutdown().await.unwrap();
}
