//! The `provenant` binary: one command with a subcommand per role or tool. `main` only parses
//! arguments, sets up logging and dispatches; each subcommand lives in its own module and the
//! work itself lives in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod validate;
mod version;

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
    /// Check events (CloudEvents, CDEvents, OpenLineage) from a file or stdin; exit 1 if any is invalid.
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    match cli.command {
        Command::Version => {
            println!("provenant {}", version::LONG);
            ExitCode::SUCCESS
        }
        Command::Validate(args) => validate::run(&args),
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
        .try_init();
}
