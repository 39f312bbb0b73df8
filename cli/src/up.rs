//! `provenant up`: the pipeline in one process.
//!
//! Roles it runs today: **ingest** (HTTP `POST /v1/events`, `POST /api/v1/lineage` into
//! `prov.raw`) and the **processor** (`prov.raw` → `prov.ledger` + `prov.dlq`), with
//! `/healthz` and `/metrics`, over the embedded log in `DATA_DIR/log` or over Kafka with
//! `--brokers`. `up` says plainly which roles run.
//!
//! Invariants: an event acknowledged with 2xx is durable in `prov.raw` (see
//! `provenant_ingest`), and the processor accounts for it exactly once in the ledger, also
//! across `kill -9` (see `provenant_processor`). On SIGTERM or Ctrl-C the HTTP server stops
//! accepting and finishes the requests in flight, then the processor finishes its batch,
//! then the log is closed (every queued append written) before exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;
use provenant_ingest::{Ingest, IngestConfig, check_listen, router};
use provenant_log::Log;
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_processor::{Processor, ProcessorConfig};
use std::sync::Arc;

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Settings file (TOML) with any of: data_dir, http, brokers, token, insecure, policy,
    /// partitions, and a [kafka] table (provenant_kafka::KafkaConfig). Flags win over it.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Where the embedded log, the archive, the index and the keys live
    /// [default: provenant-data].
    #[arg(long, env = "PROVENANT_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Address of the HTTP server (ingest, queries, /metrics, /healthz, /version). Port 0
    /// picks a free port [default: 127.0.0.1:8080].
    #[arg(long, env = "PROVENANT_HTTP")]
    pub(crate) http: Option<SocketAddr>,

    /// Run over a Kafka cluster (HOST:PORT,…) instead of the embedded log.
    #[arg(long, env = "PROVENANT_BROKERS")]
    pub(crate) brokers: Option<String>,

    /// Kafka client settings as TOML (bootstrap_servers, client_id, compression, linger_ms,
    /// message_timeout_ms, … and `[settings]` passed to librdkafka: TLS, SASL). --brokers
    /// overrides bootstrap_servers.
    #[arg(long, value_name = "FILE")]
    pub(crate) kafka_config: Option<PathBuf>,

    /// Require `Authorization: Bearer <token>` on ingest.
    #[arg(long, env = "PROVENANT_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,

    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    pub(crate) insecure: bool,

    /// Redaction policy file (TOML); default: the built-in policy. Without a key named by
    /// the policy, the HMAC key is DATA_DIR/keys/hmac.key (created on first start).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,

    /// Partitions of prov.raw, prov.ledger and prov.dlq when the embedded log is created
    /// [default: 4].
    #[arg(long)]
    pub(crate) partitions: Option<u32>,

    /// The `[log]` table of --config (embedded log only).
    #[arg(skip)]
    pub(crate) log: LogSection,
}

/// The `[log]` table of `up --config`: the embedded log's segments and retention.
///
/// ```toml
/// [log]
/// segment_bytes = 67108864   # a segment is sealed at this size (64 MiB)
/// retention = "168h"         # a sealed ledger segment is deleted this long after its newest
///                            # record, once the archive and the index both hold all of it
/// ```
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSection {
    pub(crate) segment_bytes: Option<u64>,
    pub(crate) retention: Option<String>,
}

impl LogSection {
    fn config(&self, partitions: Option<u32>) -> Result<EmbeddedConfig> {
        let d = EmbeddedConfig::default();
        Ok(EmbeddedConfig {
            partitions: partitions.unwrap_or(d.partitions),
            segment_bytes: self.segment_bytes.unwrap_or(d.segment_bytes).max(1024),
            retention: match &self.retention {
                Some(r) => provenant_archive::config::parse_duration(r)
                    .map_err(|e| anyhow::anyhow!("[log] retention: {e}"))?,
                None => d.retention,
            },
            ..d
        })
    }
}

/// How often `up` lets retention delete what has been archived, indexed and processed.
const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Marks, per ledger partition, what both the archive and the index hold, so that the
/// embedded log's retention may delete sealed segments below it (never what either sink still
/// has to read); a processor that then takes a partition over resumes from the archive. Marks
/// prov.raw below what the processor (group `group`) has accounted for in the ledger.
async fn retain_ledger(
    log: &EmbeddedLog,
    group: &str,
    archive: &provenant_archive::ArchiveStore,
    index: &provenant_index::AnyIndex,
) -> Result<()> {
    use provenant_index::Index as _;
    let archived = provenant_archive::read::archived_states(archive)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let partitions = log
        .partition_count(provenant_log::LEDGER_TOPIC)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for p in 0..partitions {
        let in_archive = archived.get(&p).map_or(0, |s| s.ledger_offset);
        let in_index = index
            .reader_state(p)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map_or(0, |s| s.ledger_offset);
        let below = in_archive.min(in_index);
        if below > 0 {
            let marks = log
                .mark_archived(provenant_log::LEDGER_TOPIC, p, below)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::debug!(
                partition = p,
                below,
                start = marks.start,
                "ledger retention"
            );
        }
        // prov.raw below the processor's committed position is in the ledger (the position
        // moves only after the ledger acknowledged the records that account for it).
        let processed = log
            .committed(group, provenant_log::RAW_TOPIC, p)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(below) = processed.filter(|b| *b > 0) {
            let marks = log
                .mark_archived(provenant_log::RAW_TOPIC, p, below)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::debug!(partition = p, below, start = marks.start, "raw retention");
        }
    }
    Ok(())
}

/// The `up --config` file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) http: Option<SocketAddr>,
    pub(crate) brokers: Option<String>,
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) insecure: bool,
    pub(crate) policy: Option<PathBuf>,
    pub(crate) partitions: Option<u32>,
    pub(crate) kafka: Option<provenant_kafka::KafkaConfig>,
    #[serde(default)]
    pub(crate) log: LogSection,
}

impl UpArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("provenant-data"))
    }

    fn http(&self) -> SocketAddr {
        self.http
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// These flags over the `--config` file (if any): what `up` runs with.
    fn resolve(&self) -> Result<(UpArgs, Option<provenant_kafka::KafkaConfig>)> {
        let file: UpFile = match &self.config {
            Some(p) => crate::process::load_toml(p)?,
            None => UpFile::default(),
        };
        let kafka = match &self.kafka_config {
            Some(p) => Some(crate::process::load_toml(p)?),
            None => file.kafka,
        };
        Ok((
            UpArgs {
                config: None,
                data_dir: self.data_dir.clone().or(file.data_dir),
                http: self.http.or(file.http),
                brokers: self
                    .brokers
                    .clone()
                    .or(file.brokers)
                    .or_else(|| kafka.as_ref().map(|k| k.bootstrap_servers.clone())),
                kafka_config: None,
                token: self.token.clone().or(file.token),
                insecure: self.insecure || file.insecure,
                policy: self.policy.clone().or(file.policy),
                partitions: self.partitions.or(file.partitions),
                log: file.log,
            },
            kafka,
        ))
    }
}

pub(crate) fn run(flags: &UpArgs) -> Result<ExitCode> {
    let (args, kafka) = flags.resolve()?;
    let args = &args;
    check_listen(args.http(), args.token.is_some(), args.insecure).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if let Some(brokers) = &args.brokers {
        let mut config =
            kafka.unwrap_or_else(|| provenant_kafka::KafkaConfig::new(brokers.clone()));
        config.bootstrap_servers.clone_from(brokers);
        let log = provenant_kafka::KafkaLog::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
        runtime.block_on(serve(
            args,
            Arc::new(log),
            &format!("kafka {brokers}"),
            None,
            None,
        ))?;
    } else {
        let dir = args.data_dir().join("log");
        let log = Arc::new(
            EmbeddedLog::open(&dir, args.log.config(args.partitions)?)
                .with_context(|| format!("opening the embedded log in {}", dir.display()))?,
        );
        let what = format!("embedded, {}", dir.display());
        runtime.block_on(serve(args, log.clone(), &what, Some(log), None))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs every role until SIGTERM/Ctrl-C, or until `embedded` stops it: `provenant demo`
/// passes a channel that receives the bound address (nothing is printed then) and a stop.
pub(crate) async fn serve<L: Log>(
    args: &UpArgs,
    log: Arc<L>,
    log_desc: &str,
    retention: Option<Arc<EmbeddedLog>>,
    embedded: Option<(
        tokio::sync::oneshot::Sender<std::net::SocketAddr>,
        tokio::sync::oneshot::Receiver<()>,
    )>,
) -> Result<()> {
    let signals = crate::shutdown::StopSignals::install()?;
    let (ready, stop_request) = match embedded {
        Some((ready, stop)) => (Some(ready), Some(stop)),
        None => (None, None),
    };
    let registry = prometheus::Registry::new();
    let policy = crate::process::load_policy(args.policy.as_deref())?;
    let key_dir = args.brokers.is_none().then(|| args.data_dir().join("keys"));
    let redactor = crate::process::build_redactor(&policy, key_dir.as_deref())?;
    let log_for_sinks = log.clone();
    let archive_url = args.data_dir().join("archive").display().to_string();
    let history = crate::sinks::ArchiveSource {
        url: archive_url.clone(),
        ..Default::default()
    }
    .history()?;
    let processor = Processor::new(
        log.clone(),
        ProcessorConfig::default(),
        Arc::new(redactor),
        &registry,
    )
    .await
    .context("starting the processor")?
    .with_history(history);
    let ingest = Ingest::new(
        log,
        IngestConfig {
            token: args.token.clone(),
            ..IngestConfig::default()
        },
        &registry,
    )?;
    // The sinks: archive (DATA_DIR/archive, signed by DATA_DIR/keys) and index (SQLite).
    let sink_metrics = provenant_sink::SinkMetrics::new(&registry)?;
    let archive_metrics = crate::metrics::ArchiveMetrics::new(&registry)?;
    let archive_cfg = provenant_archive::ArchiveConfig {
        url: archive_url.clone(),
        key_dir: Some(args.data_dir().join("keys")),
        spool_dir: Some(args.data_dir().join("spool")),
        ..provenant_archive::ArchiveConfig::default()
    };
    let archive = crate::sinks::open_archive(&archive_cfg).await?;
    let index_path = args.data_dir().join("index.db");
    let index = Arc::new(
        provenant_index::open(&index_path.display().to_string())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let _slis = crate::sinks::IndexSlis::start(
        index.clone(),
        &registry,
        crate::sinks::DEFAULT_SLI_REFRESH,
    )?;
    let queries = provenant_index::http::router(
        index.clone(),
        provenant_index::http::QueryConfig {
            token: args.token.clone(),
        },
    );
    let app = http_app(router(ingest).merge(queries), registry);
    let listener = tokio::net::TcpListener::bind(args.http())
        .await
        .with_context(|| format!("listening on {}", args.http()))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    } else {
        println!(
            "provenant up — roles running: ingest, processor, archive sink, index sink, queries"
        );
        println!("  log       {log_desc}");
        println!("  http      http://{addr}");
        println!("  events    POST http://{addr}/v1/events");
        println!("  lineage   POST http://{addr}/api/v1/lineage");
        println!("  metrics   http://{addr}/metrics");
        println!("  health    http://{addr}/healthz");
        println!("  queries   http://{addr}/v1/lineage/{{entity}}?direction=up&depth=6");
        println!("  archive   {}", archive_cfg.url);
        println!("  index     {}", index_path.display());
        println!(
            "  keys      {} (archive.pub: verify --pubkey)",
            args.data_dir().join("keys").display()
        );
    }
    tracing::info!(%addr, "http server listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut proc_stop = stop_rx.clone();
    let processing = tokio::spawn(processor.run(async move {
        let _ = proc_stop.changed().await;
    }));
    let (sinks_stop_tx, sinks_stop) = tokio::sync::watch::channel(false);
    let mut archive_stop = sinks_stop.clone();
    let archiving = tokio::spawn(provenant_sink::run(
        log_for_sinks.clone(),
        crate::sinks::ArchiveRole(archive, archive_metrics),
        provenant_sink::RunnerConfig::new("provenant-archive"),
        sink_metrics.clone(),
        async move {
            let _ = archive_stop.changed().await;
        },
    ));
    let mut index_stop = sinks_stop;
    let indexing = tokio::spawn(provenant_sink::run(
        log_for_sinks,
        crate::sinks::IndexSink(index.clone()),
        provenant_sink::RunnerConfig::new("provenant-index"),
        sink_metrics,
        async move {
            let _ = index_stop.changed().await;
        },
    ));
    // Embedded: let retention delete the ledger that both sinks hold (Kafka: the broker's).
    let retaining = retention.map(|log| {
        let archive = provenant_archive::ArchiveStore::open(&archive_url, &Default::default());
        let index = index.clone();
        let group = ProcessorConfig::default().group;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let archive = match archive {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "ledger retention off: opening the archive failed");
                    return;
                }
            };
            loop {
                if let Err(e) = retain_ledger(&log, &group, &archive, &index).await {
                    tracing::warn!(error = %e, "ledger retention failed; trying again later");
                }
                tokio::select! {
                    () = tokio::time::sleep(RETENTION_INTERVAL) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    });
    let mut http_stop = stop_rx;
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let requested = async move {
                match stop_request {
                    Some(rx) => {
                        let _ = rx.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                s = signals.wait() => {
                    if let Err(e) = s {
                        tracing::error!(error = %e, "signal handler failed; stopping");
                    }
                }
                () = requested => {}
                _ = http_stop.changed() => {}
            }
            tracing::info!("stopping: finishing requests in flight");
        })
        .await
        .context("serving HTTP");
    // HTTP is closed (or failed): stop the processor after its batch in flight.
    let _ = stop_tx.send(true);
    let processed = processing
        .await
        .context("processor task")?
        .context("processor");
    // Then the sinks: the archive closes its open segments (nothing half-written).
    let _ = sinks_stop_tx.send(true);
    let archived = archiving
        .await
        .context("archive task")?
        .context("archive sink");
    let indexed = indexing.await.context("index task")?.context("index sink");
    if let Some(r) = retaining {
        let _ = r.await;
    }
    served?;
    processed?;
    archived?;
    indexed
}

/// Every role's HTTP surface: the role routes plus `/healthz` and `/metrics`.
pub(crate) fn http_app(routes: Router, registry: prometheus::Registry) -> Router {
    routes
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/version",
            get(|| async {
                axum::Json(serde_json::json!({
                    "name": "provenant",
                    "version": crate::version::SHORT,
                    "commit": env!("PROVENANT_GIT_COMMIT"),
                    "built_at": crate::version::build_time_rfc3339(),
                }))
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut out = String::new();
                    let encoder = prometheus::TextEncoder::new();
                    match encoder.encode_utf8(&registry.gather(), &mut out) {
                        Ok(()) => (
                            [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                            out,
                        )
                            .into_response(),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            format!("encoding metrics: {e}"),
                        )
                            .into_response(),
                    }
                }
            }),
        )
}
