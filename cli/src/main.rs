//! The `provenant` binary: one command with a subcommand per role or tool. `main` only parses
//! arguments, sets up logging and dispatches; each subcommand lives in its own module and the
//! work itself lives in the library crates.

// The binary talks to its user on stderr (errors, progress); libraries never print.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod archive;
mod bench;
mod demo;
mod dev_kafka;
mod emit;
mod metrics;
#[cfg(test)]
mod ops;
mod process;
mod query;
mod shutdown;
mod sinks;
mod up;
mod validate;
mod verify;
mod version;

/// mimalloc instead of the system allocator: the processor allocates and frees many small
/// strings per event (decoded fields, redaction, link targets, encoded records) across worker
/// threads, and a profile of `provenant bench` showed about a third of its CPU time in glibc
/// malloc/free (BENCHMARKS.md, "Processor"). Every role and the bench's baselines run on it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Provenant — provenance you can prove.
///
/// Producers emit build, artifact, deploy, runtime and data events; a processor validates,
/// redacts, links and hash-chains them into a ledger; sinks archive and index the ledger; and
/// `verify` proves the archive was not tampered with.
#[derive(Debug, Parser)]
#[command(name = "provenant", version = version::SHORT, long_version = version::LONG)]
#[command(propagate_version = true, arg_required_else_help = true)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `info` or `provenant_log=debug`.
    #[arg(long, global = true, env = "PROVENANT_LOG", default_value = "warn")]
    log: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print version, commit and build time.
    Version,
    /// Run the whole pipeline in this process on a realistic story and show the proof.
    ///
    /// Starts ingest, processor, archive and index on the embedded log (a temporary
    /// directory unless --data-dir), emits a CI build, artifact, deploys, approval, running
    /// instances, a late build event, bad input and a data job, then prints the lineage tree,
    /// the redactions, coverage, the DLQ and the archive's verify result. Exit 0 when verify
    /// passes and the lineage reaches the commit.
    Demo(demo::DemoArgs),
    /// Run librdkafka's in-memory mock Kafka broker, for development and tests only.
    ///
    /// This is librdkafka's mock cluster (rdkafka::mocking), not Apache Kafka: it speaks the
    /// Kafka protocol on 127.0.0.1, keeps everything in memory only (all data is lost when it
    /// stops), and each partition keeps at most about 5 MiB or 100,000 message sets: older
    /// data is dropped silently, like retention. No transactions, no admin CreateTopics.
    /// It creates prov.raw, prov.ledger and prov.dlq (plus any --topic), prints
    /// `bootstrap.servers=127.0.0.1:PORT` as its first stdout line, accepts
    /// `create-topic NAME PARTITIONS` lines on stdin, and stops on SIGTERM or Ctrl-C.
    DevKafka(dev_kafka::DevKafkaArgs),
    /// Send a build, artifact, deploy, runtime, data or approval event (from CI or a shell).
    ///
    /// The event is validated first: an invalid one is not sent (exit 1). It goes to a
    /// Provenant HTTP endpoint (--endpoint) or straight to Kafka (--brokers), written to
    /// prov.raw as binary-mode CloudEvents. Exit 3 when the destination stayed unreachable.
    Emit(Box<emit::EmitArgs>),
    /// Run the processor role: prov.raw → validate, redact, link, chain → prov.ledger (+ prov.dlq).
    ///
    /// Exactly once and crash-safe (the ledger-fenced protocol): run as many as you like in
    /// one consumer group; each raw partition has one writer at a time. Serves /metrics and
    /// /healthz on --http.
    Process(process::ProcessArgs),
    /// Run a ledger sink: the write-once archive or the lineage index.
    #[command(subcommand)]
    Sink(sinks::SinkCommand),
    /// Serve the query API over an index and, with Kafka, HTTP ingest: the front door at scale.
    ///
    /// Queries (lineage, events, deployments, rollback, coverage) over the index; with
    /// --brokers or a [kafka] table in --config also `POST /v1/events` and `POST
    /// /api/v1/lineage` into prov.raw. Stateless: run as many as you like. Serves /metrics
    /// (with the coverage SLI, recomputed every minute), /healthz and /version.
    Serve(query::ServeArgs),
    /// Ask the index: lineage, deployments, rollback target, coverage, one event.
    Query(query::QueryArgs),
    /// Run the pipeline in one process: ingest, processor, archive and index sinks, queries.
    ///
    /// Over the embedded log in DATA_DIR by default, or over Kafka with --brokers. Prints
    /// where everything is; stops cleanly on Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Check events (CloudEvents, CDEvents, OpenLineage) from a file or stdin; exit 1 if any is invalid.
    Validate(validate::ValidateArgs),
    /// Check a cold archive offline: segment digests, record hashes, the chain, gaps, Merkle
    /// roots and (with --pubkey) checkpoint signatures; exit 1 on any integrity failure.
    Verify(verify::VerifyArgs),
    /// Tools over a cold archive: dump its records as NDJSON, create its signing key.
    Archive(archive::ArchiveArgs),
    /// Print an inclusion proof (record, Merkle audit path, signed checkpoint) of an event in
    /// an archive, as JSON that `verify-proof` checks without the archive.
    Prove(archive::ProveArgs),
    /// Check an inclusion proof printed by `prove` against the archive's public key.
    VerifyProof(archive::VerifyProofArgs),
    /// Measure each headline figure next to its baseline in the same run (BENCHMARKS.md).
    ///
    /// Processor vs a consume→produce pass-through, emit vs raw rdkafka, verify vs sha256sum,
    /// redaction vs VRL (with the `vrl-bench` feature), lineage p99 over 1M events. Medians of
    /// interleaved rounds; --quick finishes in about a minute.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match cli.command {
        Command::Version => {
            println!("provenant {}", version::LONG);
            ExitCode::SUCCESS
        }
        Command::Demo(args) => report(demo::run(&args)),
        Command::DevKafka(args) => dev_kafka::run(&args),
        Command::Up(args) => report(up::run(&args)),
        Command::Process(args) => report(process::run(&args)),
        Command::Sink(cmd) => report(sinks::run_sink(&cmd)),
        Command::Serve(args) => report(query::run_serve(&args)),
        Command::Query(args) => report(query::run_query(&args)),
        Command::Emit(args) => report(emit::run(*args)),
        Command::Validate(args) => validate::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Archive(args) => archive::run(&args),
        Command::Prove(args) => archive::run_prove(&args),
        Command::VerifyProof(args) => archive::run_verify_proof(&args),
        Command::Bench(args) => report(bench::run(&args)),
    }
}

/// Exit 2 with the error chain on stderr for a failed command.
fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Structured logs to stderr. Log lines never carry event values (DESIGN.md: no secrets or
/// PII in logs); they carry ids, offsets and counts.
fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
