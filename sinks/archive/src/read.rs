//! Reading segments back: header checks, then records one by one with their location.
//!
//! Used by `verify`, `dump`, `prove` and by the sink when it completes a crash's leftover.
//! Invariants: never panics on any bytes; every error names the byte offset in the segment
//! and, when a record is involved, its index in the segment (0-based).

use provenant_schemas::canonical::{DatumScratch, hash_record_datum};
use provenant_schemas::ledger::{InvalidRecord, LedgerHash, LedgerRecord};

use crate::manifest::SegmentMeta;
use crate::ocf::{BlockDecompressor, Container};

/// Why a segment cannot be read (from this point on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}at byte {byte_offset}: {message}", record_index.map(|i| format!("record #{i} ")).unwrap_or_default())]
pub struct SegmentError {
    pub byte_offset: u64,
    pub record_index: Option<u64>,
    pub message: String,
}

/// A segment whose header was read.
#[derive(Debug)]
pub struct OpenedSegment<'a> {
    pub container: Container<'a>,
    /// The `provenant.segment` metadata (`None` if absent or unreadable).
    pub meta: Option<SegmentMeta>,
    /// Why the metadata could not be read, if it could not.
    pub meta_error: Option<String>,
}

/// Parses and checks a segment's header: magic, `avro.codec` = `zstandard`, `avro.schema` = the
/// ledger record schema.
pub fn open_segment(bytes: &[u8]) -> Result<OpenedSegment<'_>, SegmentError> {
    let err = |offset: u64, message: String| SegmentError {
        byte_offset: offset,
        record_index: None,
        message,
    };
    let container = Container::parse(bytes).map_err(|e| err(e.offset, e.message))?;
    if container.meta_str("avro.codec") != Some(crate::ocf::CODEC) {
        return Err(err(
            0,
            format!(
                "avro.codec is {:?}, expected \"zstandard\"",
                container.meta_str("avro.codec")
            ),
        ));
    }
    let ours: Option<serde_json::Value> = crate::ocf::ledger_record_schema_json()
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let theirs: Option<serde_json::Value> = container
        .meta_str("avro.schema")
        .and_then(|s| serde_json::from_str(s).ok());
    if ours.is_none() || ours != theirs {
        return Err(err(
            0,
            "avro.schema is not the io.provenant.v1.LedgerRecord schema".into(),
        ));
    }
    let (meta, meta_error) = match container.meta_str(crate::ocf::META_SEGMENT) {
        None => (None, Some("no provenant.segment metadata".to_owned())),
        Some(s) => match serde_json::from_str::<SegmentMeta>(s) {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(format!("provenant.segment metadata: {e}"))),
        },
    };
    Ok(OpenedSegment {
        container,
        meta,
        meta_error,
    })
}

/// Calls `f(index, block offset, record)` for every record in order. Stops at the first error
/// (of the file or of `f`). Returns the number of records.
pub fn each_record(
    seg: &OpenedSegment<'_>,
    mut f: impl FnMut(u64, u64, LedgerRecord) -> Result<(), SegmentError>,
) -> Result<u64, SegmentError> {
    each_datum(seg, |index, block_offset, rest, _| {
        // Avro datums are not length-prefixed: decoding one finds where it ends.
        let (record, len) = LedgerRecord::from_avro_datum_prefix(rest)
            .map_err(|e| undecodable(block_offset, index, &e))?;
        f(index, block_offset, record)?;
        Ok(len)
    })
}

/// A record's chain fields and its hash recomputed from its content ([`each_record_hash`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHash {
    pub seq: i64,
    pub prev_hash: LedgerHash,
    /// The hash stored in the record.
    pub hash: LedgerHash,
    /// The hash of the record's content (an error if the record breaks the ledger rules).
    pub computed: Result<LedgerHash, InvalidRecord>,
}

/// Like [`each_record`], for `verify`: calls `f(index, block offset, hashes)` for every record
/// in order, with the hash recomputed from the record's content. The hash is computed straight
/// from the Avro datum ([`hash_record_datum`], no decoded record); a record for which that
/// fails or whose hash differs is read again with the strict decoder and hashed with
/// `compute_hash`, so the verdict and the error of a bad record are exactly those of
/// [`each_record`].
pub fn each_record_hash(
    seg: &OpenedSegment<'_>,
    mut f: impl FnMut(u64, u64, RecordHash) -> Result<(), SegmentError>,
) -> Result<u64, SegmentError> {
    each_datum(seg, |index, block_offset, rest, scratch| {
        let (hashes, len) = match hash_record_datum(rest, scratch) {
            Ok(d) if d.computed == d.hash => (
                RecordHash {
                    seq: d.seq,
                    prev_hash: d.prev_hash,
                    hash: d.hash,
                    computed: Ok(d.computed),
                },
                d.len,
            ),
            _ => {
                let (record, len) = LedgerRecord::from_avro_datum_prefix(rest)
                    .map_err(|e| undecodable(block_offset, index, &e))?;
                (
                    RecordHash {
                        seq: record.seq,
                        prev_hash: record.prev_hash,
                        hash: record.hash,
                        computed: record.compute_hash(),
                    },
                    len,
                )
            }
        };
        f(index, block_offset, hashes)?;
        Ok(len)
    })
}

fn undecodable(block_offset: u64, index: u64, e: &provenant_schemas::EventError) -> SegmentError {
    SegmentError {
        byte_offset: block_offset,
        record_index: Some(index),
        message: format!("record does not decode: {e}"),
    }
}

/// Walks the datums of every block: `each(index, block offset, rest of the block, scratch)`
/// reads the datum at the start of `rest` and returns its length. Checks that the blocks hold
/// exactly the records they announce.
fn each_datum(
    seg: &OpenedSegment<'_>,
    mut each: impl for<'b> FnMut(
        u64,
        u64,
        &'b [u8],
        &mut DatumScratch<'b>,
    ) -> Result<usize, SegmentError>,
) -> Result<u64, SegmentError> {
    let mut index = 0u64;
    let mut zstd = BlockDecompressor::new().map_err(|m| SegmentError {
        byte_offset: 0,
        record_index: None,
        message: m,
    })?;
    for block in seg.container.blocks() {
        let block = block.map_err(|e| SegmentError {
            byte_offset: e.offset,
            record_index: Some(index),
            message: e.message,
        })?;
        let at = |message: String, index: u64| SegmentError {
            byte_offset: block.offset,
            record_index: Some(index),
            message,
        };
        let data = zstd
            .decompress(block.data)
            .map_err(|m| at(format!("block: {m}"), index))?;
        let mut scratch = DatumScratch::default();
        let mut rest = data;
        for _ in 0..block.count {
            let len = each(index, block.offset, rest, &mut scratch)?;
            rest = rest
                .get(len..)
                .ok_or_else(|| at("truncated".into(), index))?;
            index += 1;
        }
        if !rest.is_empty() {
            return Err(at(
                format!(
                    "{} bytes after the {} records the block announces",
                    rest.len(),
                    block.count
                ),
                index,
            ));
        }
    }
    Ok(index)
}

/// A whole segment decoded.
#[derive(Debug)]
pub struct DecodedSegment {
    pub meta: Option<SegmentMeta>,
    pub records: Vec<LedgerRecord>,
}

/// Decodes a whole segment (header and every record).
pub fn decode_segment(bytes: &[u8]) -> Result<DecodedSegment, String> {
    let seg = open_segment(bytes).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    each_record(&seg, |_, _, r| {
        records.push(r);
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(DecodedSegment {
        meta: seg.meta,
        records,
    })
}

/// The segment keys of the archive (relative), per partition, in seq order; only segments that
/// have a manifest (written completely). `partition` limits it to one.
pub async fn segment_keys(
    store: &crate::store::ArchiveStore,
    partition: Option<u32>,
) -> Result<std::collections::BTreeMap<u32, Vec<(u64, String)>>, crate::error::ArchiveError> {
    use crate::layout::{self, ObjectKind};
    let prefix = partition.map(layout::partition_dir).unwrap_or_default();
    let listing = store.list(&prefix).await?;
    let manifests: std::collections::BTreeSet<(u32, u64)> = listing
        .iter()
        .filter_map(|(k, _)| layout::parse_key(k))
        .filter(|(_, _, kind)| *kind == ObjectKind::Manifest)
        .map(|(p, s, _)| (p, s))
        .collect();
    let mut out: std::collections::BTreeMap<u32, Vec<(u64, String)>> = Default::default();
    for (key, _) in &listing {
        if let Some((p, seq, ObjectKind::Segment)) = layout::parse_key(key)
            && partition.is_none_or(|want| want == p)
            && manifests.contains(&(p, seq))
        {
            out.entry(p).or_default().push((seq, key.clone()));
        }
    }
    Ok(out)
}

/// Calls `f(partition, segment key, record)` for every record of every written segment, in
/// partition and seq order. The records are decoded, not verified (use `verify` for that).
pub async fn for_each_record(
    store: &crate::store::ArchiveStore,
    partition: Option<u32>,
    mut f: impl FnMut(u32, &str, LedgerRecord) -> Result<(), crate::error::ArchiveError>,
) -> Result<u64, crate::error::ArchiveError> {
    let mut n = 0u64;
    for (p, segs) in segment_keys(store, partition).await? {
        for (_, key) in segs {
            let bytes = store.get(&key).await?;
            let seg = open_segment(&bytes)
                .map_err(|e| crate::error::ArchiveError::corrupt(&key, e.to_string()))?;
            let mut inner_err = None;
            let walked = each_record(&seg, |_, _, r| {
                n += 1;
                if let Err(e) = f(p, &key, r) {
                    inner_err = Some(e);
                    return Err(SegmentError {
                        byte_offset: 0,
                        record_index: None,
                        message: String::new(),
                    });
                }
                Ok(())
            });
            if let Some(e) = inner_err {
                return Err(e);
            }
            walked.map_err(|e| crate::error::ArchiveError::corrupt(&key, e.to_string()))?;
        }
    }
    Ok(n)
}

/// Replays one partition's archived history: calls `each(record)` for every record of every
/// written segment of `partition`, seq 0 upward, and returns the reader state stored with the
/// newest of them (where a reader of the ledger continues; `None` when the partition has no
/// segment yet). Used by the processor when the ledger's beginning was deleted by retention.
///
/// The records are decoded, not verified: the caller checks that they chain from seq 0 to the
/// returned state's head (`provenant verify` checks everything else). An error of `each` stops
/// the replay and is returned as [`ArchiveError::Corrupt`] on the segment being read.
pub async fn replay_partition(
    store: &crate::store::ArchiveStore,
    partition: u32,
    mut each: impl FnMut(LedgerRecord) -> Result<(), String>,
) -> Result<Option<provenant_schemas::validity::ReaderState>, crate::error::ArchiveError> {
    use crate::error::ArchiveError;
    let segs = segment_keys(store, Some(partition))
        .await?
        .remove(&partition)
        .unwrap_or_default();
    let Some((last_seq, _)) = segs.last() else {
        return Ok(None);
    };
    let state = stored_state(store, partition, *last_seq).await?;
    for (_, key) in &segs {
        let bytes = store.get(key).await?;
        let seg = open_segment(&bytes).map_err(|e| ArchiveError::corrupt(key, e.to_string()))?;
        let walked = each_record(&seg, |index, offset, r| {
            each(r).map_err(|message| SegmentError {
                byte_offset: offset,
                record_index: Some(index),
                message,
            })
        });
        walked.map_err(|e| ArchiveError::corrupt(key, e.to_string()))?;
    }
    Ok(Some(state))
}

/// The reader state stored with the segment of `partition` that starts at `seq`.
async fn stored_state(
    store: &crate::store::ArchiveStore,
    partition: u32,
    seq: u64,
) -> Result<provenant_schemas::validity::ReaderState, crate::error::ArchiveError> {
    use crate::error::ArchiveError;
    use crate::layout::{self, ObjectKind};
    let mkey = layout::key(partition, seq, ObjectKind::Manifest);
    let manifest = crate::manifest::Manifest::parse(&store.get(&mkey).await?)
        .map_err(|m| ArchiveError::corrupt(&mkey, m))?;
    manifest
        .reader_state
        .to_state()
        .ok_or_else(|| ArchiveError::corrupt(&mkey, "reader_state: fence is half given"))
}

/// Per partition, the reader state stored with its newest written segment: how far the
/// archive holds the ledger (what may be deleted from the ledger below `ledger_offset`).
pub async fn archived_states(
    store: &crate::store::ArchiveStore,
) -> Result<
    std::collections::BTreeMap<u32, provenant_schemas::validity::ReaderState>,
    crate::error::ArchiveError,
> {
    let mut out = std::collections::BTreeMap::new();
    for (p, segs) in segment_keys(store, None).await? {
        if let Some((seq, _)) = segs.last() {
            out.insert(p, stored_state(store, p, *seq).await?);
        }
    }
    Ok(out)
}
