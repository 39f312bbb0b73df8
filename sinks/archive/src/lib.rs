//! # provenant-archive
//!
//! The cold archive (DESIGN.md, "Cold archive"): each ledger partition's valid records in
//! write-once, zstd-compressed Avro object container files ("segments") in object storage —
//! the local filesystem by default, S3 and compatibles by URL — each with a JSON manifest and a
//! signed checkpoint of the partition's RFC 6962 Merkle tree; and the offline tools that check
//! it: [`verify()`], inclusion proofs ([`prove`], [`verify_proof`]) and [`read`] for `dump`.
//!
//! What may depend on what: this crate depends on `provenant-schemas` (record types, the
//! validity rule, the hash chain) and on `object_store`; it never talks to Kafka or the log.
//! The runner that reads the ledger and calls [`ArchiveSink`] lives elsewhere.
//!
//! Modules: [`sink`] (the writer), [`verify`] (the checker), [`proof`] (inclusion proofs),
//! [`merkle`] (RFC 6962), [`note`] (keys and checkpoints, C2SP signed-note format),
//! [`manifest`], [`layout`] (object keys), [`ocf`] (Avro container files), [`read`],
//! [`store`] (object store by URL, write-once create), [`config`], [`error`].
//! `sinks/archive/README.md` describes the layout and formats.

pub mod config;
pub mod conformance;
pub mod error;
pub mod layout;
pub mod manifest;
pub mod merkle;
pub mod note;
pub mod ocf;
pub mod proof;
pub mod read;
pub mod sink;
pub mod store;
pub mod testkit;
pub mod verify;

pub use config::{ArchiveConfig, S3Options, Secret};
pub use error::ArchiveError;
pub use note::{
    ArchiveKey, Checkpoint, SignedCheckpoint, VerifierKey, generate_key, load_or_create_key,
};
pub use proof::{InclusionProof, ProofSummary, prove, verify_proof};
pub use sink::{ArchiveSink, SegmentInfo};
pub use store::ArchiveStore;
pub use verify::{Check, Failure, VerifyOptions, VerifyReport, verify};
