//! Record framing on disk: pure encoding and decoding, no I/O.
//!
//! One frame per record, little-endian:
//!
//! ```text
//! len: u32          length of the body in bytes
//! crc: u32          CRC32C of the body
//! body:
//!   offset: u64     the record's offset in its partition
//!   timestamp: i64  milliseconds since the Unix epoch, stamped by the writer
//!   key_len: u32    u32::MAX when the record has no key
//!   key
//!   header_count: u32
//!   (name_len: u32, name (UTF-8), value_len: u32, value) * header_count
//!   value_len: u32
//!   value
//! ```
//!
//! The body carries its own offset, so a frame that is intact but misplaced (a stale block
//! after a crash, a segment renamed by hand) is caught by the offset check, not only by CRC.

use bytes::Bytes;

use crate::{Header, Record, StoredRecord};

/// Bytes before the body: `len` and `crc`.
pub(super) const FRAME_HEADER: usize = 8;
/// The smallest possible body: offset, timestamp, key length, header count, value length.
/// A length below it is corruption (a run of zeros after a crash would otherwise pass, as
/// the CRC32C of an empty body is zero).
const MIN_BODY: usize = 8 + 8 + 4 + 4 + 4;
const NO_KEY: u32 = u32::MAX;

/// Why bytes at a position are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FrameError {
    /// The buffer ends before the frame does; `needed` is the whole frame's length when the
    /// header could be read, else the header's.
    Incomplete { needed: usize },
    /// The length field is impossible (too small or above the configured maximum).
    BadLength(usize),
    /// The body does not match its CRC32C.
    BadCrc,
    /// The body passed its CRC but does not parse (a bug or a deliberate edit).
    Malformed(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Incomplete { needed } => {
                write!(f, "incomplete frame ({needed} bytes needed)")
            }
            FrameError::BadLength(len) => write!(f, "impossible frame length {len}"),
            FrameError::BadCrc => f.write_str("crc32c mismatch"),
            FrameError::Malformed(what) => write!(f, "malformed record body: {what}"),
        }
    }
}

/// The on-disk size of a record's frame.
pub(super) fn frame_len(record: &Record) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| 8 + h.name.len() + h.value.len())
        .sum();
    FRAME_HEADER
        + MIN_BODY
        + record.key.as_ref().map_or(0, Bytes::len)
        + headers
        + record.value.len()
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Callers bound every length by `max_record_bytes`, itself below u32::MAX.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

/// Appends the frame of `record` at `offset` to `out`.
pub(super) fn encode(out: &mut Vec<u8>, offset: u64, timestamp_ms: i64, record: &Record) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp_ms.to_le_bytes());
    match &record.key {
        Some(key) => {
            put_len(out, key.len());
            out.extend_from_slice(key);
        }
        None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    put_len(out, record.headers.len());
    for header in &record.headers {
        put_len(out, header.name.len());
        out.extend_from_slice(header.name.as_bytes());
        put_len(out, header.value.len());
        out.extend_from_slice(&header.value);
    }
    put_len(out, record.value.len());
    out.extend_from_slice(&record.value);
    let body_start = start + FRAME_HEADER;
    let body_len = out.len() - body_start;
    let crc = crc32c::crc32c(out.get(body_start..).unwrap_or_default());
    let mut header = [0u8; FRAME_HEADER];
    let (len_bytes, crc_bytes) = header.split_at_mut(4);
    len_bytes.copy_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    crc_bytes.copy_from_slice(&crc.to_le_bytes());
    if let Some(slot) = out.get_mut(start..body_start) {
        slot.copy_from_slice(&header);
    }
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn le_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// A frame found at the start of a buffer: its total length, offset and timestamp. The CRC
/// has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameInfo {
    pub(super) len: usize,
    pub(super) offset: u64,
    pub(super) timestamp_ms: i64,
}

/// Checks the frame at the start of `buf` (length bounds and CRC32C) without decoding it.
pub(super) fn check(buf: &[u8], max_body: usize) -> Result<FrameInfo, FrameError> {
    let (Some(len), Some(crc)) = (le_u32(buf, 0), le_u32(buf, 4)) else {
        return Err(FrameError::Incomplete {
            needed: FRAME_HEADER,
        });
    };
    let len = len as usize;
    if !(MIN_BODY..=max_body).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    let Some(body) = buf.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Err(FrameError::Incomplete {
            needed: FRAME_HEADER + len,
        });
    };
    if crc32c::crc32c(body) != crc {
        return Err(FrameError::BadCrc);
    }
    let offset = le_u64(body, 0).ok_or(FrameError::Malformed("offset"))?;
    let timestamp = le_u64(body, 8).ok_or(FrameError::Malformed("timestamp"))?;
    Ok(FrameInfo {
        len: FRAME_HEADER + len,
        offset,
        timestamp_ms: i64::from_le_bytes(timestamp.to_le_bytes()),
    })
}

/// Reads fields out of a body held in [`Bytes`]; slices share the buffer (no copy).
struct Cursor {
    buf: Bytes,
    pos: usize,
}

impl Cursor {
    fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        let v = le_u32(&self.buf, self.pos).ok_or(FrameError::Malformed(what))?;
        self.pos += 4;
        Ok(v)
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, FrameError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or(FrameError::Malformed(what))?;
        if end > self.buf.len() {
            return Err(FrameError::Malformed(what));
        }
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }
}

/// Decodes a whole frame (as checked by [`check`]) held in `frame`.
pub(super) fn decode(frame: Bytes, info: FrameInfo) -> Result<StoredRecord, FrameError> {
    let mut cur = Cursor {
        buf: frame,
        pos: FRAME_HEADER + 16,
    };
    let key = match cur.u32("key length")? {
        NO_KEY => None,
        len => Some(cur.take(len as usize, "key")?),
    };
    let header_count = cur.u32("header count")?;
    // Sized up front (a CloudEvent carries about eight), capped so that a corrupt count
    // cannot reserve much.
    let mut headers = Vec::with_capacity((header_count as usize).min(32));
    for _ in 0..header_count {
        let name_len = cur.u32("header name length")? as usize;
        let name = cur.take(name_len, "header name")?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| FrameError::Malformed("header name is not UTF-8"))?;
        let value_len = cur.u32("header value length")? as usize;
        let value = cur.take(value_len, "header value")?;
        headers.push(Header { name, value });
    }
    let value_len = cur.u32("value length")? as usize;
    let value = cur.take(value_len, "value")?;
    if cur.pos != cur.buf.len() {
        return Err(FrameError::Malformed("trailing bytes"));
    }
    Ok(StoredRecord {
        offset: info.offset,
        timestamp_ms: info.timestamp_ms,
        record: Record {
            key,
            headers,
            value,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(record: &Record, offset: u64, ts: i64) -> StoredRecord {
        let mut buf = Vec::new();
        encode(&mut buf, offset, ts, record);
        assert_eq!(buf.len(), frame_len(record));
        let info = check(&buf, 1 << 20).unwrap();
        assert_eq!(info.len, buf.len());
        decode(Bytes::from(buf), info).unwrap()
    }

    #[test]
    fn key_absent_and_empty_are_distinct() {
        let none = Record {
            key: None,
            headers: vec![],
            value: Bytes::from_static(b"v"),
        };
        let empty = Record::new(Bytes::new(), "v");
        assert_eq!(roundtrip(&none, 3, 7).record, none);
        assert_eq!(roundtrip(&empty, 3, 7).record, empty);
    }

    #[test]
    fn zeros_are_not_a_frame() {
        let zeros = [0u8; 64];
        assert_eq!(check(&zeros, 1 << 20), Err(FrameError::BadLength(0)));
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let record = Record::new("k", "value").with_header("h", "x");
        let mut buf = Vec::new();
        encode(&mut buf, 9, 1, &record);
        for i in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(check(&bad, 1 << 20).is_err(), "bit {i} flip not caught");
        }
    }

    proptest! {
        #[test]
        fn roundtrips(key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                      headers in proptest::collection::vec(("[a-z_]{0,10}", proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
                      value in proptest::collection::vec(any::<u8>(), 0..300),
                      offset in any::<u64>(), ts in any::<i64>()) {
            let record = Record {
                key: key.map(Bytes::from),
                headers: headers.into_iter().map(|(n, v)| Header::new(n, v)).collect(),
                value: Bytes::from(value),
            };
            let back = roundtrip(&record, offset, ts);
            prop_assert_eq!(back.offset, offset);
            prop_assert_eq!(back.timestamp_ms, ts);
            prop_assert_eq!(back.record, record);
        }
    }
}
