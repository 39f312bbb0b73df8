//! The archive sink: turns each partition's valid ledger entries into write-once segments.
//!
//! Who calls it: the archive runner, which reads `prov.ledger` through the log layer, applies
//! the validity rule and hands each partition's valid entries (records and counted fences) to
//! [`ArchiveSink::write`] in log order.
//!
//! Guarantees:
//! * **Write-once.** Every object is created with `PutMode::Create`; an existing object with other
//!   bytes is [`ArchiveError::Conflict`], which stops the sink. Nothing is ever overwritten or
//!   deleted.
//! * **Order and completeness.** A segment is uploaded, then its manifest, then its checkpoint;
//!   only then does the partition's durable position ([`ArchiveSink::durable_state`]) move. A
//!   segment is complete when all three exist.
//! * **Resume.** [`ArchiveSink::resume`] returns the reader state of the newest complete segment
//!   (the runner reads the ledger from there). A segment left incomplete by a crash (segment
//!   without manifest, or without checkpoint) is *completed from its own bytes* — its header
//!   holds its ledger offsets, fences and reader state — after its records are checked to extend
//!   the chain; so a restart never needs to rewrite an existing object. Records at or below the
//!   resumed position are skipped by `write` (idempotent by ledger position).
//! * **Bounded memory.** The open segment of each partition is streamed block by block to an
//!   unlinked spool file; in memory are one block buffer per partition (their allocated bytes
//!   together capped by `max_buffered_bytes`: past it the largest are flushed), the Merkle frontier
//!   (O(log n) hashes) and, while one segment is uploaded, that segment's bytes (at most about
//!   `rotate_bytes` plus one block).
//!
//! An error from any method means the sink must be dropped and reopened (which resumes): the
//! open segments are lost from the spool and re-read from the ledger.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use provenant_schemas::canonical::{ChainHead, verify_chain};
use provenant_schemas::ledger::{LedgerEntry, LedgerRecord};
use provenant_schemas::validity::{ReaderState, Validator, Verdict};
use sha2::{Digest, Sha256};

use crate::config::ArchiveConfig;
use crate::error::ArchiveError;
use crate::layout::{self, ObjectKind};
use crate::manifest::{
    FenceJson, Hex16, Hex32, MANIFEST_FORMAT, Manifest, MerkleJson, ReaderStateJson,
    SEGMENT_FORMAT, SegmentMeta,
};
use crate::merkle::Frontier;
use crate::note::{ArchiveKey, Checkpoint, SignedCheckpoint};
use crate::ocf;
use crate::read::{DecodedSegment, decode_segment};
use crate::store::ArchiveStore;

/// What a closed segment holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub partition: u32,
    /// The segment's key, relative to the archive root.
    pub key: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub records: u64,
    /// Size as stored.
    pub bytes: u64,
    /// Merkle tree size and root after the segment (what its checkpoint signs).
    pub tree_size: u64,
    pub root: [u8; 32],
    /// The reader state after it (the partition's new durable position).
    pub state: ReaderState,
}

struct OpenSegment {
    first_seq: i64,
    first_prev_hash: [u8; 32],
    first_hash: [u8; 32],
    last_seq: i64,
    last_hash: [u8; 32],
    count: u64,
    first_ledger_offset: u64,
    last_ledger_offset: u64,
    fences: Vec<FenceJson>,
    opened: Instant,
    sync: [u8; 16],
    spool: BufWriter<File>,
    spool_len: u64,
    block: Vec<u8>,
    block_count: u64,
}

struct Part {
    /// State after the newest complete segment.
    durable: ReaderState,
    /// Applies the validity rule (without re-hashing: the runner did) to what is written.
    validator: Validator,
    /// The Merkle frontier after every record written (open segment included).
    frontier: Frontier,
    open: Option<OpenSegment>,
    /// Counted fences seen while no segment was open; they go to the next segment.
    pending_fences: Vec<FenceJson>,
}

/// The archive sink. See the module documentation.
pub struct ArchiveSink {
    cfg: ArchiveConfig,
    store: ArchiveStore,
    key: ArchiveKey,
    spool_dir: PathBuf,
    parts: BTreeMap<u32, Part>,
    compressor: zstd::bulk::Compressor<'static>,
    schema_json: String,
    /// Bytes in all partitions' block buffers.
    buffered: usize,
}

impl std::fmt::Debug for ArchiveSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveSink")
            .field("url", &self.store.url())
            .field("archive_id", &self.cfg.archive_id)
            .field("key", &self.key)
            .field("partitions", &self.parts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ArchiveSink {
    /// Opens the archive at `cfg.url`; checkpoints are signed with `key`.
    pub async fn open(cfg: &ArchiveConfig, key: ArchiveKey) -> Result<Self, ArchiveError> {
        cfg.check().map_err(ArchiveError::Config)?;
        let store = ArchiveStore::open(&cfg.url, &cfg.s3)?;
        Self::with_store(cfg, store, key)
    }

    /// Like [`ArchiveSink::open`], over a store built by the caller.
    pub fn with_store(
        cfg: &ArchiveConfig,
        store: ArchiveStore,
        key: ArchiveKey,
    ) -> Result<Self, ArchiveError> {
        cfg.check().map_err(ArchiveError::Config)?;
        let spool_dir = cfg.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&spool_dir).map_err(|source| ArchiveError::Spool {
            dir: spool_dir.clone(),
            source,
        })?;
        let compressor = zstd::bulk::Compressor::new(cfg.zstd_level).map_err(|source| {
            ArchiveError::Config(format!("zstd level {}: {source}", cfg.zstd_level))
        })?;
        let schema_json = ocf::ledger_record_schema_json()
            .map_err(|e| ArchiveError::Config(format!("ledger record schema: {e}")))?;
        Ok(Self {
            cfg: cfg.clone(),
            store,
            key,
            spool_dir,
            parts: BTreeMap::new(),
            compressor,
            schema_json,
            buffered: 0,
        })
    }

    /// The store the sink writes to.
    pub fn store(&self) -> &ArchiveStore {
        &self.store
    }

    /// The reader state of partition `p`'s newest complete segment (its durable position), if
    /// it was resumed and has one.
    pub fn durable_state(&self, partition: u32) -> Option<ReaderState> {
        self.parts
            .get(&partition)
            .map(|p| p.durable)
            .filter(|s| *s != ReaderState::START)
    }

    /// Where partition `p` resumes: the reader state of its newest complete segment (`None`:
    /// nothing archived yet). Completes a segment a crash left incomplete (see the module
    /// doc), and loads the Merkle frontier from the newest manifest (checked against its
    /// checkpoint).
    pub async fn resume(&mut self, partition: u32) -> Result<Option<ReaderState>, ArchiveError> {
        if let Some(old) = self.parts.remove(&partition) {
            self.drop_part(old);
        }
        let listing = self.store.list(&layout::partition_dir(partition)).await?;
        // first_seq -> which of the three objects exist
        let mut stems: BTreeMap<u64, [bool; 3]> = BTreeMap::new();
        for (key, _) in &listing {
            match layout::parse_key(key) {
                Some((p, seq, kind)) if p == partition => {
                    let e = stems.entry(seq).or_default();
                    let i = kind_index(kind);
                    if let Some(slot) = e.get_mut(i) {
                        *slot = true;
                    }
                }
                _ => {
                    tracing::warn!(key = %key, "unexpected object in the archive; ignored");
                }
            }
        }
        let newest_complete = stems
            .iter()
            .rev()
            .find(|(_, have)| have.iter().all(|x| *x))
            .map(|(seq, _)| *seq);
        let (mut state, mut frontier) = match newest_complete {
            Some(seq) => self.load_complete(partition, seq).await?,
            None => (ReaderState::START, Frontier::new()),
        };
        let leftovers: Vec<(u64, [bool; 3])> = stems
            .range(newest_complete.map_or(0, |s| s.saturating_add(1))..)
            .map(|(s, h)| (*s, *h))
            .collect();
        if leftovers.len() > 1 {
            let keys: Vec<String> = leftovers
                .iter()
                .map(|(s, _)| layout::stem(partition, *s))
                .collect();
            return Err(ArchiveError::corrupt(
                keys.join(", "),
                "more than one incomplete segment after the newest complete one; the sink \
                 completes one segment before it starts the next, so another writer or a person \
                 made these",
            ));
        }
        if let Some((seq, have)) = leftovers.first().copied() {
            let (s, f) = self
                .complete_leftover(partition, seq, have, state, frontier)
                .await?;
            state = s;
            frontier = f;
        }
        let resumed = (state != ReaderState::START).then_some(state);
        tracing::info!(
            partition,
            next_seq = state.head.next_seq,
            ledger_offset = state.ledger_offset,
            tree_size = frontier.size(),
            "archive partition resumed"
        );
        self.parts.insert(
            partition,
            Part {
                durable: state,
                validator: Validator::new(state).check_hashes(false),
                frontier,
                open: None,
                pending_fences: Vec::new(),
            },
        );
        Ok(resumed)
    }

    async fn load_complete(
        &self,
        partition: u32,
        seq: u64,
    ) -> Result<(ReaderState, Frontier), ArchiveError> {
        let mkey = layout::key(partition, seq, ObjectKind::Manifest);
        let ckey = layout::key(partition, seq, ObjectKind::Checkpoint);
        let manifest = Manifest::parse(&self.store.get(&mkey).await?)
            .map_err(|m| ArchiveError::corrupt(&mkey, m))?;
        let state = manifest
            .reader_state
            .to_state()
            .ok_or_else(|| ArchiveError::corrupt(&mkey, "reader_state: fence is half given"))?;
        let frontier = manifest.merkle.frontier().ok_or_else(|| {
            ArchiveError::corrupt(&mkey, "merkle: the frontier does not give the stated root")
        })?;
        if manifest.partition != partition
            || manifest.first_seq != i64::try_from(seq).unwrap_or(-1)
            || frontier.size()
                != u64::try_from(manifest.last_seq)
                    .unwrap_or(0)
                    .saturating_add(1)
            || state.head.next_seq != manifest.last_seq.saturating_add(1)
            || state.head.head_hash != manifest.last_hash.0
        {
            return Err(ArchiveError::corrupt(
                &mkey,
                "manifest does not agree with its key, its Merkle tree size or its reader state",
            ));
        }
        let text = self.store.get(&ckey).await?;
        let text = std::str::from_utf8(&text)
            .map_err(|_| ArchiveError::corrupt(&ckey, "checkpoint is not UTF-8"))?;
        let cp = SignedCheckpoint::parse(text)
            .map_err(|e| ArchiveError::corrupt(&ckey, e.to_string()))?;
        if cp.checkpoint.size != frontier.size() || cp.checkpoint.root != frontier.root() {
            return Err(ArchiveError::corrupt(
                &ckey,
                "checkpoint tree size or root differs from the manifest's",
            ));
        }
        let mine = self.key.verifier();
        if cp
            .signatures
            .iter()
            .any(|s| s.name == mine.name() && s.key_id == mine.key_id())
        {
            cp.verify(&mine)
                .map_err(|e| ArchiveError::corrupt(&ckey, e.to_string()))?;
        } else {
            tracing::warn!(key = %ckey, "newest checkpoint is not signed by this sink's key (key rotated?)");
        }
        Ok((state, frontier))
    }

    /// Completes the segment at `seq` that a crash left without manifest or checkpoint.
    async fn complete_leftover(
        &mut self,
        partition: u32,
        seq: u64,
        have: [bool; 3],
        durable: ReaderState,
        frontier: Frontier,
    ) -> Result<(ReaderState, Frontier), ArchiveError> {
        let skey = layout::key(partition, seq, ObjectKind::Segment);
        if !have[0] {
            return Err(ArchiveError::corrupt(
                &skey,
                "a manifest or checkpoint exists without its segment (the sink writes the segment \
                 first)",
            ));
        }
        if i64::try_from(seq).ok() != Some(durable.head.next_seq) {
            return Err(ArchiveError::corrupt(
                &skey,
                format!(
                    "incomplete segment starts at seq {seq}, but the newest complete one ends \
                     before seq {}",
                    durable.head.next_seq
                ),
            ));
        }
        tracing::warn!(key = %skey, "completing a segment left incomplete by a crash");
        let bytes = self.store.get(&skey).await?;
        let decoded = decode_segment(&bytes).map_err(|e| ArchiveError::corrupt(&skey, e))?;
        let DecodedSegment { meta, records, .. } = decoded;
        let meta = meta.ok_or_else(|| {
            ArchiveError::corrupt(&skey, "segment header has no provenant.segment metadata")
        })?;
        verify_chain(durable.head, &records)
            .map_err(|e| ArchiveError::corrupt(&skey, format!("does not extend the chain: {e}")))?;
        let state = meta
            .reader_state
            .to_state()
            .ok_or_else(|| ArchiveError::corrupt(&skey, "reader_state: fence is half given"))?;
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Err(ArchiveError::corrupt(&skey, "segment holds no record"));
        };
        if meta.partition != partition
            || meta.archive_id != self.cfg.archive_id
            || meta.first_seq != first.seq
            || meta.last_seq != last.seq
            || meta.record_count != records.len() as u64
            || state.head != ChainHead::after(last)
            || state.ledger_offset <= durable.ledger_offset
        {
            return Err(ArchiveError::corrupt(
                &skey,
                "segment header does not agree with its records or with this archive",
            ));
        }
        let mut frontier = frontier;
        for r in &records {
            frontier.push_record_hash(&r.hash);
        }
        let manifest = build_manifest(
            &self.cfg.archive_id,
            &skey,
            &bytes,
            &meta,
            first,
            last,
            &frontier,
        );
        let mkey = layout::key(partition, seq, ObjectKind::Manifest);
        if have[1] {
            let existing = Manifest::parse(&self.store.get(&mkey).await?)
                .map_err(|m| ArchiveError::corrupt(&mkey, m))?;
            if !same_manifest(&existing, &manifest) {
                return Err(ArchiveError::Conflict { key: mkey });
            }
        } else {
            self.store
                .create(&mkey, Bytes::from(manifest.to_bytes()))
                .await?;
        }
        let ckey = layout::key(partition, seq, ObjectKind::Checkpoint);
        let cp = Checkpoint {
            origin: layout::origin(&self.cfg.archive_id, partition),
            size: frontier.size(),
            root: frontier.root(),
        };
        self.store
            .create(&ckey, Bytes::from(cp.sign(&self.key)))
            .await?;
        Ok((state, frontier))
    }

    /// Archives valid entries of `partition` in log order (records and counted fences), each
    /// with its ledger offset; `state` is the reader state after the last of them (its ledger
    /// offset may be past it, when ignored entries followed). Entries below the partition's
    /// current position are skipped. Rotates segments on record count and size.
    pub async fn write(
        &mut self,
        partition: u32,
        entries: &[(u64, LedgerEntry)],
        state: &ReaderState,
    ) -> Result<Vec<SegmentInfo>, ArchiveError> {
        let mut closed = Vec::new();
        for (offset, entry) in entries {
            let part = self
                .parts
                .get_mut(&partition)
                .ok_or(ArchiveError::NotResumed { partition })?;
            if *offset < part.validator.state().ledger_offset {
                continue;
            }
            match part.validator.observe(*offset, entry) {
                Verdict::Ignored(reason) => {
                    return Err(ArchiveError::Chain {
                        partition,
                        offset: *offset,
                        message: format!(
                            "entry does not count under the validity rule ({}); the archive \
                             takes only valid entries",
                            reason.as_str()
                        ),
                    });
                }
                Verdict::CountedFence { epoch, writer_id } => {
                    let f = FenceJson {
                        ledger_offset: *offset,
                        writer_epoch: epoch,
                        writer_id: Hex16(writer_id),
                    };
                    match &mut part.open {
                        Some(open) => open.fences.push(f),
                        None => part.pending_fences.push(f),
                    }
                }
                Verdict::Valid => {
                    let LedgerEntry::Record(r) = entry else {
                        continue;
                    };
                    self.append_record(partition, *offset, r)?;
                    if self.should_rotate(partition)
                        && let Some(info) = self.close_segment(partition).await?
                    {
                        closed.push(info);
                    }
                }
            }
        }
        let part = self
            .parts
            .get_mut(&partition)
            .ok_or(ArchiveError::NotResumed { partition })?;
        let mine = *part.validator.state();
        if state.ledger_offset > mine.ledger_offset {
            if state.head != mine.head || state.fence != mine.fence {
                return Err(ArchiveError::Chain {
                    partition,
                    offset: state.ledger_offset,
                    message: "the reader state given does not match the entries written".into(),
                });
            }
            part.validator = Validator::new(*state).check_hashes(false);
        }
        self.enforce_buffer_cap()?;
        Ok(closed)
    }

    fn append_record(
        &mut self,
        partition: u32,
        offset: u64,
        r: &LedgerRecord,
    ) -> Result<(), ArchiveError> {
        let spool_dir = self.spool_dir.clone();
        let archive_id = self.cfg.archive_id.clone();
        let block_bytes = self.cfg.block_bytes;
        let part = self
            .parts
            .get_mut(&partition)
            .ok_or(ArchiveError::NotResumed { partition })?;
        if part.open.is_none() {
            let file = tempfile::tempfile_in(&spool_dir).map_err(|source| ArchiveError::Spool {
                dir: spool_dir.clone(),
                source,
            })?;
            part.open = Some(OpenSegment {
                first_seq: r.seq,
                first_prev_hash: r.prev_hash,
                first_hash: r.hash,
                last_seq: r.seq,
                last_hash: r.hash,
                count: 0,
                first_ledger_offset: offset,
                last_ledger_offset: offset,
                fences: std::mem::take(&mut part.pending_fences),
                opened: Instant::now(),
                sync: sync_marker(&archive_id, partition, r.seq, &r.hash),
                spool: BufWriter::with_capacity(8 * 1024, file),
                spool_len: 0,
                block: Vec::new(),
                block_count: 0,
            });
        }
        let Some(open) = part.open.as_mut() else {
            return Ok(());
        };
        let before = open.block.capacity();
        open.block.extend_from_slice(&r.to_avro_datum());
        self.buffered = (self.buffered + open.block.capacity()).saturating_sub(before);
        open.block_count += 1;
        open.count += 1;
        open.last_seq = r.seq;
        open.last_hash = r.hash;
        open.last_ledger_offset = offset;
        part.frontier.push_record_hash(&r.hash);
        if open.block.len() >= block_bytes {
            self.flush_block(partition)?;
        }
        Ok(())
    }

    fn should_rotate(&self, partition: u32) -> bool {
        let Some(open) = self.parts.get(&partition).and_then(|p| p.open.as_ref()) else {
            return false;
        };
        open.count >= self.cfg.rotate_records
            || open.spool_len + open.block.len() as u64 / 4 >= self.cfg.rotate_bytes
    }

    /// Compresses partition `p`'s block buffer into its spool file.
    fn flush_block(&mut self, partition: u32) -> Result<(), ArchiveError> {
        let dir = self.spool_dir.clone();
        let Some(open) = self.parts.get_mut(&partition).and_then(|p| p.open.as_mut()) else {
            return Ok(());
        };
        if open.block_count == 0 {
            return Ok(());
        }
        let compressed =
            self.compressor
                .compress(&open.block)
                .map_err(|source| ArchiveError::Spool {
                    dir: dir.clone(),
                    source,
                })?;
        let bytes = ocf::block(open.block_count, &compressed, &open.sync);
        open.spool
            .write_all(&bytes)
            .map_err(|source| ArchiveError::Spool { dir, source })?;
        open.spool_len += bytes.len() as u64;
        // Free the buffer: an idle partition holds no block memory.
        self.buffered = self.buffered.saturating_sub(open.block.capacity());
        open.block = Vec::new();
        open.block_count = 0;
        Ok(())
    }

    fn enforce_buffer_cap(&mut self) -> Result<(), ArchiveError> {
        while self.buffered > self.cfg.max_buffered_bytes {
            let largest = self
                .parts
                .iter()
                .filter_map(|(p, part)| part.open.as_ref().map(|o| (o.block.capacity(), *p)))
                .max();
            match largest {
                Some((len, p)) if len > 0 => self.flush_block(p)?,
                _ => break,
            }
        }
        Ok(())
    }

    /// Closes (uploads) the open segments whose age limit passed at `now`, even if no data
    /// arrived since. Returns what was closed.
    pub async fn tick(&mut self, now: Instant) -> Result<Vec<SegmentInfo>, ArchiveError> {
        let due: Vec<u32> = self
            .parts
            .iter()
            .filter(|(_, p)| {
                p.open
                    .as_ref()
                    .is_some_and(|o| now.saturating_duration_since(o.opened) >= self.cfg.rotate_age)
            })
            .map(|(p, _)| *p)
            .collect();
        let mut closed = Vec::new();
        for p in due {
            if let Some(info) = self.close_segment(p).await? {
                closed.push(info);
            }
        }
        Ok(closed)
    }

    /// Closes (uploads) the open segment of `partition` and forgets the partition (on revoke).
    pub async fn close_partition(
        &mut self,
        partition: u32,
    ) -> Result<Option<SegmentInfo>, ArchiveError> {
        let info = self.close_segment(partition).await?;
        if let Some(part) = self.parts.remove(&partition) {
            self.drop_part(part);
        }
        Ok(info)
    }

    /// Closes every open segment (on shutdown).
    pub async fn close(mut self) -> Result<Vec<SegmentInfo>, ArchiveError> {
        let parts: Vec<u32> = self.parts.keys().copied().collect();
        let mut closed = Vec::new();
        for p in parts {
            if let Some(info) = self.close_segment(p).await? {
                closed.push(info);
            }
        }
        Ok(closed)
    }

    fn drop_part(&mut self, part: Part) {
        if let Some(open) = part.open {
            self.buffered = self.buffered.saturating_sub(open.block.capacity());
        }
    }

    /// Uploads partition `p`'s open segment, then its manifest, then its checkpoint.
    async fn close_segment(&mut self, partition: u32) -> Result<Option<SegmentInfo>, ArchiveError> {
        self.flush_block(partition)?;
        let dir = self.spool_dir.clone();
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(None);
        };
        let Some(open) = part.open.take() else {
            return Ok(None);
        };
        let state = *part.validator.state();
        let frontier = part.frontier.clone();
        let spool_err = |source| ArchiveError::Spool {
            dir: dir.clone(),
            source,
        };
        let meta = SegmentMeta {
            format: SEGMENT_FORMAT.into(),
            archive_id: self.cfg.archive_id.clone(),
            partition,
            first_seq: open.first_seq,
            last_seq: open.last_seq,
            record_count: open.count,
            first_ledger_offset: open.first_ledger_offset,
            last_ledger_offset: open.last_ledger_offset,
            fences: open.fences.clone(),
            reader_state: ReaderStateJson::from(&state),
        };
        let mut header_meta = BTreeMap::new();
        header_meta.insert(
            "avro.schema".to_owned(),
            self.schema_json.clone().into_bytes(),
        );
        header_meta.insert("avro.codec".to_owned(), ocf::CODEC.as_bytes().to_vec());
        header_meta.insert(
            ocf::META_SEGMENT.to_owned(),
            serde_json::to_vec(&meta).unwrap_or_default(),
        );
        let mut bytes = ocf::header(&header_meta, &open.sync);
        let mut file = open
            .spool
            .into_inner()
            .map_err(|e| spool_err(e.into_error()))?;
        file.rewind().map_err(spool_err)?;
        bytes.reserve(usize::try_from(open.spool_len).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(spool_err)?;
        drop(file);

        let first_seq = u64::try_from(open.first_seq).unwrap_or(0);
        let skey = layout::key(partition, first_seq, ObjectKind::Segment);
        let mkey = layout::key(partition, first_seq, ObjectKind::Manifest);
        let ckey = layout::key(partition, first_seq, ObjectKind::Checkpoint);
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            archive_id: self.cfg.archive_id.clone(),
            partition,
            segment: skey.clone(),
            segment_sha256: Hex32(Sha256::digest(&bytes).into()),
            segment_bytes: bytes.len() as u64,
            record_count: open.count,
            first_seq: open.first_seq,
            last_seq: open.last_seq,
            first_prev_hash: Hex32(open.first_prev_hash),
            first_hash: Hex32(open.first_hash),
            last_hash: Hex32(open.last_hash),
            first_ledger_offset: open.first_ledger_offset,
            last_ledger_offset: open.last_ledger_offset,
            fences: open.fences,
            reader_state: ReaderStateJson::from(&state),
            merkle: MerkleJson::of(&frontier),
            written_at: now_rfc3339(),
        };
        let checkpoint = Checkpoint {
            origin: layout::origin(&self.cfg.archive_id, partition),
            size: frontier.size(),
            root: frontier.root(),
        };
        let size = bytes.len() as u64;
        self.store.create(&skey, Bytes::from(bytes)).await?;
        self.store
            .create(&mkey, Bytes::from(manifest.to_bytes()))
            .await?;
        self.store
            .create(&ckey, Bytes::from(checkpoint.sign(&self.key)))
            .await?;
        if let Some(part) = self.parts.get_mut(&partition) {
            part.durable = state;
        }
        tracing::info!(
            partition,
            key = %skey,
            first_seq = open.first_seq,
            last_seq = open.last_seq,
            records = open.count,
            bytes = size,
            "archive segment written"
        );
        Ok(Some(SegmentInfo {
            partition,
            key: skey,
            first_seq: open.first_seq,
            last_seq: open.last_seq,
            records: open.count,
            bytes: size,
            tree_size: frontier.size(),
            root: frontier.root(),
            state,
        }))
    }
}

fn kind_index(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::Segment => 0,
        ObjectKind::Manifest => 1,
        ObjectKind::Checkpoint => 2,
    }
}

/// The sync marker of a segment: derived from what starts it, so the same segment gets the same
/// bytes (Avro only needs it to be unlikely in the data).
fn sync_marker(
    archive_id: &str,
    partition: u32,
    first_seq: i64,
    first_hash: &[u8; 32],
) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"provenant.archive.sync\0");
    h.update(archive_id.as_bytes());
    h.update([0]);
    h.update(partition.to_be_bytes());
    h.update(first_seq.to_be_bytes());
    h.update(first_hash);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(d.get(..16).unwrap_or(&[0; 16]));
    out
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn build_manifest(
    archive_id: &str,
    skey: &str,
    bytes: &[u8],
    meta: &SegmentMeta,
    first: &LedgerRecord,
    last: &LedgerRecord,
    frontier: &Frontier,
) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.into(),
        archive_id: archive_id.to_owned(),
        partition: meta.partition,
        segment: skey.to_owned(),
        segment_sha256: Hex32(Sha256::digest(bytes).into()),
        segment_bytes: bytes.len() as u64,
        record_count: meta.record_count,
        first_seq: first.seq,
        last_seq: last.seq,
        first_prev_hash: Hex32(first.prev_hash),
        first_hash: Hex32(first.hash),
        last_hash: Hex32(last.hash),
        first_ledger_offset: meta.first_ledger_offset,
        last_ledger_offset: meta.last_ledger_offset,
        fences: meta.fences.clone(),
        reader_state: meta.reader_state,
        merkle: MerkleJson::of(frontier),
        written_at: now_rfc3339(),
    }
}

/// Equal but for `written_at`.
fn same_manifest(a: &Manifest, b: &Manifest) -> bool {
    let mut a = a.clone();
    a.written_at.clone_from(&b.written_at);
    &a == b
}
