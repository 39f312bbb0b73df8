//! The direct canonical writer (`LedgerRecord::canonical_bytes`, `compute_hash`,
//! `compute_hash_with`) against the reference (`record_json` + `serde_json_canonicalizer`,
//! `LedgerRecord::canonical_bytes_reference`): byte for byte, on records far wilder than valid
//! events (any Unicode in every string, controls, characters on both sides of the UTF-16 /
//! UTF-8 ordering difference, many map members).
//!
//! Default 256 cases; `PROPTEST_CASES=20000 cargo test -p provenant-schemas --release --test
//! canonical_writer` for a long run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use provenant_schemas::canonical::{DatumScratch, HASH_DOMAIN, hash_of, hash_record_datum};
use provenant_schemas::ledger::{
    DuplicateMarker, EventRecord, LedgerRecord, Link, LinkResolution, LinkStatus, MAX_LEDGER_INT,
    RecordBody, Redaction, RedactionAction, RejectedMarker,
};
use provenant_schemas::{
    Approval, Artifact, Build, Data, Dataset, Decision, Deploy, Event, EventData, Job, Relation,
    RunState, Runtime,
};
use sha2::{Digest, Sha256};

/// One character, biased to what matters to JCS: the escaped ones, the unescaped
/// look-alikes, both sides of the UTF-16 ordering difference (U+D7FF | U+E000..=U+FFFF |
/// U+10000..), and any scalar value at all.
fn wild_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range('a', 'e'),
        3 => prop::char::range('\0', '\u{1f}'),
        2 => prop::sample::select(vec!['"', '\\', '/', '\u{7f}', '\u{80}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{d7ff}', 'é', '漢']),
        2 => prop::char::range('\u{e000}', '\u{ffff}'),
        2 => prop::sample::select(vec!['\u{e000}', '\u{fffd}', '\u{ffff}', '\u{10000}', '🦀', '\u{10ffff}']),
        2 => prop::char::range('\u{10000}', '\u{10ffff}'),
        2 => any::<char>(),
    ]
}

fn s() -> BoxedStrategy<String> {
    prop::collection::vec(wild_char(), 0..12)
        .prop_map(|v| v.into_iter().collect())
        .boxed()
}

fn o() -> BoxedStrategy<Option<String>> {
    prop::option::of(s()).boxed()
}

/// Member names made of few characters, so that many share a prefix and first differ where
/// the UTF-16 and UTF-8 orders disagree.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::collection::vec(
            prop::sample::select(vec!['a', '\u{e000}', '\u{ffff}', '\u{10000}', '🦀', '\u{d7ff}', '"', '\n']),
            0..4
        )
        .prop_map(|v| v.into_iter().collect()),
        1 => s(),
    ].boxed()
}

fn map() -> BoxedStrategy<BTreeMap<String, String>> {
    prop_oneof![
        1 => Just(BTreeMap::new()),
        3 => prop::collection::btree_map(key(), s(), 0..24),
    ]
    .boxed()
}

fn num() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..20,
        (MAX_LEDGER_INT - 20)..=MAX_LEDGER_INT,
        0..=MAX_LEDGER_INT
    ]
}

fn part() -> impl Strategy<Value = i32> {
    prop_oneof![0i32..20, Just(i32::MAX), 0..=i32::MAX]
}

fn relation() -> impl Strategy<Value = Relation> {
    prop::sample::select(Relation::ALL.to_vec())
}

fn dataset() -> BoxedStrategy<Dataset> {
    (s(), s(), o(), o())
        .prop_map(|(namespace, name, snapshot_id, schema_version)| Dataset {
            namespace,
            name,
            snapshot_id,
            schema_version,
        })
        .boxed()
}

fn data() -> BoxedStrategy<EventData> {
    prop_oneof![
        ((s(), o(), s(), s(), o()), (o(), o(), o(), o(), map())).prop_map(
            |(
                (commit_sha, branch, build_id, build_timestamp, actor),
                (pipeline_url, repo_url, artifact_digest, signature, annotations),
            )| EventData::Build(Build {
                commit_sha,
                branch,
                build_id,
                build_timestamp,
                actor,
                pipeline_url,
                repo_url,
                artifact_digest,
                signature,
                annotations,
            })
        ),
        (s(), o(), o(), o(), o(), map()).prop_map(
            |(artifact_digest, build_id, commit_sha, name, signature, annotations)| {
                EventData::Artifact(Artifact {
                    artifact_digest,
                    build_id,
                    commit_sha,
                    name,
                    signature,
                    annotations,
                })
            }
        ),
        ((s(), s(), s(), s(), s()), (o(), o(), o(), o(), map())).prop_map(
            |(
                (deploy_id, artifact_digest, environment, service, deploy_timestamp),
                (actor, config_hash, previous_deploy_id, pipeline_url, annotations),
            )| EventData::Deploy(Deploy {
                deploy_id,
                artifact_digest,
                environment,
                service,
                deploy_timestamp,
                actor,
                config_hash,
                previous_deploy_id,
                pipeline_url,
                annotations,
            })
        ),
        ((s(), s(), s()), (o(), o(), o(), o(), map())).prop_map(
            |(
                (instance_id, service, environment),
                (deploy_id, artifact_digest, trace_id, message, annotations),
            )| EventData::Runtime(Runtime {
                instance_id,
                service,
                environment,
                deploy_id,
                artifact_digest,
                trace_id,
                message,
                annotations,
            })
        ),
        (
            (s(), s(), s(), prop::sample::select(RunState::ALL.to_vec())),
            (
                prop::collection::vec(dataset(), 0..4),
                prop::collection::vec(dataset(), 0..4),
                map()
            )
        )
            .prop_map(
                |((namespace, name, run_id, event_type), (inputs, outputs, annotations))| {
                    EventData::Data(Data {
                        job: Job { namespace, name },
                        run_id,
                        event_type,
                        inputs,
                        outputs,
                        annotations,
                    })
                }
            ),
        (
            (s(), o(), o(), s()),
            (
                prop::sample::select(vec![Decision::Approved, Decision::Rejected]),
                s(),
                o(),
                o(),
                map()
            )
        )
            .prop_map(
                |(
                    (approval_id, deploy_id, artifact_digest, environment),
                    (decision, approver, reason, policy, annotations),
                )| EventData::Approval(Approval {
                    approval_id,
                    deploy_id,
                    artifact_digest,
                    environment,
                    decision,
                    approver,
                    reason,
                    policy,
                    annotations,
                })
            ),
    ]
    .boxed()
}

fn event() -> BoxedStrategy<Event> {
    ((s(), s(), o(), o(), o()), (map(), o(), data()))
        .prop_map(
            |((id, source, time, subject, dataschema), (extensions, mapped_from, data))| Event {
                id,
                source,
                time,
                subject,
                dataschema,
                extensions,
                mapped_from,
                data,
            },
        )
        .boxed()
}

fn link() -> BoxedStrategy<Link> {
    (
        relation(),
        s(),
        prop::option::of((any::<[u8; 32]>(), part(), num())),
    )
        .prop_map(|(relation, target, resolved)| Link {
            relation,
            target,
            status: if resolved.is_some() {
                LinkStatus::Resolved
            } else {
                LinkStatus::Pending
            },
            target_hash: resolved.map(|r| r.0),
            target_partition: resolved.map(|r| r.1),
            target_seq: resolved.map(|r| r.2),
        })
        .boxed()
}

fn body() -> BoxedStrategy<RecordBody> {
    prop_oneof![
        3 => (
            event(),
            prop::collection::vec(
                (s(), s(), prop::sample::select(RedactionAction::ALL.to_vec())).prop_map(
                    |(path, detector, action)| Redaction {
                        path,
                        detector,
                        action
                    }
                ),
                0..4
            ),
            prop::collection::vec(link(), 0..4)
        )
            .prop_map(|(event, redactions, links)| RecordBody::Event(EventRecord {
                event,
                redactions,
                links
            })),
        1 => (s(), s(), part(), num()).prop_map(
            |(reason_code, reason_message, dlq_partition, dlq_offset)| {
                RecordBody::Rejected(RejectedMarker {
                    reason_code,
                    reason_message,
                    dlq_partition,
                    dlq_offset,
                })
            }
        ),
        1 => (part(), num(), s(), s()).prop_map(|(original_partition, original_seq, source, id)| {
            RecordBody::Duplicate(DuplicateMarker {
                original_partition,
                original_seq,
                source,
                id,
            })
        }),
        1 => (num(), relation(), s(), any::<[u8; 32]>(), part(), num()).prop_map(
            |(resolves_seq, relation, target, target_hash, target_partition, target_seq)| {
                RecordBody::LinkResolution(LinkResolution {
                    resolves_seq,
                    relation,
                    target,
                    target_hash,
                    target_partition,
                    target_seq,
                })
            }
        ),
    ]
    .boxed()
}

/// A record that passes `LedgerRecord::check` (only the ledger invariants: the event inside
/// need not be a valid event), `hash` left at its arbitrary value.
fn record() -> BoxedStrategy<LedgerRecord> {
    (
        num(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        num(),
        num(),
        body(),
    )
        .prop_map(
            |(mut seq, prev_hash, hash, raw_offset, writer_epoch, mut body)| {
                if let RecordBody::LinkResolution(l) = &mut body {
                    seq = seq.max(1);
                    l.resolves_seq = l.resolves_seq.min(seq - 1);
                }
                let r = LedgerRecord {
                    seq,
                    prev_hash,
                    hash,
                    raw_offset,
                    writer_epoch,
                    body,
                };
                r.check().unwrap();
                r
            },
        )
        .boxed()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn fast_canonical_bytes_equal_the_reference(record in record()) {
        let reference = record.canonical_bytes_reference().unwrap();
        let fast = record.canonical_bytes().unwrap();
        if fast != reference {
            // Show the first difference as text, not as two long byte lists.
            let at = fast.iter().zip(&reference).take_while(|(a, b)| a == b).count();
            let show = |b: &[u8]| String::from_utf8_lossy(&b[at.saturating_sub(40)..]).into_owned();
            prop_assert!(false, "differ at byte {at}:\n fast: {}\n  ref: {}", show(&fast), show(&reference));
        }

        // The hash, three ways: streamed (no allocation), through a reused buffer (which then
        // holds the canonical bytes), and by hand from the reference bytes.
        let expected = hash_of(&record.prev_hash, &reference);
        let mut by_hand = Sha256::new();
        by_hand.update(HASH_DOMAIN);
        by_hand.update(record.prev_hash);
        by_hand.update(&reference);
        prop_assert_eq!(<[u8; 32]>::from(by_hand.finalize()), expected);
        prop_assert_eq!(record.compute_hash().unwrap(), expected);
        let mut buf = b"left over from an earlier record".to_vec();
        prop_assert_eq!(record.compute_hash_with(&mut buf).unwrap(), expected);
        prop_assert_eq!(&buf, &reference);

        // Appending leaves what was in the buffer.
        let mut appended = b"prefix".to_vec();
        record.write_canonical(&mut appended).unwrap();
        prop_assert_eq!(&appended[..6], b"prefix");
        prop_assert_eq!(&appended[6..], &reference[..]);

        // seal() hashes with the fast writer too.
        let sealed = LedgerRecord::seal(
            record.seq,
            record.prev_hash,
            record.raw_offset,
            record.writer_epoch,
            record.body.clone(),
        )
        .unwrap();
        prop_assert_eq!(sealed.hash, expected);
    }

    /// `hash_record_datum` (verify's path: the hash straight from the Avro datum) gives the
    /// same hash as decoding and `compute_hash`, and finds where the datum ends in a block.
    #[test]
    fn datum_hash_equals_the_writer(record in record(), next in record()) {
        let expected = record.compute_hash().unwrap();
        let datum = record.to_avro_datum();
        let mut block = datum.clone();
        block.extend_from_slice(&next.to_avro_datum());
        let mut scratch = DatumScratch::default();
        let d = hash_record_datum(&block, &mut scratch).unwrap();
        prop_assert_eq!(d.computed, expected);
        prop_assert_eq!(d.len, datum.len());
        prop_assert_eq!((d.seq, d.prev_hash, d.hash), (record.seq, record.prev_hash, record.hash));
        let d2 = hash_record_datum(&block[d.len..], &mut scratch).unwrap();
        prop_assert_eq!(d2.computed, next.compute_hash().unwrap());
        prop_assert_eq!(d.len + d2.len, block.len());
    }

    /// On damaged datums (bytes flipped, cut, inserted) and on records that break `check`,
    /// `hash_record_datum` accepts exactly what the strict decoder accepts, with the same length
    /// and the hash `compute_hash` gives the decoded record.
    #[test]
    fn datum_hash_accepts_what_the_decoder_accepts(
        record in record(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 0..4),
        breakage in 0u8..8,
    ) {
        let mut record = record;
        match breakage {
            0 => record.seq = MAX_LEDGER_INT + 1 + i64::from(edits.len() as u8),
            1 => record.raw_offset = -1,
            2 => record.writer_epoch = i64::MIN,
            3 => match &mut record.body {
                RecordBody::Event(er) => {
                    if let Some(l) = er.links.first_mut() {
                        l.status = match l.status {
                            LinkStatus::Resolved => LinkStatus::Pending,
                            LinkStatus::Pending => LinkStatus::Resolved,
                        };
                    }
                }
                RecordBody::LinkResolution(l) => l.resolves_seq = record.seq,
                RecordBody::Rejected(m) => m.dlq_partition = -1,
                RecordBody::Duplicate(m) => m.original_seq = -5,
            },
            _ => {}
        }
        let mut datum = record.to_avro_datum();
        for (at, op, byte) in &edits {
            if datum.is_empty() {
                break;
            }
            let i = at.index(datum.len());
            match op {
                0 => datum[i] ^= byte | 1,
                1 => datum.truncate(i),
                2 => datum.insert(i, *byte),
                _ => {
                    datum.remove(i);
                }
            }
        }
        let strict = LedgerRecord::from_avro_datum_prefix(&datum);
        let fast = hash_record_datum(&datum, &mut DatumScratch::default());
        match (&strict, &fast) {
            (Ok((r, len)), Ok(d)) => {
                prop_assert_eq!(*len, d.len);
                prop_assert_eq!(r.compute_hash().unwrap(), d.computed);
                prop_assert_eq!((r.seq, r.prev_hash, r.hash), (d.seq, d.prev_hash, d.hash));
            }
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "strict {:?} but fast {:?}", strict.map(|(_, l)| l), fast.map(|d| d.len)),
        }
    }
}

/// A record that breaks `check` is refused by every path, as before.
#[test]
fn invalid_records_are_refused_by_every_path() {
    let r = LedgerRecord {
        seq: MAX_LEDGER_INT + 1,
        prev_hash: [0; 32],
        hash: [0; 32],
        raw_offset: 0,
        writer_epoch: 0,
        body: RecordBody::Duplicate(DuplicateMarker {
            original_partition: 0,
            original_seq: 0,
            source: "s".into(),
            id: "i".into(),
        }),
    };
    assert_eq!(r.canonical_bytes().unwrap_err().field, "seq");
    assert_eq!(r.canonical_bytes_reference().unwrap_err().field, "seq");
    assert_eq!(r.compute_hash().unwrap_err().field, "seq");
    let mut buf = b"kept".to_vec();
    assert_eq!(r.compute_hash_with(&mut buf).unwrap_err().field, "seq");
    assert_eq!(r.write_canonical(&mut buf).unwrap_err().field, "seq");
    assert_eq!(buf, b"kept", "nothing written for a refused record");
    assert!(hash_record_datum(&r.to_avro_datum(), &mut DatumScratch::default()).is_err());
}

/// Every fixed member name of every object, present and absent, against the reference on
/// one hand-written record per body and kind (the proptest covers the combinations).
#[test]
fn every_kind_and_body_by_example() {
    let full = |data: EventData| {
        let mut e = Event::new("src \u{e000}", "id 🦀", data);
        e.time = Some("t".into());
        e.subject = Some("sub".into());
        e.dataschema = Some("ds".into());
        e.mapped_from = Some("mf".into());
        e.extensions = BTreeMap::from([
            ("\u{ffff}".into(), "1".into()),
            ("\u{10000}".into(), "2".into()),
        ]);
        e
    };
    let ann = || {
        BTreeMap::from([
            ("k\u{e000}".to_owned(), "v".to_owned()),
            ("k🦀".to_owned(), "w".to_owned()),
        ])
    };
    let some = |x: &str| Some(x.to_owned());
    let datas = vec![
        EventData::Build(Build {
            commit_sha: "c".into(),
            branch: some("b"),
            build_id: "i".into(),
            build_timestamp: "t".into(),
            actor: some("a"),
            pipeline_url: some("p"),
            repo_url: some("r"),
            artifact_digest: some("d"),
            signature: some("s"),
            annotations: ann(),
        }),
        EventData::Build(Build::default()),
        EventData::Artifact(Artifact {
            artifact_digest: "d".into(),
            build_id: some("b"),
            commit_sha: some("c"),
            name: some("n"),
            signature: some("s"),
            annotations: ann(),
        }),
        EventData::Artifact(Artifact::default()),
        EventData::Deploy(Deploy {
            deploy_id: "i".into(),
            artifact_digest: "d".into(),
            environment: "e".into(),
            service: "s".into(),
            deploy_timestamp: "t".into(),
            actor: some("a"),
            config_hash: some("h"),
            previous_deploy_id: some("p"),
            pipeline_url: some("u"),
            annotations: ann(),
        }),
        EventData::Deploy(Deploy::default()),
        EventData::Runtime(Runtime {
            instance_id: "i".into(),
            service: "s".into(),
            environment: "e".into(),
            deploy_id: some("d"),
            artifact_digest: some("a"),
            trace_id: some("t"),
            message: some("m\n"),
            annotations: ann(),
        }),
        EventData::Runtime(Runtime::default()),
        EventData::Data(Data {
            job: Job {
                namespace: "ns".into(),
                name: "n".into(),
            },
            run_id: "r".into(),
            event_type: RunState::Fail,
            inputs: vec![
                Dataset {
                    namespace: "a".into(),
                    name: "b".into(),
                    snapshot_id: some("s"),
                    schema_version: some("v"),
                },
                Dataset::default(),
            ],
            outputs: vec![Dataset::default()],
            annotations: ann(),
        }),
        EventData::Data(Data::default()),
        EventData::Approval(Approval {
            approval_id: "i".into(),
            deploy_id: some("d"),
            artifact_digest: some("a"),
            environment: "e".into(),
            decision: Decision::Rejected,
            approver: "p".into(),
            reason: some("r"),
            policy: some("o"),
            annotations: ann(),
        }),
        EventData::Approval(Approval::default()),
    ];
    let resolved = Link {
        relation: Relation::Runs,
        target: "t".into(),
        status: LinkStatus::Resolved,
        target_hash: Some([0xfe; 32]),
        target_partition: Some(i32::MAX),
        target_seq: Some(MAX_LEDGER_INT),
    };
    let pending = Link {
        relation: Relation::RunOf,
        target: "u".into(),
        status: LinkStatus::Pending,
        target_hash: None,
        target_partition: None,
        target_seq: None,
    };
    let mut bodies: Vec<RecordBody> = Vec::new();
    for (i, data) in datas.into_iter().enumerate() {
        let event = if i % 2 == 0 {
            full(data)
        } else {
            Event::new("", "", data)
        };
        bodies.push(RecordBody::Event(EventRecord {
            event,
            redactions: if i % 2 == 0 {
                vec![Redaction {
                    path: "p".into(),
                    detector: "d".into(),
                    action: RedactionAction::Mask,
                }]
            } else {
                vec![]
            },
            links: if i % 2 == 0 {
                vec![resolved.clone(), pending.clone()]
            } else {
                vec![]
            },
        }));
    }
    bodies.push(RecordBody::Rejected(RejectedMarker {
        reason_code: "c".into(),
        reason_message: "m\u{1}".into(),
        dlq_partition: 7,
        dlq_offset: MAX_LEDGER_INT,
    }));
    bodies.push(RecordBody::Duplicate(DuplicateMarker {
        original_partition: 0,
        original_seq: 0,
        source: "s".into(),
        id: "i".into(),
    }));
    bodies.push(RecordBody::LinkResolution(LinkResolution {
        resolves_seq: 3,
        relation: Relation::BuiltFrom,
        target: "t".into(),
        target_hash: [1; 32],
        target_partition: 2,
        target_seq: 9,
    }));
    for body in bodies {
        let r = LedgerRecord::seal(10, [0xcd; 32], 11, 12, body).unwrap();
        let fast = String::from_utf8(r.canonical_bytes().unwrap()).unwrap();
        let reference = String::from_utf8(r.canonical_bytes_reference().unwrap()).unwrap();
        assert_eq!(fast, reference);
        assert_eq!(r.hash, hash_of(&r.prev_hash, reference.as_bytes()));
        let d = hash_record_datum(&r.to_avro_datum(), &mut DatumScratch::default()).unwrap();
        assert_eq!(d.computed, r.hash);
    }
}
