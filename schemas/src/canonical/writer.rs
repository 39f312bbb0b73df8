//! The direct canonical writer: a [`LedgerRecord`] straight to its RFC 8785 (JCS) bytes,
//! without building a `serde_json::Value` and without re-sorting anything at run time.
//!
//! It writes exactly what `serde_json_canonicalizer` writes for [`super::record_json`] minus
//! `hash` (the reference, kept as [`LedgerRecord::canonical_bytes_reference`]):
//! * **member order**: every fixed member name is ASCII, so UTF-16 order is byte order; each
//!   object below writes its members in that order, precomputed by hand (the sorted list is
//!   in the comment at the top of each writer; tests compare every object with the reference).
//!   Map members (`extensions`, `annotations`) have arbitrary names: a `BTreeMap` iterates
//!   them in UTF-8 byte order (= code point order), which is UTF-16 order unless one name has
//!   a character in U+E000..=U+FFFF where another has one above U+FFFF (UTF-16 puts the
//!   surrogates, 0xD800..=0xDFFF, first). Maps holding any character ≥ U+E000 in a name are
//!   sorted again by UTF-16 code units ([`put_map`]); the others are written as they iterate.
//! * **strings** (JCS § 3.2.2.2, ECMAScript `JSON.stringify`): `"` and `\` and the C0
//!   controls are escaped, as `\b \t \n \f \r` where they have a short form and `\u00xx` (lower
//!   case hex) otherwise; everything else (DEL, U+2028, U+2029, astral characters) is written
//!   as its UTF-8 bytes. Rust strings hold no lone surrogates, so there is nothing else to do.
//!   The scan for bytes to escape reads 8 bytes at a time ([`first_escape`]).
//! * **numbers**: ledger numbers are integers with |n| ≤ 2^53 − 1 (the caller has run
//!   [`LedgerRecord::check`], which allows 0..=2^53 − 1), where ECMAScript's
//!   `Number.prototype.toString` prints the plain decimal integer.
//! * absent optionals are omitted, as `record_json` omits them; nothing is ever `null`.
//!
//! The output goes to a [`Sink`]: a `Vec<u8>`, or [`HashSink`], which feeds SHA-256 through a
//! 1 KiB stack buffer so that hashing a record allocates nothing.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::event::{
    Approval, Artifact, Build, Data, Dataset, Deploy, Event, EventData, Job, Runtime,
};
use crate::ledger::{
    DuplicateMarker, EventRecord, LedgerHash, LedgerRecord, Link, LinkResolution, RecordBody,
    Redaction, RejectedMarker,
};

/// Where canonical bytes go.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// SHA-256 fed through a stack buffer (one `update` per ~buffer of output rather than one per
/// fragment).
pub(crate) struct HashSink {
    hasher: Sha256,
    buf: [u8; HashSink::BUF],
    len: usize,
}

impl HashSink {
    const BUF: usize = 1024;

    /// A hasher that has already taken `prefix` parts (domain, prev_hash).
    pub(crate) fn new(prefix: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for p in prefix {
            hasher.update(p);
        }
        Self {
            hasher,
            buf: [0; HashSink::BUF],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if let Some(pending) = self.buf.get(..self.len) {
            self.hasher.update(pending);
        }
        self.len = 0;
    }

    /// The digest. Takes `&mut self`, not `self`: moving the buffer out costs a copy.
    pub(crate) fn finish(&mut self) -> LedgerHash {
        self.flush();
        self.hasher.finalize_reset().into()
    }

    /// The rare case of [`Sink::put`]: the buffer is full.
    #[cold]
    #[inline(never)]
    fn put_slow(&mut self, bytes: &[u8]) {
        self.flush();
        match self.buf.get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = bytes.len();
            }
            None => self.hasher.update(bytes),
        }
    }
}

impl Sink for HashSink {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.put_slow(bytes),
        }
    }
}

/// Writes the canonical bytes of `r` (its JSON form without `hash`). The caller has checked
/// `r` ([`LedgerRecord::check`]).
pub(crate) fn put_record<S: Sink>(out: &mut S, r: &LedgerRecord) {
    // body, prev_hash, raw_offset, seq, writer_epoch
    out.put(b"{\"body\":{");
    match &r.body {
        RecordBody::Event(er) => {
            out.put(b"\"event\":");
            put_event_record(out, er);
        }
        RecordBody::Rejected(m) => {
            out.put(b"\"rejected\":");
            put_rejected(out, m);
        }
        RecordBody::Duplicate(m) => {
            out.put(b"\"duplicate\":");
            put_duplicate(out, m);
        }
        RecordBody::LinkResolution(m) => {
            out.put(b"\"link_resolution\":");
            put_link_resolution(out, m);
        }
    }
    out.put(b"},\"prev_hash\":");
    put_hex(out, &r.prev_hash);
    out.put(b",\"raw_offset\":");
    put_int(out, r.raw_offset);
    out.put(b",\"seq\":");
    put_int(out, r.seq);
    out.put(b",\"writer_epoch\":");
    put_int(out, r.writer_epoch);
    out.put(b"}");
}

/// An object being written: members must come in canonical order; optional ones may be
/// skipped, so the comma depends on what came before.
pub(super) struct Obj<'a, S: Sink> {
    out: &'a mut S,
    first: bool,
}

impl<'a, S: Sink> Obj<'a, S> {
    #[inline]
    pub(super) fn open(out: &'a mut S) -> Self {
        out.put(b"{");
        Self { out, first: true }
    }

    /// Starts a member: writes the comma if needed and `"name":`. `name` is one of our fixed
    /// member names (ASCII, nothing to escape).
    #[inline(always)]
    pub(super) fn key(&mut self, name: &str) -> &mut S {
        if self.first {
            self.first = false;
            self.out.put(b"\"");
        } else {
            self.out.put(b",\"");
        }
        self.out.put(name.as_bytes());
        self.out.put(b"\":");
        self.out
    }

    #[inline]
    pub(super) fn str(&mut self, name: &str, v: &str) {
        put_str(self.key(name), v);
    }

    /// An optional member given as `Option<&str>`.
    #[inline]
    pub(super) fn opt_str(&mut self, name: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(name, v);
        }
    }

    #[inline]
    fn opt(&mut self, name: &str, v: Option<&String>) {
        if let Some(v) = v {
            self.str(name, v);
        }
    }

    #[inline]
    pub(super) fn int(&mut self, name: &str, v: i64) {
        put_int(self.key(name), v);
    }

    #[inline]
    fn map(&mut self, name: &str, m: &BTreeMap<String, String>) {
        put_map(self.key(name), m);
    }

    #[inline]
    pub(super) fn close(self) {
        self.out.put(b"}");
    }
}

fn put_event_record<S: Sink>(out: &mut S, er: &EventRecord) {
    // event, links, redactions
    out.put(b"{\"event\":");
    put_event(out, &er.event);
    out.put(b",\"links\":[");
    for (i, l) in er.links.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_link(out, l);
    }
    out.put(b"],\"redactions\":[");
    for (i, r) in er.redactions.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_redaction(out, r);
    }
    out.put(b"]}");
}

fn put_redaction<S: Sink>(out: &mut S, r: &Redaction) {
    // action, detector, path
    let mut o = Obj::open(out);
    o.str("action", r.action.as_str());
    o.str("detector", &r.detector);
    o.str("path", &r.path);
    o.close();
}

fn put_link<S: Sink>(out: &mut S, l: &Link) {
    // relation, status, target, target_hash?, target_partition?, target_seq?
    let mut o = Obj::open(out);
    o.str("relation", l.relation.as_str());
    o.str("status", l.status.as_str());
    o.str("target", &l.target);
    if let Some(h) = &l.target_hash {
        put_hex(o.key("target_hash"), h);
    }
    if let Some(p) = l.target_partition {
        o.int("target_partition", i64::from(p));
    }
    if let Some(s) = l.target_seq {
        o.int("target_seq", s);
    }
    o.close();
}

fn put_rejected<S: Sink>(out: &mut S, m: &RejectedMarker) {
    // dlq_offset, dlq_partition, reason_code, reason_message
    let mut o = Obj::open(out);
    o.int("dlq_offset", m.dlq_offset);
    o.int("dlq_partition", i64::from(m.dlq_partition));
    o.str("reason_code", &m.reason_code);
    o.str("reason_message", &m.reason_message);
    o.close();
}

fn put_duplicate<S: Sink>(out: &mut S, m: &DuplicateMarker) {
    // id, original_partition, original_seq, source
    let mut o = Obj::open(out);
    o.str("id", &m.id);
    o.int("original_partition", i64::from(m.original_partition));
    o.int("original_seq", m.original_seq);
    o.str("source", &m.source);
    o.close();
}

fn put_link_resolution<S: Sink>(out: &mut S, m: &LinkResolution) {
    // relation, resolves_seq, target, target_hash, target_partition, target_seq
    let mut o = Obj::open(out);
    o.str("relation", m.relation.as_str());
    o.int("resolves_seq", m.resolves_seq);
    o.str("target", &m.target);
    put_hex(o.key("target_hash"), &m.target_hash);
    o.int("target_partition", i64::from(m.target_partition));
    o.int("target_seq", m.target_seq);
    o.close();
}

fn put_event<S: Sink>(out: &mut S, e: &Event) {
    // data, dataschema?, extensions, id, mapped_from?, source, subject?, time?
    let mut o = Obj::open(out);
    put_data(o.key("data"), &e.data);
    o.opt("dataschema", e.dataschema.as_ref());
    o.map("extensions", &e.extensions);
    o.str("id", &e.id);
    o.opt("mapped_from", e.mapped_from.as_ref());
    o.str("source", &e.source);
    o.opt("subject", e.subject.as_ref());
    o.opt("time", e.time.as_ref());
    o.close();
}

fn put_data<S: Sink>(out: &mut S, d: &EventData) {
    // a one-member object named by the kind
    let mut o = Obj::open(out);
    let inner = o.key(d.kind().as_str());
    match d {
        EventData::Build(b) => put_build(inner, b),
        EventData::Artifact(a) => put_artifact(inner, a),
        EventData::Deploy(d) => put_deploy(inner, d),
        EventData::Runtime(r) => put_runtime(inner, r),
        EventData::Data(d) => put_data_run(inner, d),
        EventData::Approval(a) => put_approval(inner, a),
    }
    o.close();
}

fn put_build<S: Sink>(out: &mut S, b: &Build) {
    // actor?, annotations, artifact_digest?, branch?, build_id, build_timestamp, commit_sha,
    // pipeline_url?, repo_url?, signature?
    let mut o = Obj::open(out);
    o.opt("actor", b.actor.as_ref());
    o.map("annotations", &b.annotations);
    o.opt("artifact_digest", b.artifact_digest.as_ref());
    o.opt("branch", b.branch.as_ref());
    o.str("build_id", &b.build_id);
    o.str("build_timestamp", &b.build_timestamp);
    o.str("commit_sha", &b.commit_sha);
    o.opt("pipeline_url", b.pipeline_url.as_ref());
    o.opt("repo_url", b.repo_url.as_ref());
    o.opt("signature", b.signature.as_ref());
    o.close();
}

fn put_artifact<S: Sink>(out: &mut S, a: &Artifact) {
    // annotations, artifact_digest, build_id?, commit_sha?, name?, signature?
    let mut o = Obj::open(out);
    o.map("annotations", &a.annotations);
    o.str("artifact_digest", &a.artifact_digest);
    o.opt("build_id", a.build_id.as_ref());
    o.opt("commit_sha", a.commit_sha.as_ref());
    o.opt("name", a.name.as_ref());
    o.opt("signature", a.signature.as_ref());
    o.close();
}

fn put_deploy<S: Sink>(out: &mut S, d: &Deploy) {
    // actor?, annotations, artifact_digest, config_hash?, deploy_id, deploy_timestamp,
    // environment, pipeline_url?, previous_deploy_id?, service
    let mut o = Obj::open(out);
    o.opt("actor", d.actor.as_ref());
    o.map("annotations", &d.annotations);
    o.str("artifact_digest", &d.artifact_digest);
    o.opt("config_hash", d.config_hash.as_ref());
    o.str("deploy_id", &d.deploy_id);
    o.str("deploy_timestamp", &d.deploy_timestamp);
    o.str("environment", &d.environment);
    o.opt("pipeline_url", d.pipeline_url.as_ref());
    o.opt("previous_deploy_id", d.previous_deploy_id.as_ref());
    o.str("service", &d.service);
    o.close();
}

fn put_runtime<S: Sink>(out: &mut S, r: &Runtime) {
    // annotations, artifact_digest?, deploy_id?, environment, instance_id, message?, service,
    // trace_id?
    let mut o = Obj::open(out);
    o.map("annotations", &r.annotations);
    o.opt("artifact_digest", r.artifact_digest.as_ref());
    o.opt("deploy_id", r.deploy_id.as_ref());
    o.str("environment", &r.environment);
    o.str("instance_id", &r.instance_id);
    o.opt("message", r.message.as_ref());
    o.str("service", &r.service);
    o.opt("trace_id", r.trace_id.as_ref());
    o.close();
}

fn put_data_run<S: Sink>(out: &mut S, d: &Data) {
    // annotations, event_type, inputs, job, outputs, run_id
    let mut o = Obj::open(out);
    o.map("annotations", &d.annotations);
    o.str("event_type", d.event_type.as_str());
    put_datasets(o.key("inputs"), &d.inputs);
    put_job(o.key("job"), &d.job);
    put_datasets(o.key("outputs"), &d.outputs);
    o.str("run_id", &d.run_id);
    o.close();
}

fn put_job<S: Sink>(out: &mut S, j: &Job) {
    // name, namespace
    let mut o = Obj::open(out);
    o.str("name", &j.name);
    o.str("namespace", &j.namespace);
    o.close();
}

fn put_datasets<S: Sink>(out: &mut S, list: &[Dataset]) {
    out.put(b"[");
    for (i, x) in list.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        // name, namespace, schema_version?, snapshot_id?
        let mut o = Obj::open(out);
        o.str("name", &x.name);
        o.str("namespace", &x.namespace);
        o.opt("schema_version", x.schema_version.as_ref());
        o.opt("snapshot_id", x.snapshot_id.as_ref());
        o.close();
    }
    out.put(b"]");
}

fn put_approval<S: Sink>(out: &mut S, a: &Approval) {
    // annotations, approval_id, approver, artifact_digest?, decision, deploy_id?, environment,
    // policy?, reason?
    let mut o = Obj::open(out);
    o.map("annotations", &a.annotations);
    o.str("approval_id", &a.approval_id);
    o.str("approver", &a.approver);
    o.opt("artifact_digest", a.artifact_digest.as_ref());
    o.str("decision", a.decision.as_str());
    o.opt("deploy_id", a.deploy_id.as_ref());
    o.str("environment", &a.environment);
    o.opt("policy", a.policy.as_ref());
    o.opt("reason", a.reason.as_ref());
    o.close();
}

/// A map of strings as a JSON object, members in UTF-16 code unit order.
fn put_map<S: Sink>(out: &mut S, m: &BTreeMap<String, String>) {
    out.put(b"{");
    // UTF-8 byte order (the BTreeMap's) and UTF-16 order differ only between a character in
    // U+E000..=U+FFFF (UTF-8 lead byte 0xEE or 0xEF) and one above U+FFFF (lead byte 0xF0 or
    // more): without such bytes in any name, the map's own order is canonical.
    if m.keys().any(|k| k.bytes().any(|b| b >= 0xEE)) {
        let mut members: Vec<(&String, &String)> = m.iter().collect();
        members.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
        put_members(out, members);
    } else {
        put_members(out, m.iter());
    }
    out.put(b"}");
}

fn put_members<'a, S: Sink>(
    out: &mut S,
    members: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_str(out, k);
        out.put(b":");
        put_str(out, v);
    }
}

/// Compares two strings by their UTF-16 code units (RFC 8785 § 3.2.3).
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of `x` is below 0x20, `"` or `\`. Exact (no false positives
/// or negatives): `(x - n·ONES) & !x & HIGHS` is non-zero iff some byte of `x` is below `n`,
/// for `n` ≤ 0x80 ("Bit Twiddling Hacks", hasless), and a byte equals `c` iff the same byte
/// of `x ^ c·ONES` is zero (below 1).
#[inline]
fn any_needs_escape(x: u64) -> bool {
    let below = |v: u64, n: u64| v.wrapping_sub(n.wrapping_mul(ONES)) & !v & HIGHS != 0;
    below(x, 0x20)
        || below(x ^ u64::from(b'"').wrapping_mul(ONES), 1)
        || below(x ^ u64::from(b'\\').wrapping_mul(ONES), 1)
}

/// The index of the first byte that must be escaped, if any: 8 bytes at a time, then byte by
/// byte in the last partial word or the word that holds one.
#[inline]
fn first_escape(bytes: &[u8]) -> Option<usize> {
    let mut skipped = 0;
    for word in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        if any_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        skipped += 8;
    }
    let rest = bytes.get(skipped..)?;
    rest.iter()
        .position(|&b| needs_escape(b))
        .map(|i| i + skipped)
}

/// A JSON string as JCS writes it.
pub(crate) fn put_str<S: Sink>(out: &mut S, s: &str) {
    out.put(b"\"");
    let mut rest = s.as_bytes();
    while let Some(i) = first_escape(rest) {
        let Some((clean, tail)) = rest.split_at_checked(i) else {
            break;
        };
        out.put(clean);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        put_escape(out, b);
        rest = tail;
    }
    out.put(rest);
    out.put(b"\"");
}

fn put_escape<S: Sink>(out: &mut S, b: u8) {
    match b {
        b'"' => out.put(b"\\\""),
        b'\\' => out.put(b"\\\\"),
        0x08 => out.put(b"\\b"),
        b'\t' => out.put(b"\\t"),
        b'\n' => out.put(b"\\n"),
        0x0c => out.put(b"\\f"),
        b'\r' => out.put(b"\\r"),
        _ => out.put(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            hex_digit(b >> 4),
            hex_digit(b & 0xf),
        ]),
    }
}

#[inline]
fn hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + (nibble - 10)
    }
}

/// A hash as a JSON string of lowercase hex.
pub(super) fn put_hex<S: Sink>(out: &mut S, h: &LedgerHash) {
    let mut buf = [b'"'; 66];
    if let Some(digits) = buf.get_mut(1..65) {
        for (pair, b) in digits.chunks_exact_mut(2).zip(h) {
            if let [hi, lo] = pair {
                *hi = hex_digit(b >> 4);
                *lo = hex_digit(b & 0xf);
            }
        }
    }
    out.put(&buf);
}

/// An integer as JCS prints a number with this value, for |v| ≤ 2^53 − 1: plain decimal
/// digits (with a `-` if negative, which [`LedgerRecord::check`] rules out).
pub(crate) fn put_int<S: Sink>(out: &mut S, v: i64) {
    let mut buf = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        // n % 10 < 10: the cast cannot truncate.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.put(b"-");
    }
    out.put(buf.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use serde_json::{Map, Value};

    fn reference_str(s: &str) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(&Value::String(s.into())).unwrap()
    }

    fn fast_str(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_str(&mut out, s);
        out
    }

    fn reference_map(m: &BTreeMap<String, String>) -> Vec<u8> {
        let obj: Map<String, Value> = m
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        serde_json_canonicalizer::to_vec(&Value::Object(obj)).unwrap()
    }

    fn fast_map(m: &BTreeMap<String, String>) -> Vec<u8> {
        let mut out = Vec::new();
        put_map(&mut out, m);
        out
    }

    #[test]
    fn escapes_exactly_quote_backslash_and_c0_controls() {
        assert_eq!(fast_str(""), b"\"\"");
        assert_eq!(fast_str("plain"), b"\"plain\"");
        assert_eq!(fast_str("a\"b\\c"), br#""a\"b\\c""#);
        assert_eq!(
            fast_str("\u{8}\t\n\u{c}\r"),
            br#""\b\t\n\f\r""#,
            "the five short escapes"
        );
        assert_eq!(
            fast_str("\u{0}\u{1}\u{b}\u{e}\u{1a}\u{1f}"),
            br#""\u0000\u0001\u000b\u000e\u001a\u001f""#,
            "the other C0 controls: \\u00xx with lowercase hex"
        );
        // Not escaped: '/', DEL, C1 controls, U+2028/U+2029, BMP private use, astral.
        let raw =
            "/\u{7f}\u{80}\u{9f}\u{2028}\u{2029}\u{e000}\u{fffd}\u{ffff}\u{10000}🦀\u{10ffff}";
        assert_eq!(fast_str(raw), format!("\"{raw}\"").into_bytes());
        // Escapes at the start, the end, and back to back.
        assert_eq!(fast_str("\"\"x\n"), br#""\"\"x\n""#);
        for c in (0u32..0x80).chain([0x2028, 0xe000, 0xffff, 0x1f980, 0x10ffff]) {
            let c = char::from_u32(c).unwrap();
            let s = format!("a{c}b{c}");
            assert_eq!(fast_str(&s), reference_str(&s), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn the_word_at_a_time_scan_finds_every_escape_at_every_offset() {
        // Each byte value at each position of strings of 0..=24 bytes, among bytes that are
        // close to the escaped ones (0x1f/0x20/0x21, 0x5b/0x5d, 0x7f, and non-ASCII).
        for len in 0..=24usize {
            for pos in 0..len {
                for b in 0u8..0x80 {
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b' ', b'!', b'#', b'[', b']', b'\x7f', b'a'][i % 7])
                        .collect();
                    bytes[pos] = b;
                    let expected = bytes.iter().position(|&x| needs_escape(x));
                    assert_eq!(
                        first_escape(&bytes),
                        expected,
                        "len {len} pos {pos} byte {b:#x}"
                    );
                }
            }
        }
        for s in [
            "",
            "é漢🦀\u{e000}\u{ffff}\u{10ffff}",
            "€€€€€€€€€€€\u{1f}",
            "\u{80}\u{7ff}\u{800}\"x",
        ] {
            assert_eq!(
                first_escape(s.as_bytes()),
                s.bytes().position(needs_escape),
                "{s:?}"
            );
            assert_eq!(fast_str(s), reference_str(s), "{s:?}");
        }
    }

    #[test]
    fn map_members_are_sorted_by_utf16_code_units_not_utf8_bytes() {
        // U+E000 (UTF-16: E000) sorts after U+1F980 (UTF-16: D83E DD80), though its UTF-8
        // bytes (EE 80 80) sort before (F0 9F A6 80), and so does U+FFFF.
        let m: BTreeMap<String, String> = [
            ("\u{e000}", "private"),
            ("🦀", "crab"),
            ("\u{ffff}", "last bmp"),
            ("\u{10000}", "first astral"),
            ("z", "ascii"),
            ("é", "latin"),
            ("", "empty"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let expected = "{\"\":\"empty\",\"z\":\"ascii\",\"é\":\"latin\",\"\u{10000}\":\"first astral\",\"🦀\":\"crab\",\"\u{e000}\":\"private\",\"\u{ffff}\":\"last bmp\"}";
        assert_eq!(String::from_utf8(fast_map(&m)).unwrap(), expected);
        assert_eq!(fast_map(&m), reference_map(&m));
        // The BTreeMap's own (UTF-8) order puts U+E000 first: it must not be used here.
        let utf8_order: Vec<&String> = m.keys().collect();
        assert!(
            utf8_order.iter().position(|k| *k == "\u{e000}")
                < utf8_order.iter().position(|k| *k == "🦀")
        );

        // Shared prefixes, escapes in names, and names differing only after the character
        // where the orders disagree.
        let m: BTreeMap<String, String> = [
            "a\u{e000}",
            "a\u{10000}",
            "a",
            "a\u{e000}\u{10000}",
            "a\u{10000}\u{e000}",
            "a\"",
            "a\n",
            "a\u{d7ff}",
            "a\u{fffd}x",
            "a\u{1f980}y",
        ]
        .into_iter()
        .map(|k| (k.to_owned(), k.to_owned()))
        .collect();
        assert_eq!(fast_map(&m), reference_map(&m));
        let keys_in_output: Vec<String> = {
            let v: Value = serde_json::from_slice(&fast_map(&m)).unwrap();
            v.as_object().unwrap().keys().cloned().collect()
        };
        let mut by_utf16: Vec<String> = m.keys().cloned().collect();
        by_utf16.sort_by(|a, b| cmp_utf16(a, b));
        assert_eq!(keys_in_output, by_utf16);

        // Empty map; ASCII-only map in its own order.
        assert_eq!(fast_map(&BTreeMap::new()), b"{}");
        let m = BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(fast_map(&m), br#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn utf16_order_differs_from_utf8_order_only_above_u_e000() {
        assert_eq!(cmp_utf16("\u{e000}", "\u{10000}"), Ordering::Greater);
        assert_eq!("\u{e000}".cmp("\u{10000}"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{d7ff}", "\u{10000}"), Ordering::Less);
        assert_eq!(cmp_utf16("a", "ab"), Ordering::Less);
        assert_eq!(cmp_utf16("🦀", "🦀"), Ordering::Equal);
    }

    #[test]
    fn integers_print_as_jcs_numbers() {
        for v in [
            0i64,
            1,
            9,
            10,
            99,
            100,
            12_345,
            i64::from(i32::MAX),
            (1 << 53) - 1,
            -1,
            -(1 << 53) + 1,
        ] {
            let mut out = Vec::new();
            put_int(&mut out, v);
            // serde_json_canonicalizer prints every number as an ECMAScript double.
            let reference = serde_json_canonicalizer::to_vec(&Value::from(v)).unwrap();
            assert_eq!(out, reference, "{v}");
            assert_eq!(out, v.to_string().into_bytes());
        }
    }

    #[test]
    fn hashes_are_lowercase_hex_strings() {
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        let mut out = Vec::new();
        put_hex(&mut out, &h);
        assert_eq!(out, format!("\"{}\"", hex::encode(h)).into_bytes());
    }

    #[test]
    fn hash_sink_equals_one_shot_sha256_at_every_buffer_boundary() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for chunk in [1usize, 3, 63, 64, 65, 511, 512, 513, 1500, 3000] {
            let mut sink = HashSink::new(&[b"dom\0", &[1; 32]]);
            for piece in data.chunks(chunk) {
                sink.put(piece);
            }
            let mut h = Sha256::new();
            h.update(b"dom\0");
            h.update([1; 32]);
            h.update(&data);
            let expected: LedgerHash = h.finalize().into();
            assert_eq!(sink.finish(), expected, "chunk {chunk}");
        }
    }
}
