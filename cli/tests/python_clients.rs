//! Events written by clients from other ecosystems, not by our code, land in `prov.raw` as
//! valid events: the Python `cloudevents` SDK over HTTP to `provenant up`, `confluent-kafka`
//! with `cloudevents` Kafka binary mode to `provenant dev-kafka`, and `openlineage-python`'s
//! HTTP transport to `provenant up`.
//!
//! Needs the Python venv that `.ci/run` makes (`$PROVENANT_PYTHON`, default
//! `~/.cache/provenant/venv/bin/python`); the tests fail, not skip, without it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::partitioner::partition_for_key;
use provenant_log::{Log, LogReader, RAW_TOPIC};
use provenant_schemas::{Event, Kind, Limits, binary_mode};
use serde_json::Value;

mod common;
use common::{Broker, Up, free_port};

fn python() -> PathBuf {
    std::env::var_os("PROVENANT_PYTHON").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/provenant/venv/bin/python"),
        PathBuf::from,
    )
}

fn client(args: &[&str]) -> Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/interop/clients.py");
    let py = python();
    let out = Command::new(&py)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} (make the venv with .ci/run): {e}", py.display()));
    assert!(
        out.status.success(),
        "client {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every event in prov.raw, decoded as binary mode and validated.
async fn raw_events<L: Log>(log: &L) -> Vec<(u32, Vec<u8>, Event)> {
    let mut out = Vec::new();
    for p in 0..log.partition_count(RAW_TOPIC).await.unwrap() {
        let end = log.watermarks(RAW_TOPIC, p).await.unwrap().end;
        let mut reader = log.reader(RAW_TOPIC, p, 0).await.unwrap();
        while reader.position() < end {
            for r in reader
                .next_batch(1_000, Duration::from_secs(5))
                .await
                .unwrap()
            {
                let headers: Vec<(String, Vec<u8>)> = r
                    .record
                    .headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.to_vec()))
                    .collect();
                let event = binary_mode::decode(&headers, &r.record.value, &Limits::DEFAULT)
                    .unwrap_or_else(|e| {
                        panic!("record at {p}/{} is not a valid event: {e}", r.offset)
                    });
                out.push((p, r.record.key.clone().unwrap_or_default().to_vec(), event));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_sdk_and_openlineage_client_over_http_to_up() {
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(data.path(), free_port(), &[]);
    let ce = client(&["cloudevents-http", &up.base, "20"]);
    assert_eq!(ce["sent"].as_array().unwrap().len(), 20);
    let ol = client(&["openlineage-http", &up.base]);
    assert_eq!(ol["sent"], serde_json::json!(["START", "COMPLETE"]));
    up.stop();

    let log = EmbeddedLog::open(data.path().join("log"), EmbeddedConfig::default()).unwrap();
    let events = raw_events(&log).await;
    assert_eq!(events.len(), 22);
    let runtime: HashSet<String> = events
        .iter()
        .filter(|(_, _, e)| e.kind() == Kind::Runtime)
        .map(|(_, _, e)| e.id.clone())
        .collect();
    assert_eq!(runtime, (0..20).map(|i| format!("py-{i:05}")).collect());
    let data_events: Vec<&Event> = events
        .iter()
        .map(|(_, _, e)| e)
        .filter(|e| e.kind() == Kind::Data)
        .collect();
    assert_eq!(data_events.len(), 2);
    for e in data_events {
        assert_eq!(e.mapped_from.as_deref(), Some("openlineage.RunEvent"));
        assert_eq!(
            e.partition_key(),
            "job:airflow://acme-prod/shop_orders.daily_revenue"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_binary_mode_to_dev_kafka() {
    let broker = Broker::start(&["--partitions", "4"]);
    let sent = client(&["cloudevents-kafka", &broker.bootstrap, "50"]);
    let log = broker.log();
    let events = raw_events(&log).await;
    assert_eq!(events.len(), 50);
    let ids: HashSet<String> = events.iter().map(|(_, _, e)| e.id.clone()).collect();
    assert_eq!(ids, (0..50).map(|i| format!("py-{i:05}")).collect());
    for (partition, key, event) in &events {
        assert_eq!(event.kind(), Kind::Runtime);
        // librdkafka's murmur2_random in Python put each key where our partitioner does.
        assert_eq!(
            *partition,
            partition_for_key(key, 4),
            "{}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(String::from_utf8_lossy(key), event.partition_key());
    }
    assert_eq!(sent["delivered"].as_array().unwrap().len(), 50);
}

/// Issue 6 Must-show: the malformed corpus, sent straight to `prov.raw` by confluent-kafka
/// between good events, ends in the DLQ with each file's reason while the good events flow
/// into the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_from_confluent_kafka_go_to_the_dlq_with_reasons_and_good_ones_flow() {
    use provenant_log::{DLQ_TOPIC, LEDGER_TOPIC};
    use provenant_schemas::ledger::{LedgerEntry, RecordBody};
    use provenant_schemas::validity::{ReaderState, Validator, Verdict};

    let broker = Broker::start(&["--partitions", "8"]);
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/corpus/bad");
    let sent = client(&[
        "raw-corpus",
        &broker.bootstrap,
        corpus.to_str().unwrap(),
        "400",
    ]);
    let bad: Vec<String> = serde_json::from_value(sent["bad"].clone()).unwrap();
    let good: HashSet<String> = serde_json::from_value(sent["good"].clone()).unwrap();
    assert!(bad.len() >= 50, "{}", bad.len());
    let expected: Value =
        serde_json::from_slice(&std::fs::read(corpus.join("expected.json")).unwrap()).unwrap();

    let mut process = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args([
            "process",
            "--brokers",
            &broker.bootstrap,
            "--http",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = broker.log();
    let started = std::time::Instant::now();
    let a = loop {
        let a = provenant_processor::audit::audit(&log).await.unwrap();
        if a.partitions.iter().all(|p| p.missing_count == 0)
            || started.elapsed() > Duration::from_secs(60)
        {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status();
    assert!(process.wait().unwrap().success());
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events as usize, good.len());

    // Raw offset → corpus file, from the record keys.
    let mut file_at = std::collections::HashMap::new();
    for p in 0..log.partition_count(RAW_TOPIC).await.unwrap() {
        let end = log.watermarks(RAW_TOPIC, p).await.unwrap().end;
        let mut reader = log.reader(RAW_TOPIC, p, 0).await.unwrap();
        while reader.position() < end {
            for r in reader
                .next_batch(1_000, Duration::from_secs(5))
                .await
                .unwrap()
            {
                let key = String::from_utf8(r.record.key.clone().unwrap().to_vec()).unwrap();
                if let Some(name) = key.strip_prefix("corpus:") {
                    file_at.insert((p, r.offset), name.to_owned());
                }
            }
        }
    }
    // Every DLQ record names its reason and source; each corpus file is there with the code
    // the foundation's corpus expects of it.
    let mut in_dlq = HashSet::new();
    for p in 0..log.partition_count(DLQ_TOPIC).await.unwrap() {
        let end = log.watermarks(DLQ_TOPIC, p).await.unwrap().end;
        let mut reader = log.reader(DLQ_TOPIC, p, 0).await.unwrap();
        while reader.position() < end {
            for r in reader
                .next_batch(1_000, Duration::from_secs(5))
                .await
                .unwrap()
            {
                let h = |n: &str| String::from_utf8(r.record.header(n).unwrap().to_vec()).unwrap();
                let at = (
                    h("provenant.dlq.source.partition").parse::<u32>().unwrap(),
                    h("provenant.dlq.source.offset").parse::<u64>().unwrap(),
                );
                let name = file_at
                    .get(&at)
                    .unwrap_or_else(|| panic!("DLQ record for {at:?} is no corpus file"));
                assert_eq!(
                    h("provenant.dlq.reason"),
                    expected[name.as_str()]["code"].as_str().unwrap(),
                    "{name}"
                );
                assert!(!h("provenant.dlq.message").is_empty());
                in_dlq.insert(name.clone());
            }
        }
    }
    let all: HashSet<String> = bad.iter().cloned().collect();
    assert_eq!(
        in_dlq, all,
        "every malformed file reaches the DLQ once it is refused"
    );

    // The good events are in the ledger, once each.
    let mut ledger_ids = HashSet::new();
    for p in 0..log.partition_count(LEDGER_TOPIC).await.unwrap() {
        let end = log.watermarks(LEDGER_TOPIC, p).await.unwrap().end;
        let mut reader = log.reader(LEDGER_TOPIC, p, 0).await.unwrap();
        let mut v = Validator::new(ReaderState::START);
        while reader.position() < end {
            for r in reader
                .next_batch(1_000, Duration::from_secs(5))
                .await
                .unwrap()
            {
                if let (Verdict::Valid, Some(LedgerEntry::Record(rec))) =
                    v.observe_bytes(r.offset, &r.record.value)
                    && let RecordBody::Event(er) = rec.body
                {
                    assert!(ledger_ids.insert(er.event.id));
                }
            }
        }
    }
    assert_eq!(ledger_ids, good);
}
