//! The metrics the binary declares itself, in one place: what `serve` computes from the index
//! (provenance coverage) and what the archive role learns from the segments it closes (signed
//! checkpoints). The roles' own metrics live in their crates (`provenant_processor`,
//! `provenant_sink`, `provenant_ingest`). Labels carry partition numbers only.

use prometheus::core::Collector;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use provenant_archive::SegmentInfo;
use provenant_schemas::validity::ReaderState;

/// A set of metrics registered together.
pub(crate) trait MetricSet: Sized {
    /// Every metric, for registration and for the checks of `ops/` (cli/src/ops.rs).
    fn collectors(&self) -> Vec<Box<dyn Collector>>;

    /// Registers every metric in `registry`.
    fn registered(self, registry: &Registry) -> Result<Self, prometheus::Error> {
        for c in self.collectors() {
            registry.register(c)?;
        }
        Ok(self)
    }
}

/// Seconds since the Unix epoch, for timestamp gauges.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Segments and signed checkpoints the archive role wrote, per ledger partition.
#[derive(Clone, Debug)]
pub(crate) struct ArchiveMetrics {
    segments: IntCounterVec,
    checkpoint_time: GaugeVec,
    checkpoint_seq: IntGaugeVec,
}

impl ArchiveMetrics {
    /// Creates the metrics and registers them.
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self {
            segments: IntCounterVec::new(
                Opts::new(
                    "provenant_archive_segments_total",
                    "Archive segments written (each with its manifest and signed checkpoint), per ledger partition.",
                ),
                &["partition"],
            )?,
            checkpoint_time: GaugeVec::new(
                Opts::new(
                    "provenant_archive_last_checkpoint_timestamp_seconds",
                    "Unix time this process last wrote a segment and its signed checkpoint for the partition.",
                ),
                &["partition"],
            )?,
            checkpoint_seq: IntGaugeVec::new(
                Opts::new(
                    "provenant_archive_checkpoint_seq",
                    "Seq of the last record covered by the partition's newest signed checkpoint (-1: none).",
                ),
                &["partition"],
            )?,
        }
        .registered(registry)
    }

    /// The archive resumed `partition` at `state` (its newest complete segment).
    pub(crate) fn resumed(&self, partition: u32, state: &ReaderState) {
        self.checkpoint_seq
            .with_label_values(&[partition.to_string()])
            .set(state.head.next_seq.saturating_sub(1));
    }

    /// The archive closed `segments` (each uploaded with its checkpoint).
    pub(crate) fn closed<'a>(&self, segments: impl IntoIterator<Item = &'a SegmentInfo>) {
        for s in segments {
            let label = [s.partition.to_string()];
            self.segments.with_label_values(&label).inc();
            self.checkpoint_time
                .with_label_values(&label)
                .set(unix_now());
            self.checkpoint_seq
                .with_label_values(&label)
                .set(s.last_seq);
        }
    }
}

impl ArchiveMetrics {
    /// This instance no longer writes `partition` (revoked, or shutting down): its series go,
    /// so that only the partition's current writer reports its checkpoints.
    pub(crate) fn forget(&self, partition: u32) {
        let label = [partition.to_string()];
        let _ = self.segments.remove_label_values(&label);
        let _ = self.checkpoint_time.remove_label_values(&label);
        let _ = self.checkpoint_seq.remove_label_values(&label);
    }
}

impl MetricSet for ArchiveMetrics {
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.segments.clone()),
            Box::new(self.checkpoint_time.clone()),
            Box::new(self.checkpoint_seq.clone()),
        ]
    }
}

/// What one `provenant verify` run found, written by `verify --metrics-file` in the Prometheus
/// text format (node_exporter's textfile collector reads it), so that a scheduled audit of the
/// archive can page: `ops/prometheus/rules` alerts on an integrity failure and on an audit
/// that stopped running or could not run. No label: one file per audited archive.
#[derive(Clone, Debug)]
pub(crate) struct VerifyMetrics {
    last_run: prometheus::Gauge,
    exit_code: prometheus::IntGauge,
    failures: prometheus::IntGauge,
    records: prometheus::IntGauge,
    bytes: prometheus::IntGauge,
    duration: prometheus::Gauge,
    signatures: prometheus::IntGauge,
}

impl VerifyMetrics {
    /// Creates the metrics and registers them.
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| prometheus::Gauge::new(name, help);
        let int = |name: &str, help: &str| prometheus::IntGauge::new(name, help);
        Self {
            last_run: gauge(
                "provenant_verify_last_run_timestamp_seconds",
                "Unix time the last `provenant verify` run of this archive ended.",
            )?,
            exit_code: int(
                "provenant_verify_exit_code",
                "Exit status of that run: 0 intact, 1 integrity failure, 2 usage or I/O error (nothing verified).",
            )?,
            failures: int(
                "provenant_verify_integrity_failures",
                "Integrity failures that run found (altered, reordered or missing records or segments, bad signatures).",
            )?,
            records: int(
                "provenant_verify_records",
                "Records that run checked.",
            )?,
            bytes: int(
                "provenant_verify_bytes",
                "Bytes of segments (as stored) that run read.",
            )?,
            duration: gauge(
                "provenant_verify_duration_seconds",
                "How long that run took.",
            )?,
            signatures: int(
                "provenant_verify_signatures_checked",
                "1 when checkpoint signatures were checked (--pubkey given), else 0.",
            )?,
        }
        .registered(registry)
    }

    /// Records a run: its report (None when it could not run), exit status and duration.
    pub(crate) fn record(
        &self,
        report: Option<&provenant_archive::verify::VerifyReport>,
        exit_code: u8,
        elapsed: std::time::Duration,
    ) {
        self.last_run.set(unix_now());
        self.exit_code.set(i64::from(exit_code));
        self.duration.set(elapsed.as_secs_f64());
        if let Some(r) = report {
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.failures.set(n(r.failures.len() as u64));
            self.records.set(n(r.records));
            self.bytes.set(n(r.bytes));
            self.signatures.set(i64::from(r.signatures_checked));
        }
    }
}

impl MetricSet for VerifyMetrics {
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.last_run.clone()),
            Box::new(self.exit_code.clone()),
            Box::new(self.failures.clone()),
            Box::new(self.records.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.duration.clone()),
            Box::new(self.signatures.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut out)
            .unwrap();
        out
    }

    #[test]
    fn archive_metrics_follow_closed_segments_and_resumes() {
        let registry = Registry::new();
        let m = ArchiveMetrics::new(&registry).unwrap();
        let mut state = ReaderState::START;
        state.head.next_seq = 100;
        m.resumed(3, &state);
        assert!(text(&registry).contains("provenant_archive_checkpoint_seq{partition=\"3\"} 99"));
        let segment = SegmentInfo {
            partition: 3,
            key: "p0003/s00000000000000000100".into(),
            first_seq: 100,
            last_seq: 149,
            records: 50,
            bytes: 1000,
            tree_size: 150,
            root: [0; 32],
            state,
        };
        let before = unix_now();
        m.closed(&[
            segment.clone(),
            SegmentInfo {
                last_seq: 199,
                ..segment
            },
        ]);
        let t = text(&registry);
        assert!(
            t.contains("provenant_archive_checkpoint_seq{partition=\"3\"} 199"),
            "{t}"
        );
        assert!(
            t.contains("provenant_archive_segments_total{partition=\"3\"} 2"),
            "{t}"
        );
        let stamp: f64 = t
            .lines()
            .find(|l| l.starts_with("provenant_archive_last_checkpoint_timestamp_seconds{"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(stamp >= before.floor(), "{stamp} < {before}");

        // Another instance takes the partition: this one reports nothing for it any more.
        m.resumed(4, &state);
        m.forget(3);
        let t = text(&registry);
        assert!(!t.contains("partition=\"3\""), "{t}");
        assert!(
            t.contains("provenant_archive_checkpoint_seq{partition=\"4\"} 99"),
            "{t}"
        );
    }
}
