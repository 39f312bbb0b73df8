//! Every metric of the ingest role, declared in one place. Labels carry only closed sets
//! (kind, error code, route, status): never an event value.

use prometheus::core::Collector;
use prometheus::{IntCounterVec, Opts, Registry};

/// Ingest counters.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    accepted: IntCounterVec,
    rejected: IntCounterVec,
    requests: IntCounterVec,
}

impl IngestMetrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let accepted = IntCounterVec::new(
            Opts::new(
                "provenant_ingest_events_total",
                "Events accepted by HTTP ingest and durably written to prov.raw, by kind.",
            ),
            &["kind"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "provenant_ingest_rejected_total",
                "Events refused by HTTP ingest, by error code.",
            ),
            &["code"],
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "provenant_ingest_requests_total",
                "HTTP ingest requests, by route and status code.",
            ),
            &["route", "status"],
        )?;
        let me = Self {
            accepted,
            rejected,
            requests,
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
            Box::new(self.accepted.clone()),
            Box::new(self.rejected.clone()),
            Box::new(self.requests.clone()),
        ]
    }

    pub(crate) fn accepted(&self, kind: &str) {
        self.accepted.with_label_values(&[kind]).inc();
    }

    pub(crate) fn rejected(&self, code: &str) {
        self.rejected.with_label_values(&[code]).inc();
    }

    pub(crate) fn request(&self, route: &str, status: u16) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }
}
