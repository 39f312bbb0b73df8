//! The malformed corpus (`schemas/corpus/bad/`, each file with its exact expected error in
//! `expected.json`) sent through `provenant emit --json` and through HTTP ingest of a running
//! `provenant up`: each gets its exact error from both, and nothing reaches `prov.raw`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, RAW_TOPIC};
use serde_json::Value;

mod common;
use common::{Up, free_port};

fn content_type(name: &str) -> &'static str {
    if name.ends_with(".batch.json") {
        "application/cloudevents-batch+json"
    } else if name.ends_with(".ndjson") {
        "application/x-ndjson"
    } else {
        "application/json"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_exact_error_from_emit_and_http_and_nothing_is_stored() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/corpus/bad");
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(corpus.join("expected.json")).unwrap())
            .unwrap();
    assert!(expected.len() >= 40, "corpus has {} files", expected.len());
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(data.path(), free_port(), &[]);
    let client = reqwest::Client::new();
    for (name, want) in &expected {
        let path = corpus.join(name);
        let message = want["message"].as_str().unwrap();
        let code = want["code"].as_str().unwrap();

        let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
            .args([
                "emit",
                "--endpoint",
                &up.base,
                "--content-type",
                content_type(name),
                "--json",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: emit exit code; stderr: {stderr}"
        );
        assert!(
            stderr.contains(message),
            "{name}: emit said {stderr:?}, expected {message:?}"
        );

        let resp = client
            .post(format!("{}/v1/events", up.base))
            .header("content-type", content_type(name))
            .body(std::fs::read(&path).unwrap())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(status, 400, "{name}: HTTP status; body {body}");
        let rejected = body["rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), 1, "{name}: {body}");
        assert_eq!(rejected[0]["code"], code, "{name}");
        assert_eq!(rejected[0]["message"], message, "{name}");
    }
    up.stop();
    let log = EmbeddedLog::open(data.path().join("log"), EmbeddedConfig::default()).unwrap();
    for p in 0..log.partition_count(RAW_TOPIC).await.unwrap() {
        assert_eq!(
            log.watermarks(RAW_TOPIC, p).await.unwrap().end,
            0,
            "prov.raw partition {p} holds a bad event"
        );
    }
}
