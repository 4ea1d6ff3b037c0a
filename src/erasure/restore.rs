//! Rebuilding lost data shards with a linear map per loss pattern, derived once
//! from the codec and applied with byte-shuffle table lookups.
//!
//! reed-solomon-simd's decoder pays about 230 µs per call whatever the shard size
//! (it evaluates the error locator over all 65,536 field elements), then makes
//! several FFT passes over the data: a degraded read of one 1 MiB block cost 3 to
//! 8 times its encode. Yet once it is known which shards are present, each lost
//! data symbol is a fixed GF(2)-linear function of the symbols at the same
//! position in `k` present shards: the code works on 16-bit symbols, every
//! position alike. So, once per loss pattern, [`RestoreMap::derive`] asks the
//! codec's own decoder what each of the `k × 16` input bits contributes (one probe
//! decode of unit symbols), and turns the answers into nibble lookup tables. The
//! map is then applied with AVX2 byte shuffles: per 32 symbols and per (source,
//! lost shard) pair, 8 shuffles and 8 XORs.
//!
//! The codec's symbol layout, which the tests check against its decoder: in each
//! whole 64-byte chunk of a shard, symbol `j` (0..32) has its low byte at `j` and
//! its high byte at `32 + j`; in a last partial chunk of `t` bytes (`t` is even),
//! at `j` and `t / 2 + j`.
//!
//! Maps are kept per thread (at most [`MAX_CACHED_MAPS`]): a degraded read meets
//! the same loss pattern block after block. Where the CPU lacks AVX2, [`fast`]
//! says so and the codec's decoder does the work.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use reed_solomon_simd::ReedSolomonDecoder;

use super::ErasureError;

/// Loss patterns whose maps a thread keeps. A set has one pattern per set of
/// failed drives; a handful is all a node meets at once, and each map is at most
/// `8 × 16` tables of 256 bytes.
const MAX_CACHED_MAPS: usize = 16;

/// Bits per codec symbol.
const SYMBOL_BITS: usize = 16;

/// Bytes per codec chunk: 32 symbols, low bytes then high bytes.
const CHUNK_BYTES: usize = 64;

/// Symbols per chunk.
const CHUNK_SYMBOLS: usize = CHUNK_BYTES / 2;

/// Whether this CPU restores shards here; otherwise the codec's decoder does.
pub(super) fn fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The lost data shards of one block, rebuilt from the first `data` shards
/// present: `(index, shard)` per lost data shard, ascending. The caller has
/// checked that at least `data` shards are present and some data shard is lost,
/// and that [`fast`] holds.
pub(super) fn restore<S: AsRef<[u8]>>(
    data: usize,
    parity: usize,
    shards: &[Option<S>],
    shard_len: usize,
) -> Result<Vec<(usize, Bytes)>, ErasureError> {
    let key = MapKey::new(data, parity, shards);
    let map = MAPS.with(|maps| -> Result<Rc<RestoreMap>, ErasureError> {
        let mut maps = maps.borrow_mut();
        if let Some(at) = maps.iter().position(|(k, _)| *k == key) {
            maps[..=at].rotate_right(1);
            return Ok(maps[0].1.clone());
        }
        let map = Rc::new(RestoreMap::derive(data, parity, key.sources)?);
        maps.insert(0, (key, map.clone()));
        maps.truncate(MAX_CACHED_MAPS);
        Ok(map)
    })?;
    map.apply(shards, shard_len)
}

/// Every shard present is `shard_len` bytes, sources or not: a shard of another
/// size means the block's shards do not belong together.
pub(super) fn check_shard_sizes<S: AsRef<[u8]>>(shards: &[Option<S>], shard_len: usize) -> Result<(), ErasureError> {
    for (index, shard) in shards.iter().enumerate() {
        if let Some(len) = shard.as_ref().map(|s| s.as_ref().len())
            && len != shard_len
        {
            return Err(ErasureError::ShardSize { index, len, expected: shard_len });
        }
    }
    Ok(())
}

thread_local! {
    /// This thread's maps, most recently used first.
    static MAPS: RefCell<Vec<(MapKey, Rc<RestoreMap>)>> = const { RefCell::new(Vec::new()) };
}

/// A layout and the shards a map computes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MapKey {
    data: usize,
    parity: usize,
    /// Bit `i` set: shard `i` is a source. The first `data` shards present; every
    /// data shard present is among them, since data shards come first.
    sources: u32,
}

impl MapKey {
    fn new<S>(data: usize, parity: usize, shards: &[Option<S>]) -> Self {
        let sources =
            shards.iter().enumerate().filter(|(_, s)| s.is_some()).take(data).fold(0u32, |m, (i, _)| m | 1 << i);
        MapKey { data, parity, sources }
    }
}

/// What one source contributes to one lost shard, per nibble of the source's
/// symbol (0 and 1: the low byte's nibbles, 2 and 3: the high byte's): the low
/// and the high byte of the contribution for each of the 16 nibble values. Each
/// 16-entry table is stored twice, once per 128-bit lane of an AVX2 shuffle.
#[derive(Debug, Clone, Copy, Default)]
struct NibbleTables {
    lo: [[u8; 32]; 4],
    hi: [[u8; 32]; 4],
}

impl NibbleTables {
    /// Tables of the linear map whose value on the unit symbol `1 << b` is
    /// `columns[b]`.
    fn from_columns(columns: &[u16; SYMBOL_BITS]) -> Self {
        let mut t = NibbleTables::default();
        for nibble in 0..4 {
            for value in 0..16usize {
                let sum =
                    (0..4).filter(|bit| value >> bit & 1 == 1).fold(0u16, |acc, bit| acc ^ columns[4 * nibble + bit]);
                let [lo, hi] = sum.to_le_bytes();
                t.lo[nibble][value] = lo;
                t.lo[nibble][value + 16] = lo;
                t.hi[nibble][value] = hi;
                t.hi[nibble][value + 16] = hi;
            }
        }
        t
    }

    /// The contribution of one source symbol, as (low byte, high byte).
    fn apply(&self, lo: u8, hi: u8) -> (u8, u8) {
        let nibbles = [lo & 15, lo >> 4, hi & 15, hi >> 4];
        nibbles
            .iter()
            .enumerate()
            .fold((0, 0), |(l, h), (n, &v)| (l ^ self.lo[n][usize::from(v)], h ^ self.hi[n][usize::from(v)]))
    }
}

/// The map from `k` present shards to the lost data shards, for one loss pattern.
#[derive(Debug)]
struct RestoreMap {
    /// Indices of the shards computed from, ascending.
    sources: Vec<usize>,
    /// Indices of the lost data shards, ascending.
    lost: Vec<usize>,
    /// `tables[l * k + s]`: what source `s` contributes to lost shard `l`.
    tables: Vec<NibbleTables>,
}

/// Where symbol `p` of a shard of whole chunks keeps its (low, high) byte.
fn symbol_bytes(p: usize) -> (usize, usize) {
    let chunk = p / CHUNK_SYMBOLS * CHUNK_BYTES;
    (chunk + p % CHUNK_SYMBOLS, chunk + CHUNK_SYMBOLS + p % CHUNK_SYMBOLS)
}

impl RestoreMap {
    /// Asks the codec's decoder for the map: source `s` carries the unit symbol
    /// `1 << b` at symbol position `16 s + b` and zero elsewhere, so position
    /// `16 s + b` of each lost shard is what bit `b` of source `s` contributes.
    fn derive(data: usize, parity: usize, sources: u32) -> Result<Self, ErasureError> {
        let sources: Vec<usize> = (0..data + parity).filter(|i| sources >> i & 1 == 1).collect();
        let lost: Vec<usize> = (0..data).filter(|i| !sources.contains(i)).collect();
        let probe_len = (data * SYMBOL_BITS).div_ceil(CHUNK_SYMBOLS) * CHUNK_BYTES;
        let mut decoder = ReedSolomonDecoder::new(data, parity, probe_len).map_err(super::codec::codec_err)?;
        for (s, &index) in sources.iter().enumerate() {
            let mut probe = vec![0u8; probe_len];
            for b in 0..SYMBOL_BITS {
                let (lo, hi) = symbol_bytes(s * SYMBOL_BITS + b);
                [probe[lo], probe[hi]] = (1u16 << b).to_le_bytes();
            }
            if index < data {
                decoder.add_original_shard(index, &probe)
            } else {
                decoder.add_recovery_shard(index - data, &probe)
            }
            .map_err(super::codec::codec_err)?;
        }
        let result = decoder.decode().map_err(super::codec::codec_err)?;
        let mut tables = Vec::with_capacity(lost.len() * data);
        for &index in &lost {
            let restored = result
                .restored_original(index)
                .ok_or_else(|| ErasureError::Codec(format!("the decoder did not restore shard {index}")))?;
            for s in 0..data {
                let columns = std::array::from_fn(|b| {
                    let (lo, hi) = symbol_bytes(s * SYMBOL_BITS + b);
                    u16::from_le_bytes([restored[lo], restored[hi]])
                });
                tables.push(NibbleTables::from_columns(&columns));
            }
        }
        Ok(RestoreMap { sources, lost, tables })
    }

    fn apply<S: AsRef<[u8]>>(
        &self,
        shards: &[Option<S>],
        shard_len: usize,
    ) -> Result<Vec<(usize, Bytes)>, ErasureError> {
        if !shard_len.is_multiple_of(2) {
            return Err(ErasureError::Codec(format!("odd shard size {shard_len}")));
        }
        // The kernel below reads `shard_len` bytes of every source.
        check_shard_sizes(shards, shard_len)?;
        let sources: Vec<&[u8]> =
            self.sources.iter().filter_map(|&i| shards.get(i)?.as_ref().map(|s| s.as_ref())).collect();
        if sources.len() != self.sources.len() {
            return Err(ErasureError::NotEnoughShards { have: sources.len(), need: self.sources.len() });
        }
        let chunks = shard_len / CHUNK_BYTES;
        let k = sources.len();
        let mut outs: Vec<BytesMut> = self.lost.iter().map(|_| BytesMut::with_capacity(shard_len)).collect();
        {
            let mut dsts: Vec<&mut [MaybeUninit<u8>]> =
                outs.iter_mut().map(|out| &mut out.spare_capacity_mut()[..shard_len]).collect();
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `fast()` held for the caller, so the CPU has AVX2; there are
            // `k` tables per lost shard; every source holds `shard_len` bytes, and
            // so does every destination.
            unsafe {
                combine_chunks_avx2(&self.tables, &sources, &mut dsts, chunks)
            };
            let base = chunks * CHUNK_BYTES;
            let half = (shard_len - base) / 2;
            for (tables, dst) in self.tables.chunks(k).zip(dsts.iter_mut()) {
                for j in 0..half {
                    let (lo, hi) = tables.iter().zip(&sources).fold((0, 0), |(l, h), (t, s)| {
                        let (cl, ch) = t.apply(s[base + j], s[base + half + j]);
                        (l ^ cl, h ^ ch)
                    });
                    dst[base + j].write(lo);
                    dst[base + half + j].write(hi);
                }
            }
        }
        let mut restored = Vec::with_capacity(self.lost.len());
        for (out, &index) in outs.iter_mut().zip(&self.lost) {
            // SAFETY: the chunks wrote bytes `0..chunks * 64` of every lost shard,
            // the loop above the even-length tail after them: all `shard_len`
            // bytes are initialized.
            unsafe { out.set_len(shard_len) };
            restored.push((index, std::mem::take(out).freeze()));
        }
        Ok(restored)
    }
}

/// Writes `chunks` whole chunks of every lost shard: the XOR over sources of each
/// source's contribution, looked up nibble by nibble. Chunk by chunk, so that a
/// source's chunk is read from memory once for all lost shards.
///
/// # Safety
/// The CPU has AVX2, `tables` holds `sources.len()` tables per destination, and
/// every source and destination holds at least `chunks * 64` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn combine_chunks_avx2(
    tables: &[NibbleTables],
    sources: &[&[u8]],
    dsts: &mut [&mut [MaybeUninit<u8>]],
    chunks: usize,
) {
    use std::arch::x86_64::*;
    let low_nibble = _mm256_set1_epi8(0x0f);
    for c in 0..chunks {
        for (tables, dst) in tables.chunks(sources.len()).zip(dsts.iter_mut()) {
            let mut acc_lo = _mm256_setzero_si256();
            let mut acc_hi = _mm256_setzero_si256();
            for (t, source) in tables.iter().zip(sources) {
                // SAFETY: bytes `c * 64 .. c * 64 + 64` lie inside the source; the
                // tables are 32 bytes each; unaligned loads.
                unsafe {
                    let at = source.as_ptr().add(c * CHUNK_BYTES);
                    let lo = _mm256_loadu_si256(at.cast());
                    let hi = _mm256_loadu_si256(at.add(CHUNK_SYMBOLS).cast());
                    let nibbles = [
                        _mm256_and_si256(lo, low_nibble),
                        _mm256_and_si256(_mm256_srli_epi16(lo, 4), low_nibble),
                        _mm256_and_si256(hi, low_nibble),
                        _mm256_and_si256(_mm256_srli_epi16(hi, 4), low_nibble),
                    ];
                    for (n, nibble) in nibbles.into_iter().enumerate() {
                        let table_lo = _mm256_loadu_si256(t.lo[n].as_ptr().cast());
                        let table_hi = _mm256_loadu_si256(t.hi[n].as_ptr().cast());
                        acc_lo = _mm256_xor_si256(acc_lo, _mm256_shuffle_epi8(table_lo, nibble));
                        acc_hi = _mm256_xor_si256(acc_hi, _mm256_shuffle_epi8(table_hi, nibble));
                    }
                }
            }
            // SAFETY: bytes `c * 64 .. c * 64 + 64` lie inside `dst`; unaligned
            // stores.
            unsafe {
                let at = dst.as_mut_ptr().cast::<u8>().add(c * CHUNK_BYTES);
                _mm256_storeu_si256(at.cast(), acc_lo);
                _mm256_storeu_si256(at.add(CHUNK_SYMBOLS).cast(), acc_hi);
            }
        }
    }
}
