#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Issue 6 Must-show: the PII/secret corpus of `provenant-redact` (113 planted values) goes
//! through the real processor with the default policy, inside valid events (runtime error
//! messages and annotations) and inside records that fail validation (to the DLQ). None of
//! the originals appears in the ledger, the DLQ, the metrics or the logs (captured at TRACE).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{DLQ_TOPIC, LEDGER_TOPIC, Log, LogReader, RAW_TOPIC, Record, append_by_key};
use provenant_processor::{Processor, ProcessorConfig};
use provenant_redact::{Policy, Redactor, Secret};
use provenant_schemas::{Event, EventData, Runtime, binary_mode};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn all_bytes(log: &EmbeddedLog, topic: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in 0..log.partition_count(topic).await.unwrap() {
        let end = log.watermarks(topic, p).await.unwrap().end;
        let mut r = log.reader(topic, p, 0).await.unwrap();
        while r.position() < end {
            for s in r
                .next_batch(1000, Duration::from_millis(200))
                .await
                .unwrap()
            {
                for h in &s.record.headers {
                    out.extend_from_slice(&h.value);
                }
                out.extend_from_slice(&s.record.value);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_planted_value_reaches_the_ledger_the_dlq_metrics_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let corpus: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../redact/corpus/pii.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let items = corpus["items"].as_array().unwrap();
    assert!(items.len() >= 100);
    let values: Vec<String> = items
        .iter()
        .map(|i| i["value"].as_str().unwrap().to_owned())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap());
    let mut records = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let text = item["text"]
            .as_str()
            .unwrap()
            .replace("{v}", item["value"].as_str().unwrap());
        // Values found by their key (high entropy under `*token*`, `*_KEY`, …) go under the
        // key the corpus names; every other value also goes into free text.
        let field = item["field"].as_str().unwrap();
        let by_key = item["detector"] == "secret_key_entropy";
        let key = field
            .rsplit_once('.')
            .filter(|_| by_key)
            .map_or("build_log", |(_, k)| k);
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(key.to_owned(), text.clone());
        let message = if by_key {
            "startup failed".to_owned()
        } else {
            format!("startup failed: {text}")
        };
        let event = Event::new(
            "https://k8s.example/prod",
            format!("pii-{n}"),
            EventData::Runtime(Runtime {
                instance_id: format!("pod-{n}"),
                service: "shop".into(),
                environment: "production".into(),
                deploy_id: Some("argocd:production/shop/78".into()),
                message: Some(message),
                annotations,
                ..Runtime::default()
            }),
        );
        let (headers, value) = binary_mode::encode(&event);
        let mut r = Record::new(event.partition_key(), value);
        for (name, v) in headers {
            r = r.with_header(name, v);
        }
        records.push(r);
        // The same text in a record that fails validation (no instance_id): DLQ-bound.
        let bad = serde_json::json!({"specversion": "1.0", "id": format!("bad-{n}"), "source": "cron",
            "type": "io.provenant.runtime.v1", "data": {"service": "shop", "environment": "prod",
            "message": if by_key { String::new() } else { text.clone() }, "annotations": {key: text}}});
        records.push(
            Record::new(format!("bad-{n}"), bad.to_string())
                .with_header("content-type", "application/cloudevents+json"),
        );
    }
    append_by_key(log.as_ref(), RAW_TOPIC, records)
        .await
        .unwrap();

    let registry = prometheus::Registry::new();
    let redactor = Redactor::new(&Policy::default_policy(), Secret::generate()).unwrap();
    let processor = Processor::new(
        log.clone(),
        ProcessorConfig::default(),
        Arc::new(redactor),
        &registry,
    )
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(processor.run(async {
        let _ = rx.await;
    }));
    let want = items.len() * 2;
    for _ in 0..300 {
        let a = provenant_processor::audit::audit(log.as_ref())
            .await
            .unwrap();
        if a.partitions.iter().map(|p| p.chain_len).sum::<u64>() as usize >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = provenant_processor::audit::audit(log.as_ref())
        .await
        .unwrap();
    assert!(a.exactly_once(), "{a:#?}");
    assert_eq!(a.events as usize, items.len());
    let mut metrics = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut metrics)
        .unwrap();
    let _ = tx.send(());
    task.await.unwrap().unwrap();

    let ledger = all_bytes(&log, LEDGER_TOPIC).await;
    let dlq = all_bytes(&log, DLQ_TOPIC).await;
    assert!(!dlq.is_empty());
    let logs = logs.0.lock().unwrap().clone();
    assert!(!logs.is_empty(), "the capture saw the processor's logs");
    let find = |hay: &[u8], v: &str| hay.windows(v.len()).any(|w| w == v.as_bytes());
    let leaked: Vec<usize> = (0..values.len())
        .filter(|&i| find(&ledger, &values[i]))
        .collect();
    assert!(
        leaked.is_empty(),
        "planted values reached the ledger: items {leaked:?}"
    );
    for v in &values {
        assert!(!find(&dlq, v), "a planted value reached the DLQ");
        assert!(
            !metrics.contains(v.as_str()),
            "a planted value reached the metrics"
        );
        assert!(!find(&logs, v), "a planted value reached the logs");
    }
    assert!(metrics.contains("provenant_processor_redactions_total"));
}
