//! # provenant-index — the hot lineage index
//!
//! The ledger (`prov.ledger`) fanned out to a queryable index: events, entities and edges,
//! with lineage walks (up and down, depth-limited), what is deployed where, the rollback
//! target of a service in an environment, and provenance coverage of what is deployed.
//! SQLite (a file, the embedded default) and PostgreSQL (by URL) sit behind one trait,
//! [`Index`], checked by one conformance suite ([`conformance`]) run against both.
//!
//! Who calls it: the index sink's runner reads the ledger, applies the validity rule
//! ([`provenant_schemas::validity`]) and calls [`Index::apply`] with each partition's valid
//! records and the [`ReaderState`] after them; on start it asks [`Index::reader_state`] where
//! to resume. `provenant serve` / `up` mount [`http::router`]; `provenant query` and `demo`
//! print [`format_tree`].
//!
//! ## Invariants
//!
//! * **Rows and reader state in one transaction.** [`Index::apply`] writes a batch's rows and
//!   the partition's reader state (DESIGN.md rule 6: ledger offset, seq and head hash, fence
//!   epoch and writer id, raw offset) in one database transaction: after a crash the index
//!   holds both or neither.
//! * **Idempotent by ledger position.** Records below the stored head are skipped; the rest
//!   must extend it. A replay writes nothing twice; a batch that does not extend the stored
//!   state writes nothing and fails ([`IndexError::Discontinuous`]).
//! * **Migrations at open.** [`open`] brings the schema to the version this build knows, each
//!   migration in its own transaction; re-opening is a no-op; a newer schema is refused.
//! * **Nothing is ever parsed out of a key.** Keys are stored in their string form; a
//!   dataset's or job's namespace and name have their own columns.
//! * A bad link resolution (one that names no edge) is counted
//!   ([`Stats::unmatched_resolutions`]), never fatal. A database error fails the call and
//!   says whether retrying may help ([`IndexError::is_retryable`]); the runner stops without
//!   moving its position.
//!
//! ## Database crates, and why
//!
//! `rusqlite` (with `bundled`: SQLite compiled in, no system library, same version
//! everywhere) and `tokio-postgres`. Both are thin, well-kept drivers that let the index
//! write its own SQL, which it needs anyway (a recursive CTE, upserts, `unnest` bulk writes).
//! `sqlx` would give one API over both, but with its sqlite, postgres and runtime features it
//! builds roughly twice the dependency tree (its own SQLite worker thread, pool, TLS and
//! crypto crates for PostgreSQL auth) on 2-core machines, and its query macros would need a
//! live database or checked-in metadata at build time. The price of two drivers is two small
//! write paths ([`sqlite`], [`postgres`]); queries share one SQL text ([`sql`]) and one row
//! reader (`read`). rusqlite is synchronous: the SQLite backend runs each call on tokio's
//! blocking pool, with one writer connection and a few WAL readers, so a long query never
//! blocks the runtime nor the writer.

use std::future::Future;
use std::sync::Arc;

use provenant_schemas::validity::ReaderState;
use provenant_schemas::{EntityKey, LedgerRecord};

pub mod conformance;
mod error;
pub mod http;
mod migrations;
mod model;
mod plan;
pub mod postgres;
mod read;
mod sql;
pub mod sqlite;
pub mod story;
mod tree;
pub mod workload;

pub use error::IndexError;
pub use model::{
    ApplyStats, Coverage, Deployment, Direction, Edge, EdgeEvent, EdgeStatus, IndexedEvent,
    Lineage, LinkView, Node, Position, RedactionView, Stats, Unproven, UnprovenArtifact,
    relation_target_is_upstream, target_is_upstream,
};
pub use postgres::PostgresIndex;
pub use sqlite::SqliteIndex;
pub use tree::format_tree;

/// Deepest lineage walk any caller may ask for.
pub const MAX_LINEAGE_DEPTH: u32 = 20;
/// Most `(key, depth)` rows a lineage walk produces before it stops
/// ([`Lineage::truncated`]); bounds a walk through a hub (every deploy of an environment).
pub const MAX_LINEAGE_NODES: i64 = 10_000;
/// Most events listed per edge of a lineage answer ([`Edge::event_count`] has them all).
pub const MAX_EVENTS_PER_EDGE: usize = 16;

/// Where an index lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexUrl {
    /// A SQLite file (created if missing): a plain path, or `sqlite:///abs/path`,
    /// `sqlite://relative/path`, `sqlite:path`.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection string: `postgres://` or `postgresql://` URL, as libpq reads
    /// it (`options=-c search_path=…` picks a schema).
    Postgres(String),
}

impl IndexUrl {
    /// Reads an index URL.
    pub fn parse(url: &str) -> Result<IndexUrl, IndexError> {
        let bad = |reason: &str| IndexError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(IndexUrl::Postgres(url.to_owned()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            return Err(bad("unknown scheme"));
        } else {
            url
        };
        if path.is_empty() {
            return Err(bad("no file path"));
        }
        if path == ":memory:" {
            return Err(bad(
                "an in-memory SQLite index would vanish with the process; give a file path",
            ));
        }
        Ok(IndexUrl::Sqlite(path.into()))
    }

    /// The URL for logs: a PostgreSQL password is masked.
    pub fn redacted(&self) -> String {
        match self {
            IndexUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            IndexUrl::Postgres(u) => postgres::redact_url(u),
        }
    }
}

/// Opens (creating if needed) the index at `url` and applies pending migrations.
pub async fn open(url: &str) -> Result<AnyIndex, IndexError> {
    match IndexUrl::parse(url)? {
        IndexUrl::Sqlite(path) => Ok(AnyIndex::Sqlite(SqliteIndex::open(&path).await?)),
        IndexUrl::Postgres(url) => Ok(AnyIndex::Postgres(PostgresIndex::open(&url).await?)),
    }
}

/// The hot index. Every method is one transaction or one consistent read; all are safe to call
/// concurrently (writes to one partition are serialized by the backend).
pub trait Index: Send + Sync + 'static {
    /// Where partition `partition`'s reader stands; `None` if it was never written.
    fn reader_state(
        &self,
        partition: u32,
    ) -> impl Future<Output = Result<Option<ReaderState>, IndexError>> + Send;

    /// Stores a batch of **valid** records of one partition (checked by the caller with the
    /// validity rule, in seq order) and the reader state after them, in one transaction.
    ///
    /// Idempotent: records below the stored head are skipped, so a replay after a crash
    /// writes nothing twice, and a state behind the stored one leaves it in place. The
    /// records not skipped must extend the stored head, and `state.head` must be the head
    /// after them; else nothing is written ([`IndexError::Discontinuous`]). A batch of no
    /// records only moves the state (fences read past).
    fn apply(
        &self,
        partition: u32,
        records: &[LedgerRecord],
        state: &ReaderState,
    ) -> impl Future<Output = Result<ApplyStats, IndexError>> + Send;

    /// The lineage of `entity`: every entity within `depth` hops `direction`, and the edges
    /// walked with the events behind them. `depth` is at most [`MAX_LINEAGE_DEPTH`]; an entity
    /// the index does not hold is [`IndexError::UnknownEntity`].
    fn lineage(
        &self,
        entity: &EntityKey,
        direction: Direction,
        depth: u32,
    ) -> impl Future<Output = Result<Lineage, IndexError>> + Send;

    /// Events with CloudEvents id `id` (and `source`, when given), by ledger position. More
    /// than one when several sources used the same id.
    fn event(
        &self,
        id: &str,
        source: Option<&str>,
    ) -> impl Future<Output = Result<Vec<IndexedEvent>, IndexError>> + Send;

    /// The event at a ledger position (a link's target), by primary key.
    fn event_at(
        &self,
        partition: u32,
        seq: i64,
    ) -> impl Future<Output = Result<Option<IndexedEvent>, IndexError>> + Send;

    /// What is deployed where now: the latest deployment of each (service, environment), of
    /// one environment when `env` is given, by environment then service. "Latest" is the
    /// newest `deploy_timestamp` (ties broken by the larger deploy id); a later event about
    /// the same deploy id replaces the earlier one.
    fn deployments(
        &self,
        env: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Deployment>, IndexError>> + Send;

    /// Where `service` in `env` rolls back to: the newest earlier deployment whose
    /// **artifact differs** from the current one's. Redeploys of the current artifact (a
    /// restart, a config change) are skipped, since rolling back to them changes no code.
    /// `None` when there is no current deployment or no earlier different artifact.
    fn rollback_target(
        &self,
        service: &str,
        env: &str,
    ) -> impl Future<Output = Result<Option<Deployment>, IndexError>> + Send;

    /// Build provenance of what is deployed now: the share of distinct artifacts of the
    /// current deployments that have `artifact --built_by--> build --built_from--> commit`,
    /// and the others with the reason.
    fn coverage(&self) -> impl Future<Output = Result<Coverage, IndexError>> + Send;

    /// Counts of everything, for accounting views and SLIs.
    fn stats(&self) -> impl Future<Output = Result<Stats, IndexError>> + Send;

    /// Edges whose link is still pending (the numerator of the missing-link rate).
    fn missing_links(&self) -> impl Future<Output = Result<u64, IndexError>> + Send;

    /// The schema version in the database.
    fn schema_version(&self) -> impl Future<Output = Result<i64, IndexError>> + Send;
}

/// Either backend, chosen by URL ([`open`]).
#[derive(Debug)]
pub enum AnyIndex {
    Sqlite(SqliteIndex),
    Postgres(PostgresIndex),
}

macro_rules! delegate {
    ($self:ident, $i:ident => $call:expr) => {
        match $self {
            AnyIndex::Sqlite($i) => $call.await,
            AnyIndex::Postgres($i) => $call.await,
        }
    };
}

impl Index for AnyIndex {
    async fn reader_state(&self, partition: u32) -> Result<Option<ReaderState>, IndexError> {
        delegate!(self, i => i.reader_state(partition))
    }
    async fn apply(
        &self,
        partition: u32,
        records: &[LedgerRecord],
        state: &ReaderState,
    ) -> Result<ApplyStats, IndexError> {
        delegate!(self, i => i.apply(partition, records, state))
    }
    async fn lineage(
        &self,
        entity: &EntityKey,
        direction: Direction,
        depth: u32,
    ) -> Result<Lineage, IndexError> {
        delegate!(self, i => i.lineage(entity, direction, depth))
    }
    async fn event(&self, id: &str, source: Option<&str>) -> Result<Vec<IndexedEvent>, IndexError> {
        delegate!(self, i => i.event(id, source))
    }
    async fn event_at(&self, partition: u32, seq: i64) -> Result<Option<IndexedEvent>, IndexError> {
        delegate!(self, i => i.event_at(partition, seq))
    }
    async fn deployments(&self, env: Option<&str>) -> Result<Vec<Deployment>, IndexError> {
        delegate!(self, i => i.deployments(env))
    }
    async fn rollback_target(
        &self,
        service: &str,
        env: &str,
    ) -> Result<Option<Deployment>, IndexError> {
        delegate!(self, i => i.rollback_target(service, env))
    }
    async fn coverage(&self) -> Result<Coverage, IndexError> {
        delegate!(self, i => i.coverage())
    }
    async fn stats(&self) -> Result<Stats, IndexError> {
        delegate!(self, i => i.stats())
    }
    async fn missing_links(&self) -> Result<u64, IndexError> {
        delegate!(self, i => i.missing_links())
    }
    async fn schema_version(&self) -> Result<i64, IndexError> {
        delegate!(self, i => i.schema_version())
    }
}

impl<I: Index> Index for Arc<I> {
    fn reader_state(
        &self,
        partition: u32,
    ) -> impl Future<Output = Result<Option<ReaderState>, IndexError>> + Send {
        (**self).reader_state(partition)
    }
    fn apply(
        &self,
        partition: u32,
        records: &[LedgerRecord],
        state: &ReaderState,
    ) -> impl Future<Output = Result<ApplyStats, IndexError>> + Send {
        (**self).apply(partition, records, state)
    }
    fn lineage(
        &self,
        entity: &EntityKey,
        direction: Direction,
        depth: u32,
    ) -> impl Future<Output = Result<Lineage, IndexError>> + Send {
        (**self).lineage(entity, direction, depth)
    }
    fn event(
        &self,
        id: &str,
        source: Option<&str>,
    ) -> impl Future<Output = Result<Vec<IndexedEvent>, IndexError>> + Send {
        (**self).event(id, source)
    }
    fn event_at(
        &self,
        partition: u32,
        seq: i64,
    ) -> impl Future<Output = Result<Option<IndexedEvent>, IndexError>> + Send {
        (**self).event_at(partition, seq)
    }
    fn deployments(
        &self,
        env: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Deployment>, IndexError>> + Send {
        (**self).deployments(env)
    }
    fn rollback_target(
        &self,
        service: &str,
        env: &str,
    ) -> impl Future<Output = Result<Option<Deployment>, IndexError>> + Send {
        (**self).rollback_target(service, env)
    }
    fn coverage(&self) -> impl Future<Output = Result<Coverage, IndexError>> + Send {
        (**self).coverage()
    }
    fn stats(&self) -> impl Future<Output = Result<Stats, IndexError>> + Send {
        (**self).stats()
    }
    fn missing_links(&self) -> impl Future<Output = Result<u64, IndexError>> + Send {
        (**self).missing_links()
    }
    fn schema_version(&self) -> impl Future<Output = Result<i64, IndexError>> + Send {
        (**self).schema_version()
    }
}

/// Checks a lineage depth against [`MAX_LINEAGE_DEPTH`].
pub(crate) fn check_depth(depth: u32) -> Result<i32, IndexError> {
    if depth > MAX_LINEAGE_DEPTH {
        return Err(IndexError::InvalidArgument(format!(
            "depth {depth} is over the maximum of {MAX_LINEAGE_DEPTH}"
        )));
    }
    i32::try_from(depth).map_err(|_| IndexError::InvalidArgument("depth out of range".into()))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    #[test]
    fn index_urls() {
        assert_eq!(
            IndexUrl::parse("/var/lib/provenant/index.db").unwrap(),
            IndexUrl::Sqlite("/var/lib/provenant/index.db".into())
        );
        assert_eq!(
            IndexUrl::parse("sqlite:///var/lib/index.db").unwrap(),
            IndexUrl::Sqlite("/var/lib/index.db".into())
        );
        assert_eq!(
            IndexUrl::parse("sqlite://data/index.db").unwrap(),
            IndexUrl::Sqlite("data/index.db".into())
        );
        assert_eq!(
            IndexUrl::parse("sqlite:index.db").unwrap(),
            IndexUrl::Sqlite("index.db".into())
        );
        for pg in [
            "postgres://u@localhost/db",
            "postgresql://u:p@h:5433/db?sslmode=disable",
        ] {
            assert_eq!(IndexUrl::parse(pg).unwrap(), IndexUrl::Postgres(pg.into()));
        }
        for bad in [
            "",
            "sqlite://",
            "sqlite::memory:",
            "mysql://h/db",
            "s3://b/k",
        ] {
            assert!(IndexUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn postgres_passwords_never_reach_logs() {
        let u = IndexUrl::parse(
            "postgres://app:hunter2@db.internal:5432/prov?password=x&sslmode=disable",
        )
        .unwrap();
        let shown = u.redacted();
        assert_eq!(
            shown,
            "postgres://app:***@db.internal:5432/prov?password=***&sslmode=disable"
        );
        assert_eq!(
            postgres::redact_url("postgres://app@db/prov"),
            "postgres://app@db/prov"
        );
    }

    #[test]
    fn edge_orientation() {
        use provenant_schemas::Relation;
        for r in Relation::ALL {
            let down = matches!(
                r,
                Relation::InEnvironment | Relation::Writes | Relation::Approves
            );
            assert_eq!(target_is_upstream(r), !down, "{r:?}");
            assert_eq!(relation_target_is_upstream(r.as_str()), !down);
        }
    }
}
