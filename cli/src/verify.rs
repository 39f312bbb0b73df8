//! `provenant verify ARCHIVE`: checks a cold archive offline (`provenant_archive::verify`).
//!
//! Exit status: 0 the archive is intact, 1 any integrity failure (each printed with partition,
//! object key, seq / record / byte and what failed), 2 a usage or I/O error (bad URL, unreadable
//! key file, archive not reachable). A progress bar is drawn on stderr only when stderr is a
//! terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use provenant_archive::verify::{Progress, VerifyOptions, VerifyReport, verify};
use provenant_archive::{ArchiveStore, VerifierKey};

use crate::archive::StoreArgs;

const EXIT_INTEGRITY: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Arguments of `provenant verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
ARCHIVE is a directory, a file:// URL or an s3://BUCKET/PREFIX URL (S3 credentials come from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; see --s3-endpoint for S3-compatible servers).

Checks every segment's SHA-256 against its manifest, every record's hash, the chain inside and
across segments, that seqs are contiguous from 0 (a deleted segment is a gap), the RFC 6962
Merkle roots, and — with --pubkey — every checkpoint's signature. With --since-checkpoint it
also checks an RFC 6962 consistency proof from a checkpoint you saved earlier to the newest
one, which catches deleted newest segments, a replayed old checkpoint and a rewritten history.

Exit status: 0 intact, 1 integrity failure, 2 usage or I/O error.

Examples:
  provenant verify /var/lib/provenant/archive --pubkey archive.pub
  provenant verify s3://prov-archive/prod --pubkey archive.pub --s3-endpoint http://127.0.0.1:8333 --s3-path-style
  # keep the newest checkpoint of a partition, and later check the archive still extends it
  cp /var/lib/provenant/archive/p0000/s00000000000000100000.checkpoint saved.checkpoint
  provenant verify /var/lib/provenant/archive --pubkey archive.pub --since-checkpoint saved.checkpoint
  # a nightly audit that pages on failure (node_exporter --collector.textfile.directory=DIR)
  provenant verify s3://prov-archive/prod --pubkey archive.pub --metrics-file DIR/provenant_verify.prom")]
pub(crate) struct VerifyArgs {
    /// The archive: a directory, file://PATH or s3://BUCKET/PREFIX.
    #[arg(value_name = "ARCHIVE")]
    archive: String,

    /// Public key file (archive.pub) to check checkpoint signatures with. Without it
    /// signatures are NOT checked.
    #[arg(long, value_name = "FILE")]
    pubkey: Option<PathBuf>,

    /// A checkpoint saved earlier: check the archive still extends it (consistency proof).
    #[arg(long, value_name = "FILE")]
    since_checkpoint: Option<PathBuf>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Also write the outcome as Prometheus metrics to FILE (text format, replaced
    /// atomically), for node_exporter's textfile collector: run verify on a schedule and the
    /// alerts in ops/prometheus/rules page on an integrity failure. Written for usage and I/O
    /// errors too (exit code 2, nothing verified).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,

    /// Segments checked at once (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,

    #[command(flatten)]
    store: StoreArgs,
}

/// Runs the subcommand; returns the process exit status.
pub(crate) fn run(args: &VerifyArgs) -> ExitCode {
    let started = Instant::now();
    let (code, report) = match run_inner(args) {
        Ok((code, report)) => (code, Some(report)),
        Err(e) => {
            eprintln!("provenant verify: {e:#}");
            (EXIT_USAGE, None)
        }
    };
    if let Some(path) = &args.metrics_file
        && let Err(e) = write_metrics(path, report.as_ref(), code, started.elapsed())
    {
        eprintln!("provenant verify: --metrics-file {}: {e:#}", path.display());
        return ExitCode::from(EXIT_USAGE);
    }
    ExitCode::from(code)
}

/// Writes the run's metrics to `path` in the Prometheus text format: to a temporary file in
/// the same directory, then renamed over `path`, so a collector never reads half a file.
fn write_metrics(
    path: &std::path::Path,
    report: Option<&VerifyReport>,
    code: u8,
    elapsed: std::time::Duration,
) -> anyhow::Result<()> {
    use prometheus::Encoder;
    let registry = prometheus::Registry::new();
    crate::metrics::VerifyMetrics::new(&registry)?.record(report, code, elapsed);
    let mut text = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut text)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(&text).context("writing the metrics")?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn run_inner(args: &VerifyArgs) -> anyhow::Result<(u8, VerifyReport)> {
    let pubkey = args
        .pubkey
        .as_ref()
        .map(|p| VerifierKey::load(p))
        .transpose()?;
    let since = args
        .since_checkpoint
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let store = ArchiveStore::open(&args.archive, &args.store.s3_options())?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} verifying [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let progress = bar.clone().map(|bar| {
        Arc::new(move |p: Progress| match p {
            Progress::Total { bytes, segments } => {
                bar.set_length(bytes);
                bar.set_message(format!("{segments} segments"));
            }
            Progress::Segment { bytes } => bar.inc(bytes),
        }) as provenant_archive::verify::ProgressFn
    });
    let opts = VerifyOptions {
        pubkey,
        since,
        threads: args.threads,
        progress,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let report = runtime.block_on(verify(&store, &opts))?;
    let elapsed = started.elapsed();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
        writeln!(out).context("writing the report")?;
    } else {
        print_text(&mut out, &report, args, elapsed).context("writing the report")?;
    }
    out.flush().context("writing the report")?;
    let code = if report.ok { 0 } else { EXIT_INTEGRITY };
    Ok((code, report))
}

fn print_text(
    out: &mut impl Write,
    r: &VerifyReport,
    args: &VerifyArgs,
    elapsed: std::time::Duration,
) -> std::io::Result<()> {
    writeln!(out, "archive {}", r.archive)?;
    for p in &r.partitions {
        writeln!(
            out,
            "  partition {}: {} segments, {} records, tree size {}, root {}",
            p.partition,
            p.segments,
            p.records,
            p.tree_size,
            p.root.as_deref().unwrap_or("-")
        )?;
    }
    for f in &r.failures {
        writeln!(out, "FAIL {f}")?;
    }
    for w in &r.warnings {
        writeln!(out, "warning: {w}")?;
    }
    if r.signatures_checked {
        writeln!(
            out,
            "signatures: checked with {}",
            args.pubkey
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )?;
    } else {
        writeln!(
            out,
            "signatures: NOT checked (no --pubkey): checkpoints are only checked against the records, \
             so someone who can rewrite the whole archive could go unnoticed"
        )?;
    }
    if r.consistency_checked {
        writeln!(out, "consistency: checked against the saved checkpoint")?;
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    if r.ok {
        writeln!(
            out,
            "INTACT: {} records in {} segments, {} bytes, verified in {:.2} s ({:.1} MB/s)",
            r.records,
            r.segments,
            r.bytes,
            secs,
            r.bytes as f64 / secs / 1e6
        )
    } else {
        writeln!(
            out,
            "FAILED: {} integrity failure{} ({} records in {} segments checked)",
            r.failures.len(),
            if r.failures.len() == 1 { "" } else { "s" },
            r.records,
            r.segments
        )
    }
}
