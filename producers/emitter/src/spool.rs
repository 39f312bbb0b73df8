//! The on-disk spool: events waiting for a destination that is unreachable (or for a queue
//! that is full), kept in order across restarts.
//!
//! Layout: one directory, locked by one emitter at a time (`LOCK`), holding segment files
//! `<20-digit number>.spool`. Segments are delivered in ascending number order; appends go to
//! the newest segment (the tail); [`Spool::prepend`] writes a segment numbered below every
//! other, for events that are older than everything already spooled (the worker's in-flight
//! batch when the destination goes down). Each record is framed as
//! `[u32 LE length][u32 LE CRC32C][payload]`, the payload being the event's structured
//! CloudEvents JSON.
//!
//! Invariants:
//! * A segment is deleted only by [`Spool::remove`], which the emitter calls only after the
//!   destination acknowledged every event in it.
//! * After [`Spool::sync`] returns, every appended record survives a crash.
//! * A torn or corrupt frame (a crash in the middle of an append) ends the segment's readable
//!   records: [`Spool::read_segment`] returns the records before it and how many bytes it
//!   ignored; it never returns a damaged record.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Segment numbers start in the middle of the range so that prepends have room below.
const FIRST_SEGMENT: u64 = 1 << 40;
/// A tail segment is sealed once it holds this many bytes.
const MAX_SEGMENT_BYTES: u64 = 8 << 20;
/// Largest frame accepted when reading (an event is far smaller; a bigger length is damage).
const MAX_FRAME_BYTES: usize = 16 << 20;

/// Errors of the spool, with the path they concern.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "spool directory {path} is in use by another emitter (lock held); give each emitter its own spool directory"
    )]
    Locked { path: String },
    #[error("spool {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

struct Tail {
    number: u64,
    file: BufWriter<File>,
    bytes: u64,
    dirty: bool,
}

/// An open, locked spool directory.
pub struct Spool {
    dir: PathBuf,
    _lock: File,
    /// Sealed segments (not the tail), by number.
    sealed: BTreeSet<u64>,
    tail: Option<Tail>,
    next_number: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("sealed", &self.sealed.len())
            .field("tail", &self.tail.as_ref().map(|t| t.number))
            .finish()
    }
}

/// What reading a segment found.
#[derive(Debug)]
pub struct SegmentContents {
    /// The intact records, in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes after the last intact record (a torn append); 0 when the segment is whole.
    pub ignored_bytes: u64,
}

impl Spool {
    /// Opens (creating if needed) and locks a spool directory. Segments left by an earlier
    /// process are kept, sealed, for delivery first.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    path: dir.display().to_string(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        let mut sealed = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".spool"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            sealed.insert(number);
        }
        let next_number = sealed.last().map_or(FIRST_SEGMENT, |n| n + 1);
        Ok(Spool {
            dir: dir.to_owned(),
            _lock: lock,
            sealed,
            tail: None,
            next_number,
        })
    }

    fn path_of(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:020}.spool"))
    }

    fn create_segment(&self, number: u64) -> Result<BufWriter<File>, SpoolError> {
        let path = self.path_of(number);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        sync_dir(&self.dir)?;
        Ok(BufWriter::with_capacity(64 * 1024, file))
    }

    /// Appends one record at the end of the spool (buffered; see [`Spool::sync`]).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        if self.tail.is_none() {
            let number = self.next_number;
            self.next_number += 1;
            let file = self.create_segment(number)?;
            self.tail = Some(Tail {
                number,
                file,
                bytes: 0,
                dirty: false,
            });
        }
        let path = self.tail.as_ref().map(|t| self.path_of(t.number));
        let Some(tail) = self.tail.as_mut() else {
            return Ok(());
        };
        let path = path.unwrap_or_default();
        write_frame(&mut tail.file, payload).map_err(io_err("write", &path))?;
        tail.bytes += 8 + payload.len() as u64;
        tail.dirty = true;
        if tail.bytes >= MAX_SEGMENT_BYTES {
            self.seal()?;
        }
        Ok(())
    }

    /// Writes records as a new segment before every other segment (they are older than
    /// anything spooled so far), durably.
    pub fn prepend(&mut self, payloads: &[Vec<u8>]) -> Result<(), SpoolError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let oldest = self
            .sealed
            .first()
            .copied()
            .into_iter()
            .chain(self.tail.as_ref().map(|t| t.number))
            .min()
            .unwrap_or(self.next_number);
        let number = oldest.saturating_sub(1);
        let path = self.path_of(number);
        // Write under a temporary name and rename, so a crash never leaves half a prepend
        // looking like a complete older segment.
        let tmp = self.dir.join(format!("{number:020}.tmp"));
        {
            let file = File::create(&tmp).map_err(io_err("create", &tmp))?;
            let mut w = BufWriter::new(file);
            for p in payloads {
                write_frame(&mut w, p).map_err(io_err("write", &tmp))?;
            }
            let file = w
                .into_inner()
                .map_err(|e| io_err("write", &tmp)(e.into_error()))?;
            file.sync_data().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        sync_dir(&self.dir)?;
        self.sealed.insert(number);
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        let path = self.tail.as_ref().map(|t| self.path_of(t.number));
        if let (Some(tail), Some(path)) = (self.tail.as_mut(), path)
            && tail.dirty
        {
            tail.file.flush().map_err(io_err("write", &path))?;
            tail.file
                .get_ref()
                .sync_data()
                .map_err(io_err("sync", &path))?;
            tail.dirty = false;
        }
        Ok(())
    }

    /// Closes the tail segment (durably) so that it can be delivered; the next append starts
    /// a new one.
    pub fn seal(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        if let Some(tail) = self.tail.take() {
            self.sealed.insert(tail.number);
        }
        Ok(())
    }

    /// The oldest segment to deliver, sealing the tail if it is the only one left.
    pub fn oldest(&mut self) -> Result<Option<u64>, SpoolError> {
        if self.sealed.is_empty() {
            self.seal()?;
        }
        Ok(self.sealed.first().copied())
    }

    /// Whether nothing is spooled.
    pub fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.tail.as_ref().is_none_or(|t| t.bytes == 0)
    }

    /// Reads a sealed segment's intact records.
    pub fn read_segment(&self, number: u64) -> Result<SegmentContents, SpoolError> {
        let path = self.path_of(number);
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        Ok(parse_frames(&bytes))
    }

    /// Deletes a delivered segment.
    pub fn remove(&mut self, number: u64) -> Result<(), SpoolError> {
        let path = self.path_of(number);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete", &path)(e)),
        }
        self.sealed.remove(&number);
        sync_dir(&self.dir)
    }
}

fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&crc32c::crc32c(payload).to_le_bytes())?;
    w.write_all(payload)
}

/// Splits a segment into intact frames, stopping at the first torn or corrupt one.
pub fn parse_frames(bytes: &[u8]) -> SegmentContents {
    let mut records = Vec::new();
    let mut rest = bytes;
    while let Some((header, body)) = rest.split_first_chunk::<8>() {
        let (len_bytes, crc_bytes) = header.split_at(4);
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(len_bytes);
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(crc_bytes);
        let len = u32::from_le_bytes(len4) as usize;
        if len > MAX_FRAME_BYTES {
            break;
        }
        let Some(payload) = body.get(..len) else {
            break;
        };
        if crc32c::crc32c(payload) != u32::from_le_bytes(crc4) {
            break;
        }
        records.push(payload.to_vec());
        rest = body.get(len..).unwrap_or_default();
    }
    SegmentContents {
        records,
        ignored_bytes: rest.len() as u64,
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_prepend_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path()).unwrap();
            assert!(s.is_empty());
            s.append(b"c").unwrap();
            s.append(b"d").unwrap();
            s.prepend(&[b"a".to_vec(), b"b".to_vec()]).unwrap();
            s.sync().unwrap();
            assert!(matches!(
                Spool::open(dir.path()),
                Err(SpoolError::Locked { .. })
            ));
        }
        // A torn append at the end of the newest segment.
        let newest = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "spool"))
            .max()
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&newest).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);

        let mut s = Spool::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        while let Some(n) = s.oldest().unwrap() {
            let c = s.read_segment(n).unwrap();
            seen.extend(c.records);
            s.remove(n).unwrap();
        }
        assert_eq!(
            seen,
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        assert!(s.is_empty());
    }

    #[test]
    fn corrupt_frame_is_never_returned() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"good").unwrap();
        write_frame(&mut buf, b"evil").unwrap();
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let c = parse_frames(&buf);
        assert_eq!(c.records, vec![b"good".to_vec()]);
        assert_eq!(c.ignored_bytes, 12);
    }
}
