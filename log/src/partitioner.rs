//! Kafka's Java-compatible murmur2 partitioner (`org.apache.kafka.common.utils.Utils.murmur2`,
//! librdkafka's `murmur2` / `murmur2_random` partitioners for keyed records).
//!
//! Invariant: for any key and partition count, [`partition_for_key`] returns what the Java
//! client and librdkafka return, so a key lands on the same partition whoever writes it. The
//! test vectors are the Java client's own (`UtilsTest.testMurmur2`).
//!
//! Written here rather than taken from a crate: it is twenty lines, it must match Java's
//! signed-arithmetic quirks exactly, and the crates that offer it pull in more than it.

/// Java-compatible 32-bit murmur2 of `data` (seed `0x9747b28c`), as a signed value like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java computes `seed ^ length` on ints; the length is truncated to 32 bits there too.
    #[allow(clippy::cast_possible_truncation)]
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut word = [0u8; 4];
        word.copy_from_slice(chunk);
        let mut k = u32::from_le_bytes(word);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    // Java sign-extends nothing here: it masks each byte with 0xff.
    if let Some(&third) = tail.get(2) {
        h ^= u32::from(third) << 16;
    }
    if let Some(&second) = tail.get(1) {
        h ^= u32::from(second) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// Kafka's `toPositive(murmur2(key)) % partitions`. `partitions` must be at least 1; 0 is
/// treated as 1 so the function never panics.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let positive = u32::from_ne_bytes(murmur2(key).to_ne_bytes()) & 0x7fff_ffff;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_test_vectors() {
        // From Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(
                murmur2(key),
                expected,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partition_is_in_range_and_stable() {
        for n in 1..64u32 {
            for key in [&b""[..], b"a", b"commit:abc", b"artifact:sha256:00"] {
                let p = partition_for_key(key, n);
                assert!(p < n);
                assert_eq!(p, partition_for_key(key, n));
            }
        }
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
