//! Which partition an aggregate's events go to.
//!
//! The command service must know an aggregate's partition before it appends (it serializes
//! commands per partition), so it computes the partition itself with the Java client's
//! default partitioner, murmur2 over the key. Every Kafka client that uses that default
//! therefore agrees with Tidemark about where an aggregate lives.

/// Kafka's murmur2 (as in `org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of `key` among `partitions`, as the Java client's default partitioner picks it.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// The first of `candidates` (0, 1, 2 …) whose id falls in `partition` among `partitions`:
/// records created together with another aggregate's change can then be appended beside
/// it, by the one writer that owns that partition number (its shard) in every topic.
pub fn id_in_partition(partition: i32, partitions: i32, candidate: impl Fn(u32) -> uuid::Uuid) -> uuid::Uuid {
    (0..).map(candidate).find(|id| partition_for(id.to_string().as_bytes(), partitions) == partition).expect("some id falls in every partition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_found_in_the_partition_asked_for() {
        let base = uuid::Uuid::from_u128(7);
        for partition in 0..6 {
            let id = id_in_partition(partition, 6, |n| uuid::Uuid::new_v5(&base, &n.to_le_bytes()));
            assert_eq!(partition_for(id.to_string().as_bytes(), 6), partition);
        }
    }

    #[test]
    fn matches_the_java_client() {
        // Reference values from Kafka's own UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(&[b'a', b'b', b'c']), 479470107);
    }

    proptest::proptest! {
        #[test]
        fn always_a_valid_partition(key: Vec<u8>, partitions in 1i32..64) {
            let p = partition_for(&key, partitions);
            proptest::prop_assert!((0..partitions).contains(&p));
        }
    }
}
