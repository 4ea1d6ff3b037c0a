//! MD5's compression function (RFC 1321), for one body or for several at once.
//!
//! One MD5 is a chain of 64 dependent steps per 64-byte block: the CPU waits on
//! each step's result and leaves most of its ALUs idle, which is why a single
//! stream runs at about 5 cycles per byte however the code is written. Bodies
//! that are hashed at the same time have independent chains, so interleaving
//! them ("lanes") fills the idle ALUs: two lanes cost little more than one, and
//! sixteen fit in the 512-bit registers of a CPU with AVX-512. This file owns
//! only the arithmetic; which bodies share a call is `shared.rs`'s business.

/// Bytes in one MD5 block.
pub const BLOCK_BYTES: usize = 64;

/// The most bodies one call hashes together: sixteen 32-bit lanes fill a
/// 512-bit register.
pub const MAX_LANES: usize = 16;

/// The state before any block.
pub const INITIAL: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The additive constants: `floor(|sin(i + 1)| * 2^32)`.
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, //
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, //
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, //
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, //
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, //
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, //
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1, //
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391, //
];

/// Left rotations, by round and step within the round.
const S: [[u32; 4]; 4] = [[7, 12, 17, 22], [5, 9, 14, 20], [4, 11, 16, 23], [6, 10, 15, 21]];

/// Hashes `data[l]` into `state[l]` for every lane `l`. Every slice has the same
/// length, a multiple of [`BLOCK_BYTES`].
#[inline(always)]
fn lanes<const N: usize>(state: &mut [[u32; 4]; N], data: [&[u8]; N]) {
    let blocks = data[0].len() / BLOCK_BYTES;
    for block in 0..blocks {
        let at = block * BLOCK_BYTES;
        // Words are loaded lane by lane so that each step's message word for
        // every lane sits side by side, as a vector wants it.
        let mut m = [[0u32; N]; 16];
        for (l, bytes) in data.iter().enumerate() {
            let words = bytes[at..at + BLOCK_BYTES].chunks_exact(4);
            for (j, word) in words.enumerate() {
                m[j][l] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
        }
        let mut a: [u32; N] = std::array::from_fn(|l| state[l][0]);
        let mut b: [u32; N] = std::array::from_fn(|l| state[l][1]);
        let mut c: [u32; N] = std::array::from_fn(|l| state[l][2]);
        let mut d: [u32; N] = std::array::from_fn(|l| state[l][3]);
        // One step for every lane. The round's function is written so that the
        // newest value (`x`) enters last: what depends only on older values is
        // computed off the chain that bounds the speed.
        macro_rules! step {
            ($round:expr, $i:expr, $word:expr) => {{
                let k = K[$i];
                let s = S[$round][$i % 4];
                for l in 0..N {
                    let (x, y, z) = (b[l], c[l], d[l]);
                    let early = a[l].wrapping_add(k).wrapping_add(m[$word][l]);
                    let sum = match $round {
                        0 => early.wrapping_add(z ^ (x & (y ^ z))),
                        // The two terms share no set bit, so adding them is
                        // OR, and the half without `x` joins `early` first.
                        1 => early.wrapping_add(y & !z).wrapping_add(x & z),
                        2 => early.wrapping_add(x ^ (y ^ z)),
                        _ => early.wrapping_add(y ^ (x | !z)),
                    };
                    let next = sum.rotate_left(s).wrapping_add(x);
                    a[l] = z;
                    d[l] = y;
                    c[l] = x;
                    b[l] = next;
                }
            }};
        }
        macro_rules! round {
            ($round:expr, $first:expr, $stride:expr) => {{
                // Step i of a round reads word (first + stride * i) mod 16.
                step!($round, 16 * $round, ($first) % 16);
                step!($round, 16 * $round + 1, ($first + $stride) % 16);
                step!($round, 16 * $round + 2, ($first + 2 * $stride) % 16);
                step!($round, 16 * $round + 3, ($first + 3 * $stride) % 16);
                step!($round, 16 * $round + 4, ($first + 4 * $stride) % 16);
                step!($round, 16 * $round + 5, ($first + 5 * $stride) % 16);
                step!($round, 16 * $round + 6, ($first + 6 * $stride) % 16);
                step!($round, 16 * $round + 7, ($first + 7 * $stride) % 16);
                step!($round, 16 * $round + 8, ($first + 8 * $stride) % 16);
                step!($round, 16 * $round + 9, ($first + 9 * $stride) % 16);
                step!($round, 16 * $round + 10, ($first + 10 * $stride) % 16);
                step!($round, 16 * $round + 11, ($first + 11 * $stride) % 16);
                step!($round, 16 * $round + 12, ($first + 12 * $stride) % 16);
                step!($round, 16 * $round + 13, ($first + 13 * $stride) % 16);
                step!($round, 16 * $round + 14, ($first + 14 * $stride) % 16);
                step!($round, 16 * $round + 15, ($first + 15 * $stride) % 16);
            }};
        }
        round!(0, 0, 1);
        round!(1, 1, 5);
        round!(2, 5, 3);
        round!(3, 0, 7);
        for l in 0..N {
            state[l][0] = state[l][0].wrapping_add(a[l]);
            state[l][1] = state[l][1].wrapping_add(b[l]);
            state[l][2] = state[l][2].wrapping_add(c[l]);
            state[l][3] = state[l][3].wrapping_add(d[l]);
        }
    }
}

/// Sixteen lanes compiled for AVX-512, where each of the four state words of
/// all lanes is one register and the rotation one instruction.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn lanes16_avx512(state: &mut [[u32; 4]; 16], data: [&[u8]; 16]) {
    lanes(state, data)
}

/// Whether sixteen lanes run as vectors here (a cached load after the first
/// call); without AVX-512 they would be no faster than four.
fn wide_lanes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Hashes `data[l]` into `state[l]` for each lane, all in one pass. `data`'s
/// slices must all be the same length, a multiple of [`BLOCK_BYTES`]; there are
/// 1 to [`MAX_LANES`] of them. `allow_wide` lets five or more bodies share
/// sixteen AVX-512 lanes when the CPU has them; otherwise they go four at a
/// time.
///
/// The width is the one that costs least per byte, counting the lanes that run
/// empty (filled with a copy of the first body, whose result is thrown away).
/// Measured on a Sapphire Rapids core (`cargo bench --bench erasure --
/// md5-lanes`, MiB/s over all lanes): 1 lane 500, 2 lanes 919, 4 lanes 1232,
/// 16 lanes with AVX-512 4090.
pub fn compress(state: &mut [[u32; 4]], data: &[&[u8]], allow_wide: bool) {
    let n = data.len();
    assert!(n == state.len() && (1..=MAX_LANES).contains(&n), "{n} lanes");
    let len = data[0].len();
    assert!(len.is_multiple_of(BLOCK_BYTES) && data.iter().all(|d| d.len() == len), "unequal or partial blocks");
    match n {
        1 => run::<1>(state, data, lanes::<1>),
        2 => run::<2>(state, data, lanes::<2>),
        3 | 4 => run::<4>(state, data, lanes::<4>),
        #[cfg(target_arch = "x86_64")]
        _ if allow_wide && wide_lanes() => {
            // SAFETY: `wide_lanes()` just checked that the CPU has AVX-512F and VL.
            run::<16>(state, data, |s, d| unsafe { lanes16_avx512(s, d) })
        }
        _ => {
            for (s, d) in state.chunks_mut(4).zip(data.chunks(4)) {
                compress(s, d, false);
            }
        }
    }
}

/// Pads `state` and `data` out to `N` lanes, runs `f`, and copies the real
/// lanes' states back.
#[inline(always)]
fn run<const N: usize>(state: &mut [[u32; 4]], data: &[&[u8]], f: impl FnOnce(&mut [[u32; 4]; N], [&[u8]; N])) {
    let mut lanes_state = [INITIAL; N];
    lanes_state[..state.len()].copy_from_slice(state);
    let lanes_data: [&[u8]; N] = std::array::from_fn(|l| data.get(l).copied().unwrap_or(data[0]));
    f(&mut lanes_state, lanes_data);
    state.copy_from_slice(&lanes_state[..state.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(97) ^ (i >> 7)) as u8).collect()
    }

    /// The state after whole blocks, through the reference implementation's
    /// digest of a body padded by hand: MD5's padding of an exact multiple of
    /// 64 bytes is one more block, so compressing that block here as well must
    /// give the reference digest.
    fn digest_via(state: [u32; 4], len: usize, f: impl Fn(&mut [u32; 4], &[u8])) -> [u8; 16] {
        let mut pad = [0u8; 64];
        pad[0] = 0x80;
        pad[56..].copy_from_slice(&((len as u64) * 8).to_le_bytes());
        let mut s = state;
        f(&mut s, &pad);
        let mut out = [0u8; 16];
        for (i, w) in s.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn every_width_gives_the_reference_digest_in_every_lane() {
        use md5::Digest;
        let len = 64 * 37;
        for n in 1..=MAX_LANES {
            for wide in [false, true] {
                let bodies: Vec<Vec<u8>> = (0..n).map(|l| body(l, len)).collect();
                let data: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
                let mut state = vec![INITIAL; n];
                compress(&mut state, &data, wide);
                for l in 0..n {
                    let got = digest_via(state[l], len, |s, b| compress(std::slice::from_mut(s), &[b], false));
                    let want: [u8; 16] = md5::Md5::digest(&bodies[l]).into();
                    assert_eq!(got, want, "{n} lanes (wide {wide}), lane {l}");
                }
            }
        }
    }

    #[test]
    fn an_empty_pass_leaves_the_state_alone() {
        let mut state = [[1, 2, 3, 4], [5, 6, 7, 8]];
        compress(&mut state, &[&[], &[]], true);
        assert_eq!(state, [[1, 2, 3, 4], [5, 6, 7, 8]]);
    }
}
