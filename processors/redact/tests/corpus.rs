#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The PII/secret corpus (`corpus/pii.json`) and the negative corpus (`corpus/negative.json`)
//! through `redact_event` with the default policy.

mod common;

use common::{event, json_string, redactor, set_field};
use provenant_redact::DETECTORS;
use provenant_schemas::Limits;
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["items"].as_array().unwrap().clone()
}

#[test]
fn pii_corpus_is_large_and_covers_every_detector() {
    let items = load("pii.json");
    assert!(items.len() >= 100, "only {} items", items.len());
    for d in DETECTORS {
        assert!(
            items.iter().any(|i| i["detector"] == *d),
            "no corpus item for detector {d}"
        );
    }
}

#[test]
fn every_planted_value_is_redacted_and_reported() {
    let r = redactor();
    let mut failures = Vec::new();
    for item in load("pii.json") {
        let id = item["id"].as_str().unwrap();
        let detector = item["detector"].as_str().unwrap();
        let value = item["value"].as_str().unwrap();
        let text = item["text"].as_str().unwrap().replace("{v}", value);
        let mut e = event(item["kind"].as_str().unwrap());
        set_field(&mut e, item["field"].as_str().unwrap(), &text);
        e.validate(&Limits::DEFAULT)
            .unwrap_or_else(|err| panic!("{id}: corpus event is not valid: {err}"));
        let redactions = r.redact_event(&mut e);
        let json = json_string(&e);
        let debug = format!("{redactions:?}");
        if json.contains(value) {
            failures.push(format!(
                "{id} ({detector}): value still in the event: {json}"
            ));
        }
        if debug.contains(value) {
            failures.push(format!("{id} ({detector}): value in the redactions' Debug"));
        }
        if !redactions.iter().any(|x| x.detector == detector) {
            failures.push(format!("{id}: expected {detector}, got {redactions:?}"));
        }
        if let Err(err) = e.validate(&Limits::DEFAULT) {
            failures.push(format!("{id}: redacted event invalid: {err}"));
        }
        // Idempotent: nothing more to do the second time.
        let again = r.redact_event(&mut e);
        if !again.is_empty() {
            failures.push(format!(
                "{id}: second pass redacted {again:?} in {}",
                json_string(&e)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_corpus_is_never_redacted() {
    let r = redactor();
    let items = load("negative.json");
    assert!(items.len() >= 50, "only {} items", items.len());
    let mut failures = Vec::new();
    for item in items {
        let kind = item["kind"].as_str().unwrap();
        let value = item["value"].as_str().unwrap();
        // In the identifier field that can hold it, in an annotation, in free text and in
        // the subject (where it is a valid identifier).
        let mut placements: Vec<(&str, &str)> = vec![
            ("build", "annotations.ref"),
            ("runtime", "message"),
            ("deploy", "annotations.note"),
        ];
        match kind {
            "commit_sha" => placements.push(("build", "commit_sha")),
            "digest" => placements.push(("build", "artifact_digest")),
            "uuid" => placements.push(("data", "run_id")),
            "timestamp" => placements.push(("build", "build_timestamp")),
            _ => {}
        }
        if !value.contains(' ') {
            placements.extend([
                ("build", "build_id"),
                ("event", "subject"),
                ("deploy", "deploy_id"),
                ("runtime", "instance_id"),
                ("data", "input_name"),
            ]);
        }
        for (k, field) in placements {
            let mut e = event(k);
            set_field(&mut e, field, value);
            e.validate(&Limits::DEFAULT)
                .unwrap_or_else(|err| panic!("{value:?} in {k}.{field}: not valid: {err}"));
            let before = e.clone();
            let redactions = r.redact_event(&mut e);
            if !redactions.is_empty() || e != before {
                failures.push(format!("{kind} {value:?} in {k}.{field}: {redactions:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} false positives:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore = "prints the redacted corpus for inspection"]
fn show() {
    let r = redactor();
    for item in load("pii.json") {
        let value = item["value"].as_str().unwrap();
        let text = item["text"].as_str().unwrap().replace("{v}", value);
        let mut e = event(item["kind"].as_str().unwrap());
        set_field(&mut e, item["field"].as_str().unwrap(), &text);
        let red = r.redact_event(&mut e);
        let v = e.to_json_value();
        let field = item["field"].as_str().unwrap();
        let shown = if let Some(k) = field.strip_prefix("annotations.") {
            v["data"]["annotations"]
                .get(k)
                .cloned()
                .unwrap_or(v["data"]["annotations"].clone())
        } else if let Some(k) = field.strip_prefix("extensions.") {
            v.get(k).cloned().unwrap_or(Value::Null)
        } else {
            v["data"]
                .get(field)
                .or(v.get(field))
                .cloned()
                .unwrap_or(Value::Null)
        };
        println!(
            "{} {:?} => {}",
            item["id"],
            red.iter()
                .map(|x| format!("{}:{}:{}", x.path, x.detector, x.action.as_str()))
                .collect::<Vec<_>>(),
            shown
        );
    }
}
