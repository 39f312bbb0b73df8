//! The query API on a real listener (127.0.0.1:0) over a SQLite index holding the story.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;

use provenant_index::http::{QueryConfig, router};
use provenant_index::{Coverage, Deployment, Lineage, SqliteIndex, format_tree, story};
use serde_json::Value;

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(token: Option<&str>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteIndex::open(&dir.path().join("index.db"))
        .await
        .unwrap();
    story::small_story(2)
        .unwrap()
        .apply_all(&index, 8)
        .await
        .unwrap();
    let app = router(
        Arc::new(index),
        QueryConfig {
            token: token.map(str::to_owned),
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        addr,
        _dir: dir,
        task,
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(s: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("http://{}{path}", s.addr));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_of_a_running_instance_back_to_its_commit() {
    let s = serve(None).await;
    let path = format!(
        "/v1/lineage/{}?direction=up&depth=4",
        segment(story::names::INSTANCE_PROD)
    );
    let (status, body) = get(&s, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let lineage: Lineage = serde_json::from_value(body).unwrap();
    let keys: Vec<&str> = lineage.nodes.iter().map(|n| n.key.as_str()).collect();
    let commit = format!("commit:{}", story::sha(2));
    assert!(keys.contains(&commit.as_str()), "{keys:?}");
    let started = lineage
        .edges
        .iter()
        .find(|e| e.relation == "started_by")
        .unwrap();
    assert_eq!(started.events[0].id, "e-i1");
    let tree = format_tree(&lineage);
    assert!(tree.starts_with("instance:shop-prod-1\n"), "{tree}");
    assert!(tree.contains("--started_by--> deploy:d5"), "{tree}");
    assert!(
        tree.contains(&format!("--built_from--> {commit}")),
        "{tree}"
    );

    // Default direction (up) and depth (3); down from the commit reaches the environments.
    let (status, body) = get(
        &s,
        &format!("/v1/lineage/{}", segment(story::names::INSTANCE_PROD)),
        None,
    )
    .await;
    assert_eq!((status, body["depth"].as_u64()), (200, Some(3)));
    let (status, body) = get(
        &s,
        &format!("/v1/lineage/{}?direction=down&depth=4", segment(&commit)),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let down: Lineage = serde_json::from_value(body).unwrap();
    assert!(down.nodes.iter().any(|n| n.key == "env:production"));
    let tree = format_tree(&down);
    assert!(tree.contains("<--built_from-- build:b2"), "{tree}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_key_with_slashes_is_one_encoded_segment() {
    let s = serve(None).await;
    let key = "dataset:warehouse/clean/orders";
    let (status, body) = get(&s, &format!("/v1/lineage/{}?depth=2", segment(key)), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["root"], key);
    let nodes = body["nodes"].as_array().unwrap();
    let input = nodes
        .iter()
        .find(|n| n["key"] == "dataset:warehouse/raw/orders")
        .unwrap();
    assert_eq!(input["namespace"], "warehouse");
    assert_eq!(input["name"], "raw/orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_400_saying_what_is_wrong() {
    let s = serve(None).await;
    let inst = segment(story::names::INSTANCE_PROD);
    for (path, needle) in [
        ("/v1/lineage/nope".to_owned(), "bad entity key"),
        (
            format!("/v1/lineage/{}", segment("artifact:abc")),
            "bad entity key",
        ),
        (
            format!("/v1/lineage/{inst}?direction=sideways"),
            "direction must be up",
        ),
        (
            format!("/v1/lineage/{inst}?depth=21"),
            "depth must be a whole number from 0 to 20",
        ),
        (format!("/v1/lineage/{inst}?depth=-1"), "depth must be"),
        (format!("/v1/lineage/{inst}?depth=three"), "depth must be"),
        (
            format!("/v1/lineage/{inst}?dpeth=2"),
            "unknown query parameter \"dpeth\"",
        ),
        (format!("/v1/lineage/{inst}?depth=2&depth=3"), "given twice"),
        ("/v1/rollback?service=shop".to_owned(), "rollback needs"),
        (
            "/v1/deployments?environment=prod".to_owned(),
            "unknown query parameter",
        ),
        ("/v1/coverage?x=1".to_owned(), "this route takes none"),
        ("/v1/ledger/zero/1".to_owned(), "ledger position"),
    ] {
        let (status, body) = get(&s, &path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    let (status, body) = get(
        &s,
        &format!("/v1/lineage/{}", segment("instance:nobody")),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("instance:nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_deployments_rollback_coverage_and_stats() {
    let s = serve(None).await;
    let (status, body) = get(&s, "/v1/events/e-d5", None).await;
    assert_eq!(status, 200, "{body}");
    let e = &body["events"][0];
    assert_eq!(e["subject"], "deploy:d5");
    assert_eq!(e["event"]["data"]["deploy_id"], "d5");
    assert_eq!(e["links"][0]["status"], "resolved");
    assert_eq!(e["links"][1]["status"], "unlinked");
    let (p, seq) = (
        e["position"]["partition"].clone(),
        e["position"]["seq"].clone(),
    );
    let (status, at) = get(&s, &format!("/v1/ledger/{p}/{seq}"), None).await;
    assert_eq!((status, &at["id"]), (200, &Value::from("e-d5")));
    let (status, _) = get(
        &s,
        &format!(
            "/v1/events/e-d5?source={}",
            segment("https://cd.example/acme")
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = get(&s, "/v1/events/e-d5?source=other", None).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = get(&s, "/v1/deployments?env=production", None).await;
    assert_eq!(status, 200);
    let list: Vec<Deployment> = serde_json::from_value(body["deployments"].clone()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].deploy_id, "d5");
    let (_, body) = get(&s, "/v1/deployments", None).await;
    assert_eq!(body["deployments"].as_array().unwrap().len(), 4);

    let (status, body) = get(&s, "/v1/rollback?service=shop&env=production", None).await;
    assert_eq!(status, 200, "{body}");
    let d: Deployment = serde_json::from_value(body).unwrap();
    assert_eq!(d.deploy_id, "d2");
    let (status, body) = get(&s, "/v1/rollback?service=shop&env=dev", None).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = get(&s, "/v1/coverage", None).await;
    assert_eq!(status, 200);
    let c: Coverage = serde_json::from_value(body).unwrap();
    assert_eq!((c.deployed_artifacts, c.proven), (3, 1));

    let (status, body) = get(&s, "/v1/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["pending_links"], 2);
    assert!(body["missing_link_rate"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_is_required() {
    let s = serve(Some("read-secret")).await;
    for token in [
        None,
        Some("wrong"),
        Some("read-secre"),
        Some("read-secretX"),
    ] {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/v1/coverage", s.addr))
            .header(
                "authorization",
                token.map(|t| format!("Bearer {t}")).unwrap_or_default(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{token:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(body["error"].as_str().unwrap().contains("bearer token"));
    }
    let (status, _) = get(&s, "/v1/coverage", Some("read-secret")).await;
    assert_eq!(status, 200);
}
