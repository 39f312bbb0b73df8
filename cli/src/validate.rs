//! `provenant validate FILE|-`: checks events without sending them anywhere.
//!
//! Reads one event, a JSON array of events or NDJSON (CloudEvents structured JSON, CDEvents
//! or OpenLineage RunEvents) through [`provenant_schemas::decode`] — the same decoding the
//! HTTP ingest and the processor use — and prints one line per event and a summary.
//! Exit status: 0 when every event is valid, 1 when any is invalid, 2 on a usage or I/O
//! error (unreadable file, empty input). Nothing here echoes a field value: lines show the
//! kind, `source` and `id`, and the error messages of the schema crate.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use provenant_schemas::{Decoder, Event, ItemError, Limits};
use serde_json::{Value, json};

/// Exit status when any event is invalid.
const EXIT_INVALID: u8 = 1;
/// Exit status on a usage or I/O error.
const EXIT_USAGE: u8 = 2;

/// Arguments of `provenant validate`.
#[derive(Debug, Args)]
#[command(after_help = "\
Input: one JSON event, a JSON array of events (application/cloudevents-batch+json) or NDJSON
(one event per line). Each event may be a Provenant CloudEvent (structured JSON), a CDEvent
(bare or inside a CloudEvent) or an OpenLineage RunEvent; CDEvents and OpenLineage are
mapped to Provenant events as they would be on ingest.

Exit status: 0 all events valid, 1 some event invalid, 2 usage or I/O error (e.g. the file
cannot be read or holds no event).

Examples:
  provenant validate events.ndjson
  curl -s https://ci.example.com/events | provenant validate -
  # in a CI pipeline: fail the job on any invalid event, keep a machine-readable report
  provenant validate --json build-events.json > validate-report.json")]
pub(crate) struct ValidateArgs {
    /// File to read, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    input: String,

    /// Print a JSON object (`events`: one entry per event with index, ok, kind, source, id,
    /// mapped_from, code, field, message; `valid`; `invalid`) instead of text.
    #[arg(long)]
    json: bool,

    /// Treat the input as this content type instead of detecting one event, an array or
    /// NDJSON (e.g. application/cloudevents-batch+json, application/x-ndjson).
    #[arg(long, value_name = "TYPE")]
    content_type: Option<String>,

    /// Largest event accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::DEFAULT.max_event_bytes)]
    max_event_bytes: usize,
}

/// Runs the subcommand; returns the process exit status.
pub(crate) fn run(args: &ValidateArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("provenant validate: {e:#}");
            }
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run_inner(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_input(&args.input)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        anyhow::bail!(
            "{} holds no event (expected one event, a JSON array or NDJSON)",
            shown_input(&args.input)
        );
    }
    let decoder = Decoder {
        limits: Limits {
            max_event_bytes: args.max_event_bytes,
            ..Limits::DEFAULT
        },
        max_input_bytes: Decoder::default().max_input_bytes.max(args.max_event_bytes),
        ..Decoder::default()
    };
    let items = decoder.decode(&bytes, args.content_type.as_deref());
    if items.is_empty() {
        anyhow::bail!(
            "{} holds no event (an empty array)",
            shown_input(&args.input)
        );
    }
    let invalid = items.iter().filter(|i| i.is_err()).count();
    let valid = items.len() - invalid;
    let mut out = std::io::stdout().lock();
    if args.json {
        let events: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(n, item)| json_entry(n + 1, item))
            .collect();
        let report = json!({"events": events, "valid": valid, "invalid": invalid});
        writeln!(out, "{report}").context("writing to standard output")?;
    } else {
        for (n, item) in items.iter().enumerate() {
            writeln!(out, "{}", text_line(n + 1, item)).context("writing to standard output")?;
        }
        writeln!(
            out,
            "{} {}: {valid} valid, {invalid} invalid",
            items.len(),
            if items.len() == 1 { "event" } else { "events" }
        )
        .context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")?;
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

fn read_input(input: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if input == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        let path = PathBuf::from(input);
        bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(bytes)
}

fn shown_input(input: &str) -> String {
    if input == "-" {
        "standard input".into()
    } else {
        input.to_owned()
    }
}

/// `ok   #1 build event "b-1" from "ci"` or `FAIL #2 (line 2) event …: message [code field]`.
fn text_line(index: usize, item: &Result<Event, ItemError>) -> String {
    match item {
        Ok(e) => {
            let mapped = e
                .mapped_from
                .as_deref()
                .map(|m| format!(" (mapped from {m})"))
                .unwrap_or_default();
            format!("ok   #{index} {} {}{mapped}", e.kind(), e.event_ref())
        }
        Err(err) => {
            let field = err
                .error
                .field
                .as_deref()
                .map(|f| format!(" {f}"))
                .unwrap_or_default();
            format!("FAIL {err} [{}{field}]", err.error.code)
        }
    }
}

/// Identifiers in the JSON report are cut to 256 characters (an invalid event's id may be
/// anything up to the event size).
fn cut(s: &str) -> String {
    s.chars().take(256).collect()
}

fn json_entry(index: usize, item: &Result<Event, ItemError>) -> Value {
    match item {
        Ok(e) => json!({
            "index": index,
            "ok": true,
            "kind": e.kind().as_str(),
            "source": cut(&e.source),
            "id": cut(&e.id),
            "mapped_from": e.mapped_from,
        }),
        Err(err) => {
            let ev = &err.error.event;
            json!({
                "index": index,
                "line": err.line,
                "ok": false,
                "source": ev.source.as_deref().map(cut),
                "id": ev.id.as_deref().map(cut),
                "code": err.error.code.as_str(),
                "field": err.error.field,
                "message": err.error.message,
            })
        }
    }
}
