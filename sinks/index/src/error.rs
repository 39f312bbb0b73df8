//! Why an index call failed. Every message says what failed, on which input, and what to do;
//! none carries an event's field values.

use std::error::Error as StdError;

/// An index error.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The URL given to [`crate::open`] names no index.
    #[error(
        "index URL {url:?}: {reason} (use a file path, sqlite:///path/index.db or postgres://user@host:port/db)"
    )]
    Url { url: String, reason: String },

    /// The database refused or failed an operation.
    #[error("{backend} index: {op}: {detail}")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the index was doing (`open`, `apply partition 3 seq 10..=19`, `lineage`).
        op: String,
        /// Whether trying again later may succeed (connection lost, database busy).
        retryable: bool,
        /// The database's own words.
        detail: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    /// The index was written by a newer Provenant.
    #[error(
        "index schema version {found} is newer than this build knows ({known}); run a Provenant at least as new as the one that wrote it"
    )]
    SchemaTooNew { found: i64, known: i64 },

    /// A batch given to [`crate::Index::apply`] does not extend the stored reader state (a
    /// caller bug: records must come in seq order from the stored head, valid, with the state
    /// after them). Nothing was written.
    #[error("apply partition {partition}: {reason}; nothing was written")]
    Discontinuous { partition: u32, reason: String },

    /// The entity is not in the index.
    #[error("no entity {0} in the index")]
    UnknownEntity(String),

    /// An argument is out of range (depth, partition).
    #[error("{0}")]
    InvalidArgument(String),

    /// A stored value does not read back (a hash of the wrong length, bad JSON): the index
    /// file or database was altered outside Provenant.
    #[error("index holds a value that does not read back: {0}; rebuild the index from the ledger")]
    Corrupt(String),

    /// A blocking database task did not finish (the runtime is shutting down).
    #[error("index task did not finish: {0}")]
    Task(String),
}

impl IndexError {
    /// Whether the same call may succeed later (the database was unreachable or busy). An
    /// apply that failed with a non-retryable error will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            IndexError::Database { retryable, .. } => *retryable,
            IndexError::Task(_) => true,
            _ => false,
        }
    }

    pub(crate) fn sqlite(op: impl Into<String>, e: rusqlite::Error) -> Self {
        let retryable = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        IndexError::Database {
            backend: "sqlite",
            op: op.into(),
            retryable,
            detail: e.to_string(),
            source: Box::new(e),
        }
    }

    pub(crate) fn postgres(op: impl Into<String>, e: tokio_postgres::Error) -> Self {
        // A server-side error carries an SQLSTATE; only connection-level trouble and the
        // server's "try again" classes (08 connection, 40 transaction rollback, 53
        // resources, 57 operator intervention) are worth retrying.
        let retryable = match e.code() {
            None => e.is_closed() || StdError::source(&e).is_some_and(|s| s.is::<std::io::Error>()),
            Some(code) => {
                let c = code.code();
                c.starts_with("08")
                    || c.starts_with("40")
                    || c.starts_with("53")
                    || c.starts_with("57")
            }
        };
        // tokio-postgres says only "db error" for a server error; the server's message,
        // SQLSTATE and detail are in the DbError.
        let detail = match e.as_db_error() {
            Some(db) => {
                let mut d = format!("{} (SQLSTATE {})", db.message(), db.code().code());
                if let Some(more) = db.detail() {
                    d.push_str(": ");
                    d.push_str(more);
                }
                d
            }
            None => match StdError::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            },
        };
        IndexError::Database {
            backend: "postgres",
            op: op.into(),
            retryable,
            detail,
            source: Box::new(e),
        }
    }
}
