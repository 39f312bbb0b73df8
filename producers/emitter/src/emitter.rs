//! The emitter: [`Emitter::emit`] validates an event and hands it to a background worker
//! without ever waiting on the network.
//!
//! How events move:
//! * `emit` validates (an invalid event is refused at once, nothing is sent for it), then,
//!   under one short lock, puts the event in a bounded in-memory queue. When the queue is
//!   full, the [`OverflowPolicy`] decides: `Spool` appends it to the on-disk spool (a file
//!   write, no network), `DropNewest` drops it. Every outcome is counted in [`Stats`].
//! * The worker takes batches from the queue and hands them to the [`Transport`] with
//!   [`Transport::start`], keeping up to [`EmitterConfig::max_in_flight`] batches in flight:
//!   batch N+1 is handed over while N waits for its acknowledgement, and outcomes are settled
//!   in hand-over order. (`start` returns only once a later batch can no longer overtake this
//!   one; a transport that cannot promise that, like HTTP, sends the whole batch there, so it
//!   has one batch in flight.)
//! * When a batch fails with `Unavailable`, the worker first waits for the outcome of every
//!   later batch in flight (so that none of their records is still queued in the transport
//!   when the failed ones are sent again), then writes the failed batch, every later batch
//!   that failed too, and the rest of the queue, in that order, to the front of the spool
//!   (durably) and switches to *spooling*: from then on `emit` appends every event to the
//!   spool, and the worker replays the spool, oldest segment first, one batch at a time,
//!   retrying with backoff, deleting a segment only after the destination acknowledged all of
//!   it. When the spool is empty the emitter goes back to the queue.
//! * A batch the destination rejects for its content is sent again event by event, so that
//!   only the offending events are rejected (and counted).
//!
//! Invariants:
//! * Nothing is lost: every event is delivered, durably spooled, or counted as dropped or
//!   rejected. Delivery is at least once: a failed batch may have been partly delivered (on
//!   some partitions) and is sent again whole; the processor removes the duplicates by
//!   (`source`, `id`), keeping the first copy.
//! * Per emitter, events are handed to the destination in `emit` order (so per key too),
//!   whether they went through the queue, the spool, or both: while anything is spooled,
//!   nothing bypasses it; a failed batch is sent again before anything handed over after it
//!   that failed too, and before everything still queued. So the first copy of each event the
//!   destination keeps is in `emit` order per key, provided the destination fails a key's
//!   records in hand-over order (once a record of a key fails, the records of that key handed
//!   over after it fail too, rather than being written past the gap). Kafka with the
//!   idempotent producer does so for a partition, with one exception: records that time out
//!   (`message.timeout.ms`) just as the broker comes back, where a record handed over a little
//!   later can still get through. That window exists within one batch with one batch in
//!   flight; several batches in flight widen it by the time between their hand-overs
//!   (milliseconds). A batch rejected *after* later batches were handed over (a rejection
//!   that only the destination's acknowledgement reports) has its acceptable events sent again
//!   after those batches; a rejection when the batch is handed over (Kafka checks record sizes
//!   then) comes before any later batch is handed over.
//! * `emit` never waits on the network: it takes one lock held for a queue push or a
//!   buffered file append.
//! * After [`Emitter::flush`] returns, every event emitted before the call is delivered or
//!   durably spooled: a flush request is answered once every batch handed over before it is
//!   settled, after syncing the spool. [`Emitter::shutdown`] flushes and stops the worker; a
//!   spool left behind is delivered by the next emitter opened on the same directory.
//! * Without a spool directory there is no durability during an outage: the worker retries
//!   the failed batches in memory, in order, one at a time, and the queue's overflow policy
//!   decides about the rest.
//! * `emitted = delivered + spooled_pending + dropped + rejected + in_memory` at any moment
//!   (`delivered` counts each event once, when the batch it was in last is acknowledged; a
//!   batch that failed is counted as spooled or, retried in memory, when it is delivered);
//!   after `flush` with the destination up, `in_memory = spooled_pending = 0`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use provenant_schemas::{Event, EventError, Limits};
use tokio::sync::{mpsc, oneshot};

use crate::spool::{Spool, SpoolError};
use crate::transport::{Pending, Transport, TransportError};

/// What `emit` does when the in-memory queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Append the event to the spool directory (requires one); it is delivered in order later.
    #[default]
    Spool,
    /// Drop the event and count it in [`Stats::dropped`].
    DropNewest,
}

/// Emitter settings, with named defaults.
#[derive(Clone, Debug)]
pub struct EmitterConfig {
    /// Events held in memory before the overflow policy applies.
    pub queue_capacity: usize,
    /// What happens when the queue is full.
    pub overflow: OverflowPolicy,
    /// Where events wait while the destination is unreachable. `None`: no spool (events wait
    /// in memory only, and `OverflowPolicy::Spool` behaves like `DropNewest`).
    pub spool_dir: Option<PathBuf>,
    /// Most events per transport call.
    pub max_batch: usize,
    /// Most batches handed to the transport and not yet acknowledged. The worker hands batch
    /// N+1 over while N waits for its acknowledgement, and settles batches in the order it
    /// handed them over. Only a transport that can hand over without reordering pipelines
    /// ([`crate::LogTransport`]); others ([`crate::HttpTransport`]) send one batch at a time
    /// whatever this says. 1 (or 0) = one batch at a time.
    pub max_in_flight: usize,
    /// First retry delay after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Limits applied when validating.
    pub limits: Limits,
}

impl EmitterConfig {
    /// Default queue capacity: 10,000 events.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
    /// Default batch: 5,000 events (the partitions of a batch are appended concurrently).
    pub const DEFAULT_MAX_BATCH: usize = 5_000;
    /// Default batches in flight: 4. One batch in flight left the worker idle for `linger.ms`
    /// and the acknowledgements of every partition between batches (0.51–0.73× a raw
    /// rdkafka producer's throughput, `BENCHMARKS.md`).
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
}

impl Default for EmitterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            overflow: OverflowPolicy::Spool,
            spool_dir: None,
            max_batch: Self::DEFAULT_MAX_BATCH,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            limits: Limits::DEFAULT,
        }
    }
}

/// Why `emit` refused an event.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The event is not valid; nothing was sent for it.
    #[error("{0}")]
    Invalid(#[from] EventError),
    /// The queue was full and the overflow policy dropped the event.
    #[error("emitter queue full ({capacity} events): event dropped by the overflow policy")]
    Dropped { capacity: usize },
    /// The spool could not be written; the event was dropped and counted.
    #[error("event dropped: {0}")]
    Spool(#[from] SpoolError),
    /// The emitter was shut down.
    #[error("the emitter is shut down")]
    Closed,
}

/// Counters of what the emitter did. All monotonic.
#[derive(Debug, Default)]
pub struct Stats {
    /// Valid events accepted by `emit`.
    pub emitted: AtomicU64,
    /// Events refused by validation.
    pub invalid: AtomicU64,
    /// Events the destination acknowledged.
    pub delivered: AtomicU64,
    /// Events written to the spool (by `emit` on overflow or while spooling, or by the worker
    /// when the destination went down).
    pub spooled: AtomicU64,
    /// Spooled events delivered from the spool.
    pub replayed: AtomicU64,
    /// Events dropped by the overflow policy or a spool write failure.
    pub dropped: AtomicU64,
    /// Events the destination rejected for their content.
    pub rejected: AtomicU64,
    /// Spool records that were damaged (torn by a crash) and could not be read back.
    pub spool_damaged: AtomicU64,
    /// Transport calls that failed with `Unavailable`.
    pub send_failures: AtomicU64,
}

/// A plain copy of [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub emitted: u64,
    pub invalid: u64,
    pub delivered: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub spool_damaged: u64,
    pub send_failures: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            emitted: get(&self.emitted),
            invalid: get(&self.invalid),
            delivered: get(&self.delivered),
            spooled: get(&self.spooled),
            replayed: get(&self.replayed),
            dropped: get(&self.dropped),
            rejected: get(&self.rejected),
            spool_damaged: get(&self.spool_damaged),
            send_failures: get(&self.send_failures),
        }
    }
}

// Events travel inline: boxing them would cost one allocation per `emit` to save a few
// bytes per queue slot.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Event(Event),
    Flush(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

struct State {
    /// While true, `emit` appends to the spool instead of the queue.
    spooling: bool,
    spool: Option<Spool>,
}

struct Inner {
    state: Mutex<State>,
    tx: mpsc::Sender<Msg>,
    stats: Stats,
    config: EmitterConfig,
    closed: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters more than losing the emitter; keep going with what is there.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The handle a service keeps; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("stats", &self.inner.stats.snapshot())
            .finish()
    }
}

impl Emitter {
    /// Starts an emitter and its worker on the current tokio runtime. Opens (and locks) the
    /// spool directory if one is configured; events left there earlier are delivered first.
    pub fn start<T: Transport>(config: EmitterConfig, transport: T) -> Result<Self, SpoolError> {
        let spool = match &config.spool_dir {
            Some(dir) => Some(Spool::open(dir)?),
            None => None,
        };
        let spooling = spool.as_ref().is_some_and(|s| !s.is_empty());
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let inner = Arc::new(Inner {
            state: Mutex::new(State { spooling, spool }),
            tx,
            stats: Stats::default(),
            config,
            closed: AtomicBool::new(false),
        });
        let worker = Worker {
            inner: Arc::clone(&inner),
            transport,
            rx,
            in_flight: VecDeque::new(),
            blocked: false,
        };
        tokio::spawn(worker.run());
        Ok(Self { inner })
    }

    /// Validates an event and queues it for delivery. Never waits on the network.
    pub fn emit(&self, event: Event) -> Result<(), EmitError> {
        let inner = &*self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(EmitError::Closed);
        }
        if let Err(e) = event.validate(&inner.config.limits) {
            inner.stats.invalid.fetch_add(1, Ordering::Relaxed);
            return Err(EmitError::Invalid(e));
        }
        inner.stats.emitted.fetch_add(1, Ordering::Relaxed);
        let mut state = inner.lock();
        if !state.spooling {
            match inner.tx.try_send(Msg::Event(event)) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return Err(EmitError::Closed);
                }
                Err(mpsc::error::TrySendError::Full(Msg::Event(event))) => {
                    if inner.config.overflow == OverflowPolicy::Spool && state.spool.is_some() {
                        state.spooling = true;
                        return self.spool_locked(&mut state, &event);
                    }
                    inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    return Err(EmitError::Dropped {
                        capacity: inner.config.queue_capacity,
                    });
                }
                Err(mpsc::error::TrySendError::Full(_)) => return Ok(()),
            }
        }
        self.spool_locked(&mut state, &event)
    }

    fn spool_locked(&self, state: &mut State, event: &Event) -> Result<(), EmitError> {
        let inner = &*self.inner;
        let Some(spool) = state.spool.as_mut() else {
            inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(EmitError::Dropped {
                capacity: inner.config.queue_capacity,
            });
        };
        match spool.append(&event.to_json_bytes()) {
            Ok(()) => {
                inner.stats.spooled.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "spool write failed, event dropped");
                Err(EmitError::Spool(e))
            }
        }
    }

    /// Waits until every event emitted before this call is delivered or durably spooled.
    pub async fn flush(&self) -> Result<(), EmitError> {
        let (done, wait) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Flush(done))
            .await
            .map_err(|_| EmitError::Closed)?;
        wait.await.map_err(|_| EmitError::Closed)
    }

    /// Flushes, stops the worker and refuses further events. Spooled events stay on disk for
    /// the next emitter on the same spool directory.
    pub async fn shutdown(&self) -> Result<(), EmitError> {
        self.flush().await?;
        self.inner.closed.store(true, Ordering::Release);
        let (done, wait) = oneshot::channel();
        if self.inner.tx.send(Msg::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
        // Sync and release the spool (and its directory lock) for the next emitter.
        let spool = self.inner.lock().spool.take();
        if let Some(mut spool) = spool {
            spool.seal()?;
        }
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }
}

/// What the worker waited for when it could either start a batch or settle one.
// Lives for one loop turn; a message travels inline as in the queue.
#[allow(clippy::large_enum_variant)]
enum Next {
    Settled(Result<(), TransportError>),
    Received(Option<Msg>),
}

/// A batch handed to the transport and not yet settled.
struct InFlight {
    events: Vec<Event>,
    ack: Pending,
    /// Flush requests that came after this batch's events and before the next batch's:
    /// answered once this batch (and so every one before it) is delivered or spooled.
    waiters: Vec<oneshot::Sender<()>>,
}

struct Worker<T> {
    inner: Arc<Inner>,
    transport: T,
    rx: mpsc::Receiver<Msg>,
    /// Batches in flight, oldest first; settled in this order.
    in_flight: VecDeque<InFlight>,
    /// A batch could not be handed over: start nothing more until it is settled (a later
    /// batch would overtake it).
    blocked: bool,
}

impl<T: Transport> Worker<T> {
    async fn run(mut self) {
        let max_in_flight = self.inner.config.max_in_flight.max(1);
        let mut stop: Option<oneshot::Sender<()>> = None;
        loop {
            if self.in_flight.is_empty() {
                self.blocked = false;
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                    return;
                }
                // While spooling, the queue may still hold events emitted before `emit` began
                // spooling (on overflow): they are older than everything in the spool, so
                // they go first (delivered, or moved to the spool front on failure). Only an
                // empty queue with nothing in flight lets the worker replay the spool. `emit`
                // does not use the queue while spooling.
                let spooling = self.inner.lock().spooling;
                let first = if spooling {
                    match self.rx.try_recv() {
                        Ok(msg) => msg,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            if self.replay_spool().await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                } else {
                    match self.rx.recv().await {
                        Some(msg) => msg,
                        None => return,
                    }
                };
                self.take_and_start(first, &mut stop).await;
            } else if self.in_flight.len() < max_in_flight && !self.blocked && stop.is_none() {
                // Room for another batch: settle the oldest one if its outcome is in,
                // otherwise start the next batch as soon as an event arrives.
                let Some(oldest) = self.in_flight.front_mut() else {
                    continue;
                };
                let next = tokio::select! {
                    biased;
                    result = &mut oldest.ack => Next::Settled(result),
                    msg = self.rx.recv() => Next::Received(msg),
                };
                let must_end = match next {
                    Next::Settled(result) => self.settle_oldest(result).await,
                    Next::Received(Some(msg)) => {
                        self.take_and_start(msg, &mut stop).await;
                        false
                    }
                    // The queue is closed: settle what is in flight, then end.
                    Next::Received(None) => {
                        stop = Some(oneshot::channel().0);
                        false
                    }
                };
                if must_end {
                    return;
                }
            } else {
                let Some(oldest) = self.in_flight.front_mut() else {
                    continue;
                };
                let result = (&mut oldest.ack).await;
                if self.settle_oldest(result).await {
                    return;
                }
            }
        }
    }

    /// Takes `first` and whatever else is queued (up to a batch), hands the batch to the
    /// transport, and files flush and stop requests behind it.
    async fn take_and_start(&mut self, first: Msg, stop: &mut Option<oneshot::Sender<()>>) {
        // Sized once: events are large, and a batch grown by doubling copies them over and
        // over.
        let max_batch = self.inner.config.max_batch.max(1);
        let mut batch: Vec<Event> =
            Vec::with_capacity(self.rx.len().saturating_add(1).min(max_batch));
        let mut waiters = Vec::new();
        Self::absorb(first, &mut batch, &mut waiters, stop);
        while batch.len() < max_batch && stop.is_none() {
            match self.rx.try_recv() {
                Ok(msg) => Self::absorb(msg, &mut batch, &mut waiters, stop),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            match self.in_flight.back_mut() {
                Some(last) => last.waiters.append(&mut waiters),
                None => self.answer(waiters),
            }
            return;
        }
        let ack = match self.transport.start(&batch).await {
            Ok(ack) => ack,
            Err(e) => {
                // Settled in its turn, after the batches before it; nothing is started
                // behind it until then.
                self.blocked = true;
                Box::pin(std::future::ready(Err(e)))
            }
        };
        self.in_flight.push_back(InFlight {
            events: batch,
            ack,
            waiters,
        });
    }

    fn absorb(
        msg: Msg,
        batch: &mut Vec<Event>,
        waiters: &mut Vec<oneshot::Sender<()>>,
        stop: &mut Option<oneshot::Sender<()>>,
    ) {
        match msg {
            Msg::Event(e) => batch.push(e),
            Msg::Flush(w) => waiters.push(w),
            Msg::Stop(s) => *stop = Some(s),
        }
    }

    /// Answers flush requests, after making whatever `emit` appended to the spool durable.
    fn answer(&self, waiters: Vec<oneshot::Sender<()>>) {
        if waiters.is_empty() {
            return;
        }
        let mut state = self.inner.lock();
        if let Some(spool) = state.spool.as_mut()
            && let Err(e) = spool.sync()
        {
            tracing::error!(error = %e, "spool sync failed");
        }
        drop(state);
        for w in waiters {
            let _ = w.send(());
        }
    }

    /// Counts a batch's outcome when it needs nothing more: delivered, or (a single event)
    /// rejected. Otherwise gives the error back.
    fn count(&self, len: usize, result: Result<(), TransportError>) -> Result<(), TransportError> {
        match result {
            Ok(()) => {
                self.inner
                    .stats
                    .delivered
                    .fetch_add(len as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(TransportError::Rejected(reason)) if len == 1 => {
                self.inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(transport = self.transport.name(), %reason, "event rejected by the destination");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Settles the oldest batch in flight with its outcome. Returns true when the worker must
    /// end (a stop request met during an outage).
    async fn settle_oldest(&mut self, result: Result<(), TransportError>) -> bool {
        let Some(oldest) = self.in_flight.pop_front() else {
            return false;
        };
        match self.count(oldest.events.len(), result) {
            Ok(()) => {
                self.answer(oldest.waiters);
                false
            }
            Err(e) => self.recover(oldest, e).await,
        }
    }

    /// The oldest batch in flight failed. Every later batch in flight was handed over after
    /// it, so first wait for their outcomes: nothing of theirs is then still queued in the
    /// transport when the failed events are sent again (they would overtake them). Then the
    /// failed batch and every later batch that failed too go, in order, ahead of the queue:
    /// on `Unavailable` with a spool, to the front of the spool; otherwise they are sent
    /// again one batch at a time (a rejected batch event by event, so that only the
    /// offending events are rejected; without a spool, retrying in memory).
    /// Returns true when the worker must end.
    async fn recover(&mut self, failed: InFlight, error: TransportError) -> bool {
        let unavailable = matches!(error, TransportError::Unavailable(_));
        if unavailable {
            self.inner
                .stats
                .send_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(transport = self.transport.name(), %error, events = failed.events.len(), in_flight = self.in_flight.len(), "destination unavailable, retrying");
        } else {
            tracing::warn!(transport = self.transport.name(), %error, "batch rejected, retrying events one by one");
        }
        let mut retry = vec![failed.events];
        let mut waiters = failed.waiters;
        while let Some(later) = self.in_flight.pop_front() {
            let len = later.events.len();
            let outcome = later.ack.await;
            if let Err(e) = self.count(len, outcome) {
                if matches!(e, TransportError::Unavailable(_)) {
                    self.inner
                        .stats
                        .send_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                retry.push(later.events);
            }
            waiters.extend(later.waiters);
        }
        self.blocked = false;
        let has_spool = self.inner.lock().spool.is_some();
        let stopped = if unavailable && has_spool {
            self.spool_front(retry.into_iter().flatten().collect())
                .unwrap_or(false)
        } else {
            if unavailable {
                tokio::time::sleep(self.inner.config.min_backoff).await;
            }
            self.deliver_in_order(retry).await
        };
        self.answer(waiters);
        stopped
    }

    /// Sends batches one at a time, in order. On an outage with a spool: moves the failed
    /// batch, the ones after it and the whole queue to the front of the spool and starts
    /// spooling. Without a spool: retries in memory until each is delivered.
    /// Returns true when a stop request was met (the worker must end).
    async fn deliver_in_order(&mut self, batches: Vec<Vec<Event>>) -> bool {
        let mut batches = VecDeque::from(batches);
        let mut backoff = self.inner.config.min_backoff;
        while let Some(batch) = batches.front() {
            match self.send_splitting(batch).await {
                Ok(()) => {
                    batches.pop_front();
                    backoff = self.inner.config.min_backoff;
                }
                Err(e) => {
                    self.inner
                        .stats
                        .send_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if backoff == self.inner.config.min_backoff {
                        tracing::warn!(transport = self.transport.name(), error = %e, events = batch.len(), "destination unavailable, retrying");
                    } else {
                        tracing::debug!(transport = self.transport.name(), error = %e, events = batch.len(), "destination still unavailable");
                    }
                    if self.inner.lock().spool.is_some() {
                        let older = std::mem::take(&mut batches).into_iter().flatten().collect();
                        return self.spool_front(older).unwrap_or(false);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.inner.config.max_backoff);
                }
            }
        }
        false
    }

    /// On an outage: moves `older` (events older than the queue) and everything queued behind
    /// them to the front of the spool (durably) and starts spooling. `None` without a spool
    /// (the events are not taken); `Some(stop_requested)` otherwise.
    fn spool_front(&mut self, older: Vec<Event>) -> Option<bool> {
        let mut state = self.inner.lock();
        let spool = state.spool.as_mut()?;
        let mut older: Vec<Vec<u8>> = older.iter().map(Event::to_json_bytes).collect();
        let mut replies = Vec::new();
        let mut stop = false;
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Event(e) => older.push(e.to_json_bytes()),
                Msg::Flush(w) => replies.push(w),
                Msg::Stop(s) => {
                    replies.push(s);
                    stop = true;
                }
            }
        }
        let n = older.len() as u64;
        match spool.prepend(&older) {
            Ok(()) => {
                self.inner.stats.spooled.fetch_add(n, Ordering::Relaxed);
                state.spooling = true;
            }
            Err(err) => {
                tracing::error!(error = %err, events = n, "spool write failed, events dropped");
                self.inner.stats.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
        // Flush requests among `replies` also cover what `emit` appended to the spool tail.
        drop(state);
        self.answer(replies);
        Some(stop)
    }

    /// Sends a batch; if the destination rejects it for its content, sends the events one by
    /// one so that only the offending ones are rejected (and counted).
    async fn send_splitting(&mut self, batch: &[Event]) -> Result<(), TransportError> {
        match self.transport.send(batch).await {
            Ok(()) => {
                self.inner
                    .stats
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(TransportError::Rejected(reason)) if batch.len() > 1 => {
                tracing::warn!(transport = self.transport.name(), %reason, "batch rejected, retrying events one by one");
                for event in batch {
                    Box::pin(self.send_splitting(std::slice::from_ref(event))).await?;
                }
                Ok(())
            }
            Err(TransportError::Rejected(reason)) => {
                self.inner.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(transport = self.transport.name(), %reason, kind = %batch.first().map(|e| e.kind().as_str()).unwrap_or(""), "event rejected by the destination");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    /// Delivers the oldest spool segment (retrying until the destination takes it), or, when
    /// the spool is empty, stops spooling. Err means the emitter was stopped.
    async fn replay_spool(&mut self) -> Result<(), ()> {
        // Handle flush/stop requests that arrive while spooling.
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Flush(w) => {
                    let mut state = self.inner.lock();
                    if let Some(s) = state.spool.as_mut()
                        && let Err(e) = s.sync()
                    {
                        tracing::error!(error = %e, "spool sync failed");
                    }
                    drop(state);
                    let _ = w.send(());
                }
                Msg::Stop(s) => {
                    let _ = s.send(());
                    return Err(());
                }
                Msg::Event(e) => {
                    // Cannot happen: the queue was empty when replay began and `emit` does
                    // not queue while spooling. Spool it rather than lose it.
                    let mut state = self.inner.lock();
                    if let Some(s) = state.spool.as_mut()
                        && s.append(&e.to_json_bytes()).is_ok()
                    {
                        self.inner.stats.spooled.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        // Pick and read the oldest segment under the lock; sleep (if needed) after releasing it.
        let picked: Result<Option<(u64, crate::spool::SegmentContents)>, SpoolError> = {
            let mut state = self.inner.lock();
            match state.spool.as_mut() {
                None => Ok(None),
                Some(spool) => match spool.oldest() {
                    Ok(Some(n)) => spool.read_segment(n).map(|c| Some((n, c))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                },
            }
            .inspect(|found| {
                if found.is_none() {
                    state.spooling = false;
                }
            })
        };
        let (segment, contents) = match picked {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "spool unreadable, retrying");
                tokio::time::sleep(self.inner.config.max_backoff).await;
                return Ok(());
            }
        };
        if contents.ignored_bytes > 0 {
            self.inner
                .stats
                .spool_damaged
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                segment,
                bytes = contents.ignored_bytes,
                "spool segment ends in a torn record (crash during append); it is skipped"
            );
        }
        let limits = self.inner.config.limits;
        let mut events = Vec::with_capacity(contents.records.len());
        for record in &contents.records {
            match Event::from_json(record, &limits) {
                Ok(e) => events.push(e),
                Err(e) => {
                    self.inner
                        .stats
                        .spool_damaged
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(code = %e.code, "spooled event no longer decodes; skipped");
                }
            }
        }
        let mut sent = 0;
        let mut backoff = self.inner.config.min_backoff;
        while sent < events.len() {
            let end = (sent + self.inner.config.max_batch).min(events.len());
            let chunk = events.get(sent..end).unwrap_or_default();
            match self.send_splitting(chunk).await {
                Ok(()) => {
                    self.inner
                        .stats
                        .replayed
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    sent = end;
                    backoff = self.inner.config.min_backoff;
                }
                Err(e) => {
                    self.inner
                        .stats
                        .send_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "destination still unavailable");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        msg = self.rx.recv() => match msg {
                            Some(Msg::Stop(s)) => { let _ = s.send(()); return Err(()); }
                            Some(Msg::Flush(w)) => {
                                let mut state = self.inner.lock();
                                if let Some(s) = state.spool.as_mut() && let Err(e) = s.sync() {
                                    tracing::error!(error = %e, "spool sync failed");
                                }
                                drop(state);
                                let _ = w.send(());
                            }
                            Some(Msg::Event(e)) => {
                                let mut state = self.inner.lock();
                                if let Some(s) = state.spool.as_mut() && s.append(&e.to_json_bytes()).is_ok() {
                                    self.inner.stats.spooled.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => return Err(()),
                        },
                    }
                    backoff = (backoff * 2).min(self.inner.config.max_backoff);
                }
            }
        }
        let mut state = self.inner.lock();
        if let Some(spool) = state.spool.as_mut()
            && let Err(e) = spool.remove(segment)
        {
            tracing::error!(error = %e, segment, "could not delete a delivered spool segment; it will be delivered again");
        }
        Ok(())
    }
}
