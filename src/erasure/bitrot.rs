//! Bitrot protection of shard files.
//!
//! A shard file is the concatenation, for every block of a part, of
//! `[hash: 8 bytes little endian][shard bytes]`. The hash is XXH3-64 of the shard.
//! XXH3 was chosen over HighwayHash and SHA-256 because bitrot detection needs a
//! strong non-adversarial checksum, not a MAC, and XXH3 runs at memory speed
//! (see `benches/erasure.rs`, which measures it beside the alternatives).
//! Framing each shard with its hash lets a reader verify any block on its own.

use super::Erasure;

/// Bytes of bitrot hash stored in front of every shard.
pub const BITROT_HASH_BYTES: usize = 8;

/// Bytes hashed per step by [`bitrot_hash_cold`]: one page.
const COLD_STEP_BYTES: usize = 4096;
/// How far ahead of the hash [`bitrot_hash_cold`] prefetches. Measured on
/// 512 KiB shards far out of cache: 16 KiB ahead cut the hash's time by a
/// quarter; 4 KiB and 32 KiB ahead, or 8 KiB steps, did less.
const COLD_PREFETCH_AHEAD_BYTES: usize = 16 << 10;

/// The bitrot hash of one shard.
pub fn bitrot_hash(shard: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(shard)
}

/// [`bitrot_hash`] of bytes that are not in any cache, such as a shard just
/// read with direct I/O: the same hash, a page at a time, with the lines
/// [`COLD_PREFETCH_AHEAD_BYTES`] ahead prefetched. The CPU's own prefetcher
/// stops at each 4 KiB page, which leaves a one-shot hash waiting on memory.
pub fn bitrot_hash_cold(shard: &[u8]) -> u64 {
    if shard.len() <= COLD_PREFETCH_AHEAD_BYTES {
        return bitrot_hash(shard);
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (i, step) in shard.chunks(COLD_STEP_BYTES).enumerate() {
        let ahead = i * COLD_STEP_BYTES + COLD_PREFETCH_AHEAD_BYTES;
        if let Some(lines) = shard.get(ahead..(ahead + COLD_STEP_BYTES).min(shard.len())) {
            prefetch(lines);
        }
        hasher.update(step);
    }
    hasher.digest()
}

/// Asks the CPU to bring every cache line of `bytes` into cache.
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing and never faults; the pointer is
        // inside `bytes`.
        unsafe { std::arch::x86_64::_mm_prefetch(line.as_ptr().cast(), std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Checks a framed shard `[hash][shard]` read from disk; returns the shard bytes
/// when the hash matches and the length is what the layout says.
pub fn verify_framed(framed: &[u8], expected_shard_len: usize) -> Option<&[u8]> {
    if framed.len() != BITROT_HASH_BYTES + expected_shard_len {
        return None;
    }
    let (head, shard) = framed.split_at(BITROT_HASH_BYTES);
    let stored = u64::from_le_bytes(head.try_into().ok()?);
    // Shards checked here were just read from disk, out of cache.
    (stored == bitrot_hash_cold(shard)).then_some(shard)
}

/// Offset in a shard file of block `block_index`'s framed shard.
pub fn shard_file_offset(erasure: &Erasure, block_index: u64) -> u64 {
    let full = (BITROT_HASH_BYTES + erasure.shard_size(erasure.block_size())) as u64;
    block_index * full
}

/// Size of a whole shard file for a part of `part_size` bytes.
pub fn shard_file_size(erasure: &Erasure, part_size: u64) -> u64 {
    let block = erasure.block_size() as u64;
    let full_blocks = part_size / block;
    let tail = (part_size % block) as usize;
    let mut size = shard_file_offset(erasure, full_blocks);
    if tail > 0 {
        size += (BITROT_HASH_BYTES + erasure.shard_size(tail)) as u64;
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cold_hash_is_the_same_hash() {
        let data: Vec<u8> = (0..(1usize << 20) + 77).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 4095, 4096, 4097, 16 << 10, (16 << 10) + 1, 100_000, 512 << 10, data.len()] {
            assert_eq!(bitrot_hash_cold(&data[..len]), bitrot_hash(&data[..len]), "length {len}");
        }
    }
}
