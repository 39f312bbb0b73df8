//! `provenant archive dump|keygen`, `provenant prove` and `provenant verify-proof`: tools over
//! the cold archive (`provenant_archive`). The sink itself runs inside `up` / `sink archive`.
//!
//! Exit status of every command here: 0 success, 1 the thing asked about does not hold (no
//! such event; a proof that does not verify), 2 a usage or I/O error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use provenant_archive::proof::{InclusionProof, ProveError, prove, verify_proof};
use provenant_archive::read::for_each_record;
use provenant_archive::{ArchiveStore, S3Options, VerifierKey, load_or_create_key};
use provenant_schemas::canonical::record_json;

const EXIT_NO: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// S3 settings shared by the archive commands (credentials: AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY in the environment).
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// S3 endpoint for S3-compatible servers (e.g. http://127.0.0.1:8333).
    #[arg(long, value_name = "URL", env = "PROVENANT_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, value_name = "REGION", env = "PROVENANT_S3_REGION")]
    s3_region: Option<String>,
    /// Path-style S3 requests (most S3-compatible servers want this).
    #[arg(long)]
    s3_path_style: bool,
    /// Allow an http:// S3 endpoint.
    #[arg(long)]
    s3_allow_http: bool,
}

impl StoreArgs {
    pub(crate) fn s3_options(&self) -> S3Options {
        let http = self
            .s3_endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            path_style: self.s3_path_style,
            allow_http: self.s3_allow_http || http,
            ..S3Options::default()
        }
    }
}

/// `provenant archive …`.
#[derive(Debug, Args)]
pub(crate) struct ArchiveArgs {
    #[command(subcommand)]
    command: ArchiveCommand,
}

#[derive(Debug, Subcommand)]
enum ArchiveCommand {
    /// Print an archive's records as NDJSON, one record's canonical JSON form per line, in
    /// partition and seq order (records are decoded, not verified: use `provenant verify`).
    Dump(DumpArgs),
    /// Create the archive signing key in DIR (archive.key, mode 0600, and archive.pub), or
    /// print the public key of the one already there.
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// The archive: a directory, file://PATH or s3://BUCKET/PREFIX.
    #[arg(value_name = "ARCHIVE")]
    archive: String,
    /// Only this partition.
    #[arg(long, value_name = "P")]
    partition: Option<u32>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Directory of the key files.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Key name (written in every checkpoint signature line).
    #[arg(long, default_value = provenant_archive::note::DEFAULT_KEY_NAME)]
    name: String,
}

/// `provenant prove EVENT_ID --archive ARCHIVE`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints JSON: the record (its canonical JSON form), its RFC 6962 audit path and the newest signed
checkpoint of its partition. `provenant verify-proof FILE --pubkey archive.pub` checks it
without the archive. Exit status: 0 proved, 1 no such event, 2 usage or I/O error.

Example:
  provenant prove 0190b6f2-3c4d-7e8f --archive /var/lib/provenant/archive > proof.json
  provenant verify-proof proof.json --pubkey archive.pub")]
pub(crate) struct ProveArgs {
    /// The event's id (CloudEvents `id`).
    #[arg(value_name = "EVENT_ID")]
    event_id: String,
    /// The archive: a directory, file://PATH or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "ARCHIVE")]
    archive: String,
    /// Only the event with this `source` (ids are unique per source).
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// `provenant verify-proof FILE --pubkey K`.
#[derive(Debug, Args)]
pub(crate) struct VerifyProofArgs {
    /// A proof printed by `provenant prove` (`-` for standard input).
    #[arg(value_name = "FILE|-")]
    file: String,
    /// The archive's public key (archive.pub).
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn usage_error(cmd: &str, e: &anyhow::Error) -> ExitCode {
    eprintln!("provenant {cmd}: {e:#}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs `provenant archive …`.
pub(crate) fn run(args: &ArchiveArgs) -> ExitCode {
    let r = match &args.command {
        ArchiveCommand::Dump(a) => dump(a),
        ArchiveCommand::Keygen(a) => keygen(a),
    };
    r.unwrap_or_else(|e| usage_error("archive", &e))
}

fn dump(args: &DumpArgs) -> anyhow::Result<ExitCode> {
    let store = ArchiveStore::open(&args.archive, &args.store.s3_options())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut closed = false;
    let r = runtime()?.block_on(for_each_record(&store, args.partition, |_, _, r| {
        let mut line = serde_json::to_vec(&record_json(&r)).unwrap_or_default();
        line.push(b'\n');
        out.write_all(&line).map_err(|e| {
            closed = e.kind() == std::io::ErrorKind::BrokenPipe;
            provenant_archive::ArchiveError::Config(format!("writing to standard output: {e}"))
        })
    }));
    // A reader that stops early (`| head`) is not an error.
    if closed {
        return Ok(ExitCode::SUCCESS);
    }
    r?;
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing to standard output")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let (key, public) = load_or_create_key(&args.dir, &args.name)?;
    println!(
        "public key {}: {}",
        public.display(),
        key.verifier().to_text().trim_end()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `provenant prove`.
pub(crate) fn run_prove(args: &ProveArgs) -> ExitCode {
    let inner = || -> anyhow::Result<ExitCode> {
        let store = ArchiveStore::open(&args.archive, &args.store.s3_options())?;
        match runtime()?.block_on(prove(&store, &args.event_id, args.source.as_deref())) {
            Ok(proofs) => {
                let text = match proofs.as_slice() {
                    [one] => serde_json::to_string_pretty(one)?,
                    many => {
                        eprintln!(
                            "provenant prove: {} events have id {:?} (different sources); printing all (use --source)",
                            many.len(),
                            args.event_id
                        );
                        serde_json::to_string_pretty(many)?
                    }
                };
                println!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            Err(ProveError::NotFound(id)) => {
                eprintln!(
                    "provenant prove: no event with id {id:?} in {}",
                    args.archive
                );
                Ok(ExitCode::from(EXIT_NO))
            }
            Err(e) => Err(e.into()),
        }
    };
    inner().unwrap_or_else(|e| usage_error("prove", &e))
}

/// Runs `provenant verify-proof`.
pub(crate) fn run_verify_proof(args: &VerifyProofArgs) -> ExitCode {
    let inner = || -> anyhow::Result<ExitCode> {
        let key = VerifierKey::load(&args.pubkey)?;
        let text = if args.file == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file))?
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).context("the proof is not JSON")?;
        let proofs: Vec<InclusionProof> = if value.is_array() {
            serde_json::from_value(value)
        } else {
            serde_json::from_value(value).map(|p| vec![p])
        }
        .context("not a proof printed by `provenant prove`")?;
        let mut all_ok = true;
        for p in &proofs {
            match verify_proof(p, Some(&key)) {
                Ok(s) => println!(
                    "OK: record seq {} (hash {}) is in {} at tree size {}, root {}, signed by {}",
                    s.seq,
                    s.record_hash,
                    s.origin,
                    s.tree_size,
                    s.root,
                    key.name()
                ),
                Err(e) => {
                    all_ok = false;
                    println!(
                        "FAILED: record seq {} of partition {}: {e}",
                        p.seq, p.partition
                    );
                }
            }
        }
        Ok(if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_NO)
        })
    };
    inner().unwrap_or_else(|e| usage_error("verify-proof", &e))
}
