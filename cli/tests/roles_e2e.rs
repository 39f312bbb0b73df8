//! The roles at scale as separate processes — `provenant process`, `provenant sink archive`
//! on S3 and `provenant sink index` on PostgreSQL, fed by `provenant emit --brokers` — on
//! `provenant dev-kafka`, SeaweedFS (`weed mini`, scripts/requirements.txt) and the local
//! PostgreSQL (127.0.0.1:5432, or `PROVENANT_TEST_POSTGRES`): the end-to-end run of
//! `tests/docker/suites.rs`, which `tests/docker.rs` runs on containers where Docker is.
//!
//! The index must hold the instance's lineage back to its commit, and `provenant verify` must
//! pass on the S3 archive with as many records per partition as the index's chain heads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

mod common;
#[path = "docker/suites.rs"]
#[allow(dead_code)]
mod suites;

use provenant_archive::testkit::{SEAWEED_ACCESS_KEY, SEAWEED_BUCKET, SEAWEED_SECRET_KEY, Seaweed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_and_sinks_as_processes_on_dev_kafka_seaweedfs_and_postgresql() {
    common::init_logs();
    const PARTITIONS: u32 = 4;
    let broker = common::Broker::start(&["--partitions", &PARTITIONS.to_string()]);
    let weed = Seaweed::start().unwrap_or_else(|e| panic!("cannot start SeaweedFS: {e}"));
    let stack = suites::Stack {
        brokers: broker.bootstrap.clone(),
        s3: suites::S3 {
            endpoint: format!("http://127.0.0.1:{}", weed.s3_port),
            bucket: SEAWEED_BUCKET.into(),
            access_key: SEAWEED_ACCESS_KEY.into(),
            secret_key: SEAWEED_SECRET_KEY.into(),
        },
        postgres: std::env::var("PROVENANT_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
    };
    suites::end_to_end(&stack, PARTITIONS).await;
}
