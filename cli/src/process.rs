//! `provenant process`: the processor role on its own (at scale, one or more per cluster), and
//! the pieces `provenant up` shares with it (building the redactor, starting the processor).
//!
//! Settings come from `--config FILE` (TOML, every table optional, unknown keys refused) and
//! flags, flags winning:
//!
//! ```toml
//! data_dir = "provenant-data"          # embedded log in DATA_DIR/log (when no [kafka])
//! http = "127.0.0.1:9464"              # /metrics and /healthz of this role
//! [kafka]                              # provenant_kafka::KafkaConfig
//! bootstrap_servers = "kafka-1:9092"
//! [processor]                          # provenant_processor::ProcessorConfig
//! group = "provenant-processor"
//! [redact]
//! policy = "ops/redact-policy.toml"    # default: the built-in policy
//! [archive]                            # where to resume from once retention has deleted
//! url = "s3://provenant-archive/prod"  # the ledger's beginning (the archive sink's url and
//! s3 = { endpoint = "http://s3:8333" } # [archive.s3]); embedded default: DATA_DIR/archive
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use provenant_kafka::{KafkaConfig, KafkaLog};
use provenant_log::Log;
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_processor::{Processor, ProcessorConfig};
use provenant_redact::{KeySource, Policy, Redactor, Secret};
use serde::Deserialize;

#[derive(Debug, Args)]
pub(crate) struct ProcessArgs {
    /// Settings file (TOML): data_dir or [kafka], http, [processor], [redact].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Run over a Kafka cluster (HOST:PORT,…) instead of the embedded log.
    #[arg(long, env = "PROVENANT_BROKERS")]
    brokers: Option<String>,

    /// The data directory of an embedded log (DIR/log). The embedded log admits one process:
    /// over it, `provenant up` runs every role instead.
    #[arg(long, env = "PROVENANT_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Address of this role's /metrics and /healthz. Port 0 picks a free port.
    #[arg(long)]
    http: Option<SocketAddr>,

    /// Redaction policy file (TOML); default: the built-in policy
    /// (processors/redact/default-policy.toml).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Consumer group over prov.raw.
    #[arg(long)]
    group: Option<String>,

    /// The archive to resume from where retention deleted the ledger's beginning (the archive
    /// sink's URL: a path, file:// or s3://; S3 settings in the config's [archive.s3]).
    /// Default with --data-dir: DIR/archive when it exists.
    #[arg(long, value_name = "URL")]
    archive: Option<String>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) http: Option<SocketAddr>,
    pub(crate) kafka: Option<KafkaConfig>,
    #[serde(default)]
    pub(crate) processor: ProcessorConfig,
    #[serde(default)]
    pub(crate) redact: RedactSection,
    pub(crate) archive: Option<crate::sinks::ArchiveSource>,
}

/// The `[redact]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedactSection {
    /// The policy file; the built-in default policy when absent.
    pub(crate) policy: Option<PathBuf>,
}

pub(crate) fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The redaction policy: from `path`, or the built-in default.
pub(crate) fn load_policy(path: Option<&Path>) -> Result<Policy> {
    match path {
        Some(p) => Policy::load(p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(Policy::default_policy()),
    }
}

/// A redactor for `policy`. With `key_dir`, a policy whose key is not available from the
/// environment or a file uses (and on first start creates) `key_dir/hmac.key`, readable by
/// the owner only, so tokens stay stable across restarts of `provenant up`.
pub(crate) fn build_redactor(policy: &Policy, key_dir: Option<&Path>) -> Result<Redactor> {
    if let Some(dir) = key_dir {
        let h = &policy.hmac;
        let named = h.key.is_some()
            || h.key_file.is_some()
            || h.key_env
                .as_ref()
                .is_some_and(|v| std::env::var_os(v).is_some());
        if !named {
            let key = load_or_create_key(&dir.join("hmac.key"))?;
            return Redactor::new(policy, key).map_err(|e| anyhow::anyhow!("{e}"));
        }
    }
    let from_policy = Redactor::from_policy(policy).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(_) = key_dir else {
        if *from_policy.key_source() == KeySource::Generated {
            tracing::warn!(
                "no HMAC key configured: using a random per-process key; redaction tokens will change on restart"
            );
        }
        return Ok(from_policy);
    };
    Ok(from_policy)
}

fn load_or_create_key(path: &Path) -> Result<Secret> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(Secret::from(text.trim_end_matches('\n')));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bytes: [u8; 32] = rand::random();
    let hex = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the HMAC key {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the HMAC key {}", path.display()))?;
    tracing::info!(path = %path.display(), "created the HMAC key for redaction tokens");
    Ok(Secret::from(hex))
}

/// The Kafka settings of a role: the `[kafka]` table with `--brokers` over its
/// bootstrap_servers, or defaults for `--brokers` alone; `None` means the embedded log.
pub(crate) fn kafka_settings(
    brokers: Option<&str>,
    file: Option<KafkaConfig>,
) -> Option<KafkaConfig> {
    match (brokers, file) {
        (Some(b), Some(mut k)) => {
            b.clone_into(&mut k.bootstrap_servers);
            Some(k)
        }
        (Some(b), None) => Some(KafkaConfig::new(b)),
        (None, k) => k,
    }
}

/// Serves `app` on `listener` until `stop` changes (a role's /metrics and /healthz).
pub(crate) fn spawn_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await
    })
}

pub(crate) fn run(args: &ProcessArgs) -> Result<ExitCode> {
    let file: ProcessFile = match &args.config {
        Some(p) => load_toml(p)?,
        None => ProcessFile::default(),
    };
    let mut cfg = file.processor.clone();
    if let Some(g) = &args.group {
        cfg.group.clone_from(g);
    }
    let policy_path = args.policy.clone().or(file.redact.policy.clone());
    let policy = load_policy(policy_path.as_deref())?;
    let http = args
        .http
        .or(file.http)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9464)));
    let mut archive = file.archive.clone();
    if let Some(url) = &args.archive {
        archive
            .get_or_insert_with(Default::default)
            .url
            .clone_from(url);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let kafka = crate::process::kafka_settings(args.brokers.as_deref(), file.kafka);
    if let Some(k) = kafka {
        let desc = format!("kafka {}", k.bootstrap_servers);
        let log = Arc::new(KafkaLog::new(k).map_err(|e| anyhow::anyhow!("{e}"))?);
        let redactor = build_redactor(&policy, None)?;
        let history = archive.map(|a| a.history()).transpose()?;
        runtime.block_on(serve(log, cfg, redactor, history, http, &desc))?;
    } else {
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .context("say where the log is: --brokers (Kafka) or --data-dir (embedded)")?;
        let dir = data_dir.join("log");
        let log = Arc::new(
            EmbeddedLog::open(&dir, EmbeddedConfig::default())
                .with_context(|| format!("opening the embedded log in {}", dir.display()))?,
        );
        let redactor = build_redactor(&policy, Some(&data_dir.join("keys")))?;
        let desc = format!("embedded, {}", dir.display());
        let default_archive = data_dir.join("archive");
        if archive.is_none() && default_archive.is_dir() {
            archive = Some(crate::sinks::ArchiveSource {
                url: default_archive.display().to_string(),
                ..Default::default()
            });
        }
        let history = archive.map(|a| a.history()).transpose()?;
        runtime.block_on(serve(log, cfg, redactor, history, http, &desc))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve<L: Log>(
    log: Arc<L>,
    cfg: ProcessorConfig,
    redactor: Redactor,
    history: Option<Arc<dyn provenant_processor::History>>,
    http: SocketAddr,
    log_desc: &str,
) -> Result<()> {
    let signals = crate::shutdown::StopSignals::install()?;
    let registry = prometheus::Registry::new();
    let mut processor = Processor::new(log, cfg, Arc::new(redactor), &registry)
        .await
        .context("starting the processor")?;
    if let Some(h) = history {
        processor = processor.with_history(h);
    }
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("listening on {http}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("provenant process — roles running: processor");
    println!("  log       {log_desc}");
    println!("  metrics   http://{addr}/metrics");
    println!("  health    http://{addr}/healthz");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = crate::up::http_app(axum::Router::new(), registry);
    let server = crate::process::spawn_http(listener, app, stop_rx.clone());
    let mut proc_stop = stop_rx;
    let processing = processor.run(async move {
        let _ = proc_stop.changed().await;
    });
    tokio::pin!(processing);
    let result = tokio::select! {
        r = &mut processing => r.map_err(anyhow::Error::from),
        s = signals.wait() => {
            tracing::info!("stopping: finishing the batch in flight");
            let _ = stop_tx.send(true);
            s.and(processing.await.map_err(anyhow::Error::from))
        }
    };
    let _ = stop_tx.send(true);
    let _ = server.await;
    result.context("processor")
}
