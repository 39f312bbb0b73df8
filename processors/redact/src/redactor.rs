//! [`Redactor`]: applies a compiled [`Policy`] to an event, to arbitrary JSON, or to one
//! string.
//!
//! Called by the processor between validation and linking, and for DLQ payloads. For every
//! string field, in this order:
//! 1. a format-locked field (`time`, `commit_sha`, `artifact_digest`, `*_timestamp`,
//!    `run_id`) that holds a value of its format is left as is: none of the detectors can
//!    match such a value (tested), and records link by it;
//! 2. the first field rule whose glob matches the path decides (`keep`: nothing else runs;
//!    `drop` / `mask` / `hmac`: the whole value);
//! 3. otherwise the detectors run and each span found is masked or tokenized (or the field
//!    dropped, for a detector whose action is `drop`).
//!
//! Guarantees:
//! * **Validity**: an event that passed [`provenant_schemas::Event::validate`] still does
//!   after [`Redactor::redact_event`]. Required fields are never dropped (masked, or
//!   tokenized, instead); identifiers and annotation keys get tokens instead of masks (so
//!   that distinct ids stay distinct and equal ids equal, and links still join); a URL field
//!   is dropped rather than left without its scheme; a value that would grow past its length
//!   limit is replaced whole.
//! * **Idempotence**: redacting a redacted value finds nothing (the redactor's own outputs
//!   are recognised; a replacement is re-scanned until clean, at most 3 times, and replaced
//!   whole if it still is not).
//! * **No leak in the report**: a [`Redaction`] holds the path (with redacted annotation keys
//!   in it), the detector or rule name and the action, never a value.
//! * **Cost**: a string in which nothing is found costs two linear passes and no allocation.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use foldhash::fast::FixedState;
use hmac::{Hmac, Mac};
use provenant_schemas::Limits;
use provenant_schemas::event::{Dataset, Event, EventData};
use provenant_schemas::ledger::{Redaction, RedactionAction};
use provenant_schemas::validate::{MAX_ANNOTATION_KEY_BYTES, MAX_IDENTIFIER_BYTES};
use serde_json::Value;
use sha2::Sha256;

use crate::detector::Detector;
use crate::policy::{
    Compiled, CompiledRule, DetectorAction, KeySource, Policy, PolicyError, RuleAction,
};
use crate::scan::{Finding, TOKEN_LEN, token_at};
use crate::secret::Secret;

/// Domain separation for the token MAC, so that the key could never be confused with a key
/// used for something else.
const TOKEN_CONTEXT: &[u8] = b"provenant.redact.v1\0";
/// The mask a field rule writes.
pub const RULE_MASK: &str = "[REDACTED]";
/// How many times a replacement is re-scanned before it is replaced whole.
const MAX_ROUNDS: usize = 3;

/// What redaction did to one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was found.
    Unchanged,
    /// The value is to be replaced by this one.
    Replace(String),
    /// The value is to be removed.
    Drop,
}

/// Applies a policy. Cheap to share between threads (`&self` everywhere).
#[derive(Clone)]
pub struct Redactor {
    compiled: Compiled,
    /// Member names of the event model (CloudEvents attributes, the fields of every kind's
    /// data) in which this policy's detectors find nothing: [`Redactor::redact_json`] skips
    /// scanning them as object keys, with the same outcome (a key name is scanned alone, so
    /// the verdict on a fixed name never changes). Fixed at build; lookups only.
    clean_names: HashSet<Box<str>, FixedState>,
    /// The keyed MAC, with the key already absorbed; cloned per token.
    mac: Hmac<Sha256>,
    key_source: KeySource,
    limits: Limits,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.compiled.rules.len())
            .field("key", &"Secret(***)")
            .field("key_source", &self.key_source)
            .finish_non_exhaustive()
    }
}

/// How a field may be rewritten (see the module guarantees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Free text.
    Text,
    /// An http(s) URL (`pipeline_url`): must keep its scheme.
    Url,
    /// An identifier: non-empty, ≤ 512 bytes, no whitespace at the ends; masks become tokens.
    Ident,
    /// An annotation key or JSON member name: ≤ 253 bytes, no whitespace; masks become tokens.
    Key,
    /// A fixed-format field.
    Locked(Format),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    CommitSha,
    Digest,
    Timestamp,
    Uuid,
}

impl Format {
    fn holds(self, v: &str) -> bool {
        use provenant_schemas::validate;
        match self {
            Format::CommitSha => validate::commit_sha("", v).is_ok(),
            Format::Digest => validate::digest("", v).is_ok(),
            Format::Timestamp => timestamp_shape(v),
            Format::Uuid => uuid::Uuid::parse_str(v).is_ok(),
        }
    }
}

/// `dddd-dd-ddTdd:dd:dd[.d+](Z|±dd:dd)`: the shape of an RFC 3339 timestamp, checked
/// without parsing (a validated event's timestamps have it; a value of this shape holds
/// nothing any detector matches, so skipping it is safe even when the date is not real).
fn timestamp_shape(v: &str) -> bool {
    let b = v.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let c = |i: usize, x: u8| b.get(i) == Some(&x);
    let head = (0..4).all(d)
        && c(4, b'-')
        && d(5)
        && d(6)
        && c(7, b'-')
        && d(8)
        && d(9)
        && c(10, b'T')
        && d(11)
        && d(12)
        && c(13, b':')
        && d(14)
        && d(15)
        && c(16, b':')
        && d(17)
        && d(18);
    if !head {
        return false;
    }
    let mut i = 19;
    if c(i, b'.') {
        i += 1;
        let start = i;
        while d(i) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && d(i + 1) && d(i + 2) && c(i + 3, b':') && d(i + 4) && d(i + 5)
        }
        _ => false,
    }
}

/// One field being redacted: its path (as up to three pieces, joined only when a
/// redaction is recorded), how it may be rewritten, and the key it sits under.
struct Field<'a> {
    path: [&'a str; 3],
    class: Class,
    can_drop: bool,
    key: Option<&'a str>,
}

impl Field<'_> {
    fn path_string(&self) -> String {
        self.path.concat()
    }
}

impl Redactor {
    /// A redactor for `policy` with the HMAC key `key` (at least 32 bytes).
    pub fn new(policy: &Policy, key: Secret) -> Result<Redactor, PolicyError> {
        Redactor::build(policy, key, KeySource::Caller)
    }

    /// A redactor for `policy` with the key the policy names ([`Policy::load_key`]).
    pub fn from_policy(policy: &Policy) -> Result<Redactor, PolicyError> {
        let (key, source) = policy.load_key()?;
        Redactor::build(policy, key, source)
    }

    fn build(policy: &Policy, key: Secret, key_source: KeySource) -> Result<Redactor, PolicyError> {
        let compiled = policy.compile()?;
        if key.len() < crate::policy::MIN_KEY_BYTES {
            return Err(PolicyError::KeyTooShort {
                from: key_source.to_string(),
                len: key.len(),
            });
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret()).map_err(|_| {
            PolicyError::KeyTooShort {
                from: key_source.to_string(),
                len: key.len(),
            }
        })?;
        let mut clean_names = HashSet::with_hasher(FixedState::default());
        let mut findings = Vec::new();
        for name in model_member_names() {
            compiled.scanner.scan(&name, None, &mut findings);
            if findings.is_empty() {
                clean_names.insert(name.into_boxed_str());
            }
        }
        Ok(Redactor {
            compiled,
            clean_names,
            mac,
            key_source,
            limits: Limits::DEFAULT,
        })
    }

    /// Uses `limits` (the processor's validation limits) for the longest string a
    /// replacement may produce.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Where the key came from (safe to log).
    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// The token of `value`: `hmac:` and the first 16 hex digits of
    /// HMAC-SHA256(key, "provenant.redact.v1\0" ‖ value).
    pub fn token(&self, value: &str) -> String {
        let mut s = String::with_capacity(TOKEN_LEN);
        self.push_token(&mut s, value.as_bytes(), false);
        s
    }

    fn push_token(&self, out: &mut String, value: &[u8], lowercase: bool) {
        let mut mac = self.mac.clone();
        mac.update(TOKEN_CONTEXT);
        if lowercase {
            for chunk in value.chunks(64) {
                let mut buf = [0u8; 64];
                for (d, s) in buf.iter_mut().zip(chunk) {
                    *d = s.to_ascii_lowercase();
                }
                mac.update(buf.get(..chunk.len()).unwrap_or_default());
            }
        } else {
            mac.update(value);
        }
        let tag = mac.finalize().into_bytes();
        out.push_str("hmac:");
        for byte in tag.iter().take(8) {
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
    }

    /// Redacts one free-text string found at `path` (its last segment is taken as the key
    /// it sits under, for the secret-like-key detector). Returns what to do with it and the
    /// redactions done.
    pub fn redact_str(&self, path: &str, value: &str) -> (Outcome, Vec<Redaction>) {
        let mut out = Vec::new();
        let key = last_segment(path);
        let field = Field {
            path: [path, "", ""],
            class: Class::Text,
            can_drop: true,
            key: Some(key),
        };
        let outcome = self.decide(&field, value, &mut out);
        (outcome, out)
    }

    /// Redacts every string field of `event` in place and returns the redactions, in the
    /// order done. Paths name the event's fields: `id`, `source`, `subject`, `dataschema`,
    /// `mapped_from`, `extensions.<name>`, `data.<field>`, `data.annotations.<key>`,
    /// `data.job.name`, `data.inputs[0].namespace`, …
    pub fn redact_event(&self, event: &mut Event) -> Vec<Redaction> {
        let mut out = Vec::new();
        self.req(&mut out, ["id", "", ""], Class::Ident, &mut event.id);
        self.req(
            &mut out,
            ["source", "", ""],
            Class::Ident,
            &mut event.source,
        );
        self.opt(
            &mut out,
            "time",
            Class::Locked(Format::Timestamp),
            true,
            &mut event.time,
        );
        self.opt(&mut out, "subject", Class::Ident, true, &mut event.subject);
        self.opt(
            &mut out,
            "dataschema",
            Class::Ident,
            true,
            &mut event.dataschema,
        );
        self.extensions(&mut out, &mut event.extensions);
        self.opt(
            &mut out,
            "mapped_from",
            Class::Ident,
            true,
            &mut event.mapped_from,
        );
        let o = &mut out;
        match &mut event.data {
            EventData::Build(b) => {
                self.req(
                    o,
                    ["data.commit_sha", "", ""],
                    Class::Locked(Format::CommitSha),
                    &mut b.commit_sha,
                );
                self.opt(o, "data.branch", Class::Ident, true, &mut b.branch);
                self.req(o, ["data.build_id", "", ""], Class::Ident, &mut b.build_id);
                self.req(
                    o,
                    ["data.build_timestamp", "", ""],
                    Class::Locked(Format::Timestamp),
                    &mut b.build_timestamp,
                );
                self.opt(o, "data.actor", Class::Text, true, &mut b.actor);
                self.opt(
                    o,
                    "data.pipeline_url",
                    Class::Url,
                    true,
                    &mut b.pipeline_url,
                );
                self.opt(o, "data.repo_url", Class::Text, true, &mut b.repo_url);
                self.opt(
                    o,
                    "data.artifact_digest",
                    Class::Locked(Format::Digest),
                    true,
                    &mut b.artifact_digest,
                );
                self.opt(o, "data.signature", Class::Text, true, &mut b.signature);
                self.annotations(o, &mut b.annotations);
            }
            EventData::Artifact(a) => {
                self.req(
                    o,
                    ["data.artifact_digest", "", ""],
                    Class::Locked(Format::Digest),
                    &mut a.artifact_digest,
                );
                self.opt(o, "data.build_id", Class::Ident, true, &mut a.build_id);
                self.opt(
                    o,
                    "data.commit_sha",
                    Class::Locked(Format::CommitSha),
                    true,
                    &mut a.commit_sha,
                );
                self.opt(o, "data.name", Class::Ident, true, &mut a.name);
                self.opt(o, "data.signature", Class::Text, true, &mut a.signature);
                self.annotations(o, &mut a.annotations);
            }
            EventData::Deploy(d) => {
                self.req(
                    o,
                    ["data.deploy_id", "", ""],
                    Class::Ident,
                    &mut d.deploy_id,
                );
                self.req(
                    o,
                    ["data.artifact_digest", "", ""],
                    Class::Locked(Format::Digest),
                    &mut d.artifact_digest,
                );
                self.req(
                    o,
                    ["data.environment", "", ""],
                    Class::Ident,
                    &mut d.environment,
                );
                self.req(o, ["data.service", "", ""], Class::Ident, &mut d.service);
                self.req(
                    o,
                    ["data.deploy_timestamp", "", ""],
                    Class::Locked(Format::Timestamp),
                    &mut d.deploy_timestamp,
                );
                self.opt(o, "data.actor", Class::Text, true, &mut d.actor);
                self.opt(
                    o,
                    "data.config_hash",
                    Class::Ident,
                    true,
                    &mut d.config_hash,
                );
                self.opt(
                    o,
                    "data.previous_deploy_id",
                    Class::Ident,
                    true,
                    &mut d.previous_deploy_id,
                );
                self.opt(
                    o,
                    "data.pipeline_url",
                    Class::Url,
                    true,
                    &mut d.pipeline_url,
                );
                self.annotations(o, &mut d.annotations);
            }
            EventData::Runtime(r) => {
                self.req(
                    o,
                    ["data.instance_id", "", ""],
                    Class::Ident,
                    &mut r.instance_id,
                );
                self.req(o, ["data.service", "", ""], Class::Ident, &mut r.service);
                self.req(
                    o,
                    ["data.environment", "", ""],
                    Class::Ident,
                    &mut r.environment,
                );
                // A runtime event needs deploy_id or artifact_digest: never drop the last one.
                let other = r.artifact_digest.is_some();
                self.opt(o, "data.deploy_id", Class::Ident, other, &mut r.deploy_id);
                let other = r.deploy_id.is_some();
                self.opt(
                    o,
                    "data.artifact_digest",
                    Class::Locked(Format::Digest),
                    other,
                    &mut r.artifact_digest,
                );
                self.opt(o, "data.trace_id", Class::Ident, true, &mut r.trace_id);
                self.opt(o, "data.message", Class::Text, true, &mut r.message);
                self.annotations(o, &mut r.annotations);
            }
            EventData::Data(d) => {
                self.req(
                    o,
                    ["data.job.namespace", "", ""],
                    Class::Ident,
                    &mut d.job.namespace,
                );
                self.req(o, ["data.job.name", "", ""], Class::Ident, &mut d.job.name);
                self.req(
                    o,
                    ["data.run_id", "", ""],
                    Class::Locked(Format::Uuid),
                    &mut d.run_id,
                );
                self.datasets(o, "data.inputs[", &mut d.inputs);
                self.datasets(o, "data.outputs[", &mut d.outputs);
                self.annotations(o, &mut d.annotations);
            }
            EventData::Approval(a) => {
                self.req(
                    o,
                    ["data.approval_id", "", ""],
                    Class::Ident,
                    &mut a.approval_id,
                );
                let other = a.artifact_digest.is_some();
                self.opt(o, "data.deploy_id", Class::Ident, other, &mut a.deploy_id);
                let other = a.deploy_id.is_some();
                self.opt(
                    o,
                    "data.artifact_digest",
                    Class::Locked(Format::Digest),
                    other,
                    &mut a.artifact_digest,
                );
                self.req(
                    o,
                    ["data.environment", "", ""],
                    Class::Ident,
                    &mut a.environment,
                );
                self.req(o, ["data.approver", "", ""], Class::Text, &mut a.approver);
                self.opt(o, "data.reason", Class::Text, true, &mut a.reason);
                self.opt(o, "data.policy", Class::Ident, true, &mut a.policy);
                self.annotations(o, &mut a.annotations);
            }
        }
        out
    }

    /// Redacts every string (and every integer of 7 digits or more, which could be a card or
    /// phone number) inside an arbitrary JSON value, and every object member name. Paths are
    /// dotted member names with `[i]` for array elements (`data.annotations.owner`,
    /// `[3].data.actor`). A dropped member is removed; a dropped array element becomes null.
    pub fn redact_json(&self, value: &mut Value) -> Vec<Redaction> {
        let mut out = Vec::new();
        let mut path = String::new();
        if self.json(&mut path, None, value, &mut out) {
            *value = Value::Null;
        }
        out
    }

    // ---- walking ----------------------------------------------------------------------

    fn req(&self, out: &mut Vec<Redaction>, path: [&str; 3], class: Class, v: &mut String) {
        let field = Field {
            path,
            class,
            can_drop: false,
            key: None,
        };
        if let Outcome::Replace(s) = self.decide(&field, v, out) {
            *v = s;
        }
    }

    fn opt(
        &self,
        out: &mut Vec<Redaction>,
        path: &str,
        class: Class,
        can_drop: bool,
        v: &mut Option<String>,
    ) {
        let Some(s) = v.as_deref() else { return };
        let field = Field {
            path: [path, "", ""],
            class,
            can_drop,
            key: None,
        };
        match self.decide(&field, s, out) {
            Outcome::Unchanged => {}
            Outcome::Replace(n) => *v = Some(n),
            Outcome::Drop => *v = None,
        }
    }

    fn extensions(&self, out: &mut Vec<Redaction>, ext: &mut BTreeMap<String, String>) {
        // Names are `[a-z0-9]{1,64}` and cannot take a token: one a detector matches is
        // removed with its value.
        let mut findings = Vec::new();
        let mut removed: Vec<String> = Vec::new();
        for name in ext.keys() {
            self.compiled.scanner.scan(name, None, &mut findings);
            if let Some(f) = findings.first() {
                out.push(Redaction {
                    path: "extensions".into(),
                    detector: f.detector.name().into(),
                    action: RedactionAction::Drop,
                });
                removed.push(name.clone());
            }
        }
        for name in &removed {
            ext.remove(name);
        }
        let mut dropped: Vec<String> = Vec::new();
        for (name, value) in ext.iter_mut() {
            let field = Field {
                path: ["extensions.", name, ""],
                class: Class::Text,
                can_drop: true,
                key: Some(name),
            };
            match self.decide(&field, value, out) {
                Outcome::Unchanged => {}
                Outcome::Replace(n) => *value = n,
                Outcome::Drop => dropped.push(name.clone()),
            }
        }
        for name in &dropped {
            ext.remove(name);
        }
    }

    fn annotations(&self, out: &mut Vec<Redaction>, map: &mut BTreeMap<String, String>) {
        const PREFIX: &str = "data.annotations.";
        // Keys first, so that value paths name the redacted key.
        let mut renames: Vec<(String, String)> = Vec::new();
        for key in map.keys() {
            let mark = out.len();
            let field = Field {
                path: [PREFIX, "", ""],
                class: Class::Key,
                can_drop: false,
                key: None,
            };
            if let Outcome::Replace(new_key) = self.decide(&field, key, out) {
                for r in out.iter_mut().skip(mark) {
                    r.path = format!("{PREFIX}{new_key}");
                }
                renames.push((key.clone(), new_key));
            }
        }
        for (old, mut new_key) in renames {
            let Some(value) = map.remove(&old) else {
                continue;
            };
            if map.contains_key(&new_key) {
                // Two keys redacted alike: the token of the whole original key is unique.
                new_key = self.token(&old);
            }
            map.insert(new_key, value);
        }
        let mut dropped: Vec<String> = Vec::new();
        for (key, value) in map.iter_mut() {
            let field = Field {
                path: [PREFIX, key, ""],
                class: Class::Text,
                can_drop: true,
                key: Some(key),
            };
            match self.decide(&field, value, out) {
                Outcome::Unchanged => {}
                Outcome::Replace(n) => *value = n,
                Outcome::Drop => dropped.push(key.clone()),
            }
        }
        for key in &dropped {
            map.remove(key);
        }
    }

    fn datasets(&self, out: &mut Vec<Redaction>, prefix: &str, list: &mut [Dataset]) {
        for (i, ds) in list.iter_mut().enumerate() {
            let mut buf = [0u8; 20];
            let idx = fmt_index(i, &mut buf);
            self.req(
                out,
                [prefix, idx, "].namespace"],
                Class::Ident,
                &mut ds.namespace,
            );
            self.req(out, [prefix, idx, "].name"], Class::Ident, &mut ds.name);
            for (suffix, v) in [
                ("].snapshot_id", &mut ds.snapshot_id),
                ("].schema_version", &mut ds.schema_version),
            ] {
                let Some(s) = v.as_deref() else { continue };
                let field = Field {
                    path: [prefix, idx, suffix],
                    class: Class::Ident,
                    can_drop: true,
                    key: None,
                };
                match self.decide(&field, s, out) {
                    Outcome::Unchanged => {}
                    Outcome::Replace(n) => *v = Some(n),
                    Outcome::Drop => *v = None,
                }
            }
        }
    }

    /// Returns true when `v` is to be dropped by the caller.
    fn json(
        &self,
        path: &mut String,
        key: Option<&str>,
        v: &mut Value,
        out: &mut Vec<Redaction>,
    ) -> bool {
        match v {
            Value::String(s) => {
                let field = Field {
                    path: [path.as_str(), "", ""],
                    class: Class::Text,
                    can_drop: true,
                    key,
                };
                match self.decide(&field, s, out) {
                    Outcome::Unchanged => false,
                    Outcome::Replace(n) => {
                        *s = n;
                        false
                    }
                    Outcome::Drop => true,
                }
            }
            Value::Number(n) => {
                let big = n.as_u64().is_some_and(|x| x >= 1_000_000)
                    || n.as_i64().is_some_and(|x| x <= -1_000_000);
                if !big {
                    return false;
                }
                let text = n.to_string();
                let field = Field {
                    path: [path.as_str(), "", ""],
                    class: Class::Text,
                    can_drop: true,
                    key,
                };
                match self.decide(&field, &text, out) {
                    Outcome::Unchanged => false,
                    Outcome::Replace(s) => {
                        *v = Value::String(s);
                        false
                    }
                    Outcome::Drop => true,
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                    if self.json(path, None, item, out) {
                        *item = Value::Null;
                    }
                    path.truncate(len);
                }
                false
            }
            Value::Object(map) => {
                self.json_keys(path, map, out);
                let mut dropped: Vec<String> = Vec::new();
                for (k, item) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    if self.json(path, Some(k), item, out) {
                        dropped.push(k.clone());
                    }
                    path.truncate(len);
                }
                for k in &dropped {
                    map.shift_remove(k);
                }
                false
            }
            Value::Null | Value::Bool(_) => false,
        }
    }

    fn json_keys(
        &self,
        path: &str,
        map: &mut serde_json::Map<String, Value>,
        out: &mut Vec<Redaction>,
    ) {
        let mut renames: Vec<(String, String)> = Vec::new();
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}.")
        };
        for key in map.keys() {
            if self.clean_names.contains(key.as_str()) {
                continue;
            }
            let mark = out.len();
            let field = Field {
                path: [&prefix, "", ""],
                class: Class::Key,
                can_drop: false,
                key: None,
            };
            if let Outcome::Replace(new_key) = self.decide(&field, key, out) {
                for r in out.iter_mut().skip(mark) {
                    r.path = format!("{prefix}{new_key}");
                }
                renames.push((key.clone(), new_key));
            }
        }
        if renames.is_empty() {
            return;
        }
        let old = std::mem::take(map);
        for (k, v) in old {
            let new_key = match renames.iter().find(|(o, _)| *o == k) {
                Some((_, n)) if !map.contains_key(n) => n.clone(),
                Some(_) => self.token(&k),
                None => k,
            };
            map.insert(new_key, v);
        }
    }

    // ---- one value --------------------------------------------------------------------

    fn rule_for(&self, field: &Field<'_>) -> Option<&CompiledRule> {
        if self.compiled.rules.is_empty() || field.class == Class::Key {
            return None;
        }
        self.compiled
            .rules
            .iter()
            .find(|r| r.globs.iter().any(|g| g.matches_parts(&field.path)))
    }

    fn decide(&self, field: &Field<'_>, value: &str, out: &mut Vec<Redaction>) -> Outcome {
        let class = match field.class {
            Class::Locked(format) if format.holds(value) => return Outcome::Unchanged,
            Class::Locked(_) => Class::Ident,
            c => c,
        };
        if let Some(rule) = self.rule_for(field) {
            return self.apply_rule(field, class, rule, value, out);
        }
        let mut findings: Vec<Finding> = Vec::new();
        self.compiled.scanner.scan(value, field.key, &mut findings);
        if findings.is_empty() {
            return Outcome::Unchanged;
        }
        let mark = out.len();
        let wants_drop = findings
            .iter()
            .any(|f| self.action(f.detector) == DetectorAction::Drop);
        if wants_drop && field.can_drop && class != Class::Key {
            for f in &findings {
                record(out, mark, field, f.detector.name(), RedactionAction::Drop);
            }
            return Outcome::Drop;
        }
        let first = findings
            .first()
            .map_or(Detector::SecretKeyEntropy, |f| f.detector);
        let mut current = match self.replace_spans(field, class, value, &findings, out, mark) {
            Some(s) => s,
            None => return self.whole(field, class, first, value, out, mark),
        };
        let mut clean = false;
        for _ in 0..MAX_ROUNDS {
            self.compiled
                .scanner
                .scan(&current, field.key, &mut findings);
            if findings.is_empty() {
                clean = true;
                break;
            }
            match self.replace_spans(field, class, &current, &findings, out, mark) {
                Some(s) => current = s,
                None => break,
            }
        }
        if !clean {
            return self.whole(field, class, first, value, out, mark);
        }
        let fits = match class {
            Class::Ident => current.len() <= MAX_IDENTIFIER_BYTES,
            Class::Key => current.len() <= MAX_ANNOTATION_KEY_BYTES,
            Class::Url => {
                current.len() <= self.limits.max_string_bytes
                    && (current.starts_with("https://") || current.starts_with("http://"))
                    && !current.chars().any(char::is_whitespace)
            }
            _ => current.len() <= self.limits.max_string_bytes,
        };
        if !fits {
            return self.whole(field, class, first, value, out, mark);
        }
        Outcome::Replace(current)
    }

    fn action(&self, d: Detector) -> DetectorAction {
        self.compiled
            .actions
            .get(d.index())
            .copied()
            .unwrap_or(DetectorAction::Mask)
    }

    fn apply_rule(
        &self,
        field: &Field<'_>,
        class: Class,
        rule: &CompiledRule,
        value: &str,
        out: &mut Vec<Redaction>,
    ) -> Outcome {
        let mark = out.len();
        match rule.action {
            RuleAction::Keep => Outcome::Unchanged,
            _ if is_redacted_form(value) => Outcome::Unchanged,
            RuleAction::Drop if field.can_drop => {
                record(out, mark, field, &rule.label, RedactionAction::Drop);
                Outcome::Drop
            }
            _ if class == Class::Url && field.can_drop => {
                record(out, mark, field, &rule.label, RedactionAction::Drop);
                Outcome::Drop
            }
            action => {
                let tokenize = action == RuleAction::Hmac
                    || matches!(class, Class::Ident | Class::Key | Class::Url);
                if tokenize {
                    record(out, mark, field, &rule.label, RedactionAction::Token);
                    Outcome::Replace(self.token(value))
                } else {
                    record(out, mark, field, &rule.label, RedactionAction::Mask);
                    Outcome::Replace(RULE_MASK.to_owned())
                }
            }
        }
    }

    /// Replaces each span by its mask or token. None if a span is not on character
    /// boundaries (cannot happen with the shipped detectors; the caller then replaces the
    /// whole value).
    fn replace_spans(
        &self,
        field: &Field<'_>,
        class: Class,
        value: &str,
        findings: &[Finding],
        out: &mut Vec<Redaction>,
        mark: usize,
    ) -> Option<String> {
        let mut s = String::with_capacity(value.len() + 32 * findings.len());
        let mut last = 0;
        for f in findings {
            s.push_str(value.get(last..f.start)?);
            let span = value.get(f.start..f.end)?;
            let tokenize = match self.action(f.detector) {
                DetectorAction::Hmac => true,
                _ => matches!(class, Class::Ident | Class::Key),
            };
            if tokenize {
                self.push_token(&mut s, span.as_bytes(), f.detector == Detector::Email);
                record(out, mark, field, f.detector.name(), RedactionAction::Token);
            } else {
                s.push_str(f.detector.mask());
                record(out, mark, field, f.detector.name(), RedactionAction::Mask);
            }
            last = f.end;
        }
        s.push_str(value.get(last..)?);
        Some(s)
    }

    /// Replaces the whole value: a token for identifiers and keys, a drop for URLs, the
    /// detector's mask for text.
    fn whole(
        &self,
        field: &Field<'_>,
        class: Class,
        d: Detector,
        value: &str,
        out: &mut Vec<Redaction>,
        mark: usize,
    ) -> Outcome {
        match class {
            Class::Ident | Class::Key | Class::Locked(_) => {
                record(out, mark, field, d.name(), RedactionAction::Token);
                Outcome::Replace(self.token(value))
            }
            Class::Url if field.can_drop => {
                record(out, mark, field, d.name(), RedactionAction::Drop);
                Outcome::Drop
            }
            Class::Url | Class::Text => {
                record(out, mark, field, d.name(), RedactionAction::Mask);
                Outcome::Replace(d.mask().to_owned())
            }
        }
    }
}

/// Records one redaction of the field, once per (detector, action): `mark` is where this
/// field's records start in `out`.
fn record(
    out: &mut Vec<Redaction>,
    mark: usize,
    field: &Field<'_>,
    detector: &str,
    action: RedactionAction,
) {
    let seen = out
        .iter()
        .skip(mark)
        .any(|r| r.detector == detector && r.action == action);
    if !seen {
        out.push(Redaction {
            path: field.path_string(),
            detector: detector.to_owned(),
            action,
        });
    }
}

/// A value that is already a mask or a token.
fn is_redacted_form(v: &str) -> bool {
    v == RULE_MASK
        || (v.len() == TOKEN_LEN && token_at(v.as_bytes(), 0))
        || Detector::ALL.iter().any(|d| d.mask() == v)
}

/// The name a value sits under: the last dotted segment of its path, without an index.
fn last_segment(path: &str) -> &str {
    let seg = path.rsplit('.').next().unwrap_or(path);
    seg.split('[').next().unwrap_or(seg)
}

fn hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

/// `i` in decimal, in `buf`, without allocating.
fn fmt_index(mut i: usize, buf: &mut [u8; 20]) -> &str {
    let mut pos = buf.len();
    loop {
        pos -= 1;
        if let Some(slot) = buf.get_mut(pos) {
            *slot = b'0' + (i % 10) as u8;
        }
        i /= 10;
        if i == 0 || pos == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(pos..).unwrap_or_default()).unwrap_or("0")
}

/// Every member name of the event model: the CloudEvents attributes and every field name of
/// the Avro schema of a whole event (envelope and each kind's data, datasets included).
fn model_member_names() -> Vec<String> {
    fn fields(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Array(fs)) = o.get("fields") {
                    for f in fs {
                        if let Some(Value::String(name)) = f.get("name") {
                            out.push(name.clone());
                        }
                    }
                }
                for x in o.values() {
                    fields(x, out);
                }
            }
            Value::Array(a) => {
                for x in a {
                    fields(x, out);
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<String> = provenant_schemas::validate::RESERVED_ATTRIBUTE_NAMES
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    if let Ok(schema) = provenant_schemas::avro::SchemaId::Event.schema_json() {
        fields(&schema, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_names_cover_the_envelope_and_every_kind() {
        let names = model_member_names();
        for n in [
            "specversion",
            "id",
            "datacontenttype",
            "data",
            "commit_sha",
            "artifact_digest",
            "instance_id",
            "approver",
            "inputs",
            "namespace",
            "annotations",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        let r = Redactor::new(&Policy::default_policy(), Secret::generate()).unwrap();
        assert_eq!(r.clean_names.len(), names.len(), "no model name is flagged");
    }

    /// Skipping the model's clean member names changes nothing: every corpus document, and
    /// documents whose keys are secrets themselves, redact the same with and without it.
    #[test]
    fn skipping_clean_model_names_gives_the_same_output() {
        let with = Redactor::new(&Policy::default_policy(), Secret::from("k".repeat(32))).unwrap();
        let mut without = with.clone();
        without.clean_names.clear();
        let mut docs: Vec<Value> = crate::corpus::documents()
            .unwrap()
            .into_iter()
            .map(|d| d.json)
            .collect();
        docs.push(serde_json::json!({
            "id": "x", "alice@example.com": "v", "data": {
                "annotations": {"AKIAIOSFODNN7EXAMPLE": "k", "password": "hunter2hunter2", "note": "ok"},
                "actor": "bob@example.com", "4111 1111 1111 1111": 1
            }
        }));
        for d in docs {
            let (mut a, mut b) = (d.clone(), d.clone());
            let ra = with.redact_json(&mut a);
            let rb = without.redact_json(&mut b);
            assert_eq!(a, b, "{d}");
            assert_eq!(ra, rb, "{d}");
        }
    }

    #[test]
    fn timestamp_shapes() {
        for ok in [
            "2026-11-23T10:00:00Z",
            "2026-11-23T10:00:00.123456789+05:30",
            "1999-12-31T23:59:59-08:00",
        ] {
            assert!(timestamp_shape(ok), "{ok}");
        }
        for bad in [
            "2026-11-23",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:00.Z",
            "2026-11-23T10:00:00Zx",
            "2026-11-23 10:00:00Z",
            "123-45-6789",
        ] {
            assert!(!timestamp_shape(bad), "{bad}");
        }
    }

    #[test]
    fn index_formatting() {
        let mut buf = [0u8; 20];
        assert_eq!(fmt_index(0, &mut buf), "0");
        assert_eq!(fmt_index(42, &mut buf), "42");
        assert_eq!(fmt_index(usize::MAX, &mut buf), usize::MAX.to_string());
    }

    #[test]
    fn last_segments() {
        assert_eq!(last_segment("data.annotations.DB_PASSWORD"), "DB_PASSWORD");
        assert_eq!(last_segment("data.inputs[0]"), "inputs");
        assert_eq!(last_segment("token"), "token");
    }
}
