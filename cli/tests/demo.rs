#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `provenant demo`, the README's first command, as a user runs it.

use std::process::Command;

#[test]
fn demo_ends_with_a_lineage_tree_to_the_commit_and_verify_ok() {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
