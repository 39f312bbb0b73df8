//! # provenant-schemas
//!
//! The two core types of Provenant — the event a producer emits and the ledger record sinks
//! read — with their Avro schemas, validation, canonical bytes for hashing and the mappings
//! from CloudEvents, CDEvents and OpenLineage. Pure code: no I/O, no tokio, no rdkafka.
