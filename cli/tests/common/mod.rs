//! Helpers shared by the CLI's integration tests: real processes (`provenant dev-kafka`,
//! `provenant up`) started on free ports and killed on drop.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use provenant_kafka::{KafkaConfig, KafkaLog};

pub mod crash;

/// A `provenant dev-kafka` process, killed (SIGKILL) and reaped on drop.
pub struct Broker {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: BufReader<ChildStdout>,
    pub bootstrap: String,
}

impl Broker {
    pub fn start(args: &[&str]) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_provenant"))
            .arg("dev-kafka")
            .args(args)
            .env("PROVENANT_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start provenant dev-kafka");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let mut broker = Broker {
            child,
            stdin,
            stdout,
            bootstrap: String::new(),
        };
        read.expect("read the bootstrap line");
        broker.bootstrap = line
            .trim_end()
            .strip_prefix("bootstrap.servers=")
            .unwrap_or_else(|| panic!("first line is not bootstrap.servers=…: {line:?}"))
            .to_owned();
        assert!(
            broker.bootstrap.starts_with("127.0.0.1:"),
            "{}",
            broker.bootstrap
        );
        broker
    }

    /// Creates a topic through the process's stdin protocol.
    pub fn create_topic(&mut self, name: &str, partitions: u32) {
        writeln!(self.stdin, "create-topic {name} {partitions}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), format!("created {name} {partitions}"));
    }

    pub fn log(&self) -> KafkaLog {
        kafka_log(&self.bootstrap)
    }
}

/// The Kafka log with the short timeouts tests want (a group member is dropped 6 s after it
/// stops heartbeating, an unreachable broker fails a call in 3 s).
pub fn kafka_log(bootstrap: &str) -> KafkaLog {
    KafkaLog::new(KafkaConfig {
        session_timeout_ms: Some(6000),
        heartbeat_interval_ms: Some(500),
        message_timeout_ms: 3000,
        request_timeout_ms: 3000,
        ..KafkaConfig::new(bootstrap)
    })
    .unwrap()
}

/// Logs of the code under test (librdkafka's included, at info unless `RUST_LOG` says
/// otherwise) in the test's output.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `provenant up` process on a data directory and a fixed port, killed on drop.
pub struct Up {
    pub child: Child,
    pub base: String,
}

impl Up {
    /// Starts `up` and waits until it serves `/healthz`.
    pub fn start(data_dir: &std::path::Path, port: u16, extra: &[&str]) -> Up {
        let child = Command::new(env!("CARGO_BIN_EXE_provenant"))
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start provenant up");
        let up = Up {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return up;
            }
            assert!(std::time::Instant::now() < deadline, "up did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for a clean exit (status 0).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "up exited with {status}");
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `provenant verify DATA_DIR/archive --pubkey DATA_DIR/keys/archive.pub` passes (the archive
/// and key of `provenant up --data-dir DATA_DIR`).
pub fn assert_up_archive_verifies(data_dir: &std::path::Path) {
    let verify = Command::new(env!("CARGO_BIN_EXE_provenant"))
        .arg("verify")
        .arg(data_dir.join("archive"))
        .arg("--pubkey")
        .arg(data_dir.join("keys").join("archive.pub"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// A Provenant role (`provenant process`, `provenant sink archive|index`, …) as its own
/// process, its stderr shown with the test's output. Killed (SIGKILL) and reaped on drop, so
/// a failing test leaves nothing running; [`Role::stop`] stops it as an operator would.
pub struct Role {
    pub name: String,
    pub child: Child,
}

impl Role {
    /// Starts `provenant ARGS…` with `PROVENANT_LOG=warn`.
    pub fn start(name: &str, args: &[&str]) -> Role {
        let child = Command::new(env!("CARGO_BIN_EXE_provenant"))
            .args(args)
            .env("PROVENANT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start provenant {args:?}: {e}"));
        Role {
            name: name.to_owned(),
            child,
        }
    }

    /// Panics if the process has exited (a role that stops by itself has failed).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited on its own with {status}", self.name);
        }
    }

    /// SIGTERM, then waits (at most `within`) for a clean exit: status 0.
    pub fn stop(mut self, within: std::time::Duration) {
        self.assert_running();
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} ({})", self.name);
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}", self.name);
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not stop within {within:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
