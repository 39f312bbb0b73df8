#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(clippy::print_stderr)]
//! The sinks under `kill -9`, as real processes on `provenant dev-kafka` (16 partitions):
//! a producer appends raw events and one `provenant process` turns them into the ledger
//! throughout, while `provenant sink archive` (or `sink index`) is killed with SIGKILL at a
//! random moment (0.2–4 s) after it started writing, and restarted, `PROVENANT_CRASH_TRIALS`
//! times. Events flow during every kill (the producer goes on until the last one), so each
//! kill lands in the middle of the sink's batches and segments. Then the producer stops, and
//! once the processor has accounted for every raw record the last sink catches up and is
//! stopped cleanly (SIGTERM: open segments are closed), and then:
//!
//! * **archive** (a local directory; SeaweedFS over S3): `provenant verify --pubkey --json`
//!   passes; `provenant archive dump` of each partition is the ledger's valid records, seq
//!   contiguous from 0 and every hash equal, so nothing is missing or doubled; every segment
//!   has its manifest and checkpoint; and no object was ever rewritten or deleted: the
//!   SHA-256 of every object, taken after each kill, never changes.
//! * **index** (SQLite; PostgreSQL): each partition's stored reader state is the ledger's end
//!   state; every valid event is in the index exactly once, at its ledger position with its
//!   hash; the marker and resolution counts equal the ledger's; an instance's upstream
//!   lineage names exactly the deploys and events that started it.
//!
//! Sizes: `PROVENANT_CRASH_TRIALS` (default 3) kills per test and at least
//! `PROVENANT_CRASH_EVENTS` (default 5,000) events, paced over about 15 s a trial (more when
//! the trials take longer); `scripts/soak` runs 10 × 50,000. 16 partitions keep the raw and
//! ledger topics well under the mock broker's per-partition cap (TESTING.md). Each kill waits
//! out the group session (6 s) before the new sink gets its partitions.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::crash::{
    KAFKA_CONFIG, LedgerPartition, check, kill9, knob, read_ledger, settled, sigterm,
    spawn_producer, start_process,
};
use common::{Broker, free_port};
use provenant_archive::layout::{self, ObjectKind};
use provenant_archive::manifest::Manifest;
use provenant_archive::testkit::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, Seaweed};
use provenant_archive::{ArchiveStore, S3Options};
use provenant_index::{AnyIndex, Direction, Index};
use provenant_kafka::KafkaLog;
use provenant_schemas::EntityKey;
use provenant_schemas::ledger::RecordBody;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The `[kafka]` table of the sinks: a short group session, so a killed member's partitions
/// move to the restarted one within seconds.
const SINK_KAFKA: &str = "[kafka]\nsession_timeout_ms = 6000\nheartbeat_interval_ms = 1000\n";

/// How long the last sink may take to catch up (a hang detector, not a timing assertion).
const CATCH_UP: Duration = Duration::from_secs(300);

/// dev-kafka, a producer spreading the events over the trials, and one processor that runs
/// throughout.
struct Pipeline {
    broker: Broker,
    log: Arc<KafkaLog>,
    dir: tempfile::TempDir,
    process: Option<Child>,
    producing: Option<tokio::task::JoinHandle<u64>>,
    /// Set while the trials run: the producer goes on past its events until they end.
    more: Arc<AtomicBool>,
}

impl Pipeline {
    fn start(events: usize, spread: Duration) -> Pipeline {
        let broker = Broker::start(&["--partitions", "16"]);
        let log = Arc::new(broker.log());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("process.toml");
        std::fs::write(&config, KAFKA_CONFIG).unwrap();
        let process = start_process(&config, &broker.bootstrap);
        let more = Arc::new(AtomicBool::new(true));
        let producing = spawn_producer(log.clone(), events, spread, Some(more.clone()));
        Pipeline {
            broker,
            log,
            dir,
            process: Some(process),
            producing: Some(producing),
            more,
        }
    }

    /// Whether events are still being appended.
    fn producing(&self) -> bool {
        self.producing.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Stops the producer (once it produced its events), then waits for the processor to
    /// account for every raw record; the audit must hold. Returns the ledger as the validity
    /// rule reads it.
    async fn settle(&mut self) -> Vec<LedgerPartition> {
        self.more.store(false, Ordering::SeqCst);
        let valid = self.producing.take().unwrap().await.unwrap();
        let a = settled(self.log.as_ref(), Duration::from_secs(300)).await;
        check(&a, valid);
        let ledger = read_ledger(self.log.as_ref()).await;
        let events = ledger
            .iter()
            .flat_map(|p| &p.records)
            .filter(|r| matches!(r.body, RecordBody::Event(_)))
            .count();
        assert_eq!(events as u64, valid);
        ledger
    }

    fn stop_processor(&mut self) {
        if let Some(p) = self.process.take() {
            sigterm(p);
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            kill9(&mut p);
        }
    }
}

/// One sink under test: what it is configured with and what must hold afterwards.
trait Target {
    /// `archive` or `index`: the `provenant sink` subcommand and the metrics label.
    const WHICH: &'static str;
    /// Its table(s) of the sink's `--config` file.
    fn config(&self, dir: &Path) -> String;
    /// Called after each kill, before the restart.
    async fn after_kill(&mut self);
    /// Whether the sink holds everything of `ledger`.
    async fn caught_up(&mut self, ledger: &[LedgerPartition]) -> bool;
    /// The checks after the clean stop.
    async fn check(&mut self, ledger: &[LedgerPartition], dir: &Path);
}

/// Starts `provenant sink WHICH`, its log (warnings and errors) appended to `log`.
fn start_sink(which: &str, config: &Path, bootstrap: &str, port: u16, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["sink", which, "--brokers", bootstrap, "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(config)
        .env("PROVENANT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start provenant sink")
}

/// The sink's `provenant_sink_records_total` on its /metrics (0 until it serves).
async fn records_written(port: u16, which: &str) -> u64 {
    let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0;
    };
    let body = resp.text().await.unwrap_or_default();
    let prefix = format!("provenant_sink_records_total{{sink=\"{which}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn assert_running(sink: &mut Child, when: &str) {
    if let Some(status) = sink.try_wait().unwrap() {
        panic!("the sink stopped by itself {when}: {status}");
    }
}

/// Runs the trials against `target` and its checks.
async fn trials<T: Target>(mut target: T) {
    let trials = knob("PROVENANT_CRASH_TRIALS", 3);
    let events = knob("PROVENANT_CRASH_EVENTS", 5_000);
    let started = Instant::now();
    let mut pipe = Pipeline::start(events, Duration::from_secs(trials as u64 * 15));
    let config = pipe.dir.path().join("sink.toml");
    std::fs::write(
        &config,
        format!("{SINK_KAFKA}{}", target.config(pipe.dir.path())),
    )
    .unwrap();
    let port = free_port();
    let log = pipe.dir.path().join("sink.log");
    let start = || start_sink(T::WHICH, &config, &pipe.broker.bootstrap, port, &log);
    let mut rng = rand::rng();
    let mut sink = start();
    let mut kills = Vec::new();
    for t in 0..trials {
        // Kill only once this life of the sink is writing, at a random moment after.
        let deadline = Instant::now() + Duration::from_secs(120);
        while records_written(port, T::WHICH).await == 0 {
            assert_running(&mut sink, &format!("before kill {t}"));
            assert!(Instant::now() < deadline, "the sink wrote nothing in 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..4_000))).await;
        assert_running(&mut sink, &format!("before kill {t}"));
        let written = records_written(port, T::WHICH).await;
        assert!(pipe.producing(), "events stopped before kill {t}");
        kill9(&mut sink);
        kills.push(written);
        target.after_kill().await;
        sink = start();
    }
    let ledger = pipe.settle().await;
    let deadline = Instant::now() + CATCH_UP;
    while !target.caught_up(&ledger).await {
        assert_running(&mut sink, "while catching up");
        assert!(Instant::now() < deadline, "the sink did not catch up");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    sigterm(sink);
    pipe.stop_processor();
    target.check(&ledger, pipe.dir.path()).await;
    let records: usize = ledger.iter().map(|p| p.records.len()).sum();
    let valid = ledger
        .iter()
        .flat_map(|p| &p.records)
        .filter(|r| matches!(r.body, RecordBody::Event(_)))
        .count();
    let log = std::fs::read_to_string(&log).unwrap();
    let completed = match T::WHICH {
        "archive" => format!(
            "; segments a kill left incomplete, completed on restart: {}",
            log.matches("left incomplete by a crash").count()
        ),
        _ => String::new(),
    };
    eprintln!(
        "{} sink: {trials} kills while events flowed (ledger records handed to each killed \
         life: {kills:?}{completed}), {valid} events, {records} ledger records, checks \
         passed, {:.0?}",
        T::WHICH,
        started.elapsed()
    );
}

// ---- the archive -------------------------------------------------------------------------

/// Where the archive lives and how the CLI reaches it.
struct ArchiveTarget {
    url: String,
    /// The `[archive.s3]` table, for S3.
    s3_table: String,
    /// `verify` / `archive dump` arguments and environment for S3.
    cli_args: Vec<String>,
    cli_env: Vec<(&'static str, &'static str)>,
    store: ArchiveStore,
    /// Every object seen so far and the SHA-256 of its bytes.
    seen: BTreeMap<String, [u8; 32]>,
    _weed: Option<Seaweed>,
}

impl ArchiveTarget {
    fn local(dir: &Path) -> ArchiveTarget {
        let url = dir.join("archive").display().to_string();
        std::fs::create_dir_all(&url).unwrap();
        ArchiveTarget {
            store: ArchiveStore::open(&url, &S3Options::default()).unwrap(),
            url,
            s3_table: String::new(),
            cli_args: Vec::new(),
            cli_env: Vec::new(),
            seen: BTreeMap::new(),
            _weed: None,
        }
    }

    fn seaweed() -> ArchiveTarget {
        let weed = Seaweed::start().unwrap_or_else(|e| panic!("cannot start SeaweedFS: {e}"));
        let url = weed.url(&format!("crash-{}", std::process::id()));
        let opts = weed.s3_options();
        let endpoint = opts.endpoint.clone().unwrap();
        ArchiveTarget {
            store: ArchiveStore::open(&url, &opts).unwrap(),
            url,
            s3_table: format!(
                "[archive.s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
                 access_key_id = \"{SEAWEED_ACCESS_KEY}\"\n\
                 secret_access_key = \"{SEAWEED_SECRET_KEY}\"\npath_style = true\nallow_http = true\n"
            ),
            cli_args: vec![
                "--s3-endpoint".into(),
                endpoint,
                "--s3-region".into(),
                "us-east-1".into(),
                "--s3-path-style".into(),
            ],
            cli_env: vec![
                ("AWS_ACCESS_KEY_ID", SEAWEED_ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", SEAWEED_SECRET_KEY),
            ],
            seen: BTreeMap::new(),
            _weed: Some(weed),
        }
    }

    /// Records every object's SHA-256; one seen before must be there with the same bytes.
    async fn snapshot(&mut self) {
        let listed = self.store.list("").await.unwrap();
        let keys: BTreeSet<&String> = listed.iter().map(|(k, _)| k).collect();
        for old in self.seen.keys() {
            assert!(keys.contains(old), "object {old} was deleted");
        }
        for (key, _) in &listed {
            let bytes = self.store.get(key).await.unwrap();
            let sha: [u8; 32] = Sha256::digest(&bytes).into();
            let was = *self.seen.entry(key.clone()).or_insert(sha);
            assert_eq!(was, sha, "object {key} was rewritten");
        }
    }

    fn provenant(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provenant"));
        cmd.args(args).args(&self.cli_args);
        for (k, v) in &self.cli_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

impl Target for ArchiveTarget {
    const WHICH: &'static str = "archive";

    fn config(&self, dir: &Path) -> String {
        // Small segments, closed often: by count (100 records, so a write can close one in
        // the middle of a batch) and by age (2 s).
        format!(
            "[archive]\nurl = \"{}\"\narchive_id = \"crash\"\nkey_dir = \"{}\"\nspool_dir = \"{}\"\n\
             rotate_records = 100\nrotate_age = \"2s\"\n{}",
            self.url,
            dir.join("keys").display(),
            dir.join("spool").display(),
            self.s3_table
        )
    }

    async fn after_kill(&mut self) {
        self.snapshot().await;
    }

    async fn caught_up(&mut self, ledger: &[LedgerPartition]) -> bool {
        let segments = provenant_archive::read::segment_keys(&self.store, None)
            .await
            .unwrap();
        for (p, part) in ledger.iter().enumerate() {
            let Some(last) = part.records.last() else {
                continue;
            };
            let p = u32::try_from(p).unwrap();
            let Some((first, _)) = segments.get(&p).and_then(|s| s.last()) else {
                return false;
            };
            let key = layout::key(p, *first, ObjectKind::Manifest);
            let m = Manifest::parse(&self.store.get(&key).await.unwrap()).unwrap();
            if m.last_seq < last.seq {
                return false;
            }
        }
        true
    }

    async fn check(&mut self, ledger: &[LedgerPartition], dir: &Path) {
        // Nothing rewritten, also by the clean stop; every segment complete.
        self.snapshot().await;
        let mut stems: BTreeMap<(u32, u64), BTreeSet<ObjectKind>> = BTreeMap::new();
        for key in self.seen.keys() {
            let (p, seq, kind) =
                layout::parse_key(key).unwrap_or_else(|| panic!("unexpected object {key}"));
            stems.entry((p, seq)).or_default().insert(kind);
        }
        for (stem, kinds) in &stems {
            assert_eq!(kinds.len(), 3, "segment {stem:?} is incomplete: {kinds:?}");
        }

        let pubkey = dir.join("keys").join("archive.pub").display().to_string();
        let out = self.provenant(&["verify", &self.url, "--pubkey", &pubkey, "--json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "verify: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["signatures_checked"], true, "{report}");
        let records: usize = ledger.iter().map(|p| p.records.len()).sum();
        assert_eq!(report["records"], records as u64, "{report}");
        assert_eq!(report["segments"], stems.len() as u64, "{report}");

        for (p, part) in ledger.iter().enumerate() {
            let out =
                self.provenant(&["archive", "dump", &self.url, "--partition", &p.to_string()]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let dumped: Vec<(i64, String)> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    (
                        v["seq"].as_i64().unwrap(),
                        v["hash"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let want: Vec<(i64, String)> = part
                .records
                .iter()
                .map(|r| (r.seq, hex::encode(r.hash)))
                .collect();
            assert!(want.iter().enumerate().all(|(i, (s, _))| *s == i as i64));
            assert_eq!(dumped, want, "partition {p}: archive ≠ ledger");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_archive_sink_on_a_directory_loses_doubles_and_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    trials(ArchiveTarget::local(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_archive_sink_on_seaweedfs_loses_doubles_and_rewrites_nothing() {
    trials(ArchiveTarget::seaweed()).await;
}

// ---- the index ---------------------------------------------------------------------------

struct IndexTarget {
    url: String,
    index: Option<AnyIndex>,
    _schema: Option<PgSchema>,
}

impl IndexTarget {
    async fn index(&mut self) -> &AnyIndex {
        if self.index.is_none() {
            self.index = Some(provenant_index::open(&self.url).await.unwrap());
        }
        self.index.as_ref().unwrap()
    }
}

impl Target for IndexTarget {
    const WHICH: &'static str = "index";

    fn config(&self, _dir: &Path) -> String {
        format!("[index]\nurl = \"{}\"\n", self.url)
    }

    async fn after_kill(&mut self) {}

    async fn caught_up(&mut self, ledger: &[LedgerPartition]) -> bool {
        let index = self.index().await;
        for (p, part) in ledger.iter().enumerate() {
            let state = index.reader_state(u32::try_from(p).unwrap()).await.unwrap();
            if state.is_none_or(|s| s.ledger_offset < part.state.ledger_offset) {
                return false;
            }
        }
        true
    }

    async fn check(&mut self, ledger: &[LedgerPartition], _dir: &Path) {
        let index = self.index().await;
        let mut want = provenant_index::Stats {
            partitions: ledger.len() as u64,
            ..provenant_index::Stats::default()
        };
        // pod-5's starts: the events and deploys its upstream lineage must name.
        let mut pod5: HashMap<String, String> = HashMap::new();
        for (p, part) in ledger.iter().enumerate() {
            let p = u32::try_from(p).unwrap();
            assert_eq!(
                index.reader_state(p).await.unwrap(),
                Some(part.state),
                "partition {p}: reader state ≠ the ledger's end"
            );
            for r in &part.records {
                match &r.body {
                    RecordBody::Event(er) => {
                        want.events += 1;
                        let found = index.event(&er.event.id, Some("test://crash")).await;
                        let found = found.unwrap();
                        assert_eq!(found.len(), 1, "event {} in the index", er.event.id);
                        let pos = &found[0].position;
                        assert_eq!(
                            (pos.partition, pos.seq, pos.hash.as_str()),
                            (p, r.seq, hex::encode(r.hash).as_str()),
                            "event {}",
                            er.event.id
                        );
                        let i: usize = er.event.id[2..].parse().unwrap();
                        if i % 997 == 5 {
                            pod5.insert(er.event.id.clone(), format!("deploy:dep-{}", i % 13));
                        }
                    }
                    RecordBody::Rejected(_) => want.rejected += 1,
                    RecordBody::Duplicate(_) => want.duplicates += 1,
                    RecordBody::LinkResolution(_) => want.link_resolutions += 1,
                }
            }
        }
        let stats = index.stats().await.unwrap();
        assert_eq!(
            (
                stats.partitions,
                stats.events,
                stats.rejected,
                stats.duplicates,
                stats.link_resolutions
            ),
            (
                want.partitions,
                want.events,
                want.rejected,
                want.duplicates,
                want.link_resolutions
            ),
            "{stats:?}"
        );

        let root = EntityKey::parse("instance:pod-5").unwrap();
        let l = index.lineage(&root, Direction::Up, 1).await.unwrap();
        let mut got: HashMap<String, String> = HashMap::new();
        for e in l.edges.iter().filter(|e| e.relation == "started_by") {
            assert_eq!(e.from, "instance:pod-5");
            assert_eq!(e.event_count as usize, e.events.len());
            for ev in &e.events {
                assert!(
                    got.insert(ev.id.clone(), e.to.clone()).is_none(),
                    "{} twice",
                    ev.id
                );
            }
        }
        assert_eq!(got, pod5, "lineage of instance:pod-5");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_index_sink_on_sqlite_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    trials(IndexTarget {
        url: dir.path().join("index.db").display().to_string(),
        index: None,
        _schema: None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_index_sink_on_postgresql_loses_and_doubles_nothing() {
    let schema = PgSchema::create().await;
    trials(IndexTarget {
        url: schema.url(),
        index: None,
        _schema: Some(schema),
    })
    .await;
}

/// A PostgreSQL schema of its own on the test server (`PROVENANT_TEST_POSTGRES`, else the
/// local one), dropped on drop.
struct PgSchema {
    name: String,
}

fn postgres_base_url() -> String {
    std::env::var("PROVENANT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn pg_admin(sql: &str) {
    let url = postgres_base_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed by this test: {e}"));
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}

impl PgSchema {
    async fn create() -> PgSchema {
        let name = format!("sink_crash_{}", std::process::id());
        pg_admin(&format!("CREATE SCHEMA {name}")).await;
        PgSchema { name }
    }

    fn url(&self) -> String {
        let base = postgres_base_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(pg_admin(&sql));
        })
        .join();
    }
}
