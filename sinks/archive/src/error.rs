//! The archive's typed errors. Every error says what failed, on which object or partition, and
//! what to do; none carries a secret (credentials never reach an error message) or a record's
//! contents.

use std::path::PathBuf;

/// Why an archive operation failed. For the sink every variant stops it: an infrastructure
/// error ([`ArchiveError::Store`], [`ArchiveError::Spool`]) is retried by restarting the sink,
/// which resumes from the newest complete segment; the others are alarms that need a person.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The configuration or the archive URL is not usable.
    #[error("archive configuration: {0}")]
    Config(String),
    /// The object store refused or failed an operation.
    #[error("object store: {op} {key}: {source}")]
    Store {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    /// A write-once object already exists with other contents: another writer is writing this
    /// archive, or it was altered. Never overwritten.
    #[error(
        "write-once conflict: {key} already exists with different contents (another sink is \
         writing this archive, or the archive was altered); nothing was overwritten: stop the \
         other writer or run `provenant verify` on the archive"
    )]
    Conflict { key: String },
    /// An object of the archive is not what the sink wrote (found while resuming).
    #[error("archive object {key}: {message}; run `provenant verify` on the archive")]
    Corrupt { key: String, message: String },
    /// The caller passed entries that are not the partition's valid entries in log order.
    #[error("partition {partition}, ledger offset {offset}: {message}")]
    Chain {
        partition: u32,
        offset: u64,
        message: String,
    },
    /// `write` on a partition that was not resumed first.
    #[error("partition {partition} was not resumed: call resume() before write()")]
    NotResumed { partition: u32 },
    /// The local spool file of an open segment failed.
    #[error("spool file in {dir}: {source}")]
    Spool {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file is missing, unreadable or malformed.
    #[error("key file {path}: {message}")]
    Key { path: PathBuf, message: String },
}

impl ArchiveError {
    pub(crate) fn store(
        op: &'static str,
        key: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        ArchiveError::Store {
            op,
            key: key.into(),
            source,
        }
    }

    pub(crate) fn corrupt(key: impl Into<String>, message: impl Into<String>) -> Self {
        ArchiveError::Corrupt {
            key: key.into(),
            message: message.into(),
        }
    }
}
