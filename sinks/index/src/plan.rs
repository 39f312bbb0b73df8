//! From ledger records to rows: the pure half of [`crate::Index::apply`], shared by both
//! backends so that they store exactly the same thing.
//!
//! [`Prepared::new`] turns a batch into owned rows (one [`RecordRows`] per record, nothing
//! read from the database). Inside the write transaction, after reading the stored reader
//! state, the backend calls [`Prepared::select`], which applies the idempotency rule:
//!
//! * records whose seq is below the stored head's next seq were written before: skipped;
//! * the rest must extend the stored head (next seq, `prev_hash` = head hash, consecutive),
//!   and the state passed in must be the state after them; otherwise nothing is written
//!   ([`IndexError::Discontinuous`]);
//! * a state behind the stored one (a replay of an older batch) writes nothing and leaves the
//!   stored state where it is.
//!
//! Edges: for an event record, one edge from its subject ([`Event::subject_key`]) to each
//! reference target ([`Event::references`]), stored as (downstream end, relation, upstream
//! end) by [`crate::target_is_upstream`]. Its link status comes from the record's link for
//! that (relation, target) when there is one (resolved or pending); a reference with no link
//! (`commit:`, `env:`) is unlinked.

use std::collections::BTreeMap;

use provenant_schemas::canonical::ChainHead;
use provenant_schemas::ledger::{EventRecord, LedgerHash, LinkStatus};
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{EntityKey, EventData, LedgerRecord, RecordBody};

use crate::IndexError;
use crate::model::target_is_upstream;

/// The stored form of a reader state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StateRow {
    pub ledger_offset: i64,
    pub next_seq: i64,
    pub head_hash: Vec<u8>,
    pub fence_epoch: Option<i64>,
    pub fence_writer: Option<Vec<u8>>,
    pub raw_offset: Option<i64>,
}

impl StateRow {
    pub(crate) fn from_state(partition: u32, s: &ReaderState) -> Result<Self, IndexError> {
        let ledger_offset = i64::try_from(s.ledger_offset).map_err(|_| {
            IndexError::InvalidArgument(format!(
                "partition {partition}: ledger offset {} is out of range",
                s.ledger_offset
            ))
        })?;
        Ok(StateRow {
            ledger_offset,
            next_seq: s.head.next_seq,
            head_hash: s.head.head_hash.to_vec(),
            fence_epoch: s.fence.map(|(e, _)| e),
            fence_writer: s.fence.map(|(_, w)| w.to_vec()),
            raw_offset: s.raw_offset,
        })
    }

    pub(crate) fn to_state(&self) -> Result<ReaderState, IndexError> {
        let head_hash = hash32(&self.head_hash, "reader_state.head_hash")?;
        let fence = match (self.fence_epoch, &self.fence_writer) {
            (Some(e), Some(w)) => Some((
                e,
                <[u8; 16]>::try_from(w.as_slice()).map_err(|_| {
                    IndexError::Corrupt("reader_state.fence_writer is not 16 bytes".into())
                })?,
            )),
            (None, None) => None,
            _ => {
                return Err(IndexError::Corrupt(
                    "reader_state has a fence epoch without a writer id or the reverse".into(),
                ));
            }
        };
        Ok(ReaderState {
            ledger_offset: u64::try_from(self.ledger_offset).map_err(|_| {
                IndexError::Corrupt("reader_state.ledger_offset is negative".into())
            })?,
            head: ChainHead {
                next_seq: self.next_seq,
                head_hash,
            },
            fence,
            raw_offset: self.raw_offset,
        })
    }
}

/// A stored hash read back.
pub(crate) fn hash32(bytes: &[u8], what: &str) -> Result<LedgerHash, IndexError> {
    <LedgerHash>::try_from(bytes)
        .map_err(|_| IndexError::Corrupt(format!("{what} is not 32 bytes")))
}

/// The partition as the database stores it (`integer`).
pub(crate) fn partition_i32(partition: u32) -> Result<i32, IndexError> {
    i32::try_from(partition).map_err(|_| {
        IndexError::InvalidArgument(format!(
            "partition {partition} is out of range (max 2^31-1)"
        ))
    })
}

#[derive(Clone, Debug)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub raw_offset: i64,
    pub writer_epoch: i64,
    pub source: String,
    pub id: String,
    pub kind: &'static str,
    pub subject: String,
    pub time: Option<String>,
    pub event_json: String,
    pub redactions_json: String,
}

#[derive(Clone, Debug)]
pub(crate) struct EntityRow {
    pub key: String,
    pub entity_type: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub observed: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct EdgeRow {
    pub seq: i64,
    pub ordinal: i32,
    pub down_key: String,
    pub relation: &'static str,
    pub up_key: String,
    pub status: Option<&'static str>,
    pub target_partition: Option<i32>,
    pub target_seq: Option<i64>,
    pub target_hash: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub(crate) struct ResolutionRow {
    pub seq: i64,
    pub resolves_seq: i64,
    pub relation: &'static str,
    pub target: String,
    /// Whether the target is the edge's `up_key` (else its `down_key`).
    pub target_is_up: bool,
    pub target_partition: i32,
    pub target_seq: i64,
    pub target_hash: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct MarkerRow {
    pub seq: i64,
    pub raw_offset: i64,
    pub kind: &'static str,
    pub reason_code: Option<String>,
    pub dlq_partition: Option<i32>,
    pub dlq_offset: Option<i64>,
    pub original_partition: Option<i32>,
    pub original_seq: Option<i64>,
    pub source: Option<String>,
    pub id: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct DeploymentRow {
    pub deploy_id: String,
    pub service: String,
    pub environment: String,
    pub artifact: String,
    pub deployed_at: String,
    /// `deployed_at` in microseconds since the Unix epoch (UTC); 0 when it does not parse,
    /// so such a deployment sorts oldest.
    pub deployed_at_us: i64,
    pub actor: Option<String>,
    pub previous_deploy_id: Option<String>,
    pub config_hash: Option<String>,
    pub seq: i64,
    pub source: String,
    pub event_id: String,
}

/// The rows of one record.
#[derive(Clone, Debug)]
pub(crate) struct RecordRows {
    pub seq: i64,
    pub prev_hash: LedgerHash,
    pub hash: LedgerHash,
    pub event: Option<EventRow>,
    pub entities: Vec<EntityRow>,
    pub edges: Vec<EdgeRow>,
    pub resolution: Option<ResolutionRow>,
    pub marker: Option<MarkerRow>,
    pub deployment: Option<DeploymentRow>,
}

/// A batch turned into rows, not yet checked against the stored state.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub partition: u32,
    pub partition_i32: i32,
    pub records: Vec<RecordRows>,
    pub state: ReaderState,
    pub state_row: StateRow,
}

/// The rows to write, deduplicated, and the state to store.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batch {
    pub events: Vec<EventRow>,
    pub entities: Vec<EntityRow>,
    pub edges: Vec<EdgeRow>,
    pub resolutions: Vec<ResolutionRow>,
    pub markers: Vec<MarkerRow>,
    pub deployments: Vec<DeploymentRow>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub skipped: u64,
    pub written: u64,
}

/// What [`Prepared::select`] decided.
#[derive(Debug)]
pub(crate) enum Selection {
    /// Everything was written before and the stored state is at or past the given one.
    Nothing { skipped: u64 },
    /// Write these rows and the state.
    Write(Box<Batch>),
}

impl Prepared {
    pub(crate) fn new(
        partition: u32,
        records: &[LedgerRecord],
        state: &ReaderState,
    ) -> Result<Prepared, IndexError> {
        Ok(Prepared {
            partition,
            partition_i32: partition_i32(partition)?,
            records: records.iter().map(record_rows).collect(),
            state: *state,
            state_row: StateRow::from_state(partition, state)?,
        })
    }

    /// The records to write given the stored state (see the module doc).
    pub(crate) fn select(&self, stored: Option<&ReaderState>) -> Result<Selection, IndexError> {
        let stored = stored.copied().unwrap_or(ReaderState::START);
        let bad = |reason: String| IndexError::Discontinuous {
            partition: self.partition,
            reason,
        };
        let skipped = self
            .records
            .iter()
            .filter(|r| r.seq < stored.head.next_seq)
            .count();
        let fresh: Vec<&RecordRows> = self
            .records
            .iter()
            .filter(|r| r.seq >= stored.head.next_seq)
            .collect();
        let mut head = stored.head;
        for r in &fresh {
            if r.seq != head.next_seq {
                return Err(bad(format!(
                    "record seq {} does not follow seq {} (stored head or the record before it)",
                    r.seq,
                    head.next_seq.saturating_sub(1)
                )));
            }
            if r.prev_hash != head.head_hash {
                return Err(bad(format!(
                    "record seq {}: prev_hash is not the hash of seq {}",
                    r.seq,
                    head.next_seq.saturating_sub(1)
                )));
            }
            head = ChainHead {
                next_seq: r.seq.saturating_add(1),
                head_hash: r.hash,
            };
        }
        let skipped = u64::try_from(skipped).unwrap_or(u64::MAX);
        if self.state.ledger_offset < stored.ledger_offset
            || (fresh.is_empty() && self.state.ledger_offset == stored.ledger_offset)
        {
            if let Some(first) = fresh.first() {
                return Err(bad(format!(
                    "the state after the batch (ledger offset {}) is behind the stored one ({}) but the batch holds new records from seq {}",
                    self.state.ledger_offset, stored.ledger_offset, first.seq
                )));
            }
            return Ok(Selection::Nothing { skipped });
        }
        if !fresh.is_empty() && self.state.ledger_offset <= stored.ledger_offset {
            return Err(bad(format!(
                "the state after the batch does not move past the stored ledger offset {}",
                stored.ledger_offset
            )));
        }
        if self.state.head != head {
            return Err(bad(format!(
                "the state's head (next seq {}) is not the head after the batch (next seq {})",
                self.state.head.next_seq, head.next_seq
            )));
        }
        let mut batch = Batch {
            skipped,
            written: u64::try_from(fresh.len()).unwrap_or(u64::MAX),
            first_seq: fresh.first().map(|r| r.seq),
            last_seq: fresh.last().map(|r| r.seq),
            ..Batch::default()
        };
        let mut entities: BTreeMap<&str, EntityRow> = BTreeMap::new();
        let mut deployments: BTreeMap<&str, &DeploymentRow> = BTreeMap::new();
        for r in &fresh {
            batch.events.extend(r.event.iter().cloned());
            batch.edges.extend(r.edges.iter().cloned());
            batch.resolutions.extend(r.resolution.iter().cloned());
            batch.markers.extend(r.marker.iter().cloned());
            for e in &r.entities {
                entities
                    .entry(e.key.as_str())
                    .and_modify(|known| known.observed |= e.observed)
                    .or_insert_with(|| e.clone());
            }
            if let Some(d) = &r.deployment {
                // Records come in seq order: a later deploy event of the same id wins.
                deployments.insert(d.deploy_id.as_str(), d);
            }
        }
        batch.entities = entities.into_values().collect();
        batch.deployments = deployments.into_values().cloned().collect();
        Ok(Selection::Write(Box::new(batch)))
    }
}

fn entity_row(key: &EntityKey, observed: bool) -> EntityRow {
    let (namespace, name) = match key {
        EntityKey::Dataset { namespace, name } | EntityKey::Job { namespace, name } => {
            (Some(namespace.clone()), Some(name.clone()))
        }
        _ => (None, None),
    };
    EntityRow {
        key: key.to_string(),
        entity_type: key.type_name(),
        namespace,
        name,
        observed,
    }
}

fn record_rows(r: &LedgerRecord) -> RecordRows {
    let mut rows = RecordRows {
        seq: r.seq,
        prev_hash: r.prev_hash,
        hash: r.hash,
        event: None,
        entities: Vec::new(),
        edges: Vec::new(),
        resolution: None,
        marker: None,
        deployment: None,
    };
    match &r.body {
        RecordBody::Event(er) => event_rows(r, er, &mut rows),
        RecordBody::Rejected(m) => {
            rows.marker = Some(MarkerRow {
                seq: r.seq,
                raw_offset: r.raw_offset,
                kind: "rejected",
                reason_code: Some(m.reason_code.clone()),
                dlq_partition: Some(m.dlq_partition),
                dlq_offset: Some(m.dlq_offset),
                ..MarkerRow::default()
            });
        }
        RecordBody::Duplicate(m) => {
            rows.marker = Some(MarkerRow {
                seq: r.seq,
                raw_offset: r.raw_offset,
                kind: "duplicate",
                original_partition: Some(m.original_partition),
                original_seq: Some(m.original_seq),
                source: Some(m.source.clone()),
                id: Some(m.id.clone()),
                ..MarkerRow::default()
            });
        }
        RecordBody::LinkResolution(m) => {
            rows.resolution = Some(ResolutionRow {
                seq: r.seq,
                resolves_seq: m.resolves_seq,
                relation: m.relation.as_str(),
                target: m.target.clone(),
                target_is_up: target_is_upstream(m.relation),
                target_partition: m.target_partition,
                target_seq: m.target_seq,
                target_hash: m.target_hash.to_vec(),
            });
        }
    }
    rows
}

fn event_rows(r: &LedgerRecord, er: &EventRecord, rows: &mut RecordRows) {
    let event = &er.event;
    let subject = event.subject_key();
    let subject_text = subject.to_string();
    rows.entities.push(entity_row(&subject, true));
    let mut used = vec![false; er.links.len()];
    for (ordinal, reference) in event.references().iter().enumerate() {
        let target = reference.target.to_string();
        rows.entities.push(entity_row(&reference.target, false));
        let link = er
            .links
            .iter()
            .zip(used.iter_mut())
            .find(|(l, used)| !**used && l.relation == reference.relation && l.target == target)
            .map(|(l, used)| {
                *used = true;
                l
            });
        let (down_key, up_key) = if target_is_upstream(reference.relation) {
            (subject_text.clone(), target)
        } else {
            (target, subject_text.clone())
        };
        rows.edges.push(EdgeRow {
            seq: r.seq,
            ordinal: i32::try_from(ordinal).unwrap_or(i32::MAX),
            down_key,
            relation: reference.relation.as_str(),
            up_key,
            status: link.map(|l| match l.status {
                LinkStatus::Resolved => "resolved",
                LinkStatus::Pending => "pending",
            }),
            target_partition: link.and_then(|l| l.target_partition),
            target_seq: link.and_then(|l| l.target_seq),
            target_hash: link.and_then(|l| l.target_hash.map(|h| h.to_vec())),
        });
    }
    for produced in event.produces() {
        rows.entities.push(entity_row(&produced, false));
    }
    if let EventData::Deploy(d) = &event.data {
        rows.deployment = Some(DeploymentRow {
            deploy_id: d.deploy_id.clone(),
            service: d.service.clone(),
            environment: d.environment.clone(),
            artifact: EntityKey::artifact_from_digest(&d.artifact_digest).to_string(),
            deployed_at: d.deploy_timestamp.clone(),
            deployed_at_us: chrono::DateTime::parse_from_rfc3339(&d.deploy_timestamp)
                .map(|t| t.timestamp_micros())
                .unwrap_or(0),
            actor: d.actor.clone(),
            previous_deploy_id: d.previous_deploy_id.clone(),
            config_hash: d.config_hash.clone(),
            seq: r.seq,
            source: event.source.clone(),
            event_id: event.id.clone(),
        });
    }
    let redactions: Vec<serde_json::Value> = er
        .redactions
        .iter()
        .map(|x| {
            serde_json::json!({"path": x.path, "detector": x.detector, "action": x.action.as_str()})
        })
        .collect();
    rows.event = Some(EventRow {
        seq: r.seq,
        hash: r.hash.to_vec(),
        raw_offset: r.raw_offset,
        writer_epoch: r.writer_epoch,
        source: event.source.clone(),
        id: event.id.clone(),
        kind: event.kind().as_str(),
        subject: subject_text,
        time: event.time.clone(),
        event_json: event.to_json_value().to_string(),
        redactions_json: serde_json::Value::Array(redactions).to_string(),
    });
}
