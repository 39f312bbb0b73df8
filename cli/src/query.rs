//! `provenant serve` (the query API over the index) and `provenant query …` (the same
//! questions from a shell, human output or `--json`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use provenant_index::http::{QueryConfig, router};
use provenant_index::{Direction, Index};
use provenant_schemas::EntityKey;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The index: `sqlite:///path/index.db`, a plain path, or `postgres://…`.
    #[arg(long, env = "PROVENANT_INDEX")]
    index: String,
    /// Address of the query API, /metrics, /healthz and /version.
    #[arg(long, default_value = "127.0.0.1:8081")]
    http: SocketAddr,
    /// Require `Authorization: Bearer <token>` on queries.
    #[arg(long, env = "PROVENANT_READ_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
}

pub(crate) fn run_serve(args: &ServeArgs) -> Result<ExitCode> {
    provenant_ingest::check_listen(args.http, args.token.is_some(), args.insecure)
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let signals = crate::shutdown::StopSignals::install()?;
        let index = Arc::new(
            provenant_index::open(&args.index)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
        let registry = prometheus::Registry::new();
        let _slis = crate::sinks::IndexSlis::start(
            index.clone(),
            &registry,
            crate::sinks::DEFAULT_SLI_REFRESH,
        )?;
        let app = crate::up::http_app(
            router(
                index,
                QueryConfig {
                    token: args.token.clone(),
                },
            ),
            registry,
        );
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("listening on {}", args.http))?;
        let addr = listener.local_addr()?;
        println!("provenant serve — roles running: query API");
        println!("  queries   http://{addr}/v1/lineage/{{entity}}?direction=up&depth=6");
        println!("  metrics   http://{addr}/metrics");
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = signals.wait().await;
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
