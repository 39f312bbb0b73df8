//! The JSON written next to each segment: the manifest (`*.manifest.json`) and the segment
//! description inside the segment's own header (`provenant.segment`).
//!
//! The segment's header carries everything about the segment that its records do not say (the
//! ledger offsets, the counted fences it spans, the reader state after it), so a segment left
//! without a manifest by a crash can be completed from its own bytes. The manifest repeats it
//! and adds what needs the whole segment: its SHA-256 and size, the first and last hashes and
//! the Merkle frontier after it.
//!
//! Invariants: both are parsed with `deny_unknown_fields`; hashes are lowercase hex; every
//! number is a JSON integer.

use provenant_schemas::canonical::ChainHead;
use provenant_schemas::validity::ReaderState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::merkle::{Frontier, Hash};

/// Version tag of the manifest format.
pub const MANIFEST_FORMAT: &str = "provenant.archive.manifest/v1";
/// Version tag of the segment description.
pub const SEGMENT_FORMAT: &str = "provenant.archive.segment/v1";

/// A 32-byte hash as lowercase hex in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hex32(pub [u8; 32]);

impl Serialize for Hex32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hex32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hex::<32>(&s)
            .map(Hex32)
            .map_err(serde::de::Error::custom)
    }
}

/// A 16-byte writer id as lowercase hex in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex16(pub [u8; 16]);

impl Serialize for Hex16 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Hex16 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hex::<16>(&s)
            .map(Hex16)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("expected {} lowercase hex digits", 2 * N));
    }
    let v = hex::decode(s).map_err(|e| e.to_string())?;
    v.try_into().map_err(|_| format!("expected {N} bytes"))
}

/// A counted fence the segment spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceJson {
    pub ledger_offset: u64,
    pub writer_epoch: i64,
    pub writer_id: Hex16,
}

/// [`ReaderState`] in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderStateJson {
    pub ledger_offset: u64,
    pub next_seq: i64,
    pub head_hash: Hex32,
    pub fence_epoch: Option<i64>,
    pub fence_writer_id: Option<Hex16>,
    pub raw_offset: Option<i64>,
}

impl From<&ReaderState> for ReaderStateJson {
    fn from(s: &ReaderState) -> Self {
        Self {
            ledger_offset: s.ledger_offset,
            next_seq: s.head.next_seq,
            head_hash: Hex32(s.head.head_hash),
            fence_epoch: s.fence.map(|f| f.0),
            fence_writer_id: s.fence.map(|f| Hex16(f.1)),
            raw_offset: s.raw_offset,
        }
    }
}

impl ReaderStateJson {
    /// Back to a [`ReaderState`]; `None` if the fence is half there.
    pub fn to_state(&self) -> Option<ReaderState> {
        let fence = match (self.fence_epoch, self.fence_writer_id) {
            (Some(e), Some(w)) => Some((e, w.0)),
            (None, None) => None,
            _ => return None,
        };
        Some(ReaderState {
            ledger_offset: self.ledger_offset,
            head: ChainHead {
                next_seq: self.next_seq,
                head_hash: self.head_hash.0,
            },
            fence,
            raw_offset: self.raw_offset,
        })
    }
}

/// The Merkle tree of the partition after the segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerkleJson {
    /// Leaves in the tree: `last_seq + 1`.
    pub tree_size: u64,
    /// RFC 6962 root.
    pub root: Hex32,
    /// The compact range `[0, tree_size)`: roots of the perfect subtrees, leftmost first.
    pub frontier: Vec<Hex32>,
}

impl MerkleJson {
    pub fn of(f: &Frontier) -> Self {
        Self {
            tree_size: f.size(),
            root: Hex32(f.root()),
            frontier: f.hashes().iter().map(|h| Hex32(*h)).collect(),
        }
    }

    /// The frontier, if its parts fit together and give the stated root.
    pub fn frontier(&self) -> Option<Frontier> {
        let f = Frontier::from_parts(
            self.tree_size,
            self.frontier.iter().map(|h| h.0).collect::<Vec<Hash>>(),
        )
        .ok()?;
        (f.root() == self.root.0).then_some(f)
    }
}

/// What the segment's header says about it (`provenant.segment` metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentMeta {
    pub format: String,
    pub archive_id: String,
    pub partition: u32,
    pub first_seq: i64,
    pub last_seq: i64,
    pub record_count: u64,
    /// Ledger offset of the first record.
    pub first_ledger_offset: u64,
    /// Ledger offset of the last record.
    pub last_ledger_offset: u64,
    /// Counted fences between the previous segment's reader state and this one's.
    pub fences: Vec<FenceJson>,
    /// The reader state after this segment: where the sink resumes.
    pub reader_state: ReaderStateJson,
}

/// The manifest of a segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub archive_id: String,
    pub partition: u32,
    /// The segment's key, relative to the archive root.
    pub segment: String,
    /// SHA-256 of the segment's bytes as stored.
    pub segment_sha256: Hex32,
    pub segment_bytes: u64,
    pub record_count: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// `prev_hash` of the first record (the last hash of the segment before).
    pub first_prev_hash: Hex32,
    pub first_hash: Hex32,
    pub last_hash: Hex32,
    pub first_ledger_offset: u64,
    pub last_ledger_offset: u64,
    pub fences: Vec<FenceJson>,
    pub reader_state: ReaderStateJson,
    pub merkle: MerkleJson,
    /// When the sink wrote it (RFC 3339, UTC). Informational.
    pub written_at: String,
}

impl Manifest {
    /// The JSON bytes as stored (pretty, with a final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!(
                "format is {:?}, expected {MANIFEST_FORMAT:?}",
                m.format
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reader_state_round_trips() {
        let s = ReaderState {
            ledger_offset: 9,
            head: ChainHead {
                next_seq: 4,
                head_hash: [3; 32],
            },
            fence: Some((2, [1; 16])),
            raw_offset: Some(7),
        };
        let j = ReaderStateJson::from(&s);
        let text = serde_json::to_string(&j).unwrap();
        let back: ReaderStateJson = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_state(), Some(s));
        assert!(serde_json::from_str::<ReaderStateJson>(&text.replace('}', ",\"x\":1}")).is_err());
        assert!(serde_json::from_str::<Hex32>("\"AB\"").is_err());
    }
}
