//! `provenant verify`, `archive dump`, `prove` and `verify-proof` against a real archive on
//! disk written by the archive sink, through the real binary: output and exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};

use provenant_archive::conformance::test_key;
use provenant_archive::layout::{self, ObjectKind};
use provenant_archive::testkit::LedgerGen;
use provenant_archive::{ArchiveConfig, ArchiveSink, ArchiveStore, S3Options};

fn provenant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn build(dir: &Path) -> String {
    let root = dir.join("archive");
    let url = format!("file://{}", root.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = ArchiveStore::open(&url, &S3Options::default()).unwrap();
        let cfg = ArchiveConfig {
            archive_id: "cli".into(),
            rotate_records: 10,
            ..ArchiveConfig::default()
        };
        let mut sink = ArchiveSink::with_store(&cfg, store, test_key()).unwrap();
        sink.resume(0).await.unwrap();
        let mut g = LedgerGen::new(0);
        let mut batch = vec![g.fence()];
        batch.extend(g.records(30).unwrap());
        sink.write(0, &batch, &g.state()).await.unwrap();
        sink.close().await.unwrap();
    });
    std::fs::write(dir.join("archive.pub"), test_key().verifier().to_text()).unwrap();
    root.display().to_string()
}

#[test]
fn verify_exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let root = build(dir.path());
    let pubkey = dir.path().join("archive.pub");
    let pubkey = pubkey.to_str().unwrap();

    let ok = provenant(&["verify", &root, "--pubkey", pubkey]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains("INTACT: 30 records in 3 segments"),
        "{}",
        stdout(&ok)
    );
    assert!(stdout(&ok).contains("signatures: checked"));

    let unsigned = provenant(&["verify", &root]);
    assert_eq!(unsigned.status.code(), Some(0));
    assert!(
        stdout(&unsigned).contains("signatures: NOT checked"),
        "{}",
        stdout(&unsigned)
    );

    // --metrics-file: the outcome in the Prometheus text format, for a scheduled audit.
    let prom = dir.path().join("metrics").join("provenant_verify.prom");
    std::fs::create_dir(prom.parent().unwrap()).unwrap();
    let prom_arg = prom.to_str().unwrap();
    let audit = || {
        provenant(&[
            "verify",
            &root,
            "--pubkey",
            pubkey,
            "--metrics-file",
            prom_arg,
        ])
    };
    let audited = audit();
    assert_eq!(audited.status.code(), Some(0), "{}", stdout(&audited));
    let m = metrics(&prom);
    assert_eq!(m["provenant_verify_exit_code"], 0.0);
    assert_eq!(m["provenant_verify_integrity_failures"], 0.0);
    assert_eq!(m["provenant_verify_records"], 30.0);
    assert_eq!(m["provenant_verify_signatures_checked"], 1.0);
    assert!(m["provenant_verify_bytes"] > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - m["provenant_verify_last_run_timestamp_seconds"]).abs() < 60.0);

    let json = provenant(&["verify", &root, "--json", "--pubkey", pubkey]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["records"], 30);

    let saved = dir.path().join("saved.checkpoint");
    std::fs::copy(
        Path::new(&root).join(layout::key(0, 20, ObjectKind::Checkpoint)),
        &saved,
    )
    .unwrap();
    for kind in [
        ObjectKind::Segment,
        ObjectKind::Manifest,
        ObjectKind::Checkpoint,
    ] {
        std::fs::remove_file(Path::new(&root).join(layout::key(0, 10, kind))).unwrap();
    }
    let bad = provenant(&[
        "verify",
        &root,
        "--pubkey",
        pubkey,
        "--since-checkpoint",
        saved.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    let text = stdout(&bad);
    assert!(
        text.contains("FAIL [gap] partition 0 p0000/s00000000000000000020.avro seq 10: records seq 10..=19 are missing"),
        "{text}"
    );
    assert!(text.contains("FAIL [consistency]"), "{text}");
    let tampered = audit();
    assert_eq!(tampered.status.code(), Some(1));
    let m = metrics(&prom);
    assert_eq!(m["provenant_verify_exit_code"], 1.0);
    assert!(m["provenant_verify_integrity_failures"] >= 1.0, "{m:?}");

    let usage = provenant(&["verify", "gs://nope/x"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("unsupported scheme"));
    let missing_key = provenant(&["verify", &root, "--pubkey", "/nonexistent/archive.pub"]);
    assert_eq!(missing_key.status.code(), Some(2));
    // A run that could not verify says so in the file too (exit code 2, no failure count).
    let unreachable = provenant(&["verify", "gs://nope/x", "--metrics-file", prom_arg]);
    assert_eq!(unreachable.status.code(), Some(2));
    let m = metrics(&prom);
    assert_eq!(m["provenant_verify_exit_code"], 2.0);
    assert!(
        !m.contains_key("provenant_verify_integrity_failures")
            || m["provenant_verify_integrity_failures"] == 0.0
    );
    // Leaves no temporary file behind.
    assert_eq!(
        std::fs::read_dir(prom.parent().unwrap()).unwrap().count(),
        1
    );
}

/// `name value` lines of a Prometheus text file (no labels here).
fn metrics(path: &Path) -> std::collections::BTreeMap<String, f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap();
            (name.to_owned(), value.trim().parse().unwrap())
        })
        .collect()
}

#[test]
fn dump_prove_and_verify_proof() {
    let dir = tempfile::tempdir().unwrap();
    let root = build(dir.path());
    let pubkey = dir.path().join("archive.pub");

    let dump = provenant(&["archive", "dump", &root, "--partition", "0"]);
    assert_eq!(dump.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&dump)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 30);
    assert_eq!(lines[7]["seq"], 7);
    assert_eq!(lines[7]["body"]["event"]["event"]["id"], "ev-p0-7");

    let proof = provenant(&["prove", "ev-p0-17", "--archive", &root]);
    assert_eq!(
        proof.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&proof.stderr)
    );
    let file = dir.path().join("proof.json");
    std::fs::write(&file, &proof.stdout).unwrap();
    let ok = provenant(&[
        "verify-proof",
        file.to_str().unwrap(),
        "--pubkey",
        pubkey.to_str().unwrap(),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(
        stdout(&ok).starts_with("OK: record seq 17"),
        "{}",
        stdout(&ok)
    );

    let altered = stdout(&proof)
        .replace("\"production\"", "\"prod-2\"")
        .replace("\"staging\"", "\"stage-2\"");
    std::fs::write(&file, altered).unwrap();
    let bad = provenant(&[
        "verify-proof",
        file.to_str().unwrap(),
        "--pubkey",
        pubkey.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains("FAILED"), "{}", stdout(&bad));

    let none = provenant(&["prove", "no-such-event", "--archive", &root]);
    assert_eq!(none.status.code(), Some(1));

    let keys = dir.path().join("keys");
    let kg = provenant(&["archive", "keygen", "--dir", keys.to_str().unwrap()]);
    assert_eq!(kg.status.code(), Some(0));
    assert!(keys.join("archive.key").exists() && keys.join("archive.pub").exists());
}
