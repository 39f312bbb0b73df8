//! One entry point for outside input: the CLI (`provenant validate`), the HTTP ingest and the
//! processor all call [`decode`].
//!
//! Given bytes and an optional content type, it splits the input into items — one JSON
//! document, a JSON array (the CloudEvents batch format) or NDJSON — and decodes each item as
//! a native CloudEvent, a CDEvent (bare or in a CloudEvent) or an OpenLineage RunEvent,
//! chosen by the item's shape ([`crate::interop::Format`]).
//!
//! Invariants:
//! * It never panics, and returns one `Result` per item, in input order. An input that cannot
//!   be split into items (not UTF-8, a malformed array, an unknown content type, too many
//!   items) gives exactly one error, at position 1.
//! * Each item is held to [`Limits`] on its own (size, depth, duplicate keys), so a batch may
//!   be larger than one event, up to [`Decoder::max_input_bytes`] and [`Decoder::max_items`].
//! * An item's error is an [`ItemError`]: its position (1-based index, and line for NDJSON)
//!   and the [`EventError`], which never echoes a value.
//!
//! Framing: a content type decides it (see [`crate::interop::cloudevents::framing`]).
//! Without one, the first non-blank byte decides: `[` is an array; otherwise, if the input
//! has two or more non-blank lines and the first of them is a JSON object on its own, it is
//! NDJSON; else it is one document (so pretty-printed JSON is one event).

use std::fmt;

use serde_json::value::RawValue;

use crate::error::{ErrorCode, EventError};
use crate::event::Event;
use crate::interop::{self, cloudevents::Framing};
use crate::json::{Limits, classify, parse_strict};

/// Where an item sits in the input, and why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemError {
    /// 1-based position of the item (event) in the input.
    pub index: usize,
    /// 1-based line of the item, for NDJSON.
    pub line: Option<usize>,
    /// Why it was refused (boxed: keeps `Result<_, ItemError>` small).
    pub error: Box<EventError>,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.index)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, " {}", self.error)
    }
}

impl std::error::Error for ItemError {}

/// The outcome of one item.
pub type Item = Result<Event, ItemError>;

/// Decodes every event in `bytes` with the default [`Decoder`].
pub fn decode(bytes: &[u8], content_type: Option<&str>, limits: &Limits) -> Vec<Item> {
    Decoder {
        limits: *limits,
        ..Decoder::default()
    }
    .decode(bytes, content_type)
}

/// Decoding settings: per-event [`Limits`] and limits on a whole input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoder {
    /// Limits for each event.
    pub limits: Limits,
    /// Most events in one input (array or NDJSON).
    pub max_items: usize,
    /// Largest input (a batch or NDJSON; a single document is held to
    /// [`Limits::max_event_bytes`]).
    pub max_input_bytes: usize,
}

impl Default for Decoder {
    /// Default limits, at most 10 000 events and 64 MiB per input.
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            max_items: 10_000,
            max_input_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Decoder {
    /// Splits `bytes` into items and decodes each (see the module documentation).
    pub fn decode(&self, bytes: &[u8], content_type: Option<&str>) -> Vec<Item> {
        let whole = |error: EventError| {
            vec![Err(ItemError {
                index: 1,
                line: None,
                error: Box::new(error),
            })]
        };
        if bytes.len() > self.max_input_bytes {
            return whole(EventError::input(
                ErrorCode::TooLarge,
                format!(
                    "input is {} bytes, over the limit of {} bytes",
                    bytes.len(),
                    self.max_input_bytes
                ),
            ));
        }
        let framing = match content_type {
            None => None,
            Some(ct) => match interop::cloudevents::framing(ct) {
                Some(f) => Some(f),
                None => {
                    return whole(EventError::input(
                        ErrorCode::UnsupportedContentType,
                        "content type must be application/cloudevents+json, application/cloudevents-batch+json, application/json, application/cdevents+json or application/x-ndjson",
                    ));
                }
            },
        };
        let Some(first) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
            return whole(EventError::input(
                ErrorCode::NotAnEvent,
                "input is empty: expected an event, a JSON array of events or NDJSON",
            ));
        };
        let starts_array = bytes.get(first) == Some(&b'[');
        let framing = match framing {
            Some(Framing::SingleOrArray) | None if starts_array => Framing::Array,
            Some(Framing::SingleOrArray) => Framing::Single,
            None if self.looks_like_ndjson(bytes) => Framing::Ndjson,
            None => Framing::Single,
            Some(f) => f,
        };
        match framing {
            Framing::Single | Framing::SingleOrArray => {
                vec![self.one(bytes).map_err(|error| ItemError {
                    index: 1,
                    line: None,
                    error: Box::new(error),
                })]
            }
            Framing::Array => self.array(bytes, starts_array),
            Framing::Ndjson => self.ndjson(bytes),
        }
    }

    fn one(&self, bytes: &[u8]) -> Result<Event, EventError> {
        let value = parse_strict(bytes, &self.limits)?;
        interop::from_value(&value, &self.limits)
    }

    /// Two or more non-blank lines, the first a JSON object by itself.
    fn looks_like_ndjson(&self, bytes: &[u8]) -> bool {
        let mut lines = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
        let (Some(first), Some(_)) = (lines.next(), lines.next()) else {
            return false;
        };
        matches!(
            parse_strict(first, &self.limits),
            Ok(serde_json::Value::Object(_))
        )
    }

    fn array(&self, bytes: &[u8], starts_array: bool) -> Vec<Item> {
        let whole = |error: EventError| {
            vec![Err(ItemError {
                index: 1,
                line: None,
                error: Box::new(error),
            })]
        };
        if !starts_array {
            return whole(EventError::input(
                ErrorCode::NotAnEvent,
                "a batch must be a JSON array of events",
            ));
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return whole(EventError::input(
                    ErrorCode::InvalidUtf8,
                    format!("input is not valid UTF-8 (at byte {})", e.valid_up_to()),
                ));
            }
        };
        let raw: Vec<&RawValue> = match serde_json::from_str(text) {
            Ok(raw) => raw,
            Err(e) => return whole(classify(&e)),
        };
        if raw.len() > self.max_items {
            return whole(self.too_many());
        }
        raw.iter()
            .enumerate()
            .map(|(i, item)| {
                self.one(item.get().as_bytes()).map_err(|error| ItemError {
                    index: i + 1,
                    line: None,
                    error: Box::new(error),
                })
            })
            .collect()
    }

    fn ndjson(&self, bytes: &[u8]) -> Vec<Item> {
        let lines: Vec<(usize, &[u8])> = bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .map(|(n, l)| (n + 1, l.strip_suffix(b"\r").unwrap_or(l)))
            .collect();
        if lines.len() > self.max_items {
            return vec![Err(ItemError {
                index: 1,
                line: None,
                error: Box::new(self.too_many()),
            })];
        }
        lines
            .into_iter()
            .enumerate()
            .map(|(i, (line, text))| {
                self.one(text).map_err(|error| ItemError {
                    index: i + 1,
                    line: Some(line),
                    error: Box::new(error),
                })
            })
            .collect()
    }

    fn too_many(&self) -> EventError {
        EventError::input(
            ErrorCode::TooLarge,
            format!("input has more than {} events", self.max_items),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: &str = r#"{"specversion":"1.0","id":"b-1","source":"ci","type":"io.provenant.build.v1","data":{"commit_sha":"4711a73b71d459a8aebe20e7d71ba22af478ed67","build_id":"b","build_timestamp":"2026-11-23T10:00:00Z"}}"#;

    fn codes(items: &[Item]) -> Vec<Result<&str, ErrorCode>> {
        items
            .iter()
            .map(|i| match i {
                Ok(e) => Ok(e.id.as_str()),
                Err(e) => Err(e.error.code),
            })
            .collect()
    }

    #[test]
    fn frames_single_array_and_ndjson() {
        let d = Decoder::default();
        assert_eq!(codes(&d.decode(BUILD.as_bytes(), None)), vec![Ok("b-1")]);
        let arr = format!("[{BUILD}, 7, {BUILD}]");
        let got = d.decode(arr.as_bytes(), None);
        assert_eq!(
            codes(&got),
            vec![Ok("b-1"), Err(ErrorCode::NotAnEvent), Ok("b-1")]
        );
        assert_eq!(got[1].as_ref().unwrap_err().index, 2);
        let nd = format!("{BUILD}\r\n\n{{\"a\":1,\"a\":2}}\n{BUILD}\n");
        let got = d.decode(nd.as_bytes(), None);
        assert_eq!(
            codes(&got),
            vec![Ok("b-1"), Err(ErrorCode::DuplicateKey), Ok("b-1")]
        );
        assert_eq!(got[1].as_ref().unwrap_err().line, Some(3));
        assert_eq!(got[1].as_ref().unwrap_err().index, 2);
        // The same NDJSON with a content type that says "one event" is one malformed event.
        assert_eq!(
            codes(&d.decode(nd.as_bytes(), Some("application/cloudevents+json"))),
            vec![Err(ErrorCode::MalformedJson)]
        );
        // Pretty-printed JSON is one event.
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(BUILD).unwrap(),
        )
        .unwrap();
        assert_eq!(codes(&d.decode(pretty.as_bytes(), None)), vec![Ok("b-1")]);
    }

    #[test]
    fn whole_input_errors_are_one_item() {
        let d = Decoder {
            max_items: 2,
            ..Decoder::default()
        };
        let arr = format!("[{BUILD},{BUILD},{BUILD}]");
        assert_eq!(
            codes(&d.decode(arr.as_bytes(), None)),
            vec![Err(ErrorCode::TooLarge)]
        );
        assert_eq!(
            codes(&d.decode(b"[1,", None)),
            vec![Err(ErrorCode::MalformedJson)]
        );
        assert_eq!(
            codes(&d.decode(b"  \n", None)),
            vec![Err(ErrorCode::NotAnEvent)]
        );
        assert_eq!(
            codes(&d.decode(BUILD.as_bytes(), Some("text/plain"))),
            vec![Err(ErrorCode::UnsupportedContentType)]
        );
        assert_eq!(
            codes(&d.decode(BUILD.as_bytes(), Some(interop::cloudevents::BATCH))),
            vec![Err(ErrorCode::NotAnEvent)]
        );
        assert_eq!(d.decode(b"[]", None).len(), 0);
        let deep = "[".repeat(60_000) + &"]".repeat(60_000);
        assert_eq!(
            codes(&d.decode(deep.as_bytes(), None)),
            vec![Err(ErrorCode::TooDeep)]
        );
        assert_eq!(
            codes(&d.decode(b"[\xff]", None)),
            vec![Err(ErrorCode::InvalidUtf8)]
        );
    }

    #[test]
    fn batch_items_keep_their_own_limits() {
        let d = Decoder::default();
        let big = format!("[{}]", vec![BUILD; 2000].join(","));
        assert!(big.len() > Limits::DEFAULT.max_event_bytes);
        let got = d.decode(big.as_bytes(), Some(interop::cloudevents::BATCH));
        assert_eq!(got.len(), 2000);
        assert!(got.iter().all(Result::is_ok));
        // A nested duplicate key inside one element fails that element only.
        let arr = format!("[{BUILD},{{\"x\":{{\"k\":1,\"k\":1}}}}]");
        assert_eq!(
            codes(&d.decode(arr.as_bytes(), None)),
            vec![Ok("b-1"), Err(ErrorCode::DuplicateKey)]
        );
    }
}
