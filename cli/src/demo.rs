//! `provenant demo`: the whole pipeline in-process on the embedded log, fed a realistic
//! story, then the proof: the lineage of a running instance back to its commit, what was
//! redacted, the coverage figure, the DLQ and the archive's verify result.
//!
//! The story: a commit built by CI (an e-mail and a leaked token in the build's
//! annotations), the artifact published, deployed to staging, approved, promoted to
//! production, instances reporting, the build event arriving late (after the artifact and
//! deploys that refer to it), a malformed event refused at the door (HTTP 400) and one
//! written straight to `prov.raw` by a careless producer (→ DLQ), and a data job reading and
//! writing datasets.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use provenant_index::{Direction, Index};
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_log::{DLQ_TOPIC, Log, LogReader, RAW_TOPIC, Record};
use provenant_producer::{Emitter, EmitterConfig, HttpTransport};
use provenant_schemas::{EntityKey, Event, Limits};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where to keep the demo's data (log, archive, index, keys); default: a temporary
    /// directory removed at exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run the story through the Kafka roles instead of the embedded log: a Kafka cluster
    /// (HOST:PORT,…) with prov.raw, prov.ledger and prov.dlq, e.g. `provenant dev-kafka`.
    /// The archive, index and keys still live in the data directory.
    #[arg(long, env = "PROVENANT_BROKERS")]
    brokers: Option<String>,
}

const COMMIT: &str = "4711a73b71d459a8aebe20e7d71ba22af478ed67";
const DIGEST: &str = "sha256:8b8c803b51a1e8b5e0b0d2f6c3a4e5f60718293a4b5c6d7e8f90a1b2c3d4ea9b";
const SOURCE_CI: &str = "https://github.com/acme/shop/actions";
const SOURCE_CD: &str = "https://argocd.acme.example";
const SOURCE_K8S: &str = "https://k8s.acme.example/clusters/prod-eu";

fn ev(v: serde_json::Value) -> Result<Event> {
    Event::from_json(v.to_string().as_bytes(), &Limits::DEFAULT)
        .map_err(|e| anyhow::anyhow!("demo event: {e}"))
}

fn story() -> Result<(Vec<Event>, Event)> {
    use serde_json::json;
    let ce = |id: &str, source: &str, kind: &str, data: serde_json::Value| {
        json!({"specversion": "1.0", "id": id, "source": source,
               "type": format!("io.provenant.{kind}.v1"), "time": "2026-11-23T10:00:00Z", "data": data})
    };
    let build = ev(ce(
        "build-981",
        SOURCE_CI,
        "build",
        json!({
            "commit_sha": COMMIT, "branch": "main", "build_id": "github:acme/shop/981/1",
            "build_timestamp": "2026-11-23T09:58:00Z", "actor": "dana@acme.example",
            "pipeline_url": "https://github.com/acme/shop/actions/runs/981",
            "repo_url": "https://github.com/acme/shop", "artifact_digest": DIGEST,
            "annotations": {
                "triggered_by": "dana@acme.example",
                "log_tail": "pushing image... using GITHUB_TOKEN=ghp_R8x2Lq9ZkT4mVb7Nc1Wd5Yf3Hs6Jp0Ae2Gu8 done"
            }
        }),
    ))?;
    let mut events = vec![
        ev(ce(
            "artifact-981",
            SOURCE_CI,
            "artifact",
            json!({
                "artifact_digest": DIGEST, "build_id": "github:acme/shop/981/1", "commit_sha": COMMIT,
                "name": "ghcr.io/acme/shop:1.42.0"
            }),
        ))?,
        ev(ce(
            "deploy-stg-77",
            SOURCE_CD,
            "deploy",
            json!({
                "deploy_id": "argocd:staging/shop/77", "artifact_digest": DIGEST, "environment": "staging",
                "service": "shop", "deploy_timestamp": "2026-11-23T10:05:00Z", "actor": "argocd"
            }),
        ))?,
        ev(ce(
            "approval-12",
            "https://change.acme.example",
            "approval",
            json!({
                "approval_id": "chg-12", "artifact_digest": DIGEST, "environment": "production",
                "decision": "approved", "approver": "release-manager", "reason": "staging soak passed",
                "policy": "two-person-rule"
            }),
        ))?,
        ev(ce(
            "deploy-prod-78",
            SOURCE_CD,
            "deploy",
            json!({
                "deploy_id": "argocd:production/shop/78", "artifact_digest": DIGEST,
                "environment": "production", "service": "shop", "deploy_timestamp": "2026-11-23T11:00:00Z",
                "actor": "argocd", "previous_deploy_id": "argocd:production/shop/61"
            }),
        ))?,
    ];
    for pod in ["shop-7d9f8c6b5-x2k4q", "shop-7d9f8c6b5-m8n3p"] {
        events.push(ev(ce(
            &format!("runtime-{pod}"),
            SOURCE_K8S,
            "runtime",
            json!({
                "instance_id": pod, "service": "shop", "environment": "production",
                "deploy_id": "argocd:production/shop/78", "artifact_digest": DIGEST,
                "message": "started; readiness probe passed"
            }),
        ))?);
    }
    events.push(ev(ce(
        "run-2026-11-23",
        "https://airflow.acme.example",
        "data",
        json!({
            "job": {"namespace": "airflow://acme-prod", "name": "shop_orders.daily_revenue"},
            "run_id": "01973a9c-2f40-7b1e-9c55-3d2e8f6a1b70", "event_type": "COMPLETE",
            "inputs": [{"namespace": "postgres://orders-db:5432", "name": "shop.orders"}],
            "outputs": [{"namespace": "s3://acme-analytics", "name": "revenue/daily"}]
        }),
    ))?);
    // The build event arrives last: the artifact and deploys already refer to it.
    Ok((events, build))
}

pub(crate) fn run(args: &DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let temp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let ok = match &args.brokers {
        Some(brokers) => {
            let log = provenant_kafka::KafkaLog::new(provenant_kafka::KafkaConfig::new(brokers))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let what = format!("over Kafka at {brokers}");
            runtime.block_on(demo(&data_dir, Arc::new(log), Some(brokers.clone()), &what))?
        }
        None => {
            let log = EmbeddedLog::open(data_dir.join("log"), EmbeddedConfig::default())
                .context("opening the embedded log")?;
            runtime.block_on(demo(
                &data_dir,
                Arc::new(log),
                None,
                "over the embedded log",
            ))?
        }
    };
    println!(
        "\n(demo finished in {:.1} s; data in {})",
        started.elapsed().as_secs_f64(),
        if args.data_dir.is_some() {
            data_dir.display().to_string()
        } else {
            "a temporary directory, now removed".into()
        }
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn demo<L: Log>(
    data_dir: &std::path::Path,
    log: Arc<L>,
    brokers: Option<String>,
    log_desc: &str,
) -> Result<bool> {
    let up_args = crate::up::UpArgs {
        config: None,
        data_dir: Some(data_dir.to_owned()),
        http: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        brokers,
        kafka_config: None,
        token: None,
        insecure: false,
        policy: None,
        partitions: None,
        log: crate::up::LogSection::default(),
    };
    println!("Provenant demo — the whole pipeline in this process, {log_desc}\n");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let pipeline = {
        let log = log.clone();
        tokio::spawn(async move {
            crate::up::serve(&up_args, log, "demo", None, Some((ready_tx, stop_rx))).await
        })
    };
    let addr = ready_rx.await.context("the pipeline did not start")?;
    let base = format!("http://{addr}");

    // 1. The story, through the producer library over HTTP.
    let (events, late_build) = story()?;
    let transport = HttpTransport::new(&base, None, Duration::from_secs(10))?;
    let emitter = Emitter::start(EmitterConfig::default(), transport)?;
    for e in &events {
        emitter.emit(e.clone())?;
    }
    emitter.flush().await?;
    println!(
        "1. emitted {} events over HTTP: artifact, staging deploy, approval, production deploy, 2 running instances, a data job run",
        events.len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    emitter.emit(late_build.clone())?;
    emitter.flush().await?;
    println!(
        "   then the build event, late: the artifact and deploys referred to it before it arrived"
    );

    // 2. Bad input: refused at the door, or (written straight to prov.raw) sent to the DLQ.
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"bad-1","source":"ci","type":"io.provenant.deploy.v1","data":{"deploy_id":"d","environment":"prod"}}"#)
        .send()
        .await?;
    let status = refused.status();
    let body = refused.text().await.unwrap_or_default();
    println!(
        "2. a malformed deploy over HTTP: {status}: {}",
        first_error(&body)
    );
    log.append(
        RAW_TOPIC,
        0,
        vec![Record::new("careless-producer", r#"{"specversion":"1.0","id":"x-1","source":"cron","type":"io.provenant.runtime.v1","data":{"instance_id":"batch-1","service":"etl","environment":"production","message":"contact ops@acme.example"},"extra":}"#)
            .with_header("content-type", "application/cloudevents+json")],
    )
    .await?;
    println!("   a careless producer wrote a broken record straight to prov.raw");

    // 3. Wait until the index holds every event and every link is resolved.
    let index = provenant_index::open(&data_dir.join("index.db").display().to_string())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let want = events.len() as u64 + 1;
    // Generous: on Kafka the sinks first join their consumer groups.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = index.stats().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        // Two links stay pending: the production deploy replaces argocd:production/shop/61
        // and the data run reads postgres://orders-db:5432/shop.orders, and no event of the
        // story introduces either (the missing-link rate counts them).
        if (s.events >= want && s.pending_links <= 2 && s.rejected >= 1)
            || Instant::now() > deadline
        {
            println!(
                "3. processed: {} events in the ledger and the index, {} links resolved, {} pending (targets no event introduced: the deploy it replaced, the job's input table), {} rejected",
                s.events, s.resolved_links, s.pending_links, s.rejected
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 4. Lineage of a running instance back to its commit.
    let lineage = index
        .lineage(
            &EntityKey::Instance("shop-7d9f8c6b5-x2k4q".into()),
            Direction::Up,
            6,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("\n4. lineage of instance:shop-7d9f8c6b5-x2k4q (upstream):\n");
    println!("{}", provenant_index::format_tree(&lineage));
    let reaches_commit = lineage
        .nodes
        .iter()
        .any(|n| n.key == format!("commit:{COMMIT}"));

    // 5. What was redacted (never the original values).
    let build = index
        .event("build-981", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "5. redacted in build-981 (path, detector, action — the originals were never stored):"
    );
    for e in &build {
        for r in &e.redactions {
            println!("   {}", serde_json::to_string(r).unwrap_or_default());
        }
        if let Some(a) = e.event.pointer("/data/annotations") {
            println!("   stored annotations: {a}");
        }
    }

    // 6. Coverage.
    let coverage = index.coverage().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("\n6. {}", crate::query::coverage_text(&coverage));

    // 7. The DLQ.
    println!("\n7. dead-letter queue:");
    for p in 0..log.partition_count(DLQ_TOPIC).await? {
        let end = log.watermarks(DLQ_TOPIC, p).await?.end;
        let mut r = log.reader(DLQ_TOPIC, p, 0).await?;
        while r.position() < end {
            for s in r.next_batch(100, Duration::from_millis(200)).await? {
                let h = |n: &str| {
                    s.record
                        .header(n)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                println!(
                    "   {}: {} (from {}/{} offset {})",
                    h("provenant.dlq.reason"),
                    h("provenant.dlq.message"),
                    h("provenant.dlq.source.topic"),
                    h("provenant.dlq.source.partition"),
                    h("provenant.dlq.source.offset")
                );
            }
        }
    }

    // 8. Stop (segments closed and signed), then verify the archive offline.
    let _ = stop_tx.send(());
    pipeline.await.context("pipeline task")??;
    drop(log);
    let pubkey = std::fs::read_to_string(
        data_dir
            .join("keys")
            .join(provenant_archive::note::PUBLIC_KEY_FILE),
    )
    .context("reading the archive's public key")?;
    let store = provenant_archive::ArchiveStore::open(
        &data_dir.join("archive").display().to_string(),
        &provenant_archive::S3Options::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = provenant_archive::verify(
        &store,
        &provenant_archive::VerifyOptions {
            pubkey: Some(
                provenant_archive::note::VerifierKey::parse(&pubkey)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
            since: None,
            threads: 0,
            progress: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "\n8. provenant verify {}: {} segments, {} records, signatures checked",
        data_dir.join("archive").display(),
        report.segments,
        report.records
    );
    for f in &report.failures {
        println!(
            "   FAILED: {}",
            serde_json::to_string(f).unwrap_or_default()
        );
    }
    println!("verify: {}", if report.ok { "OK" } else { "FAILED" });
    Ok(report.ok && reaches_commit)
}

fn first_error(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/rejected/0/message")
                .or_else(|| v.pointer("/error"))
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.chars().take(200).collect())
}
