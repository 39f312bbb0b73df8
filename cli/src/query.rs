//! `provenant serve` (the query API over the index and, with Kafka, HTTP ingest into
//! prov.raw: the stateless front door at scale) and `provenant query …` (the same questions
//! from a shell, human output or `--json`).
//!
//! `serve` settings come from `--config FILE` (TOML, unknown keys refused) and flags, flags
//! (and their environment variables) winning:
//!
//! ```toml
//! http = "0.0.0.0:8080"                # queries, ingest, /metrics, /healthz, /version
//! index = "postgres://provenant@db/provenant"   # PROVENANT_INDEX wins (keeps a password out)
//! # token = "…"                        # better: PROVENANT_TOKEN
//! [kafka]                              # provenant_kafka::KafkaConfig; turns on ingest
//! bootstrap_servers = "kafka-1:9092"
//! ```
//!
//! `serve` also publishes the provenance SLIs of the index (`provenant_index_*`: coverage,
//! missing links; see sinks/README.md). It holds no state of its own: run as many as needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use provenant_index::http::{QueryConfig, router};
use provenant_index::{Direction, Index};
use provenant_ingest::{Ingest, IngestConfig};
use provenant_kafka::{KafkaConfig, KafkaLog};
use provenant_schemas::EntityKey;
use serde::Deserialize;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Settings file (TOML) with any of: http, index, token, insecure, and a [kafka] table
    /// (provenant_kafka::KafkaConfig) that turns on ingest. Flags win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The index: `sqlite:///path/index.db`, a plain path, or `postgres://…` (required here,
    /// in the environment or as `index` in --config).
    #[arg(long, env = "PROVENANT_INDEX", hide_env_values = true)]
    index: Option<String>,
    /// Address of the HTTP server: queries (and ingest), /metrics, /healthz, /version
    /// [default: 127.0.0.1:8081].
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Also take events over HTTP (`POST /v1/events`, `POST /api/v1/lineage`) into prov.raw
    /// on this Kafka cluster (HOST:PORT,…): the stateless front door at scale.
    #[arg(long, env = "PROVENANT_BROKERS")]
    brokers: Option<String>,
    /// Require `Authorization: Bearer <token>` on queries and ingest.
    #[arg(long, env = "PROVENANT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
}

/// The `serve --config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeFile {
    pub(crate) http: Option<SocketAddr>,
    /// The index URL (see `--index`).
    pub(crate) index: Option<String>,
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) insecure: bool,
    /// With it, `serve` also runs HTTP ingest into prov.raw on this cluster.
    pub(crate) kafka: Option<KafkaConfig>,
}

/// What `serve` runs with: the flags over the `--config` file.
#[derive(Debug)]
struct Serve {
    index: String,
    http: SocketAddr,
    token: Option<String>,
    insecure: bool,
    /// Ingest into prov.raw on this cluster, when set.
    kafka: Option<KafkaConfig>,
}

impl ServeArgs {
    fn resolve(&self) -> Result<Serve> {
        let file: ServeFile = match &self.config {
            Some(p) => crate::process::load_toml(p)?,
            None => ServeFile::default(),
        };
        let index = self.index.clone().or(file.index).context(
            "say which index to serve: --index URL, PROVENANT_INDEX, or `index = \"…\"` in --config",
        )?;
        Ok(Serve {
            index,
            http: self
                .http
                .or(file.http)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081))),
            token: self.token.clone().or(file.token),
            insecure: self.insecure || file.insecure,
            kafka: crate::process::kafka_settings(self.brokers.as_deref(), file.kafka),
        })
    }
}

pub(crate) fn run_serve(args: &ServeArgs) -> Result<ExitCode> {
    let serve = args.resolve()?;
    provenant_ingest::check_listen(serve.http, serve.token.is_some(), serve.insecure)
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let signals = crate::shutdown::StopSignals::install()?;
        let index = Arc::new(
            provenant_index::open(&serve.index)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let registry = prometheus::Registry::new();
        let _slis = crate::sinks::IndexSlis::start(
            index.clone(),
            &registry,
            crate::sinks::DEFAULT_SLI_REFRESH,
        )?;
        let queries = router(
            index.clone(),
            QueryConfig {
                token: serve.token.clone(),
            },
        );
        let (routes, log_desc) = match &serve.kafka {
            Some(k) => {
                let log = KafkaLog::new(k.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
                let ingest = Ingest::new(
                    log,
                    IngestConfig {
                        token: serve.token.clone(),
                        ..IngestConfig::default()
                    },
                    &registry,
                )?;
                (
                    provenant_ingest::router(ingest).merge(queries),
                    Some(format!("kafka {}", k.bootstrap_servers)),
                )
            }
            None => (queries, None),
        };
        let app = crate::up::http_app(routes, registry);
        let listener = tokio::net::TcpListener::bind(serve.http)
            .await
            .with_context(|| format!("listening on {}", serve.http))?;
        let addr = listener.local_addr()?;
        let index_desc = provenant_index::IndexUrl::parse(&serve.index)
            .map(|u| u.redacted())
            .unwrap_or_default();
        match &log_desc {
            Some(log) => {
                println!("provenant serve — roles running: ingest, query API");
                println!("  log       {log} (ingest → prov.raw)");
                println!("  events    POST http://{addr}/v1/events");
                println!("  lineage   POST http://{addr}/api/v1/lineage");
            }
            None => {
                println!("provenant serve — roles running: query API (no ingest: no --brokers)");
            }
        }
        println!("  index     {index_desc}");
        println!("  queries   http://{addr}/v1/lineage/{{entity}}?direction=up&depth=6");
        println!("  metrics   http://{addr}/metrics");
        println!("  health    http://{addr}/healthz");
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                if let Err(e) = signals.wait().await {
                    tracing::error!(error = %e, "signal handler failed; stopping");
                }
                tracing::info!("stopping: finishing requests in flight");
            })
            .await
            .context("serving HTTP")
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The index: `sqlite:///path/index.db`, a plain path (e.g. DATA_DIR/index.db of
    /// `provenant up`), or `postgres://…`.
    #[arg(
        long,
        env = "PROVENANT_INDEX",
        global = true,
        default_value = "provenant-data/index.db"
    )]
    index: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: QueryCommand,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dir {
    Up,
    Down,
}

#[derive(Debug, Subcommand)]
enum QueryCommand {
    /// Lineage of an entity (`instance:pod-1`, `commit:<sha>`, `artifact:sha256:<hex>`, …).
    Lineage {
        entity: String,
        /// `up` (where it came from) or `down` (what came from it).
        #[arg(long, value_enum, default_value = "up")]
        direction: Dir,
        #[arg(long, default_value_t = 6)]
        depth: u32,
    },
    /// What is deployed where now.
    Deployments {
        #[arg(long)]
        env: Option<String>,
    },
    /// The deployment a service in an environment rolls back to.
    Rollback {
        #[arg(long)]
        service: String,
        #[arg(long)]
        env: String,
    },
    /// Share of deployed artifacts with build provenance, and the unproven ones.
    Coverage,
    /// An event by its CloudEvents id.
    Event { id: String },
}

pub(crate) fn run_query(args: &QueryArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let index = provenant_index::open(&args.index)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = match &args.what {
            QueryCommand::Lineage {
                entity,
                direction,
                depth,
            } => {
                let key = EntityKey::parse(entity).map_err(|e| anyhow::anyhow!("{e}"))?;
                let dir = match direction {
                    Dir::Up => Direction::Up,
                    Dir::Down => Direction::Down,
                };
                let l = index
                    .lineage(&key, dir, *depth)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if args.json {
                    serde_json::to_string_pretty(&l)?
                } else {
                    provenant_index::format_tree(&l)
                }
            }
            QueryCommand::Deployments { env } => {
                let d = index
                    .deployments(env.as_deref())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if args.json {
                    serde_json::to_string_pretty(&d)?
                } else {
                    d.iter()
                        .map(|d| {
                            format!(
                                "{:<14} {:<16} {}  {}  ({})",
                                d.environment, d.service, d.deploy_id, d.artifact, d.deployed_at
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            }
            QueryCommand::Rollback { service, env } => {
                let r = index
                    .rollback_target(service, env)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if args.json {
                    serde_json::to_string_pretty(&r)?
                } else {
                    match r {
                        Some(d) => format!("{} → {} ({})", d.deploy_id, d.artifact, d.deployed_at),
                        None => {
                            format!("no earlier deployment of {service} in {env} to roll back to")
                        }
                    }
                }
            }
            QueryCommand::Coverage => {
                let c = index.coverage().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                if args.json {
                    serde_json::to_string_pretty(&c)?
                } else {
                    coverage_text(&c)
                }
            }
            QueryCommand::Event { id } => {
                let e = index
                    .event(id, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                serde_json::to_string_pretty(&e)?
            }
        };
        println!("{out}");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// "coverage: 1/2 deployed artifacts have build provenance (50%)" and the unproven ones.
pub(crate) fn coverage_text(c: &provenant_index::Coverage) -> String {
    let pct = c
        .ratio
        .map_or_else(|| "n/a".to_owned(), |r| format!("{:.0}%", r * 100.0));
    let mut out = format!(
        "coverage: {}/{} deployed artifacts have build provenance ({pct})",
        c.proven, c.deployed_artifacts
    );
    for u in &c.unproven {
        out.push_str(&format!(
            "\n  unproven: {}",
            serde_json::to_string(u).unwrap_or_default()
        ));
    }
    out
}
