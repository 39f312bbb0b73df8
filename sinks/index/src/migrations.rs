//! The index schema, as numbered migrations applied at open.
//!
//! One SQL text per migration serves both backends: `{blob}` is `BLOB` on SQLite and `BYTEA`
//! on PostgreSQL; everything else (`BIGINT`, `BOOLEAN`, `TEXT`, partial indexes,
//! `octet_length`) means the same on both. A migration runs in one transaction together with
//! its row in `schema_migrations`, so it is applied entirely or not at all; re-opening an index
//! that is up to date changes nothing. An index whose version is higher than [`LATEST`] was
//! written by a newer Provenant and is refused ([`crate::IndexError::SchemaTooNew`]).
//!
//! Rules for new migrations: append, never edit one that has shipped; keep each one valid on
//! both backends (the conformance suite opens both).

/// One migration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The highest version this build knows.
pub(crate) const LATEST: i64 = 1;

/// Creates the bookkeeping table (idempotent).
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events, entities, edges, markers, link resolutions, deployments, reader state",
    sql: V1,
}];

/// Entity keys are at most 2048 bytes: far above what valid events make (identifiers are at
/// most 512 bytes), and below PostgreSQL's b-tree entry limit (2704 bytes), so both backends
/// refuse the same keys.
const V1: &str = "
CREATE TABLE reader_state (
    partition INTEGER PRIMARY KEY,
    ledger_offset BIGINT NOT NULL,
    next_seq BIGINT NOT NULL,
    head_hash {blob} NOT NULL,
    fence_epoch BIGINT,
    fence_writer {blob},
    raw_offset BIGINT
);

CREATE TABLE events (
    partition INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    hash {blob} NOT NULL,
    raw_offset BIGINT NOT NULL,
    writer_epoch BIGINT NOT NULL,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    time TEXT,
    event_json TEXT NOT NULL,
    redactions_json TEXT NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX events_by_id ON events (id, source);
CREATE INDEX events_by_subject ON events (subject);

CREATE TABLE entities (
    key TEXT PRIMARY KEY CHECK (octet_length(key) <= 2048),
    type TEXT NOT NULL,
    namespace TEXT,
    name TEXT,
    observed BOOLEAN NOT NULL
);
CREATE INDEX entities_by_name ON entities (type, namespace, name);

CREATE TABLE edges (
    partition INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    ordinal INTEGER NOT NULL,
    down_key TEXT NOT NULL,
    relation TEXT NOT NULL,
    up_key TEXT NOT NULL,
    status TEXT CHECK (status IN ('resolved', 'pending')),
    target_partition INTEGER,
    target_seq BIGINT,
    target_hash {blob},
    resolved_by_seq BIGINT,
    PRIMARY KEY (partition, seq, ordinal)
);
CREATE INDEX edges_by_down ON edges (down_key, up_key);
CREATE INDEX edges_by_up ON edges (up_key, down_key);
CREATE INDEX edges_pending ON edges (partition, seq) WHERE status = 'pending';

CREATE TABLE markers (
    partition INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    raw_offset BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('rejected', 'duplicate')),
    reason_code TEXT,
    dlq_partition INTEGER,
    dlq_offset BIGINT,
    original_partition INTEGER,
    original_seq BIGINT,
    source TEXT,
    id TEXT,
    PRIMARY KEY (partition, seq)
);

CREATE TABLE resolutions (
    partition INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    resolves_seq BIGINT NOT NULL,
    relation TEXT NOT NULL,
    target TEXT NOT NULL,
    target_partition INTEGER NOT NULL,
    target_seq BIGINT NOT NULL,
    target_hash {blob} NOT NULL,
    matched BOOLEAN NOT NULL,
    PRIMARY KEY (partition, seq)
);

CREATE TABLE deployments (
    deploy_id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    artifact TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    deployed_at_us BIGINT NOT NULL,
    actor TEXT,
    previous_deploy_id TEXT,
    config_hash TEXT,
    partition INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    source TEXT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE INDEX deployments_by_service_env ON deployments (service, environment, deployed_at_us, deploy_id);

CREATE TABLE current_deployments (
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    deploy_id TEXT NOT NULL,
    PRIMARY KEY (service, environment)
);
CREATE INDEX current_deployments_by_env ON current_deployments (environment);
";

/// The migration's SQL for a backend (`blob` is `BLOB` or `BYTEA`).
pub(crate) fn render(m: &Migration, blob: &str) -> String {
    m.sql.replace("{blob}", blob)
}
