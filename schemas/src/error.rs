//! Why an event was refused.
//!
//! Invariants: an [`EventError`] names the event (its `source` and `id` when they could be
//! read) and the field, and says what is wrong and what is expected. It **never echoes a
//! field's value**: values may hold secrets or personal data, and errors end up in logs, DLQ
//! headers and HTTP responses. Identifiers (`source`, `id`) are shown, truncated and with
//! control characters escaped, because without them nobody can find the bad event.
//! [`ErrorCode`] is a small closed set, safe to use as a metric label.

use std::fmt;

/// A machine-readable reason, stable across releases (it is a metric label and a DLQ header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// Input larger than the size limit.
    TooLarge,
    /// Input is not UTF-8.
    InvalidUtf8,
    /// Not parseable JSON (syntax error, truncated, trailing garbage).
    MalformedJson,
    /// An object with the same key twice.
    DuplicateKey,
    /// Arrays/objects nested deeper than the limit.
    TooDeep,
    /// The document is not an event object (e.g. a number, or a batch where one was expected).
    NotAnEvent,
    /// A CloudEvents `specversion` other than 1.0.
    UnsupportedSpecVersion,
    /// An event `type` Provenant does not know.
    UnknownType,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field's value has the wrong form (bad digest, bad timestamp, bad enum value).
    InvalidValue,
    /// A field that the kind does not have (usually a typo).
    UnknownField,
    /// A string holds a control character where none is allowed.
    ControlCharacter,
    /// A string, list or map over its limit.
    FieldTooLarge,
    /// Binary-mode or Kafka headers that do not form an event.
    InvalidHeaders,
    /// An Avro value that does not decode.
    InvalidAvro,
    /// A content type Provenant cannot read.
    UnsupportedContentType,
}

impl ErrorCode {
    /// The stable snake_case name (metric label, DLQ header, `--json` output).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::MalformedJson => "malformed_json",
            Self::DuplicateKey => "duplicate_key",
            Self::TooDeep => "too_deep",
            Self::NotAnEvent => "not_an_event",
            Self::UnsupportedSpecVersion => "unsupported_specversion",
            Self::UnknownType => "unknown_type",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::InvalidValue => "invalid_value",
            Self::UnknownField => "unknown_field",
            Self::ControlCharacter => "control_character",
            Self::FieldTooLarge => "field_too_large",
            Self::InvalidHeaders => "invalid_headers",
            Self::InvalidAvro => "invalid_avro",
            Self::UnsupportedContentType => "unsupported_content_type",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which event an error is about, as far as it could be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventRef {
    pub source: Option<String>,
    pub id: Option<String>,
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.id) {
            (Some(s), Some(i)) => write!(f, "event {} from {}", Shown(i), Shown(s)),
            (None, Some(i)) => write!(f, "event {}", Shown(i)),
            (Some(s), None) => write!(f, "event from {}", Shown(s)),
            (None, None) => f.write_str("event"),
        }
    }
}

/// An identifier shown in an error: quoted, at most 80 characters, control characters escaped.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for (n, c) in self.0.chars().enumerate() {
            if n == 80 {
                f.write_str("…")?;
                break;
            }
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

/// An event that could not be decoded or is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError {
    /// The event, as far as known.
    pub event: EventRef,
    /// The reason class.
    pub code: ErrorCode,
    /// The field concerned, as a path (`data.inputs[2].name`), if any.
    pub field: Option<String>,
    /// What is wrong, e.g. `artifact_digest must be sha256:<64 hex>`. Never holds a value.
    pub message: String,
}

impl EventError {
    /// An error about the input as a whole (before any event is known).
    pub fn input(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            event: EventRef::default(),
            code,
            field: None,
            message: message.into(),
        }
    }

    /// An error about one field.
    pub fn field(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            event: EventRef::default(),
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// Sets the event reference (when the error was found before source/id were known).
    #[must_use]
    pub fn for_event(mut self, event: &EventRef) -> Self {
        if self.event == EventRef::default() {
            self.event = event.clone();
        }
        self
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.event, self.message)
    }
}

impl std::error::Error for EventError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_event_and_escapes_identifiers() {
        let e = EventError::field(
            ErrorCode::InvalidValue,
            "artifact_digest",
            "artifact_digest must be sha256:<64 hex>",
        )
        .for_event(&EventRef {
            source: Some("ci".into()),
            id: Some("a\u{7}b".into()),
        });
        assert_eq!(
            e.to_string(),
            "event \"a\\u{7}b\" from \"ci\": artifact_digest must be sha256:<64 hex>"
        );
        let long = "x".repeat(200);
        let shown = EventRef {
            source: None,
            id: Some(long),
        }
        .to_string();
        assert!(shown.chars().count() < 100, "{shown}");
    }
}
