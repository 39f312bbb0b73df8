//! Archive benchmarks, each with its baseline measured in the same run (not a timed test).
//!
//! `cargo bench -p provenant-archive --bench archive`
//!
//! 1. **verify vs sha256sum.** Builds an archive of `ARCHIVE_BENCH_RECORDS` (default 200,000)
//!    records of the template corpus (deploy events; `ARCHIVE_BENCH_CORPUS=realistic` for the
//!    realistic one, see `testkit::Corpus`; `provenant bench` runs both), 4 partitions,
//!    segments of 10,000 records, on the local disk; then, in
//!    `ARCHIVE_BENCH_ROUNDS` (default 5) interleaved rounds, times `provenant_archive::verify`
//!    (every check, signatures included, one task per core) and `sha256sum` over the very same
//!    segment files. MB/s = 10^6 bytes of segment files (as stored, compressed) per second.
//!    Reports medians and the ratio ours / sha256sum.
//! 2. **sink memory at 1, 16, 64 and 256 partitions** (`ARCHIVE_BENCH_MEM_PARTITIONS`, a
//!    comma-separated list). Writes `ARCHIVE_BENCH_MEM_RECORDS` (default 1,000) records per
//!    partition, round-robin in batches of 100, with rotation far away (so
//!    every partition has an open segment all along). Reports the peak of Rust heap bytes above
//!    the baseline (a counting allocator) and the peak RSS (VmHWM, reset through
//!    /proc/self/clear_refs before each run; it includes zstd's C allocations).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::indexing_slicing
)]
// The counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to the system
// allocator and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use provenant_archive::conformance::test_key;
use provenant_archive::testkit::{Corpus, LedgerGen, build_archive_of, segment_files};
use provenant_archive::verify::{VerifyOptions, verify};
use provenant_archive::{ArchiveConfig, ArchiveSink, ArchiveStore, S3Options};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let records = env_usize("ARCHIVE_BENCH_RECORDS", 200_000);
    let rounds = env_usize("ARCHIVE_BENCH_ROUNDS", 5);
    let mem_records = env_usize("ARCHIVE_BENCH_MEM_RECORDS", 1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // ---- 1. verify vs sha256sum (ARCHIVE_BENCH_RECORDS=0 skips it)
    if records > 0 {
        let root = dir.path().join("verify");
        let url = format!("file://{}", root.display());
        let store = ArchiveStore::open(&url, &S3Options::default()).unwrap();
        let t = Instant::now();
        let corpus = match std::env::var("ARCHIVE_BENCH_CORPUS").as_deref() {
            Ok("realistic") => Corpus::Realistic {
                seed: 0x5EED_2026_1123,
            },
            _ => Corpus::Template,
        };
        rt.block_on(build_archive_of(
            store.clone(),
            test_key(),
            corpus,
            records,
            4,
            10_000,
        ))
        .unwrap();
        let files = segment_files(&root).unwrap();
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        eprintln!(
            "built {records} records ({corpus:?}) in {} segments, {bytes} bytes, in {:.1?}",
            files.len(),
            t.elapsed()
        );
        let opts = VerifyOptions {
            pubkey: Some(test_key().verifier()),
            ..VerifyOptions::default()
        };
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            let t = Instant::now();
            let report = rt.block_on(verify(&store, &opts)).unwrap();
            let d_ours = t.elapsed();
            assert!(
                report.ok && report.records == records as u64,
                "{:?}",
                report.failures
            );
            let t = Instant::now();
            let st = std::process::Command::new("sha256sum")
                .args(&files)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            let d_base = t.elapsed();
            assert!(st.success());
            if round > 0 {
                ours.push(d_ours);
                base.push(d_base);
            }
            eprintln!(
                "round {round}{}: verify {d_ours:.2?}, sha256sum {d_base:.2?}",
                if round == 0 { " (warm-up)" } else { "" }
            );
        }
        let (o, b) = (median(ours), median(base));
        let mbs = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
        println!(
            "\nverify vs sha256sum: {records} records, {} segments, {bytes} bytes as stored, median of {rounds} rounds",
            files.len()
        );
        println!("| side | median time | MB/s | records/s |");
        println!("|---|---:|---:|---:|");
        println!(
            "| provenant verify (all checks, {} threads) | {o:.2?} | {:.1} | {:.0} |",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            mbs(o),
            records as f64 / o.as_secs_f64()
        );
        println!(
            "| sha256sum (same files) | {b:.2?} | {:.1} | {:.0} |",
            mbs(b),
            records as f64 / b.as_secs_f64()
        );
        println!(
            "| ratio verify / sha256sum (MB/s) | | {:.3}x | |",
            mbs(o) / mbs(b)
        );
    }

    // ---- 2. sink memory
    println!(
        "\nsink memory: {mem_records} records per partition, batches of 100, round-robin, no rotation"
    );
    println!("| partitions | peak Rust heap above baseline | peak RSS (VmHWM) |");
    println!("|---:|---:|---:|");
    let mem_partitions: Vec<u32> = std::env::var("ARCHIVE_BENCH_MEM_PARTITIONS")
        .unwrap_or_else(|_| "1,16,64,256".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    for parts in mem_partitions {
        let root = dir.path().join(format!("mem{parts}"));
        let store =
            ArchiveStore::open(&format!("file://{}", root.display()), &S3Options::default())
                .unwrap();
        let (heap, rss) = rt.block_on(async {
            let cfg = ArchiveConfig {
                archive_id: "bench".into(),
                rotate_records: 1_000_000,
                ..ArchiveConfig::default()
            };
            let mut gens: Vec<LedgerGen> = (0..parts).map(LedgerGen::new).collect();
            reset_hwm();
            let base_heap = CURRENT.load(Ordering::Relaxed);
            PEAK.store(base_heap, Ordering::Relaxed);
            let mut sink = ArchiveSink::with_store(&cfg, store, test_key()).unwrap();
            for p in 0..parts {
                sink.resume(p).await.unwrap();
            }
            let mut first = true;
            for _ in 0..mem_records.div_ceil(100) {
                for (p, g) in gens.iter_mut().enumerate() {
                    let mut batch = if first { vec![g.fence()] } else { Vec::new() };
                    batch.extend(g.records(100).unwrap());
                    sink.write(p as u32, &batch, &g.state()).await.unwrap();
                }
                first = false;
            }
            let heap = PEAK.load(Ordering::Relaxed).saturating_sub(base_heap);
            let rss = vm_hwm_kib();
            sink.close().await.unwrap();
            (heap, rss)
        });
        println!(
            "| {parts} | {:.2} MiB | {} |",
            heap as f64 / (1024.0 * 1024.0),
            rss.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
        );
    }
}
