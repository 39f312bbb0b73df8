//! `provenant sink archive|index`, and the sink roles `provenant up` runs: each sink is a
//! [`LedgerSink`] fed by `provenant_sink::run` as its own consumer group over `prov.ledger`.
//!
//! Settings from `--config FILE` (TOML, unknown keys refused) and flags, flags winning:
//!
//! ```toml
//! data_dir = "provenant-data"       # embedded log in DATA_DIR/log (when no [kafka])
//! http = "127.0.0.1:9465"           # /metrics, /healthz
//! [kafka]                           # provenant_kafka::KafkaConfig
//! bootstrap_servers = "kafka-1:9092"
//! [archive]                         # provenant_archive::ArchiveConfig
//! url = "s3://provenant-archive/prod"
//! key_dir = "/etc/provenant/keys"
//! [index]                           # `sink index --index` / PROVENANT_INDEX win over url
//! url = "postgres://provenant@db/provenant"
//! sli_refresh = "15s"               # how often the provenance SLI gauges are read
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use provenant_archive::{ArchiveConfig, ArchiveSink, load_or_create_key};
use provenant_index::{AnyIndex, Index};
use provenant_kafka::{KafkaConfig, KafkaLog};
use provenant_log::Log;
use provenant_log::embedded::{EmbeddedConfig, EmbeddedLog};
use provenant_processor::{History, HistoryError, ReplayFuture};
use provenant_schemas::ledger::LedgerEntry;
use provenant_schemas::validity::ReaderState;
use provenant_sink::{LedgerSink, RunnerConfig, SinkError, SinkMetrics};
use serde::Deserialize;

use crate::metrics::ArchiveMetrics;

/// The index as a ledger sink: event records (and markers, link resolutions) applied with
/// the reader state in one transaction.
pub(crate) struct IndexSink(pub(crate) Arc<AnyIndex>);

impl LedgerSink for IndexSink {
    fn name(&self) -> &'static str {
        "index"
    }

    async fn resume(&mut self, partition: u32) -> Result<Option<ReaderState>, SinkError> {
        self.0
            .reader_state(partition)
            .await
            .map_err(|e| SinkError::sink("index", e))
    }

    async fn write(
        &mut self,
        partition: u32,
        entries: &[(u64, LedgerEntry)],
        state: &ReaderState,
    ) -> Result<(), SinkError> {
        let records: Vec<_> = entries
            .iter()
            .filter_map(|(_, e)| match e {
                LedgerEntry::Record(r) => Some(r.clone()),
                LedgerEntry::Fence(_) => None,
            })
            .collect();
        self.0
            .apply(partition, &records, state)
            .await
            .map(|_| ())
            .map_err(|e| SinkError::sink("index", e))
    }

    async fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn close_partition(&mut self, _partition: u32) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How often the provenance SLIs are read from the index unless configured
/// (`[index] sli_refresh`).
pub(crate) const DEFAULT_SLI_REFRESH: Duration = Duration::from_secs(15);

/// The whole-index counts ([`Index::stats`]) take time in proportion to the index (about
/// 0.4 s at 100,000 events on PostgreSQL): they run at most once per this many times their
/// own last duration, so they use at most about 1% of the time whatever the index's size.
const COUNTS_BUDGET: u32 = 100;

/// The provenance SLIs of an index as gauges on a role's `/metrics` (the index sink, `serve`,
/// `up`), read by a task, not on scrape, so their cost does not depend on how often anyone
/// scrapes. Right away and then every `every` it reads the coverage and the missing links
/// (index probes: cheap whatever the index's size); the whole-index counts (events, resolved
/// links) are read first when due (see [`COUNTS_BUDGET`]). No label carries an event value.
/// The task stops when this is dropped.
///
/// The *rate* of missing links over time comes from the processor's counters
/// (`provenant_processor_links_total{status}`); these gauges are the index's standing view.
#[derive(Debug)]
pub(crate) struct IndexSlis(tokio::task::JoinHandle<()>);

impl IndexSlis {
    pub(crate) fn start(
        index: Arc<AnyIndex>,
        registry: &prometheus::Registry,
        every: Duration,
    ) -> Result<IndexSlis> {
        let gauges = SliGauges::new(registry).context("registering the index SLI metrics")?;
        Ok(IndexSlis(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Ticks to let pass before the counts are read again.
            let mut skip = 0u128;
            loop {
                tick.tick().await;
                // Counts first: the coverage read after them is at least as new (a test waits
                // for the event count, then compares the coverage).
                if skip == 0 {
                    let started = Instant::now();
                    gauges.read_counts(index.as_ref()).await;
                    let spend = started.elapsed() * COUNTS_BUDGET;
                    skip = spend.as_nanos() / every.as_nanos().max(1);
                } else {
                    skip -= 1;
                }
                gauges.read_coverage(index.as_ref()).await;
            }
        })))
    }
}

impl Drop for IndexSlis {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The SLI gauges, declared in one place.
impl crate::metrics::MetricSet for SliGauges {
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.coverage.clone()),
            Box::new(self.deployed.clone()),
            Box::new(self.proven.clone()),
            Box::new(self.missing.clone()),
            Box::new(self.resolved.clone()),
            Box::new(self.missing_ratio.clone()),
            Box::new(self.events.clone()),
            Box::new(self.refreshed.clone()),
            Box::new(self.failures.clone()),
        ]
    }
}

/// The provenance SLI gauges of an index.
#[derive(Debug)]
pub(crate) struct SliGauges {
    coverage: prometheus::Gauge,
    deployed: prometheus::IntGauge,
    proven: prometheus::IntGauge,
    missing: prometheus::IntGauge,
    resolved: prometheus::IntGauge,
    missing_ratio: prometheus::Gauge,
    events: prometheus::IntGauge,
    refreshed: prometheus::GaugeVec,
    failures: prometheus::IntCounterVec,
}

impl SliGauges {
    pub(crate) fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        use crate::metrics::MetricSet;
        use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGauge, Opts};
        let g = Self {
            coverage: Gauge::new(
                "provenant_index_coverage_ratio",
                "Share of the distinct artifacts deployed now (latest deploy per service and environment) with build provenance (artifact built_by build built_from commit); NaN when nothing is deployed.",
            )?,
            deployed: IntGauge::new(
                "provenant_index_deployed_artifacts",
                "Distinct artifacts deployed now (the coverage ratio's denominator).",
            )?,
            proven: IntGauge::new(
                "provenant_index_proven_artifacts",
                "Of the artifacts deployed now, those with build provenance (the coverage ratio's numerator).",
            )?,
            missing: IntGauge::new(
                "provenant_index_missing_links",
                "Edges of the index whose link is still pending (target not in the ledger).",
            )?,
            resolved: IntGauge::new(
                "provenant_index_resolved_links",
                "Edges of the index whose link is resolved (read with the counts).",
            )?,
            missing_ratio: Gauge::new(
                "provenant_index_missing_link_ratio",
                "Missing links over all links, pending / (pending + resolved) (read with the counts); NaN when there are no links.",
            )?,
            events: IntGauge::new(
                "provenant_index_events",
                "Events in the index (read with the counts).",
            )?,
            refreshed: GaugeVec::new(
                Opts::new(
                    "provenant_index_sli_refresh_timestamp_seconds",
                    "Unix time the index SLIs were last read: sli=coverage (coverage, missing links; every refresh) or sli=counts (events, resolved links; less often on a large index).",
                ),
                &["sli"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "provenant_index_sli_refresh_failures_total",
                    "Reads of the index SLIs that failed (the gauges keep their last value), by sli.",
                ),
                &["sli"],
            )?,
        };
        let g = g.registered(registry)?;
        for sli in ["coverage", "counts"] {
            g.failures.with_label_values(&[sli]);
        }
        Ok(g)
    }

    /// Coverage and missing links: probes of the index, cheap whatever its size.
    async fn read_coverage<I: Index>(&self, index: &I) {
        let read = async { Ok((index.coverage().await?, index.missing_links().await?)) };
        let Some((coverage, missing)) = self.read("coverage", read).await else {
            return;
        };
        self.coverage.set(coverage.ratio.unwrap_or(f64::NAN));
        self.deployed.set(int(coverage.deployed_artifacts));
        self.proven.set(int(coverage.proven));
        self.missing.set(int(missing));
    }

    /// Events and links: whole-table counts.
    async fn read_counts<I: Index>(&self, index: &I) {
        let Some(stats) = self.read("counts", index.stats()).await else {
            return;
        };
        self.events.set(int(stats.events));
        self.resolved.set(int(stats.resolved_links));
        self.missing_ratio
            .set(stats.missing_link_rate().unwrap_or(f64::NAN));
    }

    /// Runs one read; stamps `sli`'s refresh time, or counts and logs its failure.
    async fn read<T>(
        &self,
        sli: &str,
        read: impl std::future::Future<Output = Result<T, provenant_index::IndexError>>,
    ) -> Option<T> {
        match read.await {
            Ok(v) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.refreshed.with_label_values(&[sli]).set(now);
                Some(v)
            }
            Err(e) => {
                self.failures.with_label_values(&[sli]).inc();
                tracing::warn!(sli, error = %e, "reading the provenance SLIs from the index failed");
                None
            }
        }
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The archive as a ledger sink, publishing the segments and checkpoints it writes.
pub(crate) struct ArchiveRole(pub(crate) ArchiveSink, pub(crate) ArchiveMetrics);

impl LedgerSink for ArchiveRole {
    fn name(&self) -> &'static str {
        "archive"
    }

    async fn resume(&mut self, partition: u32) -> Result<Option<ReaderState>, SinkError> {
        let state = self
            .0
            .resume(partition)
            .await
            .map_err(|e| SinkError::sink("archive", e))?;
        if let Some(s) = &state {
            self.1.resumed(partition, s);
        }
        Ok(state)
    }

    async fn write(
        &mut self,
        partition: u32,
        entries: &[(u64, LedgerEntry)],
        state: &ReaderState,
    ) -> Result<(), SinkError> {
        let closed = self
            .0
            .write(partition, entries, state)
            .await
            .map_err(|e| SinkError::sink("archive", e))?;
        self.1.closed(&closed);
        Ok(())
    }

    async fn tick(&mut self) -> Result<(), SinkError> {
        let closed = self
            .0
            .tick(Instant::now())
            .await
            .map_err(|e| SinkError::sink("archive", e))?;
        self.1.closed(&closed);
        Ok(())
    }

    async fn close_partition(&mut self, partition: u32) -> Result<(), SinkError> {
        let closed = self
            .0
            .close_partition(partition)
            .await
            .map_err(|e| SinkError::sink("archive", e))?;
        self.1.closed(&closed);
        self.1.forget(partition);
        Ok(())
    }
}

/// The archive as the processor's [`History`]: where retention deleted the ledger's beginning,
/// a new owner of the partition rebuilds its state from the archived segments.
pub(crate) struct ArchiveHistory(pub(crate) provenant_archive::ArchiveStore);

impl History for ArchiveHistory {
    fn replay<'a>(
        &'a self,
        partition: u32,
        each: &'a mut (
                    dyn FnMut(provenant_schemas::ledger::LedgerRecord) -> Result<(), String> + Send
                ),
    ) -> ReplayFuture<'a> {
        Box::pin(async move {
            provenant_archive::read::replay_partition(&self.0, partition, each)
                .await
                .map_err(|e| HistoryError {
                    retryable: matches!(e, provenant_archive::ArchiveError::Store { .. }),
                    message: e.to_string(),
                })
        })
    }
}

/// Where the processor reads the archive back from (the `[archive]` table of
/// `provenant process --config`): the sink's URL and S3 settings, nothing else.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArchiveSource {
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) s3: provenant_archive::S3Options,
}

impl ArchiveSource {
    pub(crate) fn history(&self) -> Result<Arc<dyn History>> {
        let store = provenant_archive::ArchiveStore::open(&self.url, &self.s3)
            .map_err(|e| anyhow::anyhow!("opening the archive {}: {e}", self.url))?;
        Ok(Arc::new(ArchiveHistory(store)))
    }
}

/// Opens the archive sink, creating its signing key on first start.
pub(crate) async fn open_archive(cfg: &ArchiveConfig) -> Result<ArchiveSink> {
    let key_dir = cfg
        .key_dir
        .clone()
        .context("the archive needs key_dir (where archive.key and archive.pub live)")?;
    let (key, public) =
        load_or_create_key(&key_dir, &cfg.key_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(public_key = %public.display(), "checkpoint signing key ready");
    ArchiveSink::open(cfg, key)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum SinkCommand {
    /// Archive the ledger write-once (segments, manifests, signed checkpoints).
    Archive(SinkArgs),
    /// Index the ledger's lineage (SQLite file or PostgreSQL).
    Index(IndexSinkArgs),
}

#[derive(Debug, Args)]
pub(crate) struct IndexSinkArgs {
    #[command(flatten)]
    common: SinkArgs,
    /// The index (`sqlite:///path/index.db`, a plain path, or `postgres://…`), over `[index]
    /// url` in --config: keeps a password out of the file.
    #[arg(long, env = "PROVENANT_INDEX", hide_env_values = true)]
    index: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SinkArgs {
    /// Settings file (TOML): data_dir or [kafka], http, [archive], [index].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run over a Kafka cluster (HOST:PORT,…) instead of the embedded log.
    #[arg(long, env = "PROVENANT_BROKERS")]
    brokers: Option<String>,
    /// Address of this role's /metrics and /healthz. Port 0 picks a free port.
    #[arg(long)]
    http: Option<SocketAddr>,
}

/// The `--config` file of the sink roles.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinkFile {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) http: Option<SocketAddr>,
    pub(crate) kafka: Option<KafkaConfig>,
    #[serde(default)]
    pub(crate) archive: Option<ArchiveConfig>,
    #[serde(default)]
    pub(crate) index: Option<IndexSection>,
}

/// The `[index]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexSection {
    /// `sqlite:///path/index.db`, a plain path, or `postgres://…`.
    pub(crate) url: String,
    /// How often the provenance SLI gauges are read from the index ("15s", "1m", …).
    #[serde(
        default = "default_sli_refresh",
        deserialize_with = "provenant_archive::config::deserialize_duration"
    )]
    pub(crate) sli_refresh: Duration,
}

fn default_sli_refresh() -> Duration {
    DEFAULT_SLI_REFRESH
}

pub(crate) fn run_sink(cmd: &SinkCommand) -> Result<ExitCode> {
    let (args, which, index_url) = match cmd {
        SinkCommand::Archive(a) => (a, "archive", None),
        SinkCommand::Index(a) => (&a.common, "index", a.index.clone()),
    };
    let file: SinkFile = match &args.config {
        Some(p) => crate::process::load_toml(p)?,
        None => SinkFile::default(),
    };
    let http = args
        .http
        .or(file.http)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9465)));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let kafka = crate::process::kafka_settings(args.brokers.as_deref(), file.kafka);
    let archive = file.archive;
    // --index / PROVENANT_INDEX wins over the file's url (keeps a password out of the file).
    let index = match (index_url, file.index) {
        (Some(url), Some(section)) => Some(IndexSection { url, ..section }),
        (Some(url), None) => Some(IndexSection {
            url,
            sli_refresh: DEFAULT_SLI_REFRESH,
        }),
        (None, section) => section,
    };
    runtime.block_on(async move {
        if let Some(k) = kafka {
            let desc = format!("kafka {}", k.bootstrap_servers);
            let log = Arc::new(KafkaLog::new(k).map_err(|e| anyhow::anyhow!("{e}"))?);
            serve_sink(log, which, archive, index, http, &desc).await
        } else {
            let data_dir = file
                .data_dir
                .context("say where the log is: --brokers, [kafka] or data_dir in --config")?;
            let dir = data_dir.join("log");
            let log = Arc::new(
                EmbeddedLog::open(&dir, EmbeddedConfig::default())
                    .with_context(|| format!("opening the embedded log in {}", dir.display()))?,
            );
            serve_sink(
                log,
                which,
                archive,
                index,
                http,
                &format!("embedded, {}", dir.display()),
            )
            .await
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn serve_sink<L: Log>(
    log: Arc<L>,
    which: &'static str,
    archive: Option<ArchiveConfig>,
    index: Option<IndexSection>,
    http: SocketAddr,
    log_desc: &str,
) -> Result<()> {
    let signals = crate::shutdown::StopSignals::install()?;
    let registry = prometheus::Registry::new();
    let metrics = SinkMetrics::new(&registry)?;
    let archive_metrics = ArchiveMetrics::new(&registry)?;
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("listening on {http}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let app = crate::up::http_app(axum::Router::new(), registry.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = crate::process::spawn_http(listener, app, stop_rx.clone());
    println!("provenant sink {which} — roles running: {which} sink");
    println!("  log       {log_desc}");
    println!("  metrics   http://{addr}/metrics");
    let mut stop = stop_rx;
    let stopped = async move {
        tokio::select! {
            s = signals.wait() => { if let Err(e) = s { tracing::error!(error = %e, "signal handler failed"); } }
            _ = stop.changed() => {}
        }
    };
    let result = match which {
        "archive" => {
            let cfg = archive.context("--config needs an [archive] table (url, key_dir)")?;
            println!("  archive   {}", cfg.url);
            let sink = ArchiveRole(open_archive(&cfg).await?, archive_metrics);
            provenant_sink::run(
                log,
                sink,
                RunnerConfig::new("provenant-archive"),
                metrics,
                stopped,
            )
            .await
        }
        _ => {
            let section = index.context("--config needs an [index] table (url)")?;
            let idx = provenant_index::open(&section.url)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "  index     {}",
                provenant_index::IndexUrl::parse(&section.url)
                    .map(|u| u.redacted())
                    .unwrap_or_default()
            );
            let idx = Arc::new(idx);
            let _slis = IndexSlis::start(idx.clone(), &registry, section.sli_refresh)?;
            provenant_sink::run(
                log,
                IndexSink(idx),
                RunnerConfig::new("provenant-index"),
                metrics,
                stopped,
            )
            .await
        }
    };
    let _ = stop_tx.send(true);
    let _ = server.await;
    result.map_err(|e| anyhow::anyhow!("{which} sink: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    /// Every example config in the repo parses with the type of the role it is for.
    #[test]
    fn every_example_config_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains("process") {
                let f: crate::process::ProcessFile =
                    crate::process::load_toml(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                if let Some(policy) = &f.redact.policy {
                    let policy = dir.join("../..").join(policy);
                    crate::process::load_policy(Some(&policy))
                        .unwrap_or_else(|e| panic!("{name}: policy: {e:#}"));
                }
            } else if name.starts_with("serve") {
                let f: crate::query::ServeFile =
                    crate::process::load_toml(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                assert!(f.index.is_some(), "{name}: no index");
            } else if name.starts_with("up") {
                let _: crate::up::UpFile =
                    crate::process::load_toml(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            } else if name.starts_with("sink-") {
                let f: super::SinkFile =
                    crate::process::load_toml(&path).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                if let Some(a) = &f.archive {
                    a.check().unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                assert!(
                    f.archive.is_some() || f.index.is_some(),
                    "{name}: no sink table"
                );
            } else {
                panic!(
                    "{name}: which role is this example for? name it up*, serve*, process-* or sink-*"
                );
            }
            seen += 1;
        }
        assert!(seen >= 6, "found {seen} example configs");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<super::SinkFile>("[index]\nurl = \"x\"\nurll = \"y\"\n");
        assert!(err.is_err());
    }
}
