//! The query SQL, written once for both backends with `$n` placeholders (SQLite reads them
//! as `?n`, see [`for_sqlite`]). Writes differ (PostgreSQL writes a batch with `unnest`
//! arrays, SQLite row by row with cached statements) and live with each backend.
//!
//! The lineage walk is a depth-limited recursive CTE over `edges`, keyed by the end nearer
//! the root (`down_key` walking up, `up_key` walking down, each with a covering index). Its
//! rows are `(key, depth)` joined with `UNION`, which drops a row already produced, so a cycle
//! adds nothing new after one turn and the walk ends at the depth limit whatever the graph;
//! `LIMIT $3` caps the rows it may produce (both engines evaluate the walk breadth first, so
//! the nodes kept are the nearest). One statement returns both the nodes (part 0) and the
//! edges between them with the event behind each (part 1), so the answer is one snapshot.
//! The edge part is written with `CROSS JOIN`: SQLite keeps that join order (nodes outside,
//! then the index on the near key), where it would otherwise scan `edges` whole because it
//! cannot tell how small `nodes` is; PostgreSQL reads it as a plain inner join.

use crate::Direction;

/// `$n` → `?n` (SQLite's numbered parameters). The SQL here holds no `$` elsewhere.
pub(crate) fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// The lineage statement: `$1` root key, `$2` depth (int4), `$3` row cap (int8).
///
/// Columns: 0 part (0 node, 1 edge); 1 node key | edge down_key; 2 depth (of the node | of
/// the edge's near end); 3 type | relation; 4 namespace | up_key; 5 name | event source;
/// 6 observed | null; 7 event id; 8 partition; 9 seq; 10 event hash; 11 status;
/// 12 target partition; 13 target seq; 14 target hash; 15 resolved_by_seq; 16 rows walked.
pub(crate) fn lineage(direction: Direction) -> String {
    let (near, far) = match direction {
        Direction::Up => ("down_key", "up_key"),
        Direction::Down => ("up_key", "down_key"),
    };
    format!(
        "WITH RECURSIVE walk(key, depth) AS (
    SELECT CAST($1 AS TEXT), 0
    UNION
    SELECT e.{far}, w.depth + 1 FROM walk w JOIN edges e ON e.{near} = w.key WHERE w.depth < $2
),
limited AS (SELECT key, depth FROM walk LIMIT $3),
nodes AS (SELECT key, MIN(depth) AS depth FROM limited GROUP BY key),
walked AS (SELECT COUNT(*) AS n FROM limited)
SELECT 0, n.key, n.depth, t.type, t.namespace, t.name, t.observed,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT n FROM walked)
FROM nodes n LEFT JOIN entities t ON t.key = n.key
UNION ALL
SELECT 1, e.down_key, n.depth, e.relation, e.up_key, v.source, NULL,
       v.id, e.partition, e.seq, v.hash, e.status, e.target_partition, e.target_seq,
       e.target_hash, e.resolved_by_seq, NULL
FROM nodes n CROSS JOIN edges e CROSS JOIN nodes m CROSS JOIN events v
WHERE e.{near} = n.key AND m.key = e.{far} AND v.partition = e.partition AND v.seq = e.seq
  AND n.depth < $2"
    )
}

const EVENT_COLUMNS: &str = "partition, seq, hash, raw_offset, writer_epoch, source, id, kind, subject, event_json, redactions_json";

/// Events by id (`$1`), any source.
pub(crate) fn events_by_id() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 ORDER BY partition, seq")
}

/// Events by id (`$1`) and source (`$2`).
pub(crate) fn events_by_source_id() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND source = $2 ORDER BY partition, seq"
    )
}

/// One event by position (`$1` partition, `$2` seq): a primary-key lookup.
pub(crate) fn event_at() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE partition = $1 AND seq = $2")
}

/// The edges of one record (`$1` partition, `$2` seq), in reference order.
pub(crate) const LINKS_OF: &str = "SELECT down_key, relation, up_key, status, target_partition, target_seq, target_hash, resolved_by_seq
FROM edges WHERE partition = $1 AND seq = $2 ORDER BY ordinal";

const DEPLOYMENT_COLUMNS: &str = "d.service, d.environment, d.deploy_id, d.artifact, d.deployed_at, d.actor, d.previous_deploy_id, d.config_hash, d.source, d.event_id, d.partition, d.seq, v.hash";

/// Current deployments, optionally of one environment (`$1`, may be null).
pub(crate) fn current_deployments() -> String {
    format!(
        "SELECT {DEPLOYMENT_COLUMNS}
FROM current_deployments c
JOIN deployments d ON d.deploy_id = c.deploy_id
JOIN events v ON v.partition = d.partition AND v.seq = d.seq
WHERE CAST($1 AS TEXT) IS NULL OR c.environment = $1
ORDER BY c.environment, c.service"
    )
}

/// The rollback target of service `$1` in environment `$2`: the newest deployment whose
/// artifact differs from the current one's.
pub(crate) fn rollback_target() -> String {
    format!(
        "SELECT {DEPLOYMENT_COLUMNS}
FROM deployments d
JOIN events v ON v.partition = d.partition AND v.seq = d.seq
WHERE d.service = $1 AND d.environment = $2
  AND d.artifact <> (SELECT cd.artifact FROM current_deployments c
                     JOIN deployments cd ON cd.deploy_id = c.deploy_id
                     WHERE c.service = $1 AND c.environment = $2)
ORDER BY d.deployed_at_us DESC, d.deploy_id DESC
LIMIT 1"
    )
}

/// Each current deployment's artifact with whether it has a `built_by` edge and a
/// `built_by` → `built_from` path.
///
/// The two checks are `(SELECT 1 … LIMIT 1) IS NOT NULL`, not `EXISTS`: PostgreSQL may turn an
/// `EXISTS` in the select list into a hashed subplan that scans every `built_by` and
/// `built_from` edge (0.4 s at 100,000 events, growing with the index), where a `LIMIT`
/// subquery stays a probe of `edges_by_down` per current deployment (8 ms for 400). The
/// provenance SLI gauges run this every 15 s.
pub(crate) const COVERAGE: &str = "SELECT d.artifact, c.service, c.environment,
  (SELECT 1 FROM edges b WHERE b.down_key = d.artifact AND b.relation = 'built_by' LIMIT 1) IS NOT NULL,
  (SELECT 1 FROM edges b JOIN edges m ON m.down_key = b.up_key AND m.relation = 'built_from'
   WHERE b.down_key = d.artifact AND b.relation = 'built_by' LIMIT 1) IS NOT NULL
FROM current_deployments c
JOIN deployments d ON d.deploy_id = c.deploy_id
ORDER BY d.artifact, c.service, c.environment";

/// The counts of [`crate::Stats`], in field order.
pub(crate) const STATS: &str = "SELECT
  (SELECT COUNT(*) FROM reader_state),
  (SELECT COUNT(*) FROM events),
  (SELECT COUNT(*) FROM entities),
  (SELECT COUNT(*) FROM edges),
  (SELECT COUNT(*) FROM edges WHERE status = 'resolved'),
  (SELECT COUNT(*) FROM edges WHERE status = 'pending'),
  (SELECT COUNT(*) FROM markers WHERE kind = 'rejected'),
  (SELECT COUNT(*) FROM markers WHERE kind = 'duplicate'),
  (SELECT COUNT(*) FROM resolutions),
  (SELECT COUNT(*) FROM resolutions WHERE NOT matched)";

/// Pending links (the partial index `edges_pending` answers it).
pub(crate) const MISSING_LINKS: &str = "SELECT COUNT(*) FROM edges WHERE status = 'pending'";

/// A partition's stored state (`$1`).
pub(crate) const READER_STATE: &str = "SELECT ledger_offset, next_seq, head_hash, fence_epoch, fence_writer, raw_offset FROM reader_state WHERE partition = $1";

/// Stores a partition's state (`$1` partition, then the [`crate::plan::StateRow`] fields).
pub(crate) const STORE_STATE: &str = "INSERT INTO reader_state (partition, ledger_offset, next_seq, head_hash, fence_epoch, fence_writer, raw_offset)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (partition) DO UPDATE SET ledger_offset = excluded.ledger_offset, next_seq = excluded.next_seq,
  head_hash = excluded.head_hash, fence_epoch = excluded.fence_epoch, fence_writer = excluded.fence_writer,
  raw_offset = excluded.raw_offset";

/// The schema version (`schema_migrations`).
pub(crate) const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

/// Records a migration (`$1` version, `$2` name, `$3` time).
pub(crate) const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
