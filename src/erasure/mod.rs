//! Erasure coding: cutting object data into blocks, Reed-Solomon coding each block
//! into `k` data + `m` parity shards, and the bitrot framing of shard files.
//!
//! This module knows nothing about drives or objects; it turns bytes into shards
//! and back. The object layer owns the streaming; see `object::put` and `object::get`.

mod bitrot;
mod codec;
mod restore;

pub use bitrot::{BITROT_HASH_BYTES, bitrot_hash, bitrot_hash_cold, shard_file_offset, shard_file_size, verify_framed};
pub use codec::{Erasure, ErasureError};

/// Objects are cut into blocks of this size; each block is coded on its own, so a
/// reader can start at any block and memory per stream is bounded by one block.
/// 1 MiB matches MinIO and keeps shards of a 16-drive set above 64 KiB, large
/// enough for efficient direct I/O.
pub const BLOCK_SIZE_BYTES: usize = 1 << 20;

/// The most shards a set can have: DESIGN.md caps erasure sets at 16 drives.
pub const MAX_SET_DRIVES: usize = 16;

/// Default parity for a set of `drives` drives (DESIGN.md, "Quorum and consistency").
pub fn default_parity(drives: usize) -> usize {
    match drives {
        0 | 1 => 0,
        2 | 3 => 1,
        4 | 5 => 2,
        6 | 7 => 3,
        _ => 4,
    }
}
