//! The benchmark corpora of `testkit`: the realistic one is reproducible from its seed, mixes
//! the event kinds with random identifiers, carries resolved links with their targets' hashes
//! like the processor writes them, and an archive of it verifies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use provenant_archive::conformance::test_key;
use provenant_archive::testkit::{Corpus, LedgerGen, build_archive_of};
use provenant_archive::verify::{VerifyOptions, verify};
use provenant_archive::{ArchiveStore, S3Options};
use provenant_schemas::canonical::{ChainHead, verify_chain};
use provenant_schemas::ledger::{LedgerEntry, LedgerRecord, LinkStatus, RecordBody};

fn records(g: &mut LedgerGen, n: usize) -> Vec<LedgerRecord> {
    g.fence();
    g.records(n)
        .unwrap()
        .into_iter()
        .map(|(_, e)| match e {
            LedgerEntry::Record(r) => r,
            LedgerEntry::Fence(_) => panic!("records() gave a fence"),
        })
        .collect()
}

#[test]
fn the_realistic_corpus_is_reproducible_and_varied() {
    let a = records(&mut LedgerGen::realistic(1, 42), 400);
    assert_eq!(a, records(&mut LedgerGen::realistic(1, 42), 400));
    assert_ne!(a, records(&mut LedgerGen::realistic(1, 43), 400));
    assert_ne!(a, records(&mut LedgerGen::realistic(2, 42), 400));
    verify_chain(ChainHead::GENESIS, &a).unwrap();

    let mut kinds = BTreeMap::new();
    let mut ids = BTreeSet::new();
    let mut times = BTreeSet::new();
    let (mut resolved, mut links) = (0, 0);
    for r in &a {
        let RecordBody::Event(er) = &r.body else {
            panic!("not an event record")
        };
        *kinds.entry(er.event.kind().as_str()).or_insert(0) += 1;
        let id = &er.event.id;
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "4", "a version 4 UUID: {id}");
        assert!(ids.insert(id.clone()), "id {id} twice");
        times.insert(er.event.time.clone().unwrap());
        er.event
            .validate(&provenant_schemas::Limits::DEFAULT)
            .unwrap();
        for l in &er.links {
            links += 1;
            if l.status == LinkStatus::Resolved {
                resolved += 1;
                let target = &a[usize::try_from(l.target_seq.unwrap()).unwrap()];
                assert_eq!(
                    l.target_hash,
                    Some(target.hash),
                    "a link carries its target's hash"
                );
            }
        }
    }
    for kind in ["build", "artifact", "deploy", "runtime"] {
        assert!(kinds.get(kind).copied().unwrap_or(0) >= 20, "{kinds:?}");
    }
    assert!(times.len() > 390, "timestamps advance");
    assert!(resolved > links / 2, "{resolved} of {links} links resolved");
}

#[tokio::test]
async fn an_archive_of_the_realistic_corpus_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArchiveStore::open(
        &format!("file://{}", dir.path().display()),
        &S3Options::default(),
    )
    .unwrap();
    let corpus = Corpus::Realistic { seed: 7 };
    build_archive_of(store.clone(), test_key(), corpus, 3_000, 2, 500)
        .await
        .unwrap();
    let report = verify(
        &store,
        &VerifyOptions {
            pubkey: Some(test_key().verifier()),
            ..VerifyOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.failures);
    assert_eq!((report.records, report.segments), (3_000, 6));
}
