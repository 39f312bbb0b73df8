//! What `tests/docker.rs` runs once its containers are up, given only their addresses: the
//! archive and index conformance suites (each check on its own prefix or schema, every
//! failure reported, not just the first) and the end-to-end run of the real roles as
//! processes. Nothing here starts a container, so the same code runs against any stack:
//! `tests/roles_e2e.rs` runs the end-to-end run on dev-kafka, SeaweedFS and the local
//! PostgreSQL on every CI run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use provenant_archive::conformance::StoreFactory;
use provenant_archive::{ArchiveStore, S3Options, Secret, VerifierKey, VerifyOptions};
use provenant_index::{Direction, Index, IndexError, PostgresIndex};
use provenant_schemas::EntityKey;

use crate::common::Role;

/// An S3 endpoint with one bucket and one identity allowed to use it.
pub(crate) struct S3 {
    /// `http://HOST:PORT`.
    pub(crate) endpoint: String,
    pub(crate) bucket: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
}

impl S3 {
    pub(crate) fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(Secret::new(self.secret_key.clone())),
            session_token: None,
            path_style: true,
            allow_http: true,
        }
    }

    /// `s3://BUCKET/PREFIX`.
    pub(crate) fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }
}

/// The services the end-to-end run needs: a Kafka cluster whose `prov.raw`, `prov.ledger` and
/// `prov.dlq` exist (empty, equal partition counts), an S3 store and a PostgreSQL database.
pub(crate) struct Stack {
    /// `HOST:PORT` of the Kafka bootstrap server.
    pub(crate) brokers: String,
    pub(crate) s3: S3,
    /// `postgres://USER:PASSWORD@HOST:PORT/DB`.
    pub(crate) postgres: String,
}

/// A name no other run on the same services uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// The archive conformance suite on `s3`, every check under `s3://BUCKET/RUN/…`. Returns the
/// failed checks with their messages.
pub(crate) async fn archive_suite(s3: &S3) -> Vec<String> {
    let opts = s3.options();
    let base = s3.url(&unique("archive-conformance"));
    let factory: Box<StoreFactory> =
        Box::new(move |prefix: &str| ArchiveStore::open(&format!("{base}/{prefix}"), &opts));
    let mut failed = Vec::new();
    for (name, check) in provenant_archive::conformance::checks() {
        let t = Instant::now();
        match check(&*factory).await {
            Ok(()) => eprintln!("ok   archive {name} ({:.1?})", t.elapsed()),
            Err(e) => {
                eprintln!("FAIL archive {name}: {e}");
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    failed
}

/// A plain connection to `url`.
pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to PostgreSQL at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// `url` with `search_path` set to `schema` (how the index is pointed at a schema).
pub(crate) fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A schema of its own in the database at `url`: its name, and the index URL that uses it.
async fn fresh_schema(admin: &tokio_postgres::Client, url: &str, prefix: &str) -> (String, String) {
    let schema = unique(prefix);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let index_url = with_search_path(url, &schema);
    (schema, index_url)
}

/// Drops a schema of [`fresh_schema`] with everything in it (after a check that passed; one
/// that failed leaves its schema to look at).
async fn drop_schema(admin: &tokio_postgres::Client, schema: &str) {
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// The index conformance suite on the PostgreSQL database at `url`, each check on a fresh,
/// empty index in a schema of its own. Returns the failed checks with their messages.
pub(crate) async fn index_suite(url: &str) -> Vec<String> {
    let admin = connect(url).await;
    let mut failed = Vec::new();
    for name in provenant_index::conformance::CHECKS {
        let t = Instant::now();
        let (schema, index_url) = fresh_schema(&admin, url, "conformance").await;
        let index = PostgresIndex::open(&index_url)
            .await
            .unwrap_or_else(|e| panic!("opening the index at {index_url}: {e}"));
        let outcome = provenant_index::conformance::run(name, &index).await;
        drop(index);
        match outcome {
            Ok(()) => {
                drop_schema(&admin, &schema).await;
                eprintln!("ok   index {name} ({:.1?})", t.elapsed());
            }
            Err(e) => {
                eprintln!("FAIL index {name}: {e}");
                failed.push(e.to_string());
            }
        }
    }
    failed
}

// The story of the end-to-end run: a commit built, its artifact published, deployed to
// production, an instance running it (with an e-mail address the processor must redact).
const COMMIT: &str = "0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e";
const DIGEST: &str = "sha256:e2e0000000000000000000000000000000000000000000000000000000000e2e";
const BUILD_ID: &str = "ci:e2e/shop/1";
const DEPLOY_ID: &str = "cd:production/shop/1";
const INSTANCE: &str = "shop-e2e-1";
const EMAIL: &str = "ops-e2e@example.com";

/// `provenant emit --brokers BROKERS --id ID --source SOURCE ARGS…`, which must succeed.
fn emit(brokers: &str, id: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["emit", "--brokers", brokers, "--id", id])
        .args(["--source", "https://ci.example/e2e", "--timeout", "60"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "emit {id}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `provenant verify ARCHIVE --json` with the stack's S3 credentials in the environment.
fn verify_cli(s3: &S3, url: &str, pubkey: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .args(["verify", url, "--json", "--pubkey"])
        .arg(pubkey)
        .args(["--s3-endpoint", &s3.endpoint, "--s3-region", "us-east-1"])
        .arg("--s3-path-style")
        .env("AWS_ACCESS_KEY_ID", &s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "provenant verify {url}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("verify --json: {e}: {stdout}"))
}

/// Records per partition in the archive's closed segments (in-process verify; the newest
/// segment of a partition may still be open, which is a warning, not a failure). An error
/// (e.g. nothing written yet) is returned for the caller to retry.
async fn archived(store: &ArchiveStore, pubkey: &Path) -> Result<Vec<(u32, u64)>, String> {
    let key = VerifierKey::load(pubkey).map_err(|e| e.to_string())?;
    let report = provenant_archive::verify(
        store,
        &VerifyOptions {
            pubkey: Some(key),
            ..VerifyOptions::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    assert!(report.ok, "archive verify failed: {:?}", report.failures);
    let mut per: Vec<(u32, u64)> = report
        .partitions
        .iter()
        .filter(|p| p.records > 0)
        .map(|p| (p.partition, p.records))
        .collect();
    per.sort_unstable();
    Ok(per)
}

/// Ledger records per partition as the index counts them: the next seq of its reader state.
async fn indexed<I: Index>(index: &I, partitions: u32) -> Vec<(u32, u64)> {
    let mut per = Vec::new();
    for p in 0..partitions {
        if let Some(state) = index.reader_state(p).await.unwrap()
            && state.head.next_seq > 0
        {
            per.push((p, u64::try_from(state.head.next_seq).unwrap()));
        }
    }
    per
}

/// The real roles as processes on `stack`: `provenant process`, `provenant sink archive`
/// (S3) and `provenant sink index` (PostgreSQL), fed by `provenant emit --brokers`. Waits
/// until the index holds the story with the instance's lineage back to its commit and the
/// archive holds every ledger record the index does, stops every role with SIGTERM (exit 0),
/// and checks the archive with `provenant verify`: intact, signatures valid, and per
/// partition exactly as many records as the index's chain heads say.
pub(crate) async fn end_to_end(stack: &Stack, partitions: u32) {
    let dir = tempfile::tempdir().unwrap();
    let key_dir = dir.path().join("keys");
    let archive_url = stack.s3.url(&unique("e2e"));
    let admin = connect(&stack.postgres).await;
    let (schema, index_url) = fresh_schema(&admin, &stack.postgres, "e2e").await;

    // The sinks' --config files, as an operator writes them (examples/config/sink-*.toml).
    let archive_toml = dir.path().join("sink-archive.toml");
    let s3 = &stack.s3;
    std::fs::write(
        &archive_toml,
        format!(
            r#"http = "127.0.0.1:0"
[archive]
url = "{archive_url}"
archive_id = "e2e"
key_dir = "{keys}"
rotate_age = "1s"
[archive.s3]
endpoint = "{endpoint}"
region = "us-east-1"
access_key_id = "{access}"
secret_access_key = "{secret}"
path_style = true
allow_http = true
"#,
            keys = key_dir.display(),
            endpoint = s3.endpoint,
            access = s3.access_key,
            secret = s3.secret_key,
        ),
    )
    .unwrap();
    let index_toml = dir.path().join("sink-index.toml");
    std::fs::write(
        &index_toml,
        format!("http = \"127.0.0.1:0\"\n[index]\nurl = \"{index_url}\"\n"),
    )
    .unwrap();
    let b = stack.brokers.as_str();
    let archive_cfg = archive_toml.to_str().unwrap();
    let index_cfg = index_toml.to_str().unwrap();
    let mut roles = vec![
        Role::start(
            "provenant process",
            &["process", "--brokers", b, "--http", "127.0.0.1:0"],
        ),
        Role::start(
            "provenant sink archive",
            &["sink", "archive", "--brokers", b, "--config", archive_cfg],
        ),
        Role::start(
            "provenant sink index",
            &["sink", "index", "--brokers", b, "--config", index_cfg],
        ),
    ];

    // The story, from a CI pipeline's point of view.
    emit(
        b,
        "e2e-build",
        &[
            "build",
            "--commit-sha",
            COMMIT,
            "--build-id",
            BUILD_ID,
            "--branch",
            "main",
            "--artifact-digest",
            DIGEST,
        ],
    );
    emit(
        b,
        "e2e-artifact",
        &[
            "artifact",
            "--artifact-digest",
            DIGEST,
            "--build-id",
            BUILD_ID,
            "--commit-sha",
            COMMIT,
            "--name",
            "registry.example/shop:1.0.0",
        ],
    );
    emit(
        b,
        "e2e-deploy",
        &[
            "deploy",
            "--deploy-id",
            DEPLOY_ID,
            "--artifact-digest",
            DIGEST,
            "--environment",
            "production",
            "--service",
            "shop",
        ],
    );
    let message = format!("started by {EMAIL}");
    emit(
        b,
        "e2e-runtime",
        &[
            "runtime",
            "--instance-id",
            INSTANCE,
            "--service",
            "shop",
            "--environment",
            "production",
            "--deploy-id",
            DEPLOY_ID,
            "--artifact-digest",
            DIGEST,
            "--message",
            &message,
        ],
    );

    // The index: every event, and the instance's lineage up to the commit.
    let index = PostgresIndex::open(&index_url).await.unwrap();
    let instance = EntityKey::Instance(INSTANCE.into());
    let commit = format!("commit:{COMMIT}");
    let started = Instant::now();
    let lineage = loop {
        for r in &mut roles {
            r.assert_running();
        }
        let stats = index.stats().await.unwrap();
        // Until the runtime event is indexed the instance is unknown.
        let lineage = match index.lineage(&instance, Direction::Up, 6).await {
            Ok(l) => Some(l),
            Err(IndexError::UnknownEntity(_)) => None,
            Err(e) => panic!("lineage of {instance}: {e}"),
        };
        // Every reference of the story names an entity the story introduces, so every link
        // ends resolved (at write, or by a link resolution when events crossed partitions).
        if let Some(lineage) = lineage.as_ref()
            && stats.events == 4
            && stats.pending_links == 0
            && lineage.nodes.iter().any(|n| n.key == commit)
        {
            assert_eq!(stats.rejected, 0, "{stats:?}");
            assert_eq!(stats.duplicates, 0, "{stats:?}");
            break lineage.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the index did not get the story in 3 minutes: {stats:?}\n{}",
            lineage
                .map(|l| provenant_index::format_tree(&l))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let tree = provenant_index::format_tree(&lineage);
    for key in [
        format!("instance:{INSTANCE}"),
        format!("deploy:{DEPLOY_ID}"),
        EntityKey::artifact_from_digest(DIGEST).to_string(),
        format!("build:{BUILD_ID}"),
        commit.clone(),
    ] {
        assert!(
            lineage.nodes.iter().any(|n| n.key == key),
            "{key} not in the lineage:\n{tree}"
        );
    }
    assert!(!lineage.truncated, "{tree}");
    // Redacted by the processor before anything was stored.
    let runtime = index.event("e2e-runtime", None).await.unwrap();
    assert_eq!(runtime.len(), 1, "{runtime:?}");
    assert!(!runtime[0].redactions.is_empty(), "{runtime:?}");
    assert!(
        !runtime[0].event.to_string().contains(EMAIL),
        "{}",
        runtime[0].event
    );

    // The archive: segments rotate after a second, so it catches up with the index.
    let pubkey = key_dir.join(provenant_archive::note::PUBLIC_KEY_FILE);
    let store = ArchiveStore::open(&archive_url, &s3.options()).unwrap();
    let started = Instant::now();
    loop {
        for r in &mut roles {
            r.assert_running();
        }
        let want = indexed(&index, partitions).await;
        let have = archived(&store, &pubkey).await;
        if have.as_ref() == Ok(&want) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the archive holds {have:?} records per partition, the index {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Stop every role as an operator would; then the offline check, as an auditor runs it.
    for r in roles {
        r.stop(Duration::from_secs(60));
    }
    let report = verify_cli(s3, &archive_url, &pubkey);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["signatures_checked"], true, "{report:#}");
    let mut per: Vec<(u32, u64)> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                u32::try_from(p["partition"].as_u64().unwrap()).unwrap(),
                p["records"].as_u64().unwrap(),
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    per.sort_unstable();
    let want = indexed(&index, partitions).await;
    assert_eq!(per, want, "archive vs index chain heads: {report:#}");
    eprintln!("end to end: lineage\n{tree}\narchive per partition {per:?}: verify OK");
    drop(index);
    drop_schema(&admin, &schema).await;
}
