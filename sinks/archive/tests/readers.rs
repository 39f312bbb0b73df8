//! What other tools see: a standard Avro reader (apache-avro, with its zstandard codec) reads
//! the segments the sink writes; and inclusion proofs made by `prove` verify offline with
//! `verify_proof`, and fail when anything in them is changed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use apache_avro::types::Value;
use provenant_archive::conformance::test_key;
use provenant_archive::layout::{self, ObjectKind};
use provenant_archive::proof::{ProofError, prove, verify_proof};
use provenant_archive::testkit::LedgerGen;
use provenant_archive::{ArchiveConfig, ArchiveSink, ArchiveStore, S3Options};
use provenant_schemas::ledger::LedgerEntry;

async fn archive(dir: &std::path::Path) -> (ArchiveStore, Vec<LedgerEntry>) {
    let store =
        ArchiveStore::open(&format!("file://{}", dir.display()), &S3Options::default()).unwrap();
    let cfg = ArchiveConfig {
        archive_id: "readers".into(),
        rotate_records: 40,
        block_bytes: 4096,
        ..ArchiveConfig::default()
    };
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), test_key()).unwrap();
    sink.resume(2).await.unwrap();
    let mut g = LedgerGen::new(2);
    let mut batch = vec![g.fence()];
    batch.extend(g.records(100).unwrap());
    sink.write(2, &batch, &g.state()).await.unwrap();
    sink.close().await.unwrap();
    (store, batch.into_iter().map(|(_, e)| e).collect())
}

#[tokio::test]
async fn apache_avro_reads_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (store, entries) = archive(dir.path()).await;
    let records: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Record(r) => Some(r),
            LedgerEntry::Fence(_) => None,
        })
        .collect();
    let mut n = 0;
    for first in [0u64, 40, 80] {
        let bytes = store
            .get(&layout::key(2, first, ObjectKind::Segment))
            .await
            .unwrap();
        let reader = apache_avro::Reader::new(&bytes[..]).unwrap();
        for value in reader {
            let value = value.unwrap();
            let Value::Record(fields) = value else {
                panic!("not a record")
            };
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            let want = records[n];
            assert_eq!(get("seq"), Value::Long(want.seq));
            assert_eq!(get("hash"), Value::Fixed(32, want.hash.to_vec()));
            let Value::Union(0, body) = get("body") else {
                panic!("body is not an event")
            };
            let Value::Record(body) = *body else { panic!() };
            let Value::Record(event) = body.iter().find(|(k, _)| k == "event").unwrap().1.clone()
            else {
                panic!()
            };
            let id = event.iter().find(|(k, _)| k == "id").unwrap().1.clone();
            assert_eq!(id, Value::String(format!("ev-p2-{}", want.seq)));
            n += 1;
        }
    }
    assert_eq!(n, 100);
}

#[tokio::test]
async fn inclusion_proofs_verify_offline_and_detect_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = archive(dir.path()).await;
    let proofs = prove(&store, "ev-p2-57", None).await.unwrap();
    assert_eq!(proofs.len(), 1);
    let p = &proofs[0];
    assert_eq!((p.partition, p.seq, p.tree_size), (2, 57, 100));
    assert_eq!(p.segment, layout::key(2, 40, ObjectKind::Segment));
    // Through JSON, as `provenant prove` prints it and `verify-proof` reads it.
    let text = serde_json::to_string_pretty(p).unwrap();
    let back = serde_json::from_str(&text).unwrap();
    let ok = verify_proof(&back, Some(&test_key().verifier())).unwrap();
    assert!(ok.signature_checked);
    assert_eq!(ok.origin, "provenant/readers/p2");

    let mut altered = p.clone();
    altered.record["body"]["event"]["event"]["data"]["deploy"]["environment"] = "tampered".into();
    assert_eq!(verify_proof(&altered, None), Err(ProofError::RecordHash));
    let mut moved = p.clone();
    moved.audit_path.swap(0, 1);
    assert_eq!(verify_proof(&moved, None), Err(ProofError::Inclusion));
    let other = provenant_archive::ArchiveKey::new(
        "provenant-test",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    assert!(matches!(
        verify_proof(p, Some(&other.verifier())),
        Err(ProofError::Checkpoint(_))
    ));
    assert!(matches!(
        prove(&store, "no-such-event", None).await,
        Err(provenant_archive::proof::ProveError::NotFound(_))
    ));
}
