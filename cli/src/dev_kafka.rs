//! `provenant dev-kafka`: librdkafka's in-memory mock cluster as a Kafka-protocol broker
//! process, for development and tests (see `provenant_kafka::mock` for what it does and does
//! not do).
//!
//! Protocol for tests that start it as a process:
//! * the first stdout line is exactly `bootstrap.servers=127.0.0.1:PORT` (flushed);
//! * `create-topic NAME PARTITIONS` on stdin creates a topic and answers
//!   `created NAME PARTITIONS` or `error NAME: REASON` on stdout (one line, flushed);
//! * SIGTERM or Ctrl-C stops the broker and the process exits 0. Closing stdin does not.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use provenant_kafka::DevKafka;

/// Arguments of `provenant dev-kafka`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevKafkaArgs {
    /// Partitions of each of prov.raw, prov.ledger and prov.dlq.
    #[arg(long, default_value_t = provenant_kafka::mock::DEFAULT_PARTITIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,

    /// Also create this topic (repeatable), e.g. `--topic test.raw:3`.
    #[arg(long = "topic", value_name = "NAME:PARTITIONS",
          value_parser = provenant_kafka::mock::parse_topic_spec)]
    topics: Vec<(String, u32)>,
}

/// Runs the broker until SIGTERM or Ctrl-C.
pub(crate) fn run(args: &DevKafkaArgs) -> ExitCode {
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("dev-kafka: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &DevKafkaArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    // Handlers first: a SIGTERM right after the bootstrap line must still stop us cleanly.
    let signals = {
        let _context = runtime.enter();
        crate::shutdown::StopSignals::install()?
    };
    let kafka = Arc::new(DevKafka::start(args.partitions)?);
    for (topic, partitions) in &args.topics {
        kafka.create_topic(topic, *partitions)?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "bootstrap.servers={}", kafka.bootstrap_servers())
            .and_then(|()| out.flush())
            .context("writing the bootstrap line to stdout")?;
    }
    tracing::info!(
        bootstrap_servers = kafka.bootstrap_servers(),
        partitions = args.partitions,
        extra_topics = args.topics.len(),
        "dev-kafka: librdkafka mock broker running (memory only)"
    );
    {
        let kafka = Arc::clone(&kafka);
        std::thread::Builder::new()
            .name("dev-kafka-stdin".to_owned())
            .spawn(move || serve_stdin(&kafka))
            .context("starting the stdin reader")?;
    }
    runtime.block_on(signals.wait())?;
    tracing::info!("dev-kafka: stopping");
    Ok(())
}

/// Serves `create-topic NAME PARTITIONS` lines until stdin closes.
fn serve_stdin(kafka: &DevKafka) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            [] => continue,
            ["create-topic", name, count] => match count.parse::<u32>() {
                Ok(partitions) => match kafka.create_topic(name, partitions) {
                    Ok(()) => format!("created {name} {partitions}"),
                    Err(error) => format!("error {name}: {error}"),
                },
                Err(_) => format!("error {name}: `{count}` is not a partition count"),
            },
            _ => {
                format!("error: unknown command `{line}`; expected `create-topic NAME PARTITIONS`")
            }
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}
