//! The processor role: joins the raw topic's consumer group, runs one worker per owned
//! partition, and tails every ledger partition to build the entity state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use provenant_log::{
    DLQ_TOPIC, GroupEvent, GroupMember, LEDGER_TOPIC, Log, LogError, LogReader, RAW_TOPIC,
};
use provenant_schemas::Limits;
use provenant_schemas::ledger::{BodyKind, LedgerEntry};
use provenant_schemas::validity::{Validator, Verdict};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::history::{History, resume_point};
use crate::own::{DEFER_LIMIT, Deferred, OwnWrites};
use crate::worker::{Shared, Stop, Worker};
use crate::{EntityState, ProcessorConfig, ProcessorMetrics, Redact};

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(
        "prov.raw has {raw} partitions and prov.ledger has {ledger}: they must be equal (raw partition i is processed into ledger partition i)"
    )]
    PartitionMismatch { raw: u32, ledger: u32 },
    #[error(
        "ledger partition {partition} starts at offset {start}: its beginning was deleted by retention, and no archive was given to resume from (provenant process: [archive] url in the config); refusing to guess the chain head"
    )]
    LedgerTruncated { partition: u32, start: u64 },
    #[error("ledger partition {partition}: resuming from the archive: {message}")]
    History {
        partition: u32,
        message: String,
        retryable: bool,
    },
    #[error("ledger partition {partition}: our fence did not count after {attempts} attempts")]
    FenceLost { partition: u32, attempts: u32 },
    #[error("reading {topic}/{partition} up to offset {target} made no progress for 30 s")]
    ReadStalled {
        topic: &'static str,
        partition: u32,
        target: u64,
    },
    #[error("partition {partition}: {message}")]
    Internal { partition: u32, message: String },
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl ProcessorError {
    pub(crate) fn internal(partition: u32, message: &str) -> Self {
        Self::Internal {
            partition,
            message: message.to_owned(),
        }
    }

    /// Whether taking the partition over again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            // Retention moved the ledger's start while a takeover read it: take over again,
            // which resumes from the archive (or stops with LedgerTruncated without one).
            // Raw data deleted before it was processed is never skipped.
            ProcessorError::Log(LogError::OffsetOutOfRange { topic, .. }) => topic == LEDGER_TOPIC,
            ProcessorError::Log(e) => e.is_retryable(),
            ProcessorError::FenceLost { .. } | ProcessorError::ReadStalled { .. } => true,
            ProcessorError::History { retryable, .. } => *retryable,
            ProcessorError::PartitionMismatch { .. }
            | ProcessorError::LedgerTruncated { .. }
            | ProcessorError::Internal { .. }
            | ProcessorError::Metrics(_) => false,
        }
    }
}

/// The processor: `prov.raw` → `prov.ledger` (+ `prov.dlq`) over any [`Log`].
pub struct Processor<L: Log> {
    shared: Arc<Shared<L>>,
    partitions: u32,
}

impl<L: Log> std::fmt::Debug for Processor<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor")
            .field("partitions", &self.partitions)
            .field("config", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ProcessorError>>,
}

impl<L: Log> Processor<L> {
    /// A processor over `log`, registering its metrics in `registry`. Checks that raw and
    /// ledger have the same partition count.
    pub async fn new(
        log: Arc<L>,
        cfg: ProcessorConfig,
        redactor: Arc<dyn Redact>,
        registry: &prometheus::Registry,
    ) -> Result<Self, ProcessorError> {
        let raw = log.partition_count(RAW_TOPIC).await?;
        let ledger = log.partition_count(LEDGER_TOPIC).await?;
        if raw != ledger {
            return Err(ProcessorError::PartitionMismatch { raw, ledger });
        }
        let dlq_partitions = log.partition_count(DLQ_TOPIC).await?;
        let metrics = ProcessorMetrics::new(registry)?;
        Ok(Self {
            shared: Arc::new(Shared {
                log,
                cfg,
                redactor,
                metrics,
                entities: Arc::new(EntityState::new()),
                limits: Limits::DEFAULT,
                dlq_partitions,
                positions: Mutex::new(HashMap::new()),
                history: OnceLock::new(),
                own: OwnWrites::default(),
            }),
            partitions: raw,
        })
    }

    /// Resume from `history` (the archive) where retention deleted the ledger's beginning
    /// ([`crate::history`]). Without it, such a partition stops the processor with
    /// [`ProcessorError::LedgerTruncated`].
    pub fn with_history(self, history: Arc<dyn History>) -> Self {
        let _ = self.shared.history.set(history);
        self
    }

    /// The entity state this processor builds (for tests and tools).
    pub fn entities(&self) -> Arc<EntityState> {
        self.shared.entities.clone()
    }

    /// Runs until `shutdown` completes or a partition fails with an error that taking it over
    /// again cannot fix. On shutdown every worker finishes its batch, stops, and the member
    /// leaves the group.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ProcessorError> {
        let sh = self.shared.clone();
        let (stop_tailers, tailers_stop_rx) = watch::channel(false);
        let caught_up = Arc::new((AtomicUsize::new(self.partitions as usize), Notify::new()));
        let mut tailers = Vec::new();
        for p in 0..self.partitions {
            tailers.push(tokio::spawn(tail(
                sh.clone(),
                p,
                tailers_stop_rx.clone(),
                caught_up.clone(),
            )));
        }
        // Links resolve against the whole ledger: learn it before writing.
        while caught_up.0.load(Ordering::Acquire) > 0 {
            let notified = caught_up.1.notified();
            if caught_up.0.load(Ordering::Acquire) == 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        tracing::info!(
            entities = sh.entities.len(),
            "entity state loaded from the ledger"
        );

        let result = self.members_loop(shutdown).await;
        let _ = stop_tailers.send(true);
        for t in tailers {
            let _ = t.await;
        }
        result
    }

    async fn members_loop(
        &self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ProcessorError> {
        let sh = &self.shared;
        let mut member = sh.log.join_group(&sh.cfg.group, RAW_TOPIC).await?;
        let mut running: HashMap<u32, Running> = HashMap::new();
        let mut tick =
            tokio::time::interval(sh.cfg.commit_interval().max(Duration::from_millis(50)));
        tokio::pin!(shutdown);
        let outcome = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                event = member.next_event() => match event {
                    Ok(GroupEvent::Assigned { partitions, generation }) => {
                        tracing::info!(?partitions, generation, "partitions assigned");
                        for p in partitions {
                            running.entry(p).or_insert_with(|| start_partition(sh.clone(), p));
                        }
                    }
                    Ok(GroupEvent::Revoked { partitions, ack }) => {
                        tracing::info!(?partitions, "partitions revoked");
                        for p in &partitions {
                            if let Some(r) = running.remove(p) {
                                stop_partition(sh, *p, r).await;
                            }
                        }
                        commit(sh, &mut member, &partitions).await;
                        ack.ack();
                    }
                    Err(e) => break Err(e.into()),
                },
                _ = tick.tick() => {
                    let owned: Vec<u32> = running.keys().copied().collect();
                    commit(sh, &mut member, &owned).await;
                    let finished: Vec<u32> = running
                        .iter()
                        .filter(|(_, r)| r.task.is_finished())
                        .map(|(p, _)| *p)
                        .collect();
                    let mut fatal = None;
                    for p in finished {
                        if let Some(r) = running.remove(&p) {
                            match r.task.await {
                                Ok(Err(e)) => fatal = Some(e),
                                Ok(Ok(())) => {}
                                Err(join) => fatal = Some(ProcessorError::internal(p, &join.to_string())),
                            }
                        }
                    }
                    if let Some(e) = fatal {
                        break Err(e);
                    }
                }
            }
        };
        for (p, r) in running.drain() {
            stop_partition(sh, p, r).await;
        }
        let owned = member.assignment();
        commit(sh, &mut member, &owned).await;
        if let Err(e) = member.leave().await {
            tracing::warn!(error = %e, "leaving the group failed");
        }
        outcome
    }
}

async fn commit<M: GroupMember>(sh: &Shared<impl Log>, member: &mut M, partitions: &[u32]) {
    let positions: Vec<(u32, u64)> = match sh.positions.lock() {
        Ok(pos) => partitions
            .iter()
            .filter_map(|p| pos.get(p).map(|o| (*p, *o)))
            .collect(),
        Err(_) => return,
    };
    for (p, next) in positions {
        if let Err(e) = member.commit(p, next).await {
            tracing::debug!(partition = p, error = %e, "group commit failed (lag metrics only)");
        }
    }
}

/// Runs partition `p`: take over, process; take over again when fenced out or after a
/// retryable error; stop when told. Returns an error only when retrying cannot help.
fn start_partition<L: Log>(sh: Arc<Shared<L>>, p: u32) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop_rx.borrow() {
                return Ok(());
            }
            let attempt = async {
                let worker = Worker::take_over(sh.clone(), p).await?;
                worker.run(stop_rx.clone()).await
            };
            match attempt.await {
                Ok(Stop::Stopped) => return Ok(()),
                Ok(Stop::Fenced) => backoff = Duration::from_millis(100),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(partition = p, error = %e, "partition worker failed; taking the partition over again");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "partition worker stopped");
                    return Err(e);
                }
            }
            let mut rx = stop_rx.clone();
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = rx.changed() => return Ok(()),
            }
        }
    });
    Running { stop, task }
}

/// Stops partition `p`'s worker and removes its per-partition series: another instance owns
/// the partition now and reports them (summing both would count its links twice).
async fn stop_partition<L: Log>(sh: &Shared<L>, p: u32, r: Running) {
    let _ = r.stop.send(true);
    match r.task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "partition worker ended with an error"),
        Err(e) => tracing::warn!(error = %e, "partition worker panicked"),
    }
    sh.own.clear(p);
    sh.metrics.forget_partition(p);
}

/// Tails one ledger partition for ever, learning valid event records into the entity state
/// (first from the archive where retention deleted the ledger's beginning).
/// Counts down `caught_up` once it has read what the partition held when it started.
///
/// The tailer does not recompute hashes: it takes the chain positions (seq, epoch,
/// prev_hash) from the validity rule, which is what rules out stale writers; tampering with
/// the topic itself is what `provenant verify` catches in the archive.
async fn tail<L: Log>(
    sh: Arc<Shared<L>>,
    p: u32,
    mut stop: watch::Receiver<bool>,
    caught_up: Arc<(AtomicUsize, Notify)>,
) {
    let mut signalled = false;
    let signal = |signalled: &mut bool| {
        if !*signalled {
            *signalled = true;
            caught_up.0.fetch_sub(1, Ordering::AcqRel);
            caught_up.1.notify_waiters();
        }
    };
    let mut backoff = Duration::from_millis(200);
    'restart: loop {
        let wm = match sh.log.watermarks(LEDGER_TOPIC, p).await {
            Ok(wm) => wm,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "ledger tailer: watermarks failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => { backoff = (backoff * 2).min(Duration::from_secs(5)); continue 'restart; }
                    _ = stop.changed() => { signal(&mut signalled); return; }
                }
            }
        };
        // Where retention deleted the ledger's beginning, the archive tells what it held.
        let history = sh.history.get().map(|h| &**h);
        let start = match resume_point(history, p, wm, |r| sh.entities.learn(p, r)).await {
            Ok(start) => start,
            Err(e) if e.is_retryable() => {
                tracing::warn!(partition = p, error = %e, "ledger tailer: trying again");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => { backoff = (backoff * 2).min(Duration::from_secs(5)); continue 'restart; }
                    _ = stop.changed() => { signal(&mut signalled); return; }
                }
            }
            Err(e) => {
                // The partition's worker meets the same error and stops the processor.
                tracing::error!(partition = p, error = %e, "ledger tailer stopped: links to this partition's entities stay pending");
                signal(&mut signalled);
                return;
            }
        };
        let mut reader = match sh.log.reader(LEDGER_TOPIC, p, start.ledger_offset).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "ledger tailer: opening a reader failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => { continue 'restart; }
                    _ = stop.changed() => { signal(&mut signalled); return; }
                }
            }
        };
        let mut v = Validator::new(start).check_hashes(false);
        // This process's own event records, validated by their head, until its worker has
        // learned them (crate::own). Restarting drops them: they are read again.
        let mut deferred = Deferred::default();
        if reader.position() >= wm.end {
            signal(&mut signalled);
        }
        loop {
            let batch = tokio::select! {
                b = reader.next_batch(2000, Duration::from_millis(500)) => b,
                _ = stop.changed() => { signal(&mut signalled); return; }
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "ledger tailer: read failed; starting over");
                    tokio::time::sleep(backoff).await;
                    continue 'restart;
                }
            };
            let mark = sh.own.get(p);
            let (mut by_head, mut in_full) = (0u64, 0u64);
            for stored in batch {
                let value = &stored.record.value;
                let own_head = mark.and_then(|m| {
                    LedgerEntry::peek_record_head(value).filter(|h| h.writer_epoch == m.epoch)
                });
                let verdict = if let Some(head) = own_head {
                    by_head += 1;
                    let verdict = v.observe_own_head(stored.offset, &head);
                    if verdict == Verdict::Valid && head.body == BodyKind::Event {
                        deferred.push(head.writer_epoch, head.seq, value.clone());
                    }
                    verdict
                } else {
                    in_full += 1;
                    let (verdict, entry) = v.observe_bytes(stored.offset, value);
                    if let (Verdict::Valid, Some(LedgerEntry::Record(r))) = (verdict, entry) {
                        sh.entities.learn(p, &r);
                    }
                    verdict
                };
                if let Verdict::Ignored(reason) = verdict {
                    sh.metrics
                        .ignored
                        .with_label_values(&[reason.as_str()])
                        .inc();
                }
            }
            let decoded_late = deferred.settle(sh.own.get(p), DEFER_LIMIT, |entry| {
                if let LedgerEntry::Record(r) = entry {
                    sh.entities.learn(p, r);
                }
            });
            in_full += u64::try_from(decoded_late).unwrap_or(u64::MAX);
            let tailer = &sh.metrics.tailer_entries;
            tailer.with_label_values(&["head"]).inc_by(by_head);
            tailer.with_label_values(&["full"]).inc_by(in_full);
            if reader.position() >= wm.end {
                signal(&mut signalled);
            }
        }
    }
}
