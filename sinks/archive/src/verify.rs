//! Offline verification of an archive: [`verify`].
//!
//! Checks, for every partition:
//! * every object is a segment, manifest or checkpoint of a complete segment (an incomplete
//!   segment in the middle is a failure; the newest one, if incomplete, is a warning: a sink
//!   is writing it or crashed, and completes it on restart);
//! * each segment's SHA-256 and size against its manifest, its Avro header (codec, schema) and
//!   its `provenant.segment` description against the manifest;
//! * every record: it decodes, its seq is the next one, its `prev_hash` is the hash before it
//!   and its `hash` is recomputed from its contents (the canonical bytes of the schema crate,
//!   computed straight from the Avro datum; a record that fails is read again with the strict
//!   decoder for the verdict and the message: [`crate::read::each_record_hash`]);
//! * across segments: seqs are contiguous from 0 (a deleted segment is a gap) and the chain
//!   continues (first `prev_hash` = previous segment's last hash);
//! * the RFC 6962 tree: starting from the previous manifest's frontier (empty at seq 0), the
//!   segment's record hashes must give the manifest's frontier and root, and the checkpoint must
//!   sign exactly that tree size and root, for this archive's origin line;
//! * with a public key, every checkpoint's Ed25519 signature (without one, the report says
//!   plainly that signatures were not checked);
//! * with a saved checkpoint (`since`), an RFC 6962 consistency proof from it to the newest
//!   checkpoint of its partition, computed from the verified record hashes and checked with
//!   the verifier's algorithm: this catches removed newest segments, a replayed old checkpoint
//!   and a rewritten history.
//!
//! Segments are checked in parallel (`threads`, default: every core); each task needs only its
//! segment, its manifest and the manifest before it, because the Merkle frontier in each
//! manifest is itself checked by the task of that segment. Memory: `threads + 1` segments at a
//! time, plus 32 bytes per record of the one partition a `since` checkpoint names.
//!
//! Integrity failures are returned in the report, never as `Err`: `Err` means the archive could
//! not be read (I/O, permissions, a bad URL).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use provenant_schemas::ledger::GENESIS_PREV_HASH;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ArchiveError;
use crate::layout::{self, ObjectKind};
use crate::manifest::{Manifest, MerkleJson};
use crate::merkle::{self, Frontier, Hash};
use crate::note::{SignedCheckpoint, VerifierKey};
use crate::read::{SegmentError, each_record_hash, open_segment};
use crate::store::ArchiveStore;

/// Progress of a run, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Bytes and segments to check in all.
    Total { bytes: u64, segments: u64 },
    /// One more segment checked, of this many bytes.
    Segment { bytes: u64 },
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to verify.
#[derive(Clone, Default)]
pub struct VerifyOptions {
    /// Check checkpoint signatures with this key.
    pub pubkey: Option<VerifierKey>,
    /// A checkpoint saved earlier (its text): check the archive is consistent with it.
    pub since: Option<String>,
    /// Segments checked at once (0: one per core).
    pub threads: usize,
    /// Called as segments are checked.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("pubkey", &self.pubkey)
            .field("since", &self.since.is_some())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// An object that is not part of the archive layout.
    Listing,
    /// A segment without its manifest or checkpoint, or the reverse.
    Incomplete,
    /// A manifest that cannot be read or disagrees with its segment.
    Manifest,
    /// Segment bytes differ from the manifest's SHA-256 or size.
    SegmentDigest,
    /// The segment is not a readable Avro container of ledger records.
    SegmentFormat,
    /// A record's stored hash is not the hash of its contents.
    RecordHash,
    /// A record does not chain to the one before it (prev_hash or seq).
    Chain,
    /// Records are missing between segments (a deleted segment).
    Gap,
    /// The Merkle tree after a segment differs from its manifest's.
    Merkle,
    /// A checkpoint that is malformed or signs another tree.
    Checkpoint,
    /// A checkpoint signature that does not verify.
    Signature,
    /// The archive is not consistent with the saved checkpoint.
    Consistency,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Listing => "listing",
            Check::Incomplete => "incomplete",
            Check::Manifest => "manifest",
            Check::SegmentDigest => "segment_digest",
            Check::SegmentFormat => "segment_format",
            Check::RecordHash => "record_hash",
            Check::Chain => "chain",
            Check::Gap => "gap",
            Check::Merkle => "merkle",
            Check::Checkpoint => "checkpoint",
            Check::Signature => "signature",
            Check::Consistency => "consistency",
        }
    }
}

/// One integrity failure, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub check: Check,
    pub partition: Option<u32>,
    /// The object key, relative to the archive root (or `--since-checkpoint`).
    pub key: String,
    pub seq: Option<i64>,
    /// Index of the record in its segment (0-based).
    pub record_index: Option<u64>,
    /// Byte offset in the object (of the block, for records).
    pub byte_offset: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]", self.check.as_str())?;
        if let Some(p) = self.partition {
            write!(f, " partition {p}")?;
        }
        write!(f, " {}", self.key)?;
        if let Some(s) = self.seq {
            write!(f, " seq {s}")?;
        }
        let mut loc = Vec::new();
        if let Some(i) = self.record_index {
            loc.push(format!("record #{i}"));
        }
        if let Some(b) = self.byte_offset {
            loc.push(format!("byte {b}"));
        }
        if !loc.is_empty() {
            write!(f, " ({})", loc.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One partition's totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionSummary {
    pub partition: u32,
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    /// Size and root signed by the newest checkpoint.
    pub tree_size: u64,
    pub root: Option<String>,
    pub newest_checkpoint: Option<String>,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub archive: String,
    /// No failure.
    pub ok: bool,
    /// Whether checkpoint signatures were checked (a public key was given).
    pub signatures_checked: bool,
    /// Whether a consistency proof from a saved checkpoint was checked.
    pub consistency_checked: bool,
    pub segments: u64,
    pub records: u64,
    /// Bytes of segments read (as stored).
    pub bytes: u64,
    pub partitions: Vec<PartitionSummary>,
    pub failures: Vec<Failure>,
    /// Not failures: e.g. the newest segment of a partition still being written.
    pub warnings: Vec<Failure>,
}

#[derive(Default, Clone, Copy)]
struct Stem {
    segment: Option<u64>,
    manifest: bool,
    checkpoint: bool,
}

struct Task {
    partition: u32,
    seq: u64,
    manifest: Arc<Manifest>,
    start: Option<Frontier>,
    has_checkpoint: bool,
    keep_leaves: bool,
    pubkey: Option<VerifierKey>,
}

#[derive(Default)]
struct Outcome {
    partition: u32,
    seq: u64,
    bytes: u64,
    records: u64,
    /// From the records actually read: (first prev_hash, last seq, last hash), if all decoded.
    actual: Option<([u8; 32], i64, [u8; 32])>,
    /// Size and root of the checkpoint, if it parsed.
    checkpoint: Option<(u64, Hash)>,
    /// What the manifest says the last hash is (used when the records could not all be read).
    claimed_last_hash: [u8; 32],
    leaves: Vec<Hash>,
    failures: Vec<Failure>,
}

fn fail(check: Check, partition: u32, key: &str, message: impl Into<String>) -> Failure {
    Failure {
        check,
        partition: Some(partition),
        key: key.to_owned(),
        seq: None,
        record_index: None,
        byte_offset: None,
        message: message.into(),
    }
}

/// Parses `provenant/<archive id>/p<N>` into (archive id, N).
fn parse_origin(origin: &str) -> Option<(&str, u32)> {
    let rest = origin.strip_prefix("provenant/")?;
    let (id, p) = rest.rsplit_once('/')?;
    let p = p.strip_prefix('p')?;
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((id, p.parse().ok()?))
}

/// Verifies the archive in `store`. See the module documentation.
pub async fn verify(
    store: &ArchiveStore,
    opts: &VerifyOptions,
) -> Result<VerifyReport, ArchiveError> {
    let listing = store.list("").await?;
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let mut parts: BTreeMap<u32, BTreeMap<u64, Stem>> = BTreeMap::new();
    for (key, size) in &listing {
        let Some((p, seq, kind)) = layout::parse_key(key) else {
            failures.push(Failure {
                check: Check::Listing,
                partition: None,
                key: key.clone(),
                seq: None,
                record_index: None,
                byte_offset: None,
                message: "object is not part of the archive layout".into(),
            });
            continue;
        };
        let stem = parts.entry(p).or_default().entry(seq).or_default();
        match kind {
            ObjectKind::Segment => stem.segment = Some(*size),
            ObjectKind::Manifest => stem.manifest = true,
            ObjectKind::Checkpoint => stem.checkpoint = true,
        }
    }

    // The saved checkpoint, if any.
    let since_key = "--since-checkpoint".to_owned();
    let mut since: Option<(u32, SignedCheckpoint)> = None;
    if let Some(text) = &opts.since {
        match SignedCheckpoint::parse(text) {
            Err(e) => failures.push(Failure {
                check: Check::Checkpoint,
                partition: None,
                key: since_key.clone(),
                seq: None,
                record_index: None,
                byte_offset: None,
                message: format!("saved checkpoint: {e}"),
            }),
            Ok(cp) => match parse_origin(&cp.checkpoint.origin) {
                None => failures.push(Failure {
                    check: Check::Checkpoint,
                    partition: None,
                    key: since_key.clone(),
                    seq: None,
                    record_index: None,
                    byte_offset: None,
                    message: format!(
                        "saved checkpoint: origin {:?} is not provenant/<archive id>/p<N>",
                        cp.checkpoint.origin
                    ),
                }),
                Some((_, p)) => {
                    if let Some(k) = &opts.pubkey
                        && let Err(e) = cp.verify(k)
                    {
                        failures.push(fail(
                            Check::Signature,
                            p,
                            &since_key,
                            format!("saved checkpoint: {e}"),
                        ));
                    }
                    since = Some((p, cp));
                }
            },
        }
    }

    // Manifests, and the segment tasks.
    let mut tasks = Vec::new();
    let mut total_bytes = 0u64;
    for (&p, stems) in &parts {
        let newest = stems.keys().next_back().copied();
        let mut prev: Option<Arc<Manifest>> = None;
        for (&seq, stem) in stems {
            let skey = layout::key(p, seq, ObjectKind::Segment);
            let complete = stem.segment.is_some() && stem.manifest && stem.checkpoint;
            if !complete {
                let missing: Vec<&str> = [
                    (stem.segment.is_none(), "segment"),
                    (!stem.manifest, "manifest"),
                    (!stem.checkpoint, "checkpoint"),
                ]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, n)| *n)
                .collect();
                let f = fail(
                    Check::Incomplete,
                    p,
                    &layout::stem(p, seq),
                    format!("incomplete segment: no {}", missing.join(", no ")),
                );
                if Some(seq) == newest && stem.segment.is_some() {
                    warnings.push(Failure {
                        message: format!(
                            "{} (being written, or left by a crash: the sink completes it on restart); not verified",
                            f.message
                        ),
                        ..f
                    });
                } else {
                    failures.push(f);
                }
                if !(stem.segment.is_some() && stem.manifest) {
                    continue;
                }
            }
            let mkey = layout::key(p, seq, ObjectKind::Manifest);
            let manifest = match Manifest::parse(&store.get(&mkey).await?) {
                Ok(m) => Arc::new(m),
                Err(e) => {
                    failures.push(fail(
                        Check::Manifest,
                        p,
                        &mkey,
                        format!("unreadable manifest: {e}"),
                    ));
                    prev = None;
                    continue;
                }
            };
            let start = if manifest.first_seq == 0 {
                Some(Frontier::new())
            } else {
                prev.as_ref()
                    .filter(|m| i64::try_from(m.merkle.tree_size).ok() == Some(manifest.first_seq))
                    .and_then(|m| m.merkle.frontier())
            };
            total_bytes += stem.segment.unwrap_or(0);
            tasks.push(Task {
                partition: p,
                seq,
                manifest: manifest.clone(),
                start,
                has_checkpoint: stem.checkpoint,
                keep_leaves: since.as_ref().is_some_and(|(sp, _)| *sp == p),
                pubkey: opts.pubkey.clone(),
            });
            let _ = skey;
            prev = Some(manifest);
        }
    }
    if let Some(cb) = &opts.progress {
        cb(Progress::Total {
            bytes: total_bytes,
            segments: tasks.len() as u64,
        });
    }

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let outcomes: Vec<Result<Outcome, ArchiveError>> = futures_util::stream::iter(tasks)
        .map(|t| {
            let store = store.clone();
            let progress = opts.progress.clone();
            async move {
                let out = run_task(&store, t).await;
                if let (Some(cb), Ok(o)) = (&progress, &out) {
                    cb(Progress::Segment { bytes: o.bytes });
                }
                out
            }
        })
        .buffered(threads)
        .collect()
        .await;

    // Per partition, in seq order: contiguity and chain across segments.
    let mut by_part: BTreeMap<u32, Vec<Outcome>> = BTreeMap::new();
    for o in outcomes {
        let o = o?;
        by_part.entry(o.partition).or_default().push(o);
    }
    let mut summaries = Vec::new();
    let (mut segments, mut records, mut bytes) = (0u64, 0u64, 0u64);
    let mut consistency_checked = false;
    for (p, outs) in &mut by_part {
        let p = *p;
        let mut expected_next: i64 = 0;
        let mut prev_hash = GENESIS_PREV_HASH;
        let mut newest: Option<(u64, Hash, String)> = None;
        let mut summary = PartitionSummary {
            partition: p,
            segments: 0,
            records: 0,
            bytes: 0,
            tree_size: 0,
            root: None,
            newest_checkpoint: None,
        };
        let mut leaves: Vec<Hash> = Vec::new();
        for o in outs.iter_mut() {
            let skey = layout::key(p, o.seq, ObjectKind::Segment);
            let first = i64::try_from(o.seq).unwrap_or(i64::MAX);
            if first > expected_next {
                failures.push(Failure {
                    seq: Some(expected_next),
                    ..fail(
                        Check::Gap,
                        p,
                        &skey,
                        format!(
                            "records seq {expected_next}..={} are missing before this segment (a deleted or missing segment)",
                            first - 1
                        ),
                    )
                });
            } else if first < expected_next {
                failures.push(Failure {
                    seq: Some(first),
                    ..fail(
                        Check::Chain,
                        p,
                        &skey,
                        format!(
                            "segment starts at seq {first}, but the segment before ends at seq {}",
                            expected_next - 1
                        ),
                    )
                });
            } else if let Some((first_prev, _, _)) = o.actual
                && first_prev != prev_hash
            {
                failures.push(Failure {
                    seq: Some(first),
                    record_index: Some(0),
                    ..fail(
                        Check::Chain,
                        p,
                        &skey,
                        "first record's prev_hash is not the last hash of the segment before",
                    )
                });
            }
            match o.actual {
                Some((_, last_seq, last_hash)) => {
                    expected_next = last_seq.saturating_add(1);
                    prev_hash = last_hash;
                }
                None => {
                    // Could not read it: continue from what its manifest claims, so later
                    // segments are still checked against something.
                    let m = first.saturating_add(i64::try_from(o.records).unwrap_or(0));
                    expected_next = expected_next.max(m);
                    prev_hash = o.claimed_last_hash;
                }
            }
            if let Some((size, root)) = o.checkpoint
                && newest.as_ref().is_none_or(|(s, _, _)| size >= *s)
            {
                newest = Some((size, root, layout::key(p, o.seq, ObjectKind::Checkpoint)));
            }
            leaves.append(&mut o.leaves);
            summary.segments += 1;
            summary.records += o.records;
            summary.bytes += o.bytes;
            failures.append(&mut o.failures);
        }
        if let Some((size, root, key)) = &newest {
            summary.tree_size = *size;
            summary.root = Some(hex::encode(root));
            summary.newest_checkpoint = Some(key.clone());
        }
        if let Some((sp, cp)) = &since
            && *sp == p
        {
            consistency_checked = true;
            failures.extend(check_since(p, cp, newest.as_ref(), &leaves));
        }
        segments += summary.segments;
        records += summary.records;
        bytes += summary.bytes;
        summaries.push(summary);
    }
    if let Some((sp, cp)) = &since
        && !by_part.contains_key(sp)
    {
        consistency_checked = true;
        failures.push(fail(
            Check::Consistency,
            *sp,
            &since_key,
            format!(
                "the saved checkpoint is for partition {sp} (tree size {}), which has no segment in this archive: its records were removed",
                cp.checkpoint.size
            ),
        ));
    }
    Ok(VerifyReport {
        archive: store.url().to_owned(),
        ok: failures.is_empty(),
        signatures_checked: opts.pubkey.is_some(),
        consistency_checked,
        segments,
        records,
        bytes,
        partitions: summaries,
        failures,
        warnings,
    })
}

fn check_since(
    p: u32,
    cp: &SignedCheckpoint,
    newest: Option<&(u64, Hash, String)>,
    leaves: &[Hash],
) -> Option<Failure> {
    let key = "--since-checkpoint";
    let m = cp.checkpoint.size;
    let Some((n, root_n, _)) = newest else {
        return Some(fail(
            Check::Consistency,
            p,
            key,
            format!(
                "partition {p} has no readable checkpoint to compare the saved one (tree size {m}) with"
            ),
        ));
    };
    if m > *n {
        return Some(fail(
            Check::Consistency,
            p,
            key,
            format!(
                "the saved checkpoint has tree size {m} but the newest checkpoint in the archive has {n}: \
                 records seq {n}..={} were removed (newest segments deleted) or an old checkpoint is replayed",
                m - 1
            ),
        ));
    }
    if (leaves.len() as u64) < *n {
        return Some(fail(
            Check::Consistency,
            p,
            key,
            format!(
                "cannot build the consistency proof: only {} of {n} record hashes could be read (see the failures above)",
                leaves.len()
            ),
        ));
    }
    let proof = merkle::consistency_proof(leaves, m, *n).unwrap_or_default();
    if merkle::verify_consistency(m, *n, &cp.checkpoint.root, root_n, &proof) {
        None
    } else {
        Some(fail(
            Check::Consistency,
            p,
            key,
            format!(
                "the archive does not extend the saved checkpoint: the RFC 6962 consistency proof from tree size {m} to {n} fails (history rewritten)"
            ),
        ))
    }
}

async fn run_task(store: &ArchiveStore, t: Task) -> Result<Outcome, ArchiveError> {
    let skey = layout::key(t.partition, t.seq, ObjectKind::Segment);
    let ckey = layout::key(t.partition, t.seq, ObjectKind::Checkpoint);
    let bytes = store.get(&skey).await?;
    let checkpoint = if t.has_checkpoint {
        Some(store.get(&ckey).await?)
    } else {
        None
    };
    tokio::task::spawn_blocking(move || {
        check_segment(&t, &skey, &ckey, &bytes, checkpoint.as_deref())
    })
    .await
    .map_err(|e| ArchiveError::Config(format!("verify task failed: {e}")))
}

fn check_segment(
    t: &Task,
    skey: &str,
    ckey: &str,
    bytes: &[u8],
    checkpoint: Option<&[u8]>,
) -> Outcome {
    let p = t.partition;
    let m = &*t.manifest;
    let mut out = Outcome {
        partition: p,
        seq: t.seq,
        bytes: bytes.len() as u64,
        records: m.record_count,
        claimed_last_hash: m.last_hash.0,
        ..Outcome::default()
    };
    // The checkpoint first: its size and signature count even if the records cannot be read.
    let cp = match checkpoint.map(|b| {
        std::str::from_utf8(b)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(|t| SignedCheckpoint::parse(t).map_err(|e| e.to_string()))
    }) {
        None => None,
        Some(Ok(cp)) => {
            out.checkpoint = Some((cp.checkpoint.size, cp.checkpoint.root));
            if let Some(k) = &t.pubkey
                && let Err(e) = cp.verify(k)
            {
                out.failures
                    .push(fail(Check::Signature, p, ckey, e.to_string()));
            }
            Some(cp)
        }
        Some(Err(e)) => {
            out.failures.push(fail(
                Check::Checkpoint,
                p,
                ckey,
                format!("unreadable checkpoint: {e}"),
            ));
            None
        }
    };
    let mkey = layout::key(p, t.seq, ObjectKind::Manifest);
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    if digest != m.segment_sha256.0 || bytes.len() as u64 != m.segment_bytes {
        out.failures.push(fail(
            Check::SegmentDigest,
            p,
            skey,
            format!(
                "segment bytes differ from the manifest: SHA-256 {} ({} bytes), manifest says {} ({} bytes)",
                hex::encode(digest),
                bytes.len(),
                hex::encode(m.segment_sha256.0),
                m.segment_bytes
            ),
        ));
    }
    if m.partition != p || m.segment != skey || i64::try_from(t.seq).ok() != Some(m.first_seq) {
        out.failures.push(fail(
            Check::Manifest,
            p,
            &mkey,
            "manifest names another partition, segment or first seq than its key",
        ));
    }

    let seg = match open_segment(bytes) {
        Ok(s) => s,
        Err(e) => {
            out.failures
                .push(seg_failure(Check::SegmentFormat, p, skey, None, &e));
            return out;
        }
    };
    match (&seg.meta, &seg.meta_error) {
        (Some(meta), _) => {
            let agree = meta.partition == p
                && meta.archive_id == m.archive_id
                && meta.first_seq == m.first_seq
                && meta.last_seq == m.last_seq
                && meta.record_count == m.record_count
                && meta.first_ledger_offset == m.first_ledger_offset
                && meta.last_ledger_offset == m.last_ledger_offset
                && meta.fences == m.fences
                && meta.reader_state == m.reader_state;
            if !agree {
                out.failures.push(fail(
                    Check::Manifest,
                    p,
                    &mkey,
                    "manifest and the segment's own header (provenant.segment) disagree",
                ));
            }
        }
        (None, Some(e)) => out
            .failures
            .push(fail(Check::SegmentFormat, p, skey, e.clone())),
        (None, None) => {}
    }

    let mut frontier = t.start.clone();
    let mut expected_seq = m.first_seq;
    let mut prev = m.first_prev_hash.0;
    let mut first_prev: Option<[u8; 32]> = None;
    let mut last: Option<(i64, [u8; 32])> = None;
    let mut first_hash: Option<[u8; 32]> = None;
    let keep = t.keep_leaves;
    let mut leaves = Vec::new();
    let mut record_check = Check::SegmentFormat;
    let walked = each_record_hash(&seg, |index, block_offset, r| {
        let at = |message: String| SegmentError {
            byte_offset: block_offset,
            record_index: Some(index),
            message,
        };
        if r.seq != expected_seq {
            record_check = Check::Chain;
            return Err(at(format!(
                "record has seq {}, expected {expected_seq} (a record is missing, duplicated or out of order)",
                r.seq
            )));
        }
        if index == 0 {
            first_prev = Some(r.prev_hash);
            first_hash = Some(r.hash);
        } else if r.prev_hash != prev {
            record_check = Check::Chain;
            return Err(at(
                "prev_hash is not the hash of the record before it (a record was removed, inserted or reordered)".into(),
            ));
        }
        match r.computed {
            Ok(h) if h == r.hash => {}
            Ok(_) => {
                record_check = Check::RecordHash;
                return Err(at(
                    "hash does not match the record's contents (the record was altered)".into(),
                ));
            }
            Err(e) => {
                record_check = Check::RecordHash;
                return Err(at(format!("record cannot be hashed: {e}")));
            }
        }
        if let Some(f) = frontier.as_mut() {
            f.push_record_hash(&r.hash);
        }
        if keep {
            leaves.push(merkle::leaf_hash(&r.hash));
        }
        prev = r.hash;
        last = Some((r.seq, r.hash));
        expected_seq = r.seq.saturating_add(1);
        Ok(())
    });
    out.leaves = leaves;
    let count = match walked {
        Ok(n) => n,
        Err(e) => {
            let seq = e
                .record_index
                .and_then(|i| i64::try_from(i).ok())
                .map(|i| m.first_seq.saturating_add(i));
            out.failures
                .push(seg_failure(record_check, p, skey, seq, &e));
            return out;
        }
    };
    out.records = count;
    let (Some(first_prev), Some((last_seq, last_hash)), Some(first_hash)) =
        (first_prev, last, first_hash)
    else {
        out.failures.push(fail(
            Check::SegmentFormat,
            p,
            skey,
            "segment holds no record",
        ));
        return out;
    };
    out.actual = Some((first_prev, last_seq, last_hash));
    if count != m.record_count
        || last_seq != m.last_seq
        || last_hash != m.last_hash.0
        || first_hash != m.first_hash.0
        || first_prev != m.first_prev_hash.0
    {
        out.failures.push(fail(
            Check::Manifest,
            p,
            &mkey,
            format!(
                "manifest disagrees with the segment's records: manifest says {} records seq {}..={}, the segment holds {count} records seq {}..={last_seq} (or their first/last hashes differ)",
                m.record_count, m.first_seq, m.last_seq, m.first_seq
            ),
        ));
    }
    let computed = frontier.as_ref().map(MerkleJson::of);
    if let Some(c) = &computed
        && *c != m.merkle
    {
        out.failures.push(fail(
            Check::Merkle,
            p,
            &mkey,
            format!(
                "Merkle tree after the segment is size {} root {}, the manifest says size {} root {}",
                c.tree_size,
                hex::encode(c.root.0),
                m.merkle.tree_size,
                hex::encode(m.merkle.root.0)
            ),
        ));
    }
    let Some(cp) = cp else {
        return out;
    };
    let want_origin = layout::origin(&m.archive_id, p);
    let want_size = u64::try_from(last_seq).unwrap_or(0).saturating_add(1);
    let want_root = computed.as_ref().map_or(m.merkle.root.0, |c| c.root.0);
    if cp.checkpoint.origin != want_origin {
        out.failures.push(fail(
            Check::Checkpoint,
            p,
            ckey,
            format!(
                "origin is {:?}, expected {want_origin:?}",
                cp.checkpoint.origin
            ),
        ));
    }
    if cp.checkpoint.size != want_size || cp.checkpoint.root != want_root {
        out.failures.push(Failure {
            seq: Some(last_seq),
            ..fail(
                Check::Checkpoint,
                p,
                ckey,
                format!(
                    "checkpoint signs tree size {} root {}, but the records up to this segment give size {want_size} root {}",
                    cp.checkpoint.size,
                    hex::encode(cp.checkpoint.root),
                    hex::encode(want_root)
                ),
            )
        });
    }
    out
}

fn seg_failure(check: Check, p: u32, key: &str, seq: Option<i64>, e: &SegmentError) -> Failure {
    Failure {
        check,
        partition: Some(p),
        key: key.to_owned(),
        seq,
        record_index: e.record_index,
        byte_offset: Some(e.byte_offset),
        message: e.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse() {
        assert_eq!(parse_origin("provenant/prod/p3"), Some(("prod", 3)));
        assert_eq!(parse_origin("provenant/a/b/p12"), Some(("a/b", 12)));
        assert_eq!(parse_origin("provenant/prod/3"), None);
        assert_eq!(parse_origin("other/prod/p3"), None);
    }
}
