//! Canonical bytes and the hash chain, defined once.
//!
//! ```text
//! hash            = SHA-256("provenant.ledger.v1\0" ‖ prev_hash ‖ canonical_bytes)
//! canonical_bytes = RFC 8785 (JCS) serialization of the record's JSON form without "hash"
//! prev_hash       = the previous record's hash; 32 zero bytes for seq 0
//! ```
//!
//! The **JSON form** of a [`LedgerRecord`] ([`record_json`]) mirrors the Avro schema
//! (`schemas/avro/ledger_record.avsc`) field for field, by these rules:
//! * a record is a JSON object with one member per Avro field, named as the field;
//! * a field whose value is null (an absent optional) is **omitted**; nothing else is omitted:
//!   empty maps are `{}`, empty lists `[]`;
//! * `fixed` values (hashes, writer ids) are lowercase hex strings;
//! * numbers are JSON integers in `0..=2^53-1` (enforced by [`LedgerRecord::check`], so
//!   every JSON implementation reads them exactly and JCS prints them as plain digits);
//! * enums are their symbol (`"COMPLETE"`, `"approved"`, `"runs"`, `"pending"`, `"mask"`);
//! * a union of records is an object with exactly one member, named by the branch's tag, whose
//!   value is the record: the body is `{"event": {…}}`, `{"rejected": {…}}`,
//!   `{"duplicate": {…}}` or `{"link_resolution": {…}}`, and an event's data is
//!   `{"build": {…}}`, `{"artifact": {…}}`, … (the kind names);
//! * strings are as they are (any Unicode); JCS does the escaping.
//!
//! `schemas/README.md` spells this out with an example; `schemas/vectors/vectors.json` holds
//! test vectors that a second implementation (`schemas/vectors/check_vectors.py`) checks.
//!
//! **Two implementations, one output.** [`LedgerRecord::canonical_bytes`],
//! [`LedgerRecord::write_canonical`], [`LedgerRecord::compute_hash`],
//! [`LedgerRecord::compute_hash_with`], [`LedgerRecord::seal`] and [`verify_chain`] use a
//! direct writer (the private `writer` module): it writes the JCS bytes of the JSON form
//! straight from the structs, with the member order of every fixed object precomputed, map
//! members sorted by UTF-16 code units, JCS string escaping and plain integers; hashing
//! streams them into SHA-256 (`compute_hash`, no allocation) or reuses one buffer
//! (`compute_hash_with`, `verify_chain`). The reference is the obvious route, [`record_json`]
//! then `serde_json_canonicalizer` ([`canonical_bytes_of_json`],
//! `LedgerRecord::canonical_bytes_reference`): some 25–40× slower, kept for tests, for
//! JSON that comes from outside, and as the definition the writer is checked against (unit
//! tests in `writer`, the property test `tests/canonical_writer.rs` on arbitrary records, the
//! test vectors).
//!
//! **From archived datums:** [`hash_record_datum`] computes a record's hash straight from its
//! Avro datum (no owned record in between), for `verify`; the `datum` module says how it is
//! kept equal to decoding and then [`LedgerRecord::compute_hash`].
//!
//! Invariants: [`LedgerRecord::canonical_bytes`] and [`LedgerRecord::compute_hash`] are pure
//! functions of the record's fields other than `hash`, byte for byte equal to the reference;
//! they fail only on a record that breaks [`LedgerRecord::check`]. [`verify_chain`] names the
//! first record (by seq and index) that does not extend the chain.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventData};
use crate::ledger::{
    GENESIS_PREV_HASH, InvalidRecord, LedgerHash, LedgerRecord, Link, RecordBody, Redaction,
};

mod datum;
mod writer;

pub use datum::{DatumHash, DatumScratch, hash_record_datum};

/// The domain-separation prefix of every record hash (with its NUL byte).
pub const HASH_DOMAIN: &[u8] = b"provenant.ledger.v1\0";

/// First allocation for [`LedgerRecord::canonical_bytes`]: a typical event record is about
/// 1 KB in canonical form.
const CANONICAL_CAPACITY_HINT: usize = 1024;

/// The JSON form of a record, `hash` included (see the module doc for the rules).
pub fn record_json(r: &LedgerRecord) -> Value {
    let body = match &r.body {
        RecordBody::Event(er) => json!({
            "event": {
                "event": event_json(&er.event),
                "redactions": er.redactions.iter().map(redaction_json).collect::<Vec<_>>(),
                "links": er.links.iter().map(link_json).collect::<Vec<_>>(),
            }
        }),
        RecordBody::Rejected(m) => json!({
            "rejected": {
                "reason_code": m.reason_code,
                "reason_message": m.reason_message,
                "dlq_partition": m.dlq_partition,
                "dlq_offset": m.dlq_offset,
            }
        }),
        RecordBody::Duplicate(m) => json!({
            "duplicate": {
                "original_partition": m.original_partition,
                "original_seq": m.original_seq,
                "source": m.source,
                "id": m.id,
            }
        }),
        RecordBody::LinkResolution(m) => json!({
            "link_resolution": {
                "resolves_seq": m.resolves_seq,
                "relation": m.relation.as_str(),
                "target": m.target,
                "target_hash": hex::encode(m.target_hash),
                "target_partition": m.target_partition,
                "target_seq": m.target_seq,
            }
        }),
    };
    json!({
        "seq": r.seq,
        "prev_hash": hex::encode(r.prev_hash),
        "hash": hex::encode(r.hash),
        "raw_offset": r.raw_offset,
        "writer_epoch": r.writer_epoch,
        "body": body,
    })
}

fn redaction_json(r: &Redaction) -> Value {
    json!({"path": r.path, "detector": r.detector, "action": r.action.as_str()})
}

fn link_json(l: &Link) -> Value {
    let mut o = Map::new();
    o.insert("relation".into(), l.relation.as_str().into());
    o.insert("target".into(), l.target.clone().into());
    o.insert("status".into(), l.status.as_str().into());
    if let Some(h) = &l.target_hash {
        o.insert("target_hash".into(), hex::encode(h).into());
    }
    if let Some(p) = l.target_partition {
        o.insert("target_partition".into(), p.into());
    }
    if let Some(s) = l.target_seq {
        o.insert("target_seq".into(), s.into());
    }
    Value::Object(o)
}

/// Builds a JSON object; optional members are left out when `None`.
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self(Map::new())
    }
    fn s(mut self, k: &str, v: &str) -> Self {
        self.0.insert(k.into(), v.into());
        self
    }
    fn o(mut self, k: &str, v: Option<&String>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v.clone().into());
        }
        self
    }
    fn v(mut self, k: &str, v: Value) -> Self {
        self.0.insert(k.into(), v);
        self
    }
    fn map(self, k: &str, m: &std::collections::BTreeMap<String, String>) -> Self {
        let obj: Map<String, Value> = m
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        self.v(k, Value::Object(obj))
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// The JSON form of an event (the Avro `io.provenant.v1.Event` record by the module rules).
pub fn event_json(e: &Event) -> Value {
    Obj::new()
        .s("id", &e.id)
        .s("source", &e.source)
        .o("time", e.time.as_ref())
        .o("subject", e.subject.as_ref())
        .o("dataschema", e.dataschema.as_ref())
        .map("extensions", &e.extensions)
        .o("mapped_from", e.mapped_from.as_ref())
        .v("data", data_json(&e.data))
        .done()
}

fn data_json(d: &EventData) -> Value {
    let record = match d {
        EventData::Build(b) => Obj::new()
            .s("commit_sha", &b.commit_sha)
            .o("branch", b.branch.as_ref())
            .s("build_id", &b.build_id)
            .s("build_timestamp", &b.build_timestamp)
            .o("actor", b.actor.as_ref())
            .o("pipeline_url", b.pipeline_url.as_ref())
            .o("repo_url", b.repo_url.as_ref())
            .o("artifact_digest", b.artifact_digest.as_ref())
            .o("signature", b.signature.as_ref())
            .map("annotations", &b.annotations),
        EventData::Artifact(a) => Obj::new()
            .s("artifact_digest", &a.artifact_digest)
            .o("build_id", a.build_id.as_ref())
            .o("commit_sha", a.commit_sha.as_ref())
            .o("name", a.name.as_ref())
            .o("signature", a.signature.as_ref())
            .map("annotations", &a.annotations),
        EventData::Deploy(d) => Obj::new()
            .s("deploy_id", &d.deploy_id)
            .s("artifact_digest", &d.artifact_digest)
            .s("environment", &d.environment)
            .s("service", &d.service)
            .s("deploy_timestamp", &d.deploy_timestamp)
            .o("actor", d.actor.as_ref())
            .o("config_hash", d.config_hash.as_ref())
            .o("previous_deploy_id", d.previous_deploy_id.as_ref())
            .o("pipeline_url", d.pipeline_url.as_ref())
            .map("annotations", &d.annotations),
        EventData::Runtime(r) => Obj::new()
            .s("instance_id", &r.instance_id)
            .s("service", &r.service)
            .s("environment", &r.environment)
            .o("deploy_id", r.deploy_id.as_ref())
            .o("artifact_digest", r.artifact_digest.as_ref())
            .o("trace_id", r.trace_id.as_ref())
            .o("message", r.message.as_ref())
            .map("annotations", &r.annotations),
        EventData::Data(d) => {
            let ds = |list: &[crate::event::Dataset]| {
                Value::Array(
                    list.iter()
                        .map(|x| {
                            Obj::new()
                                .s("namespace", &x.namespace)
                                .s("name", &x.name)
                                .o("snapshot_id", x.snapshot_id.as_ref())
                                .o("schema_version", x.schema_version.as_ref())
                                .done()
                        })
                        .collect(),
                )
            };
            Obj::new()
                .v(
                    "job",
                    json!({"namespace": d.job.namespace, "name": d.job.name}),
                )
                .s("run_id", &d.run_id)
                .s("event_type", d.event_type.as_str())
                .v("inputs", ds(&d.inputs))
                .v("outputs", ds(&d.outputs))
                .map("annotations", &d.annotations)
        }
        EventData::Approval(a) => Obj::new()
            .s("approval_id", &a.approval_id)
            .o("deploy_id", a.deploy_id.as_ref())
            .o("artifact_digest", a.artifact_digest.as_ref())
            .s("environment", &a.environment)
            .s("decision", a.decision.as_str())
            .s("approver", &a.approver)
            .o("reason", a.reason.as_ref())
            .o("policy", a.policy.as_ref())
            .map("annotations", &a.annotations),
    };
    let mut wrapper = Map::new();
    wrapper.insert(d.kind().as_str().into(), record.done());
    Value::Object(wrapper)
}

/// RFC 8785 bytes of a record's JSON form (as [`record_json`] writes it, or as parsed back
/// from any JSON text of it) with its `hash` member removed.
pub fn canonical_bytes_of_json(record_form: &Value) -> Result<Vec<u8>, InvalidRecord> {
    let Value::Object(obj) = record_form else {
        return Err(InvalidRecord {
            field: "record".into(),
            message: "the JSON form of a record is an object",
        });
    };
    let mut without_hash = obj.clone();
    without_hash.remove("hash");
    // Serializing a serde_json::Value cannot fail: its map keys are strings, and its numbers
    // are finite.
    serde_json_canonicalizer::to_vec(&without_hash).map_err(|_| InvalidRecord {
        field: "record".into(),
        message: "JSON form could not be canonicalized",
    })
}

/// The record hash for given `prev_hash` and canonical bytes.
pub fn hash_of(prev_hash: &LedgerHash, canonical: &[u8]) -> LedgerHash {
    let mut h = Sha256::new();
    h.update(HASH_DOMAIN);
    h.update(prev_hash);
    h.update(canonical);
    h.finalize().into()
}

impl LedgerRecord {
    /// The RFC 8785 bytes of this record's JSON form without `hash`, written directly by the
    /// canonical writer (no intermediate JSON value; see the module doc).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, InvalidRecord> {
        self.check()?;
        let mut out = Vec::with_capacity(CANONICAL_CAPACITY_HINT);
        writer::put_record(&mut out, self);
        Ok(out)
    }

    /// Appends this record's canonical bytes to `out`; on an invalid record, appends nothing.
    pub fn write_canonical(&self, out: &mut Vec<u8>) -> Result<(), InvalidRecord> {
        self.check()?;
        writer::put_record(out, self);
        Ok(())
    }

    /// The canonical bytes the slow, obviously-correct way: [`record_json`] canonicalized by
    /// `serde_json_canonicalizer` ([`canonical_bytes_of_json`]). The reference the direct
    /// writer is tested against; not for production paths (~70 µs per event record).
    #[doc(hidden)]
    pub fn canonical_bytes_reference(&self) -> Result<Vec<u8>, InvalidRecord> {
        self.check()?;
        canonical_bytes_of_json(&record_json(self))
    }

    /// `SHA-256("provenant.ledger.v1\0" ‖ prev_hash ‖ canonical bytes)`. The canonical bytes
    /// are streamed into SHA-256 through a stack buffer: no heap allocation.
    pub fn compute_hash(&self) -> Result<LedgerHash, InvalidRecord> {
        self.check()?;
        let mut sink = writer::HashSink::new(&[HASH_DOMAIN, &self.prev_hash]);
        writer::put_record(&mut sink, self);
        Ok(sink.finish())
    }

    /// Like [`LedgerRecord::compute_hash`], writing the canonical bytes into `buf` first
    /// (cleared; it holds them afterwards, and keeps its capacity for the next record).
    pub fn compute_hash_with(&self, buf: &mut Vec<u8>) -> Result<LedgerHash, InvalidRecord> {
        self.check()?;
        buf.clear();
        writer::put_record(buf, self);
        Ok(hash_of(&self.prev_hash, buf))
    }

    /// A record with its `hash` computed.
    pub fn seal(
        seq: i64,
        prev_hash: LedgerHash,
        raw_offset: i64,
        writer_epoch: i64,
        body: RecordBody,
    ) -> Result<LedgerRecord, InvalidRecord> {
        let mut r = LedgerRecord {
            seq,
            prev_hash,
            hash: [0; 32],
            raw_offset,
            writer_epoch,
            body,
        };
        r.hash = r.compute_hash()?;
        Ok(r)
    }
}

/// Where a partition's chain stands: the seq the next record must have and the hash it must
/// chain to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub next_seq: i64,
    pub head_hash: LedgerHash,
}

impl ChainHead {
    /// An empty partition.
    pub const GENESIS: ChainHead = ChainHead {
        next_seq: 0,
        head_hash: GENESIS_PREV_HASH,
    };

    /// The head after `record`.
    pub fn after(record: &LedgerRecord) -> ChainHead {
        ChainHead {
            next_seq: record.seq.saturating_add(1),
            head_hash: record.hash,
        }
    }
}

/// The next record of a chain: `seq` and `prev_hash` from `head`, `hash` computed.
pub fn chain_next(
    head: &ChainHead,
    raw_offset: i64,
    writer_epoch: i64,
    body: RecordBody,
) -> Result<LedgerRecord, InvalidRecord> {
    LedgerRecord::seal(
        head.next_seq,
        head.head_hash,
        raw_offset,
        writer_epoch,
        body,
    )
}

/// Why a run of records does not extend a chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("record {index} has seq {found}, expected {expected}")]
    SeqGap {
        index: usize,
        expected: i64,
        found: i64,
    },
    #[error("record {index} (seq {seq}): prev_hash is not the hash of the record before it")]
    PrevHashMismatch { index: usize, seq: i64 },
    #[error("record {index} (seq {seq}): hash does not match its contents")]
    HashMismatch { index: usize, seq: i64 },
    #[error("record {index} (seq {seq}): {source}")]
    Invalid {
        index: usize,
        seq: i64,
        source: InvalidRecord,
    },
}

/// Checks that `records` extend the chain at `start`, in order: consecutive seqs, each
/// `prev_hash` the hash before it, each `hash` recomputed. Returns the new head.
pub fn verify_chain(start: ChainHead, records: &[LedgerRecord]) -> Result<ChainHead, ChainError> {
    let mut head = start;
    let mut buf = Vec::new();
    for (index, r) in records.iter().enumerate() {
        if r.seq != head.next_seq {
            return Err(ChainError::SeqGap {
                index,
                expected: head.next_seq,
                found: r.seq,
            });
        }
        if r.prev_hash != head.head_hash {
            return Err(ChainError::PrevHashMismatch { index, seq: r.seq });
        }
        let computed = r
            .compute_hash_with(&mut buf)
            .map_err(|source| ChainError::Invalid {
                index,
                seq: r.seq,
                source,
            })?;
        if computed != r.hash {
            return Err(ChainError::HashMismatch { index, seq: r.seq });
        }
        head = ChainHead::after(r);
    }
    Ok(head)
}
