//! Reed-Solomon block coding on top of reed-solomon-simd.
//!
//! A block of `len` bytes becomes `k` data shards of `shard_size(len)` bytes (the
//! block zero-padded at the end) and `m` parity shards of the same size. With
//! `m == 0` (a single drive) the one data shard is the block itself: the same code
//! path, no coding.
//!
//! The codec is reed-solomon-simd. Its encoder computes parity in a work
//! buffer it owns, from which every parity shard had to be copied out. For the
//! layouts it codes at "high rate" (every default layout but 4+3), blocks are
//! coded here instead by the same steps on the library's engine, in a buffer
//! of our own: the parity shards are slices of it. A full block's buffer is
//! kept by the thread ([`crate::reuse::Kept`]) and reused once the writers drop
//! them. Tests hold the two to the same bytes for every layout.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use reed_solomon_simd::engine::{DefaultEngine, Engine, ShardsRefMut, utils::xor_within};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::reuse::Kept;

/// Why a coding operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ErasureError {
    #[error("unsupported erasure layout {data}+{parity}")]
    BadLayout { data: usize, parity: usize },
    #[error("not enough shards to decode: have {have}, need {need}")]
    NotEnoughShards { have: usize, need: usize },
    #[error("shard {index} is {len} bytes, the others {expected}")]
    ShardSize { index: usize, len: usize, expected: usize },
    #[error("reed-solomon: {0}")]
    Codec(String),
}

/// One erasure layout: `data` + `parity` shards per block of `block_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    data: usize,
    parity: usize,
    block_size: usize,
}

impl Erasure {
    pub fn new(data: usize, parity: usize, block_size: usize) -> Result<Self, ErasureError> {
        let total = data + parity;
        if data == 0 || total > super::MAX_SET_DRIVES || block_size == 0 || parity > data {
            return Err(ErasureError::BadLayout { data, parity });
        }
        Ok(Erasure { data, parity, block_size })
    }

    pub fn data_shards(&self) -> usize {
        self.data
    }

    pub fn parity_shards(&self) -> usize {
        self.parity
    }

    pub fn total_shards(&self) -> usize {
        self.data + self.parity
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes per shard for a block of `block_len` bytes: `ceil(len / k)`, rounded up
    /// to even because the codec works on 16-bit symbols. Without parity there is no
    /// codec, so the shard is exactly the block.
    pub fn shard_size(&self, block_len: usize) -> usize {
        if self.parity == 0 {
            return block_len.div_ceil(self.data);
        }
        let size = block_len.div_ceil(self.data).max(1);
        size + (size & 1)
    }

    /// Codes one borrowed block into `k + m` shards: [`Erasure::encode_owned`]
    /// on a copy of it.
    pub fn encode(&self, block: &[u8]) -> Result<Vec<Bytes>, ErasureError> {
        self.encode_owned(Bytes::copy_from_slice(block))
    }

    /// Codes one block it is given. Every data shard that lies whole in the
    /// block is a slice of it, with no copy; the rest of the block (when `k`
    /// does not divide it, as 12 does not divide 1 MiB) is copied once into
    /// a zero-padded buffer the remaining data shards are slices of. In a
    /// high-rate layout the parity shards are slices of the buffer they were
    /// computed in, also with no copy.
    pub fn encode_owned(&self, block: Bytes) -> Result<Vec<Bytes>, ErasureError> {
        let shard_len = self.shard_size(block.len());
        let whole = block.len().checked_div(shard_len).unwrap_or(self.data).min(self.data);
        // Room for the parity too: `code` appends it without growing the list.
        let mut shards = Vec::with_capacity(self.total_shards());
        shards.extend((0..whole).map(|i| block.slice(i * shard_len..(i + 1) * shard_len)));
        if whole < self.data {
            let rest = &block[whole * shard_len..];
            let mut padded = BytesMut::zeroed((self.data - whole) * shard_len);
            padded[..rest.len()].copy_from_slice(rest);
            let padded = padded.freeze();
            shards.extend((0..self.data - whole).map(|i| padded.slice(i * shard_len..(i + 1) * shard_len)));
        }
        self.code(shards)
    }

    /// The `k + m` shards of a block given as its `k` data shards, all of one
    /// size. The buffer the parity is computed in is kept for the next block
    /// (once the writers drop it) only when the shards are a full block's: a
    /// short block (an inline object, a body's last block) has shards of a
    /// size of its own, and keeping its buffer would push out those the full
    /// blocks of every large body reuse.
    fn code(&self, mut shards: Vec<Bytes>) -> Result<Vec<Bytes>, ErasureError> {
        let shard_len = shards.first().map_or(0, Bytes::len);
        if self.parity == 0 || shard_len == 0 {
            shards.extend((0..self.parity).map(|_| Bytes::from(vec![0u8; shard_len])));
            return Ok(shards);
        }
        let keep = shard_len == self.shard_size(self.block_size);
        let parity = match high_rate(self.data, self.parity) {
            true => CODER.with(|coder| coder.borrow_mut().encode(self.parity, &shards, keep)),
            false => self.library_parity(&shards)?,
        };
        shards.extend(parity);
        Ok(shards)
    }

    /// The parity of a block's `k` data shards, from the library's encoder
    /// and copied out of it: for the layouts it codes at low rate.
    fn library_parity(&self, data: &[Bytes]) -> Result<Vec<Bytes>, ErasureError> {
        let shard_len = data[0].len();
        ENCODER.with(|cached| {
            let mut cached = cached.borrow_mut();
            // The codec's work buffers are kept per thread and reset per block:
            // allocating them for every block cost a zeroed allocation per MiB.
            let encoder = match cached.as_mut() {
                Some(e) => {
                    e.reset(self.data, self.parity, shard_len).map_err(codec_err)?;
                    e
                }
                None => cached.insert(ReedSolomonEncoder::new(self.data, self.parity, shard_len).map_err(codec_err)?),
            };
            for shard in data {
                encoder.add_original_shard(shard).map_err(codec_err)?;
            }
            let result = encoder.encode().map_err(codec_err)?;
            Ok(result.recovery_iter().map(Bytes::copy_from_slice).collect())
        })
    }

    /// Rebuilds the missing data shards of one block in place. `shards` has `k + m`
    /// entries; `None` marks a missing or corrupt shard. Parity shards are left as
    /// they are; use [`Erasure::reconstruct_all`] to rebuild those too.
    pub fn reconstruct_data(&self, shards: &mut [Option<Bytes>], shard_len: usize) -> Result<(), ErasureError> {
        for (i, restored) in self.restore_data(shards, shard_len)? {
            shards[i] = Some(restored);
        }
        Ok(())
    }

    /// The missing data shards of one block, rebuilt: `(index, shard)` for each
    /// `None` among the first `k` of `shards` (`k + m` entries, of any byte
    /// container: the shards present are only read). With AVX2 the shards are
    /// rebuilt by a map derived from the codec once per loss pattern
    /// (`erasure::restore`), otherwise by the codec's decoder.
    pub fn restore_data<S: AsRef<[u8]>>(
        &self,
        shards: &[Option<S>],
        shard_len: usize,
    ) -> Result<Vec<(usize, Bytes)>, ErasureError> {
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.data {
            return Err(ErasureError::NotEnoughShards { have, need: self.data });
        }
        if shards[..self.data].iter().all(|s| s.is_some()) {
            return Ok(Vec::new());
        }
        if super::restore::fast() {
            return super::restore::restore(self.data, self.parity, shards, shard_len);
        }
        // As the fast path does, so that both answer `ShardSize`.
        super::restore::check_shard_sizes(shards, shard_len)?;
        self.decode(shards, shard_len)
    }

    /// [`Erasure::restore_data`] by the codec's decoder: where the CPU lacks AVX2,
    /// and in tests, the reference the fast path is checked against.
    fn decode<S: AsRef<[u8]>>(
        &self,
        shards: &[Option<S>],
        shard_len: usize,
    ) -> Result<Vec<(usize, Bytes)>, ErasureError> {
        DECODER.with(|cached| {
            let mut cached = cached.borrow_mut();
            // Kept per thread like the encoder: a degraded read decodes every block.
            let decoder = match cached.as_mut() {
                Some(d) => {
                    d.reset(self.data, self.parity, shard_len).map_err(codec_err)?;
                    d
                }
                None => cached.insert(ReedSolomonDecoder::new(self.data, self.parity, shard_len).map_err(codec_err)?),
            };
            for (i, shard) in shards.iter().enumerate() {
                if let Some(shard) = shard {
                    if i < self.data {
                        decoder.add_original_shard(i, shard).map_err(codec_err)?;
                    } else {
                        decoder.add_recovery_shard(i - self.data, shard).map_err(codec_err)?;
                    }
                }
            }
            let result = decoder.decode().map_err(codec_err)?;
            Ok(result.restored_original_iter().map(|(i, restored)| (i, Bytes::copy_from_slice(restored))).collect())
        })
    }

    /// Rebuilds every missing shard, data and parity, of one block (for healing).
    pub fn reconstruct_all(&self, shards: &mut [Option<Bytes>], shard_len: usize) -> Result<(), ErasureError> {
        self.reconstruct_data(shards, shard_len)?;
        if shards[self.data..].iter().all(|s| s.is_some()) {
            return Ok(());
        }
        let data = shards[..self.data].iter().map(|s| s.clone().expect("data shards were reconstructed")).collect();
        let full = self.code(data)?;
        for (i, shard) in full.into_iter().enumerate().skip(self.data) {
            if shards[i].is_none() {
                shards[i] = Some(shard);
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The library's encoder, for low-rate layouts, reused block after block.
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
    /// One decoder per thread, likewise.
    static DECODER: RefCell<Option<ReedSolomonDecoder>> = const { RefCell::new(None) };
    /// The engine and parity buffers of high-rate layouts.
    static CODER: RefCell<Coder> = const { RefCell::new(Coder { engine: None, buffers: Kept::new(KEPT_PARITY_BUFFERS) }) };
}

/// Parity buffers a thread keeps, free or still held by writers: one per
/// block being written, as a core stages at most 8 PUTs at once.
const KEPT_PARITY_BUFFERS: usize = 8;

/// Bytes a shard takes in the coder's buffer: the engine works on whole
/// 64-byte chunks.
const CHUNK_BYTES: usize = 64;

/// Whether reed-solomon-simd codes `k + m` (with `m <= k`) at high rate: when
/// `k` rounds up to a larger power of two than `m`, or `k == m`. The same rule
/// as the library's own choice, so that its decoder reads our parity.
fn high_rate(k: usize, m: usize) -> bool {
    k.next_power_of_two() > m.next_power_of_two() || k == m
}

/// The high-rate encoder, run on buffers this thread keeps.
struct Coder {
    /// Made on first use: it picks the CPU's SIMD flavour.
    engine: Option<DefaultEngine>,
    buffers: Kept,
}

impl Coder {
    /// The `m` parity shards of the `k` data shards (of one size, `shard_len`),
    /// slices of one buffer: the library's high-rate encoding, done in
    /// place. `k` original shards in `k.next_multiple_of(chunk)` slots, `chunk`
    /// being `m` rounded up to a power of two: each run of `chunk` slots is
    /// inverse-transformed and summed into the first, whose forward transform
    /// leaves the parity in its first `m` slots.
    fn encode(&mut self, m: usize, data: &[Bytes], keep: bool) -> Vec<Bytes> {
        let (k, shard_len) = (data.len(), data[0].len());
        let engine = self.engine.get_or_insert_with(DefaultEngine::new);
        let chunk = m.next_power_of_two();
        let slots = k.next_multiple_of(chunk);
        let stride = shard_len.next_multiple_of(CHUNK_BYTES);
        let mut buffer = match keep {
            true => self.buffers.take(slots * stride),
            // Not from the kept ones either: taking drops those of other sizes.
            false => BytesMut::zeroed(slots * stride),
        };
        for (slot, shard) in buffer.chunks_exact_mut(stride).zip(data) {
            place(slot, shard);
        }
        {
            let (chunks, _) = buffer.as_chunks_mut::<CHUNK_BYTES>();
            let mut work = ShardsRefMut::new(slots, stride / CHUNK_BYTES, chunks);
            let first = k.min(chunk);
            work.zero(first..chunk);
            engine.ifft(&mut work, 0, chunk, first, chunk);
            let mut start = chunk;
            while start < k {
                let count = (k - start).min(chunk);
                work.zero(start + count..start + chunk);
                engine.ifft(&mut work, start, chunk, count, start + chunk);
                xor_within(&mut work, 0, start, chunk);
                start += chunk;
            }
            engine.fft(&mut work, 0, chunk, m, 0);
        }
        for slot in buffer.chunks_exact_mut(stride).take(m) {
            unplace(slot, shard_len);
        }
        let buffer = buffer.freeze();
        let parity = (0..m).map(|i| buffer.slice(i * stride..i * stride + shard_len)).collect();
        if keep {
            self.buffers.give(buffer);
        }
        parity
    }
}

/// Puts `shard` into its slot as the engine reads it: whole 64-byte chunks as
/// they are; a last partial chunk's 16-bit symbols with their first bytes in
/// its first half and their second bytes in its second half.
fn place(slot: &mut [u8], shard: &[u8]) {
    let whole = shard.len() - shard.len() % CHUNK_BYTES;
    let (body, tail) = shard.split_at(whole);
    slot[..whole].copy_from_slice(body);
    if !tail.is_empty() {
        let (lo, hi) = tail.split_at(tail.len() / 2);
        let last = &mut slot[whole..whole + CHUNK_BYTES];
        last[..lo.len()].copy_from_slice(lo);
        last[CHUNK_BYTES / 2..CHUNK_BYTES / 2 + hi.len()].copy_from_slice(hi);
    }
}

/// Turns a parity slot back into the shard's own byte order: the inverse of
/// [`place`] on its partial last chunk.
fn unplace(slot: &mut [u8], shard_len: usize) {
    let tail = shard_len % CHUNK_BYTES;
    if tail > 0 {
        let whole = shard_len - tail;
        let last = &mut slot[whole..whole + CHUNK_BYTES];
        last.copy_within(CHUNK_BYTES / 2..CHUNK_BYTES / 2 + tail / 2, tail / 2);
    }
}

pub(super) fn codec_err(e: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Codec(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// A block's data shards are slices of it where they lie whole in it, and
    /// of one zero-padded copy of the rest where `k` does not divide it (12+4
    /// and a full block, 5+3 and any odd size); the parity is the library
    /// encoder's for the padded block.
    #[test]
    fn data_shards_are_the_block_itself_but_for_a_padded_rest() {
        for (k, m) in [(2, 2), (4, 2), (12, 4), (5, 3), (4, 3), (3, 1)] {
            let e = Erasure::new(k, m, 1 << 20).unwrap();
            for len in [1 << 20, (1 << 20) - 7, 5000, 4096, 3, 0] {
                let block = Bytes::from(sample(len));
                let shards = e.encode_owned(block.clone()).unwrap();
                let shard_len = e.shard_size(len);
                let mut padded = block.to_vec();
                padded.resize(k * shard_len, 0);
                let data: Vec<u8> = shards[..k].concat();
                assert_eq!(data, padded, "{k}+{m} {len}: data shards");
                let inside = |s: &Bytes| block.as_ptr_range().contains(&s.as_ptr());
                for (i, shard) in shards[..k].iter().enumerate() {
                    assert_eq!(inside(shard), (i + 1) * shard_len <= len, "{k}+{m} {len}: shard {i} copied or not");
                }
                let mut library = ReedSolomonEncoder::new(k, m, shard_len).unwrap();
                for shard in padded.chunks_exact(shard_len) {
                    library.add_original_shard(shard).unwrap();
                }
                let theirs: Vec<Bytes> =
                    library.encode().unwrap().recovery_iter().map(Bytes::copy_from_slice).collect();
                assert_eq!(shards[k..], theirs[..], "{k}+{m} {len}: parity");
                assert_eq!(e.encode(&block).unwrap(), shards, "{k}+{m} {len}: a borrowed block");
            }
        }
    }

    /// Parity computed here, for every layout of up to 16 drives, is the
    /// library encoder's to the byte: shard sizes of whole 64-byte chunks, of a
    /// tail alone and of both, each coded twice so the second time runs in a
    /// buffer still holding the first block's bytes.
    #[test]
    fn parity_coded_here_is_the_library_encoders() {
        for k in 1..=MAX_SET_DRIVES_FOR_TEST {
            for m in 1..=k.min(MAX_SET_DRIVES_FOR_TEST - k) {
                for shard_len in [2, 62, 64, 66, 130, 4096, 4158] {
                    // Full blocks, whose parity buffers are kept.
                    let e = Erasure::new(k, m, k * shard_len).unwrap();
                    for round in 0..2 {
                        let data: Vec<u8> = (0..k * shard_len).map(|i| ((i * 7919 + round * 13) % 251) as u8).collect();
                        let ours = e.encode_owned(Bytes::from(data.clone())).unwrap();
                        let mut library = ReedSolomonEncoder::new(k, m, shard_len).unwrap();
                        for shard in data.chunks_exact(shard_len) {
                            library.add_original_shard(shard).unwrap();
                        }
                        let theirs: Vec<Bytes> =
                            library.encode().unwrap().recovery_iter().map(Bytes::copy_from_slice).collect();
                        assert_eq!(ours[..k], Bytes::from(data).chunks(shard_len).collect::<Vec<_>>()[..]);
                        assert_eq!(ours[k..], theirs[..], "{k}+{m}, shards of {shard_len} bytes, round {round}");
                    }
                }
            }
        }
    }

    const MAX_SET_DRIVES_FOR_TEST: usize = super::super::MAX_SET_DRIVES;

    /// A full block's parity buffer comes back for the next full block, even
    /// after more short blocks (each with shards of its own size) than a
    /// thread keeps buffers.
    #[test]
    fn short_blocks_do_not_push_out_the_full_blocks_parity_buffer() {
        let e = Erasure::new(2, 2, 1 << 20).unwrap();
        let full = Bytes::from(sample(1 << 20));
        let parity_at = |shards: Vec<Bytes>| shards[2].as_ptr() as usize;
        let first = parity_at(e.encode_owned(full.clone()).unwrap());
        for i in 0..KEPT_PARITY_BUFFERS + 2 {
            e.encode(&sample(4096 + 1000 * i)).unwrap();
        }
        // Checked on the list too: a new buffer may land where a freed one was.
        let kept = CODER.with(|c| c.borrow().buffers.kept_sizes());
        assert_eq!(kept, [2 * e.shard_size(1 << 20)], "the kept parity buffers after short blocks");
        assert_eq!(parity_at(e.encode_owned(full).unwrap()), first, "the full block's buffer was not reused");
    }

    #[test]
    fn round_trip_with_losses() {
        for (k, m) in [(1, 0), (1, 1), (2, 1), (2, 2), (4, 2), (12, 4)] {
            let e = Erasure::new(k, m, 1 << 20).unwrap();
            for len in [1, 2, 3, 1000, 65537, 1 << 20] {
                let data = sample(len);
                let shards = e.encode(&data).unwrap();
                assert_eq!(shards.len(), k + m);
                let shard_len = e.shard_size(len);
                let mut got: Vec<Option<Bytes>> = shards.into_iter().map(Some).collect();
                // lose the first m shards: the worst case, all data shards gone first
                for s in got.iter_mut().take(m) {
                    *s = None;
                }
                e.reconstruct_all(&mut got, shard_len).unwrap();
                let out: Vec<u8> =
                    got[..k].iter().flat_map(|s| s.as_ref().unwrap().iter().copied()).take(len).collect();
                assert_eq!(&out[..], &data[..], "k={k} m={m} len={len}");
            }
        }
    }

    /// Every loss pattern the layout survives, for small layouts; some for the
    /// others. Bit `i` set: shard `i` is lost.
    fn loss_patterns(k: usize, m: usize, seed: &mut u64) -> Vec<u32> {
        let n = k + m;
        let survivable = |p: &u32| (p.count_ones() as usize) <= m && (p & ((1 << k) - 1)) != 0;
        if n <= 8 {
            return (0u32..1 << n).filter(survivable).collect();
        }
        let mut patterns = vec![(1 << m) - 1, ((1 << m) - 1) << (k - m)];
        while patterns.len() < 24 {
            let mut p = 0u32;
            for _ in 0..m {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                p |= 1 << (*seed % n as u64);
            }
            if survivable(&p) {
                patterns.push(p);
            }
        }
        patterns
    }

    #[test]
    fn fast_restore_matches_the_codec_decoder() {
        if !super::super::restore::fast() {
            eprintln!("this CPU lacks AVX2: blocks are restored by the codec's decoder alone");
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (k, m) in [(1, 1), (2, 1), (2, 2), (3, 1), (3, 3), (4, 2), (5, 3), (6, 2), (8, 4), (8, 8), (12, 4)] {
            let e = Erasure::new(k, m, 1 << 20).unwrap();
            // Shard sizes of whole chunks, of a tail alone, and of both; and a
            // full block's.
            for len in [3, 60, 128, 129, 4000, 8254, 1 << 20] {
                let data: Vec<u8> = (0..len).map(|i| ((i * 7919 % 65_521) ^ (i >> 9)) as u8).collect();
                let shards = e.encode(&data).unwrap();
                let shard_len = e.shard_size(len);
                for lost in loss_patterns(k, m, &mut seed) {
                    let got: Vec<Option<&Bytes>> =
                        shards.iter().enumerate().map(|(i, s)| (lost >> i & 1 == 0).then_some(s)).collect();
                    let fast = super::super::restore::restore(k, m, &got, shard_len).unwrap();
                    assert_eq!(fast, e.decode(&got, shard_len).unwrap(), "{k}+{m}, {len} bytes, lost {lost:#b}");
                    for (i, shard) in fast {
                        assert_eq!(shard, shards[i], "{k}+{m}, {len} bytes, lost {lost:#b}: shard {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_shard_of_the_wrong_size_is_an_error() {
        let e = Erasure::new(2, 2, 1 << 20).unwrap();
        let shards = e.encode(&sample(5000)).unwrap();
        let mut got: Vec<Option<Bytes>> = shards.into_iter().map(Some).collect();
        got[0] = None;
        got[3] = got[3].as_ref().map(|s| s.slice(..s.len() - 2));
        let err = e.reconstruct_data(&mut got, e.shard_size(5000)).unwrap_err();
        assert_eq!(err, ErasureError::ShardSize { index: 3, len: 2498, expected: 2500 });
    }

    #[test]
    fn too_many_losses_is_an_error() {
        let e = Erasure::new(2, 2, 1 << 20).unwrap();
        let shards = e.encode(&sample(5000)).unwrap();
        let mut got: Vec<Option<Bytes>> = shards.into_iter().map(Some).collect();
        got[0] = None;
        got[1] = None;
        got[2] = None;
        assert!(matches!(
            e.reconstruct_data(&mut got, e.shard_size(5000)),
            Err(ErasureError::NotEnoughShards { have: 1, need: 2 })
        ));
    }

    #[test]
    fn parity_rebuilt_matches_original() {
        let e = Erasure::new(4, 2, 1 << 20).unwrap();
        let data = sample(300_001);
        let shards = e.encode(&data).unwrap();
        let mut got: Vec<Option<Bytes>> = shards.iter().cloned().map(Some).collect();
        got[1] = None;
        got[5] = None;
        e.reconstruct_all(&mut got, e.shard_size(data.len())).unwrap();
        for (a, b) in got.iter().zip(shards.iter()) {
            assert_eq!(a.as_ref().unwrap(), b);
        }
    }
}
