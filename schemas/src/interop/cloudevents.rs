//! CloudEvents JSON: structured mode, the JSON batch format and Kafka structured mode.
//!
//! A structured event (`application/cloudevents+json`, over HTTP or as a Kafka value with
//! that `content-type` header) is one JSON object, decoded by [`crate::Event::from_json`]. A
//! batch (`application/cloudevents-batch+json`) is a JSON array of structured events; each
//! element is decoded on its own, so one bad event does not hide the others (see
//! [`crate::decode`]). This module names the content types and says which framing each
//! implies; it holds no decoding of its own.

/// Structured mode: one event (HTTP body or Kafka value).
pub const STRUCTURED: &str = "application/cloudevents+json";
/// The JSON batch format: an array of structured events.
pub const BATCH: &str = "application/cloudevents-batch+json";
/// Plain JSON: one event or an array of events (OpenLineage's HTTP transport sends this).
pub const JSON: &str = "application/json";
/// A bare CDEvent (the CDEvents HTTP binding's content type).
pub const CDEVENTS: &str = "application/cdevents+json";
/// Newline-delimited JSON: one event per line. `application/ndjson`, `application/jsonl` and
/// `application/x-jsonlines` are read the same way.
pub const NDJSON: &str = "application/x-ndjson";

const NDJSON_ALIASES: [&str; 4] = [
    NDJSON,
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
];

/// How an input is split into events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly one JSON document.
    Single,
    /// A JSON array; each element is one event.
    Array,
    /// One JSON document per line; blank lines are skipped.
    Ndjson,
    /// One document or an array, chosen by the first non-blank byte.
    SingleOrArray,
}

/// The framing a content type implies; `None` for a content type Provenant cannot read.
/// Parameters (`; charset=utf-8`) are ignored; the media type is compared without case.
pub fn framing(content_type: &str) -> Option<Framing> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        STRUCTURED | CDEVENTS => Some(Framing::Single),
        BATCH => Some(Framing::Array),
        JSON => Some(Framing::SingleOrArray),
        m if NDJSON_ALIASES.contains(&m) => Some(Framing::Ndjson),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_choose_framing() {
        assert_eq!(framing(STRUCTURED), Some(Framing::Single));
        assert_eq!(
            framing("Application/CloudEvents+JSON; charset=utf-8"),
            Some(Framing::Single)
        );
        assert_eq!(framing(BATCH), Some(Framing::Array));
        assert_eq!(framing(JSON), Some(Framing::SingleOrArray));
        assert_eq!(framing(CDEVENTS), Some(Framing::Single));
        assert_eq!(framing("application/jsonl"), Some(Framing::Ndjson));
        assert_eq!(framing("text/plain"), None);
        assert_eq!(framing("application/avro"), None);
        assert_eq!(framing(""), None);
    }
}
