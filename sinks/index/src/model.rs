//! What the index answers: plain serde types, the same for both backends, for `--json`, the
//! HTTP API and [`crate::format_tree`]. They serialize and deserialize, so a client (the CLI
//! talking to `provenant serve`) reads back exactly what the server wrote.
//!
//! Relations are carried as their snake_case names ([`provenant_schemas::Relation::as_str`]),
//! entity keys in their string form, hashes as lowercase hex.

use std::fmt;

use provenant_schemas::Relation;
use serde::{Deserialize, Serialize};

/// Which way a lineage query walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards what an entity came from: instance → deploy → artifact → build → commit.
    Up,
    /// Towards what came from an entity: commit → build → artifact → deploy → env.
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// The direction named by [`Direction::as_str`].
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an edge's target is the upstream end (what the subject came from) or the
/// downstream end (where the subject went). Fixed per relation:
///
/// * `in_environment` (deploy/runtime/approval → env), `writes` (job → dataset) and
///   `approves` (approval → deploy/artifact) point **downstream**: the environment, the
///   written dataset and the approved deployment come after the subject;
/// * every other relation points **upstream** (build → commit, artifact → build, deploy →
///   artifact, runtime → deploy, deploy → the deploy it replaced, job → dataset it reads).
///
/// So walking up from `instance:X` reaches its deploy, artifact, build and commit (and the
/// approvals of that deploy), and walking down from `commit:C` reaches its builds, artifacts,
/// deploys, instances and every environment they run in.
pub fn target_is_upstream(relation: Relation) -> bool {
    !matches!(
        relation,
        Relation::InEnvironment | Relation::Writes | Relation::Approves
    )
}

/// [`target_is_upstream`] by relation name (unknown names count as upstream).
pub fn relation_target_is_upstream(relation: &str) -> bool {
    Relation::parse(relation).is_none_or(target_is_upstream)
}

/// The link status of an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeStatus {
    /// The processor found the target's record: its position and hash are known.
    Resolved,
    /// The target had not arrived when the event was processed, and no link resolution yet.
    Pending,
    /// A reference the processor does not link (no event produces `commit:` or `env:`).
    Unlinked,
}

impl EdgeStatus {
    /// `resolved`, `pending`, `unlinked`.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeStatus::Resolved => "resolved",
            EdgeStatus::Pending => "pending",
            EdgeStatus::Unlinked => "unlinked",
        }
    }

    /// The stored form: `resolved`, `pending`, or none for unlinked.
    pub(crate) fn from_stored(s: Option<&str>) -> EdgeStatus {
        match s {
            Some("resolved") => EdgeStatus::Resolved,
            Some("pending") => EdgeStatus::Pending,
            _ => EdgeStatus::Unlinked,
        }
    }
}

/// A ledger position: partition and seq, with the record's hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    pub partition: u32,
    pub seq: i64,
    /// Lowercase hex SHA-256.
    pub hash: String,
}

/// One node of a lineage answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entity key (`commit:…`, `artifact:sha256:…`, `dataset:ns/name`).
    pub key: String,
    /// The key's type (`commit`, `build`, …).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// A dataset's or job's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A dataset's or job's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fewest hops from the root.
    pub depth: u32,
    /// Whether some event has this entity as its subject (a commit never has: no event is
    /// about a commit; an artifact whose event has not arrived has not either).
    pub observed: bool,
}

/// One event behind an edge: who asserted it, where in the ledger, and the link's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEvent {
    /// The asserting event's CloudEvents `source`.
    pub source: String,
    /// The asserting event's CloudEvents `id`.
    pub id: String,
    /// The asserting record's ledger position.
    pub position: Position,
    pub status: EdgeStatus,
    /// The target's record, for a resolved link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Position>,
    /// The seq of the link-resolution record that resolved it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by_seq: Option<i64>,
}

/// An edge as asserted: `from` (the event's subject) `relation` `to` (the reference target).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub relation: String,
    pub to: String,
    /// How many events assert this edge (`events` holds at most
    /// [`crate::MAX_EVENTS_PER_EDGE`] of them, newest first).
    pub event_count: u64,
    pub events: Vec<EdgeEvent>,
}

impl Edge {
    /// The end nearer the root in a walk in `direction`: the downstream end when walking up.
    pub fn near(&self, direction: Direction) -> &str {
        match (direction, relation_target_is_upstream(&self.relation)) {
            (Direction::Up, true) | (Direction::Down, false) => &self.from,
            (Direction::Up, false) | (Direction::Down, true) => &self.to,
        }
    }

    /// The other end.
    pub fn far(&self, direction: Direction) -> &str {
        if self.near(direction) == self.from {
            &self.to
        } else {
            &self.from
        }
    }
}

/// The answer to a lineage query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The entity the walk started from.
    pub root: String,
    pub direction: Direction,
    /// The depth asked for.
    pub depth: u32,
    /// Every entity reached, root first, by depth then key.
    pub nodes: Vec<Node>,
    /// Every edge walked, by the depth of its near end, then from, relation, to.
    pub edges: Vec<Edge>,
    /// True when the walk stopped at [`crate::MAX_LINEAGE_NODES`] before reaching the depth.
    pub truncated: bool,
}

/// A redaction as stored: where, which detector, what was done. Never the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionView {
    pub path: String,
    pub detector: String,
    pub action: String,
}

/// One reference of an indexed event, with its current link status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    pub relation: String,
    pub target: String,
    pub status: EdgeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_position: Option<Position>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by_seq: Option<i64>,
}

/// An event as the index holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexedEvent {
    pub source: String,
    pub id: String,
    /// `build`, `artifact`, `deploy`, `runtime`, `data`, `approval`.
    pub kind: String,
    /// The subject entity key.
    pub subject: String,
    pub position: Position,
    pub raw_offset: i64,
    pub writer_epoch: i64,
    /// The redacted event, in structured-mode CloudEvents JSON.
    pub event: serde_json::Value,
    pub redactions: Vec<RedactionView>,
    /// Its references in [`provenant_schemas::Event::references`] order, with link status
    /// as of now (a pending link later resolved shows resolved).
    pub links: Vec<LinkView>,
}

/// One deployment: a deploy event's facts and where it sits in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub service: String,
    pub environment: String,
    pub deploy_id: String,
    /// The artifact entity key (`artifact:sha256:…`).
    pub artifact: String,
    /// The deploy event's `deploy_timestamp`, as sent.
    pub deployed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_deploy_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The deploy event (`source`, `id`) and its ledger position.
    pub event_source: String,
    pub event_id: String,
    pub position: Position,
}

/// Why a deployed artifact has no build provenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unproven {
    /// No artifact event names the build that produced it (no `built_by` edge).
    NoBuild,
    /// Its build is named, but no build event says which commit it built (no `built_from`
    /// edge from that build).
    NoCommit,
}

/// A deployed artifact without build provenance, and where it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnprovenArtifact {
    pub artifact: String,
    pub reason: Unproven,
    /// `(service, environment)` pairs currently running it.
    pub deployed_as: Vec<(String, String)>,
}

/// Provenance coverage of what is deployed now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Distinct artifacts among the current deployments (latest per service and environment).
    pub deployed_artifacts: u64,
    /// Of those, how many have `artifact --built_by--> build --built_from--> commit`.
    pub proven: u64,
    /// `proven / deployed_artifacts`; `None` when nothing is deployed.
    pub ratio: Option<f64>,
    /// The others, by artifact key.
    pub unproven: Vec<UnprovenArtifact>,
}

/// Counts, for the accounting views and the missing-link SLI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Partitions with a stored reader state.
    pub partitions: u64,
    pub events: u64,
    pub entities: u64,
    pub edges: u64,
    /// Edges whose link is resolved (at write or by a later link resolution).
    pub resolved_links: u64,
    /// Edges whose link is still pending: the missing links.
    pub pending_links: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub link_resolutions: u64,
    /// Link resolutions that named no edge the index holds (a processor bug; counted, not
    /// fatal).
    pub unmatched_resolutions: u64,
}

impl Stats {
    /// `pending / (pending + resolved)`; `None` when there are no links.
    pub fn missing_link_rate(&self) -> Option<f64> {
        let total = self.pending_links + self.resolved_links;
        if total == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        Some(self.pending_links as f64 / total as f64)
    }
}

/// What one [`crate::Index::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyStats {
    /// Records at or below the stored state, not written again.
    pub skipped: u64,
    /// Records written.
    pub written: u64,
    pub events: u64,
    pub edges: u64,
    pub markers: u64,
    pub link_resolutions: u64,
    /// Link resolutions that matched no edge (see [`Stats::unmatched_resolutions`]).
    pub unmatched_resolutions: u64,
    /// Whether the stored reader state changed.
    pub state_moved: bool,
}

/// `(partition, seq, hash)` of a stored record, hex hash.
pub(crate) fn position(partition: u32, seq: i64, hash: &[u8]) -> Position {
    Position {
        partition,
        seq,
        hash: hex::encode(hash),
    }
}
