#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The provenance SLIs on `/metrics` (`provenant_index_coverage_ratio`,
//! `provenant_index_missing_links`, …) of every role that holds an index: the index sink,
//! `serve` and `up`. On the index's conformance story (`provenant_index::story`: proven,
//! unproven and pending-link artifacts) the gauges must say what `provenant query coverage
//! --json` and the index's own stats say, and `promtool check metrics` must accept the page.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::crash::sigterm;
use common::{Up, free_port};
use provenant_index::Index;
use provenant_index::story::{self, Ledger};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{LEDGER_TOPIC, Log, Record};
use provenant_schemas::ledger::{Fence, LedgerEntry};

const PARTITIONS: u32 = 4;

/// Every series of a `/metrics` page (name and labels, as written) with its value.
fn series(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, v)| (name.to_owned(), v.trim().parse().unwrap()))
        .collect()
}

const COVERAGE_READ: &str = "provenant_index_sli_refresh_timestamp_seconds{sli=\"coverage\"}";
const COUNTS_READ: &str = "provenant_index_sli_refresh_timestamp_seconds{sli=\"counts\"}";

/// Polls `base/metrics` until `ready` holds for its gauges (a hang detector of 60 s).
async fn scrape_until(
    base: &str,
    child: Option<&mut Child>,
    ready: impl Fn(&HashMap<String, f64>) -> bool,
) -> (String, HashMap<String, f64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut child = child;
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/metrics")).await {
            let body = r.text().await.unwrap();
            let g = series(&body);
            if ready(&g) {
                return (body, g);
            }
        }
        if let Some(c) = child.as_deref_mut() {
            assert!(c.try_wait().unwrap().is_none(), "the role stopped");
        }
        assert!(Instant::now() < deadline, "no fresh SLIs on {base}/metrics");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn story() -> (Ledger, u64) {
    let ledger = story::small_story(PARTITIONS).unwrap();
    let events = (0..PARTITIONS)
        .flat_map(|p| ledger.records(p))
        .filter(|r| matches!(r.body, provenant_schemas::RecordBody::Event(_)))
        .count() as u64;
    (ledger, events)
}

/// The gauges equal what `provenant query coverage --json` and the index's stats say, and
/// promtool accepts the page.
async fn check_against_the_index(url: &str, body: &str, g: &HashMap<String, f64>) {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["query", "coverage", "--json", "--index", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let deployed = c["deployed_artifacts"].as_u64().unwrap();
    assert!(
        deployed > 0 && c["proven"].as_u64().unwrap() < deployed,
        "{c}"
    );
    assert_eq!(
        g["provenant_index_coverage_ratio"],
        c["ratio"].as_f64().unwrap()
    );
    assert_eq!(g["provenant_index_deployed_artifacts"], deployed as f64);
    assert_eq!(
        g["provenant_index_proven_artifacts"],
        c["proven"].as_f64().unwrap()
    );

    let index = provenant_index::open(url).await.unwrap();
    let s = index.stats().await.unwrap();
    assert!(s.pending_links > 0, "{s:?}");
    assert_eq!(
        g["provenant_index_missing_links"],
        index.missing_links().await.unwrap() as f64
    );
    assert_eq!(g["provenant_index_resolved_links"], s.resolved_links as f64);
    assert_eq!(
        g["provenant_index_missing_link_ratio"],
        s.missing_link_rate().unwrap()
    );
    assert_eq!(g["provenant_index_events"], s.events as f64);
    assert!(g[COVERAGE_READ] >= g[COUNTS_READ], "{body}");
    for sli in ["coverage", "counts"] {
        let failures = format!("provenant_index_sli_refresh_failures_total{{sli=\"{sli}\"}}");
        assert_eq!(g[&failures], 0.0, "{body}");
    }
    promtool_accepts(body);
}

fn promtool_accepts(body: &str) {
    use std::io::Write;
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; .ci/run installs it)");
    p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool check metrics: {out:?}");
}

/// Runs `provenant ARGS` (serving /metrics on `port`) until its gauges have read all
/// `events` of the index at `url`, checks them against the index, and stops it.
async fn role_reports_the_index(args: &[&str], port: u16, url: &str, events: u64) {
    let mut role = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The gauges read the stats before the coverage: once they count every event, the
    // coverage beside them was read from the whole index.
    let base = format!("http://127.0.0.1:{port}");
    let (body, g) = scrape_until(&base, Some(&mut role), |g| {
        g.get("provenant_index_events") == Some(&(events as f64))
    })
    .await;
    check_against_the_index(url, &body, &g).await;
    sigterm(role);
}

/// Writes the story's ledger into the embedded log of `data_dir`: per partition the fence
/// of its writer, then its records, as the processor would have.
async fn story_ledger(data_dir: &Path, ledger: &Ledger) {
    let log = EmbeddedLog::open(
        data_dir.join("log"),
        EmbeddedConfig {
            partitions: PARTITIONS,
            ..EmbeddedConfig::default()
        },
    )
    .unwrap();
    for p in 0..PARTITIONS {
        let fence = LedgerEntry::Fence(Fence {
            writer_epoch: story::EPOCH,
            writer_id: [7; 16],
        });
        let mut records = vec![Record::new("fence", fence.to_avro())];
        for r in ledger.records(p) {
            records.push(Record::new("r", LedgerEntry::Record(r.clone()).to_avro()));
        }
        log.append(LEDGER_TOPIC, p, records).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_sink_exports_the_coverage_and_missing_links_the_queries_report() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, events) = story();
    story_ledger(dir.path(), &ledger).await;
    let url = dir.path().join("index.db").display().to_string();
    let port = free_port();
    let config = dir.path().join("sink.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nhttp = \"127.0.0.1:{port}\"\n[index]\nurl = \"{url}\"\nsli_refresh = \"1s\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    role_reports_the_index(&["sink", "index", "--config", &config], port, &url, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_the_coverage_and_missing_links_the_queries_report() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("index.db").display().to_string();
    let (ledger, events) = story();
    ledger
        .apply_all(&provenant_index::open(&url).await.unwrap(), 5)
        .await
        .unwrap();
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    role_reports_the_index(
        &["serve", "--index", &url, "--http", &http],
        port,
        &url,
        events,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_exports_the_provenance_slis_of_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path(), free_port(), &[]);
    let (body, g) = scrape_until(&up.base, None, |g| {
        g.get(COVERAGE_READ).is_some_and(|t| *t > 0.0)
            && g.get(COUNTS_READ).is_some_and(|t| *t > 0.0)
    })
    .await;
    // Nothing deployed, no links yet: the ratios are NaN, the counts 0.
    assert!(g["provenant_index_coverage_ratio"].is_nan(), "{body}");
    assert!(g["provenant_index_missing_link_ratio"].is_nan(), "{body}");
    assert_eq!(g["provenant_index_events"], 0.0);
    assert_eq!(g["provenant_index_missing_links"], 0.0);
    promtool_accepts(&body);
    up.stop();
}
