//! Record hashes straight from archived Avro datums: [`hash_record_datum`], the fast path of
//! `provenant verify`.
//!
//! `verify` recomputes the hash of every archived record. Decoding each datum into an owned
//! [`crate::LedgerRecord`] (a `String` per field, a `BTreeMap` per map) and then writing its
//! canonical bytes allocates and copies every field twice; here the canonical bytes are written
//! from the datum's own bytes (strings borrowed, fields of an object read into locals and then
//! written in canonical member order) and streamed into SHA-256, with no allocation per record.
//!
//! Invariants, checked by the tests against the strict decoder and the canonical writer (the
//! definition): for any input, [`hash_record_datum`] accepts exactly what
//! [`crate::LedgerRecord::from_avro_datum_prefix`] accepts (the same Avro checks through the same
//! `Reader`, the datum size limit and every rule of [`crate::LedgerRecord::check`]), returns the
//! same datum length, and its `computed` hash is [`crate::LedgerRecord::compute_hash`] of the
//! decoded record. Its errors say what failed, but not always the same first failure as the
//! strict decoder: callers that report an error re-read the datum with the strict decoder (as
//! `verify` does) for the exact message.

use super::HASH_DOMAIN;
use super::writer::{HashSink, Obj, Sink, cmp_utf16, put_hex, put_int, put_str};
use crate::avro::{Reader, SchemaId};
use crate::error::{ErrorCode, EventError};
use crate::event::{Kind, Relation, RunState};
use crate::ledger::{LedgerHash, LinkStatus, MAX_ENTRY_BYTES, MAX_LEDGER_INT, RedactionAction};

/// One archived record as [`hash_record_datum`] read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatumHash {
    pub seq: i64,
    pub prev_hash: LedgerHash,
    /// The hash stored in the record.
    pub hash: LedgerHash,
    /// The hash recomputed from the record's content.
    pub computed: LedgerHash,
    /// The datum's length in bytes.
    pub len: usize,
}

/// Buffers reused from one datum to the next; they borrow from the bytes being read (one
/// decompressed block), so make one per block.
#[derive(Debug, Default)]
pub struct DatumScratch<'a> {
    /// Members of the maps being written.
    pairs: Vec<(&'a str, &'a str)>,
    /// Redactions (read before the links, written after them).
    redactions: Vec<(&'a str, &'a str, RedactionAction)>,
    /// Datasets of a data run: namespace, name, snapshot_id, schema_version.
    datasets: Vec<DatasetRef<'a>>,
}

type DatasetRef<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);

/// Reads the `io.provenant.v1.LedgerRecord` datum at the start of `bytes` (more datums may
/// follow it) and computes its record hash from its content. See the module invariants.
pub fn hash_record_datum<'a>(
    bytes: &'a [u8],
    scratch: &mut DatumScratch<'a>,
) -> Result<DatumHash, EventError> {
    let mut r = Reader::new(bytes, SchemaId::LedgerRecord);
    let seq = r.long("seq")?;
    let prev_hash: LedgerHash = r.fixed("prev_hash")?;
    let hash: LedgerHash = r.fixed("hash")?;
    let raw_offset = r.long("raw_offset")?;
    let writer_epoch = r.long("writer_epoch")?;
    let mut out = HashSink::new(&[HASH_DOMAIN, &prev_hash]);
    // body, prev_hash, raw_offset, seq, writer_epoch
    out.put(b"{\"body\":{");
    match r.index("body", 4)? {
        0 => {
            out.put(b"\"event\":");
            event_record(&mut r, &mut out, scratch)?;
        }
        1 => {
            out.put(b"\"rejected\":");
            rejected(&mut r, &mut out)?;
        }
        2 => {
            out.put(b"\"duplicate\":");
            duplicate(&mut r, &mut out)?;
        }
        _ => {
            out.put(b"\"link_resolution\":");
            link_resolution(&mut r, &mut out, seq)?;
        }
    }
    out.put(b"},\"prev_hash\":");
    put_hex(&mut out, &prev_hash);
    out.put(b",\"raw_offset\":");
    put_int(&mut out, raw_offset);
    out.put(b",\"seq\":");
    put_int(&mut out, seq);
    out.put(b",\"writer_epoch\":");
    put_int(&mut out, writer_epoch);
    out.put(b"}");
    let len = r.position();
    if len > MAX_ENTRY_BYTES {
        return Err(EventError::input(
            ErrorCode::TooLarge,
            format!("ledger entry is {len} bytes, over the limit of {MAX_ENTRY_BYTES} bytes"),
        ));
    }
    int("seq", seq)?;
    int("raw_offset", raw_offset)?;
    int("writer_epoch", writer_epoch)?;
    Ok(DatumHash {
        seq,
        prev_hash,
        hash,
        computed: out.finish(),
        len,
    })
}

/// [`crate::LedgerRecord::check`]'s number rule.
fn int(field: &str, v: i64) -> Result<(), EventError> {
    if (0..=MAX_LEDGER_INT).contains(&v) {
        Ok(())
    } else {
        Err(invalid(field, "must be an integer from 0 to 2^53-1"))
    }
}

fn invalid(field: &str, message: &str) -> EventError {
    EventError::field(ErrorCode::InvalidValue, field, message.to_owned())
}

fn relation(r: &mut Reader<'_>, field: &str) -> Result<Relation, EventError> {
    let i = r.index(field, Relation::ALL.len())?;
    Relation::ALL
        .get(i)
        .copied()
        .ok_or_else(|| r.error(field, "enum index out of range"))
}

/// Reads an Avro `map<string>` into `pairs` (appended) and checks that no key is there twice.
fn read_map<'a>(
    r: &mut Reader<'a>,
    field: &str,
    pairs: &mut Vec<(&'a str, &'a str)>,
) -> Result<std::ops::Range<usize>, EventError> {
    let start = pairs.len();
    loop {
        let n = r.block(field)?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let k = r.str(field)?;
            let v = r.str(field)?;
            pairs.push((k, v));
        }
    }
    let end = pairs.len();
    if let Some(members) = pairs.get_mut(start..end) {
        // UTF-8 byte order: the order of the decoder's `BTreeMap`.
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if members
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.0 == b.0))
        {
            return Err(r.error(field, "map has a key twice"));
        }
    }
    Ok(start..end)
}

/// Writes the map members `pairs[range]` (sorted by [`read_map`]) as the canonical writer
/// writes a `BTreeMap`: in UTF-16 code unit order.
fn put_map<S: Sink>(out: &mut S, pairs: &mut [(&str, &str)]) {
    if pairs.iter().any(|(k, _)| k.bytes().any(|b| b >= 0xEE)) {
        pairs.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
    }
    out.put(b"{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_str(out, k);
        out.put(b":");
        put_str(out, v);
    }
    out.put(b"}");
}

/// Reads a map and writes it as the member `name` of `o`, then forgets its members.
fn map_member<'a, S: Sink>(
    o: &mut Obj<'_, S>,
    name: &str,
    r: &mut Reader<'a>,
    field: &str,
    pairs: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), EventError> {
    let range = read_map(r, field, pairs)?;
    let start = range.start;
    if let Some(members) = pairs.get_mut(range) {
        put_map(o.key(name), members);
    }
    pairs.truncate(start);
    Ok(())
}

fn event_record<'a>(
    r: &mut Reader<'a>,
    out: &mut HashSink,
    scratch: &mut DatumScratch<'a>,
) -> Result<(), EventError> {
    // Canonical: event, links, redactions. Avro: event, redactions, links.
    out.put(b"{\"event\":");
    event(r, out, scratch)?;
    scratch.redactions.clear();
    loop {
        let n = r.block("body.redactions")?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let path = r.str("body.redactions.path")?;
            let detector = r.str("body.redactions.detector")?;
            let i = r.index("body.redactions.action", RedactionAction::ALL.len())?;
            let action = RedactionAction::ALL
                .get(i)
                .copied()
                .ok_or_else(|| r.error("body.redactions.action", "enum index out of range"))?;
            scratch.redactions.push((path, detector, action));
        }
    }
    out.put(b",\"links\":[");
    let mut first = true;
    loop {
        let n = r.block("body.links")?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            if !first {
                out.put(b",");
            }
            first = false;
            link(r, out)?;
        }
    }
    out.put(b"],\"redactions\":[");
    for (i, (path, detector, action)) in scratch.redactions.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        // action, detector, path
        let mut o = Obj::open(&mut *out);
        o.str("action", action.as_str());
        o.str("detector", detector);
        o.str("path", path);
        o.close();
    }
    out.put(b"]}");
    Ok(())
}

fn link(r: &mut Reader<'_>, out: &mut HashSink) -> Result<(), EventError> {
    let relation = relation(r, "body.links.relation")?;
    let target = r.str("body.links.target")?;
    let status = if r.index("body.links.status", 2)? == 0 {
        LinkStatus::Resolved
    } else {
        LinkStatus::Pending
    };
    let target_hash: Option<LedgerHash> = r.opt_fixed("body.links.target_hash")?;
    let target_partition = r.opt_int("body.links.target_partition")?;
    let target_seq = r.opt_long("body.links.target_seq")?;
    let all = target_hash.is_some() && target_partition.is_some() && target_seq.is_some();
    let none = target_hash.is_none() && target_partition.is_none() && target_seq.is_none();
    match status {
        LinkStatus::Resolved if !all => {
            return Err(invalid(
                "body.event.links.status",
                "a resolved link needs target_hash, target_partition and target_seq",
            ));
        }
        LinkStatus::Pending if !none => {
            return Err(invalid(
                "body.event.links.status",
                "a pending link has no target_hash, target_partition or target_seq",
            ));
        }
        _ => {}
    }
    if let Some(p) = target_partition {
        int("body.event.links.target_partition", i64::from(p))?;
    }
    if let Some(s) = target_seq {
        int("body.event.links.target_seq", s)?;
    }
    // relation, status, target, target_hash?, target_partition?, target_seq?
    let mut o = Obj::open(out);
    o.str("relation", relation.as_str());
    o.str("status", status.as_str());
    o.str("target", target);
    if let Some(h) = &target_hash {
        put_hex(o.key("target_hash"), h);
    }
    if let Some(p) = target_partition {
        o.int("target_partition", i64::from(p));
    }
    if let Some(s) = target_seq {
        o.int("target_seq", s);
    }
    o.close();
    Ok(())
}

fn rejected(r: &mut Reader<'_>, out: &mut HashSink) -> Result<(), EventError> {
    let reason_code = r.str("body.reason_code")?;
    let reason_message = r.str("body.reason_message")?;
    let dlq_partition = i64::from(r.int("body.dlq_partition")?);
    let dlq_offset = r.long("body.dlq_offset")?;
    int("body.rejected.dlq_partition", dlq_partition)?;
    int("body.rejected.dlq_offset", dlq_offset)?;
    // dlq_offset, dlq_partition, reason_code, reason_message
    let mut o = Obj::open(out);
    o.int("dlq_offset", dlq_offset);
    o.int("dlq_partition", dlq_partition);
    o.str("reason_code", reason_code);
    o.str("reason_message", reason_message);
    o.close();
    Ok(())
}

fn duplicate(r: &mut Reader<'_>, out: &mut HashSink) -> Result<(), EventError> {
    let original_partition = i64::from(r.int("body.original_partition")?);
    let original_seq = r.long("body.original_seq")?;
    let source = r.str("body.source")?;
    let id = r.str("body.id")?;
    int("body.duplicate.original_partition", original_partition)?;
    int("body.duplicate.original_seq", original_seq)?;
    // id, original_partition, original_seq, source
    let mut o = Obj::open(out);
    o.str("id", id);
    o.int("original_partition", original_partition);
    o.int("original_seq", original_seq);
    o.str("source", source);
    o.close();
    Ok(())
}

fn link_resolution(r: &mut Reader<'_>, out: &mut HashSink, seq: i64) -> Result<(), EventError> {
    let resolves_seq = r.long("body.resolves_seq")?;
    let relation = relation(r, "body.relation")?;
    let target = r.str("body.target")?;
    let target_hash: LedgerHash = r.fixed("body.target_hash")?;
    let target_partition = i64::from(r.int("body.target_partition")?);
    let target_seq = r.long("body.target_seq")?;
    int("body.link_resolution.resolves_seq", resolves_seq)?;
    if resolves_seq >= seq {
        return Err(invalid(
            "body.link_resolution.resolves_seq",
            "must name an earlier record of the partition",
        ));
    }
    int("body.link_resolution.target_partition", target_partition)?;
    int("body.link_resolution.target_seq", target_seq)?;
    // relation, resolves_seq, target, target_hash, target_partition, target_seq
    let mut o = Obj::open(out);
    o.str("relation", relation.as_str());
    o.int("resolves_seq", resolves_seq);
    o.str("target", target);
    put_hex(o.key("target_hash"), &target_hash);
    o.int("target_partition", target_partition);
    o.int("target_seq", target_seq);
    o.close();
    Ok(())
}

fn event<'a>(
    r: &mut Reader<'a>,
    out: &mut HashSink,
    scratch: &mut DatumScratch<'a>,
) -> Result<(), EventError> {
    let id = r.str("id")?;
    let source = r.str("source")?;
    let time = r.opt_str("time")?;
    let subject = r.opt_str("subject")?;
    let dataschema = r.opt_str("dataschema")?;
    let extensions = read_map(r, "extensions", &mut scratch.pairs)?;
    let mapped_from = r.opt_str("mapped_from")?;
    let branch = r.index("data", Kind::ALL.len())?;
    let kind = Kind::ALL
        .get(branch)
        .copied()
        .ok_or_else(|| r.error("data", "union index out of range"))?;
    // data, dataschema?, extensions, id, mapped_from?, source, subject?, time?
    let mut o = Obj::open(out);
    {
        // a one-member object named by the kind
        let mut d = Obj::open(o.key("data"));
        data(r, d.key(kind.as_str()), kind, scratch)?;
        d.close();
    }
    o.opt_str("dataschema", dataschema);
    let start = extensions.start;
    if let Some(members) = scratch.pairs.get_mut(extensions) {
        put_map(o.key("extensions"), members);
    }
    scratch.pairs.truncate(start);
    o.str("id", id);
    o.opt_str("mapped_from", mapped_from);
    o.str("source", source);
    o.opt_str("subject", subject);
    o.opt_str("time", time);
    o.close();
    Ok(())
}

fn data<'a>(
    r: &mut Reader<'a>,
    out: &mut HashSink,
    kind: Kind,
    scratch: &mut DatumScratch<'a>,
) -> Result<(), EventError> {
    let pairs = &mut scratch.pairs;
    match kind {
        Kind::Build => {
            let commit_sha = r.str("data.commit_sha")?;
            let branch = r.opt_str("data.branch")?;
            let build_id = r.str("data.build_id")?;
            let build_timestamp = r.str("data.build_timestamp")?;
            let actor = r.opt_str("data.actor")?;
            let pipeline_url = r.opt_str("data.pipeline_url")?;
            let repo_url = r.opt_str("data.repo_url")?;
            let artifact_digest = r.opt_str("data.artifact_digest")?;
            let signature = r.opt_str("data.signature")?;
            // actor?, annotations, artifact_digest?, branch?, build_id, build_timestamp,
            // commit_sha, pipeline_url?, repo_url?, signature?
            let mut o = Obj::open(out);
            o.opt_str("actor", actor);
            map_member(&mut o, "annotations", r, "data.annotations", pairs)?;
            o.opt_str("artifact_digest", artifact_digest);
            o.opt_str("branch", branch);
            o.str("build_id", build_id);
            o.str("build_timestamp", build_timestamp);
            o.str("commit_sha", commit_sha);
            o.opt_str("pipeline_url", pipeline_url);
            o.opt_str("repo_url", repo_url);
            o.opt_str("signature", signature);
            o.close();
        }
        Kind::Artifact => {
            let artifact_digest = r.str("data.artifact_digest")?;
            let build_id = r.opt_str("data.build_id")?;
            let commit_sha = r.opt_str("data.commit_sha")?;
            let name = r.opt_str("data.name")?;
            let signature = r.opt_str("data.signature")?;
            // annotations, artifact_digest, build_id?, commit_sha?, name?, signature?
            let mut o = Obj::open(out);
            map_member(&mut o, "annotations", r, "data.annotations", pairs)?;
            o.str("artifact_digest", artifact_digest);
            o.opt_str("build_id", build_id);
            o.opt_str("commit_sha", commit_sha);
            o.opt_str("name", name);
            o.opt_str("signature", signature);
            o.close();
        }
        Kind::Deploy => {
            let deploy_id = r.str("data.deploy_id")?;
            let artifact_digest = r.str("data.artifact_digest")?;
            let environment = r.str("data.environment")?;
            let service = r.str("data.service")?;
            let deploy_timestamp = r.str("data.deploy_timestamp")?;
            let actor = r.opt_str("data.actor")?;
            let config_hash = r.opt_str("data.config_hash")?;
            let previous_deploy_id = r.opt_str("data.previous_deploy_id")?;
            let pipeline_url = r.opt_str("data.pipeline_url")?;
            // actor?, annotations, artifact_digest, config_hash?, deploy_id, deploy_timestamp,
            // environment, pipeline_url?, previous_deploy_id?, service
            let mut o = Obj::open(out);
            o.opt_str("actor", actor);
            map_member(&mut o, "annotations", r, "data.annotations", pairs)?;
            o.str("artifact_digest", artifact_digest);
            o.opt_str("config_hash", config_hash);
            o.str("deploy_id", deploy_id);
            o.str("deploy_timestamp", deploy_timestamp);
            o.str("environment", environment);
            o.opt_str("pipeline_url", pipeline_url);
            o.opt_str("previous_deploy_id", previous_deploy_id);
            o.str("service", service);
            o.close();
        }
        Kind::Runtime => {
            let instance_id = r.str("data.instance_id")?;
            let service = r.str("data.service")?;
            let environment = r.str("data.environment")?;
            let deploy_id = r.opt_str("data.deploy_id")?;
            let artifact_digest = r.opt_str("data.artifact_digest")?;
            let trace_id = r.opt_str("data.trace_id")?;
            let message = r.opt_str("data.message")?;
            // annotations, artifact_digest?, deploy_id?, environment, instance_id, message?,
            // service, trace_id?
            let mut o = Obj::open(out);
            map_member(&mut o, "annotations", r, "data.annotations", pairs)?;
            o.opt_str("artifact_digest", artifact_digest);
            o.opt_str("deploy_id", deploy_id);
            o.str("environment", environment);
            o.str("instance_id", instance_id);
            o.opt_str("message", message);
            o.str("service", service);
            o.opt_str("trace_id", trace_id);
            o.close();
        }
        Kind::Data => {
            let job_namespace = r.str("data.job.namespace")?;
            let job_name = r.str("data.job.name")?;
            let run_id = r.str("data.run_id")?;
            let state = r.index("data.event_type", RunState::ALL.len())?;
            let event_type = RunState::ALL
                .get(state)
                .copied()
                .ok_or_else(|| r.error("data.event_type", "enum index out of range"))?;
            let datasets = &mut scratch.datasets;
            datasets.clear();
            let inputs = read_datasets(r, "inputs", datasets)?;
            let outputs = read_datasets(r, "outputs", datasets)?;
            // annotations, event_type, inputs, job, outputs, run_id
            let mut o = Obj::open(out);
            map_member(&mut o, "annotations", r, "data.annotations", pairs)?;
            o.str("event_type", event_type.as_str());
            put_datasets(o.key("inputs"), datasets.get(inputs).unwrap_or_default());
            {
                // name, namespace
                let mut j = Obj::open(o.key("job"));
                j.str("name", job_name);
                j.str("namespace", job_namespace);
                j.close();
            }
            put_datasets(o.key("outputs"), datasets.get(outputs).unwrap_or_default());
            o.str("run_id", run_id);
            o.close();
        }
        Kind::Approval => {
            let approval_id = r.str("data.approval_id")?;
            let deploy_id = r.opt_str("data.deploy_id")?;
            let artifact_digest = r.opt_str("data.artifact_digest")?;
            let environment = r.str("data.environment")?;
            let decision = if r.index("data.decision", 2)? == 0 {
                crate::event::Decision::Approved
            } else {
                crate::event::Decision::Rejected
            };
            let approver = r.str("data.approver")?;
            let reason = r.opt_str("data.reason")?;
            let policy = r.opt_str("data.policy")?;
            // annotations, approval_id, approver, artifact_digest?, decision, deploy_id?,
            // environment, policy?, reason?
            let mut o = Obj::open(out);
            map_member(&mut o, "annotations", r, "data.annotations", pairs)?;
            o.str("approval_id", approval_id);
            o.str("approver", approver);
            o.opt_str("artifact_digest", artifact_digest);
            o.str("decision", decision.as_str());
            o.opt_str("deploy_id", deploy_id);
            o.str("environment", environment);
            o.opt_str("policy", policy);
            o.opt_str("reason", reason);
            o.close();
        }
    }
    Ok(())
}

fn read_datasets<'a>(
    r: &mut Reader<'a>,
    which: &str,
    datasets: &mut Vec<DatasetRef<'a>>,
) -> Result<std::ops::Range<usize>, EventError> {
    let start = datasets.len();
    let field = if which == "inputs" {
        "data.inputs"
    } else {
        "data.outputs"
    };
    loop {
        let n = r.block(field)?;
        if n == 0 {
            break;
        }
        for _ in 0..n {
            let namespace = r.str(field)?;
            let name = r.str(field)?;
            let snapshot_id = r.opt_str(field)?;
            let schema_version = r.opt_str(field)?;
            datasets.push((namespace, name, snapshot_id, schema_version));
        }
    }
    Ok(start..datasets.len())
}

fn put_datasets<S: Sink>(out: &mut S, list: &[DatasetRef<'_>]) {
    out.put(b"[");
    for (i, (namespace, name, snapshot_id, schema_version)) in list.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        // name, namespace, schema_version?, snapshot_id?
        let mut o = Obj::open(&mut *out);
        o.str("name", name);
        o.str("namespace", namespace);
        o.opt_str("schema_version", *schema_version);
        o.opt_str("snapshot_id", *snapshot_id);
        o.close();
    }
    out.put(b"]");
}
