//! Which partition a keyed record lands in.
//!
//! Both backends use Kafka's Java default partitioner (murmur2 of the key
//! bytes, made positive, modulo the partition count). librdkafka's default is
//! CRC32-based, so records produced by eddy through librdkafka would land in
//! other partitions than the same keys produced by a Java or Kafka Streams
//! application. Joins and stateful operators need co-partitioned inputs, so we
//! pick the partition ourselves and hand it to the backend explicitly.

/// Kafka's `Utils.murmur2`: MurmurHash2, seed `0x9747b28c`, 32-bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's Java producer picks for `key` among `partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values come from Kafka's own `Utils.murmur2`.
    #[test]
    fn murmur2_matches_kafka_java() {
        for (input, expected) in [
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ] {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for key in ["a", "user-17", "", "ü"] {
            let p = partition_for_key(key.as_bytes(), 7);
            assert!((0..7).contains(&p));
            assert_eq!(p, partition_for_key(key.as_bytes(), 7));
        }
    }
}
