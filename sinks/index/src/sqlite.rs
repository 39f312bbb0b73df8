//! The SQLite backend: one file, the embedded default.
//!
//! One writer connection (serialized by a mutex; `BEGIN IMMEDIATE` per apply) and a small pool
//! of read-only connections, all in WAL mode, so queries never wait for the writer nor block
//! it. rusqlite is synchronous: every call runs on tokio's blocking pool.
//!
//! Durability: `synchronous = NORMAL`. In WAL mode a power loss may drop the last committed
//! transactions but never tears one; since the reader state is in the same transaction as the
//! rows, the index then simply resumes from an earlier state and replays (idempotent).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use provenant_schemas::validity::ReaderState;
use provenant_schemas::{EntityKey, LedgerRecord};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::migrations::{self, CREATE_MIGRATIONS_TABLE, LATEST, MIGRATIONS};
use crate::plan::{Batch, Prepared, Selection, StateRow, partition_i32};
use crate::read::{self, Cols, CoverageBuilder, LineageBuilder};
use crate::sql::{self, for_sqlite};
use crate::{
    ApplyStats, Coverage, Deployment, Direction, Index, IndexError, IndexedEvent, Lineage,
    MAX_LINEAGE_NODES, Stats, check_depth,
};

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 4;
/// How long a statement waits for a lock before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A SQLite index file.
#[derive(Clone)]
pub struct SqliteIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteIndex")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    q: Queries,
}

/// The shared SQL, rendered for SQLite once.
struct Queries {
    lineage_up: String,
    lineage_down: String,
    events_by_id: String,
    events_by_source_id: String,
    event_at: String,
    links_of: String,
    current_deployments: String,
    rollback_target: String,
    coverage: String,
    stats: String,
    missing_links: String,
    reader_state: String,
    store_state: String,
    schema_version: String,
}

impl Queries {
    fn new() -> Self {
        Self {
            lineage_up: for_sqlite(&sql::lineage(Direction::Up)),
            lineage_down: for_sqlite(&sql::lineage(Direction::Down)),
            events_by_id: for_sqlite(&sql::events_by_id()),
            events_by_source_id: for_sqlite(&sql::events_by_source_id()),
            event_at: for_sqlite(&sql::event_at()),
            links_of: for_sqlite(sql::LINKS_OF),
            current_deployments: for_sqlite(&sql::current_deployments()),
            rollback_target: for_sqlite(&sql::rollback_target()),
            coverage: for_sqlite(sql::COVERAGE),
            stats: for_sqlite(sql::STATS),
            missing_links: for_sqlite(sql::MISSING_LINKS),
            reader_state: for_sqlite(sql::READER_STATE),
            store_state: for_sqlite(sql::STORE_STATE),
            schema_version: for_sqlite(sql::SCHEMA_VERSION),
        }
    }
}

impl Cols for rusqlite::Row<'_> {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, IndexError> {
        self.get(i).map_err(|e| IndexError::sqlite("read row", e))
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, IndexError> {
        self.get(i).map_err(|e| IndexError::sqlite("read row", e))
    }
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, IndexError> {
        self.get(i).map_err(|e| IndexError::sqlite("read row", e))
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, IndexError> {
        self.get(i).map_err(|e| IndexError::sqlite("read row", e))
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<(), IndexError> {
    let op = || format!("configure {}", path.display());
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| IndexError::sqlite(op(), e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| IndexError::sqlite(op(), e))?;
    // 64 MiB of page cache per connection (the default is 2 MiB): the edge indexes of a
    // million-event index stay in memory.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(|e| IndexError::sqlite(op(), e))?;
    Ok(())
}

impl SqliteIndex {
    /// Opens (creating if needed) the index file at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| IndexError::Task(e.to_string()))?
    }

    fn open_blocking(path: PathBuf) -> Result<SqliteIndex, IndexError> {
        let op = || format!("open {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| IndexError::Database {
                backend: "sqlite",
                op: format!("create directory {}", dir.display()),
                retryable: false,
                detail: e.to_string(),
                source: Box::new(e),
            })?;
        }
        let mut conn = Connection::open(&path).map_err(|e| IndexError::sqlite(op(), e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| IndexError::sqlite(op(), e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "sqlite index is not in WAL mode; readers may wait for the writer");
        }
        configure(&conn, &path)?;
        migrate(&mut conn, &path)?;
        Ok(SqliteIndex {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(conn),
                readers: Mutex::new(Vec::new()),
                q: Queries::new(),
            }),
        })
    }

    /// The file this index lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Queries) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn, &inner.q)
        })
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Queries) -> Result<T, IndexError> + Send + 'static,
    ) -> Result<T, IndexError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let idle = inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut conn = match idle {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY
                            | OpenFlags::SQLITE_OPEN_NO_MUTEX
                            | OpenFlags::SQLITE_OPEN_URI,
                    )
                    .map_err(|e| {
                        IndexError::sqlite(format!("open reader {}", inner.path.display()), e)
                    })?;
                    configure(&c, &inner.path)?;
                    c
                }
            };
            let out = f(&mut conn, &inner.q);
            let mut idle = inner.readers.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| IndexError::Task(e.to_string()))?
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), IndexError> {
    let op = |what: &str| format!("migrate {}: {what}", path.display());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| IndexError::sqlite(op("begin"), e))?;
    tx.execute(CREATE_MIGRATIONS_TABLE, [])
        .map_err(|e| IndexError::sqlite(op("schema_migrations"), e))?;
    let current: i64 = tx
        .query_row(&for_sqlite(sql::SCHEMA_VERSION), [], |r| r.get(0))
        .map_err(|e| IndexError::sqlite(op("read version"), e))?;
    if current > LATEST {
        return Err(IndexError::SchemaTooNew {
            found: current,
            known: LATEST,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(&migrations::render(m, "BLOB"))
            .map_err(|e| IndexError::sqlite(op(&format!("version {}", m.version)), e))?;
        tx.execute(
            &for_sqlite(sql::RECORD_MIGRATION),
            params![m.version, m.name, chrono::Utc::now().to_rfc3339()],
        )
        .map_err(|e| IndexError::sqlite(op("record"), e))?;
        tracing::info!(path = %path.display(), version = m.version, "index migration applied");
    }
    tx.commit().map_err(|e| IndexError::sqlite(op("commit"), e))
}

fn read_state(
    conn: &Connection,
    q: &Queries,
    partition: i32,
) -> Result<Option<ReaderState>, IndexError> {
    let row = conn
        .query_row(&q.reader_state, params![partition], |r| {
            Ok(StateRow {
                ledger_offset: r.get(0)?,
                next_seq: r.get(1)?,
                head_hash: r.get(2)?,
                fence_epoch: r.get(3)?,
                fence_writer: r.get(4)?,
                raw_offset: r.get(5)?,
            })
        })
        .optional()
        .map_err(|e| IndexError::sqlite(format!("read state of partition {partition}"), e))?;
    row.map(|r| r.to_state()).transpose()
}

fn apply_blocking(
    conn: &mut Connection,
    q: &Queries,
    prepared: &Prepared,
) -> Result<ApplyStats, IndexError> {
    let p = prepared.partition_i32;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| IndexError::sqlite(format!("apply partition {p}: begin"), e))?;
    let stored = read_state(&tx, q, p)?;
    let batch = match prepared.select(stored.as_ref())? {
        Selection::Nothing { skipped } => {
            return Ok(ApplyStats {
                skipped,
                ..ApplyStats::default()
            });
        }
        Selection::Write(batch) => batch,
    };
    let op = match (batch.first_seq, batch.last_seq) {
        (Some(a), Some(b)) => format!("apply partition {p} seq {a}..={b}"),
        _ => format!("apply partition {p} (state only)"),
    };
    let err = |e| IndexError::sqlite(op.clone(), e);
    let unmatched = write_rows(&tx, p, &batch).map_err(err)?;
    let s = &prepared.state_row;
    tx.execute(
        &q.store_state,
        params![
            p,
            s.ledger_offset,
            s.next_seq,
            s.head_hash,
            s.fence_epoch,
            s.fence_writer,
            s.raw_offset
        ],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(ApplyStats {
        skipped: batch.skipped,
        written: batch.written,
        events: batch.events.len() as u64,
        edges: batch.edges.len() as u64,
        markers: batch.markers.len() as u64,
        link_resolutions: batch.resolutions.len() as u64,
        unmatched_resolutions: unmatched,
        state_moved: true,
    })
}

/// Writes a batch's rows; returns how many link resolutions matched no edge.
fn write_rows(tx: &rusqlite::Transaction<'_>, p: i32, b: &Batch) -> rusqlite::Result<u64> {
    let mut st = tx.prepare_cached(
        "INSERT INTO events (partition, seq, hash, raw_offset, writer_epoch, source, id, kind, subject, time, event_json, redactions_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
    )?;
    for e in &b.events {
        st.execute(params![
            p,
            e.seq,
            e.hash,
            e.raw_offset,
            e.writer_epoch,
            e.source,
            e.id,
            e.kind,
            e.subject,
            e.time,
            e.event_json,
            e.redactions_json
        ])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO entities (key, type, namespace, name, observed) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key) DO UPDATE SET observed = TRUE WHERE excluded.observed AND NOT entities.observed",
    )?;
    for e in &b.entities {
        st.execute(params![
            e.key,
            e.entity_type,
            e.namespace,
            e.name,
            e.observed
        ])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO edges (partition, seq, ordinal, down_key, relation, up_key, status, target_partition, target_seq, target_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
    )?;
    for e in &b.edges {
        st.execute(params![
            p,
            e.seq,
            e.ordinal,
            e.down_key,
            e.relation,
            e.up_key,
            e.status,
            e.target_partition,
            e.target_seq,
            e.target_hash
        ])?;
    }
    let mut unmatched = 0;
    let mut resolve = tx.prepare_cached(
        "UPDATE edges SET status = 'resolved', target_partition = ?1, target_seq = ?2, target_hash = ?3, resolved_by_seq = ?4
         WHERE partition = ?5 AND seq = ?6 AND relation = ?7
           AND (CASE WHEN ?8 THEN up_key ELSE down_key END) = ?9",
    )?;
    let mut record = tx.prepare_cached(
        "INSERT INTO resolutions (partition, seq, resolves_seq, relation, target, target_partition, target_seq, target_hash, matched)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
    )?;
    for r in &b.resolutions {
        let n = resolve.execute(params![
            r.target_partition,
            r.target_seq,
            r.target_hash,
            r.seq,
            p,
            r.resolves_seq,
            r.relation,
            r.target_is_up,
            r.target
        ])?;
        if n == 0 {
            unmatched += 1;
            tracing::warn!(
                partition = p,
                seq = r.seq,
                resolves_seq = r.resolves_seq,
                relation = r.relation,
                "link resolution names no edge in the index; counted"
            );
        }
        record.execute(params![
            p,
            r.seq,
            r.resolves_seq,
            r.relation,
            r.target,
            r.target_partition,
            r.target_seq,
            r.target_hash,
            n > 0
        ])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO markers (partition, seq, raw_offset, kind, reason_code, dlq_partition, dlq_offset, original_partition, original_seq, source, id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
    )?;
    for m in &b.markers {
        st.execute(params![
            p,
            m.seq,
            m.raw_offset,
            m.kind,
            m.reason_code,
            m.dlq_partition,
            m.dlq_offset,
            m.original_partition,
            m.original_seq,
            m.source,
            m.id
        ])?;
    }
    let mut st = tx.prepare_cached(UPSERT_DEPLOYMENT)?;
    for d in &b.deployments {
        st.execute(params![
            d.deploy_id,
            d.service,
            d.environment,
            d.artifact,
            d.deployed_at,
            d.deployed_at_us,
            d.actor,
            d.previous_deploy_id,
            d.config_hash,
            p,
            d.seq,
            d.source,
            d.event_id
        ])?;
    }
    let mut st = tx.prepare_cached(
        "INSERT INTO current_deployments (service, environment, deploy_id)
         SELECT service, environment, deploy_id FROM deployments WHERE service = ?1 AND environment = ?2
         ORDER BY deployed_at_us DESC, deploy_id DESC LIMIT 1
         ON CONFLICT (service, environment) DO UPDATE SET deploy_id = excluded.deploy_id",
    )?;
    let pairs: std::collections::BTreeSet<(&str, &str)> = b
        .deployments
        .iter()
        .map(|d| (d.service.as_str(), d.environment.as_str()))
        .collect();
    for (service, env) in pairs {
        st.execute(params![service, env])?;
    }
    Ok(unmatched)
}

/// Upserts one deployment; a later record of the same deploy id wins.
pub(crate) const UPSERT_DEPLOYMENT: &str = "INSERT INTO deployments (deploy_id, service, environment, artifact, deployed_at, deployed_at_us, actor, previous_deploy_id, config_hash, partition, seq, source, event_id)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (deploy_id) DO UPDATE SET service = excluded.service, environment = excluded.environment,
  artifact = excluded.artifact, deployed_at = excluded.deployed_at, deployed_at_us = excluded.deployed_at_us,
  actor = excluded.actor, previous_deploy_id = excluded.previous_deploy_id, config_hash = excluded.config_hash,
  partition = excluded.partition, seq = excluded.seq, source = excluded.source, event_id = excluded.event_id
WHERE (excluded.partition, excluded.seq) > (deployments.partition, deployments.seq)";

fn events_with_links(
    conn: &mut Connection,
    q: &Queries,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<IndexedEvent>, IndexError> {
    let err = |e| IndexError::sqlite("event lookup", e);
    let tx = conn.transaction().map_err(err)?;
    let mut out = Vec::new();
    {
        let mut st = tx.prepare_cached(sql).map_err(err)?;
        let mut rows = st.query(params).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            out.push(read::event(row)?);
        }
        let mut st = tx.prepare_cached(&q.links_of).map_err(err)?;
        for e in &mut out {
            let p = partition_i32(e.position.partition)?;
            let mut rows = st.query(params![p, e.position.seq]).map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                e.links.push(read::link(row)?);
            }
        }
    }
    tx.commit().map_err(err)?;
    Ok(out)
}

impl Index for SqliteIndex {
    async fn reader_state(&self, partition: u32) -> Result<Option<ReaderState>, IndexError> {
        let p = partition_i32(partition)?;
        self.read(move |conn, q| read_state(conn, q, p)).await
    }

    async fn apply(
        &self,
        partition: u32,
        records: &[LedgerRecord],
        state: &ReaderState,
    ) -> Result<ApplyStats, IndexError> {
        // Turning records into rows (JSON, hashes) is CPU work: do it on the blocking pool
        // too, not on the async runtime.
        let records = records.to_vec();
        let state = *state;
        self.write(move |conn, q| {
            let prepared = Prepared::new(partition, &records, &state)?;
            apply_blocking(conn, q, &prepared)
        })
        .await
    }

    async fn lineage(
        &self,
        entity: &EntityKey,
        direction: Direction,
        depth: u32,
    ) -> Result<Lineage, IndexError> {
        let d = check_depth(depth)?;
        let root = entity.to_string();
        self.read(move |conn, q| {
            let err = |e| IndexError::sqlite("lineage", e);
            let sql = match direction {
                Direction::Up => &q.lineage_up,
                Direction::Down => &q.lineage_down,
            };
            let mut st = conn.prepare_cached(sql).map_err(err)?;
            let mut rows = st.query(params![root, d, MAX_LINEAGE_NODES]).map_err(err)?;
            let mut b = LineageBuilder::new(root.clone(), direction, depth, MAX_LINEAGE_NODES);
            while let Some(row) = rows.next().map_err(err)? {
                b.row(row)?;
            }
            b.finish()
        })
        .await
    }

    async fn event(&self, id: &str, source: Option<&str>) -> Result<Vec<IndexedEvent>, IndexError> {
        let id = id.to_owned();
        let source = source.map(str::to_owned);
        self.read(move |conn, q| match &source {
            Some(s) => events_with_links(conn, q, &q.events_by_source_id, params![id, s]),
            None => events_with_links(conn, q, &q.events_by_id, params![id]),
        })
        .await
    }

    async fn event_at(&self, partition: u32, seq: i64) -> Result<Option<IndexedEvent>, IndexError> {
        let p = partition_i32(partition)?;
        self.read(move |conn, q| {
            Ok(events_with_links(conn, q, &q.event_at, params![p, seq])?
                .into_iter()
                .next())
        })
        .await
    }

    async fn deployments(&self, env: Option<&str>) -> Result<Vec<Deployment>, IndexError> {
        let env = env.map(str::to_owned);
        self.read(move |conn, q| {
            let err = |e| IndexError::sqlite("deployments", e);
            let mut st = conn.prepare_cached(&q.current_deployments).map_err(err)?;
            let mut rows = st.query(params![env]).map_err(err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(err)? {
                out.push(read::deployment(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn rollback_target(
        &self,
        service: &str,
        env: &str,
    ) -> Result<Option<Deployment>, IndexError> {
        let (service, env) = (service.to_owned(), env.to_owned());
        self.read(move |conn, q| {
            let err = |e| IndexError::sqlite("rollback target", e);
            let mut st = conn.prepare_cached(&q.rollback_target).map_err(err)?;
            let mut rows = st.query(params![service, env]).map_err(err)?;
            match rows.next().map_err(err)? {
                Some(row) => Ok(Some(read::deployment(row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn coverage(&self) -> Result<Coverage, IndexError> {
        self.read(move |conn, q| {
            let err = |e| IndexError::sqlite("coverage", e);
            let mut st = conn.prepare_cached(&q.coverage).map_err(err)?;
            let mut rows = st.query([]).map_err(err)?;
            let mut b = CoverageBuilder::default();
            while let Some(row) = rows.next().map_err(err)? {
                b.row(row)?;
            }
            Ok(b.finish())
        })
        .await
    }

    async fn stats(&self) -> Result<Stats, IndexError> {
        self.read(move |conn, q| {
            let err = |e| IndexError::sqlite("stats", e);
            let mut st = conn.prepare_cached(&q.stats).map_err(err)?;
            let mut rows = st.query([]).map_err(err)?;
            match rows.next().map_err(err)? {
                Some(row) => read::stats(row),
                None => Err(IndexError::Corrupt("stats returned no row".into())),
            }
        })
        .await
    }

    async fn missing_links(&self) -> Result<u64, IndexError> {
        self.read(move |conn, q| {
            let n: i64 = conn
                .query_row(&q.missing_links, [], |r| r.get(0))
                .map_err(|e| IndexError::sqlite("missing links", e))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn schema_version(&self) -> Result<i64, IndexError> {
        self.read(move |conn, q| {
            conn.query_row(&q.schema_version, [], |r| r.get(0))
                .map_err(|e| IndexError::sqlite("schema version", e))
        })
        .await
    }
}
