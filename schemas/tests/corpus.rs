//! The malformed-input corpus (`schemas/corpus/bad/`, one defect per file, expected code,
//! field and message in `expected.json`) and the valid corpus (`schemas/corpus/good/` plus
//! the SDK fixtures), all run through `decode` as the CLI, HTTP ingest and processor do.
//!
//! After a deliberate change of an error message, re-bless with
//! `PROVENANT_BLESS_CORPUS=1 cargo test -p provenant-schemas --test corpus` and review the
//! diff of `expected.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use provenant_schemas::interop::cloudevents;
use provenant_schemas::{Limits, decode};
use serde_json::{Value, json};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The content type a corpus file is read with, from its name.
fn content_type(name: &str) -> Option<&'static str> {
    if name.ends_with(".batch.json") {
        Some(cloudevents::BATCH)
    } else if name.ends_with(".ndjson") {
        Some(cloudevents::NDJSON)
    } else {
        None
    }
}

fn listing(rel: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "json" || x == "ndjson" || x == "bin")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .filter(|(name, _)| name != "expected.json")
        .collect();
    out.sort();
    out
}

fn outcome(name: &str, bytes: &[u8]) -> Value {
    let mut items = decode(bytes, content_type(name), &Limits::DEFAULT);
    assert_eq!(items.len(), 1, "{name}: a bad file holds one event");
    let err = match items.remove(0) {
        Ok(e) => panic!("{name}: decoded as valid: {e:?}"),
        Err(err) => err,
    };
    json!({
        "code": err.error.code.as_str(),
        "field": err.error.field,
        "line": err.line,
        "message": err.error.to_string(),
    })
}

#[test]
fn every_bad_input_fails_with_its_exact_code_and_message() {
    let files = listing("corpus/bad");
    assert!(files.len() >= 40, "only {} bad files", files.len());
    let got: BTreeMap<String, Value> = files
        .iter()
        .map(|(name, bytes)| (name.clone(), outcome(name, bytes)))
        .collect();
    let manifest = dir("corpus/bad/expected.json");
    if std::env::var_os("PROVENANT_BLESS_CORPUS").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        std::fs::write(&manifest, text).unwrap();
        return;
    }
    let expected: BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let names = |m: &BTreeMap<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&got),
        names(&expected),
        "files and manifest entries differ"
    );
    for (name, want) in &expected {
        assert_eq!(&got[name], want, "{name}");
    }
}

#[test]
fn bad_inputs_never_echo_their_defect() {
    // Values planted in bad files that must not appear in any message.
    for (name, bytes) in listing("corpus/bad") {
        let msg = outcome(&name, &bytes)["message"]
            .as_str()
            .unwrap()
            .to_owned();
        for planted in [
            "commit 4711a73",
            "23/11/2026",
            "ftp://ci/1",
            "run-42",
            "DONE",
            "maybe",
            "yesterday",
            "SUCCESS",
            "scheduled__",
            "v1.2.3",
            "sha256:nothex",
            "soon",
            "1732327661",
        ] {
            assert!(!msg.contains(planted), "{name}: {msg}");
        }
    }
}

#[test]
fn every_good_input_and_sdk_fixture_decodes_valid() {
    let mut files = listing("corpus/good");
    assert!(files.len() >= 8);
    for sub in [
        "fixtures/cloudevents/structured",
        "fixtures/cloudevents/batch",
        "fixtures/openlineage",
    ] {
        files.extend(
            listing(sub)
                .into_iter()
                .map(|(n, b)| (format!("{sub}/{n}"), b)),
        );
    }
    let mut events = 0;
    for (name, bytes) in files {
        for ct in [content_type(&name), None] {
            let items = decode(&bytes, ct, &Limits::DEFAULT);
            assert!(!items.is_empty(), "{name}");
            for item in &items {
                if let Err(e) = item {
                    panic!("{name} ({ct:?}): {e}");
                }
            }
            events += items.len();
        }
    }
    assert!(events >= 40, "{events}");
}
