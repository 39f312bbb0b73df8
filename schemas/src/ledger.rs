//! The ledger: what the processor writes to `prov.ledger` and what every sink reads. The second
//! core type, next to [`Event`].
//!
//! A ledger entry is either a chained [`LedgerRecord`] or an unchained [`Fence`]. The types
//! mirror `schemas/avro/ledger_record.avsc` and `fence.avsc` field for field, in the same
//! order, so the Avro form and the canonical JSON form ([`crate::canonical`]) are both read
//! off these structs.
//!
//! Invariants:
//! * Every ledger number (`seq`, offsets, epochs, partitions) is an integer in
//!   `0..=MAX_LEDGER_INT` (2^53 − 1), so that the canonical JSON form is exact in every JSON
//!   implementation. [`LedgerRecord::check`] enforces it, together with the consistency of
//!   links (a resolved link names its target's hash, partition and seq; a pending one names
//!   none of them). Hashing ([`crate::canonical`]) and decoding check it; building a record in
//!   code does not, so call `check` (or hash it) before trusting it.
//! * A record never holds a redacted original value: [`Redaction`] says where, which detector
//!   and what was done, and markers carry no payload.
//! * Decoding ([`LedgerEntry::from_avro`]) never panics and returns
//!   [`ErrorCode::InvalidAvro`] for bytes that are not a ledger entry. It does **not** apply
//!   [`Event::validate`] to the event inside a record: the ledger holds what the processor
//!   wrote (after redaction, which may turn a value into a token), it is authenticated by the
//!   hash chain, and a newer reader with stricter rules must still read an old ledger.

use crate::avro::{Reader, SchemaId, Writer, read_event, split_header, write_event};
use crate::error::{ErrorCode, EventError};
use crate::event::{Event, Relation};

/// A SHA-256 digest: a record's hash, its `prev_hash`, a link's `target_hash`.
pub type LedgerHash = [u8; 32];
/// A writer's random id, chosen at start and written in its fences.
pub type WriterId = [u8; 16];

/// The `prev_hash` of the first record of every partition.
pub const GENESIS_PREV_HASH: LedgerHash = [0; 32];
/// The largest number a ledger record may hold: 2^53 − 1, exact in every JSON reader.
pub const MAX_LEDGER_INT: i64 = (1 << 53) - 1;
/// The largest Avro ledger entry [`LedgerEntry::from_avro`] reads.
pub const MAX_ENTRY_BYTES: usize = 8 * 1024 * 1024;

/// One value of the ledger topic.
// Records are the common case and fences rare: boxing the large variant would cost an
// allocation per record to save space on a few fences.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerEntry {
    /// A chained record.
    Record(LedgerRecord),
    /// A writer's fence (not chained).
    Fence(Fence),
}

/// One link of a partition's hash chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRecord {
    /// Position in the partition's chain, from 0.
    pub seq: i64,
    /// The previous record's `hash` ([`GENESIS_PREV_HASH`] for seq 0).
    pub prev_hash: LedgerHash,
    /// `SHA-256("provenant.ledger.v1\0" ‖ prev_hash ‖ canonical bytes)`; see
    /// [`crate::canonical`].
    pub hash: LedgerHash,
    /// The offset in the raw partition this record accounts for (for a link resolution: the
    /// raw offset the writer had reached when it wrote it).
    pub raw_offset: i64,
    /// The epoch of the writer's counted fence.
    pub writer_epoch: i64,
    /// What the record says.
    pub body: RecordBody,
}

/// The four kinds of chained record.
// Event records are the common case; see `LedgerEntry`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBody {
    /// A valid event, redacted, with its links.
    Event(EventRecord),
    /// A raw record refused and sent to the DLQ.
    Rejected(RejectedMarker),
    /// A raw record repeating an event already in the ledger.
    Duplicate(DuplicateMarker),
    /// A pending link of an earlier record, now resolved.
    LinkResolution(LinkResolution),
}

impl RecordBody {
    /// The tag of the body in the canonical JSON form and in metrics: `event`, `rejected`,
    /// `duplicate`, `link_resolution`.
    pub fn tag(&self) -> &'static str {
        match self {
            RecordBody::Event(_) => "event",
            RecordBody::Rejected(_) => "rejected",
            RecordBody::Duplicate(_) => "duplicate",
            RecordBody::LinkResolution(_) => "link_resolution",
        }
    }
}

/// A redacted event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The event after redaction.
    pub event: Event,
    /// What was redacted, in the order it was done.
    pub redactions: Vec<Redaction>,
    /// The event's references, in [`Event::references`] order.
    pub links: Vec<Link>,
}

/// One redaction: where, found by what, and what was done. Never the original value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// The field path (`data.actor`, `data.annotations.owner`).
    pub path: String,
    /// The detector or rule that matched (`email`, `jwt`, `policy:…`).
    pub detector: String,
    /// What was done.
    pub action: RedactionAction,
}

/// What redaction did to a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedactionAction {
    /// Removed.
    Drop,
    /// Replaced by a fixed mask.
    Mask,
    /// Replaced by a keyed HMAC token (equal inputs give equal tokens).
    Token,
}

impl RedactionAction {
    /// Every action, in the order of the Avro enum.
    pub const ALL: [RedactionAction; 3] = [
        RedactionAction::Drop,
        RedactionAction::Mask,
        RedactionAction::Token,
    ];

    /// `drop`, `mask`, `token`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedactionAction::Drop => "drop",
            RedactionAction::Mask => "mask",
            RedactionAction::Token => "token",
        }
    }

    /// The action named by [`RedactionAction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A reference from an event to an entity, with the target's chain position once known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub relation: Relation,
    /// The target entity key, in its string form (`artifact:sha256:…`).
    pub target: String,
    pub status: LinkStatus,
    /// The target record's hash (resolved links only).
    pub target_hash: Option<LedgerHash>,
    /// The target record's ledger partition (resolved links only).
    pub target_partition: Option<i32>,
    /// The target record's seq (resolved links only).
    pub target_seq: Option<i64>,
}

impl Link {
    /// A link whose target record is known: its hash, ledger partition and seq.
    pub fn resolved(
        relation: Relation,
        target: String,
        hash: LedgerHash,
        partition: u32,
        seq: i64,
    ) -> Self {
        Self {
            relation,
            target,
            status: LinkStatus::Resolved,
            target_hash: Some(hash),
            target_partition: Some(i32::try_from(partition).unwrap_or(i32::MAX)),
            target_seq: Some(seq),
        }
    }

    /// A link whose target has not arrived yet.
    pub fn pending(relation: Relation, target: String) -> Self {
        Self {
            relation,
            target,
            status: LinkStatus::Pending,
            target_hash: None,
            target_partition: None,
            target_seq: None,
        }
    }
}

/// Whether a link's target was in the ledger when the link was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkStatus {
    Resolved,
    Pending,
}

impl LinkStatus {
    /// `resolved` or `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Resolved => "resolved",
            LinkStatus::Pending => "pending",
        }
    }

    /// The status named by [`LinkStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "resolved" => Some(LinkStatus::Resolved),
            "pending" => Some(LinkStatus::Pending),
            _ => None,
        }
    }
}

/// A refused raw record: why, and where in the DLQ it went. No payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedMarker {
    /// The stable reason code ([`ErrorCode::as_str`] for event errors).
    pub reason_code: String,
    /// The reason, as the error says it (never holds a field value).
    pub reason_message: String,
    pub dlq_partition: i32,
    pub dlq_offset: i64,
}

/// A raw record that repeats an event already in the ledger. No payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateMarker {
    /// The ledger partition of the original.
    pub original_partition: i32,
    /// The seq of the original.
    pub original_seq: i64,
    /// The event's `source`.
    pub source: String,
    /// The event's `id`.
    pub id: String,
}

/// Resolves a pending link of an earlier record of the same partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkResolution {
    /// The seq of the record whose pending link this resolves.
    pub resolves_seq: i64,
    pub relation: Relation,
    pub target: String,
    pub target_hash: LedgerHash,
    pub target_partition: i32,
    pub target_seq: i64,
}

/// A writer taking a ledger partition. Not chained: it has no seq and no hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub writer_epoch: i64,
    pub writer_id: WriterId,
}

/// Why a ledger record breaks an invariant of this module. Names the field, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ledger record: {field}: {message}")]
pub struct InvalidRecord {
    /// The field (`seq`, `body.event.links[0].target_seq`, …).
    pub field: String,
    /// What is wrong.
    pub message: &'static str,
}

fn int(field: impl FnOnce() -> String, v: i64) -> Result<(), InvalidRecord> {
    if (0..=MAX_LEDGER_INT).contains(&v) {
        Ok(())
    } else {
        Err(InvalidRecord {
            field: field(),
            message: "must be an integer from 0 to 2^53-1",
        })
    }
}

impl LedgerRecord {
    /// Checks the module invariants: every number in `0..=2^53-1`, links consistent.
    pub fn check(&self) -> Result<(), InvalidRecord> {
        int(|| "seq".into(), self.seq)?;
        int(|| "raw_offset".into(), self.raw_offset)?;
        int(|| "writer_epoch".into(), self.writer_epoch)?;
        match &self.body {
            RecordBody::Event(er) => {
                for (i, l) in er.links.iter().enumerate() {
                    let path = |f: &str| format!("body.event.links[{i}].{f}");
                    let all = l.target_hash.is_some()
                        && l.target_partition.is_some()
                        && l.target_seq.is_some();
                    let none = l.target_hash.is_none()
                        && l.target_partition.is_none()
                        && l.target_seq.is_none();
                    match l.status {
                        LinkStatus::Resolved if !all => {
                            return Err(InvalidRecord {
                                field: path("status"),
                                message: "a resolved link needs target_hash, target_partition and target_seq",
                            });
                        }
                        LinkStatus::Pending if !none => {
                            return Err(InvalidRecord {
                                field: path("status"),
                                message: "a pending link has no target_hash, target_partition or target_seq",
                            });
                        }
                        _ => {}
                    }
                    if let Some(p) = l.target_partition {
                        int(|| path("target_partition"), i64::from(p))?;
                    }
                    if let Some(s) = l.target_seq {
                        int(|| path("target_seq"), s)?;
                    }
                }
            }
            RecordBody::Rejected(m) => {
                int(
                    || "body.rejected.dlq_partition".into(),
                    i64::from(m.dlq_partition),
                )?;
                int(|| "body.rejected.dlq_offset".into(), m.dlq_offset)?;
            }
            RecordBody::Duplicate(m) => {
                int(
                    || "body.duplicate.original_partition".into(),
                    i64::from(m.original_partition),
                )?;
                int(|| "body.duplicate.original_seq".into(), m.original_seq)?;
            }
            RecordBody::LinkResolution(m) => {
                int(
                    || "body.link_resolution.resolves_seq".into(),
                    m.resolves_seq,
                )?;
                if m.resolves_seq >= self.seq {
                    return Err(InvalidRecord {
                        field: "body.link_resolution.resolves_seq".into(),
                        message: "must name an earlier record of the partition",
                    });
                }
                int(
                    || "body.link_resolution.target_partition".into(),
                    i64::from(m.target_partition),
                )?;
                int(|| "body.link_resolution.target_seq".into(), m.target_seq)?;
            }
        }
        Ok(())
    }

    /// The Avro binary body of this record under `io.provenant.v1.LedgerRecord`, without a
    /// header (one datum of an archive segment, an Avro object container file).
    pub fn to_avro_datum(&self) -> Vec<u8> {
        let mut w = Writer::default();
        write_record(&mut w, self);
        w.into_bytes()
    }

    /// Reads one `io.provenant.v1.LedgerRecord` datum (no header) and checks it.
    pub fn from_avro_datum(bytes: &[u8]) -> Result<LedgerRecord, EventError> {
        check_size(bytes)?;
        let mut r = Reader::new(bytes, SchemaId::LedgerRecord);
        let record = read_record(&mut r)?;
        r.finish()?;
        record.check().map_err(invalid)?;
        Ok(record)
    }

    /// Reads the `io.provenant.v1.LedgerRecord` datum at the start of `bytes`, which may hold
    /// more datums after it (Avro datums are not length-prefixed: an object container block is
    /// their concatenation), and checks it like [`LedgerRecord::from_avro_datum`]. Returns the
    /// record and the datum's length in bytes, so a block is split and decoded in one pass.
    pub fn from_avro_datum_prefix(bytes: &[u8]) -> Result<(LedgerRecord, usize), EventError> {
        let mut r = Reader::new(bytes, SchemaId::LedgerRecord);
        let record = read_record(&mut r)?;
        let len = r.position();
        check_size(bytes.get(..len).unwrap_or(bytes))?;
        record.check().map_err(invalid)?;
        Ok((record, len))
    }
}

/// Which of the four kinds a record's body is, without the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Event,
    Rejected,
    Duplicate,
    LinkResolution,
}

/// A record's chain fields and the kind of its body: everything the validity rule reads of
/// a record except its hash check ([`crate::validity::Validator::observe_own_head`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHead {
    pub seq: i64,
    pub prev_hash: LedgerHash,
    pub hash: LedgerHash,
    pub raw_offset: i64,
    pub writer_epoch: i64,
    pub body: BodyKind,
}

impl LedgerRecord {
    /// This record's [`RecordHead`].
    pub fn head(&self) -> RecordHead {
        RecordHead {
            seq: self.seq,
            prev_hash: self.prev_hash,
            hash: self.hash,
            raw_offset: self.raw_offset,
            writer_epoch: self.writer_epoch,
            body: match self.body {
                RecordBody::Event(_) => BodyKind::Event,
                RecordBody::Rejected(_) => BodyKind::Rejected,
                RecordBody::Duplicate(_) => BodyKind::Duplicate,
                RecordBody::LinkResolution(_) => BodyKind::LinkResolution,
            },
        }
    }
}

impl LedgerEntry {
    /// Single-object encoding with the ledger entry schema (the value of a `prov.ledger`
    /// record).
    pub fn to_avro(&self) -> Vec<u8> {
        let mut w = Writer::with_header(SchemaId::LedgerEntry);
        match self {
            LedgerEntry::Record(r) => {
                w.count(0);
                write_record(&mut w, r);
            }
            LedgerEntry::Fence(f) => {
                w.count(1);
                w.long(f.writer_epoch);
                w.fixed(&f.writer_id);
            }
        }
        w.into_bytes()
    }

    /// The head of the record in a single-object encoded ledger entry, reading nothing past
    /// the body's kind; `None` for a fence or bytes that do not start like a record. It
    /// checks neither the body nor the record's invariants, so only a reader of entries this
    /// process wrote itself may take it for the record (the processor's entity-state
    /// tailer, for its own partitions' records); every other reader decodes the whole entry
    /// ([`LedgerEntry::from_avro`]). Allocates nothing.
    pub fn peek_record_head(bytes: &[u8]) -> Option<RecordHead> {
        let header = SchemaId::LedgerEntry.header();
        let body = bytes.strip_prefix(&header[..])?;
        let mut r = Reader::new(body, SchemaId::LedgerEntry);
        if r.index("entry", 2).ok()? != 0 {
            return None;
        }
        Some(RecordHead {
            seq: r.long("seq").ok()?,
            prev_hash: r.fixed("prev_hash").ok()?,
            hash: r.fixed("hash").ok()?,
            raw_offset: r.long("raw_offset").ok()?,
            writer_epoch: r.long("writer_epoch").ok()?,
            body: match r.index("body", 4).ok()? {
                0 => BodyKind::Event,
                1 => BodyKind::Rejected,
                2 => BodyKind::Duplicate,
                _ => BodyKind::LinkResolution,
            },
        })
    }

    /// Decodes a single-object encoded ledger entry and checks it ([`LedgerRecord::check`];
    /// a fence's epoch must be in range too). Never panics.
    pub fn from_avro(bytes: &[u8]) -> Result<LedgerEntry, EventError> {
        check_size(bytes)?;
        let body = split_header(bytes, SchemaId::LedgerEntry)?;
        let mut r = Reader::new(body, SchemaId::LedgerEntry);
        let entry = match r.index("entry", 2)? {
            0 => {
                let record = read_record(&mut r)?;
                record.check().map_err(invalid)?;
                LedgerEntry::Record(record)
            }
            _ => {
                let fence = Fence {
                    writer_epoch: r.long("writer_epoch")?,
                    writer_id: r.fixed("writer_id")?,
                };
                int(|| "writer_epoch".into(), fence.writer_epoch).map_err(invalid)?;
                LedgerEntry::Fence(fence)
            }
        };
        r.finish()?;
        Ok(entry)
    }
}

fn check_size(bytes: &[u8]) -> Result<(), EventError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(EventError::input(
            ErrorCode::TooLarge,
            format!(
                "ledger entry is {} bytes, over the limit of {MAX_ENTRY_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

fn invalid(e: InvalidRecord) -> EventError {
    EventError::field(ErrorCode::InvalidValue, e.field.clone(), e.to_string())
}

fn write_record(w: &mut Writer, r: &LedgerRecord) {
    w.long(r.seq);
    w.fixed(&r.prev_hash);
    w.fixed(&r.hash);
    w.long(r.raw_offset);
    w.long(r.writer_epoch);
    match &r.body {
        RecordBody::Event(er) => {
            w.count(0);
            write_event(w, &er.event);
            w.array(&er.redactions, |w, red| {
                w.string(&red.path);
                w.string(&red.detector);
                w.count(action_index(red.action));
            });
            w.array(&er.links, |w, l| {
                w.count(relation_index(l.relation));
                w.string(&l.target);
                w.count(match l.status {
                    LinkStatus::Resolved => 0,
                    LinkStatus::Pending => 1,
                });
                w.opt_fixed(l.target_hash.as_ref().map(|h| &h[..]));
                w.opt_int(l.target_partition);
                w.opt_long(l.target_seq);
            });
        }
        RecordBody::Rejected(m) => {
            w.count(1);
            w.string(&m.reason_code);
            w.string(&m.reason_message);
            w.int(m.dlq_partition);
            w.long(m.dlq_offset);
        }
        RecordBody::Duplicate(m) => {
            w.count(2);
            w.int(m.original_partition);
            w.long(m.original_seq);
            w.string(&m.source);
            w.string(&m.id);
        }
        RecordBody::LinkResolution(m) => {
            w.count(3);
            w.long(m.resolves_seq);
            w.count(relation_index(m.relation));
            w.string(&m.target);
            w.fixed(&m.target_hash);
            w.int(m.target_partition);
            w.long(m.target_seq);
        }
    }
}

fn action_index(a: RedactionAction) -> usize {
    RedactionAction::ALL
        .iter()
        .position(|x| *x == a)
        .unwrap_or(0)
}

fn relation_index(rel: Relation) -> usize {
    Relation::ALL.iter().position(|x| *x == rel).unwrap_or(0)
}

fn read_relation(r: &mut Reader<'_>, field: &str) -> Result<Relation, EventError> {
    let i = r.index(field, Relation::ALL.len())?;
    Relation::ALL
        .get(i)
        .copied()
        .ok_or_else(|| r.error(field, "enum index out of range"))
}

fn read_record(r: &mut Reader<'_>) -> Result<LedgerRecord, EventError> {
    let seq = r.long("seq")?;
    let prev_hash = r.fixed("prev_hash")?;
    let hash = r.fixed("hash")?;
    let raw_offset = r.long("raw_offset")?;
    let writer_epoch = r.long("writer_epoch")?;
    let body = match r.index("body", 4)? {
        0 => {
            let event = read_event(r)?;
            let redactions = r.array("body.redactions", |r| {
                let path = r.string("body.redactions.path")?;
                let detector = r.string("body.redactions.detector")?;
                let i = r.index("body.redactions.action", RedactionAction::ALL.len())?;
                let action = RedactionAction::ALL
                    .get(i)
                    .copied()
                    .ok_or_else(|| r.error("body.redactions.action", "enum index out of range"))?;
                Ok(Redaction {
                    path,
                    detector,
                    action,
                })
            })?;
            let links = r.array("body.links", |r| {
                Ok(Link {
                    relation: read_relation(r, "body.links.relation")?,
                    target: r.string("body.links.target")?,
                    status: if r.index("body.links.status", 2)? == 0 {
                        LinkStatus::Resolved
                    } else {
                        LinkStatus::Pending
                    },
                    target_hash: r.opt_fixed("body.links.target_hash")?,
                    target_partition: r.opt_int("body.links.target_partition")?,
                    target_seq: r.opt_long("body.links.target_seq")?,
                })
            })?;
            RecordBody::Event(EventRecord {
                event,
                redactions,
                links,
            })
        }
        1 => RecordBody::Rejected(RejectedMarker {
            reason_code: r.string("body.reason_code")?,
            reason_message: r.string("body.reason_message")?,
            dlq_partition: r.int("body.dlq_partition")?,
            dlq_offset: r.long("body.dlq_offset")?,
        }),
        2 => RecordBody::Duplicate(DuplicateMarker {
            original_partition: r.int("body.original_partition")?,
            original_seq: r.long("body.original_seq")?,
            source: r.string("body.source")?,
            id: r.string("body.id")?,
        }),
        _ => RecordBody::LinkResolution(LinkResolution {
            resolves_seq: r.long("body.resolves_seq")?,
            relation: read_relation(r, "body.relation")?,
            target: r.string("body.target")?,
            target_hash: r.fixed("body.target_hash")?,
            target_partition: r.int("body.target_partition")?,
            target_seq: r.long("body.target_seq")?,
        }),
    };
    Ok(LedgerRecord {
        seq,
        prev_hash,
        hash,
        raw_offset,
        writer_epoch,
        body,
    })
}
