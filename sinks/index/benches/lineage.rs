//! Lineage query latency on SQLite and PostgreSQL, against a primary-key lookup of one event
//! on the same database in the same run (the baseline).
//!
//! ```text
//! cargo bench -p provenant-index --bench lineage                         # 10k and 100k events
//! nice -n 10 cargo bench -p provenant-index --bench lineage -- --events 10000,100000,1000000
//! options: --events N[,N…]  --backend sqlite|postgres|both  --queries Q  --depth D
//! PostgreSQL: PROVENANT_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test);
//! each size runs in a schema of its own, dropped at the end.
//! ```
//!
//! The graph is the shape of a real delivery pipeline: per commit a build, an artifact (1% of
//! them before their build: pending links, then link resolutions), a staging and a production
//! deploy (each replacing the previous deploy of its service there), three running instances,
//! and an approval of every fifth production deploy; 200 services; 8 partitions. Records are
//! real chained ledger records ([`provenant_index::story`]), applied through
//! [`Index::apply`] in batches of 10,000 records per partition (one transaction each), to both
//! backends from the same stream.
//!
//! The workload is [`provenant_index::workload`] (also used by `provenant bench`).
//!
//! Queries: walk up from a random running instance and down from a random commit, at depth D
//! (6); the baseline is `event_at` (primary key) of a random record. Each latency is one call
//! through the trait, measured on the client; Q calls of each kind after 50 warm-up calls.
//! Last, what the provenance SLI gauges of `provenant sink index`, `serve` and `up` cost:
//! `coverage()` + `missing_links()` (every refresh, 15 s) and `stats()` (the whole-index
//! counts, read less often the longer they take): 20 runs of each after 2 warm-up.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use provenant_index::workload::{Catalog, Query, Rng, Workload, percentile_ms, time_queries};
use provenant_index::{Index, PostgresIndex, SqliteIndex};

const PARTITIONS: u32 = 8;
const BATCH: usize = 10_000;

struct Args {
    sizes: Vec<u64>,
    sqlite: bool,
    postgres: bool,
    queries: usize,
    depth: u32,
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![10_000, 100_000],
        sqlite: true,
        postgres: true,
        queries: 1000,
        depth: 6,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--events" => {
                a.sizes = it
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|s| s.replace('_', "").parse().unwrap())
                    .collect();
            }
            "--backend" => match it.next().unwrap().as_str() {
                "sqlite" => a.postgres = false,
                "postgres" => a.sqlite = false,
                _ => {}
            },
            "--queries" => a.queries = it.next().unwrap().parse().unwrap(),
            "--depth" => a.depth = it.next().unwrap().parse().unwrap(),
            _ => {} // `--bench` from cargo, and anything else
        }
    }
    a
}

struct Backends {
    sqlite: Option<(SqliteIndex, tempfile::TempDir)>,
    postgres: Option<(PostgresIndex, String)>,
    sqlite_load: Duration,
    postgres_load: Duration,
}

/// Emits events until `events` are in the ledger, applying each batch to both backends.
async fn load(events: u64, b: &mut Backends) -> (Catalog, u64) {
    let mut w = Workload::new(PARTITIONS, BATCH);
    loop {
        let done = w.emitted() >= events;
        let batches = if done { w.finish() } else { w.step() }.unwrap();
        for batch in batches {
            if let Some((index, _)) = &b.sqlite {
                let t = Instant::now();
                index
                    .apply(batch.partition, &batch.records, &batch.state)
                    .await
                    .unwrap();
                b.sqlite_load += t.elapsed();
            }
            if let Some((index, _)) = &b.postgres {
                let t = Instant::now();
                index
                    .apply(batch.partition, &batch.records, &batch.state)
                    .await
                    .unwrap();
                b.postgres_load += t.elapsed();
            }
        }
        if done {
            return (w.catalog().clone(), w.emitted());
        }
    }
}

struct Row {
    backend: &'static str,
    events: u64,
    query: String,
    p50: f64,
    p99: f64,
    max: f64,
    nodes: f64,
}

async fn measure<I: Index>(
    index: &I,
    backend: &'static str,
    events: u64,
    cat: &Catalog,
    args: &Args,
    rows: &mut Vec<Row>,
) {
    let mut rng = Rng(42);
    for kind in [Query::EventAt, Query::UpFromInstance, Query::DownFromCommit] {
        let (times, nodes) = time_queries(index, cat, kind, args.queries, args.depth, &mut rng)
            .await
            .unwrap();
        rows.push(Row {
            backend,
            events,
            query: kind.label(args.depth),
            p50: percentile_ms(&times, 0.50),
            p99: percentile_ms(&times, 0.99),
            max: percentile_ms(&times, 1.0),
            nodes,
        });
    }
    // What the SLI gauges of a role cost (`provenant sink index`, `serve`, `up`): every
    // refresh (15 s) reads coverage() and missing_links(); the whole-index counts, stats(),
    // run less often the longer they take. Heavier calls, so fewer runs (after 2 warm-ups).
    let runs = args.queries.clamp(1, 20);
    for (what, counts) in [
        ("SLI refresh: coverage() + missing_links()", false),
        ("SLI counts: stats()", true),
    ] {
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs + 2 {
            let t = Instant::now();
            if counts {
                index.stats().await.unwrap();
            } else {
                index.coverage().await.unwrap();
                index.missing_links().await.unwrap();
            }
            if i >= 2 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        rows.push(Row {
            backend,
            events,
            query: what.to_owned(),
            p50: percentile_ms(&times, 0.50),
            p99: percentile_ms(&times, 0.99),
            max: percentile_ms(&times, 1.0),
            nodes: 0.0,
        });
    }
}

async fn admin() -> tokio_postgres::Client {
    let url = std::env::var("PROVENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn pg_url(schema: &str) -> String {
    let base = std::env::var("PROVENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let mut rows = Vec::new();
    let mut loads = Vec::new();
    for &events in &args.sizes {
        let sqlite = if args.sqlite {
            let dir = tempfile::tempdir().unwrap();
            let index = SqliteIndex::open(&dir.path().join("bench.db"))
                .await
                .unwrap();
            Some((index, dir))
        } else {
            None
        };
        let postgres = if args.postgres {
            let schema = format!("idx_bench_{}_{events}", std::process::id());
            admin()
                .await
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))
                .await
                .unwrap();
            Some((PostgresIndex::open(&pg_url(&schema)).await.unwrap(), schema))
        } else {
            None
        };
        let mut b = Backends {
            sqlite,
            postgres,
            sqlite_load: Duration::ZERO,
            postgres_load: Duration::ZERO,
        };
        let started = Instant::now();
        let (cat, emitted) = load(events, &mut b).await;
        eprintln!(
            "{events} events: generated and loaded in {:.1}s (sqlite {:.1}s, postgres {:.1}s)",
            started.elapsed().as_secs_f64(),
            b.sqlite_load.as_secs_f64(),
            b.postgres_load.as_secs_f64()
        );
        if let Some((index, dir)) = &b.sqlite {
            let size: u64 = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum();
            loads.push(("sqlite", emitted, b.sqlite_load, size));
            measure(index, "sqlite", emitted, &cat, &args, &mut rows).await;
            let stats = index.stats().await.unwrap();
            eprintln!("  sqlite: {stats:?}");
        }
        if let Some((index, schema)) = &b.postgres {
            let a = admin().await;
            a.batch_execute(&format!("SET search_path = {schema}; ANALYZE"))
                .await
                .unwrap();
            let size: i64 = a
                .query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
                    &[&schema],
                )
                .await
                .unwrap()
                .get(0);
            loads.push(("postgres", emitted, b.postgres_load, size as u64));
            measure(index, "postgres", emitted, &cat, &args, &mut rows).await;
            a.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
    }
    println!();
    println!("| backend | events | load (events/s) | size on disk |");
    println!("|---|---:|---:|---:|");
    for (backend, events, t, size) in &loads {
        println!(
            "| {backend} | {events} | {:.0} | {:.0} MB |",
            *events as f64 / t.as_secs_f64(),
            *size as f64 / 1e6
        );
    }
    println!();
    println!(
        "| backend | events | query | p50 ms | p99 ms | max ms | nodes/answer | p99 / baseline p99 |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    let mut baseline = 0.0;
    for r in &rows {
        if r.query.starts_with("baseline") {
            baseline = r.p99;
        }
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1}× |",
            r.backend,
            r.events,
            r.query,
            r.p50,
            r.p99,
            r.max,
            r.nodes,
            r.p99 / baseline
        );
    }
}
