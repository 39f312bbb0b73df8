//! `verify_vs_sha256sum`: `provenant verify`'s check (every segment digest, record hash, chain
//! link, seq, Merkle root and checkpoint signature; [`provenant_archive::verify`], one task per
//! core) against `sha256sum` over the very same segment files, in MB/s of archive as stored
//! (compressed). Each archive is written first by the real archive sink: 4 partitions,
//! segments of 10,000 records, through [`build_archive_of`].
//!
//! Two corpora, side by side in the same run (rounds interleaved: verify and `sha256sum` of
//! one corpus, then of the other):
//! * **realistic** (the headline `ours`/`baseline`/`ratio`): build, artifact, deploy and runtime
//!   events as CI/CD producers send them, with random UUIDv4 ids, random artifact digests and
//!   commit SHAs, advancing timestamps, redacted actors and the processor's links resolved with
//!   their targets' hashes ([`Corpus::Realistic`], fixed seed);
//! * **template** (`template_corpus`): deploy events from one template (sequential ids, one
//!   timestamp, 256 distinct digests), the corpus of the earlier runs.
//!
//! Why the realistic corpus is the headline: the target is in MB of archive *as stored*, while
//! verify's work is per record (the record hash covers its canonical bytes, ~0.8–1.2 KB). The
//! template records compress to ~64 bytes because they repeat each other, so every stored byte
//! stands for ~12 canonical bytes to hash; real events carry random identifiers and digests
//! that do not compress away (~160 bytes per record stored, ~7 canonical bytes per stored byte).
//! The template figure is kept next to it, for comparison with earlier runs. Both report bytes
//! stored and canonical bytes per record.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use provenant_archive::conformance::test_key;
use provenant_archive::read::decode_segment;
use provenant_archive::testkit::{Corpus, build_archive_of, segment_files};
use provenant_archive::verify::{VerifyOptions, verify};
use provenant_archive::{ArchiveStore, S3Options};

use super::{Comparison, Plan, median, progress};

/// The seed of the realistic corpus (fixed, so every run verifies the same records).
const REALISTIC_SEED: u64 = 0x5EED_2026_1123;

/// One corpus's archive on disk and its sizes.
struct Archive {
    name: &'static str,
    store: ArchiveStore,
    files: Vec<PathBuf>,
    bytes: u64,
    records: u64,
    canonical_bytes: u64,
    ours: Vec<f64>,
    base: Vec<f64>,
}

async fn build(
    dir: &std::path::Path,
    name: &'static str,
    corpus: Corpus,
    records: usize,
) -> Result<Archive> {
    let root = dir.join(name);
    let store = ArchiveStore::open(&format!("file://{}", root.display()), &S3Options::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    progress(&format!(
        "verify: writing the {name} archive of {records} records"
    ));
    build_archive_of(store.clone(), test_key(), corpus, records, 4, 10_000)
        .await
        .map_err(anyhow::Error::msg)?;
    let files = segment_files(&root).map_err(anyhow::Error::msg)?;
    let (mut bytes, mut count, mut canonical) = (0u64, 0u64, 0u64);
    for f in &files {
        let data = std::fs::read(f)?;
        bytes += data.len() as u64;
        let seg = decode_segment(&data).map_err(anyhow::Error::msg)?;
        for r in &seg.records {
            count += 1;
            canonical += r.canonical_bytes()?.len() as u64;
        }
    }
    Ok(Archive {
        name,
        store,
        files,
        bytes,
        records: count,
        canonical_bytes: canonical,
        ours: Vec::new(),
        base: Vec::new(),
    })
}

/// One round on one archive: verify, then `sha256sum` over the same files. Returns the MB/s of
/// each.
async fn round(a: &Archive, opts: &VerifyOptions) -> Result<(f64, f64)> {
    let t = Instant::now();
    let report = verify(&a.store, opts)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let d_ours = t.elapsed().as_secs_f64();
    if !report.ok || report.records < a.records {
        bail!(
            "verify did not pass the {} benchmark archive: {:?}",
            a.name,
            report.failures
        );
    }
    let t = Instant::now();
    let args = a.files.clone();
    let st = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sha256sum")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await?
    .context("running sha256sum (coreutils)")?;
    let d_base = t.elapsed().as_secs_f64();
    if !st.success() {
        bail!("sha256sum failed: {st}");
    }
    Ok((a.bytes as f64 / d_ours / 1e6, a.bytes as f64 / d_base / 1e6))
}

/// The figures of one corpus: MB/s medians, ratio and sizes.
fn figures(a: &Archive) -> Comparison {
    let o = median(a.ours.clone());
    let per_record = |v: u64| (v as f64 / a.records.max(1) as f64 * 10.0).round() / 10.0;
    Comparison::new(o, median(a.base.clone()), "MB/s")
        .with("corpus", a.name)
        .with("records", a.records)
        .with("segments", a.files.len())
        .with("bytes_as_stored", a.bytes)
        .with("bytes_stored_per_record", per_record(a.bytes))
        .with("canonical_bytes_per_record", per_record(a.canonical_bytes))
        .with(
            "records_per_second",
            (o * 1e6 / a.bytes as f64 * a.records as f64).round(),
        )
}

pub(crate) async fn measure(plan: &Plan) -> Result<Comparison> {
    let dir = tempfile::tempdir()?;
    let mut archives = [
        build(
            dir.path(),
            "realistic",
            Corpus::Realistic {
                seed: REALISTIC_SEED,
            },
            plan.archive_records,
        )
        .await?,
        build(
            dir.path(),
            "template",
            Corpus::Template,
            plan.archive_records,
        )
        .await?,
    ];
    let opts = VerifyOptions {
        pubkey: Some(test_key().verifier()),
        ..VerifyOptions::default()
    };
    // Round 0 warms the page cache for both sides and is not counted.
    for r in 0..=plan.rounds {
        for a in &mut archives {
            let (ours, base) = round(a, &opts).await?;
            if r > 0 {
                a.ours.push(ours);
                a.base.push(base);
                progress(&format!(
                    "verify: round {r}/{} {}: verify {ours:.1} MB/s, sha256sum {base:.1} MB/s",
                    plan.rounds, a.name
                ));
            }
        }
    }
    let [realistic, template] = &archives;
    Ok(figures(realistic)
        .with("template_corpus", figures(template))
        .with(
            "threads",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ))
}
