//! Strict JSON reading for outside input.
//!
//! Invariants: [`parse_strict`] never panics and never allocates more than a small multiple
//! of its input; it rejects, each with its own [`ErrorCode`], input over
//! [`Limits::max_event_bytes`], invalid UTF-8, malformed JSON, objects with duplicate keys
//! (serde_json would silently keep the last one, which lets two readers disagree about an
//! event) and nesting deeper than [`Limits::max_depth`].

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ErrorCode, EventError};

/// Size and shape limits applied to every event from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded event accepted (structured JSON bytes, or a binary-mode body).
    pub max_event_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Longest string field (bytes), free text included.
    pub max_string_bytes: usize,
    /// Most annotations on one event.
    pub max_annotations: usize,
    /// Most inputs plus outputs on one data event.
    pub max_datasets: usize,
}

impl Limits {
    /// The defaults: 256 KiB events, depth 32, 16 KiB strings, 64 annotations, 256 datasets.
    pub const DEFAULT: Limits = Limits {
        max_event_bytes: 256 * 1024,
        max_depth: 32,
        max_string_bytes: 16 * 1024,
        max_annotations: 64,
        max_datasets: 256,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Parses one JSON document under the limits. `what` names the input in errors (an event is
/// not known yet at this stage).
pub fn parse_strict(bytes: &[u8], limits: &Limits) -> Result<Value, EventError> {
    if bytes.len() > limits.max_event_bytes {
        return Err(EventError::input(
            ErrorCode::TooLarge,
            format!(
                "event is {} bytes, over the limit of {} bytes",
                bytes.len(),
                limits.max_event_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        EventError::input(
            ErrorCode::InvalidUtf8,
            format!("input is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    parse_strict_str(text, limits)
}

/// [`parse_strict`] for input already known to be UTF-8 (the size limit still applies).
pub fn parse_strict_str(text: &str, limits: &Limits) -> Result<Value, EventError> {
    if text.len() > limits.max_event_bytes {
        return Err(EventError::input(
            ErrorCode::TooLarge,
            format!(
                "event is {} bytes, over the limit of {} bytes",
                text.len(),
                limits.max_event_bytes
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictSeed {
        depth: 0,
        max_depth: limits.max_depth,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v))
    .map_err(|e| classify(&e))?;
    Ok(value)
}

const DUPLICATE: &str = "duplicate key ";
const TOO_DEEP: &str = "nesting deeper than ";

pub(crate) fn classify(e: &serde_json::Error) -> EventError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix(DUPLICATE) {
        // The key name is not echoed: keys are field names, but input is untrusted.
        let _ = rest;
        return EventError::input(
            ErrorCode::DuplicateKey,
            format!(
                "JSON object has a duplicate key (line {}, column {})",
                e.line(),
                e.column()
            ),
        );
    }
    if msg.starts_with(TOO_DEEP) || msg.starts_with("recursion limit exceeded") {
        return EventError::input(
            ErrorCode::TooDeep,
            format!(
                "JSON nesting is too deep (line {}, column {})",
                e.line(),
                e.column()
            ),
        );
    }
    let what = match e.classify() {
        serde_json::error::Category::Eof => "JSON ends too early",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "malformed JSON value",
        serde_json::error::Category::Io => "could not read JSON",
    };
    EventError::input(
        ErrorCode::MalformedJson,
        format!("{what} (line {}, column {})", e.line(), e.column()),
    )
}

struct StrictSeed {
    depth: usize,
    max_depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(de::Error::custom(format_args!(
                "{TOO_DEEP}{}",
                self.max_depth
            )));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictSeed {
            depth,
            max_depth: self.max_depth,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(de::Error::custom(format_args!(
                "{TOO_DEEP}{}",
                self.max_depth
            )));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictSeed {
                depth,
                max_depth: self.max_depth,
            })?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE}{key}")));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(input: &[u8]) -> ErrorCode {
        parse_strict(input, &Limits::DEFAULT).unwrap_err().code
    }

    #[test]
    fn accepts_plain_json() {
        let v = parse_strict(br#"{"a":[1,2,{"b":null}],"c":"x"}"#, &Limits::DEFAULT).unwrap();
        assert_eq!(v["c"], "x");
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        assert_eq!(code(br#"{"a":1,"a":2}"#), ErrorCode::DuplicateKey);
        assert_eq!(code(br#"{"x":{"a":1,"a":1}}"#), ErrorCode::DuplicateKey);
        assert_eq!(code(b"{\"a\":\xff}"), ErrorCode::InvalidUtf8);
        assert_eq!(code(br#"{"a":"#), ErrorCode::MalformedJson);
        assert_eq!(code(br#"{"a":1} x"#), ErrorCode::MalformedJson);
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert_eq!(code(deep.as_bytes()), ErrorCode::TooDeep);
        let very_deep = "[".repeat(100_000);
        assert_eq!(
            parse_strict(
                very_deep.as_bytes(),
                &Limits {
                    max_event_bytes: 1 << 20,
                    ..Limits::DEFAULT
                }
            )
            .unwrap_err()
            .code,
            ErrorCode::TooDeep
        );
        let big = vec![b' '; Limits::DEFAULT.max_event_bytes + 1];
        assert_eq!(code(&big), ErrorCode::TooLarge);
    }
}
