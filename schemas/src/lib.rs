//! # provenant-schemas
//!
//! The two core types of Provenant — the event a producer emits and the ledger record sinks
//! read — with their Avro schemas, validation, canonical bytes for hashing and the mappings
//! from CloudEvents, CDEvents and OpenLineage. Pure code: no I/O, no tokio, no rdkafka.
//!
//! Modules: [`event`] (the model), [`keys`] (typed entity keys), [`json`] (strict JSON and
//! limits), [`validate`] (field rules), [`error`] (why an event was refused), [`avro`] (the
//! `.avsc` schemas and single-object encoding), [`ledger`] (the ledger entry types),
//! [`canonical`] (canonical bytes, record hash, chain checks), [`binary_mode`] (CloudEvents
//! binary mode on Kafka: `ce_*` headers and a value), [`interop`] (CloudEvents content types,
//! CDEvents and OpenLineage mappings) and [`decode`] (the one entry point for outside input:
//! one event, a JSON array or NDJSON).

pub mod avro;
pub mod binary_mode;
pub mod canonical;
pub mod decode;
pub mod error;
pub mod event;
pub mod interop;
pub mod json;
pub mod keys;
pub mod ledger;
pub mod validate;
pub mod validity;

pub use decode::{Decoder, ItemError, decode};
pub use error::{ErrorCode, EventError, EventRef};
pub use event::{
    Annotations, Approval, Artifact, Build, Data, Dataset, Decision, Deploy, Event, EventData, Job,
    Kind, Reference, Relation, RunState, Runtime,
};
pub use json::Limits;
pub use keys::EntityKey;
pub use ledger::{LedgerEntry, LedgerRecord, RecordBody};
