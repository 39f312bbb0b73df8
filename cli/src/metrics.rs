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

impl MetricSet for ArchiveMetrics {
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.segments.clone()),
            Box::new(self.checkpoint_time.clone()),
            Box::new(self.checkpoint_seq.clone()),
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
    }
}
