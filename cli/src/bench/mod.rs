//! `provenant bench`: every headline figure next to its baseline, measured in the same run.
//!
//! Each measurement runs ours and the baseline interleaved, round after round, and reports the
//! medians and `ratio = ours / baseline` (BENCHMARKS.md explains each side). These machines are
//! shared and noisy: read the ratios. `--quick` uses small sizes and one measured round, for a
//! CI smoke run under a minute; the full run is what BENCHMARKS.md quotes.
//!
//! Invariant: a figure is only printed when the work behind it was checked (every processed
//! event reached the ledger, verify said intact, the index held every event); a failed check
//! is an error, not a number.

mod emit;
mod lineage;
mod processor;
mod redact;
mod verify;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Small sizes and one measured round each: finishes in about a minute (CI smoke use).
    #[arg(long)]
    quick: bool,
    /// Print one JSON object (keys: the measurement names) instead of tables.
    #[arg(long)]
    json: bool,
    /// Run only these measurements (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Key>,
    /// Measured rounds per measurement [default: 1 with --quick, else 3].
    #[arg(long)]
    rounds: Option<usize>,
    /// Events per processor round [default: 10,000 with --quick, else 50,000].
    #[arg(long)]
    events: Option<usize>,
    /// Partition counts for the processor on the embedded log; the first is the headline,
    /// the others form the scaling table [default: 4, full run 4,1,2].
    #[arg(long, value_delimiter = ',')]
    partitions: Vec<u32>,
    /// Events in the lineage index [default: 10,000 with --quick, else 1,000,000].
    #[arg(long)]
    lineage_events: Option<u64>,
    /// Ledger records in the archive that verify reads [default: 20,000 with --quick, else
    /// 200,000].
    #[arg(long)]
    archive_records: Option<usize>,
}

/// The measurements, by their JSON key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum Key {
    ProcessorVsPassthrough,
    EmitVsRawProducer,
    VerifyVsSha256sum,
    RedactVsVrl,
    LineageQueryP99Ms,
}

impl Key {
    const ALL: [Key; 5] = [
        Key::ProcessorVsPassthrough,
        Key::EmitVsRawProducer,
        Key::VerifyVsSha256sum,
        Key::RedactVsVrl,
        Key::LineageQueryP99Ms,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::ProcessorVsPassthrough => "processor_vs_passthrough",
            Key::EmitVsRawProducer => "emit_vs_raw_producer",
            Key::VerifyVsSha256sum => "verify_vs_sha256sum",
            Key::RedactVsVrl => "redact_vs_vrl",
            Key::LineageQueryP99Ms => "lineage_query_p99_ms",
        }
    }
}

/// Sizes of this run.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    pub(crate) events: usize,
    pub(crate) partitions: Vec<u32>,
    pub(crate) lineage_events: u64,
    pub(crate) archive_records: usize,
}

/// One figure and its baseline. `ratio = ours / baseline`; `detail` says what was measured.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Comparison {
    pub(crate) ours: f64,
    pub(crate) baseline: f64,
    pub(crate) ratio: f64,
    pub(crate) unit: &'static str,
    #[serde(flatten)]
    pub(crate) detail: serde_json::Map<String, serde_json::Value>,
}

impl Comparison {
    pub(crate) fn new(ours: f64, baseline: f64, unit: &'static str) -> Self {
        Self {
            ours,
            baseline,
            ratio: if baseline == 0.0 {
                0.0
            } else {
                ours / baseline
            },
            unit,
            detail: serde_json::Map::new(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.detail.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
        self
    }
}

/// The median of `v` (the upper one of an even count); 0 when empty.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat; 0 elsewhere.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Progress on stderr (the JSON or the tables go to stdout).
pub(crate) fn progress(msg: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("bench: {msg}");
    }
}

pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode> {
    let quick = args.quick;
    let plan = Plan {
        quick,
        rounds: args.rounds.unwrap_or(if quick { 1 } else { 3 }).max(1),
        events: args.events.unwrap_or(if quick { 10_000 } else { 50_000 }),
        partitions: if args.partitions.is_empty() {
            if quick { vec![4] } else { vec![4, 1, 2] }
        } else {
            args.partitions.clone()
        },
        lineage_events: args
            .lineage_events
            .unwrap_or(if quick { 10_000 } else { 1_000_000 }),
        archive_records: args
            .archive_records
            .unwrap_or(if quick { 20_000 } else { 200_000 }),
    };
    let keys: Vec<Key> = if args.only.is_empty() {
        Key::ALL.to_vec()
    } else {
        Key::ALL
            .into_iter()
            .filter(|k| args.only.contains(k))
            .collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = serde_json::Map::new();
    out.insert("machine".into(), machine());
    out.insert("quick".into(), quick.into());
    out.insert("rounds".into(), plan.rounds.into());
    let mut notes = serde_json::Map::new();
    for key in keys {
        progress(&format!("{} …", key.name()));
        let started = std::time::Instant::now();
        let result = match key {
            Key::ProcessorVsPassthrough => rt.block_on(processor::measure(&plan)).map(Some),
            Key::EmitVsRawProducer => rt.block_on(emit::measure(&plan)).map(Some),
            Key::VerifyVsSha256sum => rt.block_on(verify::measure(&plan)).map(Some),
            Key::RedactVsVrl => redact::measure(&plan),
            Key::LineageQueryP99Ms => rt.block_on(lineage::measure(&plan)).map(Some),
        };
        let value = match result {
            Ok(Some(c)) => serde_json::to_value(c)?,
            Ok(None) => {
                if key == Key::RedactVsVrl {
                    notes.insert(key.name().into(), redact::NOTE.into());
                }
                serde_json::Value::Null
            }
            Err(e) => return Err(e.context(format!("measuring {}", key.name()))),
        };
        progress(&format!(
            "{} done in {:.1}s",
            key.name(),
            started.elapsed().as_secs_f64()
        ));
        out.insert(key.name().into(), value);
    }
    out.insert("notes".into(), notes.into());
    let out = serde_json::Value::Object(out);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_tables(&out);
    }
    Ok(ExitCode::SUCCESS)
}

fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned));
    serde_json::json!({
        "cpus": cpus,
        "load_average_1m_at_start": load,
        "provenant": crate::version::SHORT,
        "commit": env!("PROVENANT_GIT_COMMIT"),
    })
}

fn print_tables(out: &serde_json::Value) {
    let color = std::io::stdout().is_terminal();
    let bold = |s: &str| {
        if color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    };
    println!(
        "{}",
        bold("provenant bench — ours next to its baseline, same run (ratio = ours / baseline)")
    );
    println!(
        "{:<26} {:>14} {:>14} {:>8}  unit",
        "measurement", "ours", "baseline", "ratio"
    );
    for key in Key::ALL {
        let v = out.get(key.name()).unwrap_or(&serde_json::Value::Null);
        if v.is_null() {
            let note = out
                .get("notes")
                .and_then(|n| n.get(key.name()))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("not run");
            println!("{:<26} {note}", key.name());
            continue;
        }
        let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        println!(
            "{:<26} {:>14.2} {:>14.2} {:>8.3}  {}",
            key.name(),
            f("ours"),
            f("baseline"),
            f("ratio"),
            v.get("unit")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
        );
        if let Some(obj) = v.as_object() {
            for (k, d) in obj {
                if !matches!(k.as_str(), "ours" | "baseline" | "ratio" | "unit") {
                    println!("    {k}: {d}");
                }
            }
        }
    }
}
