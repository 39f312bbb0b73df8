//! Schema-crate throughput on one ~500-byte event, with a baseline measured in the same run.
//!
//! `cargo bench -p provenant-schemas --bench schemas`
//!
//! * baseline: `serde_json::from_slice::<serde_json::Value>` (parse only, no checks);
//! * ours: strict decode + validation (`Event::from_json`) + Avro single-object encoding;
//! * ledger: canonical bytes (RFC 8785) + SHA-256 of a ledger record holding that event, by
//!   the direct canonical writer (`compute_hash`: streamed into SHA-256; `compute_hash_with`:
//!   through a reused buffer; `canonical_bytes`: the bytes alone, allocating) and by the
//!   reference (`record_json` + `serde_json_canonicalizer`, `canonical_bytes_reference`), in the
//!   same run. The two are checked to agree before timing.
//!
//! After criterion's report, a short self-timed pass prints each figure as a ratio to the
//! baseline, so the numbers can be compared across machines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use provenant_schemas::canonical::{ChainHead, chain_next, hash_of};
use provenant_schemas::ledger::{
    EventRecord, LedgerRecord, Link, LinkStatus, RecordBody, Redaction, RedactionAction,
};
use provenant_schemas::{Event, Limits, Relation, avro};

fn event_bytes() -> Vec<u8> {
    let v = serde_json::json!({
        "specversion": "1.0",
        "id": "0190b6f2-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
        "source": "https://ci.example.com/acme/shop",
        "type": "io.provenant.deploy.v1",
        "time": "2026-11-23T10:05:00Z",
        "datacontenttype": "application/json",
        "data": {
            "deploy_id": "deploy-2026-11-23-0007",
            "artifact_digest": "sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c",
            "environment": "production",
            "service": "shop-checkout",
            "deploy_timestamp": "2026-11-23T10:05:00Z",
            "actor": "release-bot",
            "previous_deploy_id": "deploy-2026-11-22-0003",
            "annotations": {"region": "eu-west-1", "change": "CHG-4711"}
        }
    });
    v.to_string().into_bytes()
}

fn ledger_record(event: Event) -> LedgerRecord {
    chain_next(
        &ChainHead::GENESIS,
        12_345,
        3,
        RecordBody::Event(EventRecord {
            event,
            redactions: vec![Redaction {
                path: "data.actor".into(),
                detector: "email".into(),
                action: RedactionAction::Token,
            }],
            links: vec![Link {
                relation: Relation::Runs,
                target: "artifact:sha256:9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c".into(),
                status: LinkStatus::Resolved,
                target_hash: Some([7; 32]),
                target_partition: Some(2),
                target_seq: Some(99),
            }],
        }),
    )
    .unwrap()
}

fn baseline(bytes: &[u8]) {
    black_box(serde_json::from_slice::<serde_json::Value>(black_box(bytes)).unwrap());
}

fn ours(bytes: &[u8]) {
    let e = Event::from_json(black_box(bytes), &Limits::DEFAULT).unwrap();
    black_box(avro::encode_event(&e));
}

fn decode_only(bytes: &[u8]) {
    black_box(Event::from_json(black_box(bytes), &Limits::DEFAULT).unwrap());
}

fn avro_decode(bytes: &[u8]) {
    black_box(avro::decode_event(black_box(bytes), &Limits::DEFAULT).unwrap());
}

fn hash(r: &LedgerRecord) {
    black_box(black_box(r).compute_hash().unwrap());
}

fn hash_with(r: &LedgerRecord, buf: &mut Vec<u8>) {
    black_box(black_box(r).compute_hash_with(buf).unwrap());
}

fn canonical_only(r: &LedgerRecord) {
    black_box(black_box(r).canonical_bytes().unwrap());
}

fn hash_reference(r: &LedgerRecord) {
    let r = black_box(r);
    let canonical = r.canonical_bytes_reference().unwrap();
    black_box(hash_of(&r.prev_hash, &canonical));
}

/// Mean time per call over about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    for _ in 0..1000 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    start.elapsed() / n
}

fn main() {
    let bytes = event_bytes();
    let event = Event::from_json(&bytes, &Limits::DEFAULT).unwrap();
    let avro_bytes = avro::encode_event(&event);
    let record = ledger_record(event);
    assert_eq!(
        record.canonical_bytes().unwrap(),
        record.canonical_bytes_reference().unwrap(),
        "the direct writer and the reference disagree"
    );
    let mut buf = Vec::new();

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("baseline_serde_json_value", |b| b.iter(|| baseline(&bytes)));
    g.bench_function("from_json_validate_avro_encode", |b| {
        b.iter(|| ours(&bytes));
    });
    g.bench_function("from_json_validate", |b| b.iter(|| decode_only(&bytes)));
    g.bench_function("avro_decode_validate", |b| {
        b.iter(|| avro_decode(&avro_bytes));
    });
    g.bench_function("ledger_hash_reference", |b| {
        b.iter(|| hash_reference(&record));
    });
    g.bench_function("ledger_hash", |b| b.iter(|| hash(&record)));
    g.bench_function("ledger_hash_with_buffer", |b| {
        b.iter(|| hash_with(&record, &mut buf));
    });
    g.bench_function("ledger_canonical_bytes", |b| {
        b.iter(|| canonical_only(&record));
    });
    g.finish();
    c.final_summary();

    let budget = Duration::from_millis(300);
    let base = time(budget, || baseline(&bytes));
    println!(
        "\nevent: {} bytes JSON, {} bytes Avro (single-object); ledger record canonical form {} bytes",
        bytes.len(),
        avro_bytes.len(),
        record.canonical_bytes().unwrap().len()
    );
    println!(
        "{:<36} {:>10} {:>8} {:>12}",
        "", "ns/event", "ratio", "per s (1 core)"
    );
    for (name, t) in [
        ("baseline serde_json::Value", base),
        (
            "from_json+validate+avro encode",
            time(budget, || ours(&bytes)),
        ),
        ("from_json+validate", time(budget, || decode_only(&bytes))),
        (
            "avro decode+validate",
            time(budget, || avro_decode(&avro_bytes)),
        ),
        (
            "ledger hash, reference (Value+JCS)",
            time(budget, || hash_reference(&record)),
        ),
        ("ledger hash (compute_hash)", time(budget, || hash(&record))),
        (
            "ledger hash (compute_hash_with)",
            time(budget, || hash_with(&record, &mut buf)),
        ),
        (
            "ledger canonical_bytes alone",
            time(budget, || canonical_only(&record)),
        ),
    ] {
        println!(
            "{name:<36} {:>10} {:>7.2}x {:>12.0}",
            t.as_nanos(),
            t.as_secs_f64() / base.as_secs_f64(),
            1.0 / t.as_secs_f64()
        );
    }
}
