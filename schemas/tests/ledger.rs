//! Canonical bytes, the record hash, the chain helpers and the test vectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod strategies;

use std::collections::BTreeMap;

use proptest::prelude::*;
use provenant_schemas::canonical::{
    ChainError, ChainHead, HASH_DOMAIN, canonical_bytes_of_json, chain_next, hash_of, record_json,
    verify_chain,
};
use provenant_schemas::ledger::{
    DuplicateMarker, EventRecord, GENESIS_PREV_HASH, LedgerRecord, Link, LinkResolution,
    LinkStatus, MAX_LEDGER_INT, RecordBody, Redaction, RedactionAction, RejectedMarker,
};
use provenant_schemas::{
    Build, Data, Dataset, Deploy, Event, EventData, Job, Limits, Relation, RunState,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Reorders every object's members by a seed-dependent key (serde_json keeps insertion order
/// here: the workspace enables `preserve_order`).
fn shuffle(v: &Value, seed: u64) -> Value {
    match v {
        Value::Object(o) => {
            let mut members: Vec<(&String, &Value)> = o.iter().collect();
            members.sort_by_key(|(k, _)| {
                k.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                })
            });
            Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.clone(), shuffle(v, seed)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| shuffle(x, seed)).collect()),
        other => other.clone(),
    }
}

fn respace(v: &Value, style: u8) -> String {
    use serde::Serialize;
    match style % 3 {
        0 => v.to_string(),
        1 => serde_json::to_string_pretty(v).unwrap(),
        _ => {
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b" \t\r\n ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            v.serialize(&mut ser).unwrap();
            String::from_utf8(out).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn canonical_bytes_are_stable_across_member_order_and_whitespace(
        record in strategies::record(),
        seed in any::<u64>(),
        style in any::<u8>(),
    ) {
        let canonical = record.canonical_bytes().unwrap();
        let text = respace(&shuffle(&record_json(&record), seed), style);
        let parsed: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&canonical_bytes_of_json(&parsed).unwrap(), &canonical);
        prop_assert_eq!(hash_of(&record.prev_hash, &canonical), record.hash);
        // The canonical bytes are themselves JSON, with sorted members, and without `hash`.
        let back: Value = serde_json::from_slice(&canonical).unwrap();
        prop_assert!(back.get("hash").is_none());
        prop_assert_eq!(back.get("seq"), Some(&json!(record.seq)));
    }

    #[test]
    fn the_hash_covers_every_field_but_hash(record in strategies::record(), bump in 1i64..5) {
        let mut other = record.clone();
        other.raw_offset = (record.raw_offset + bump) % MAX_LEDGER_INT;
        prop_assert_ne!(other.compute_hash().unwrap(), record.hash);
        let mut other = record.clone();
        other.prev_hash[31] ^= 1;
        prop_assert_ne!(other.compute_hash().unwrap(), record.hash);
        let mut other = record.clone();
        other.hash = [7; 32];
        prop_assert_eq!(other.compute_hash().unwrap(), record.hash);
    }
}

fn ev(id: &str, data: EventData) -> Event {
    let mut e = Event::new("https://ci.example.com/acme/shop", id, data);
    e.time = Some("2026-11-23T10:00:00Z".into());
    e
}

const SHA: &str = "4f1c2a9b8e7d6c5b4a3928171615141312111009";
const DIGEST: &str = "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

/// The records of `vectors.json`: one chain of partition 0, every body type.
fn vector_records() -> Vec<(&'static str, LedgerRecord)> {
    let build = ev(
        "build-1",
        EventData::Build(Build {
            commit_sha: SHA.into(),
            branch: Some("main".into()),
            build_id: "github:acme/shop/42/1".into(),
            build_timestamp: "2026-11-23T09:58:00Z".into(),
            actor: Some("José \"JJ\" Núñez \\ 漢字 🦀".into()),
            annotations: BTreeMap::from([
                ("note".into(), "line1\nline2\ttab\r\u{2028}é".into()),
                ("émoji".into(), "🦀\u{10ffff}".into()),
            ]),
            ..Build::default()
        }),
    );
    let deploy = ev(
        "deploy-7",
        EventData::Deploy(Deploy {
            deploy_id: "dep-7".into(),
            artifact_digest: DIGEST.into(),
            environment: "production".into(),
            service: "shop".into(),
            deploy_timestamp: "2026-11-23T10:05:00+01:00".into(),
            actor: Some("tok_3f9a1c".into()),
            previous_deploy_id: Some("dep-6".into()),
            ..Deploy::default()
        }),
    );
    let mut data = ev(
        "f1a0c7e2-0000-5000-8000-000000000001",
        EventData::Data(Data {
            job: Job {
                namespace: "etl".into(),
                name: "daily_orders".into(),
            },
            run_id: "0190b6f2-3c4d-7e8f-9a0b-1c2d3e4f5a6b".into(),
            event_type: RunState::Complete,
            inputs: vec![Dataset {
                namespace: "postgres://db:5432".into(),
                name: "shop.orders".into(),
                ..Dataset::default()
            }],
            outputs: vec![Dataset {
                namespace: "s3://lake".into(),
                name: "orders/daily".into(),
                snapshot_id: Some("v12".into()),
                schema_version: Some("3".into()),
            }],
            annotations: BTreeMap::new(),
        }),
    );
    data.mapped_from = Some("openlineage.RunEvent".into());
    data.extensions.insert(
        "traceparent".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    );
    for e in [&build, &deploy, &data] {
        e.validate(&Limits::DEFAULT).unwrap();
    }

    let mut out = Vec::new();
    let mut head = ChainHead::GENESIS;
    let mut push = |name: &'static str,
                    raw_offset: i64,
                    epoch: i64,
                    body: RecordBody,
                    out: &mut Vec<(&'static str, LedgerRecord)>| {
        let r = chain_next(&head, raw_offset, epoch, body).unwrap();
        head = ChainHead::after(&r);
        out.push((name, r));
    };
    push(
        "genesis: build event, unicode and escapes, no redactions, one pending link",
        0,
        1,
        RecordBody::Event(EventRecord {
            event: build,
            redactions: vec![],
            links: vec![Link {
                relation: Relation::BuiltFrom,
                target: format!("commit:{SHA}"),
                status: LinkStatus::Pending,
                target_hash: None,
                target_partition: None,
                target_seq: None,
            }],
        }),
        &mut out,
    );
    let build_hash = out[0].1.hash;
    push(
        "deploy event chained to the genesis: a redaction, a resolved and a pending link",
        1,
        1,
        RecordBody::Event(EventRecord {
            event: deploy,
            redactions: vec![Redaction {
                path: "data.actor".into(),
                detector: "email".into(),
                action: RedactionAction::Token,
            }],
            links: vec![
                Link {
                    relation: Relation::Runs,
                    target: format!("artifact:{DIGEST}"),
                    status: LinkStatus::Resolved,
                    target_hash: Some(build_hash),
                    target_partition: Some(3),
                    target_seq: Some(9_007_199_254_740_990),
                },
                Link {
                    relation: Relation::Replaces,
                    target: "deploy:dep-6".into(),
                    status: LinkStatus::Pending,
                    target_hash: None,
                    target_partition: None,
                    target_seq: None,
                },
            ],
        }),
        &mut out,
    );
    push(
        "rejected marker, DLQ offset 2^53-1",
        2,
        2,
        RecordBody::Rejected(RejectedMarker {
            reason_code: "invalid_value".into(),
            reason_message: "event \"a\\u{7}b\" from \"ci\": artifact_digest must be sha256:<64 hex> \u{1}\u{1f}\u{7f}\u{2029}".into(),
            dlq_partition: 0,
            dlq_offset: MAX_LEDGER_INT,
        }),
        &mut out,
    );
    push(
        "duplicate marker",
        9_007_199_254_740_000,
        2,
        RecordBody::Duplicate(DuplicateMarker {
            original_partition: 2_147_483_647,
            original_seq: 9_007_199_254_740_990,
            source: "https://ci.example.com/acme/shop".into(),
            id: "build-1".into(),
        }),
        &mut out,
    );
    push(
        "link resolution of the genesis record's pending link",
        MAX_LEDGER_INT,
        MAX_LEDGER_INT,
        RecordBody::LinkResolution(LinkResolution {
            resolves_seq: 0,
            relation: Relation::BuiltFrom,
            target: format!("commit:{SHA}"),
            target_hash: [0xab; 32],
            target_partition: 5,
            target_seq: 0,
        }),
        &mut out,
    );
    push(
        "data run mapped from OpenLineage, with an extension and a dataset name holding '/'",
        MAX_LEDGER_INT,
        MAX_LEDGER_INT,
        RecordBody::Event(EventRecord {
            event: data,
            redactions: vec![
                Redaction {
                    path: "data.annotations.owner".into(),
                    detector: "policy:drop-owner".into(),
                    action: RedactionAction::Drop,
                },
                Redaction {
                    path: "extensions.traceparent".into(),
                    detector: "keep?".into(),
                    action: RedactionAction::Mask,
                },
            ],
            links: vec![],
        }),
        &mut out,
    );
    out
}

fn vectors_json() -> Value {
    let vectors: Vec<Value> = vector_records()
        .into_iter()
        .map(|(name, r)| {
            json!({
                "name": name,
                "record": record_json(&r),
                "canonical_hex": hex::encode(r.canonical_bytes().unwrap()),
                "prev_hash": hex::encode(r.prev_hash),
                "hash": hex::encode(r.hash),
            })
        })
        .collect();
    json!({
        "about": "Provenant ledger record hash test vectors. hash = SHA-256(\"provenant.ledger.v1\\u0000\" || prev_hash || canonical), canonical = RFC 8785 (JCS) of `record` without its \"hash\" member. The vectors form one chain: each prev_hash is the hash before it, the first is 32 zero bytes. See schemas/README.md.",
        "hash_domain_hex": hex::encode(HASH_DOMAIN),
        "vectors": vectors,
    })
}

#[test]
fn vectors_file_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/vectors.json");
    let expected = serde_json::to_string_pretty(&vectors_json()).unwrap() + "\n";
    if std::env::var_os("PROVENANT_REGEN_VECTORS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
    }
    let found = std::fs::read_to_string(&path).unwrap();
    assert!(
        found == expected,
        "schemas/vectors/vectors.json is out of date with the canonical form: if the change is intended, \
         regenerate with PROVENANT_REGEN_VECTORS=1 cargo test -p provenant-schemas --test ledger"
    );
    // Independently of how the file was written: each vector's canonical bytes and hash follow
    // from its `record`, with a hand-rolled SHA-256 input, and the vectors form one chain.
    let file: Value = serde_json::from_str(&found).unwrap();
    let mut prev = hex::encode(GENESIS_PREV_HASH);
    let vectors = file["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 6);
    for v in vectors {
        let canonical = canonical_bytes_of_json(&v["record"]).unwrap();
        assert_eq!(
            hex::encode(&canonical),
            v["canonical_hex"].as_str().unwrap()
        );
        assert_eq!(v["prev_hash"].as_str().unwrap(), prev);
        let mut input = b"provenant.ledger.v1\0".to_vec();
        input.extend(hex::decode(&prev).unwrap());
        input.extend(&canonical);
        let hash = hex::encode(Sha256::digest(&input));
        assert_eq!(v["hash"].as_str().unwrap(), hash);
        assert_eq!(v["record"]["hash"].as_str().unwrap(), hash);
        prev = hash;
    }
}

#[test]
fn canonical_form_by_example() {
    let (_, genesis) = &vector_records()[0];
    let text = String::from_utf8(genesis.canonical_bytes().unwrap()).unwrap();
    // Sorted members, no whitespace, absent optionals omitted, empty lists and maps present,
    // unions as one-member objects, JCS string escaping (only " \ and C0 controls escaped).
    assert!(text.starts_with(r#"{"body":{"event":{"event":{"data":{"build":{"actor":"José \"JJ\" Núñez \\ 漢字 🦀","annotations":{"note":"line1\nline2\ttab\r"#), "{text}");
    assert!(text.contains(r#""extensions":{}"#));
    assert!(text.contains(r#""redactions":[]"#));
    assert!(!text.contains("\"subject\""));
    assert!(!text.contains("\"hash\""));
    assert!(text.ends_with(r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","raw_offset":0,"seq":0,"writer_epoch":1}"#), "{text}");
}

#[test]
fn verify_chain_names_the_first_bad_record() {
    let chain: Vec<LedgerRecord> = vector_records().into_iter().map(|(_, r)| r).collect();
    let head = verify_chain(ChainHead::GENESIS, &chain).unwrap();
    assert_eq!(head, ChainHead::after(chain.last().unwrap()));
    // Resuming from a head in the middle.
    assert_eq!(
        verify_chain(ChainHead::after(&chain[2]), &chain[3..]).unwrap(),
        head
    );

    let mut altered = chain.clone();
    if let RecordBody::Rejected(m) = &mut altered[2].body {
        m.dlq_offset -= 1;
    }
    assert_eq!(
        verify_chain(ChainHead::GENESIS, &altered),
        Err(ChainError::HashMismatch { index: 2, seq: 2 })
    );

    let mut missing = chain.clone();
    missing.remove(3);
    assert_eq!(
        verify_chain(ChainHead::GENESIS, &missing),
        Err(ChainError::SeqGap {
            index: 3,
            expected: 3,
            found: 4
        })
    );

    let mut forked = chain.clone();
    forked[4] = LedgerRecord::seal(
        4,
        [9; 32],
        forked[4].raw_offset,
        forked[4].writer_epoch,
        forked[4].body.clone(),
    )
    .unwrap();
    let e = verify_chain(ChainHead::GENESIS, &forked).unwrap_err();
    assert_eq!(e, ChainError::PrevHashMismatch { index: 4, seq: 4 });
    assert_eq!(
        e.to_string(),
        "record 4 (seq 4): prev_hash is not the hash of the record before it"
    );
}

#[test]
fn records_that_break_the_invariants_do_not_hash() {
    let (_, mut r) = vector_records().swap_remove(2);
    r.seq = MAX_LEDGER_INT + 1;
    let e = r.compute_hash().unwrap_err();
    assert_eq!(e.field, "seq");
    r.seq = -1;
    assert!(r.compute_hash().is_err());

    let (_, mut r) = vector_records().swap_remove(1);
    if let RecordBody::Event(er) = &mut r.body {
        er.links[0].target_hash = None;
    }
    let e = r.compute_hash().unwrap_err();
    assert_eq!(e.field, "body.event.links[0].status");

    let (_, mut r) = vector_records().swap_remove(4);
    if let RecordBody::LinkResolution(l) = &mut r.body {
        l.resolves_seq = r.seq;
    }
    assert!(r.compute_hash().is_err());
}
