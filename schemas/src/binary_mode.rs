//! CloudEvents on Kafka: a record's headers and value to an [`Event`], and back (CloudEvents
//! Kafka protocol binding 1.0).
//!
//! Who calls it: the processor (every raw record) and producers (every event they send).
//! Headers are plain `(name, value)` pairs so this crate does not depend on the log crate.
//!
//! Decoding, by the `content-type` header:
//! * `application/cloudevents+json`: structured mode; the value is the whole event
//!   ([`Event::from_json`]) and `ce_*` headers are not read.
//! * otherwise binary mode: the envelope is in `ce_specversion` (must be `1.0`), `ce_id`,
//!   `ce_source`, `ce_type` (required), `ce_time`, `ce_subject`, `ce_dataschema` (optional);
//!   `ce_provenantmappedfrom` is [`Event::mapped_from`]; every other `ce_<name>` is the
//!   extension `<name>`. The value is the data:
//!   * `application/avro`: single-object Avro of the data record of `ce_type`'s kind; the
//!     fingerprint must be that kind's ([`crate::avro::decode_data`]);
//!   * `application/json`: the data as JSON, read by the strict parser and
//!     [`crate::event::decode_data`].
//!
//! Invariants: decoding never panics; an event it returns passes [`Event::validate`]. A
//! missing, repeated or non-UTF-8 `ce_*` header is [`ErrorCode::InvalidHeaders`] naming the
//! header (never its value); any other content type is [`ErrorCode::UnsupportedContentType`].
//! Header names are matched exactly (the binding writes them in lowercase), except
//! `content-type`, matched ignoring case. [`encode`] writes what [`decode`] reads: an Avro value,
//! as Provenant's own producers do ([`encode_json`] writes a JSON value, as other SDKs do).

use std::collections::BTreeMap;

use crate::avro;
use crate::error::{ErrorCode, EventError, EventRef};
use crate::event::{self, Event, Kind, MAPPED_FROM_EXTENSION, SPEC_VERSION};
use crate::json::{Limits, parse_strict};

/// The prefix of binary-mode attribute headers.
pub const HEADER_PREFIX: &str = "ce_";
/// The content-type header.
pub const CONTENT_TYPE: &str = "content-type";
/// Value is single-object Avro of the kind's data record.
pub const AVRO: &str = "application/avro";
/// Value is the data as JSON.
pub const JSON: &str = "application/json";
/// Value is a whole structured-mode event.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// A Kafka record's headers, in order.
pub type Headers = Vec<(String, Vec<u8>)>;

/// Binary mode with an Avro value (what Provenant's producers write).
pub fn encode(event: &Event) -> (Headers, Vec<u8>) {
    (headers(event, AVRO), avro::encode_data(&event.data))
}

/// Binary mode with a JSON value (what other CloudEvents SDKs write).
pub fn encode_json(event: &Event) -> (Headers, Vec<u8>) {
    (
        headers(event, JSON),
        event.data_json().to_string().into_bytes(),
    )
}

fn headers(e: &Event, content_type: &'static str) -> Headers {
    let mut h: Headers = Vec::with_capacity(8 + e.extensions.len());
    for_each_header(e, content_type, |prefix, name, value| {
        let mut header = String::with_capacity(prefix.len() + name.len());
        header.push_str(prefix);
        header.push_str(name);
        h.push((header, value.as_str().as_bytes().to_vec()));
    });
    h
}

/// A header value as [`for_each_header`] gives it: a constant, or borrowed from the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// The same for every event of the kind (spec version, type, content type): a writer
    /// can use it without copying.
    Static(&'static str),
    /// Taken from the event.
    Borrowed(&'a str),
}

impl<'a> HeaderValue<'a> {
    /// The value.
    pub fn as_str(self) -> &'a str {
        match self {
            Self::Static(s) => s,
            Self::Borrowed(s) => s,
        }
    }
}

/// The binary-mode headers of `e`, in the order [`encode`] writes them, without building
/// them: `put(prefix, name, value)` once per header, the header's name being `prefix` followed
/// by `name`. For writers with their own header type (the producer's Kafka records), so that
/// they allocate only what they keep.
pub fn for_each_header<'a>(
    e: &'a Event,
    content_type: &'static str,
    mut put: impl FnMut(&'static str, &str, HeaderValue<'a>),
) {
    use HeaderValue::{Borrowed, Static};
    put(HEADER_PREFIX, "specversion", Static(SPEC_VERSION));
    put(HEADER_PREFIX, "id", Borrowed(&e.id));
    put(HEADER_PREFIX, "source", Borrowed(&e.source));
    put(HEADER_PREFIX, "type", Static(e.kind().ce_type()));
    if let Some(t) = &e.time {
        put(HEADER_PREFIX, "time", Borrowed(t));
    }
    if let Some(s) = &e.subject {
        put(HEADER_PREFIX, "subject", Borrowed(s));
    }
    if let Some(s) = &e.dataschema {
        put(HEADER_PREFIX, "dataschema", Borrowed(s));
    }
    for (k, v) in &e.extensions {
        put(HEADER_PREFIX, k, Borrowed(v));
    }
    if let Some(m) = &e.mapped_from {
        put(HEADER_PREFIX, MAPPED_FROM_EXTENSION, Borrowed(m));
    }
    put("", CONTENT_TYPE, Static(content_type));
}

/// Decodes and validates one Kafka record (see the module doc).
pub fn decode<N: AsRef<str>, V: AsRef<[u8]>>(
    headers: &[(N, V)],
    value: &[u8],
    limits: &Limits,
) -> Result<Event, EventError> {
    let content_type = content_type(headers)?;
    let base = content_type.split(';').next().unwrap_or_default().trim();
    if base.eq_ignore_ascii_case(CLOUDEVENTS_JSON) {
        // Structured mode: one event, read exactly as HTTP reads it (CDEvents in a
        // CloudEvent are mapped the same way).
        let mut items = crate::decode::decode(value, Some(CLOUDEVENTS_JSON), limits);
        return match (items.pop(), items.is_empty()) {
            (Some(item), true) => item.map_err(|e| *e.error),
            _ => Err(EventError::input(
                ErrorCode::NotAnEvent,
                "a structured-mode record holds exactly one event",
            )),
        };
    }
    if !base.eq_ignore_ascii_case(AVRO) && !base.eq_ignore_ascii_case(JSON) {
        return Err(EventError::input(
            ErrorCode::UnsupportedContentType,
            format!(
                "content-type must be {AVRO}, {JSON} (binary mode) or {CLOUDEVENTS_JSON} (structured mode)"
            ),
        ));
    }
    let attrs = ce_headers(headers)?;
    decode_binary(&attrs, base, value, limits).map_err(|e| {
        e.for_event(&EventRef {
            source: attrs.get("source").map(|s| (*s).to_owned()),
            id: attrs.get("id").map(|s| (*s).to_owned()),
        })
    })
}

fn decode_binary(
    attrs: &BTreeMap<&str, &str>,
    content_type: &str,
    value: &[u8],
    limits: &Limits,
) -> Result<Event, EventError> {
    let specversion = required(attrs, "specversion")?;
    if specversion != SPEC_VERSION {
        return Err(EventError::field(
            ErrorCode::UnsupportedSpecVersion,
            "ce_specversion",
            "header ce_specversion must be \"1.0\" (CloudEvents 1.0)",
        ));
    }
    let id = required(attrs, "id")?;
    let source = required(attrs, "source")?;
    let ce_type = required(attrs, "type")?;
    let Some(kind) = Kind::from_ce_type(ce_type) else {
        return Err(EventError::field(
            ErrorCode::UnknownType,
            "ce_type",
            "header ce_type is not a Provenant event type (io.provenant.{build,artifact,deploy,runtime,data,approval}.v1)",
        ));
    };
    if attrs.contains_key("datacontenttype") {
        return Err(EventError::field(
            ErrorCode::InvalidHeaders,
            "ce_datacontenttype",
            "header ce_datacontenttype is not used in Kafka binary mode: the content-type header says it",
        ));
    }
    let data = if content_type.eq_ignore_ascii_case(AVRO) {
        avro::decode_data(kind, value, limits)?
    } else {
        let json = parse_strict(value, limits)?;
        event::decode_data(kind, &json)?
    };
    let mut extensions = BTreeMap::new();
    let mut mapped_from = None;
    for (name, v) in attrs {
        match *name {
            "specversion" | "id" | "source" | "type" | "time" | "subject" | "dataschema" => {}
            MAPPED_FROM_EXTENSION => mapped_from = Some((*v).to_owned()),
            other => {
                extensions.insert(other.to_owned(), (*v).to_owned());
            }
        }
    }
    let event = Event {
        id: id.to_owned(),
        source: source.to_owned(),
        time: attrs.get("time").map(|s| (*s).to_owned()),
        subject: attrs.get("subject").map(|s| (*s).to_owned()),
        dataschema: attrs.get("dataschema").map(|s| (*s).to_owned()),
        extensions,
        mapped_from,
        data,
    };
    event.validate(limits)?;
    Ok(event)
}

fn content_type<N: AsRef<str>, V: AsRef<[u8]>>(headers: &[(N, V)]) -> Result<&str, EventError> {
    let mut found = None;
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        if !name.eq_ignore_ascii_case(CONTENT_TYPE) {
            continue;
        }
        if found.is_some() {
            return Err(EventError::field(
                ErrorCode::InvalidHeaders,
                CONTENT_TYPE,
                "header content-type appears more than once",
            ));
        }
        found = Some(std::str::from_utf8(value).map_err(|_| {
            EventError::field(
                ErrorCode::InvalidHeaders,
                CONTENT_TYPE,
                "header content-type is not valid UTF-8",
            )
        })?);
    }
    found.ok_or_else(|| {
        EventError::field(
            ErrorCode::InvalidHeaders,
            CONTENT_TYPE,
            format!(
                "header content-type is missing (expected {AVRO}, {JSON} or {CLOUDEVENTS_JSON})"
            ),
        )
    })
}

/// The `ce_*` headers by attribute name, each once and UTF-8.
fn ce_headers<N: AsRef<str>, V: AsRef<[u8]>>(
    headers: &[(N, V)],
) -> Result<BTreeMap<&str, &str>, EventError> {
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_ref();
        let Some(attr) = name.strip_prefix(HEADER_PREFIX) else {
            continue;
        };
        let text = std::str::from_utf8(value.as_ref()).map_err(|_| {
            let shown = shown_header(name);
            EventError::field(
                ErrorCode::InvalidHeaders,
                shown.clone(),
                format!("header {shown} is not valid UTF-8"),
            )
        })?;
        if out.insert(attr, text).is_some() {
            let shown = shown_header(name);
            return Err(EventError::field(
                ErrorCode::InvalidHeaders,
                shown.clone(),
                format!("header {shown} appears more than once"),
            ));
        }
    }
    Ok(out)
}

/// A header name as shown in an error: at most 64 characters, control characters dropped.
fn shown_header(name: &str) -> String {
    name.chars().take(64).filter(|c| !c.is_control()).collect()
}

fn required<'a>(attrs: &BTreeMap<&str, &'a str>, attr: &str) -> Result<&'a str, EventError> {
    attrs.get(attr).copied().ok_or_else(|| {
        EventError::field(
            ErrorCode::InvalidHeaders,
            format!("{HEADER_PREFIX}{attr}"),
            format!(
                "header {HEADER_PREFIX}{attr} is missing (binary-mode CloudEvents need ce_specversion, ce_id, ce_source and ce_type)"
            ),
        )
    })
}
