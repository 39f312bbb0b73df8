//! Ingest Must-show items against real processes: 100,000 events from 4 concurrent library
//! emitters into `prov.raw` on `dev-kafka` (a separate process) and on the embedded log; and
//! an outage: `provenant up` stopped while 10,000 events are emitted over HTTP, then restarted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, LogReader, RAW_TOPIC, StoredRecord};
use provenant_producer::{Emitter, EmitterConfig, HttpTransport, LogTransport, Transport};
use provenant_schemas::{Event, EventData, Runtime};

mod common;
use common::{Broker, Up, free_port};

const KEYS_PER_EMITTER: usize = 8;

fn event(emitter: usize, seq: usize) -> Event {
    Event::new(
        format!("test://emitter/{emitter}"),
        format!("{emitter}-{seq:06}"),
        EventData::Runtime(Runtime {
            instance_id: format!("pod-{emitter}-{}", seq % KEYS_PER_EMITTER),
            service: "shop".into(),
            environment: "staging".into(),
            deploy_id: Some("dep-1".into()),
            ..Runtime::default()
        }),
    )
}

/// Every record of `prov.raw`, partition by partition, each in log order.
async fn raw_records<L: Log>(log: &L) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    for p in 0..log.partition_count(RAW_TOPIC).await.unwrap() {
        let end = log.watermarks(RAW_TOPIC, p).await.unwrap().end;
        let mut reader = log.reader(RAW_TOPIC, p, 0).await.unwrap();
        while reader.position() < end {
            out.extend(
                reader
                    .next_batch(10_000, Duration::from_secs(5))
                    .await
                    .unwrap(),
            );
        }
    }
    out
}

/// Reads all of `prov.raw`: asserts the count, no duplicate event ids, and per key increasing
/// sequence numbers from one emitter.
async fn check_raw<L: Log>(log: &L, expected: usize) {
    let mut per_key: HashMap<Vec<u8>, Vec<(usize, usize)>> = HashMap::new();
    let mut ids = HashSet::new();
    for r in raw_records(log).await {
        let id = String::from_utf8(r.record.header("ce_id").unwrap().to_vec()).unwrap();
        assert!(ids.insert(id.clone()), "duplicate {id}");
        let (emitter, seq) = id.split_once('-').unwrap();
        per_key
            .entry(r.record.key.clone().unwrap().to_vec())
            .or_default()
            .push((emitter.parse().unwrap(), seq.parse().unwrap()));
    }
    assert_eq!(ids.len(), expected, "events in prov.raw");
    for (key, seqs) in per_key {
        assert!(
            seqs.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "order broken for key {}",
            String::from_utf8_lossy(&key)
        );
    }
}

/// 4 emitters × `per_emitter` events, concurrently, each with its own spool directory.
async fn four_emitters<T: Transport + Clone>(
    transport: T,
    spool: &std::path::Path,
    per_emitter: usize,
) {
    let mut tasks = Vec::new();
    for e in 0..4 {
        let emitter = Emitter::start(
            EmitterConfig {
                spool_dir: Some(spool.join(format!("spool-{e}"))),
                ..EmitterConfig::default()
            },
            transport.clone(),
        )
        .unwrap();
        tasks.push(tokio::spawn(async move {
            for seq in 0..per_emitter {
                emitter.emit(event(e, seq)).unwrap();
                if seq % 1_000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            emitter.shutdown().await.unwrap();
            emitter.stats()
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert_eq!(s.emitted, per_emitter as u64);
        assert_eq!(s.delivered, per_emitter as u64, "{s:?}");
        assert_eq!(s.dropped + s.rejected, 0, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_from_four_emitters_on_dev_kafka() {
    // 16 partitions keep each under the mock's per-partition cap (~5 MiB): 100k × ~400 B
    // of JSON, lz4-compressed, is about 1–2 MiB per partition.
    let broker = Broker::start(&["--partitions", "16"]);
    let log = std::sync::Arc::new(broker.log());
    let spool = tempfile::tempdir().unwrap();
    four_emitters(
        std::sync::Arc::new(LogTransport::new(log.clone(), RAW_TOPIC)),
        spool.path(),
        25_000,
    )
    .await;
    check_raw(&log, 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_events_from_four_emitters_on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path().join("log"), EmbeddedConfig::default()).unwrap();
    four_emitters(
        std::sync::Arc::new(LogTransport::new(log.clone(), RAW_TOPIC)),
        dir.path(),
        25_000,
    )
    .await;
    check_raw(&log, 100_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stopped_during_10k_emits_then_restarted_gets_all_once_in_order() {
    let data = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let port = free_port();
    let up = Up::start(data.path(), port, &[]);
    let transport = HttpTransport::new(&up.base, None, Duration::from_secs(5)).unwrap();
    let emitter = Emitter::start(
        EmitterConfig {
            spool_dir: Some(spool.path().to_owned()),
            queue_capacity: 1_000,
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..EmitterConfig::default()
        },
        transport,
    )
    .unwrap();
    for seq in 0..100 {
        emitter.emit(event(0, seq)).unwrap();
    }
    emitter.flush().await.unwrap();
    assert_eq!(emitter.stats().delivered, 100);

    up.stop();
    let mut slowest = Duration::ZERO;
    for seq in 100..10_100 {
        let start = Instant::now();
        emitter.emit(event(0, seq)).unwrap();
        slowest = slowest.max(start.elapsed());
    }
    emitter.flush().await.unwrap();
    let s = emitter.stats();
    // emit() kept returning while the destination was down, and every event is accounted for:
    // delivered before the outage, or spooled (nothing dropped, nothing in memory after flush).
    // A hang detector, not a speed check (emit() cost is measured in benches/): emit() must
    // never wait on the stopped destination; the counters below show where every event went.
    assert!(slowest < Duration::from_secs(4), "slowest emit {slowest:?}");
    assert_eq!(s.emitted, 10_100);
    assert_eq!(s.dropped, 0);
    assert_eq!(s.delivered + s.spooled - s.replayed, 10_100, "{s:?}");
    assert!(s.spooled >= 9_000, "{s:?}");

    let up = Up::start(data.path(), port, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while emitter.stats().delivered < 10_100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    emitter.shutdown().await.unwrap();
    let s = emitter.stats();
    assert_eq!(s.delivered, 10_100, "{s:?}");
    up.stop();

    let log = EmbeddedLog::open(data.path().join("log"), EmbeddedConfig::default()).unwrap();
    check_raw(&log, 10_100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_down_gives_503_with_retry_after_and_nothing_acknowledged() {
    let broker = Broker::start(&["--partitions", "4"]);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("kafka.toml");
    std::fs::write(
        &config,
        "message_timeout_ms = 2000\nrequest_timeout_ms = 2000\n",
    )
    .unwrap();
    let up = Up::start(
        data.path(),
        free_port(),
        &[
            "--brokers",
            &broker.bootstrap,
            "--kafka-config",
            config.to_str().unwrap(),
        ],
    );
    let body = serde_json::json!({
        "specversion": "1.0", "id": "k-1", "source": "test://503", "type": "io.provenant.runtime.v1",
        "data": {"instance_id": "i-1", "service": "shop", "environment": "prod", "deploy_id": "d-1"}
    })
    .to_string();
    let post = || async {
        reqwest::Client::new()
            .post(format!("{}/v1/events", up.base))
            .header("content-type", "application/cloudevents+json")
            .body(body.clone())
            .send()
            .await
            .unwrap()
    };
    assert_eq!(post().await.status().as_u16(), 202);
    drop(broker); // kill -9 of the broker process
    let resp = post().await;
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    up.stop();
}

/// `provenant serve --config` with a [kafka] table: the stateless front door takes an event
/// over HTTP into prov.raw on dev-kafka and answers queries and /metrics; a flag wins over the
/// file (--http), and SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_kafka_takes_events_into_prov_raw_and_answers_queries() {
    let broker = Broker::start(&["--partitions", "2"]);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "http = \"127.0.0.1:1\"\nindex = \"{}\"\n\n[kafka]\nbootstrap_servers = \"{}\"\nclient_id = \"serve-test\"\n",
            data.path().join("index.db").display(),
            broker.bootstrap
        ),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .env_remove("PROVENANT_INDEX")
        .env_remove("PROVENANT_BROKERS")
        .env_remove("PROVENANT_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        assert!(serve.try_wait().unwrap().is_none(), "serve exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "specversion": "1.0", "id": "serve-1", "source": "test://serve", "type": "io.provenant.runtime.v1",
        "data": {"instance_id": "i-1", "service": "shop", "environment": "prod", "deploy_id": "d-1"}
    });
    let resp = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text().await);
    let coverage = client
        .get(format!("{base}/v1/coverage"))
        .send()
        .await
        .unwrap();
    assert_eq!(coverage.status().as_u16(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("provenant_ingest_events_total{kind=\"runtime\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provenant_index_sli_refresh_timestamp_seconds"),
        "{metrics}"
    );

    // The event is in prov.raw, once.
    let found = raw_records(&broker.log())
        .await
        .iter()
        .filter(|r| r.record.header("ce_id").map(|v| v.as_ref()) == Some(b"serve-1".as_slice()))
        .count();
    assert_eq!(found, 1);

    let pid = serve.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = serve.wait_with_output().unwrap();
    assert!(out.status.success(), "serve exited with {}", out.status);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("roles running: ingest, query API"),
        "{printed}"
    );
}

/// Without an index anywhere, serve says where to give one (exit 2).
#[test]
fn serve_without_an_index_says_how_to_give_one() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .env_remove("PROVENANT_INDEX")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--index URL, PROVENANT_INDEX, or `index"),
        "{err}"
    );
}
