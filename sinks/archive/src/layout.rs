//! Object keys of the archive, relative to its root (the URL's path or prefix):
//!
//! ```text
//! p0003/s00000000000000000100.avro            segment: records of partition 3 from seq 100
//! p0003/s00000000000000000100.manifest.json   its manifest
//! p0003/s00000000000000000100.checkpoint      the signed checkpoint after it
//! ```
//!
//! Partition and first seq are zero-padded (4 and 20 digits), so the lexical order of keys is
//! the seq order within a partition. A segment is *complete* when all three objects exist.

/// What an object of a segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// The Avro object container file.
    Segment,
    /// The JSON manifest.
    Manifest,
    /// The signed checkpoint (C2SP tlog-checkpoint note).
    Checkpoint,
}

impl ObjectKind {
    /// The suffix after the stem.
    pub fn suffix(self) -> &'static str {
        match self {
            ObjectKind::Segment => ".avro",
            ObjectKind::Manifest => ".manifest.json",
            ObjectKind::Checkpoint => ".checkpoint",
        }
    }
}

/// `p0003`.
pub fn partition_dir(partition: u32) -> String {
    format!("p{partition:04}")
}

/// `p0003/s00000000000000000100`.
pub fn stem(partition: u32, first_seq: u64) -> String {
    format!("{}/s{first_seq:020}", partition_dir(partition))
}

/// The key of one object of the segment of `partition` starting at `first_seq`.
pub fn key(partition: u32, first_seq: u64, kind: ObjectKind) -> String {
    format!("{}{}", stem(partition, first_seq), kind.suffix())
}

/// The checkpoint origin line of a partition: `provenant/<archive id>/p<partition>`.
pub fn origin(archive_id: &str, partition: u32) -> String {
    format!("provenant/{archive_id}/p{partition}")
}

/// Parses a relative key into (partition, first seq, kind); `None` for anything else.
pub fn parse_key(rel: &str) -> Option<(u32, u64, ObjectKind)> {
    let (dir, file) = rel.split_once('/')?;
    let p = dir.strip_prefix('p')?;
    if p.len() < 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let partition: u32 = p.parse().ok()?;
    if dir != partition_dir(partition) {
        return None;
    }
    let file = file.strip_prefix('s')?;
    for kind in [
        ObjectKind::Segment,
        ObjectKind::Manifest,
        ObjectKind::Checkpoint,
    ] {
        if let Some(digits) = file.strip_suffix(kind.suffix()) {
            if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return Some((partition, digits.parse().ok()?, kind));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_seq() {
        let k = key(3, 100, ObjectKind::Segment);
        assert_eq!(k, "p0003/s00000000000000000100.avro");
        assert_eq!(parse_key(&k), Some((3, 100, ObjectKind::Segment)));
        assert_eq!(
            parse_key("p12345/s00000000000000000007.checkpoint"),
            Some((12345, 7, ObjectKind::Checkpoint))
        );
        assert!(key(0, 9, ObjectKind::Segment) < key(0, 10, ObjectKind::Segment));
        for bad in [
            "p3/s00000000000000000100.avro",
            "p0003/s100.avro",
            "p0003/s00000000000000000100.txt",
            "x0003/s00000000000000000100.avro",
            "p00003/s00000000000000000100.avro",
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
        assert_eq!(origin("prod", 3), "provenant/prod/p3");
    }
}
