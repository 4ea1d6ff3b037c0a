//! Reed-Solomon block coding on top of reed-solomon-simd.
//!
//! A block of `len` bytes becomes `k` data shards of `shard_size(len)` bytes (the
//! block zero-padded at the end) and `m` parity shards of the same size. With
//! `m == 0` (a single drive) the one data shard is the block itself: the same code
//! path, no coding.

use bytes::{Bytes, BytesMut};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

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

    /// Codes one block into `k + m` shards. Data shards are slices of one padded
    /// copy of the block (one copy per byte), parity shards come from the codec.
    pub fn encode(&self, block: &[u8]) -> Result<Vec<Bytes>, ErasureError> {
        let shard_len = self.shard_size(block.len());
        let mut padded = BytesMut::zeroed(shard_len * self.data);
        padded[..block.len()].copy_from_slice(block);
        self.encode_owned(padded.freeze())
    }

    /// Codes one block it is given: when the block splits into equal shards as
    /// it is (every full block), the data shards are slices of it, with no copy.
    pub fn encode_owned(&self, block: Bytes) -> Result<Vec<Bytes>, ErasureError> {
        let shard_len = self.shard_size(block.len());
        if block.len() != shard_len * self.data {
            return self.encode(&block);
        }
        let mut shards: Vec<Bytes> = (0..self.data).map(|i| block.slice(i * shard_len..(i + 1) * shard_len)).collect();
        if self.parity == 0 || shard_len == 0 {
            shards.extend((0..self.parity).map(|_| Bytes::from(vec![0u8; shard_len])));
            return Ok(shards);
        }
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
            for shard in &shards[..self.data] {
                encoder.add_original_shard(shard).map_err(codec_err)?;
            }
            let result = encoder.encode().map_err(codec_err)?;
            shards.extend(result.recovery_iter().map(Bytes::copy_from_slice));
            Ok(shards)
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
        let mut block = Vec::with_capacity(shard_len * self.data);
        for shard in &shards[..self.data] {
            block.extend_from_slice(shard.as_ref().expect("data shards were reconstructed"));
        }
        let full = self.encode(&block)?;
        for (i, shard) in full.into_iter().enumerate().skip(self.data) {
            if shards[i].is_none() {
                shards[i] = Some(shard);
            }
        }
        Ok(())
    }
}

thread_local! {
    /// One encoder per thread, reused block after block.
    static ENCODER: std::cell::RefCell<Option<ReedSolomonEncoder>> = const { std::cell::RefCell::new(None) };
    /// One decoder per thread, likewise.
    static DECODER: std::cell::RefCell<Option<ReedSolomonDecoder>> = const { std::cell::RefCell::new(None) };
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

    #[test]
    fn encoding_in_place_equals_encoding_a_copy() {
        for (k, m) in [(2, 2), (4, 2), (12, 4)] {
            let e = Erasure::new(k, m, 1 << 20).unwrap();
            // A full block (shards are slices of it), then a short one (padded copy),
            // then a full one again with the thread's encoder reset in between.
            for len in [1 << 20, 5000, 1 << 20] {
                let data = sample(len);
                assert_eq!(
                    e.encode_owned(Bytes::from(data.clone())).unwrap(),
                    e.encode(&data).unwrap(),
                    "{k}+{m} {len}"
                );
            }
        }
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
