//! Writes the seed corpora of the `binary_mode`, `avro` and `ledger` targets from real
//! encodings: every event of `schemas/corpus/good` (read with `decode`, as the CLI and ingest
//! read it) encoded by `binary_mode::encode`/`encode_json`, `avro::encode_event`/`encode_data`,
//! and a small hash chain of ledger records built from them. Also the CloudEvents Python SDK's
//! Kafka fixtures (`schemas/fixtures/cloudevents/binary/kafka_*.json`) and a few records broken
//! on purpose. Deterministic: run it again and `git diff fuzz/corpus` is empty.
//!
//! ```sh
//! cd fuzz && cargo run --example seeds
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use provenant_fuzz::{Headers, join_record};
use provenant_schemas::avro;
use provenant_schemas::binary_mode;
use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{
    DuplicateMarker, EventRecord, Fence, Link, LinkResolution, LinkStatus, MAX_LEDGER_INT,
    Redaction, RedactionAction, RejectedMarker,
};
use provenant_schemas::{ErrorCode, Event, LedgerEntry, LedgerRecord, Limits, RecordBody, decode};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let events = good_events(&root.join("../schemas/corpus/good"));
    assert!(events.len() >= 6, "too few good events: {}", events.len());
    let corpus = root.join("corpus");
    write_all(&corpus.join("avro"), avro_seeds(&events));
    write_all(
        &corpus.join("binary_mode"),
        binary_mode_seeds(
            &events,
            &root.join("../schemas/fixtures/cloudevents/binary"),
        ),
    );
    write_all(&corpus.join("ledger"), ledger_seeds(&events));
}

/// Every valid event of the good corpus, in file-name order.
fn good_events(dir: &Path) -> Vec<Event> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut events = Vec::new();
    for f in files {
        for item in decode(&fs::read(&f).unwrap(), None, &Limits::DEFAULT) {
            match item {
                Ok(e) => events.push(e),
                Err(e) => panic!("{}: {e}", f.display()),
            }
        }
    }
    events
}

/// Replaces the files of `dir` with `seeds` (name, bytes).
fn write_all(dir: &Path, seeds: Vec<(String, Vec<u8>)>) {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    fs::create_dir_all(dir).unwrap();
    for (name, bytes) in &seeds {
        fs::write(dir.join(name), bytes).unwrap();
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
}

fn tag(i: usize, e: &Event) -> String {
    let origin = match e.mapped_from.as_deref() {
        Some(m) if m.starts_with("dev.cdevents") => "-cdevents",
        Some(_) => "-openlineage",
        None => "",
    };
    format!("{i:02}-{}{origin}", e.kind().as_str())
}

fn avro_seeds(events: &[Event]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        out.push((format!("event-{}.avro", tag(i, e)), avro::encode_event(e)));
        out.push((
            format!("data-{}.avro", tag(i, e)),
            avro::encode_data(&e.data),
        ));
    }
    out
}

fn record(headers: &Headers, value: &[u8]) -> Vec<u8> {
    join_record(headers, value).expect("headers that frame")
}

fn set(h: &Headers, name: &str, value: Option<&[u8]>) -> Headers {
    let mut h: Headers = h.iter().filter(|(n, _)| n != name).cloned().collect();
    if let Some(v) = value {
        h.push((name.into(), v.to_vec()));
    }
    h
}

fn binary_mode_seeds(events: &[Event], sdk_fixtures: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let (h, v) = binary_mode::encode(e);
        out.push((format!("avro-{}.rec", tag(i, e)), record(&h, &v)));
        let (h, v) = binary_mode::encode_json(e);
        out.push((format!("json-{}.rec", tag(i, e)), record(&h, &v)));
    }
    let first = &events[0];
    let structured: Headers = vec![(
        binary_mode::CONTENT_TYPE.into(),
        binary_mode::CLOUDEVENTS_JSON.as_bytes().to_vec(),
    )];
    out.push((
        "structured-00.rec".into(),
        record(&structured, &first.to_json_bytes()),
    ));

    // The CloudEvents Python SDK's Kafka binding (see schemas/fixtures/README.md).
    let mut fixtures: Vec<PathBuf> = fs::read_dir(sdk_fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kafka_"))
        })
        .collect();
    fixtures.sort();
    for f in fixtures {
        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        let headers: Headers = doc["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
            .collect();
        let value = base64(doc["value_base64"].as_str().unwrap());
        let stem = f.file_stem().unwrap().to_str().unwrap();
        out.push((format!("sdk-{stem}.rec"), record(&headers, &value)));
    }

    // Broken on purpose, each in one way, from the first event's Avro record.
    let (h, v) = binary_mode::encode(first);
    let other_kind = events
        .iter()
        .find(|e| e.kind() != first.kind())
        .expect("two kinds");
    let bad: [(&str, Headers, Vec<u8>); 10] = [
        ("missing-ce-id", set(&h, "ce_id", None), v.clone()),
        (
            "repeated-ce-type",
            {
                let mut h = h.clone();
                h.insert(0, ("ce_type".into(), b"io.provenant.deploy.v1".to_vec()));
                h
            },
            v.clone(),
        ),
        (
            "specversion-0.3",
            set(&h, "ce_specversion", Some(b"0.3")),
            v.clone(),
        ),
        (
            "content-type-text",
            set(&h, "content-type", Some(b"text/plain")),
            v.clone(),
        ),
        (
            "content-type-params-case",
            set(
                &h,
                "content-type",
                Some(b" Application/AVRO ; charset=binary"),
            ),
            v.clone(),
        ),
        (
            "content-type-missing",
            set(&h, "content-type", None),
            v.clone(),
        ),
        (
            "source-not-utf8",
            set(&h, "ce_source", Some(b"https://ci.example.com/\xff\xfe")),
            v.clone(),
        ),
        (
            "datacontenttype-header",
            set(&h, "ce_datacontenttype", Some(b"application/json")),
            v.clone(),
        ),
        (
            "value-of-other-kind",
            h.clone(),
            avro::encode_data(&other_kind.data),
        ),
        ("value-truncated", h.clone(), v[..v.len() / 2].to_vec()),
    ];
    for (name, h, v) in bad {
        out.push((format!("bad-{name}.rec"), record(&h, &v)));
    }
    out
}

fn links(e: &Event, resolved_to: Option<(&LedgerRecord, i32)>) -> Vec<Link> {
    e.references()
        .into_iter()
        .map(|r| match resolved_to {
            Some((target, partition)) => Link {
                relation: r.relation,
                target: r.target.to_string(),
                status: LinkStatus::Resolved,
                target_hash: Some(target.hash),
                target_partition: Some(partition),
                target_seq: Some(target.seq),
            },
            None => Link {
                relation: r.relation,
                target: r.target.to_string(),
                status: LinkStatus::Pending,
                target_hash: None,
                target_partition: None,
                target_seq: None,
            },
        })
        .collect()
}

fn ledger_seeds(events: &[Event]) -> Vec<(String, Vec<u8>)> {
    let mut chain: Vec<LedgerRecord> = Vec::new();
    let mut head = ChainHead::GENESIS;
    let mut push = |body: RecordBody, chain: &mut Vec<LedgerRecord>| {
        let raw_offset = 100 + i64::try_from(chain.len()).unwrap();
        let r = chain_next(&head, raw_offset, 3, body).unwrap();
        head = ChainHead::after(&r);
        chain.push(r);
    };
    // One event record per kind (and per origin), pending links, no redactions.
    let mut seen = Vec::new();
    for e in events {
        let key = (e.kind(), e.mapped_from.is_some());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let body = RecordBody::Event(EventRecord {
            event: e.clone(),
            redactions: Vec::new(),
            links: links(e, None),
        });
        push(body, &mut chain);
    }
    // An event with redactions and links resolved to the first record, in partition 2.
    let target = chain[0].clone();
    let e = &events[1];
    push(
        RecordBody::Event(EventRecord {
            event: e.clone(),
            redactions: vec![
                Redaction {
                    path: "data.actor".into(),
                    detector: "email".into(),
                    action: RedactionAction::Token,
                },
                Redaction {
                    path: "data.annotations.owner".into(),
                    detector: "policy:no-owners".into(),
                    action: RedactionAction::Drop,
                },
                Redaction {
                    path: "subject".into(),
                    detector: "jwt".into(),
                    action: RedactionAction::Mask,
                },
            ],
            links: links(e, Some((&target, 2))),
        }),
        &mut chain,
    );
    push(
        RecordBody::Rejected(RejectedMarker {
            reason_code: ErrorCode::InvalidHeaders.as_str().into(),
            reason_message: "header ce_id is missing".into(),
            dlq_partition: 1,
            dlq_offset: 4711,
        }),
        &mut chain,
    );
    push(
        RecordBody::Duplicate(DuplicateMarker {
            original_partition: 0,
            original_seq: 0,
            source: target_event(&target).source.clone(),
            id: target_event(&target).id.clone(),
        }),
        &mut chain,
    );
    let pending = chain
        .iter()
        .find_map(|r| match &r.body {
            RecordBody::Event(er) => er.links.first().map(|l| (r.seq, l.clone())),
            _ => None,
        })
        .expect("a pending link");
    push(
        RecordBody::LinkResolution(LinkResolution {
            resolves_seq: pending.0,
            relation: pending.1.relation,
            target: pending.1.target,
            target_hash: [0xab; 32],
            target_partition: 5,
            target_seq: MAX_LEDGER_INT,
        }),
        &mut chain,
    );

    let mut out = Vec::new();
    for r in &chain {
        let name = format!("{:02}-{}", r.seq, r.body.tag());
        out.push((
            format!("entry-{name}.bin"),
            LedgerEntry::Record(r.clone()).to_avro(),
        ));
        out.push((format!("datum-{name}.bin"), r.to_avro_datum()));
    }
    for (i, epoch) in [1, MAX_LEDGER_INT].into_iter().enumerate() {
        let fence = LedgerEntry::Fence(Fence {
            writer_epoch: epoch,
            writer_id: [u8::try_from(i).unwrap() + 0x11; 16],
        });
        out.push((format!("fence-{i}.bin"), fence.to_avro()));
    }
    out
}

fn target_event(r: &LedgerRecord) -> &Event {
    match &r.body {
        RecordBody::Event(er) => &er.event,
        _ => panic!("not an event record"),
    }
}

/// Standard base64 with padding (the fixtures' `value_base64`).
fn base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
