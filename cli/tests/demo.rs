#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `provenant demo`, the README's first command, as a user runs it; and the same story through
//! the Kafka roles on `provenant dev-kafka` (its own process), which must tell the same story.

mod common;

use std::process::Command;

/// The lines of section `n.` of the demo's output (up to the next numbered section).
fn section(stdout: &str, n: u32) -> Vec<String> {
    let start = format!("{n}. ");
    let next = format!("{}. ", n + 1);
    let mut out = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line.starts_with(&start) {
            inside = true;
        } else if line.starts_with(&next) || line.starts_with("verify: ") {
            inside = false;
        }
        if inside {
            out.push(without_hmac_tokens(line));
        }
    }
    out
}

/// `line` with every `hmac:<hex>` token shortened to `hmac:…`: each run keys its HMAC anew.
fn without_hmac_tokens(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("hmac:") {
        out.push_str(&rest[..i + 5]);
        out.push('…');
        rest = rest[i + 5..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_over_dev_kafka_tells_the_same_story_as_embedded() {
    let embedded = demo(&[]);
    let broker = common::Broker::start(&["--partitions", "4"]);
    let kafka = demo(&["--brokers", &broker.bootstrap]);
    assert!(kafka.contains("over Kafka at 127.0.0.1:"), "{kafka}");
    // Processed counts, the lineage tree, the redactions and the coverage are the same.
    for n in [3, 4, 5, 6] {
        assert_eq!(section(&kafka, n), section(&embedded, n), "section {n}");
        assert!(
            !section(&kafka, n).is_empty(),
            "section {n} empty:\n{kafka}"
        );
    }
    // The DLQ holds the same reasons (offsets may differ between logs).
    let reasons = |s: &str| {
        let mut r: Vec<String> = section(s, 7)
            .iter()
            .skip(1)
            .filter_map(|l| l.split(':').next().map(|x| x.trim().to_owned()))
            .collect();
        r.sort();
        r
    };
    assert_eq!(reasons(&kafka), reasons(&embedded));
    assert!(
        reasons(&kafka).contains(&"malformed_json".to_owned()),
        "{kafka}"
    );
    assert!(kafka.trim_end().contains("verify: OK"), "{kafka}");
    assert!(!kafka.contains("ghp_R8x2Lq9ZkT4mVb7Nc1Wd5Yf3Hs6Jp0Ae2Gu8"));
    assert!(!kafka.contains("dana@acme.example"));
}

#[test]
fn demo_ends_with_a_lineage_tree_to_the_commit_and_verify_ok() {
    let stdout = demo(&[]);
    assert!(
        stdout.contains("instance:shop-7d9f8c6b5-x2k4q\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--built_from--> commit:4711a73b71d459a8aebe20e7d71ba22af478ed67"),
        "{stdout}"
    );
    assert!(stdout.contains("\"detector\":\"github_token\""), "{stdout}");
    assert!(stdout.contains("malformed_json"), "{stdout}");
    assert!(stdout.contains("coverage: 1/1"), "{stdout}");
    assert!(stdout.trim_end().contains("verify: OK"), "{stdout}");
    // The planted secrets never reach the output (the ledger holds only tokens and masks).
    assert!(!stdout.contains("ghp_R8x2Lq9ZkT4mVb7Nc1Wd5Yf3Hs6Jp0Ae2Gu8"));
    assert!(!stdout.contains("dana@acme.example"));
}
