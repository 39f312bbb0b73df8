//! The redaction corpus as whole event documents, for benchmarks that compare this crate
//! with another redactor over the same input (`provenant bench`'s `redact_vs_vrl`, and
//! `cargo bench -p provenant-redact --bench redact`).
//!
//! `corpus/pii.json` plants 113 fake PII and secret values, each into one field of a real
//! event envelope as a realistic text (a build log line, a pipeline URL, an error message);
//! `corpus/negative.json` holds values that must never be redacted (commit SHAs, digests,
//! UUIDs, build ids, …), each placed in a runtime event's `message` and one annotation.
//! The documents are CloudEvents JSON objects; the same list, in the same order, every call.

use serde::Deserialize;
use serde_json::{Value, json};

const PII: &str = include_str!("../corpus/pii.json");
const NEGATIVE: &str = include_str!("../corpus/negative.json");

/// One document of the corpus.
#[derive(Clone, Debug)]
pub struct Document {
    /// The CloudEvents JSON object.
    pub json: Value,
    /// `(detector, value)` for a document carrying a planted value; `None` for a negative.
    pub planted: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Corpus<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Planted {
    detector: String,
    value: String,
    kind: String,
    field: String,
    text: String,
}

#[derive(Deserialize)]
struct Negative {
    value: String,
}

/// Every document of the corpus: the planted ones first, then the negatives.
///
/// # Errors
/// Only if a corpus file shipped with the crate does not parse (a unit test builds it).
pub fn documents() -> Result<Vec<Document>, serde_json::Error> {
    let pii: Corpus<Planted> = serde_json::from_str(PII)?;
    let neg: Corpus<Negative> = serde_json::from_str(NEGATIVE)?;
    let mut docs = Vec::with_capacity(pii.items.len() + neg.items.len());
    for (n, item) in pii.items.into_iter().enumerate() {
        let mut json = envelope(&item.kind, n);
        place(
            &mut json,
            &item.field,
            &item.text.replace("{v}", &item.value),
        );
        docs.push(Document {
            json,
            planted: Some((item.detector, item.value)),
        });
    }
    for (n, item) in neg.items.into_iter().enumerate() {
        let mut json = envelope("runtime", 1000 + n);
        place(&mut json, "message", &item.value);
        place(&mut json, "annotations.note", &item.value);
        docs.push(Document {
            json,
            planted: None,
        });
    }
    Ok(docs)
}

/// The envelope of a real event of `kind` with two ordinary annotations.
fn envelope(kind: &str, n: usize) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("0190b6f2-3c4d-7e8f-9a0b-{n:012x}"),
        "source": "https://ci.example.com/acme/api",
        "type": format!("io.provenant.{kind}.v1"),
        "time": "2026-11-23T10:05:00Z",
        "datacontenttype": "application/json",
        "data": {
            "service": "api",
            "environment": "production",
            "deploy_id": "deploy-prod-20261123-0042",
            "artifact_digest": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "annotations": {"region": "eu-west-1", "ci.runner": "ubuntu-24.04"}
        }
    })
}

/// Puts `text` at `field` (`annotations.x` → `data.annotations.x`, `extensions.x` and
/// `subject` → top level, anything else → `data.<field>`).
fn place(doc: &mut Value, field: &str, text: &str) {
    let (obj, name) = if let Some(k) = field.strip_prefix("annotations.") {
        (doc.pointer_mut("/data/annotations"), k)
    } else if let Some(k) = field.strip_prefix("extensions.") {
        (Some(&mut *doc), k)
    } else if field == "subject" {
        (Some(&mut *doc), field)
    } else {
        (doc.pointer_mut("/data"), field)
    };
    if let Some(obj) = obj.and_then(Value::as_object_mut) {
        obj.insert(name.to_owned(), Value::String(text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_becomes_a_document_holding_its_text() {
        let docs = documents().unwrap_or_default();
        let planted = docs.iter().filter(|d| d.planted.is_some()).count();
        assert_eq!(planted, 113);
        assert!(
            docs.len() - planted >= 90,
            "{} negatives",
            docs.len() - planted
        );
        for d in &docs {
            let text = serde_json::to_string(&d.json).unwrap_or_default();
            if let Some((_, value)) = &d.planted {
                let escaped = serde_json::to_string(value).unwrap_or_default();
                let escaped = escaped.trim_matches('"');
                assert!(text.contains(escaped), "{value} not placed in {text}");
            }
        }
    }
}
