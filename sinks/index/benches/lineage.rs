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

use provenant_index::story::{self, Ledger, digest, sha};
use provenant_index::{Direction, Index, PostgresIndex, SqliteIndex};
use provenant_schemas::EntityKey;

const PARTITIONS: u32 = 8;
const BATCH: usize = 10_000;
const SERVICES: u64 = 200;

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

/// xorshift64*: a small deterministic generator (no rand dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the queries sample from.
#[derive(Default)]
struct Catalog {
    commits: u64,
    instances: Vec<String>,
    positions: Vec<(u32, i64)>,
}

struct Backends {
    sqlite: Option<(SqliteIndex, tempfile::TempDir)>,
    postgres: Option<(PostgresIndex, String)>,
    sqlite_load: Duration,
    postgres_load: Duration,
}

impl Backends {
    async fn apply(
        &mut self,
        p: u32,
        records: &[provenant_schemas::LedgerRecord],
        state: &provenant_schemas::validity::ReaderState,
    ) {
        if let Some((index, _)) = &self.sqlite {
            let t = Instant::now();
            index.apply(p, records, state).await.unwrap();
            self.sqlite_load += t.elapsed();
        }
        if let Some((index, _)) = &self.postgres {
            let t = Instant::now();
            index.apply(p, records, state).await.unwrap();
            self.postgres_load += t.elapsed();
        }
    }
}

async fn flush(ledger: &mut Ledger, b: &mut Backends, cat: &mut Catalog, all: bool) {
    for p in 0..ledger.partitions() {
        if all || ledger.records(p).len() >= BATCH {
            let (records, state) = ledger.take_records(p);
            if records.is_empty() {
                continue;
            }
            for r in records.iter().step_by(97) {
                cat.positions.push((p, r.seq));
            }
            b.apply(p, &records, &state).await;
        }
    }
}

/// Emits events until `events` are in the ledger, applying as it goes.
async fn load(events: u64, b: &mut Backends) -> (Catalog, u64) {
    let mut ledger = Ledger::new(PARTITIONS);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cat = Catalog::default();
    let mut emitted = 0u64;
    let mut last_deploy: Vec<[Option<String>; 2]> = vec![[None, None]; SERVICES as usize];
    let mut c = 0u64;
    while emitted < events {
        c += 1;
        let service = rng.below(SERVICES);
        let svc = format!("svc-{service}");
        let build_id = format!("github:acme/{svc}/{c}/1");
        let build = story::build(&format!("b-{c}"), &build_id, &sha(c));
        let art = story::artifact(
            &format!("a-{c}"),
            &digest(c),
            Some(&build_id),
            Some(&sha(c)),
        );
        if rng.below(100) == 0 {
            // Out of order: the artifact before its build.
            ledger.emit(art).unwrap();
            ledger.emit(build).unwrap();
        } else {
            ledger.emit(build).unwrap();
            ledger.emit(art).unwrap();
        }
        emitted += 2;
        for (e, env) in ["staging", "production"].into_iter().enumerate() {
            let deploy_id = format!("{svc}-{env}-{c}");
            let previous = last_deploy[service as usize][e].replace(deploy_id.clone());
            ledger
                .emit(story::deploy(
                    &format!("d-{env}-{c}"),
                    &deploy_id,
                    &digest(c),
                    &svc,
                    env,
                    c,
                    previous.as_deref(),
                ))
                .unwrap();
            emitted += 1;
            let instances = if env == "production" { 2 } else { 1 };
            for i in 0..instances {
                let instance = format!("{svc}-{env}-{c}-{i}");
                ledger
                    .emit(story::runtime(
                        &format!("r-{env}-{c}-{i}"),
                        &instance,
                        &svc,
                        env,
                        &deploy_id,
                        &digest(c),
                    ))
                    .unwrap();
                emitted += 1;
                if rng.below(50) == 0 {
                    cat.instances.push(format!("instance:{instance}"));
                }
            }
            if env == "production" && c.is_multiple_of(5) {
                ledger
                    .emit(story::approval(
                        &format!("ap-{c}"),
                        &format!("ap-{c}"),
                        &deploy_id,
                        env,
                    ))
                    .unwrap();
                emitted += 1;
            }
        }
        if c.is_multiple_of(500) {
            ledger.resolve_pending().unwrap();
        }
        flush(&mut ledger, b, &mut cat, false).await;
    }
    ledger.resolve_pending().unwrap();
    flush(&mut ledger, b, &mut cat, true).await;
    cat.commits = c;
    (cat, emitted)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
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
    let mut run = async |what: &str, kind: u8, runs: usize, warmup: usize| {
        let mut times = Vec::with_capacity(runs);
        let mut nodes = 0usize;
        for i in 0..runs + warmup {
            let t = Instant::now();
            let n = match kind {
                0 => {
                    let k = &cat.instances[rng.below(cat.instances.len() as u64) as usize];
                    let key = EntityKey::parse(k).unwrap();
                    index
                        .lineage(&key, Direction::Up, args.depth)
                        .await
                        .unwrap()
                        .nodes
                        .len()
                }
                1 => {
                    let key = EntityKey::Commit(sha(1 + rng.below(cat.commits)));
                    index
                        .lineage(&key, Direction::Down, args.depth)
                        .await
                        .unwrap()
                        .nodes
                        .len()
                }
                2 => {
                    let (p, s) = cat.positions[rng.below(cat.positions.len() as u64) as usize];
                    usize::from(index.event_at(p, s).await.unwrap().is_some())
                }
                3 => {
                    index.coverage().await.unwrap();
                    index.missing_links().await.unwrap();
                    0
                }
                _ => {
                    index.stats().await.unwrap();
                    0
                }
            };
            if i >= warmup {
                times.push(t.elapsed());
                nodes += n;
            }
        }
        times.sort();
        rows.push(Row {
            backend,
            events,
            query: what.to_owned(),
            p50: percentile(&times, 0.50),
            p99: percentile(&times, 0.99),
            max: percentile(&times, 1.0),
            nodes: nodes as f64 / runs as f64,
        });
    };
    let d = args.depth;
    let q = args.queries;
    run("baseline: event_at (primary key)", 2, q, 50).await;
    run(&format!("lineage up from instance, depth {d}"), 0, q, 50).await;
    run(&format!("lineage down from commit, depth {d}"), 1, q, 50).await;
    // What the SLI gauges of a role cost (`provenant sink index`, `serve`, `up`): every
    // refresh (15 s) reads coverage() and missing_links(); the whole-index counts, stats(),
    // run less often the longer they take. Heavier calls, so fewer runs.
    let runs = q.clamp(1, 20);
    run("SLI refresh: coverage() + missing_links()", 3, runs, 2).await;
    run("SLI counts: stats()", 4, runs, 2).await;
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
