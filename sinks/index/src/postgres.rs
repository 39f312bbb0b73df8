//! The PostgreSQL backend: the index at scale, shared by several processes.
//!
//! One writer connection (a mutex around it; each apply is one transaction holding a
//! per-partition advisory lock, so two processes applying the same partition take turns)
//! and a few reader connections used round robin; queries pipeline on them. A connection
//! that broke is replaced on the next call. Statements are prepared once per connection.
//!
//! A batch is written with one statement per table, rows passed as arrays and expanded with
//! `unnest`, so a 10,000-record batch costs a handful of round trips, not tens of thousands.
//! Entity and current-deployment upserts go in key order, so concurrent writers of different
//! partitions lock shared rows in the same order and do not deadlock.
//!
//! TLS is not supported yet (`NoTls`): use a local socket, a loopback address or a trusted
//! network, or put a TLS proxy in front.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use provenant_schemas::validity::ReaderState;
use provenant_schemas::{EntityKey, LedgerRecord};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, NoTls, Statement};

use crate::migrations::{self, CREATE_MIGRATIONS_TABLE, LATEST, MIGRATIONS};
use crate::plan::{Batch, Prepared, Selection, StateRow, partition_i32};
use crate::read::{self, Cols, CoverageBuilder, LineageBuilder};
use crate::sql;
use crate::{
    ApplyStats, Coverage, Deployment, Direction, Index, IndexError, IndexedEvent, Lineage,
    MAX_LINEAGE_NODES, Stats, check_depth,
};

/// Reader connections.
const READERS: usize = 4;
/// The first key of the advisory locks this index takes (`pg_advisory_xact_lock(int, int)`):
/// "prov" in ASCII. The second key is the partition, or -1 for migrations.
const LOCK_CLASS: i32 = 0x7072_6f76;

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    cache: Cache,
}

type Cache = Mutex<HashMap<String, Statement>>;

/// `sql` prepared on `client`'s connection, once.
async fn statement<C: GenericClient + Sync>(
    cache: &Cache,
    client: &C,
    sql: &str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(s) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(sql)
    {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).await?;
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(sql.to_owned(), s.clone());
    Ok(s)
}

impl Conn {
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let st = statement(&self.cache, &self.client, sql).await?;
        self.client.query(&st, params).await
    }
}

/// A PostgreSQL index.
pub struct PostgresIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresIndex")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// For logs and errors: the password masked.
    url: String,
    config: tokio_postgres::Config,
    writer: tokio::sync::Mutex<Option<Conn>>,
    readers: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next_reader: AtomicUsize,
    q: Queries,
}

struct Queries {
    lineage_up: String,
    lineage_down: String,
    events_by_id: String,
    events_by_source_id: String,
    event_at: String,
    current_deployments: String,
    rollback_target: String,
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db` (and `password=` in the
/// query string).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<postgres url>".into();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl Cols for tokio_postgres::Row {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, IndexError> {
        let ty = self.columns().get(i).map(|c| c.type_().clone());
        let r = match ty {
            Some(Type::INT4) => self.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)),
            Some(Type::INT2) => self.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)),
            _ => self.try_get::<_, Option<i64>>(i),
        };
        r.map_err(|e| IndexError::postgres("read row", e))
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, IndexError> {
        self.try_get(i)
            .map_err(|e| IndexError::postgres("read row", e))
    }
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, IndexError> {
        self.try_get(i)
            .map_err(|e| IndexError::postgres("read row", e))
    }
    fn opt_flag(&self, i: usize) -> Result<Option<bool>, IndexError> {
        self.try_get(i)
            .map_err(|e| IndexError::postgres("read row", e))
    }
}

impl PostgresIndex {
    /// Connects to `url` (a `postgres://` URL as libpq reads it) and applies pending
    /// migrations.
    pub async fn open(url: &str) -> Result<PostgresIndex, IndexError> {
        let redacted = redact_url(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| IndexError::Url {
            url: redacted.clone(),
            reason: format!("{e}"),
        })?;
        let inner = Arc::new(Inner {
            url: redacted,
            config,
            writer: tokio::sync::Mutex::new(None),
            readers: (0..READERS)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next_reader: AtomicUsize::new(0),
            q: Queries {
                lineage_up: sql::lineage(Direction::Up),
                lineage_down: sql::lineage(Direction::Down),
                events_by_id: sql::events_by_id(),
                events_by_source_id: sql::events_by_source_id(),
                event_at: sql::event_at(),
                current_deployments: sql::current_deployments(),
                rollback_target: sql::rollback_target(),
            },
        });
        let index = PostgresIndex { inner };
        index.migrate().await?;
        Ok(index)
    }

    async fn connect(&self) -> Result<Conn, IndexError> {
        let (client, connection) = self
            .inner
            .config
            .connect(NoTls)
            .await
            .map_err(|e| IndexError::postgres(format!("connect to {}", self.inner.url), e))?;
        let url = self.inner.url.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(url, error = %e, "postgres index connection ended");
            }
        });
        Ok(Conn {
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Conn>>, IndexError> {
        let mut guard = self.inner.writer.lock().await;
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = Some(self.connect().await?);
        }
        Ok(guard)
    }

    async fn reader(&self) -> Result<Arc<Conn>, IndexError> {
        let i = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        let Some(slot) = self.inner.readers.get(i) else {
            return Err(IndexError::Task("no reader slot".into()));
        };
        let mut slot = slot.lock().await;
        match slot.as_ref() {
            Some(c) if !c.client.is_closed() => Ok(Arc::clone(c)),
            _ => {
                let c = Arc::new(self.connect().await?);
                *slot = Some(Arc::clone(&c));
                Ok(c)
            }
        }
    }

    async fn migrate(&self) -> Result<(), IndexError> {
        let url = self.inner.url.clone();
        let op = |what: &str| format!("migrate {url}: {what}");
        let mut guard = self.writer().await?;
        let Some(conn) = guard.as_mut() else {
            return Err(IndexError::Task("writer connection missing".into()));
        };
        let tx = conn
            .client
            .transaction()
            .await
            .map_err(|e| IndexError::postgres(op("begin"), e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1, -1)", &[&LOCK_CLASS])
            .await
            .map_err(|e| IndexError::postgres(op("lock"), e))?;
        tx.batch_execute(CREATE_MIGRATIONS_TABLE)
            .await
            .map_err(|e| IndexError::postgres(op("schema_migrations"), e))?;
        let current: i64 = tx
            .query_one(sql::SCHEMA_VERSION, &[])
            .await
            .map_err(|e| IndexError::postgres(op("read version"), e))?
            .try_get(0)
            .map_err(|e| IndexError::postgres(op("read version"), e))?;
        if current > LATEST {
            return Err(IndexError::SchemaTooNew {
                found: current,
                known: LATEST,
            });
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.batch_execute(&migrations::render(m, "BYTEA"))
                .await
                .map_err(|e| IndexError::postgres(op(&format!("version {}", m.version)), e))?;
            tx.execute(
                sql::RECORD_MIGRATION,
                &[&m.version, &m.name, &chrono::Utc::now().to_rfc3339()],
            )
            .await
            .map_err(|e| IndexError::postgres(op("record"), e))?;
            tracing::info!(url = %self.inner.url, version = m.version, "index migration applied");
        }
        tx.commit()
            .await
            .map_err(|e| IndexError::postgres(op("commit"), e))
    }

    async fn read_state<C: GenericClient + Sync>(
        cache: &Cache,
        client: &C,
        partition: i32,
    ) -> Result<Option<ReaderState>, IndexError> {
        let err = |e| IndexError::postgres(format!("read state of partition {partition}"), e);
        let st = statement(cache, client, sql::READER_STATE)
            .await
            .map_err(err)?;
        let rows = client.query(&st, &[&partition]).await.map_err(err)?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let row = StateRow {
            ledger_offset: r.try_get(0).map_err(err)?,
            next_seq: r.try_get(1).map_err(err)?,
            head_hash: r.try_get(2).map_err(err)?,
            fence_epoch: r.try_get(3).map_err(err)?,
            fence_writer: r.try_get(4).map_err(err)?,
            raw_offset: r.try_get(5).map_err(err)?,
        };
        row.to_state().map(Some)
    }

    async fn events_with_links(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<IndexedEvent>, IndexError> {
        let err = |e| IndexError::postgres("event lookup", e);
        let conn = self.reader().await?;
        let rows = conn.query(sql, params).await.map_err(err)?;
        let mut out = rows
            .iter()
            .map(read::event)
            .collect::<Result<Vec<_>, _>>()?;
        for e in &mut out {
            let p = partition_i32(e.position.partition)?;
            let rows = conn
                .query(sql::LINKS_OF, &[&p, &e.position.seq])
                .await
                .map_err(err)?;
            for row in &rows {
                e.links.push(read::link(row)?);
            }
        }
        Ok(out)
    }
}

/// Writes a batch's rows in the transaction; returns how many link resolutions matched no
/// edge.
async fn write_rows(
    cache: &Cache,
    tx: &tokio_postgres::Transaction<'_>,
    p: i32,
    b: &Batch,
) -> Result<u64, tokio_postgres::Error> {
    let run = |sql: &'static str| async move { statement(cache, tx, sql).await };
    if !b.events.is_empty() {
        let st = run("INSERT INTO events (partition, seq, hash, raw_offset, writer_epoch, source, id, kind, subject, time, event_json, redactions_json)
            SELECT CAST($1 AS INTEGER), * FROM unnest($2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
            ON CONFLICT DO NOTHING").await?;
        let e = &b.events;
        tx.execute(
            &st,
            &[
                &p,
                &e.iter().map(|x| x.seq).collect::<Vec<_>>(),
                &e.iter().map(|x| x.hash.as_slice()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.raw_offset).collect::<Vec<_>>(),
                &e.iter().map(|x| x.writer_epoch).collect::<Vec<_>>(),
                &e.iter().map(|x| x.source.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.kind).collect::<Vec<_>>(),
                &e.iter().map(|x| x.subject.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.time.as_deref()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.event_json.as_str()).collect::<Vec<_>>(),
                &e.iter()
                    .map(|x| x.redactions_json.as_str())
                    .collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    if !b.entities.is_empty() {
        let st = run("INSERT INTO entities (key, type, namespace, name, observed)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[])
            ON CONFLICT (key) DO UPDATE SET observed = TRUE WHERE excluded.observed AND NOT entities.observed").await?;
        let e = &b.entities;
        tx.execute(
            &st,
            &[
                &e.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.entity_type).collect::<Vec<_>>(),
                &e.iter().map(|x| x.namespace.as_deref()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.name.as_deref()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.observed).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    if !b.edges.is_empty() {
        let st = run("INSERT INTO edges (partition, seq, ordinal, down_key, relation, up_key, status, target_partition, target_seq, target_hash)
            SELECT CAST($1 AS INTEGER), * FROM unnest($2::bigint[], $3::integer[], $4::text[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::bigint[], $10::bytea[])
            ON CONFLICT DO NOTHING").await?;
        let e = &b.edges;
        tx.execute(
            &st,
            &[
                &p,
                &e.iter().map(|x| x.seq).collect::<Vec<_>>(),
                &e.iter().map(|x| x.ordinal).collect::<Vec<_>>(),
                &e.iter().map(|x| x.down_key.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.relation).collect::<Vec<_>>(),
                &e.iter().map(|x| x.up_key.as_str()).collect::<Vec<_>>(),
                &e.iter().map(|x| x.status).collect::<Vec<_>>(),
                &e.iter().map(|x| x.target_partition).collect::<Vec<_>>(),
                &e.iter().map(|x| x.target_seq).collect::<Vec<_>>(),
                &e.iter()
                    .map(|x| x.target_hash.as_deref())
                    .collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    let mut unmatched = 0;
    if !b.resolutions.is_empty() {
        let r = &b.resolutions;
        let st = run("UPDATE edges e SET status = 'resolved', target_partition = r.target_partition,
              target_seq = r.target_seq, target_hash = r.target_hash, resolved_by_seq = r.seq
            FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::boolean[], $7::integer[], $8::bigint[], $9::bytea[])
              AS r(seq, resolves_seq, relation, target, target_is_up, target_partition, target_seq, target_hash)
            WHERE e.partition = $1 AND e.seq = r.resolves_seq AND e.relation = r.relation
              AND (CASE WHEN r.target_is_up THEN e.up_key ELSE e.down_key END) = r.target
            RETURNING r.seq").await?;
        let seqs = r.iter().map(|x| x.seq).collect::<Vec<_>>();
        let matched_rows = tx
            .query(
                &st,
                &[
                    &p,
                    &seqs,
                    &r.iter().map(|x| x.resolves_seq).collect::<Vec<_>>(),
                    &r.iter().map(|x| x.relation).collect::<Vec<_>>(),
                    &r.iter().map(|x| x.target.as_str()).collect::<Vec<_>>(),
                    &r.iter().map(|x| x.target_is_up).collect::<Vec<_>>(),
                    &r.iter().map(|x| x.target_partition).collect::<Vec<_>>(),
                    &r.iter().map(|x| x.target_seq).collect::<Vec<_>>(),
                    &r.iter()
                        .map(|x| x.target_hash.as_slice())
                        .collect::<Vec<_>>(),
                ],
            )
            .await?;
        let mut matched = BTreeSet::new();
        for row in &matched_rows {
            matched.insert(row.try_get::<_, i64>(0)?);
        }
        let flags: Vec<bool> = r.iter().map(|x| matched.contains(&x.seq)).collect();
        for x in r.iter().filter(|x| !matched.contains(&x.seq)) {
            unmatched += 1;
            tracing::warn!(
                partition = p,
                seq = x.seq,
                resolves_seq = x.resolves_seq,
                relation = x.relation,
                "link resolution names no edge in the index; counted"
            );
        }
        let st = run("INSERT INTO resolutions (partition, seq, resolves_seq, relation, target, target_partition, target_seq, target_hash, matched)
            SELECT CAST($1 AS INTEGER), * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::integer[], $7::bigint[], $8::bytea[], $9::boolean[])
            ON CONFLICT DO NOTHING").await?;
        tx.execute(
            &st,
            &[
                &p,
                &seqs,
                &r.iter().map(|x| x.resolves_seq).collect::<Vec<_>>(),
                &r.iter().map(|x| x.relation).collect::<Vec<_>>(),
                &r.iter().map(|x| x.target.as_str()).collect::<Vec<_>>(),
                &r.iter().map(|x| x.target_partition).collect::<Vec<_>>(),
                &r.iter().map(|x| x.target_seq).collect::<Vec<_>>(),
                &r.iter()
                    .map(|x| x.target_hash.as_slice())
                    .collect::<Vec<_>>(),
                &flags,
            ],
        )
        .await?;
    }
    if !b.markers.is_empty() {
        let st = run("INSERT INTO markers (partition, seq, raw_offset, kind, reason_code, dlq_partition, dlq_offset, original_partition, original_seq, source, id)
            SELECT CAST($1 AS INTEGER), * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::integer[], $7::bigint[], $8::integer[], $9::bigint[], $10::text[], $11::text[])
            ON CONFLICT DO NOTHING").await?;
        let m = &b.markers;
        tx.execute(
            &st,
            &[
                &p,
                &m.iter().map(|x| x.seq).collect::<Vec<_>>(),
                &m.iter().map(|x| x.raw_offset).collect::<Vec<_>>(),
                &m.iter().map(|x| x.kind).collect::<Vec<_>>(),
                &m.iter()
                    .map(|x| x.reason_code.as_deref())
                    .collect::<Vec<_>>(),
                &m.iter().map(|x| x.dlq_partition).collect::<Vec<_>>(),
                &m.iter().map(|x| x.dlq_offset).collect::<Vec<_>>(),
                &m.iter().map(|x| x.original_partition).collect::<Vec<_>>(),
                &m.iter().map(|x| x.original_seq).collect::<Vec<_>>(),
                &m.iter().map(|x| x.source.as_deref()).collect::<Vec<_>>(),
                &m.iter().map(|x| x.id.as_deref()).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    if !b.deployments.is_empty() {
        let st = run("INSERT INTO deployments (deploy_id, service, environment, artifact, deployed_at, deployed_at_us, actor, previous_deploy_id, config_hash, partition, seq, source, event_id)
            SELECT d.deploy_id, d.service, d.environment, d.artifact, d.deployed_at, d.deployed_at_us, d.actor, d.previous_deploy_id, d.config_hash, CAST($1 AS INTEGER), d.seq, d.source, d.event_id
            FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[])
              AS d(deploy_id, service, environment, artifact, deployed_at, deployed_at_us, actor, previous_deploy_id, config_hash, seq, source, event_id)
            ON CONFLICT (deploy_id) DO UPDATE SET service = excluded.service, environment = excluded.environment,
              artifact = excluded.artifact, deployed_at = excluded.deployed_at, deployed_at_us = excluded.deployed_at_us,
              actor = excluded.actor, previous_deploy_id = excluded.previous_deploy_id, config_hash = excluded.config_hash,
              partition = excluded.partition, seq = excluded.seq, source = excluded.source, event_id = excluded.event_id
            WHERE (excluded.partition, excluded.seq) > (deployments.partition, deployments.seq)").await?;
        let d = &b.deployments;
        tx.execute(
            &st,
            &[
                &p,
                &d.iter().map(|x| x.deploy_id.as_str()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.service.as_str()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.environment.as_str()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.artifact.as_str()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.deployed_at.as_str()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.deployed_at_us).collect::<Vec<_>>(),
                &d.iter().map(|x| x.actor.as_deref()).collect::<Vec<_>>(),
                &d.iter()
                    .map(|x| x.previous_deploy_id.as_deref())
                    .collect::<Vec<_>>(),
                &d.iter()
                    .map(|x| x.config_hash.as_deref())
                    .collect::<Vec<_>>(),
                &d.iter().map(|x| x.seq).collect::<Vec<_>>(),
                &d.iter().map(|x| x.source.as_str()).collect::<Vec<_>>(),
                &d.iter().map(|x| x.event_id.as_str()).collect::<Vec<_>>(),
            ],
        )
        .await?;
        let pairs: BTreeSet<(&str, &str)> = d
            .iter()
            .map(|x| (x.service.as_str(), x.environment.as_str()))
            .collect();
        let st = run(
            "INSERT INTO current_deployments (service, environment, deploy_id)
            SELECT p.service, p.environment, l.deploy_id
            FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS p(service, environment, n)
            CROSS JOIN LATERAL (SELECT deploy_id FROM deployments d
                WHERE d.service = p.service AND d.environment = p.environment
                ORDER BY d.deployed_at_us DESC, d.deploy_id DESC LIMIT 1) l
            ORDER BY p.n
            ON CONFLICT (service, environment) DO UPDATE SET deploy_id = excluded.deploy_id",
        )
        .await?;
        tx.execute(
            &st,
            &[
                &pairs.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                &pairs.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
            ],
        )
        .await?;
    }
    Ok(unmatched)
}

/// One apply, in `tx` (see [`Index::apply`]).
async fn apply_in(
    tx: tokio_postgres::Transaction<'_>,
    cache: &Cache,
    prepared: &Prepared,
) -> Result<ApplyStats, IndexError> {
    let p = prepared.partition_i32;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_CLASS, &p])
        .await
        .map_err(|e| IndexError::postgres(format!("apply partition {p}: lock"), e))?;
    let stored = PostgresIndex::read_state(cache, &tx, p).await?;
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
    let err = |e| IndexError::postgres(op.clone(), e);
    let unmatched = write_rows(cache, &tx, p, &batch).await.map_err(err)?;
    let s = &prepared.state_row;
    let st = statement(cache, &tx, sql::STORE_STATE).await.map_err(err)?;
    tx.execute(
        &st,
        &[
            &p,
            &s.ledger_offset,
            &s.next_seq,
            &s.head_hash,
            &s.fence_epoch,
            &s.fence_writer,
            &s.raw_offset,
        ],
    )
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
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

impl Index for PostgresIndex {
    async fn reader_state(&self, partition: u32) -> Result<Option<ReaderState>, IndexError> {
        let p = partition_i32(partition)?;
        let conn = self.reader().await?;
        Self::read_state(&conn.cache, &conn.client, p).await
    }

    async fn apply(
        &self,
        partition: u32,
        records: &[LedgerRecord],
        state: &ReaderState,
    ) -> Result<ApplyStats, IndexError> {
        let prepared = Prepared::new(partition, records, state)?;
        let p = prepared.partition_i32;
        let mut guard = self.writer().await?;
        let Some(conn) = guard.as_mut() else {
            return Err(IndexError::Task("writer connection missing".into()));
        };
        let Conn { client, cache } = conn;
        let tx = client
            .transaction()
            .await
            .map_err(|e| IndexError::postgres(format!("apply partition {p}: begin"), e))?;
        apply_in(tx, cache, &prepared).await
    }

    async fn lineage(
        &self,
        entity: &EntityKey,
        direction: Direction,
        depth: u32,
    ) -> Result<Lineage, IndexError> {
        let d = check_depth(depth)?;
        let root = entity.to_string();
        let sql = match direction {
            Direction::Up => &self.inner.q.lineage_up,
            Direction::Down => &self.inner.q.lineage_down,
        };
        let conn = self.reader().await?;
        let rows = conn
            .query(sql, &[&root, &d, &MAX_LINEAGE_NODES])
            .await
            .map_err(|e| IndexError::postgres("lineage", e))?;
        let mut b = LineageBuilder::new(root, direction, depth, MAX_LINEAGE_NODES);
        for row in &rows {
            b.row(row)?;
        }
        b.finish()
    }

    async fn event(&self, id: &str, source: Option<&str>) -> Result<Vec<IndexedEvent>, IndexError> {
        match source {
            Some(s) => {
                self.events_with_links(&self.inner.q.events_by_source_id, &[&id, &s])
                    .await
            }
            None => {
                self.events_with_links(&self.inner.q.events_by_id, &[&id])
                    .await
            }
        }
    }

    async fn event_at(&self, partition: u32, seq: i64) -> Result<Option<IndexedEvent>, IndexError> {
        let p = partition_i32(partition)?;
        Ok(self
            .events_with_links(&self.inner.q.event_at, &[&p, &seq])
            .await?
            .into_iter()
            .next())
    }

    async fn deployments(&self, env: Option<&str>) -> Result<Vec<Deployment>, IndexError> {
        let conn = self.reader().await?;
        let rows = conn
            .query(&self.inner.q.current_deployments, &[&env])
            .await
            .map_err(|e| IndexError::postgres("deployments", e))?;
        rows.iter().map(read::deployment).collect()
    }

    async fn rollback_target(
        &self,
        service: &str,
        env: &str,
    ) -> Result<Option<Deployment>, IndexError> {
        let conn = self.reader().await?;
        let rows = conn
            .query(&self.inner.q.rollback_target, &[&service, &env])
            .await
            .map_err(|e| IndexError::postgres("rollback target", e))?;
        rows.first().map(read::deployment).transpose()
    }

    async fn coverage(&self) -> Result<Coverage, IndexError> {
        let conn = self.reader().await?;
        let rows = conn
            .query(sql::COVERAGE, &[])
            .await
            .map_err(|e| IndexError::postgres("coverage", e))?;
        let mut b = CoverageBuilder::default();
        for row in &rows {
            b.row(row)?;
        }
        Ok(b.finish())
    }

    async fn stats(&self) -> Result<Stats, IndexError> {
        let conn = self.reader().await?;
        let rows = conn
            .query(sql::STATS, &[])
            .await
            .map_err(|e| IndexError::postgres("stats", e))?;
        match rows.first() {
            Some(row) => read::stats(row),
            None => Err(IndexError::Corrupt("stats returned no row".into())),
        }
    }

    async fn missing_links(&self) -> Result<u64, IndexError> {
        let conn = self.reader().await?;
        let rows = conn
            .query(sql::MISSING_LINKS, &[])
            .await
            .map_err(|e| IndexError::postgres("missing links", e))?;
        match rows.first() {
            Some(row) => row.count(0),
            None => Ok(0),
        }
    }

    async fn schema_version(&self) -> Result<i64, IndexError> {
        let conn = self.reader().await?;
        let rows = conn
            .query(sql::SCHEMA_VERSION, &[])
            .await
            .map_err(|e| IndexError::postgres("schema version", e))?;
        match rows.first() {
            Some(row) => row.int(0),
            None => Ok(0),
        }
    }
}
