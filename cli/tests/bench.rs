#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `provenant bench --quick --json` as CI smoke use: every key the issue names is there with
//! `{ours, baseline, ratio, unit}`, each figure from work that was checked (the harness fails
//! otherwise), and `redact_vs_vrl` is null with a note when built without `vrl-bench` (a
//! figure with the caught counts when built with it). Sizes are cut further than `--quick`
//! because tests run the debug build.

use std::process::Command;

#[test]
fn quick_json_has_every_key_with_ours_baseline_ratio_unit() {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args([
            "bench",
            "--quick",
            "--json",
            "--events",
            "2000",
            "--lineage-events",
            "3000",
            "--archive-records",
            "4000",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "processor_vs_passthrough",
        "emit_vs_raw_producer",
        "verify_vs_sha256sum",
        "lineage_query_p99_ms",
    ] {
        let m = &v[key];
        let (ours, base, ratio) = (
            m["ours"].as_f64().unwrap(),
            m["baseline"].as_f64().unwrap(),
            m["ratio"].as_f64().unwrap(),
        );
        assert!(ours > 0.0 && base > 0.0, "{key}: {m}");
        assert!((ratio - ours / base).abs() < 1e-9, "{key}: {m}");
        assert!(m["unit"].is_string(), "{key}: {m}");
    }
    assert_eq!(v["processor_vs_passthrough"]["unit"], "events/s");
    // The headline is the steady state: never below the rate that includes startup.
    let pr = &v["processor_vs_passthrough"];
    assert!(pr["startup_ms"].as_f64().unwrap() >= 0.0, "{pr}");
    assert!(
        pr["ours"].as_f64().unwrap() >= pr["ours_including_startup"].as_f64().unwrap() - 1.0,
        "{pr}"
    );
    assert_eq!(v["verify_vs_sha256sum"]["unit"], "MB/s");
    // Both corpora, side by side: the realistic one is the headline, the template one nested.
    let verify = &v["verify_vs_sha256sum"];
    assert_eq!(verify["corpus"], "realistic", "{verify}");
    let template = &verify["template_corpus"];
    assert_eq!(template["corpus"], "template", "{verify}");
    for m in [verify, template] {
        assert!(m["ours"].as_f64().unwrap() > 0.0, "{m}");
        assert!(m["baseline"].as_f64().unwrap() > 0.0, "{m}");
        assert_eq!(m["records"].as_u64(), Some(4000), "{m}");
        let stored = m["bytes_stored_per_record"].as_f64().unwrap();
        let canonical = m["canonical_bytes_per_record"].as_f64().unwrap();
        assert!(stored > 10.0 && canonical > stored, "{m}");
    }
    assert!(
        verify["bytes_stored_per_record"].as_f64() > template["bytes_stored_per_record"].as_f64(),
        "random ids and digests compress less than the template: {verify}"
    );
    assert_eq!(v["lineage_query_p99_ms"]["unit"], "ms");
    assert!(v["lineage_query_p99_ms"]["events"].as_u64().unwrap() >= 3000);
    #[cfg(not(feature = "vrl-bench"))]
    {
        assert!(v["redact_vs_vrl"].is_null());
        assert!(
            v["notes"]["redact_vs_vrl"]
                .as_str()
                .unwrap()
                .contains("vrl-bench")
        );
    }
    #[cfg(feature = "vrl-bench")]
    {
        let m = &v["redact_vs_vrl"];
        let (ours, base, ratio) = (
            m["ours"].as_f64().unwrap(),
            m["baseline"].as_f64().unwrap(),
            m["ratio"].as_f64().unwrap(),
        );
        assert!(ours > 0.0 && base > 0.0 && ratio > 0.0, "{m}");
        assert!((ratio - ours / base).abs() < 1e-9, "{m}");
        assert_eq!(m["unit"], "documents/s");
        let planted = m["planted"].as_u64().unwrap();
        assert!(planted >= 100, "{m}");
        assert!(m["caught_ours"].as_u64().unwrap() <= planted, "{m}");
        assert!(m["caught_vrl"].as_u64().unwrap() <= planted, "{m}");
        assert!(m["caught_ours"].as_u64().unwrap() > 0, "{m}");
        for (kind, c) in m["caught_by_kind"].as_object().unwrap() {
            assert!(
                c["ours"].as_u64().is_some()
                    && c["vrl"].as_u64().is_some()
                    && c["planted"].as_u64().is_some(),
                "{kind}: {c}"
            );
        }
        assert!(m["false_positives_ours"].as_u64().is_some(), "{m}");
        assert!(m["vrl_filters"].as_array().is_some_and(|f| !f.is_empty()));
    }
    // Progress went to stderr, the JSON alone to stdout.
    assert!(
        stderr.contains("bench: processor_vs_passthrough"),
        "{stderr}"
    );
}

#[test]
fn only_runs_the_named_measurement_and_tables_by_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args([
            "bench",
            "--quick",
            "--only",
            "lineage_query_p99_ms",
            "--lineage-events",
            "2000",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lineage_query_p99_ms"), "{stdout}");
    assert!(stdout.contains("ms"), "{stdout}");
    // The measurements not asked for are reported as not run.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("verify_vs_sha256sum") && l.contains("not run")),
        "{stdout}"
    );
}
