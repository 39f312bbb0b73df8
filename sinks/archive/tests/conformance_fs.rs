//! The archive conformance suite (`provenant_archive::conformance`) on the local filesystem,
//! one test per check, each on its own temporary directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use provenant_archive::conformance::{self, StoreFactory};
use provenant_archive::{ArchiveStore, S3Options};

async fn run(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let factory: Box<StoreFactory> = Box::new(move |prefix: &str| {
        ArchiveStore::open(
            &format!("file://{}", root.join(prefix).display()),
            &S3Options::default(),
        )
    });
    let (_, check) = conformance::checks()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap();
    if let Err(e) = check(&*factory).await {
        panic!("{name} on the local filesystem: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_rotate_verify_dump() {
    run("write_rotate_verify_dump").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_rotation_fires_without_new_data() {
    run("age_rotation_fires_without_new_data").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_after_newest_complete_segment() {
    run("restart_resumes_after_newest_complete_segment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_leftovers_are_completed_never_rewritten() {
    run("crash_leftovers_are_completed_never_rewritten").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_writer_loses_and_sink_reports_conflict() {
    run("second_writer_loses_and_sink_reports_conflict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_have_one_winner() {
    run("concurrent_creates_have_one_winner").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_entries_are_refused() {
    run("invalid_entries_are_refused").await;
}

#[test]
fn every_check_has_a_test_here() {
    let src = include_str!("conformance_fs.rs");
    for (name, _) in conformance::checks() {
        assert!(
            src.contains(&format!("run(\"{name}\")")),
            "no test runs {name}"
        );
    }
}
