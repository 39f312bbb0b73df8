//! # provenant-sink — one runner for every ledger sink
//!
//! A sink (the archive, the index) implements [`LedgerSink`]; [`run`] feeds it. The runner
//! joins a consumer group over `prov.ledger`, and for each partition it owns:
//!
//! 1. asks the sink where it stands ([`LedgerSink::resume`]: the reader state it stored
//!    atomically with its output, DESIGN.md rule 6), or starts at offset 0;
//! 2. reads the partition from the state's ledger offset and applies the validity rule
//!    ([`provenant_schemas::validity::Validator`], hashes recomputed) from the stored state;
//! 3. hands the sink the entries that count (valid records and counted fences), with the
//!    reader state after them ([`LedgerSink::write`]); ignored entries (stale writers,
//!    losing fences) are counted, never written;
//! 4. commits the group position after the sink returned (lag metrics only: the sink's own
//!    stored state is what it resumes from).
//!
//! Invariants: the sink sees each partition's counting entries in log order, each batch with
//! the state after it; after a crash it may see entries again that it had already written
//! (between its write and its state), so sinks are idempotent by ledger position. A reader
//! whose position is before the log's start stops with an error: it never skips (rule 7).
//! Memory is bounded: at most `channel_batches` batches wait between the partition readers
//! and the sink, whatever the number of partitions.
//!
//! `provenant_sink_lag` (ledger entries past the sink's written position, per owned
//! partition) is measured by its own task every [`RunnerConfig::lag_interval`] against the
//! ledger's end, so it keeps growing while the sink is stuck (a hung write, a stalled read);
//! a partition's series is removed when the partition is no longer owned.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provenant_log::{GroupEvent, GroupMember, LEDGER_TOPIC, Log, LogError, LogReader};
use provenant_schemas::ledger::LedgerEntry;
use provenant_schemas::validity::{IgnoreReason, ReaderState, Validator, Verdict};
use tokio::sync::{mpsc, watch};

/// What a sink does with the ledger. Two implementations: the archive and the index.
pub trait LedgerSink: Send + 'static {
    /// A short name (`archive`, `index`): metric label and log field.
    fn name(&self) -> &'static str;

    /// Where partition `partition` resumes: the state stored with the sink's output, if any.
    fn resume(
        &mut self,
        partition: u32,
    ) -> impl Future<Output = Result<Option<ReaderState>, SinkError>> + Send;

    /// Writes the counting entries of one partition (valid records and counted fences, in
    /// log order, with their ledger offsets) and stores `state`, the reader state after them.
    /// Entries at or below the stored state must be skipped (idempotent by ledger position).
    fn write(
        &mut self,
        partition: u32,
        entries: &[(u64, LedgerEntry)],
        state: &ReaderState,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Called about once a second, with or without new data (age-based rotation).
    fn tick(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The partition is no longer ours (revocation, shutdown): flush what is open for it.
    fn close_partition(
        &mut self,
        partition: u32,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A sink's failure (an infrastructure error: the runner stops without committing).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// The sink's own storage failed or refused (e.g. a conflicting archive object).
    #[error("{sink}: {message}")]
    Sink { sink: &'static str, message: String },
}

impl SinkError {
    /// A sink error from any displayable error.
    pub fn sink(sink: &'static str, e: impl std::fmt::Display) -> Self {
        SinkError::Sink {
            sink,
            message: e.to_string(),
        }
    }
}

/// Runner settings.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The consumer group over `prov.ledger` (one per sink).
    pub group: String,
    /// Ledger entries read per batch.
    pub batch_max: usize,
    /// Batches waiting between readers and the sink.
    pub channel_batches: usize,
    /// How often the lag gauge is measured against the ledger's end.
    pub lag_interval: Duration,
}

impl RunnerConfig {
    /// Defaults for a sink's group.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            batch_max: 2000,
            channel_batches: 16,
            lag_interval: Duration::from_secs(5),
        }
    }
}

/// The runner's metrics (one set per sink, by label).
#[derive(Clone, Debug)]
pub struct SinkMetrics {
    written: prometheus::IntCounterVec,
    ignored: prometheus::IntCounterVec,
    lag: prometheus::IntGaugeVec,
    write_seconds: prometheus::HistogramVec,
    batch: prometheus::HistogramVec,
}

impl SinkMetrics {
    /// Creates and registers the metrics (once per registry, shared by every sink).
    pub fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
        let written = IntCounterVec::new(
            Opts::new(
                "provenant_sink_records_total",
                "Ledger records written by each sink.",
            ),
            &["sink"],
        )?;
        let ignored = IntCounterVec::new(
            Opts::new(
                "provenant_sink_ignored_entries_total",
                "Ledger entries a sink ignored under the validity rule, by reason.",
            ),
            &["sink", "reason"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "provenant_sink_lag",
                "Ledger entries not yet written by the sink, per partition.",
            ),
            &["sink", "partition"],
        )?;
        let write_seconds = HistogramVec::new(
            HistogramOpts::new("provenant_sink_write_seconds", "Time per sink write.")
                .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
            &["sink"],
        )?;
        let batch = HistogramVec::new(
            HistogramOpts::new(
                "provenant_sink_batch_records",
                "Counting entries per sink write.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 4.0, 8)?),
            &["sink"],
        )?;
        let me = Self {
            written,
            ignored,
            lag,
            write_seconds,
            batch,
        };
        for c in me.collectors() {
            registry.register(c)?;
        }
        Ok(me)
    }

    /// Every metric as a collector (clones sharing the same values), registered or not: for
    /// registration, and for tools that check dashboards and alert rules against the names,
    /// types and labels the code exports (`cli/src/ops.rs`).
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.written.clone()),
            Box::new(self.ignored.clone()),
            Box::new(self.lag.clone()),
            Box::new(self.write_seconds.clone()),
            Box::new(self.batch.clone()),
        ]
    }
}

struct Batch {
    partition: u32,
    generation: u64,
    records: Vec<provenant_log::StoredRecord>,
    end: u64,
}

struct Owned {
    validator: Validator,
    generation: u64,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs `sink` over the ledger of `log` until `shutdown` completes or an error stops it.
/// On shutdown every owned partition is closed ([`LedgerSink::close_partition`]) and the
/// member leaves the group.
pub async fn run<L: Log, S: LedgerSink>(
    log: std::sync::Arc<L>,
    mut sink: S,
    cfg: RunnerConfig,
    metrics: SinkMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SinkError> {
    let name = sink.name();
    let mut member = log.join_group(&cfg.group, LEDGER_TOPIC).await?;
    let (tx, mut rx) = mpsc::channel::<Result<Batch, (u32, LogError)>>(cfg.channel_batches.max(1));
    let mut owned: HashMap<u32, Owned> = HashMap::new();
    let mut next_generation = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut commits: HashMap<u32, u64> = HashMap::new();
    // The written position of each owned partition, for the lag task.
    let written: Positions = Arc::new(Mutex::new(HashMap::new()));
    let lag_task = tokio::spawn(measure_lag(
        log.clone(),
        name,
        written.clone(),
        metrics.lag.clone(),
        cfg.lag_interval,
    ));
    tokio::pin!(shutdown);
    let result: Result<(), SinkError> = 'main: loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            event = member.next_event() => match event {
                Ok(GroupEvent::Assigned { partitions, .. }) => {
                    tracing::info!(sink = name, ?partitions, "ledger partitions assigned");
                    for p in partitions {
                        if owned.contains_key(&p) {
                            continue;
                        }
                        let state = match sink.resume(p).await {
                            Ok(s) => s.unwrap_or(ReaderState::START),
                            Err(e) => break 'main Err(e),
                        };
                        next_generation += 1;
                        let (stop, stop_rx) = watch::channel(false);
                        let task = tokio::spawn(read_partition(
                            log.clone(), p, state.ledger_offset, next_generation, cfg.batch_max, tx.clone(), stop_rx,
                        ));
                        owned.insert(p, Owned { validator: Validator::new(state), generation: next_generation, stop, task });
                        set_position(&written, p, Some(state.ledger_offset));
                    }
                }
                Ok(GroupEvent::Revoked { partitions, ack }) => {
                    for p in &partitions {
                        if let Some(o) = owned.remove(p) {
                            set_position(&written, *p, None);
                            let _ = metrics.lag.remove_label_values(&[name, &p.to_string()]);
                            let _ = o.stop.send(true);
                            let _ = o.task.await;
                            if let Err(e) = sink.close_partition(*p).await {
                                break 'main Err(e);
                            }
                        }
                    }
                    for p in &partitions {
                        if let Some(off) = commits.remove(p) {
                            let _ = member.commit(*p, off).await;
                        }
                    }
                    ack.ack();
                }
                Err(e) => break Err(e.into()),
            },
            batch = rx.recv() => {
                let batch = match batch {
                    Some(Ok(b)) => b,
                    Some(Err((p, e))) => {
                        tracing::error!(sink = name, partition = p, error = %e, "reading the ledger failed");
                        break Err(e.into());
                    }
                    None => continue,
                };
                let Some(o) = owned.get_mut(&batch.partition) else { continue };
                if o.generation != batch.generation {
                    continue;
                }
                let mut entries = Vec::new();
                for stored in &batch.records {
                    let (verdict, entry) = o.validator.observe_bytes(stored.offset, &stored.record.value);
                    match (verdict, entry) {
                        (Verdict::Ignored(reason), _) => metrics.ignored.with_label_values(&[name, reason_label(reason)]).inc(),
                        (_, Some(entry)) => entries.push((stored.offset, entry)),
                        (_, None) => {}
                    }
                }
                let state = *o.validator.state();
                let started = Instant::now();
                if let Err(e) = sink.write(batch.partition, &entries, &state).await {
                    tracing::error!(sink = name, partition = batch.partition, error = %e, "sink write failed; stopping");
                    break Err(e);
                }
                metrics.write_seconds.with_label_values(&[name]).observe(started.elapsed().as_secs_f64());
                metrics.batch.with_label_values(&[name]).observe(entries.len() as f64);
                let records = entries.iter().filter(|(_, e)| matches!(e, LedgerEntry::Record(_))).count();
                metrics.written.with_label_values(&[name]).inc_by(records as u64);
                metrics.lag.with_label_values(&[name, &batch.partition.to_string()])
                    .set(i64::try_from(batch.end.saturating_sub(state.ledger_offset)).unwrap_or(0));
                set_position(&written, batch.partition, Some(state.ledger_offset));
                commits.insert(batch.partition, state.ledger_offset);
            },
            _ = tick.tick() => {
                if let Err(e) = sink.tick().await {
                    break Err(e);
                }
                for (p, off) in commits.drain() {
                    if let Err(e) = member.commit(p, off).await {
                        tracing::debug!(sink = name, partition = p, error = %e, "group commit failed (lag only)");
                    }
                }
            }
        }
    };
    lag_task.abort();
    for (p, o) in owned.drain() {
        let _ = metrics.lag.remove_label_values(&[name, &p.to_string()]);
        let _ = o.stop.send(true);
        let _ = o.task.await;
        if let Err(e) = sink.close_partition(p).await {
            tracing::error!(sink = name, partition = p, error = %e, "closing the partition failed");
        }
    }
    if let Err(e) = member.leave().await {
        tracing::warn!(sink = name, error = %e, "leaving the group failed");
    }
    result
}

type Positions = Arc<Mutex<HashMap<u32, u64>>>;

fn set_position(positions: &Positions, partition: u32, at: Option<u64>) {
    if let Ok(mut m) = positions.lock() {
        match at {
            Some(o) => {
                m.insert(partition, o);
            }
            None => {
                m.remove(&partition);
            }
        }
    }
}

/// Sets the lag of every owned partition to the ledger's end minus the sink's written
/// position, every `every`, independently of the sink (which may be stuck in a write).
async fn measure_lag<L: Log>(
    log: Arc<L>,
    name: &'static str,
    positions: Positions,
    lag: prometheus::IntGaugeVec,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let owned: Vec<u32> = match positions.lock() {
            Ok(m) => m.keys().copied().collect(),
            Err(_) => return,
        };
        for p in owned {
            let Ok(wm) = log.watermarks(LEDGER_TOPIC, p).await else {
                continue;
            };
            // The position is read after the end (a write in between only lowers the lag),
            // and under the lock, so a partition given up meanwhile gets no series back.
            if let Ok(m) = positions.lock()
                && let Some(at) = m.get(&p)
            {
                lag.with_label_values(&[name, &p.to_string()])
                    .set(i64::try_from(wm.end.saturating_sub(*at)).unwrap_or(i64::MAX));
            }
        }
    }
}

fn reason_label(r: IgnoreReason) -> &'static str {
    r.as_str()
}

async fn read_partition<L: Log>(
    log: std::sync::Arc<L>,
    partition: u32,
    from: u64,
    generation: u64,
    max: usize,
    tx: mpsc::Sender<Result<Batch, (u32, LogError)>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut reader = match log.reader(LEDGER_TOPIC, partition, from).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Err((partition, e))).await;
            return;
        }
    };
    loop {
        let batch = tokio::select! {
            b = reader.next_batch(max.max(1), Duration::from_millis(500)) => b,
            _ = stop.changed() => return,
        };
        let records = match batch {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err((partition, e))).await;
                return;
            }
        };
        if records.is_empty() {
            continue;
        }
        let end = log
            .watermarks(LEDGER_TOPIC, partition)
            .await
            .map_or(reader.position(), |w| w.end);
        let sent = tokio::select! {
            r = tx.send(Ok(Batch { partition, generation, records, end })) => r,
            _ = stop.changed() => return,
        };
        if sent.is_err() {
            return;
        }
    }
}
