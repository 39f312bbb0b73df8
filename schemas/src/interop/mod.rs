//! Interop: events written by other tools, mapped to native [`Event`]s.
//!
//! * [`cloudevents`] — the CloudEvents content types (structured mode, JSON batch, Kafka
//!   structured mode) and the native structured decoding ([`Event::from_value`]).
//! * [`cdevents`] — CDEvents (bare, or carried in a CloudEvent) → build, artifact and deploy
//!   events.
//! * [`openlineage`] — OpenLineage RunEvents → data events, with a UUIDv5 event id.
//!
//! [`from_value`] looks at one parsed JSON document and picks the mapping from its shape;
//! [`crate::decode`] splits an input (one document, a JSON array, NDJSON) into such documents.
//! The mapping table, with every accepted and refused type, is in `schemas/INTEROP.md`.
//!
//! Invariants: every function here is pure, never panics, and returns either an event that
//! passes [`Event::validate`] or an [`EventError`] that names the event (its `source` and `id`
//! as far as they could be read), the field (as a path in the *original* document when the
//! error is found while mapping, as a native path when found by validating the mapped event)
//! and never echoes a field value. A mapped event keeps its original type in
//! [`Event::mapped_from`] and its identity from the original document.

pub mod cdevents;
pub mod cloudevents;
pub mod openlineage;

use serde_json::{Map, Value};

use crate::error::{ErrorCode, EventError};
use crate::event::Event;
use crate::json::Limits;

/// What one JSON document is, judged by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A CloudEvent (has `specversion`) of a native type: decoded by [`Event::from_value`].
    CloudEvent,
    /// A CloudEvent whose `type` starts with `dev.cdevents.`: its `data` is a CDEvent.
    CdEventInCloudEvent,
    /// A bare CDEvent document (`context` and `subject`).
    CdEvent,
    /// An OpenLineage event (`eventTime` or `producer`, with `run`, `job` or `dataset`).
    OpenLineage,
}

impl Format {
    /// Detects the format of a JSON object, or `None` when it is none of them.
    pub fn detect(obj: &Map<String, Value>) -> Option<Format> {
        if obj.contains_key("specversion") {
            let cdevent = obj
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with(cdevents::TYPE_PREFIX));
            return Some(if cdevent {
                Format::CdEventInCloudEvent
            } else {
                Format::CloudEvent
            });
        }
        if obj.contains_key("context") && obj.contains_key("subject") {
            return Some(Format::CdEvent);
        }
        let lineage_body = ["run", "job", "dataset"]
            .iter()
            .any(|k| obj.contains_key(*k));
        let lineage_header = ["eventTime", "producer", "schemaURL"]
            .iter()
            .any(|k| obj.contains_key(*k));
        if lineage_body && lineage_header {
            return Some(Format::OpenLineage);
        }
        None
    }
}

/// Decodes one parsed JSON document of any accepted format into a valid event.
pub fn from_value(value: &Value, limits: &Limits) -> Result<Event, EventError> {
    let Value::Object(obj) = value else {
        return Err(EventError::input(
            ErrorCode::NotAnEvent,
            "an event must be a JSON object",
        ));
    };
    match Format::detect(obj) {
        Some(Format::CloudEvent) => Event::from_value(value, limits),
        Some(Format::CdEventInCloudEvent | Format::CdEvent) => cdevents::from_value(value, limits),
        Some(Format::OpenLineage) => openlineage::from_value(value, limits),
        None => Err(EventError::input(
            ErrorCode::NotAnEvent,
            "JSON object is not a CloudEvent (no specversion), a CDEvent (context and subject) or an OpenLineage RunEvent (eventTime, producer, run, job)",
        )),
    }
}

/// A required string member of a JSON object; `path` is the member's path for errors and
/// `what` names the object in "X needs Y" messages.
pub(crate) fn req_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    what: &str,
) -> Result<&'a str, EventError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(EventError::field(
            ErrorCode::MissingField,
            path,
            format!("{what} needs {key}"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            path,
            format!("{path} must be a string"),
        )),
    }
}

/// An optional string member (absent and `null` are the same).
pub(crate) fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, EventError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            path,
            format!("{path} must be a string"),
        )),
    }
}

/// A required object member.
pub(crate) fn req_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, EventError> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(EventError::field(
            ErrorCode::MissingField,
            path,
            format!("{what} needs {key}"),
        )),
        Some(Value::Object(o)) => Ok(o),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            path,
            format!("{path} must be an object"),
        )),
    }
}

/// An optional object member.
pub(crate) fn opt_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, EventError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(EventError::field(
            ErrorCode::WrongType,
            path,
            format!("{path} must be an object"),
        )),
    }
}
