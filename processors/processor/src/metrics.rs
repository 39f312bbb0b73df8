//! Every metric of the processor, declared in one place. Label values come from closed sets
//! (stage, kind, error code, detector or policy rule name, link status, partition number,
//! validity reason): never from an event value.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The processor's metrics.
#[derive(Clone, Debug)]
pub struct ProcessorMetrics {
    pub(crate) events: IntCounterVec,
    pub(crate) dlq: IntCounterVec,
    pub(crate) duplicates: IntCounter,
    pub(crate) redactions: IntCounterVec,
    pub(crate) links: IntCounterVec,
    pub(crate) pending_links: IntGaugeVec,
    pub(crate) untracked_links: IntGaugeVec,
    pub(crate) known_links: IntGaugeVec,
    pub(crate) head_seq: IntGaugeVec,
    pub(crate) lag: IntGaugeVec,
    pub(crate) stage_seconds: HistogramVec,
    pub(crate) ignored: IntCounterVec,
    pub(crate) tailer_entries: IntCounterVec,
    pub(crate) takeovers: IntCounter,
    pub(crate) fenced_out: IntCounter,
    pub(crate) batch_size: Histogram,
    pub(crate) entities: IntGauge,
}

impl ProcessorMetrics {
    /// Removes partition `p`'s series (chain head, links, pending links, lag) once this
    /// instance no longer owns it.
    pub(crate) fn forget_partition(&self, p: u32) {
        let l = [p.to_string()];
        let l = [l[0].as_str()];
        for g in [
            &self.pending_links,
            &self.untracked_links,
            &self.known_links,
            &self.head_seq,
            &self.lag,
        ] {
            let _ = g.remove_label_values(&l);
        }
    }

    /// Creates the metrics and registers them.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new(
                "provenant_processor_events_total",
                "Raw records by outcome (stage: valid, rejected, duplicate) and event kind (unknown when undecodable).",
            ),
            &["stage", "kind"],
        )?;
        let dlq = IntCounterVec::new(
            Opts::new(
                "provenant_processor_dlq_total",
                "Records sent to prov.dlq, by reason code.",
            ),
            &["reason"],
        )?;
        let duplicates = IntCounter::new(
            "provenant_processor_duplicates_total",
            "Raw events whose identity (source, id) was already in the ledger.",
        )?;
        let redactions = IntCounterVec::new(
            Opts::new(
                "provenant_processor_redactions_total",
                "Values redacted, by detector or policy rule.",
            ),
            &["detector"],
        )?;
        let links = IntCounterVec::new(
            Opts::new(
                "provenant_processor_links_total",
                "Links written: resolved at write, pending at write, resolved later by a link record.",
            ),
            &["status"],
        )?;
        let pending_links = IntGaugeVec::new(
            Opts::new(
                "provenant_processor_pending_links",
                "Links of the partition's ledger whose target has not arrived yet.",
            ),
            &["partition"],
        )?;
        let untracked_links = IntGaugeVec::new(
            Opts::new(
                "provenant_processor_untracked_links",
                "Pending links dropped from memory over [processor] max_pending_links: they stay pending in the ledger for good (included in pending_links).",
            ),
            &["partition"],
        )?;
        let known_links = IntGaugeVec::new(
            Opts::new(
                "provenant_processor_links",
                "Links in the partition's ledger (the missing-link rate is pending_links / links).",
            ),
            &["partition"],
        )?;
        let head_seq = IntGaugeVec::new(
            Opts::new(
                "provenant_processor_chain_head_seq",
                "Seq of the newest record of the partition's chain (-1: empty).",
            ),
            &["partition"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "provenant_processor_consumer_lag",
                "Raw records not yet processed, per partition.",
            ),
            &["partition"],
        )?;
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new(
                "provenant_processor_stage_seconds",
                "Time per batch in each stage (decode, redact, link_chain, dlq_append, ledger_append).",
            )
            .buckets(prometheus::exponential_buckets(0.000_05, 4.0, 10)?),
            &["stage"],
        )?;
        let ignored = IntCounterVec::new(
            Opts::new(
                "provenant_processor_ignored_ledger_entries_total",
                "Ledger entries that did not count under the validity rule (stale writers, losing fences), by reason.",
            ),
            &["reason"],
        )?;
        let tailer_entries = IntCounterVec::new(
            Opts::new(
                "provenant_processor_tailer_entries_total",
                "Ledger entries the entity-state tailers read, by how: head (this process's own records, validated by their head and left to its worker to learn) or full (decoded: fences, other writers' records, and own records the worker did not learn in time).",
            ),
            &["read"],
        )?;
        let takeovers = IntCounter::new(
            "provenant_processor_takeovers_total",
            "Partitions taken over (a fence written and counted).",
        )?;
        let fenced_out = IntCounter::new(
            "provenant_processor_fenced_out_total",
            "Times this writer found another writer's counted fence and stopped writing.",
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "provenant_processor_batch_records",
                "Raw records per processed batch.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 4.0, 8)?),
        )?;
        let entities = IntGauge::new(
            "provenant_processor_entities",
            "Entities known to this instance's entity state.",
        )?;
        let me = Self {
            events,
            dlq,
            duplicates,
            redactions,
            links,
            pending_links,
            untracked_links,
            known_links,
            head_seq,
            lag,
            stage_seconds,
            ignored,
            tailer_entries,
            takeovers,
            fenced_out,
            batch_size,
            entities,
        };
        for c in me.collectors() {
            registry.register(c)?;
        }
        Ok(me)
    }

    /// Every metric as a collector (clones sharing the same values), registered or not: for
    /// registration, and for tools that check dashboards and alert rules against the names,
    /// types and labels the code exports (`cli/src/ops.rs`).
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.events.clone()),
            Box::new(self.dlq.clone()),
            Box::new(self.duplicates.clone()),
            Box::new(self.redactions.clone()),
            Box::new(self.links.clone()),
            Box::new(self.pending_links.clone()),
            Box::new(self.untracked_links.clone()),
            Box::new(self.known_links.clone()),
            Box::new(self.head_seq.clone()),
            Box::new(self.lag.clone()),
            Box::new(self.stage_seconds.clone()),
            Box::new(self.ignored.clone()),
            Box::new(self.tailer_entries.clone()),
            Box::new(self.takeovers.clone()),
            Box::new(self.fenced_out.clone()),
            Box::new(self.batch_size.clone()),
            Box::new(self.entities.clone()),
        ]
    }

    /// Metrics registered nowhere (for tests and tools).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Self::new(&Registry::new())
    }
}
