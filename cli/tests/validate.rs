//! `provenant validate` run as a real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn schemas(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(rel)
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .arg("validate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn valid_batch_prints_one_line_per_event_and_exits_0() {
    let path = schemas("fixtures/cloudevents/batch/batch.json");
    let out = run(&[path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(
        lines[0],
        "ok   #1 build event \"0c8f8a9e-6a43-4f4e-9a55-5b6a0f1d2e01\" from \"https://github.com/acme/shop/actions\""
    );
    assert!(lines[4].starts_with("ok   #5 runtime event "), "{stdout}");
    assert_eq!(lines[5], "5 events: 5 valid, 0 invalid");
}

#[test]
fn mixed_stdin_ndjson_reports_each_failure_and_exits_1() {
    let good = std::fs::read_to_string(schemas("corpus/good/mixed-formats.ndjson")).unwrap();
    let bad =
        std::fs::read_to_string(schemas("corpus/bad/030-artifact-digest-short.json")).unwrap();
    let input = format!("{good}{bad}\n");
    let out = run(&["-"], Some(input.as_bytes()));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert!(
        lines[0].starts_with("ok   #1 deploy event \"deploy-1\""),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("(mapped from dev.cdevents.service.rolledback.0.3.0)"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("ok   #3 data event "), "{stdout}");
    assert!(
        lines[2].ends_with("(mapped from openlineage.RunEvent)"),
        "{stdout}"
    );
    assert_eq!(
        lines[4],
        "FAIL #5 (line 6) event \"artifact-1\" from \"https://ci.acme.example/shop\": artifact_digest must be sha256:<64 hex> [invalid_value data.artifact_digest]"
    );
    assert_eq!(lines[5], "5 events: 4 valid, 1 invalid");
}

#[test]
fn json_report_is_machine_readable() {
    let path = schemas("corpus/bad/065-cdevents-purl-no-digest.json");
    let out = run(&["--json", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], 0);
    assert_eq!(report["invalid"], 1);
    let e = &report["events"][0];
    assert_eq!(e["index"], 1);
    assert_eq!(e["ok"], false);
    assert_eq!(e["code"], "invalid_value");
    assert_eq!(e["field"], "subject.content.artifactId");
    assert_eq!(e["id"], "cd-1");
    assert_eq!(e["source"], "/tekton/acme");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("subject.content.artifactId must be a purl")
    );

    let path = schemas("fixtures/openlineage/run_complete.json");
    let out = run(&["--json", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &report["events"][0];
    assert_eq!(e["ok"], true);
    assert_eq!(e["kind"], "data");
    assert_eq!(e["mapped_from"], "openlineage.RunEvent");
    assert_eq!(e["id"].as_str().unwrap().len(), 36);
}

#[test]
fn bad_corpus_files_fail_with_their_manifest_code() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(schemas("corpus/bad/expected.json")).unwrap())
            .unwrap();
    // A sample across formats and framings; the schema crate's corpus test runs them all.
    for name in [
        "001-not-json.json",
        "004-invalid-utf8.bin",
        "046-duplicate-key-top.json",
        "049-oversize-event.json",
        "072-cdevents-build-finished-nothing.json",
        "088-openlineage-dataset-event.json",
        "095-ndjson-one-bad-line.ndjson",
    ] {
        let path = schemas(&format!("corpus/bad/{name}"));
        let mut args = vec!["--json", path.to_str().unwrap()];
        if name.ends_with(".ndjson") {
            args.extend(["--content-type", "application/x-ndjson"]);
        }
        let out = run(&args, None);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["events"][0]["code"], manifest[name]["code"],
            "{name}"
        );
        assert_eq!(
            report["events"][0]["line"], manifest[name]["line"],
            "{name}"
        );
    }
}

#[test]
fn usage_and_io_errors_exit_2() {
    let out = run(&["/nonexistent/events.json"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/events.json"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let out = run(&["-"], Some(b" \n\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard input holds no event"));

    let out = run(&["-"], Some(b"[]"));
    assert_eq!(out.status.code(), Some(2));

    let out = run(&[], None);
    assert_eq!(out.status.code(), Some(2), "missing FILE is a usage error");
}

#[test]
fn unknown_content_type_is_an_invalid_input() {
    let path = schemas("fixtures/cloudevents/structured/build.json");
    let out = run(
        &["--content-type", "text/plain", path.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("[unsupported_content_type]"),
        "{}",
        text(&out)
    );
}

#[test]
fn help_shows_a_ci_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["validate", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("provenant validate --json"), "{help}");
    assert!(help.contains("Exit status: 0 all events valid, 1 some event invalid, 2 usage"));
}
