//! # provenant-processor — raw events into the ledger, exactly once
//!
//! `prov.raw` partition *i* is turned into `prov.ledger` partition *i* by its one current
//! owner (DESIGN.md, "Exactly once without Kafka transactions"). For each raw record, in
//! offset order, the owner writes exactly one chained ledger record:
//!
//! * an **event record** — the event decoded, validated, redacted ([`Redact`]), with its
//!   links to the records of the entities it refers to;
//! * a **rejected marker** — the record failed decoding or validation: it went to `prov.dlq`
//!   with its reason in headers (redacted: see [`dlq`]) and the marker names the DLQ offset;
//! * a **duplicate marker** — the event's identity (`source`, `id`) is already in the ledger.
//!
//! and, later, **link resolutions** for links whose target arrived after the event.
//!
//! ## Invariants
//!
//! * **Every raw offset is accounted for exactly once** by a valid event record or marker of
//!   its ledger partition. A new owner finds where to resume by reading the ledger under the
//!   validity rule ([`provenant_schemas::validity`]) up to its own fence; nothing else (group
//!   offsets are for lag only).
//! * **Zombie-proof.** A writer appends a fence with a higher epoch before its first record.
//!   After every append it checks that its offsets follow its previous ones, or that the gap
//!   holds no fence that outranks its own; otherwise it stops writing and takes the partition
//!   over again. A stale writer's late appends fail the validity rule and every reader
//!   ignores them.
//! * **Nothing unredacted is stored.** The ledger holds the redacted event and the list of
//!   redactions (path, detector, action), never an original value; the DLQ holds the reason
//!   and a redacted copy of what could be read (raw bytes only with `dlq_raw_bytes = true`).
//! * **Entity state** (entity key → partition, seq, hash of the record that introduced it)
//!   is built from the validated ledger of every partition and from this writer's own
//!   acknowledged records, never from anything a stale writer could feed.
//! * Log errors stop a partition's worker without committing anything; it takes the
//!   partition over again. A bad record is never fatal: it is counted and goes to the DLQ.

use provenant_schemas::Event;
use provenant_schemas::ledger::Redaction;

pub mod audit;
pub mod config;
pub mod dlq;
pub mod entities;
pub mod history;
pub mod metrics;
mod own;
mod pending;
mod processor;
mod worker;

pub use config::ProcessorConfig;
pub use entities::{EntityState, Target};
pub use history::{History, HistoryError, ReplayFuture};
pub use metrics::ProcessorMetrics;
pub use processor::{Processor, ProcessorError};

/// The redaction stage: removes PII and secrets from every string before anything is stored.
///
/// `provenant-redact`'s `Redactor` implements it; the processor takes any implementation so
/// that the policy, its key and its detectors stay in their own crate.
pub trait Redact: Send + Sync + 'static {
    /// Redacts every string field of the event in place; returns what was done.
    fn redact_event(&self, event: &mut Event) -> Vec<Redaction>;
    /// Redacts every string inside a JSON value in place (for DLQ copies of events that did
    /// not validate); returns what was done.
    fn redact_json(&self, value: &mut serde_json::Value) -> Vec<Redaction>;
}

impl<R: Redact + ?Sized> Redact for std::sync::Arc<R> {
    fn redact_event(&self, event: &mut Event) -> Vec<Redaction> {
        (**self).redact_event(event)
    }
    fn redact_json(&self, value: &mut serde_json::Value) -> Vec<Redaction> {
        (**self).redact_json(value)
    }
}

/// The policy engine of `provenant-redact` is the redaction stage of every real deployment.
impl Redact for provenant_redact::Redactor {
    fn redact_event(&self, event: &mut Event) -> Vec<Redaction> {
        provenant_redact::Redactor::redact_event(self, event)
    }
    fn redact_json(&self, value: &mut serde_json::Value) -> Vec<Redaction> {
        provenant_redact::Redactor::redact_json(self, value)
    }
}
