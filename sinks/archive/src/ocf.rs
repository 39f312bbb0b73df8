//! Avro object container files (OCF), written and read here so that a segment can be streamed
//! block by block to a spool file, and read back with exact error locations.
//!
//! ```text
//! file   = "Obj" 0x01 | metadata map<bytes> | 16-byte sync marker | block*
//! block  = long record count | long byte size | zstd frame of the concatenated datums | sync
//! ```
//!
//! Metadata: `avro.schema` (the self-contained `io.provenant.v1.LedgerRecord` schema JSON),
//! `avro.codec` = `zstandard`, and `provenant.segment` (JSON: [`crate::manifest::SegmentMeta`]).
//! Any Avro reader with the zstandard codec reads the records (the tests use apache-avro).
//!
//! Datums are not length-prefixed in Avro: the reader (`crate::read`) decodes a block's datums
//! one after the other with the schema crate's strict decoder, which says where each one ends
//! (`LedgerRecord::from_avro_datum_prefix`). Invariants: nothing here panics on any input;
//! every error says at which byte offset of the file it happened.

use std::collections::BTreeMap;

use provenant_schemas::avro::SchemaId;

/// The four magic bytes of an Avro object container file.
pub const MAGIC: [u8; 4] = *b"Obj\x01";
/// The codec name written in `avro.codec`.
pub const CODEC: &str = "zstandard";
/// Metadata key of the segment description.
pub const META_SEGMENT: &str = "provenant.segment";
/// The largest decompressed block the reader accepts (a guard against decompression bombs).
pub const MAX_BLOCK_BYTES: usize = 256 * 1024 * 1024;

/// The schema JSON written in every segment's header.
pub fn ledger_record_schema_json() -> Result<String, String> {
    SchemaId::LedgerRecord.schema_json().map(|v| v.to_string())
}

/// Appends a zig-zag varint long.
pub fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, i64::try_from(b.len()).unwrap_or(i64::MAX));
    out.extend_from_slice(b);
}

/// The file header: magic, metadata, sync marker.
pub fn header(meta: &BTreeMap<String, Vec<u8>>, sync: &[u8; 16]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    if !meta.is_empty() {
        put_long(&mut out, i64::try_from(meta.len()).unwrap_or(i64::MAX));
        for (k, v) in meta {
            put_bytes(&mut out, k.as_bytes());
            put_bytes(&mut out, v);
        }
    }
    put_long(&mut out, 0);
    out.extend_from_slice(sync);
    out
}

/// One block: count, size, the compressed data, sync.
pub fn block(count: u64, compressed: &[u8], sync: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(compressed.len() + 36);
    put_long(&mut out, i64::try_from(count).unwrap_or(i64::MAX));
    put_long(
        &mut out,
        i64::try_from(compressed.len()).unwrap_or(i64::MAX),
    );
    out.extend_from_slice(compressed);
    out.extend_from_slice(sync);
    out
}

/// Why a container file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct OcfError {
    /// Byte offset in the file.
    pub offset: u64,
    pub message: String,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: impl Into<String>) -> OcfError {
        OcfError {
            offset: self.pos as u64,
            message: message.into(),
        }
    }

    fn long(&mut self) -> Result<i64, OcfError> {
        let mut n: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if shift >= 64 {
                return Err(self.err("varint too long"));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], OcfError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| self.err(format!("truncated: {n} bytes announced, fewer left")))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.err("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn len_prefixed(&mut self) -> Result<&'a [u8], OcfError> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| self.err("negative length"))?;
        self.take(n)
    }
}

/// A parsed container file: metadata, sync marker and where the blocks start.
#[derive(Debug)]
pub struct Container<'a> {
    pub meta: BTreeMap<String, Vec<u8>>,
    pub sync: [u8; 16],
    buf: &'a [u8],
    blocks_start: usize,
}

/// One block as stored: where it starts, its record count and its compressed bytes.
#[derive(Debug)]
pub struct RawBlock<'a> {
    pub offset: u64,
    pub count: u64,
    pub data: &'a [u8],
}

impl<'a> Container<'a> {
    /// Parses the header.
    pub fn parse(buf: &'a [u8]) -> Result<Self, OcfError> {
        let mut c = Cursor { buf, pos: 0 };
        if c.take(4).ok() != Some(&MAGIC[..]) {
            return Err(OcfError {
                offset: 0,
                message: "not an Avro object container file (no Obj\\x01 magic)".into(),
            });
        }
        let mut meta = BTreeMap::new();
        loop {
            let n = c.long()?;
            if n == 0 {
                break;
            }
            if n < 0 {
                c.long()?;
            }
            for _ in 0..n.unsigned_abs() {
                let k = c.len_prefixed()?;
                let k = std::str::from_utf8(k).map_err(|_| c.err("metadata key is not UTF-8"))?;
                let v = c.len_prefixed()?;
                meta.insert(k.to_owned(), v.to_vec());
            }
        }
        let sync: [u8; 16] = c
            .take(16)?
            .try_into()
            .map_err(|_| c.err("truncated sync marker"))?;
        Ok(Self {
            meta,
            sync,
            buf,
            blocks_start: c.pos,
        })
    }

    /// The metadata value `key` as UTF-8.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The blocks, in order; stops at the first malformed one (which is returned as an error).
    pub fn blocks(&self) -> impl Iterator<Item = Result<RawBlock<'a>, OcfError>> + '_ {
        let mut c = Cursor {
            buf: self.buf,
            pos: self.blocks_start,
        };
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || c.pos >= c.buf.len() {
                return None;
            }
            let offset = c.pos as u64;
            let r = (|| {
                let count = c.long()?;
                let count = u64::try_from(count).map_err(|_| c.err("negative block count"))?;
                let data = c.len_prefixed()?;
                let sync = c.take(16)?;
                if sync != self.sync {
                    return Err(c.err("sync marker after the block does not match the header's"));
                }
                Ok(RawBlock {
                    offset,
                    count,
                    data,
                })
            })();
            failed = r.is_err();
            Some(r)
        })
    }
}

/// Decompresses one zstd block, refusing more than [`MAX_BLOCK_BYTES`].
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut d = BlockDecompressor::new()?;
    d.decompress(data)?;
    Ok(d.buf)
}

/// The declared size of a block's zstd frame, if it is within [`MAX_BLOCK_BYTES`].
fn frame_size(data: &[u8]) -> Result<usize, String> {
    let size = zstd::zstd_safe::get_frame_content_size(data)
        .map_err(|_| "not a zstd frame".to_owned())?
        .ok_or("zstd frame without content size")?;
    let size = usize::try_from(size).map_err(|_| "zstd frame too large".to_owned())?;
    if size > MAX_BLOCK_BYTES {
        return Err(format!(
            "block decompresses to {size} bytes, over the limit of {MAX_BLOCK_BYTES}"
        ));
    }
    Ok(size)
}

/// Decompresses the blocks of a segment one after the other with one zstd context and one
/// output buffer (a fresh context and buffer per block cost a context setup and fresh pages
/// each time). Same checks as [`decompress`].
pub struct BlockDecompressor {
    ctx: zstd::bulk::Decompressor<'static>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for BlockDecompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockDecompressor")
            .field("capacity", &self.buf.capacity())
            .finish_non_exhaustive()
    }
}

impl BlockDecompressor {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            ctx: zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?,
            buf: Vec::new(),
        })
    }

    /// The block's decompressed bytes (valid until the next call).
    pub fn decompress(&mut self, data: &[u8]) -> Result<&[u8], String> {
        let size = frame_size(data)?;
        self.buf.clear();
        self.buf.reserve(size);
        let n = self
            .ctx
            .decompress_to_buffer(data, &mut self.buf)
            .map_err(|e| format!("zstd: {e}"))?;
        if n != size || self.buf.len() != size {
            return Err("zstd frame shorter than its declared size".into());
        }
        Ok(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn longs_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, i64::MAX, i64::MIN] {
            let mut b = Vec::new();
            put_long(&mut b, v);
            let mut c = Cursor { buf: &b, pos: 0 };
            assert_eq!(c.long().unwrap(), v);
            assert_eq!(c.pos, b.len());
        }
    }

    #[test]
    fn header_and_blocks_parse_back() {
        let mut meta = BTreeMap::new();
        meta.insert("avro.codec".to_owned(), b"zstandard".to_vec());
        let sync = [5u8; 16];
        let mut file = header(&meta, &sync);
        let data = zstd::bulk::compress(b"hello", 3).unwrap();
        file.extend(block(1, &data, &sync));
        file.extend(block(2, &data, &sync));
        let c = Container::parse(&file).unwrap();
        assert_eq!(c.meta_str("avro.codec"), Some("zstandard"));
        let blocks: Vec<_> = c.blocks().collect::<Result<_, _>>().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(decompress(blocks[1].data).unwrap(), b"hello");
        // Truncation is an error with an offset, never a panic.
        for cut in 0..file.len() {
            let part = &file[..cut];
            if let Ok(c) = Container::parse(part) {
                let _ = c.blocks().count();
            }
        }
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let c = Container::parse(&bad).unwrap();
        let errs: Vec<_> = c.blocks().filter_map(Result::err).collect();
        assert_eq!(errs.len(), 1);
    }
}
