//! One raw partition's writer: takeover (fence, recovery from the ledger) and the processing
//! loop. See the crate doc for the invariants; this module is where they are kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use provenant_log::{LEDGER_TOPIC, Log, LogReader, RAW_TOPIC, Record, StoredRecord};
use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::event::Relation;
use provenant_schemas::ledger::{
    DuplicateMarker, EventRecord, Fence, LedgerEntry, LedgerRecord, Link, LinkResolution,
    LinkStatus, RecordBody, Redaction, RejectedMarker, WriterId,
};
use provenant_schemas::validity::{Validator, Verdict};
use provenant_schemas::{Event, EventError, Limits, binary_mode};
use tokio::sync::watch;

use crate::entities::{EntityState, FastMap, Target, introduced, linkable};
use crate::history::{History, resume_point};
use crate::own::OwnWrites;
use crate::pending::Pending;
use crate::{ProcessorConfig, ProcessorError, ProcessorMetrics, Redact, dlq};

/// What every worker of one processor shares.
pub(crate) struct Shared<L> {
    pub(crate) log: Arc<L>,
    pub(crate) cfg: ProcessorConfig,
    pub(crate) redactor: Arc<dyn Redact>,
    pub(crate) metrics: ProcessorMetrics,
    pub(crate) entities: Arc<EntityState>,
    pub(crate) limits: Limits,
    pub(crate) dlq_partitions: u32,
    /// Raw position per partition (next offset to process), for group commits and lag.
    pub(crate) positions: Mutex<HashMap<u32, u64>>,
    /// Where the ledger's deleted beginning is read back from ([`crate::history`]).
    pub(crate) history: OnceLock<Arc<dyn History>>,
    /// What this process's workers wrote and learned themselves ([`crate::own`]).
    pub(crate) own: OwnWrites,
}

/// Why a worker stopped writing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Told to stop (revocation or shutdown).
    Stopped,
    /// Another writer's fence outranks ours: take the partition over again.
    Fenced,
}

/// How long a recovery read may see no progress before giving up (and trying again).
const READ_STALL: Duration = Duration::from_secs(30);

/// Event identities of one partition, the newest `cap` kept.
struct Dedup {
    cap: usize,
    map: FastMap<Arc<str>, i64>,
    order: VecDeque<Arc<str>>,
}

impl Dedup {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            map: FastMap::default(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, ident: &str) -> Option<i64> {
        self.map.get(ident).copied()
    }

    fn insert(&mut self, ident: Arc<str>, seq: i64) {
        if self.map.insert(ident.clone(), seq).is_none() {
            self.order.push_back(ident);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// An event's identity, `source` and `id` unambiguously joined.
fn identity(event: &Event) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(event.source.len() + event.id.len() + 6);
    let _ = write!(out, "{}", event.source.len());
    out.push(':');
    out.push_str(&event.source);
    out.push_str(&event.id);
    out
}

/// A partition's writer after a counted fence.
pub(crate) struct Worker<L: Log> {
    sh: Arc<Shared<L>>,
    p: u32,
    label: String,
    epoch: i64,
    writer_id: WriterId,
    head: ChainHead,
    /// The ledger offset our next append should get if nothing else writes the partition.
    next_ledger: u64,
    raw_next: u64,
    dedup: Dedup,
    pending: Pending,
    links_known: i64,
}

/// What one raw record becomes before it is chained.
// Events are the common case; boxing them would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Rejected {
        error: EventError,
        dlq: (u32, u64),
    },
    Duplicate {
        original_seq: Option<i64>,
        in_batch: Option<usize>,
        source: String,
        id: String,
    },
    Event {
        event: Event,
        redactions: Vec<Redaction>,
        /// [`identity`] of the event, computed once.
        ident: String,
    },
}

impl<L: Log> Worker<L> {
    /// Takes partition `p` over: reads its ledger under the validity rule, appends a fence
    /// with a higher epoch, reads on to the fence and checks that it counts. Tries again with
    /// a higher epoch when another fence won the race.
    pub(crate) async fn take_over(sh: Arc<Shared<L>>, p: u32) -> Result<Self, ProcessorError> {
        let log = &sh.log;
        let wm = log.watermarks(LEDGER_TOPIC, p).await?;
        let mut w = Worker {
            label: p.to_string(),
            sh: sh.clone(),
            p,
            epoch: 0,
            writer_id: [0; 16],
            head: ChainHead::GENESIS,
            next_ledger: 0,
            raw_next: 0,
            dedup: Dedup::new(sh.cfg.dedup_window),
            pending: Pending::new(sh.cfg.max_pending_links),
            links_known: 0,
        };
        // Where retention deleted the ledger's beginning, the archive tells what it held.
        let start = resume_point(sh.history.get().map(|h| &**h), p, wm, |r| w.absorb(r)).await?;
        let mut v = Validator::new(start);
        let mut reader = log.reader(LEDGER_TOPIC, p, start.ledger_offset).await?;
        w.recover(&mut reader, &mut v, wm.end, None).await?;
        for _ in 0..sh.cfg.takeover_attempts.max(1) {
            let epoch = v.state().epoch().map_or(0, |e| e.saturating_add(1));
            let writer_id: WriterId = rand::random();
            let fence = LedgerEntry::Fence(Fence {
                writer_epoch: epoch,
                writer_id,
            });
            let offsets = log
                .append(
                    LEDGER_TOPIC,
                    p,
                    vec![Record {
                        key: None,
                        headers: Vec::new(),
                        value: fence.to_avro().into(),
                    }],
                )
                .await?;
            let Some(&at) = offsets.first() else {
                return Err(ProcessorError::internal(p, "the log returned no offset"));
            };
            let verdict = w
                .recover(&mut reader, &mut v, at.saturating_add(1), Some(at))
                .await?;
            if verdict == Some(Verdict::CountedFence { epoch, writer_id }) {
                let state = v.state();
                w.epoch = epoch;
                w.writer_id = writer_id;
                w.head = state.head;
                w.raw_next = state.next_raw_offset();
                w.next_ledger = at.saturating_add(1);
                // Recovery learned every valid record before the fence.
                sh.own.mark(p, epoch, w.head.next_seq);
                sh.metrics.takeovers.inc();
                w.publish_gauges();
                tracing::info!(
                    partition = p,
                    epoch,
                    next_seq = w.head.next_seq,
                    raw_next = w.raw_next,
                    "partition taken over"
                );
                return Ok(w);
            }
            tracing::warn!(
                partition = p,
                epoch,
                "fence lost a race; trying a higher epoch"
            );
        }
        Err(ProcessorError::FenceLost {
            partition: p,
            attempts: sh.cfg.takeover_attempts,
        })
    }

    /// Reads the ledger up to (not including) `end` under the validity rule, rebuilding the
    /// dedup window and pending links from the valid records. Returns the verdict on the entry
    /// at `watch_offset`, if asked.
    async fn recover(
        &mut self,
        reader: &mut <L as Log>::Reader,
        v: &mut Validator,
        end: u64,
        watch_offset: Option<u64>,
    ) -> Result<Option<Verdict>, ProcessorError> {
        let mut watched = None;
        let mut last_progress = Instant::now();
        while reader.position() < end {
            let batch = next_ledger_batch(reader, self.p, end, &mut last_progress).await?;
            for stored in batch {
                let (verdict, entry) = v.observe_bytes(stored.offset, &stored.record.value);
                if Some(stored.offset) == watch_offset {
                    watched = Some(verdict);
                }
                // Ignored entries are counted by the tailer, which reads every entry once.
                if let (Verdict::Valid, Some(LedgerEntry::Record(r))) = (verdict, entry) {
                    self.absorb(&r);
                }
            }
        }
        Ok(watched)
    }

    /// Learns what a valid record of this partition means for dedup, pending links and
    /// entity state.
    fn absorb(&mut self, r: &LedgerRecord) {
        match &r.body {
            RecordBody::Event(er) => {
                self.dedup.insert(identity(&er.event).into(), r.seq);
                for l in &er.links {
                    self.links_known += 1;
                    if l.status == LinkStatus::Pending {
                        self.pending.add(l.target.clone(), r.seq, l.relation);
                    }
                }
                self.sh.entities.learn(self.p, r);
            }
            RecordBody::LinkResolution(lr) => {
                self.pending
                    .remove(&lr.target, lr.resolves_seq, lr.relation);
            }
            RecordBody::Rejected(_) | RecordBody::Duplicate(_) => {}
        }
    }

    fn publish_gauges(&self) {
        let m = &self.sh.metrics;
        let l = [self.label.as_str()];
        m.head_seq
            .with_label_values(&l)
            .set(self.head.next_seq.saturating_sub(1));
        // Links dropped over the cap stay pending in the ledger: they count as missing.
        let untracked = self.pending.untracked();
        m.pending_links
            .with_label_values(&l)
            .set(i64::try_from(self.pending.kept() as u64 + untracked).unwrap_or(i64::MAX));
        m.untracked_links
            .with_label_values(&l)
            .set(i64::try_from(untracked).unwrap_or(i64::MAX));
        m.known_links.with_label_values(&l).set(self.links_known);
        m.entities
            .set(i64::try_from(self.sh.entities.len()).unwrap_or(i64::MAX));
        if let Ok(mut pos) = self.sh.positions.lock() {
            pos.insert(self.p, self.raw_next);
        }
    }

    /// Processes the raw partition until told to stop or fenced out.
    pub(crate) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Stop, ProcessorError> {
        let log = self.sh.log.clone();
        let mut raw = log.reader(RAW_TOPIC, self.p, self.raw_next).await?;
        let mut seen_generation = u64::MAX;
        let mut last_check = Instant::now();
        let mut last_lag = Instant::now();
        loop {
            if *stop.borrow() {
                return Ok(Stop::Stopped);
            }
            let batch = tokio::select! {
                b = raw.next_batch(self.sh.cfg.batch_max.max(1), self.sh.cfg.poll()) => b?,
                _ = stop.changed() => return Ok(Stop::Stopped),
            };
            if !batch.is_empty() && self.process(batch).await? == Some(Stop::Fenced) {
                return Ok(Stop::Fenced);
            }
            let generation = self.sh.entities.generation();
            if self.pending.kept() > 0
                && ((generation != seen_generation
                    && last_check.elapsed() >= self.sh.cfg.recheck())
                    || last_check.elapsed() >= self.sh.cfg.recheck() * 25)
            {
                seen_generation = generation;
                last_check = Instant::now();
                if self.resolve_pending().await? == Some(Stop::Fenced) {
                    return Ok(Stop::Fenced);
                }
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                if let Ok(wm) = log.watermarks(RAW_TOPIC, self.p).await {
                    self.sh
                        .metrics
                        .lag
                        .with_label_values(&[self.label.as_str()])
                        .set(i64::try_from(wm.end.saturating_sub(self.raw_next)).unwrap_or(0));
                }
            }
        }
    }

    /// Turns one batch of raw records into ledger records and appends them.
    async fn process(&mut self, batch: Vec<StoredRecord>) -> Result<Option<Stop>, ProcessorError> {
        let sh = self.sh.clone();
        let m = &sh.metrics;
        m.batch_size.observe(batch.len() as f64);

        // 1. Decode, validate, redact, deduplicate.
        let t = Instant::now();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        let mut in_batch: FastMap<String, usize> = FastMap::default();
        for stored in &batch {
            let headers: Vec<(&str, &[u8])> = stored
                .record
                .headers
                .iter()
                .map(|h| (h.name.as_str(), h.value.as_ref()))
                .collect();
            match binary_mode::decode(&headers, &stored.record.value, &sh.limits) {
                Err(error) => {
                    rejected.push(dlq::dlq_record(
                        stored,
                        RAW_TOPIC,
                        self.p,
                        &error,
                        sh.cfg.dlq_raw_bytes,
                        sh.redactor.as_ref(),
                    ));
                    outcomes.push(Outcome::Rejected { error, dlq: (0, 0) });
                }
                Ok(mut event) => {
                    let redactions = sh.redactor.redact_event(&mut event);
                    let ident = identity(&event);
                    if let Some(seq) = self.dedup.get(&ident) {
                        outcomes.push(Outcome::Duplicate {
                            original_seq: Some(seq),
                            in_batch: None,
                            source: event.source,
                            id: event.id,
                        });
                    } else if let Some(&i) = in_batch.get(&ident) {
                        outcomes.push(Outcome::Duplicate {
                            original_seq: None,
                            in_batch: Some(i),
                            source: event.source,
                            id: event.id,
                        });
                    } else {
                        in_batch.insert(ident.clone(), outcomes.len());
                        outcomes.push(Outcome::Event {
                            event,
                            redactions,
                            ident,
                        });
                    }
                }
            }
        }
        m.stage_seconds
            .with_label_values(&["decode_redact"])
            .observe(t.elapsed().as_secs_f64());

        // 2. Rejected records go to the DLQ first: their markers name the DLQ offsets.
        if !rejected.is_empty() {
            let t = Instant::now();
            let dlq_p = self.p % sh.dlq_partitions.max(1);
            let offsets = sh
                .log
                .append(provenant_log::DLQ_TOPIC, dlq_p, rejected)
                .await?;
            let mut offsets = offsets.into_iter();
            for o in &mut outcomes {
                if let Outcome::Rejected { dlq, .. } = o {
                    *dlq = (dlq_p, offsets.next().unwrap_or(0));
                }
            }
            m.stage_seconds
                .with_label_values(&["dlq_append"])
                .observe(t.elapsed().as_secs_f64());
        }

        // 3. Link and chain.
        let t = Instant::now();
        let mut head = self.head;
        let mut entries = Vec::with_capacity(outcomes.len());
        let mut seqs: Vec<i64> = Vec::with_capacity(outcomes.len());
        let mut overlay: FastMap<String, Target> = FastMap::default();
        let mut new_idents: Vec<(String, i64)> = Vec::new();
        let mut new_pending: Vec<(String, i64, Relation)> = Vec::new();
        let mut counts = BatchCounts::default();
        for (stored, outcome) in batch.iter().zip(outcomes) {
            let raw_offset = i64::try_from(stored.offset)
                .map_err(|_| ProcessorError::internal(self.p, "raw offset over 2^63"))?;
            let mut key = stored.record.key.clone();
            let mut introduces = Vec::new();
            let body = match outcome {
                Outcome::Rejected { error, dlq } => {
                    counts.rejected.push(error.code.as_str());
                    RecordBody::Rejected(RejectedMarker {
                        reason_code: error.code.as_str().to_owned(),
                        reason_message: match &error.field {
                            Some(f) => format!("{f}: {}", error.message),
                            None => error.message.clone(),
                        },
                        dlq_partition: i32::try_from(dlq.0).unwrap_or(i32::MAX),
                        dlq_offset: i64::try_from(dlq.1).unwrap_or(i64::MAX),
                    })
                }
                Outcome::Duplicate {
                    original_seq,
                    in_batch,
                    source,
                    id,
                } => {
                    counts.duplicates += 1;
                    let original_seq = original_seq
                        .or_else(|| in_batch.and_then(|i| seqs.get(i).copied()))
                        .unwrap_or(0);
                    RecordBody::Duplicate(DuplicateMarker {
                        original_partition: i32::try_from(self.p).unwrap_or(i32::MAX),
                        original_seq,
                        source,
                        id,
                    })
                }
                Outcome::Event {
                    event,
                    redactions,
                    ident,
                } => {
                    counts.valid.push(event.kind().as_str());
                    for r in &redactions {
                        counts.redactions.push(r.detector.clone());
                    }
                    let mut links = Vec::new();
                    for reference in event.references() {
                        if !linkable(&reference.target) {
                            continue;
                        }
                        let target = reference.target.to_string();
                        let found = overlay
                            .get(&target)
                            .copied()
                            .or_else(|| sh.entities.get(&target));
                        links.push(match found {
                            Some(t) => {
                                counts.resolved += 1;
                                Link::resolved(
                                    reference.relation,
                                    target,
                                    t.hash,
                                    t.partition,
                                    t.seq,
                                )
                            }
                            None => {
                                counts.pending += 1;
                                new_pending.push((
                                    target.clone(),
                                    head.next_seq,
                                    reference.relation,
                                ));
                                Link::pending(reference.relation, target)
                            }
                        });
                    }
                    key = Some(Bytes::from(event.partition_key()));
                    new_idents.push((ident, head.next_seq));
                    introduces = introduced(&event);
                    RecordBody::Event(EventRecord {
                        event,
                        redactions,
                        links,
                    })
                }
            };
            let record = chain_next(&head, raw_offset, self.epoch, body)
                .map_err(|e| ProcessorError::internal(self.p, &e.to_string()))?;
            head = ChainHead::after(&record);
            seqs.push(record.seq);
            for k in introduces {
                if !overlay.contains_key(&k) && sh.entities.get(&k).is_none() {
                    overlay.insert(
                        k,
                        Target {
                            partition: self.p,
                            seq: record.seq,
                            hash: record.hash,
                        },
                    );
                }
            }
            entries.push(Record {
                key,
                headers: Vec::new(),
                value: LedgerEntry::Record(record).to_avro().into(),
            });
        }
        m.stage_seconds
            .with_label_values(&["link_chain"])
            .observe(t.elapsed().as_secs_f64());

        // 4. Append, then check nothing outranks us in between.
        if let Some(stop) = self.append(entries).await? {
            return Ok(Some(stop));
        }

        // 5. The records are durable and valid: move on.
        self.head = head;
        self.raw_next = batch
            .last()
            .map_or(self.raw_next, |r| r.offset.saturating_add(1));
        for (ident, seq) in new_idents {
            self.dedup.insert(ident.into(), seq);
        }
        self.links_known += i64::try_from(counts.resolved + counts.pending).unwrap_or(0);
        for (target, seq, rel) in new_pending {
            self.pending.add(target, seq, rel);
        }
        sh.entities.learn_targets(overlay);
        sh.own.mark(self.p, self.epoch, self.head.next_seq);
        for kind in counts.valid {
            m.events.with_label_values(&["valid", kind]).inc();
        }
        for code in counts.rejected {
            m.events.with_label_values(&["rejected", "unknown"]).inc();
            m.dlq.with_label_values(&[code]).inc();
        }
        if counts.duplicates > 0 {
            m.events
                .with_label_values(&["duplicate", "any"])
                .inc_by(counts.duplicates);
            m.duplicates.inc_by(counts.duplicates);
        }
        for d in counts.redactions {
            m.redactions.with_label_values(&[d.as_str()]).inc();
        }
        m.links
            .with_label_values(&["resolved"])
            .inc_by(counts.resolved as u64);
        m.links
            .with_label_values(&["pending"])
            .inc_by(counts.pending as u64);
        self.publish_gauges();
        Ok(None)
    }

    /// Writes link records for pending links whose target is now known.
    async fn resolve_pending(&mut self) -> Result<Option<Stop>, ProcessorError> {
        let entities = self.sh.entities.clone();
        let mut found: Vec<(String, i64, Relation, Target)> = Vec::new();
        for (target, waiters) in self.pending.by_target() {
            if let Some(t) = entities.get(target) {
                for (seq, rel) in waiters {
                    found.push((target.to_owned(), seq, rel, t));
                }
            }
            if found.len() >= self.sh.cfg.batch_max.max(1) {
                break;
            }
        }
        if found.is_empty() {
            return Ok(None);
        }
        let raw_offset = i64::try_from(self.raw_next.saturating_sub(1)).unwrap_or(0);
        let mut head = self.head;
        let mut entries = Vec::with_capacity(found.len());
        for (target, seq, relation, t) in &found {
            let body = RecordBody::LinkResolution(LinkResolution {
                resolves_seq: *seq,
                relation: *relation,
                target: target.clone(),
                target_hash: t.hash,
                target_partition: i32::try_from(t.partition).unwrap_or(i32::MAX),
                target_seq: t.seq,
            });
            let record = chain_next(&head, raw_offset, self.epoch, body)
                .map_err(|e| ProcessorError::internal(self.p, &e.to_string()))?;
            head = ChainHead::after(&record);
            entries.push(Record {
                key: None,
                headers: Vec::new(),
                value: LedgerEntry::Record(record).to_avro().into(),
            });
        }
        if let Some(stop) = self.append(entries).await? {
            return Ok(Some(stop));
        }
        self.head = head;
        for (target, seq, relation, _) in &found {
            self.pending.remove(target, *seq, *relation);
        }
        self.sh
            .metrics
            .links
            .with_label_values(&["resolved_later"])
            .inc_by(found.len() as u64);
        tracing::debug!(
            partition = self.p,
            resolved = found.len(),
            "pending links resolved"
        );
        self.publish_gauges();
        Ok(None)
    }

    /// Appends to our ledger partition and checks every gap before our offsets for a fence
    /// that outranks ours (rule 5). `Some(Stop::Fenced)` when one does.
    async fn append(&mut self, entries: Vec<Record>) -> Result<Option<Stop>, ProcessorError> {
        let t = Instant::now();
        let offsets = self.sh.log.append(LEDGER_TOPIC, self.p, entries).await?;
        self.sh
            .metrics
            .stage_seconds
            .with_label_values(&["ledger_append"])
            .observe(t.elapsed().as_secs_f64());
        let mut expected = self.next_ledger;
        for off in offsets {
            if off != expected && self.gap_outranks(expected, off).await? {
                self.sh.metrics.fenced_out.inc();
                tracing::warn!(
                    partition = self.p,
                    epoch = self.epoch,
                    "fenced out by a newer writer"
                );
                return Ok(Some(Stop::Fenced));
            }
            expected = off.saturating_add(1);
        }
        self.next_ledger = expected;
        Ok(None)
    }

    /// Whether `from..to` of our ledger partition holds a fence that outranks ours.
    async fn gap_outranks(&self, from: u64, to: u64) -> Result<bool, ProcessorError> {
        let mut reader = self.sh.log.reader(LEDGER_TOPIC, self.p, from).await?;
        let mut last_progress = Instant::now();
        while reader.position() < to {
            let batch = next_ledger_batch(&mut reader, self.p, to, &mut last_progress).await?;
            for stored in batch.iter().filter(|s| s.offset < to) {
                if let Ok(LedgerEntry::Fence(f)) = LedgerEntry::from_avro(&stored.record.value)
                    && f.writer_epoch > self.epoch
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The next ledger entries of a recovery read towards `end` (possibly none yet); an error
/// once nothing has arrived for [`READ_STALL`].
async fn next_ledger_batch<R: LogReader>(
    reader: &mut R,
    partition: u32,
    end: u64,
    last_progress: &mut Instant,
) -> Result<Vec<StoredRecord>, ProcessorError> {
    let batch = reader.next_batch(1000, Duration::from_millis(500)).await?;
    if !batch.is_empty() {
        *last_progress = Instant::now();
    } else if last_progress.elapsed() > READ_STALL {
        return Err(ProcessorError::ReadStalled {
            topic: LEDGER_TOPIC,
            partition,
            target: end,
        });
    }
    Ok(batch)
}

#[derive(Default)]
struct BatchCounts {
    valid: Vec<&'static str>,
    rejected: Vec<&'static str>,
    duplicates: u64,
    redactions: Vec<String>,
    resolved: usize,
    pending: usize,
}
