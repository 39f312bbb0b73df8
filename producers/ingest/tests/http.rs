//! HTTP ingest over a real socket, writing to the real embedded log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;

use provenant_ingest::{Ingest, IngestConfig, check_listen, router};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{Log, LogReader, RAW_TOPIC};
use serde_json::{Value, json};

const DIGEST: &str = "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

fn deploy(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "https://ci.example.com/acme/shop",
        "type": "io.provenant.deploy.v1", "time": "2026-11-23T10:00:00Z",
        "data": {"deploy_id": format!("dep-{id}"), "artifact_digest": DIGEST, "environment": "staging",
                 "service": "shop", "deploy_timestamp": "2026-11-23T10:00:00Z"}
    })
}

struct Server {
    base: String,
    log: EmbeddedLog,
    _dir: tempfile::TempDir,
}

async fn start(config: IngestConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    let ingest = Ingest::new(log.clone(), config, &prometheus::Registry::new()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(ingest)).await });
    Server {
        base: format!("http://{addr}"),
        log,
        _dir: dir,
    }
}

async fn raw_count(log: &EmbeddedLog) -> u64 {
    let mut n = 0;
    for p in 0..log.partition_count(RAW_TOPIC).await.unwrap() {
        n += log.watermarks(RAW_TOPIC, p).await.unwrap().end;
    }
    n
}

async fn post(
    base: &str,
    ct: &str,
    body: String,
    token: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .header("content-type", ct)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
    (status, body, headers)
}

#[tokio::test]
async fn accepted_events_are_durable_in_prov_raw_keyed_by_subject() {
    let s = start(IngestConfig::default()).await;
    let (status, body, _) = post(
        &s.base,
        "application/cloudevents+json",
        deploy("a1").to_string(),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let acc = &body["accepted"][0];
    assert_eq!(acc["id"], "a1");
    let partition = u32::try_from(acc["partition"].as_u64().unwrap()).unwrap();
    let mut reader = s
        .log
        .reader(RAW_TOPIC, partition, acc["offset"].as_u64().unwrap())
        .await
        .unwrap();
    let got = reader
        .next_batch(10, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    let rec = &got[0].record;
    assert_eq!(rec.key.as_deref(), Some(&b"deploy:dep-a1"[..]));
    assert_eq!(rec.header("ce_id").map(|v| v.as_ref()), Some(&b"a1"[..]));
    assert_eq!(
        rec.header("ce_type").map(|v| v.as_ref()),
        Some(&b"io.provenant.deploy.v1"[..])
    );

    let batch = json!([deploy("b1"), deploy("b2"), deploy("b3")]).to_string();
    let (status, body, _) = post(&s.base, "application/cloudevents-batch+json", batch, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"].as_array().unwrap().len(), 3);
    assert_eq!(raw_count(&s.log).await, 4);
}

#[tokio::test]
async fn a_batch_with_bad_events_is_refused_whole_naming_each() {
    let s = start(IngestConfig::default()).await;
    let mut bad = deploy("b2");
    bad["data"]["artifact_digest"] = json!("sha256:nothex");
    let mut worse = deploy("b3");
    worse["data"].as_object_mut().unwrap().remove("environment");
    let batch = json!([deploy("b1"), bad, worse]).to_string();
    let (status, body, _) = post(&s.base, "application/cloudevents-batch+json", batch, None).await;
    assert_eq!(status, 400);
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["position"], 2);
    assert_eq!(rejected[0]["code"], "invalid_value");
    assert!(
        rejected[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("artifact_digest must be sha256:<64 hex>")
    );
    assert_eq!(rejected[1]["position"], 3);
    assert!(
        rejected[1]["message"]
            .as_str()
            .unwrap()
            .ends_with("deploy needs environment")
    );
    assert_eq!(
        raw_count(&s.log).await,
        0,
        "nothing of a refused batch reaches prov.raw"
    );
}

#[tokio::test]
async fn content_type_size_and_token_errors() {
    let s = start(IngestConfig {
        token: Some("s3cret-token".into()),
        max_body_bytes: 64 * 1024,
        ..IngestConfig::default()
    })
    .await;
    let one = deploy("t1").to_string();
    let (status, body, headers) =
        post(&s.base, "application/cloudevents+json", one.clone(), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.get("www-authenticate").is_some());
    assert_eq!(
        post(
            &s.base,
            "application/cloudevents+json",
            one.clone(),
            Some("wrong")
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post(&s.base, "text/plain", one.clone(), Some("s3cret-token"))
            .await
            .0,
        415
    );
    let huge = "x".repeat(100 * 1024);
    let (status, body, _) = post(
        &s.base,
        "application/cloudevents+json",
        huge,
        Some("s3cret-token"),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("65536"));
    let (status, _, _) = post(
        &s.base,
        "application/cloudevents+json",
        "{\"a\":".into(),
        Some("s3cret-token"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(raw_count(&s.log).await, 0);
    let (status, body, _) = post(
        &s.base,
        "application/cloudevents+json; charset=utf-8",
        one,
        Some("s3cret-token"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(raw_count(&s.log).await, 1);
}

#[test]
fn refuses_public_listen_without_token() {
    let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    assert!(check_listen(local, false, false).is_ok());
    assert!(check_listen(public, true, false).is_ok());
    assert!(check_listen(public, false, true).is_ok());
    let err = check_listen(public, false, false).unwrap_err();
    assert!(err.contains("--insecure"), "{err}");
}

#[tokio::test]
async fn openlineage_run_events_are_accepted_like_marquez() {
    let s = start(IngestConfig::default()).await;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/fixtures/openlineage/run_complete.json");
    let body = std::fs::read_to_string(fixture).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/lineage", s.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(raw_count(&s.log).await, 1);
    let bad = reqwest::Client::new()
        .post(format!("{}/api/v1/lineage", s.base))
        .header("content-type", "application/json")
        .body(r#"{"eventType":"COMPLETE"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(raw_count(&s.log).await, 1);
}
