//! `verify_vs_sha256sum`: `provenant verify`'s check (every segment digest, record hash, chain
//! link, seq, Merkle root and checkpoint signature; [`provenant_archive::verify`], one task per
//! core) against `sha256sum` over the very same segment files, in MB/s of archive as stored
//! (compressed). The archive is written first by the real archive sink: 4 partitions of
//! generated deploy-event records, segments of 10,000 records.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use provenant_archive::conformance::test_key;
use provenant_archive::testkit::{build_archive, segment_files};
use provenant_archive::verify::{VerifyOptions, verify};
use provenant_archive::{ArchiveStore, S3Options};

use super::{Comparison, Plan, median, progress};

pub(crate) async fn measure(plan: &Plan) -> Result<Comparison> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("archive");
    let store = ArchiveStore::open(&format!("file://{}", root.display()), &S3Options::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    progress(&format!(
        "verify: writing an archive of {} records",
        plan.archive_records
    ));
    build_archive(store.clone(), test_key(), plan.archive_records, 4, 10_000)
        .await
        .map_err(anyhow::Error::msg)?;
    let files = segment_files(&root).map_err(anyhow::Error::msg)?;
    let mut bytes = 0u64;
    for f in &files {
        bytes += std::fs::metadata(f)?.len();
    }
    let opts = VerifyOptions {
        pubkey: Some(test_key().verifier()),
        ..VerifyOptions::default()
    };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    // Round 0 warms the page cache for both sides and is not counted.
    for round in 0..=plan.rounds {
        let t = Instant::now();
        let report = verify(&store, &opts)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let d_ours = t.elapsed().as_secs_f64();
        if !report.ok || report.records < plan.archive_records as u64 {
            bail!(
                "verify did not pass the benchmark archive: {:?}",
                report.failures
            );
        }
        let t = Instant::now();
        let args = files.clone();
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
        if round > 0 {
            ours.push(bytes as f64 / d_ours / 1e6);
            base.push(bytes as f64 / d_base / 1e6);
            progress(&format!(
                "verify: round {round}/{}: verify {d_ours:.2}s, sha256sum {d_base:.2}s",
                plan.rounds
            ));
        }
    }
    let o = median(ours);
    Ok(Comparison::new(o, median(base), "MB/s")
        .with("records", plan.archive_records)
        .with("segments", files.len())
        .with("bytes_as_stored", bytes)
        .with(
            "records_per_second",
            (o * 1e6 / bytes as f64 * plan.archive_records as f64).round(),
        )
        .with(
            "threads",
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ))
}
