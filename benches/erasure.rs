//! Erasure coding and bitrot hashing of one 1 MiB block, the unit of work on the
//! PUT and GET paths.
//!
//! - `encode+bitrot`: what a PUT spends per block: Reed-Solomon encode into `k + m`
//!   shards, then the bitrot hash of every shard.
//! - `decode`: what a degraded GET spends per block: rebuild `m` missing data shards
//!   (the worst case, as many as parity allows) and join the data back into a block;
//!   next to it, reed-solomon-simd's decoder doing the same, which basalt calls
//!   only where the CPU lacks AVX2 (`src/erasure/restore.rs`).
//! - `hash`: candidate bitrot hashes over one 1 MiB buffer, the evidence behind
//!   XXH3-64 as the bitrot hash (`src/erasure/bitrot.rs`). Bitrot needs a strong
//!   checksum against accidental corruption, not a MAC against an attacker, so the
//!   hash should cost a small fraction of the coding. MD5 is there because every PUT
//!   pays it for the ETag; SHA-256 (ring) and HighwayHash-256 (MinIO's bitrot hash)
//!   are the alternatives. xxhash-rust picks its SIMD path at compile time (SSE2 on
//!   the default x86-64 target, AVX2 only when built for it), while highway and
//!   ring detect CPU features at run time: compare them on the same build flags.
//! - `hash-cold`: the bitrot check of what a GET reads with direct I/O, which is in
//!   no cache: XXH3-64 one-shot against `bitrot_hash_cold` (a page at a time, the
//!   lines 16 KiB ahead prefetched), over 512 KiB shards cycled through a buffer
//!   larger than the last-level cache.
//!
//! - `md5-lanes`: the ETag's MD5 of 1 MiB blocks of several bodies at once
//!   (`src/etag/`): the md-5 crate and basalt's own MD5 alone, then 2, 4 and 16
//!   bodies hashed side by side in one pass: in 128-bit lanes (1 to 4 bodies)
//!   and 512-bit ones (16) where the CPU has AVX-512, else in scalar lanes.
//!   Throughput counts every body's bytes.
//!
//! Throughput is bytes of block data per second, not shard bytes, so layouts compare.

use std::hint::black_box;

use basalt::erasure::{BLOCK_SIZE_BYTES, Erasure, bitrot_hash, bitrot_hash_cold};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use highway::{HighwayHash, HighwayHasher};
use md5::{Digest, Md5};
use reed_solomon_simd::ReedSolomonDecoder;

/// `k + m` layouts: the 4-, 12- and 16-drive defaults (2+2, 8+4, 12+4) and 4+2, a
/// 6-drive set with less parity than its default 3+3.
const LAYOUTS: [(usize, usize); 4] = [(2, 2), (4, 2), (8, 4), (12, 4)];

/// One block of bytes that is not all zeroes (the codec's speed does not depend on
/// content, but a zero block could hide a skipped copy).
fn block() -> Vec<u8> {
    (0..BLOCK_SIZE_BYTES).map(|i| (i * 31 % 251) as u8).collect()
}

fn encode_bitrot(c: &mut Criterion) {
    // As a PUT codes a block it received: owned, so whole data shards are
    // slices of it (cloning `Bytes` only bumps a reference count).
    let block = Bytes::from(block());
    let mut group = c.benchmark_group("encode+bitrot");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    for (data, parity) in LAYOUTS {
        let erasure = Erasure::new(data, parity, BLOCK_SIZE_BYTES).unwrap();
        let id = BenchmarkId::from_parameter(format!("{data}+{parity}"));
        group.bench_function(id, |b| {
            b.iter(|| {
                let shards = erasure.encode_owned(black_box(block.clone())).unwrap();
                shards.iter().fold(0u64, |acc, s| acc ^ bitrot_hash(s))
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let block = block();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    for (data, parity) in LAYOUTS {
        let erasure = Erasure::new(data, parity, BLOCK_SIZE_BYTES).unwrap();
        let shard_len = erasure.shard_size(BLOCK_SIZE_BYTES);
        let full: Vec<Option<Bytes>> = erasure.encode(&block).unwrap().into_iter().map(Some).collect();
        // As a GET does: reconstruct, then hand the data shards on as they are.
        let degraded_read = || {
            // Cloning the shards only bumps reference counts.
            let mut shards = full.clone();
            shards[..parity].fill(None);
            erasure.reconstruct_data(&mut shards, shard_len).unwrap();
            shards.into_iter().take(data).map(Option::unwrap).collect::<Vec<Bytes>>()
        };
        // The last data shard is padded: the block is the shards' first bytes.
        assert!(degraded_read().concat()[..BLOCK_SIZE_BYTES] == block[..], "{data}+{parity}: decoded block differs");
        let id = BenchmarkId::new("basalt", format!("{data}+{parity}"));
        group.bench_function(id, |b| b.iter(|| black_box(degraded_read())));
        // The codec's own decoder on the same shards, reused block after block
        // as basalt used it before it derived maps per loss pattern: side by
        // side, the ratio is the fast path's gain.
        let mut decoder = ReedSolomonDecoder::new(data, parity, shard_len).unwrap();
        let id = BenchmarkId::new("reed-solomon-simd", format!("{data}+{parity}"));
        group.bench_function(id, |b| {
            b.iter(|| {
                decoder.reset(data, parity, shard_len).unwrap();
                for (i, shard) in full.iter().enumerate().skip(parity) {
                    let shard = shard.as_ref().unwrap();
                    match i.checked_sub(data) {
                        None => decoder.add_original_shard(i, shard).unwrap(),
                        Some(r) => decoder.add_recovery_shard(r, shard).unwrap(),
                    }
                }
                let result = decoder.decode().unwrap();
                black_box(
                    result.restored_original_iter().map(|(i, s)| (i, Bytes::copy_from_slice(s))).collect::<Vec<_>>(),
                )
            })
        });
    }
    group.finish();
}

fn hash(c: &mut Criterion) {
    let block = block();
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    group.bench_function("xxh3-64", |b| b.iter(|| bitrot_hash(black_box(&block))));
    group.bench_function("md5", |b| b.iter(|| Md5::digest(black_box(&block))));
    group.bench_function("sha256", |b| b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(&block))));
    group.bench_function("highwayhash-256", |b| b.iter(|| HighwayHasher::default().hash256(black_box(&block))));
    group.finish();
}

fn md5_lanes(c: &mut Criterion) {
    let bodies: Vec<Vec<u8>> =
        (0..basalt::etag::MAX_LANES).map(|l| block().iter().map(|b| b.wrapping_add(l as u8)).collect()).collect();
    let mut group = c.benchmark_group("md5-lanes");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    group.bench_function("md-5 crate", |b| b.iter(|| Md5::digest(black_box(&bodies[0]))));
    group.bench_function("basalt, 1 body", |b| b.iter(|| basalt::etag::Md5::digest(black_box(&bodies[0]))));
    for n in [2, 3, 4, 8, 16] {
        group.throughput(Throughput::Bytes((n * BLOCK_SIZE_BYTES) as u64));
        let data: Vec<&[u8]> = bodies[..n].iter().map(|b| &b[..]).collect();
        group.bench_function(BenchmarkId::new("basalt, bodies side by side", n), |b| {
            b.iter(|| {
                let mut state = vec![[0u32; 4]; n];
                basalt::etag::compress(&mut state, black_box(&data));
                state
            })
        });
    }
    group.finish();
}

/// The buffer `hash-cold` cycles through: past the last-level cache of the
/// machines this runs on (260 MiB on the development VM's host), so every shard
/// comes from memory.
const COLD_BUFFER_BYTES: usize = 1 << 30;
/// A 2+2 layout's shard of a 1 MiB block.
const COLD_SHARD_BYTES: usize = 512 << 10;

fn hash_cold(c: &mut Criterion) {
    let buffer: Vec<u8> = (0..COLD_BUFFER_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let shards: Vec<&[u8]> = buffer.chunks(COLD_SHARD_BYTES).collect();
    let mut group = c.benchmark_group("hash-cold");
    group.throughput(Throughput::Bytes(COLD_SHARD_BYTES as u64));
    let one_shot: fn(&[u8]) -> u64 = bitrot_hash;
    for (name, f) in [("xxh3-64", one_shot), ("xxh3-64-prefetched", bitrot_hash_cold)] {
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % shards.len();
                f(black_box(shards[next]))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode_bitrot, decode, hash, md5_lanes, hash_cold);
criterion_main!(benches);
