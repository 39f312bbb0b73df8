//! The tamper suite: a real archive on the local filesystem, altered one way per test, and
//! `verify` must name the exact partition, object and record (seq, record index, byte offset)
//! and the check that failed.
//!
//! The archive: partition 0 holds seq 0..=49 in five segments of ten (s0, s10, s20, s30, s40),
//! partition 1 holds seq 0..=14 in two.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use provenant_archive::conformance::test_key;
use provenant_archive::layout::{self, ObjectKind};
use provenant_archive::manifest::{Hex32, Manifest, MerkleJson};
use provenant_archive::merkle::Frontier;
use provenant_archive::ocf::{self, Container};
use provenant_archive::read::decode_segment;
use provenant_archive::testkit::LedgerGen;
use provenant_archive::verify::{Check, VerifyOptions, VerifyReport, verify};
use provenant_archive::{ArchiveConfig, ArchiveKey, ArchiveSink, ArchiveStore, S3Options};
use provenant_schemas::ledger::{LedgerRecord, RecordBody};
use sha2::{Digest, Sha256};

struct Archive {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: ArchiveStore,
}

async fn build_with(gen0: &mut LedgerGen, key: ArchiveKey) -> Archive {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let store =
        ArchiveStore::open(&format!("file://{}", root.display()), &S3Options::default()).unwrap();
    let cfg = ArchiveConfig {
        archive_id: "tamper".into(),
        rotate_records: 10,
        block_bytes: 1500,
        ..ArchiveConfig::default()
    };
    let mut sink = ArchiveSink::with_store(&cfg, store.clone(), key).unwrap();
    sink.resume(0).await.unwrap();
    sink.resume(1).await.unwrap();
    let mut batch = vec![gen0.fence()];
    batch.extend(gen0.records(50).unwrap());
    sink.write(0, &batch, &gen0.state()).await.unwrap();
    let mut g1 = LedgerGen::new(1);
    let mut batch = vec![g1.fence()];
    batch.extend(g1.records(15).unwrap());
    sink.write(1, &batch, &g1.state()).await.unwrap();
    sink.close().await.unwrap();
    let root = std::fs::canonicalize(&root).unwrap();
    Archive {
        _dir: dir,
        root,
        store,
    }
}

async fn build() -> Archive {
    build_with(&mut LedgerGen::new(0), test_key()).await
}

impl Archive {
    fn path(&self, p: u32, seq: u64, kind: ObjectKind) -> PathBuf {
        self.root.join(layout::key(p, seq, kind))
    }

    fn read(&self, p: u32, seq: u64, kind: ObjectKind) -> Vec<u8> {
        std::fs::read(self.path(p, seq, kind)).unwrap()
    }

    fn write(&self, p: u32, seq: u64, kind: ObjectKind, bytes: &[u8]) {
        std::fs::write(self.path(p, seq, kind), bytes).unwrap();
    }

    fn remove_segment(&self, p: u32, seq: u64) {
        for kind in [
            ObjectKind::Segment,
            ObjectKind::Manifest,
            ObjectKind::Checkpoint,
        ] {
            std::fs::remove_file(self.path(p, seq, kind)).unwrap();
        }
    }

    fn records(&self, p: u32, seq: u64) -> Vec<LedgerRecord> {
        decode_segment(&self.read(p, seq, ObjectKind::Segment))
            .unwrap()
            .records
    }

    fn manifest(&self, p: u32, seq: u64) -> Manifest {
        Manifest::parse(&self.read(p, seq, ObjectKind::Manifest)).unwrap()
    }

    /// Rewrites a segment with `records` (same header, one block) and updates its manifest's
    /// digest and size — what an attacker who knows the format does.
    fn rewrite_segment(&self, p: u32, seq: u64, records: &[LedgerRecord]) -> Manifest {
        let old = self.read(p, seq, ObjectKind::Segment);
        let c = Container::parse(&old).unwrap();
        let mut bytes = ocf::header(&c.meta, &c.sync);
        let mut data = Vec::new();
        for r in records {
            data.extend(r.to_avro_datum());
        }
        let z = zstd::bulk::compress(&data, 3).unwrap();
        bytes.extend(ocf::block(records.len() as u64, &z, &c.sync));
        self.write(p, seq, ObjectKind::Segment, &bytes);
        let mut m = self.manifest(p, seq);
        m.segment_sha256 = Hex32(Sha256::digest(&bytes).into());
        m.segment_bytes = bytes.len() as u64;
        self.write(p, seq, ObjectKind::Manifest, &m.to_bytes());
        m
    }
}

async fn run(a: &Archive, since: Option<String>, pubkey: bool) -> VerifyReport {
    verify(
        &a.store,
        &VerifyOptions {
            pubkey: pubkey.then(|| test_key().verifier()),
            since,
            threads: 2,
            progress: None,
        },
    )
    .await
    .unwrap()
}

/// The one failure of `check` (there may be others, of other checks).
fn the_failure(r: &VerifyReport, check: Check) -> &provenant_archive::Failure {
    let found: Vec<_> = r.failures.iter().filter(|f| f.check == check).collect();
    assert_eq!(
        found.len(),
        1,
        "one {check:?} failure expected, got: {:#?}",
        r.failures
    );
    found[0]
}

fn seg(p: u32, seq: u64) -> String {
    layout::key(p, seq, ObjectKind::Segment)
}

#[tokio::test]
async fn an_untouched_archive_verifies() {
    let a = build().await;
    let r = run(&a, None, true).await;
    assert!(r.ok, "{:#?}", r.failures);
    assert_eq!((r.segments, r.records), (7, 65));
    assert!(r.signatures_checked);
    assert!(r.warnings.is_empty());
    let r = run(&a, None, false).await;
    assert!(r.ok && !r.signatures_checked);
}

#[tokio::test]
async fn flipped_byte_in_a_segment() {
    let a = build().await;
    let mut bytes = a.read(0, 20, ObjectKind::Segment);
    let at = bytes.len() - 200;
    bytes[at] ^= 0x01;
    a.write(0, 20, ObjectKind::Segment, &bytes);
    let r = run(&a, None, true).await;
    assert!(!r.ok);
    let f = the_failure(&r, Check::SegmentDigest);
    assert_eq!(
        (f.partition, f.key.as_str()),
        (Some(0), seg(0, 20).as_str())
    );
    // Every failure is in that segment, and the record-level one names where.
    assert!(
        r.failures.iter().all(|f| f.key == seg(0, 20)),
        "{:#?}",
        r.failures
    );
    let content: Vec<_> = r
        .failures
        .iter()
        .filter(|f| f.check != Check::SegmentDigest)
        .collect();
    assert_eq!(content.len(), 1, "{:#?}", r.failures);
    assert!(content[0].byte_offset.is_some() && content[0].record_index.is_some());
}

#[tokio::test]
async fn one_record_deleted_with_the_manifest_digest_updated() {
    let a = build().await;
    let mut recs = a.records(0, 20);
    recs.remove(5); // seq 25
    a.rewrite_segment(0, 20, &recs);
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Chain);
    assert_eq!(f.key, seg(0, 20));
    assert_eq!((f.seq, f.record_index), (Some(25), Some(5)));
    assert!(f.message.contains("seq 26, expected 25"), "{f}");
    assert!(r.failures.iter().all(|f| f.check != Check::SegmentDigest));
}

#[tokio::test]
async fn two_records_swapped() {
    let a = build().await;
    let mut recs = a.records(0, 20);
    recs.swap(2, 3); // seq 22 and 23
    a.rewrite_segment(0, 20, &recs);
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Chain);
    assert_eq!(
        (f.key.as_str(), f.seq, f.record_index),
        (seg(0, 20).as_str(), Some(22), Some(2))
    );
}

#[tokio::test]
async fn a_truncated_segment() {
    let a = build().await;
    let bytes = a.read(0, 30, ObjectKind::Segment);
    a.write(0, 30, ObjectKind::Segment, &bytes[..bytes.len() - 100]);
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::SegmentDigest);
    assert_eq!(f.key, seg(0, 30));
    let f = the_failure(&r, Check::SegmentFormat);
    assert_eq!(f.key, seg(0, 30));
    assert!(
        f.byte_offset.is_some() && f.message.contains("truncated"),
        "{f}"
    );
}

#[tokio::test]
async fn a_middle_segment_deleted() {
    let a = build().await;
    a.remove_segment(0, 20);
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Gap);
    assert_eq!(
        (f.partition, f.key.as_str(), f.seq),
        (Some(0), seg(0, 30).as_str(), Some(20))
    );
    assert!(f.message.contains("20..=29"), "{f}");
    // The Merkle tree after s30 cannot be rebuilt without s20, but nothing else is blamed.
    assert!(
        r.failures.iter().all(|f| f.check == Check::Gap),
        "{:#?}",
        r.failures
    );
}

#[tokio::test]
async fn the_last_segment_deleted_is_caught_by_a_saved_checkpoint() {
    let a = build().await;
    let saved = String::from_utf8(a.read(0, 40, ObjectKind::Checkpoint)).unwrap();
    a.remove_segment(0, 40);
    // Alone, a shorter archive is self-consistent:
    assert!(run(&a, None, true).await.ok);
    let r = run(&a, Some(saved), true).await;
    assert!(r.consistency_checked);
    let f = the_failure(&r, Check::Consistency);
    assert_eq!(f.partition, Some(0));
    assert!(
        f.message.contains("tree size 50") && f.message.contains("has 40"),
        "{f}"
    );
    assert!(f.message.contains("40..=49"), "{f}");
}

#[tokio::test]
async fn a_saved_older_checkpoint_is_consistent() {
    let a = build().await;
    let saved = String::from_utf8(a.read(0, 20, ObjectKind::Checkpoint)).unwrap();
    let r = run(&a, Some(saved), true).await;
    assert!(r.ok && r.consistency_checked, "{:#?}", r.failures);
}

/// Rewrites p0's history from seq 45 on (a changed record, the rest re-chained), with
/// segment and manifest consistent (digest, hashes, Merkle frontier and root): only the signed
/// checkpoint can tell.
fn rewrite_history_from_45(a: &Archive) {
    let mut recs = a.records(0, 40);
    let prev_frontier = a.manifest(0, 30).merkle.frontier().unwrap();
    let mut prev = recs[4].hash;
    for r in recs.iter_mut().skip(5) {
        if r.seq == 45
            && let RecordBody::Event(er) = &mut r.body
        {
            er.event.id = "forged-event".into();
        }
        *r = LedgerRecord::seal(r.seq, prev, r.raw_offset, r.writer_epoch, r.body.clone()).unwrap();
        prev = r.hash;
    }
    let mut m = a.rewrite_segment(0, 40, &recs);
    let mut f: Frontier = prev_frontier;
    for r in &recs {
        f.push_record_hash(&r.hash);
    }
    m.last_hash = Hex32(prev);
    m.merkle = MerkleJson::of(&f);
    m.reader_state.head_hash = Hex32(prev);
    // The segment header carries the reader state too: keep them equal.
    let bytes = a.read(0, 40, ObjectKind::Segment);
    let c = Container::parse(&bytes).unwrap();
    let mut meta: provenant_archive::manifest::SegmentMeta =
        serde_json::from_str(c.meta_str(ocf::META_SEGMENT).unwrap()).unwrap();
    meta.reader_state = m.reader_state;
    let mut header_meta: BTreeMap<String, Vec<u8>> = c.meta.clone();
    header_meta.insert(ocf::META_SEGMENT.into(), serde_json::to_vec(&meta).unwrap());
    let blocks_start = ocf::header(&c.meta, &c.sync).len();
    let mut new_bytes = ocf::header(&header_meta, &c.sync);
    new_bytes.extend_from_slice(&bytes[blocks_start..]);
    a.write(0, 40, ObjectKind::Segment, &new_bytes);
    m.segment_sha256 = Hex32(Sha256::digest(&new_bytes).into());
    m.segment_bytes = new_bytes.len() as u64;
    a.write(0, 40, ObjectKind::Manifest, &m.to_bytes());
}

#[tokio::test]
async fn a_segment_and_its_manifest_replaced_consistently() {
    let a = build().await;
    rewrite_history_from_45(&a);
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Checkpoint);
    assert_eq!(f.key, layout::key(0, 40, ObjectKind::Checkpoint));
    assert_eq!(f.seq, Some(49));
    assert!(
        f.message.contains("checkpoint signs tree size 50 root"),
        "{f}"
    );
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
}

#[tokio::test]
async fn a_forged_checkpoint_signature() {
    let a = build().await;
    rewrite_history_from_45(&a);
    // The forger re-signs the new tree with a key of the same name that is not ours.
    let forger = ArchiveKey::new("provenant-test", SigningKey::from_bytes(&[66; 32])).unwrap();
    let m = a.manifest(0, 40);
    let cp = provenant_archive::Checkpoint {
        origin: layout::origin("tamper", 0),
        size: 50,
        root: m.merkle.root.0,
    };
    a.write(0, 40, ObjectKind::Checkpoint, cp.sign(&forger).as_bytes());
    // Without the public key the forgery is self-consistent, and the report says so.
    let r = run(&a, None, false).await;
    assert!(r.ok && !r.signatures_checked);
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Signature);
    assert_eq!(f.key, layout::key(0, 40, ObjectKind::Checkpoint));
    assert!(
        f.message.contains("no signature by key provenant-test"),
        "{f}"
    );

    // A flipped signature byte on a genuine checkpoint.
    let a = build().await;
    let mut text = String::from_utf8(a.read(1, 10, ObjectKind::Checkpoint)).unwrap();
    let sig_at = text.rfind(' ').unwrap() + 10;
    let c = if &text[sig_at..=sig_at] == "A" {
        "B"
    } else {
        "A"
    };
    text.replace_range(sig_at..=sig_at, c);
    a.write(1, 10, ObjectKind::Checkpoint, text.as_bytes());
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Signature);
    assert_eq!(
        (f.partition, f.key.clone()),
        (Some(1), layout::key(1, 10, ObjectKind::Checkpoint))
    );
}

#[tokio::test]
async fn an_old_checkpoint_replayed() {
    let a = build().await;
    let saved = String::from_utf8(a.read(0, 40, ObjectKind::Checkpoint)).unwrap();
    // Roll the archive back to tree size 40, and present the genuine, signed checkpoint of
    // size 30 in place of the newest one.
    let old = a.read(0, 20, ObjectKind::Checkpoint);
    a.remove_segment(0, 40);
    a.write(0, 30, ObjectKind::Checkpoint, &old);
    let r = run(&a, Some(saved), true).await;
    let f = the_failure(&r, Check::Checkpoint);
    assert_eq!(f.key, layout::key(0, 30, ObjectKind::Checkpoint));
    assert!(f.message.contains("signs tree size 30"), "{f}");
    let f = the_failure(&r, Check::Consistency);
    assert!(f.message.contains("tree size 50"), "{f}");
}

#[tokio::test]
async fn a_saved_checkpoint_from_another_history_fails_the_consistency_proof() {
    let a = build().await;
    // Same key, same origin, same sizes, other records: a fork.
    let mut other_gen = LedgerGen::new(5);
    let fork = build_with(&mut other_gen, test_key()).await;
    let saved = String::from_utf8(fork.read(0, 20, ObjectKind::Checkpoint)).unwrap();
    let r = run(&a, Some(saved), true).await;
    let f = the_failure(&r, Check::Consistency);
    assert!(
        f.message
            .contains("consistency proof from tree size 30 to 50 fails"),
        "{f}"
    );
}

#[tokio::test]
async fn an_unexpected_object_and_an_incomplete_middle_segment() {
    let a = build().await;
    std::fs::write(a.root.join("p0000/notes.txt"), b"hello").unwrap();
    std::fs::remove_file(a.path(0, 10, ObjectKind::Checkpoint)).unwrap();
    let r = run(&a, None, true).await;
    let f = the_failure(&r, Check::Listing);
    assert_eq!(f.key, "p0000/notes.txt");
    let f = the_failure(&r, Check::Incomplete);
    assert_eq!(f.key, layout::stem(0, 10));
}

#[test]
fn failures_print_their_location() {
    let f = provenant_archive::Failure {
        check: Check::Chain,
        partition: Some(3),
        key: "p0003/s00000000000000000100.avro".into(),
        seq: Some(105),
        record_index: Some(5),
        byte_offset: Some(1234),
        message: "m".into(),
    };
    assert_eq!(
        f.to_string(),
        "[chain] partition 3 p0003/s00000000000000000100.avro seq 105 (record #5, byte 1234): m"
    );
    let _ = Path::new("");
}
