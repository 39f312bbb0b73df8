//! What a rejected raw record becomes in `prov.dlq`.
//!
//! Headers (all UTF-8): `provenant.dlq.reason` (the stable error code),
//! `provenant.dlq.message` (what is wrong; error messages never hold a field value),
//! `provenant.dlq.field` (the field path, when known), `provenant.dlq.source.topic`,
//! `provenant.dlq.source.partition`, `provenant.dlq.source.offset`, `provenant.dlq.time`
//! (RFC 3339, when the processor rejected it).
//!
//! Value, by default: a JSON object `{"headers": {...}, "value": ..., "value_bytes": N}` where
//! `headers` holds the raw record's UTF-8 headers and `value` the raw value if it is JSON,
//! each string passed through the redaction stage exactly as the ledger's would be (a value
//! that is not JSON, such as an Avro body, is left out: only its length is kept). With
//! `dlq_raw_bytes = true` the value and headers are the raw record's, byte for byte, plus the
//! `provenant.dlq.*` headers: only for deployments whose DLQ is protected like `prov.raw`.
//!
//! A DLQ record may be written twice if the processor crashes between the DLQ append and the
//! ledger append; the ledger's rejected marker names the one that counts (DLQ partition and
//! offset), and `provenant.dlq.source.*` lets a consumer drop the other.

use provenant_log::{Header, Record, StoredRecord};
use provenant_schemas::EventError;
use serde_json::{Map, Value};

use crate::Redact;

/// Header names.
pub const REASON: &str = "provenant.dlq.reason";
pub const MESSAGE: &str = "provenant.dlq.message";
pub const FIELD: &str = "provenant.dlq.field";
pub const SOURCE_TOPIC: &str = "provenant.dlq.source.topic";
pub const SOURCE_PARTITION: &str = "provenant.dlq.source.partition";
pub const SOURCE_OFFSET: &str = "provenant.dlq.source.offset";
pub const TIME: &str = "provenant.dlq.time";

/// The DLQ record for a raw record refused with `error`.
pub(crate) fn dlq_record(
    raw: &StoredRecord,
    topic: &str,
    partition: u32,
    error: &EventError,
    raw_bytes: bool,
    redactor: &dyn Redact,
) -> Record {
    let mut headers = vec![
        Header::new(REASON, error.code.as_str().as_bytes().to_vec()),
        Header::new(MESSAGE, error.message.clone().into_bytes()),
    ];
    if let Some(field) = &error.field {
        headers.push(Header::new(FIELD, field.clone().into_bytes()));
    }
    headers.push(Header::new(SOURCE_TOPIC, topic.as_bytes().to_vec()));
    headers.push(Header::new(
        SOURCE_PARTITION,
        partition.to_string().into_bytes(),
    ));
    headers.push(Header::new(
        SOURCE_OFFSET,
        raw.offset.to_string().into_bytes(),
    ));
    headers.push(Header::new(
        TIME,
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into_bytes(),
    ));
    if raw_bytes {
        let mut all = raw.record.headers.clone();
        all.extend(headers);
        return Record {
            key: raw.record.key.clone(),
            headers: all,
            value: raw.record.value.clone(),
        };
    }
    let mut copy = redacted_copy(raw, redactor);
    let value = serde_json::to_vec(&copy.take()).unwrap_or_default();
    Record {
        key: None,
        headers,
        value: value.into(),
    }
}

/// The redacted JSON copy of a raw record (see the module doc).
fn redacted_copy(raw: &StoredRecord, redactor: &dyn Redact) -> Value {
    let mut hs = Map::new();
    for h in &raw.record.headers {
        if let Ok(s) = std::str::from_utf8(&h.value) {
            hs.insert(h.name.clone(), Value::String(s.to_owned()));
        }
    }
    let parsed: Option<Value> = serde_json::from_slice(&raw.record.value).ok();
    let mut out = Map::new();
    out.insert("headers".into(), Value::Object(hs));
    out.insert("value".into(), parsed.unwrap_or(Value::Null));
    let mut v = Value::Object(out);
    redactor.redact_json(&mut v);
    if let Value::Object(m) = &mut v {
        m.insert(
            "value_bytes".into(),
            Value::from(raw.record.value.len() as u64),
        );
    }
    v
}
