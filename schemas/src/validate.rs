//! Field rules for every kind. Called by the decoders (so a decoded event is valid) and by
//! [`crate::Event::validate`] for events built in code.
//!
//! Invariants: every rule names its field and says what is expected, never what was found
//! (see [`crate::error`]); no rule panics or allocates in proportion to anything but its input.

use crate::error::{ErrorCode, EventError};
use crate::event::{Data, Dataset, Event, EventData};
use crate::json::Limits;

/// Longest identifier (ids, names, environment, service): 512 bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 512;
/// Longest annotation key: 253 bytes, as Kubernetes allows.
pub const MAX_ANNOTATION_KEY_BYTES: usize = 253;

/// Checks every field of an event.
pub fn event(e: &Event, limits: &Limits) -> Result<(), EventError> {
    identifier("id", &e.id)?;
    identifier("source", &e.source)?;
    if let Some(t) = &e.time {
        timestamp("time", t)?;
    }
    if let Some(s) = &e.subject {
        identifier("subject", s)?;
    }
    if let Some(s) = &e.dataschema {
        identifier("dataschema", s)?;
    }
    if e.extensions.len() > limits.max_annotations {
        return Err(EventError::field(
            ErrorCode::FieldTooLarge,
            "extensions",
            format!(
                "event has more than {} extension attributes",
                limits.max_annotations
            ),
        ));
    }
    for (name, value) in &e.extensions {
        extension_name(name)?;
        text(name, value, limits)?;
    }
    if let Some(m) = &e.mapped_from {
        identifier("mapped_from", m)?;
    }
    data(&e.data, limits)
}

fn data(d: &EventData, limits: &Limits) -> Result<(), EventError> {
    annotations(d.annotations(), limits)?;
    match d {
        EventData::Build(b) => {
            commit_sha("data.commit_sha", &b.commit_sha)?;
            opt(&b.branch, |v| identifier("data.branch", v))?;
            identifier("data.build_id", &b.build_id)?;
            timestamp("data.build_timestamp", &b.build_timestamp)?;
            opt(&b.actor, |v| text("data.actor", v, limits))?;
            opt(&b.pipeline_url, |v| url("data.pipeline_url", v, limits))?;
            opt(&b.repo_url, |v| text("data.repo_url", v, limits))?;
            opt(&b.artifact_digest, |v| digest("data.artifact_digest", v))?;
            opt(&b.signature, |v| text("data.signature", v, limits))
        }
        EventData::Artifact(a) => {
            digest("data.artifact_digest", &a.artifact_digest)?;
            opt(&a.build_id, |v| identifier("data.build_id", v))?;
            opt(&a.commit_sha, |v| commit_sha("data.commit_sha", v))?;
            opt(&a.name, |v| identifier("data.name", v))?;
            opt(&a.signature, |v| text("data.signature", v, limits))
        }
        EventData::Deploy(dp) => {
            identifier("data.deploy_id", &dp.deploy_id)?;
            digest("data.artifact_digest", &dp.artifact_digest)?;
            identifier("data.environment", &dp.environment)?;
            identifier("data.service", &dp.service)?;
            timestamp("data.deploy_timestamp", &dp.deploy_timestamp)?;
            opt(&dp.actor, |v| text("data.actor", v, limits))?;
            opt(&dp.config_hash, |v| identifier("data.config_hash", v))?;
            opt(&dp.previous_deploy_id, |v| {
                identifier("data.previous_deploy_id", v)
            })?;
            opt(&dp.pipeline_url, |v| url("data.pipeline_url", v, limits))
        }
        EventData::Runtime(r) => {
            identifier("data.instance_id", &r.instance_id)?;
            identifier("data.service", &r.service)?;
            identifier("data.environment", &r.environment)?;
            if r.deploy_id.is_none() && r.artifact_digest.is_none() {
                return Err(EventError::field(
                    ErrorCode::MissingField,
                    "data.deploy_id",
                    "runtime needs deploy_id or artifact_digest",
                ));
            }
            opt(&r.deploy_id, |v| identifier("data.deploy_id", v))?;
            opt(&r.artifact_digest, |v| digest("data.artifact_digest", v))?;
            opt(&r.trace_id, |v| identifier("data.trace_id", v))?;
            opt(&r.message, |v| text("data.message", v, limits))
        }
        EventData::Data(dt) => data_run(dt, limits),
        EventData::Approval(a) => {
            identifier("data.approval_id", &a.approval_id)?;
            if a.deploy_id.is_none() && a.artifact_digest.is_none() {
                return Err(EventError::field(
                    ErrorCode::MissingField,
                    "data.deploy_id",
                    "approval needs deploy_id or artifact_digest",
                ));
            }
            opt(&a.deploy_id, |v| identifier("data.deploy_id", v))?;
            opt(&a.artifact_digest, |v| digest("data.artifact_digest", v))?;
            identifier("data.environment", &a.environment)?;
            text("data.approver", &a.approver, limits)?;
            nonempty("data.approver", &a.approver)?;
            opt(&a.reason, |v| text("data.reason", v, limits))?;
            opt(&a.policy, |v| identifier("data.policy", v))
        }
    }
}

fn data_run(d: &Data, limits: &Limits) -> Result<(), EventError> {
    identifier("data.job.namespace", &d.job.namespace)?;
    identifier("data.job.name", &d.job.name)?;
    if uuid::Uuid::parse_str(&d.run_id).is_err() {
        return Err(EventError::field(
            ErrorCode::InvalidValue,
            "data.run_id",
            "run_id must be a UUID",
        ));
    }
    if d.inputs.len() + d.outputs.len() > limits.max_datasets {
        return Err(EventError::field(
            ErrorCode::FieldTooLarge,
            "data.inputs",
            format!(
                "data run has more than {} inputs and outputs",
                limits.max_datasets
            ),
        ));
    }
    for (which, list) in [("inputs", &d.inputs), ("outputs", &d.outputs)] {
        for (i, ds) in list.iter().enumerate() {
            dataset(&format!("data.{which}[{i}]"), ds)?;
        }
    }
    Ok(())
}

fn dataset(path: &str, ds: &Dataset) -> Result<(), EventError> {
    identifier(&format!("{path}.namespace"), &ds.namespace)?;
    identifier(&format!("{path}.name"), &ds.name)?;
    opt(&ds.snapshot_id, |v| {
        identifier(&format!("{path}.snapshot_id"), v)
    })?;
    opt(&ds.schema_version, |v| {
        identifier(&format!("{path}.schema_version"), v)
    })
}

fn opt(
    v: &Option<String>,
    check: impl FnOnce(&str) -> Result<(), EventError>,
) -> Result<(), EventError> {
    v.as_deref().map_or(Ok(()), check)
}

/// The last segment of a field path (`data.inputs[0].name` → `name`), for messages.
fn short(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn nonempty(field: &str, v: &str) -> Result<(), EventError> {
    // `v.trim().is_empty()`, stopping at the first character that is not whitespace.
    if v.chars().all(char::is_whitespace) {
        return Err(EventError::field(
            ErrorCode::InvalidValue,
            field,
            format!("{} must not be empty", short(field)),
        ));
    }
    Ok(())
}

/// An identifier: non-empty, at most 512 bytes, no control characters, no leading or
/// trailing whitespace.
pub fn identifier(field: &str, v: &str) -> Result<(), EventError> {
    nonempty(field, v)?;
    if v.len() > MAX_IDENTIFIER_BYTES {
        return Err(EventError::field(
            ErrorCode::FieldTooLarge,
            field,
            format!(
                "{} must be at most {MAX_IDENTIFIER_BYTES} bytes",
                short(field)
            ),
        ));
    }
    if has_control(v, false) {
        return Err(EventError::field(
            ErrorCode::ControlCharacter,
            field,
            format!("{} must not contain control characters", short(field)),
        ));
    }
    // `v.trim() != v`, reading only the first and the last character.
    if v.chars().next().is_some_and(char::is_whitespace)
        || v.chars().next_back().is_some_and(char::is_whitespace)
    {
        return Err(EventError::field(
            ErrorCode::InvalidValue,
            field,
            format!("{} must not start or end with whitespace", short(field)),
        ));
    }
    Ok(())
}

/// Free text: at most `max_string_bytes`; tab, newline and carriage return are the only
/// control characters allowed.
pub fn text(field: &str, v: &str, limits: &Limits) -> Result<(), EventError> {
    if v.len() > limits.max_string_bytes {
        return Err(EventError::field(
            ErrorCode::FieldTooLarge,
            field,
            format!(
                "{} must be at most {} bytes",
                short(field),
                limits.max_string_bytes
            ),
        ));
    }
    if has_control(v, true) {
        return Err(EventError::field(
            ErrorCode::ControlCharacter,
            field,
            format!(
                "{} must not contain control characters other than tab and newline",
                short(field)
            ),
        ));
    }
    Ok(())
}

fn annotations(a: &crate::event::Annotations, limits: &Limits) -> Result<(), EventError> {
    if a.len() > limits.max_annotations {
        return Err(EventError::field(
            ErrorCode::FieldTooLarge,
            "data.annotations",
            format!(
                "annotations must have at most {} entries",
                limits.max_annotations
            ),
        ));
    }
    for (k, v) in a {
        if k.is_empty()
            || k.len() > MAX_ANNOTATION_KEY_BYTES
            || k.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(EventError::field(
                ErrorCode::InvalidValue,
                "data.annotations",
                format!(
                    "annotation keys must be 1 to {MAX_ANNOTATION_KEY_BYTES} bytes without whitespace or control characters"
                ),
            ));
        }
        text("data.annotations", v, limits)?;
    }
    Ok(())
}

/// Whether `v` holds a control character (`char::is_control`: U+0000–U+001F, U+007F,
/// U+0080–U+009F), tab, newline and carriage return excepted when `allow_line_breaks`.
/// Byte by byte, with no decoding: in UTF-8 the C0 controls and DEL are single bytes and the
/// C1 controls are exactly the pairs `C2 80`–`C2 9F`.
fn has_control(v: &str, allow_line_breaks: bool) -> bool {
    let b = v.as_bytes();
    // First a pass without early exit, which the compiler vectorizes: does any byte that can
    // begin a control character (below 0x20, 0x7F, 0xC2) occur at all? Almost never.
    let candidate = b.iter().fold(false, |acc, &c| {
        acc | (c < 0x20) | (c == 0x7f) | (c == 0xc2)
    });
    if !candidate {
        return false;
    }
    b.iter().enumerate().any(|(i, &c)| match c {
        b'\t' | b'\n' | b'\r' => !allow_line_breaks,
        0..=0x1f | 0x7f => true,
        0xc2 => b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)),
        _ => false,
    })
}

fn is_lower_hex(s: &str) -> bool {
    // Without early exit, so that the compiler vectorizes it (digests are 64 bytes).
    s.bytes().fold(true, |acc, b| {
        acc & (b.is_ascii_digit() | (b'a'..=b'f').contains(&b))
    })
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn digest(field: &str, v: &str) -> Result<(), EventError> {
    match v.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && is_lower_hex(hex) => Ok(()),
        _ => Err(EventError::field(
            ErrorCode::InvalidValue,
            field,
            format!("{} must be sha256:<64 hex>", short(field)),
        )),
    }
}

/// A git commit: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn commit_sha(field: &str, v: &str) -> Result<(), EventError> {
    if (v.len() == 40 || v.len() == 64) && is_lower_hex(v) {
        return Ok(());
    }
    Err(EventError::field(
        ErrorCode::InvalidValue,
        field,
        format!(
            "{} must be a full commit sha: 40 or 64 lowercase hex digits",
            short(field)
        ),
    ))
}

/// An RFC 3339 timestamp with a time zone.
pub fn timestamp(field: &str, v: &str) -> Result<(), EventError> {
    if chrono::DateTime::parse_from_rfc3339(v).is_err() {
        return Err(EventError::field(
            ErrorCode::InvalidValue,
            field,
            format!(
                "{} must be an RFC 3339 timestamp like 2026-11-23T10:00:00Z",
                short(field)
            ),
        ));
    }
    Ok(())
}

/// An http(s) URL.
fn url(field: &str, v: &str, limits: &Limits) -> Result<(), EventError> {
    text(field, v, limits)?;
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(EventError::field(
            ErrorCode::InvalidValue,
            field,
            format!("{} must be an http:// or https:// URL", short(field)),
        )),
    }
}

/// CloudEvents extension attribute names: lowercase ASCII letters and digits.
fn extension_name(name: &str) -> Result<(), EventError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(EventError::field(
            ErrorCode::InvalidValue,
            "extensions",
            "CloudEvents attribute names must be 1 to 64 lowercase letters or digits",
        ));
    }
    // An extension with a context attribute's name would collide with that attribute in every
    // wire form (structured JSON member, binary-mode `ce_` header).
    if RESERVED_ATTRIBUTE_NAMES.contains(&name) {
        return Err(EventError::field(
            ErrorCode::InvalidValue,
            "extensions",
            "an extension attribute must not have the name of a CloudEvents context attribute, data, data_base64 or provenantmappedfrom",
        ));
    }
    Ok(())
}

/// Names no extension attribute may have: the CloudEvents context attributes, `data`,
/// `data_base64` and Provenant's mapping extension.
pub const RESERVED_ATTRIBUTE_NAMES: [&str; 11] = [
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "dataschema",
    "datacontenttype",
    "data",
    "data_base64",
    crate::event::MAPPED_FROM_EXTENSION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_byte_by_byte_as_char_is_control_finds_them() {
        for cp in 0..=0x10ffff_u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s = format!("a{c}b");
            assert_eq!(has_control(&s, false), c.is_control(), "U+{cp:04X}");
            let lb = matches!(c, '\t' | '\n' | '\r');
            assert_eq!(has_control(&s, true), c.is_control() && !lb, "U+{cp:04X}");
        }
    }

    #[test]
    fn identifiers_with_leading_or_trailing_whitespace_are_refused_as_trim_would_see_it() {
        for cp in 0..=0x10ffff_u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if c.is_control() {
                continue;
            }
            for s in [
                format!("{c}id"),
                format!("id{c}"),
                format!("i{c}d"),
                c.to_string(),
            ] {
                let trimmed_differs = s.trim() != s;
                assert_eq!(
                    identifier("id", &s).is_err(),
                    trimmed_differs,
                    "U+{cp:04X} in {s:?}"
                );
            }
        }
    }

    #[test]
    fn lower_hex_is_exactly_digits_and_a_to_f() {
        for b in 0..=255u8 {
            let Ok(s) = std::str::from_utf8(std::slice::from_ref(&b)) else {
                continue;
            };
            let want = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            assert_eq!(is_lower_hex(&format!("00{s}11")), want, "{b:#x}");
        }
        assert!(is_lower_hex(""));
    }
}
