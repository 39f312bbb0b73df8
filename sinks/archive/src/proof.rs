//! Inclusion proofs: [`prove`] finds an event in the archive and proves that its record is in
//! the partition's signed Merkle tree; [`verify_proof`] checks such a proof without the archive.
//!
//! A proof (JSON, [`InclusionProof`]) carries the record in its canonical JSON form, the record
//! hash, the RFC 6962 audit path from its leaf (index = seq) to the root, and the newest signed
//! checkpoint of its partition. The verifier recomputes the record hash from the JSON (the
//! schema crate's canonical bytes), the leaf, the root from the path, and checks the checkpoint
//! signs that root for the proof's partition — so neither the record nor its position can be
//! changed without breaking the proof.

use provenant_schemas::canonical::{canonical_bytes_of_json, hash_of, record_json};
use provenant_schemas::ledger::RecordBody;
use serde::{Deserialize, Serialize};

use crate::error::ArchiveError;
use crate::layout::{self, ObjectKind};
use crate::manifest::Hex32;
use crate::merkle::{self, Hash};
use crate::note::{CheckpointError, SignedCheckpoint, VerifierKey};
use crate::read::{each_record, open_segment, segment_keys};
use crate::store::ArchiveStore;

/// Version tag of the proof format.
pub const PROOF_FORMAT: &str = "provenant.inclusion-proof/v1";

/// An inclusion proof of one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub format: String,
    pub partition: u32,
    /// The segment that holds the record (informational).
    pub segment: String,
    pub seq: i64,
    /// The record's JSON form (`provenant_schemas::canonical::record_json`).
    pub record: serde_json::Value,
    pub record_hash: Hex32,
    /// Leaf index (= seq) and tree size of the proof.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// RFC 6962 audit path, deepest sibling first.
    pub audit_path: Vec<Hex32>,
    /// The signed checkpoint (note text) whose root the path leads to.
    pub checkpoint: String,
}

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error("no event with id {0:?} in the archive")]
    NotFound(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("the archive does not verify ({0}); run `provenant verify` on it")]
    Integrity(String),
}

/// Why a proof does not hold.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("malformed proof: {0}")]
    Malformed(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the record's contents do not hash to record_hash (the record was altered)")]
    RecordHash,
    #[error("the audit path does not lead from the record to the checkpoint's root")]
    Inclusion,
}

/// What a valid proof proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProofSummary {
    pub origin: String,
    pub partition: u32,
    pub seq: i64,
    pub tree_size: u64,
    pub root: String,
    pub record_hash: String,
    pub signature_checked: bool,
}

/// Finds events with id `event_id` (and `source`, if given) and proves each one's inclusion in
/// the newest checkpoint of its partition.
pub async fn prove(
    store: &ArchiveStore,
    event_id: &str,
    source: Option<&str>,
) -> Result<Vec<InclusionProof>, ProveError> {
    let mut proofs = Vec::new();
    for (p, segs) in segment_keys(store, None).await? {
        let mut leaves: Vec<Hash> = Vec::new();
        let mut found = Vec::new();
        let mut newest_cp: Option<(u64, String)> = None;
        for (seq, key) in &segs {
            let bytes = store.get(key).await?;
            let seg =
                open_segment(&bytes).map_err(|e| ProveError::Integrity(format!("{key}: {e}")))?;
            each_record(&seg, |_, _, r| {
                if let RecordBody::Event(er) = &r.body
                    && er.event.id == event_id
                    && source.is_none_or(|s| s == er.event.source)
                {
                    found.push((key.clone(), r.clone()));
                }
                leaves.push(merkle::leaf_hash(&r.hash));
                Ok(())
            })
            .map_err(|e| ProveError::Integrity(format!("{key}: {e}")))?;
            let ckey = layout::key(p, *seq, ObjectKind::Checkpoint);
            if let Some(text) = store.get_opt(&ckey).await? {
                let text = String::from_utf8(text.to_vec())
                    .map_err(|_| ProveError::Integrity(format!("{ckey}: not UTF-8")))?;
                newest_cp = Some((leaves.len() as u64, text));
            }
        }
        if found.is_empty() {
            continue;
        }
        let Some((size, text)) = newest_cp else {
            return Err(ProveError::Integrity(format!(
                "partition {p} has no checkpoint"
            )));
        };
        let cp =
            SignedCheckpoint::parse(&text).map_err(|e| ProveError::Integrity(e.to_string()))?;
        if cp.checkpoint.size != size
            || merkle::root_of(
                leaves
                    .get(..usize::try_from(size).unwrap_or(0))
                    .unwrap_or(&[]),
            ) != cp.checkpoint.root
        {
            return Err(ProveError::Integrity(format!(
                "partition {p}: the records do not give the newest checkpoint's tree"
            )));
        }
        for (segment, r) in found {
            let index = u64::try_from(r.seq).unwrap_or(u64::MAX);
            let Some(path) = merkle::inclusion_proof(&leaves, index, size) else {
                continue;
            };
            proofs.push(InclusionProof {
                format: PROOF_FORMAT.into(),
                partition: p,
                segment,
                seq: r.seq,
                record: record_json(&r),
                record_hash: Hex32(r.hash),
                leaf_index: index,
                tree_size: size,
                audit_path: path.into_iter().map(Hex32).collect(),
                checkpoint: text.clone(),
            });
        }
    }
    if proofs.is_empty() {
        return Err(ProveError::NotFound(event_id.to_owned()));
    }
    Ok(proofs)
}

fn hex32_field(record: &serde_json::Value, field: &str) -> Result<[u8; 32], ProofError> {
    record
        .get(field)
        .and_then(|v| v.as_str())
        .and_then(|s| hex::decode(s).ok())
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ProofError::Malformed(format!("record.{field} is not 64 hex digits")))
}

/// Checks a proof. With `key`, the checkpoint must carry a valid signature by it; without, only
/// the hashes are checked (and `signature_checked` is false).
pub fn verify_proof(
    proof: &InclusionProof,
    key: Option<&VerifierKey>,
) -> Result<ProofSummary, ProofError> {
    if proof.format != PROOF_FORMAT {
        return Err(ProofError::Malformed(format!(
            "format is {:?}, expected {PROOF_FORMAT:?}",
            proof.format
        )));
    }
    let cp = SignedCheckpoint::parse(&proof.checkpoint)?;
    if let Some(k) = key {
        cp.verify(k)?;
    }
    let origin_partition = cp
        .checkpoint
        .origin
        .rsplit_once("/p")
        .and_then(|(_, p)| p.parse::<u32>().ok());
    if origin_partition != Some(proof.partition) {
        return Err(ProofError::Malformed(format!(
            "checkpoint origin {:?} is not partition {}",
            cp.checkpoint.origin, proof.partition
        )));
    }
    if cp.checkpoint.size != proof.tree_size {
        return Err(ProofError::Malformed(
            "tree_size differs from the checkpoint's".into(),
        ));
    }
    let seq = proof.record.get("seq").and_then(serde_json::Value::as_i64);
    if seq != Some(proof.seq) || u64::try_from(proof.seq).ok() != Some(proof.leaf_index) {
        return Err(ProofError::Malformed(
            "seq, record.seq and leaf_index differ".into(),
        ));
    }
    let prev = hex32_field(&proof.record, "prev_hash")?;
    let stated = hex32_field(&proof.record, "hash")?;
    let canonical =
        canonical_bytes_of_json(&proof.record).map_err(|e| ProofError::Malformed(e.to_string()))?;
    let computed = hash_of(&prev, &canonical);
    if computed != proof.record_hash.0 || stated != proof.record_hash.0 {
        return Err(ProofError::RecordHash);
    }
    let path: Vec<Hash> = proof.audit_path.iter().map(|h| h.0).collect();
    let leaf = merkle::leaf_hash(&computed);
    if !merkle::verify_inclusion(
        proof.leaf_index,
        proof.tree_size,
        &leaf,
        &path,
        &cp.checkpoint.root,
    ) {
        return Err(ProofError::Inclusion);
    }
    Ok(ProofSummary {
        origin: cp.checkpoint.origin.clone(),
        partition: proof.partition,
        seq: proof.seq,
        tree_size: proof.tree_size,
        root: hex::encode(cp.checkpoint.root),
        record_hash: hex::encode(computed),
        signature_checked: key.is_some(),
    })
}
