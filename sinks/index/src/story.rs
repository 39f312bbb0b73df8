//! Real chained ledger records for tests, examples and benchmarks, built the way the processor
//! builds them: each partition is a hash chain started by a fence
//! ([`provenant_schemas::canonical::chain_next`]), each event goes to the partition of its
//! subject, its references are linked to the records of their targets when those are in the
//! ledger already and pending otherwise, and [`Ledger::resolve_pending`] writes the link
//! resolutions for targets that arrived since.
//!
//! [`Ledger::state`] is the [`ReaderState`] a reader has after the whole partition (the fence
//! at ledger offset 0, record *n* at offset *n + 1*), so the records and the states are what
//! the index sink's runner would pass to [`crate::Index::apply`].

use std::collections::BTreeMap;

use provenant_schemas::canonical::{ChainHead, chain_next};
use provenant_schemas::ledger::{
    DuplicateMarker, EventRecord, InvalidRecord, LedgerHash, LinkResolution, Redaction,
    RedactionAction, RejectedMarker,
};
use provenant_schemas::validity::ReaderState;
use provenant_schemas::{
    Approval, Artifact, Build, Data, Dataset, Decision, Deploy, EntityKey, Event, EventData, Job,
    LedgerRecord, RecordBody, Relation, RunState, Runtime,
};

use crate::{Index, IndexError};

/// The writer epoch of every chain this module builds.
pub const EPOCH: i64 = 1;

/// A 40-hex commit sha from a number.
pub fn sha(n: u64) -> String {
    format!("{n:040x}")
}

/// A `sha256:<64 hex>` artifact digest from a number.
pub fn digest(n: u64) -> String {
    format!("sha256:{n:064x}")
}

/// An RFC 3339 time `minutes` after 2026-01-01T00:00:00Z.
pub fn time(minutes: u64) -> String {
    let t = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
        + chrono::Duration::seconds(1_767_225_600)
        + chrono::Duration::minutes(i64::try_from(minutes).unwrap_or(0));
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A build event.
pub fn build(id: &str, build_id: &str, commit: &str) -> Event {
    Event::new(
        "https://ci.example/acme",
        id,
        EventData::Build(Build {
            commit_sha: commit.into(),
            branch: Some("main".into()),
            build_id: build_id.into(),
            build_timestamp: time(0),
            actor: Some("ci-bot".into()),
            ..Build::default()
        }),
    )
}

/// An artifact event (`build_id` and `commit` as the producer knows them).
pub fn artifact(id: &str, digest: &str, build_id: Option<&str>, commit: Option<&str>) -> Event {
    Event::new(
        "https://ci.example/acme",
        id,
        EventData::Artifact(Artifact {
            artifact_digest: digest.into(),
            build_id: build_id.map(Into::into),
            commit_sha: commit.map(Into::into),
            name: Some("registry.example/acme/shop".into()),
            ..Artifact::default()
        }),
    )
}

/// A deploy event.
pub fn deploy(
    id: &str,
    deploy_id: &str,
    digest: &str,
    service: &str,
    env: &str,
    at_minute: u64,
    previous: Option<&str>,
) -> Event {
    Event::new(
        "https://cd.example/acme",
        id,
        EventData::Deploy(Deploy {
            deploy_id: deploy_id.into(),
            artifact_digest: digest.into(),
            environment: env.into(),
            service: service.into(),
            deploy_timestamp: time(at_minute),
            actor: Some("deployer".into()),
            previous_deploy_id: previous.map(Into::into),
            ..Deploy::default()
        }),
    )
}

/// A runtime event of an instance started by a deploy.
pub fn runtime(
    id: &str,
    instance: &str,
    service: &str,
    env: &str,
    deploy_id: &str,
    digest: &str,
) -> Event {
    Event::new(
        "https://k8s.example/prod",
        id,
        EventData::Runtime(Runtime {
            instance_id: instance.into(),
            service: service.into(),
            environment: env.into(),
            deploy_id: Some(deploy_id.into()),
            artifact_digest: Some(digest.into()),
            ..Runtime::default()
        }),
    )
}

/// An approval of a deploy.
pub fn approval(id: &str, approval_id: &str, deploy_id: &str, env: &str) -> Event {
    Event::new(
        "https://cd.example/acme",
        id,
        EventData::Approval(Approval {
            approval_id: approval_id.into(),
            deploy_id: Some(deploy_id.into()),
            environment: env.into(),
            decision: Decision::Approved,
            approver: "release-manager".into(),
            ..Approval::default()
        }),
    )
}

/// A completed data run of `job` (namespace, name) reading and writing datasets.
pub fn data_run(
    id: &str,
    job: (&str, &str),
    run_id: &str,
    inputs: &[(&str, &str)],
    outputs: &[(&str, &str)],
) -> Event {
    let ds = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(namespace, name)| Dataset {
                namespace: (*namespace).into(),
                name: (*name).into(),
                ..Dataset::default()
            })
            .collect()
    };
    Event::new(
        "https://airflow.example/etl",
        id,
        EventData::Data(Data {
            job: Job {
                namespace: job.0.into(),
                name: job.1.into(),
            },
            run_id: run_id.into(),
            event_type: RunState::Complete,
            inputs: ds(inputs),
            outputs: ds(outputs),
            ..Data::default()
        }),
    )
}

/// One partition's chain.
#[derive(Clone, Debug)]
struct Chain {
    head: ChainHead,
    records: Vec<LedgerRecord>,
    raw_offset: Option<i64>,
    next_raw: i64,
    /// Records moved out by [`Ledger::take_records`] (they keep their ledger offsets).
    taken: u64,
}

/// A pending link waiting for its target.
#[derive(Clone, Debug)]
struct Pending {
    partition: u32,
    seq: i64,
    relation: Relation,
    target: String,
}

/// A multi-partition ledger under construction.
#[derive(Clone, Debug)]
pub struct Ledger {
    chains: Vec<Chain>,
    /// Entity key → the position and hash of the latest record about it.
    subjects: BTreeMap<String, (u32, i64, LedgerHash)>,
    pending: Vec<Pending>,
    writer_id: [u8; 16],
}

impl Ledger {
    /// An empty ledger of `partitions` partitions (at least one).
    pub fn new(partitions: u32) -> Self {
        let chain = Chain {
            head: ChainHead::GENESIS,
            records: Vec::new(),
            raw_offset: None,
            next_raw: 0,
            taken: 0,
        };
        Self {
            chains: vec![chain; partitions.max(1) as usize],
            subjects: BTreeMap::new(),
            pending: Vec::new(),
            writer_id: [7; 16],
        }
    }

    /// How many partitions.
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.chains.len()).unwrap_or(u32::MAX)
    }

    /// The partition a subject key goes to (FNV-1a; the real pipeline uses murmur2, which
    /// does not matter to the index).
    pub fn partition_of(&self, key: &str) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        u32::try_from(h % u64::from(self.partitions())).unwrap_or(0)
    }

    fn append(&mut self, partition: u32, body: RecordBody) -> Result<(u32, i64), InvalidRecord> {
        let Some(chain) = self.chains.get_mut(partition as usize) else {
            return Err(InvalidRecord {
                field: "partition".into(),
                message: "no such partition in this ledger",
            });
        };
        let is_resolution = matches!(body, RecordBody::LinkResolution(_));
        let raw = if is_resolution {
            chain.raw_offset.unwrap_or(0)
        } else {
            chain.next_raw
        };
        let r = chain_next(&chain.head, raw, EPOCH, body)?;
        chain.head = ChainHead::after(&r);
        if !is_resolution {
            chain.raw_offset = Some(raw);
            chain.next_raw += 1;
        }
        let seq = r.seq;
        chain.records.push(r);
        Ok((partition, seq))
    }

    /// Appends `event` to its subject's partition, linking its references (commit and env
    /// references are not linked, as the processor does not link them). Returns its position.
    pub fn emit(&mut self, event: Event) -> Result<(u32, i64), InvalidRecord> {
        let partition = self.partition_of(&event.partition_key());
        self.emit_to(partition, event, Vec::new())
    }

    /// Like [`Ledger::emit`], with redactions listed on the record.
    pub fn emit_redacted(
        &mut self,
        event: Event,
        redactions: &[(&str, &str, RedactionAction)],
    ) -> Result<(u32, i64), InvalidRecord> {
        let partition = self.partition_of(&event.partition_key());
        let redactions = redactions
            .iter()
            .map(|(path, detector, action)| Redaction {
                path: (*path).into(),
                detector: (*detector).into(),
                action: *action,
            })
            .collect();
        self.emit_to(partition, event, redactions)
    }

    fn emit_to(
        &mut self,
        partition: u32,
        event: Event,
        redactions: Vec<Redaction>,
    ) -> Result<(u32, i64), InvalidRecord> {
        let mut links = Vec::new();
        let mut pending = Vec::new();
        for r in event.references() {
            if matches!(r.target, EntityKey::Commit(_) | EntityKey::Env(_)) {
                continue;
            }
            let target = r.target.to_string();
            let known = self.subjects.get(&target);
            if known.is_none() && matches!(r.target, EntityKey::Dataset { .. }) {
                // A dataset no run has written yet may come from outside: not linked.
                continue;
            }
            match known {
                Some((p, s, h)) => links.push(provenant_schemas::ledger::Link::resolved(
                    r.relation, target, *h, *p, *s,
                )),
                None => {
                    pending.push((r.relation, target.clone()));
                    links.push(provenant_schemas::ledger::Link::pending(r.relation, target));
                }
            }
        }
        let subject = event.subject_key().to_string();
        let produced: Vec<String> = event.produces().iter().map(ToString::to_string).collect();
        let (p, seq) = self.append(
            partition,
            RecordBody::Event(EventRecord {
                event,
                redactions,
                links,
            }),
        )?;
        let hash = self.head_hash(p);
        self.subjects.insert(subject, (p, seq, hash));
        for key in produced {
            self.subjects.insert(key, (p, seq, hash));
        }
        for (relation, target) in pending {
            self.pending.push(Pending {
                partition: p,
                seq,
                relation,
                target,
            });
        }
        Ok((p, seq))
    }

    fn head_hash(&self, partition: u32) -> LedgerHash {
        self.chains
            .get(partition as usize)
            .map_or([0; 32], |c| c.head.head_hash)
    }

    /// Writes a link-resolution record for every pending link whose target is now in the
    /// ledger (into the referencing record's partition). Returns how many.
    pub fn resolve_pending(&mut self) -> Result<usize, InvalidRecord> {
        let pending = std::mem::take(&mut self.pending);
        let mut resolved = 0;
        for p in pending {
            match self.subjects.get(&p.target).copied() {
                Some((tp, ts, th)) => {
                    self.append(
                        p.partition,
                        RecordBody::LinkResolution(LinkResolution {
                            resolves_seq: p.seq,
                            relation: p.relation,
                            target: p.target,
                            target_hash: th,
                            target_partition: i32::try_from(tp).unwrap_or(i32::MAX),
                            target_seq: ts,
                        }),
                    )?;
                    resolved += 1;
                }
                None => self.pending.push(p),
            }
        }
        Ok(resolved)
    }

    /// Appends a rejected-event marker to `partition`.
    pub fn reject(
        &mut self,
        partition: u32,
        reason_code: &str,
    ) -> Result<(u32, i64), InvalidRecord> {
        let dlq_offset = self
            .chains
            .get(partition as usize)
            .map_or(0, |c| c.next_raw);
        self.append(
            partition,
            RecordBody::Rejected(RejectedMarker {
                reason_code: reason_code.into(),
                reason_message: format!("refused: {reason_code}"),
                dlq_partition: i32::try_from(partition).unwrap_or(0),
                dlq_offset,
            }),
        )
    }

    /// Appends a duplicate marker for the event at (`original_partition`, `original_seq`).
    pub fn duplicate(
        &mut self,
        partition: u32,
        original: (u32, i64),
        source: &str,
        id: &str,
    ) -> Result<(u32, i64), InvalidRecord> {
        self.append(
            partition,
            RecordBody::Duplicate(DuplicateMarker {
                original_partition: i32::try_from(original.0).unwrap_or(0),
                original_seq: original.1,
                source: source.into(),
                id: id.into(),
            }),
        )
    }

    /// Appends any record body to `partition` (for tests that need a record the helpers do
    /// not make).
    pub fn append_body(
        &mut self,
        partition: u32,
        body: RecordBody,
    ) -> Result<(u32, i64), InvalidRecord> {
        self.append(partition, body)
    }

    /// The records of `partition`, in seq order.
    pub fn records(&self, partition: u32) -> &[LedgerRecord] {
        self.chains
            .get(partition as usize)
            .map_or(&[], |c| c.records.as_slice())
    }

    /// The reader state after the first `n` records of `partition` (the fence is at ledger
    /// offset 0, record `i` at offset `i + 1`), counting from the records not taken yet.
    pub fn state_after(&self, partition: u32, n: usize) -> ReaderState {
        let records = self.records(partition);
        let n = n.min(records.len());
        let last = n.checked_sub(1).and_then(|i| records.get(i));
        let raw_offset = records
            .iter()
            .take(n)
            .filter(|r| !matches!(r.body, RecordBody::LinkResolution(_)))
            .map(|r| r.raw_offset)
            .max();
        let taken = self.chains.get(partition as usize).map_or(0, |c| c.taken);
        ReaderState {
            ledger_offset: taken + n as u64 + 1,
            head: last.map_or_else(
                || {
                    records.first().map_or_else(
                        || self.state(partition).head,
                        |r| ChainHead {
                            next_seq: r.seq,
                            head_hash: r.prev_hash,
                        },
                    )
                },
                ChainHead::after,
            ),
            fence: Some((EPOCH, self.writer_id)),
            raw_offset,
        }
    }

    /// The reader state after the whole of `partition`.
    pub fn state(&self, partition: u32) -> ReaderState {
        let Some(c) = self.chains.get(partition as usize) else {
            return ReaderState::START;
        };
        ReaderState {
            ledger_offset: c.taken + c.records.len() as u64 + 1,
            head: c.head,
            fence: Some((EPOCH, self.writer_id)),
            raw_offset: c.raw_offset,
        }
    }

    /// Moves the records of `partition` out (to apply them and forget them: a large ledger need
    /// not stay in memory), with the reader state after them. Chains go on where they were.
    pub fn take_records(&mut self, partition: u32) -> (Vec<LedgerRecord>, ReaderState) {
        let state = self.state(partition);
        let Some(c) = self.chains.get_mut(partition as usize) else {
            return (Vec::new(), state);
        };
        let records = std::mem::take(&mut c.records);
        c.taken += records.len() as u64;
        (records, state)
    }

    /// How many pending links wait for their target.
    pub fn pending_links(&self) -> usize {
        self.pending.len()
    }

    /// Applies every partition whole, in batches of at most `batch` records.
    pub async fn apply_all<I: Index>(&self, index: &I, batch: usize) -> Result<(), IndexError> {
        for p in 0..self.partitions() {
            let records = self.records(p);
            let mut done = 0;
            for chunk in records.chunks(batch.max(1)) {
                done += chunk.len();
                index.apply(p, chunk, &self.state_after(p, done)).await?;
            }
        }
        Ok(())
    }
}

/// The names in [`small_story`].
pub mod names {
    pub const SERVICE: &str = "shop";
    pub const INSTANCE_PROD: &str = "instance:shop-prod-1";
    pub const INSTANCE_STAGING: &str = "instance:shop-staging-1";
}

/// A small, realistic story (see `sinks/index/README.md`, "The conformance story"):
///
/// * commits 1, 2, 3; builds `b1`, `b2`, `b3` of them; artifacts 1, 2 (built by b1, b2);
///   artifact 3 arrives **before** its build b3 (a pending link, resolved by a link record);
/// * service `shop`: `d1` artifact 1 → staging, `d2` artifact 1 → production, `d3` artifact 2 →
///   staging (replaces d1), `d4` artifact 2 → production (replaces d2), `d5` artifact 2 →
///   production again (a config change, replaces d4), approved by `ap1`;
/// * `d6` artifact 4 → dev (no artifact or build event: no build provenance); artifact 5
///   built by `b5`, whose build event never comes, `d7` → qa (no commit);
/// * instances `shop-prod-1` (started by d5, runs artifact 2) and `shop-staging-1` (d3);
/// * a data run of job `etl/daily` reading `raw/orders`, writing `clean/orders`;
/// * one rejected and one duplicate marker.
pub fn small_story(partitions: u32) -> Result<Ledger, InvalidRecord> {
    let mut l = Ledger::new(partitions);
    let s = names::SERVICE;
    l.emit(build("e-b1", "b1", &sha(1)))?;
    l.emit(build("e-b2", "b2", &sha(2)))?;
    l.emit(artifact("e-a1", &digest(1), Some("b1"), Some(&sha(1))))?;
    let a2 = l.emit(artifact("e-a2", &digest(2), Some("b2"), None))?;
    l.emit(deploy("e-d1", "d1", &digest(1), s, "staging", 10, None))?;
    l.emit(deploy("e-d2", "d2", &digest(1), s, "production", 20, None))?;
    l.emit(deploy(
        "e-d3",
        "d3",
        &digest(2),
        s,
        "staging",
        30,
        Some("d1"),
    ))?;
    l.emit(deploy(
        "e-d4",
        "d4",
        &digest(2),
        s,
        "production",
        40,
        Some("d2"),
    ))?;
    l.emit(deploy(
        "e-d5",
        "d5",
        &digest(2),
        s,
        "production",
        50,
        Some("d4"),
    ))?;
    l.emit(approval("e-ap1", "ap1", "d5", "production"))?;
    l.emit(runtime(
        "e-i1",
        "shop-prod-1",
        s,
        "production",
        "d5",
        &digest(2),
    ))?;
    l.emit(runtime(
        "e-i2",
        "shop-staging-1",
        s,
        "staging",
        "d3",
        &digest(2),
    ))?;
    l.emit(deploy("e-d6", "d6", &digest(4), s, "dev", 60, None))?;
    l.emit(artifact("e-a5", &digest(5), Some("b5"), None))?;
    l.emit(deploy("e-d7", "d7", &digest(5), s, "qa", 70, None))?;
    l.emit(artifact("e-a3", &digest(3), Some("b3"), None))?;
    l.emit(build("e-b3", "b3", &sha(3)))?;
    l.emit(data_run(
        "e-run1",
        ("etl", "daily"),
        "run-1",
        &[("warehouse", "raw/orders")],
        &[("warehouse", "clean/orders")],
    ))?;
    l.reject(0, "invalid_field")?;
    l.duplicate(a2.0, a2, "https://ci.example/acme", "e-a2")?;
    l.resolve_pending()?;
    Ok(l)
}
