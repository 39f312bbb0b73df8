//! Proptest strategies: valid events of every kind and ledger entries of every body type.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use provenant_schemas::ledger::{
    DuplicateMarker, EventRecord, Fence, LedgerEntry, LedgerRecord, Link, LinkResolution,
    LinkStatus, MAX_LEDGER_INT, RecordBody, Redaction, RedactionAction, RejectedMarker,
};
use provenant_schemas::{
    Approval, Artifact, Build, Data, Dataset, Decision, Deploy, Event, EventData, Job, Kind,
    Relation, RunState, Runtime,
};

/// An identifier: no control characters, no surrounding whitespace, Unicode included.
pub fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9é漢🦀][a-zA-Z0-9é漢🦀 ._/:@-]{0,14}".prop_map(|s| s.trim_end().to_owned())
}

/// Free text: any printable Unicode, quotes, backslashes, tab and newlines.
pub fn text() -> impl Strategy<Value = String> {
    "[\\PC\t\n\r\"\\\\]{0,24}"
}

fn nonempty_text() -> impl Strategy<Value = String> {
    "[a-zA-Zé漢🦀][\\PC\t\n\"\\\\]{0,16}"
}

fn sha() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9a-f]{40}", "[0-9a-f]{64}"]
}

fn digest() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))
}

fn timestamp() -> impl Strategy<Value = String> {
    (
        2000u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
        prop_oneof![
            Just("Z".to_owned()),
            Just("+02:00".to_owned()),
            Just(".123-05:30".to_owned())
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, tz)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{tz}")
        })
}

fn url() -> impl Strategy<Value = String> {
    "https?://[a-z0-9.]{1,12}(/[a-zA-Z0-9_.%-]{0,8}){0,3}"
}

fn annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z][a-z0-9./_-]{0,10}", text(), 0..4)
}

fn o<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    prop::option::of(s)
}

fn dataset() -> impl Strategy<Value = Dataset> {
    (ident(), ident(), o(ident()), o(ident())).prop_map(
        |(namespace, name, snapshot_id, schema_version)| Dataset {
            namespace,
            name,
            snapshot_id,
            schema_version,
        },
    )
}

pub fn data_of(kind: Kind) -> BoxedStrategy<EventData> {
    match kind {
        Kind::Build => (
            (sha(), o(ident()), ident(), timestamp(), o(text())),
            (o(url()), o(text()), o(digest()), o(text()), annotations()),
        )
            .prop_map(
                |(
                    (commit_sha, branch, build_id, build_timestamp, actor),
                    (pipeline_url, repo_url, artifact_digest, signature, annotations),
                )| {
                    EventData::Build(Build {
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
                },
            )
            .boxed(),
        Kind::Artifact => (
            digest(),
            o(ident()),
            o(sha()),
            o(ident()),
            o(text()),
            annotations(),
        )
            .prop_map(
                |(artifact_digest, build_id, commit_sha, name, signature, annotations)| {
                    EventData::Artifact(Artifact {
                        artifact_digest,
                        build_id,
                        commit_sha,
                        name,
                        signature,
                        annotations,
                    })
                },
            )
            .boxed(),
        Kind::Deploy => (
            (ident(), digest(), ident(), ident(), timestamp()),
            (o(text()), o(ident()), o(ident()), o(url()), annotations()),
        )
            .prop_map(
                |(
                    (deploy_id, artifact_digest, environment, service, deploy_timestamp),
                    (actor, config_hash, previous_deploy_id, pipeline_url, annotations),
                )| {
                    EventData::Deploy(Deploy {
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
                },
            )
            .boxed(),
        Kind::Runtime => (
            (ident(), ident(), ident()),
            prop_oneof![
                (ident(), o(digest())).prop_map(|(d, a)| (Some(d), a)),
                digest().prop_map(|a| (None, Some(a))),
            ],
            (o(ident()), o(text()), annotations()),
        )
            .prop_map(
                |(
                    (instance_id, service, environment),
                    (deploy_id, artifact_digest),
                    (trace_id, message, annotations),
                )| {
                    EventData::Runtime(Runtime {
                        instance_id,
                        service,
                        environment,
                        deploy_id,
                        artifact_digest,
                        trace_id,
                        message,
                        annotations,
                    })
                },
            )
            .boxed(),
        Kind::Data => (
            (
                ident(),
                ident(),
                any::<u128>(),
                prop::sample::select(RunState::ALL.to_vec()),
            ),
            (
                prop::collection::vec(dataset(), 0..3),
                prop::collection::vec(dataset(), 0..3),
                annotations(),
            ),
        )
            .prop_map(
                |((ns, name, run, event_type), (inputs, outputs, annotations))| {
                    EventData::Data(Data {
                        job: Job {
                            namespace: ns,
                            name,
                        },
                        run_id: uuid::Uuid::from_u128(run).to_string(),
                        event_type,
                        inputs,
                        outputs,
                        annotations,
                    })
                },
            )
            .boxed(),
        Kind::Approval => (
            (
                ident(),
                prop_oneof![
                    (ident(), o(digest())).prop_map(|(d, a)| (Some(d), a)),
                    digest().prop_map(|a| (None, Some(a))),
                ],
                ident(),
            ),
            (
                prop::sample::select(vec![Decision::Approved, Decision::Rejected]),
                nonempty_text(),
                o(text()),
                o(ident()),
                annotations(),
            ),
        )
            .prop_map(
                |(
                    (approval_id, (deploy_id, artifact_digest), environment),
                    (decision, approver, reason, policy, annotations),
                )| {
                    EventData::Approval(Approval {
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
                },
            )
            .boxed(),
    }
}

pub fn data() -> impl Strategy<Value = EventData> {
    prop::sample::select(Kind::ALL.to_vec()).prop_flat_map(data_of)
}

pub fn event_with(data: impl Strategy<Value = EventData>) -> impl Strategy<Value = Event> {
    (
        (ident(), ident(), o(timestamp()), o(ident()), o(url())),
        (
            prop::collection::btree_map("x[a-z0-9]{0,8}", text(), 0..3),
            o(prop_oneof![
                Just("dev.cdevents.build.finished.0.2.0".to_owned()),
                Just("openlineage.RunEvent".to_owned())
            ]),
            data,
        ),
    )
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
}

/// A valid event of any kind.
pub fn event() -> impl Strategy<Value = Event> {
    event_with(data())
}

/// A ledger number (0..=2^53-1), biased to the edges.
pub fn num() -> impl Strategy<Value = i64> {
    prop_oneof![
        0i64..1000,
        (MAX_LEDGER_INT - 1000)..=MAX_LEDGER_INT,
        0..=MAX_LEDGER_INT
    ]
}

fn part() -> impl Strategy<Value = i32> {
    prop_oneof![0i32..64, Just(i32::MAX)]
}

fn relation() -> impl Strategy<Value = Relation> {
    prop::sample::select(Relation::ALL.to_vec())
}

fn link() -> impl Strategy<Value = Link> {
    (relation(), ident(), o((any::<[u8; 32]>(), part(), num()))).prop_map(
        |(relation, target, resolved)| match resolved {
            Some((h, p, s)) => Link {
                relation,
                target,
                status: LinkStatus::Resolved,
                target_hash: Some(h),
                target_partition: Some(p),
                target_seq: Some(s),
            },
            None => Link::pending(relation, target),
        },
    )
}

pub fn body() -> impl Strategy<Value = RecordBody> {
    prop_oneof![
        (
            event(),
            prop::collection::vec(
                (
                    ident(),
                    ident(),
                    prop::sample::select(RedactionAction::ALL.to_vec())
                )
                    .prop_map(|(path, detector, action)| Redaction {
                        path,
                        detector,
                        action
                    }),
                0..3
            ),
            prop::collection::vec(link(), 0..3)
        )
            .prop_map(|(event, redactions, links)| RecordBody::Event(EventRecord {
                event,
                redactions,
                links
            })),
        (ident(), text(), part(), num()).prop_map(
            |(reason_code, reason_message, dlq_partition, dlq_offset)| {
                RecordBody::Rejected(RejectedMarker {
                    reason_code,
                    reason_message,
                    dlq_partition,
                    dlq_offset,
                })
            }
        ),
        (part(), num(), ident(), ident()).prop_map(
            |(original_partition, original_seq, source, id)| {
                RecordBody::Duplicate(DuplicateMarker {
                    original_partition,
                    original_seq,
                    source,
                    id,
                })
            }
        ),
        (num(), relation(), ident(), any::<[u8; 32]>(), part(), num()).prop_map(
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
}

/// A record that passes `LedgerRecord::check`, hash computed.
pub fn record() -> impl Strategy<Value = LedgerRecord> {
    (num(), any::<[u8; 32]>(), num(), num(), body()).prop_map(
        |(mut seq, prev_hash, raw_offset, epoch, mut body)| {
            if let RecordBody::LinkResolution(l) = &mut body {
                // a link resolution resolves an earlier record of its partition
                seq = seq.max(1);
                l.resolves_seq = l.resolves_seq.min(seq - 1);
            }
            LedgerRecord::seal(seq, prev_hash, raw_offset, epoch, body).unwrap()
        },
    )
}

pub fn entry() -> impl Strategy<Value = LedgerEntry> {
    prop_oneof![
        4 => record().prop_map(LedgerEntry::Record),
        1 => (num(), any::<[u8; 16]>()).prop_map(|(writer_epoch, writer_id)| LedgerEntry::Fence(Fence { writer_epoch, writer_id })),
    ]
}
