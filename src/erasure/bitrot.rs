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

/// The bitrot hash of one shard.
pub fn bitrot_hash(shard: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(shard)
}

/// Checks a framed shard `[hash][shard]` read from disk; returns the shard bytes
/// when the hash matches and the length is what the layout says.
pub fn verify_framed(framed: &[u8], expected_shard_len: usize) -> Option<&[u8]> {
    if framed.len() != BITROT_HASH_BYTES + expected_shard_len {
        return None;
    }
    let (head, shard) = framed.split_at(BITROT_HASH_BYTES);
    let stored = u64::from_le_bytes(head.try_into().ok()?);
    (stored == bitrot_hash(shard)).then_some(shard)
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
