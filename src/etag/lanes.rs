//! MD5's compression function (RFC 1321), for one body or for several at once.
//!
//! One MD5 is a chain of 64 dependent steps per 64-byte block: the CPU waits on
//! each step's result and leaves most of its ALUs idle, so a single stream runs
//! at the speed of that chain, about 5 cycles per byte in scalar code. Bodies
//! that are hashed at the same time have independent chains, so interleaving
//! them ("lanes") fills the idle ALUs: two scalar lanes cost little more than
//! one. With AVX-512, four lanes share 128-bit registers, where each step's
//! chain is shorter (one instruction for the round's function and one for the
//! rotation), and sixteen fit in 512-bit ones. With AVX2 alone, whose chain is
//! longer than scalar code's, eight lanes share 256-bit registers once enough
//! bodies fill them. This file owns only the arithmetic; which bodies share a
//! call is `shared.rs`'s business.

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

/// The 64 steps of one block on vectors of lanes, for the vector kernels:
/// `$add`, `$set1`, `$ternlog` and `$rol` are the 32-bit lane intrinsics of
/// one register width (for AVX2, functions built of several), `m` the block's words (word j of every lane in `m[j]`),
/// and `a`..`d` the state, updated in place: the steps, then the state on
/// entry added back (the compression function whole). Each step is `a = b + ((a +
/// f(b, c, d) + K[i] + m[w]) <<< s)`, the round's function given as its
/// `vpternlogd` truth table over (b, c, d): 0xCA = (b & c) | (!b & d), 0xE4 =
/// (b & d) | (c & !d), 0x96 = b ^ c ^ d, 0x39 = c ^ (b | !d). The chain of a
/// step is four one-cycle instructions (function, add, rotate, add), where
/// the scalar code's is five to six.
#[cfg(target_arch = "x86_64")]
macro_rules! vector_rounds {
    ($add:ident, $set1:ident, $ternlog:ident, $rol:ident, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {{
        let (a0, b0, c0, d0) = ($a, $b, $c, $d);
        macro_rules! step {
            ($f:literal, $sa:ident, $sb:ident, $sc:ident, $sd:ident, $i:expr, $w:expr, $s:literal) => {{
                let early = $add($sa, $add($m[$w], $set1(K[$i] as i32)));
                let f = $ternlog::<$f>($sb, $sc, $sd);
                $sa = $add($rol::<$s>($add(early, f)), $sb);
            }};
        }
        // Four steps from step `$i`, reading words `$w`, rotating by `$s`.
        macro_rules! four {
            ($f:literal, $i:expr, [$w0:expr, $w1:expr, $w2:expr, $w3:expr], [$s0:literal, $s1:literal, $s2:literal, $s3:literal]) => {{
                step!($f, $a, $b, $c, $d, $i, $w0, $s0);
                step!($f, $d, $a, $b, $c, $i + 1, $w1, $s1);
                step!($f, $c, $d, $a, $b, $i + 2, $w2, $s2);
                step!($f, $b, $c, $d, $a, $i + 3, $w3, $s3);
            }};
        }
        // Rounds 0-3 read words i, 1 + 5i, 5 + 3i and 7i (mod 16) at step i.
        four!(0xCA, 0, [0, 1, 2, 3], [7, 12, 17, 22]);
        four!(0xCA, 4, [4, 5, 6, 7], [7, 12, 17, 22]);
        four!(0xCA, 8, [8, 9, 10, 11], [7, 12, 17, 22]);
        four!(0xCA, 12, [12, 13, 14, 15], [7, 12, 17, 22]);
        four!(0xE4, 16, [1, 6, 11, 0], [5, 9, 14, 20]);
        four!(0xE4, 20, [5, 10, 15, 4], [5, 9, 14, 20]);
        four!(0xE4, 24, [9, 14, 3, 8], [5, 9, 14, 20]);
        four!(0xE4, 28, [13, 2, 7, 12], [5, 9, 14, 20]);
        four!(0x96, 32, [5, 8, 11, 14], [4, 11, 16, 23]);
        four!(0x96, 36, [1, 4, 7, 10], [4, 11, 16, 23]);
        four!(0x96, 40, [13, 0, 3, 6], [4, 11, 16, 23]);
        four!(0x96, 44, [9, 12, 15, 2], [4, 11, 16, 23]);
        four!(0x39, 48, [0, 7, 14, 5], [6, 10, 15, 21]);
        four!(0x39, 52, [12, 3, 10, 1], [6, 10, 15, 21]);
        four!(0x39, 56, [8, 15, 6, 13], [6, 10, 15, 21]);
        four!(0x39, 60, [4, 11, 2, 9], [6, 10, 15, 21]);
        $a = $add($a, a0);
        $b = $add($b, b0);
        $c = $add($c, c0);
        $d = $add($d, d0);
    }};
}

/// Sixteen lanes in 512-bit registers, written out by hand like
/// [`lanes4_avx512vl`]: each lane's block is one load, and a 16 x 16
/// transpose of 32-bit words (64 shuffles per block) puts word j of every lane
/// in one register. 1.9x LLVM's vectorisation of the generic code (7.15
/// against 3.70 GiB/s over all lanes, `md5-lanes`), which built those
/// registers a word at a time.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn lanes16_avx512(state: &mut [[u32; 4]; 16], data: [&[u8]; 16]) {
    use std::arch::x86_64::*;
    let column = |w: usize| {
        let words: [u32; 16] = std::array::from_fn(|l| state[l][w]);
        // SAFETY: `words` is 64 bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
    };
    let (mut a, mut b, mut c, mut d) = (column(0), column(1), column(2), column(3));
    let blocks = data[0].len() / BLOCK_BYTES;
    for block in 0..blocks {
        let at = block * BLOCK_BYTES;
        let rows: [__m512i; 16] = std::array::from_fn(|l| {
            let bytes = &data[l][at..at + BLOCK_BYTES];
            // SAFETY: `bytes` is 64 bytes long; the load is unaligned.
            unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
        });
        // Pairs of rows interleaved by words, then by pairs of words: 128-bit
        // chunk k of `quads[4i + c]` holds word 4k + c of rows 4i..4i + 3.
        let pairs: [__m512i; 16] = std::array::from_fn(|p| {
            let (x, y) = (rows[p & !1], rows[p | 1]);
            if p % 2 == 0 { _mm512_unpacklo_epi32(x, y) } else { _mm512_unpackhi_epi32(x, y) }
        });
        let quads: [__m512i; 16] = std::array::from_fn(|q| {
            let (i, c) = (q / 4, q % 4);
            let (x, y) = (pairs[4 * i + c / 2], pairs[4 * i + c / 2 + 2]);
            if c % 2 == 0 { _mm512_unpacklo_epi64(x, y) } else { _mm512_unpackhi_epi64(x, y) }
        });
        // Then the 4 x 4 transpose of those chunks: word 4k + c of every row.
        let mut m = [_mm512_setzero_si512(); 16];
        for c in 0..4 {
            let low01 = _mm512_shuffle_i32x4::<0x44>(quads[c], quads[4 + c]);
            let high01 = _mm512_shuffle_i32x4::<0xEE>(quads[c], quads[4 + c]);
            let low23 = _mm512_shuffle_i32x4::<0x44>(quads[8 + c], quads[12 + c]);
            let high23 = _mm512_shuffle_i32x4::<0xEE>(quads[8 + c], quads[12 + c]);
            m[c] = _mm512_shuffle_i32x4::<0x88>(low01, low23);
            m[4 + c] = _mm512_shuffle_i32x4::<0xDD>(low01, low23);
            m[8 + c] = _mm512_shuffle_i32x4::<0x88>(high01, high23);
            m[12 + c] = _mm512_shuffle_i32x4::<0xDD>(high01, high23);
        }
        vector_rounds!(_mm512_add_epi32, _mm512_set1_epi32, _mm512_ternarylogic_epi32, _mm512_rol_epi32, m, a, b, c, d);
    }
    let mut words = [[0u32; 16]; 4];
    for (column, v) in words.iter_mut().zip([a, b, c, d]) {
        // SAFETY: `column` is 64 bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(column.as_mut_ptr().cast(), v) };
    }
    for (l, lane) in state.iter_mut().enumerate() {
        *lane = [words[0][l], words[1][l], words[2][l], words[3][l]];
    }
}

/// MD5's round functions on eight 32-bit lanes, for [`lanes8_avx2`], named by
/// the `vpternlogd` truth tables [`vector_rounds`] passes (AVX2 has no such
/// instruction). Each is written so that `b`, the value the previous step
/// just made, enters last: two instructions on the chain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn round_fn_avx2<const F: i32>(
    b: std::arch::x86_64::__m256i,
    c: std::arch::x86_64::__m256i,
    d: std::arch::x86_64::__m256i,
) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    match F {
        // (b & c) | (!b & d) = d ^ (b & (c ^ d))
        0xCA => _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d))),
        // (b & d) | (c & !d)
        0xE4 => _mm256_or_si256(_mm256_and_si256(b, d), _mm256_andnot_si256(d, c)),
        0x96 => _mm256_xor_si256(b, _mm256_xor_si256(c, d)),
        // c ^ (b | !d)
        0x39 => _mm256_xor_si256(c, _mm256_or_si256(b, _mm256_xor_si256(d, _mm256_set1_epi32(-1)))),
        _ => unreachable!("MD5 has four round functions"),
    }
}

/// Left rotation of eight 32-bit lanes by `S` (AVX2 has no rotate).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rol_avx2<const S: i32>(x: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_or_si256(_mm256_slli_epi32::<S>(x), _mm256_srl_epi32(x, _mm_cvtsi32_si128(32 - S)))
}

/// Eight lanes in 256-bit registers with AVX2, for CPUs without AVX-512 (see
/// [`vector_rounds`]): each lane's block is two loads, and two 8 x 8
/// transposes of 32-bit words (24 shuffles each) put word j of every lane in
/// one register.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes8_avx2(state: &mut [[u32; 4]; 8], data: [&[u8]; 8]) {
    use std::arch::x86_64::*;
    let column = |w: usize| {
        let words: [u32; 8] = std::array::from_fn(|l| state[l][w]);
        // SAFETY: `words` is 32 bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(words.as_ptr().cast()) }
    };
    let (mut a, mut b, mut c, mut d) = (column(0), column(1), column(2), column(3));
    let blocks = data[0].len() / BLOCK_BYTES;
    for block in 0..blocks {
        let at = block * BLOCK_BYTES;
        let mut m = [_mm256_setzero_si256(); 16];
        for half in 0..2 {
            // Words 8 * half .. 8 * half + 7 of each lane, one row per lane.
            let rows: [__m256i; 8] = std::array::from_fn(|l| {
                let bytes = &data[l][at + 32 * half..at + 32 * half + 32];
                // SAFETY: `bytes` is 32 bytes long; the load is unaligned.
                unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
            });
            // Rows interleaved by words, then by pairs of words: 128-bit half
            // h of `quads[4 * g + c]` holds word 4h + c of rows 4g..4g + 3.
            let pairs: [__m256i; 8] = std::array::from_fn(|p| {
                let (x, y) = (rows[p & !1], rows[p | 1]);
                if p % 2 == 0 { _mm256_unpacklo_epi32(x, y) } else { _mm256_unpackhi_epi32(x, y) }
            });
            let quads: [__m256i; 8] = std::array::from_fn(|q| {
                let (g, c) = (q / 4, q % 4);
                let (x, y) = (pairs[4 * g + c / 2], pairs[4 * g + c / 2 + 2]);
                if c % 2 == 0 { _mm256_unpacklo_epi64(x, y) } else { _mm256_unpackhi_epi64(x, y) }
            });
            // Then the halves of rows 0-3 and 4-7 joined: word 4h + c of every row.
            for c in 0..4 {
                m[8 * half + c] = _mm256_permute2x128_si256::<0x20>(quads[c], quads[4 + c]);
                m[8 * half + 4 + c] = _mm256_permute2x128_si256::<0x31>(quads[c], quads[4 + c]);
            }
        }
        vector_rounds!(_mm256_add_epi32, _mm256_set1_epi32, round_fn_avx2, rol_avx2, m, a, b, c, d);
    }
    let mut words = [[0u32; 8]; 4];
    for (column, v) in words.iter_mut().zip([a, b, c, d]) {
        // SAFETY: `column` is 32 bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(column.as_mut_ptr().cast(), v) };
    }
    for (l, lane) in state.iter_mut().enumerate() {
        *lane = [words[0][l], words[1][l], words[2][l], words[3][l]];
    }
}

/// Four lanes in 128-bit registers with AVX-512VL, written out by hand (see
/// [`vector_rounds`]). Each lane runs about 10% faster than a scalar MD5
/// alone, and four lanes 1.8x as fast as four scalar ones. 128-bit AVX-512
/// instructions do not lower the core's clock, as 512-bit ones may on older
/// CPUs.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn lanes4_avx512vl(state: &mut [[u32; 4]; 4], data: [&[u8]; 4]) {
    use std::arch::x86_64::*;
    // Word `w` of every lane, side by side.
    let column =
        |w: usize| _mm_setr_epi32(state[0][w] as i32, state[1][w] as i32, state[2][w] as i32, state[3][w] as i32);
    let (mut a, mut b, mut c, mut d) = (column(0), column(1), column(2), column(3));
    let blocks = data[0].len() / BLOCK_BYTES;
    for block in 0..blocks {
        let at = block * BLOCK_BYTES;
        // The block's sixteen words, transposed four at a time so that
        // `m[j]` holds word j of every lane.
        let mut m = [_mm_setzero_si128(); 16];
        for q in 0..4 {
            let row = |l: usize| {
                let bytes = &data[l][at + 16 * q..at + 16 * q + 16];
                // SAFETY: `bytes` is 16 bytes long; the load is unaligned.
                unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
            };
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            let (lo01, lo23) = (_mm_unpacklo_epi32(r0, r1), _mm_unpacklo_epi32(r2, r3));
            let (hi01, hi23) = (_mm_unpackhi_epi32(r0, r1), _mm_unpackhi_epi32(r2, r3));
            m[4 * q] = _mm_unpacklo_epi64(lo01, lo23);
            m[4 * q + 1] = _mm_unpackhi_epi64(lo01, lo23);
            m[4 * q + 2] = _mm_unpacklo_epi64(hi01, hi23);
            m[4 * q + 3] = _mm_unpackhi_epi64(hi01, hi23);
        }
        vector_rounds!(_mm_add_epi32, _mm_set1_epi32, _mm_ternarylogic_epi32, _mm_rol_epi32, m, a, b, c, d);
    }
    let mut words = [[0u32; 4]; 4];
    for (column, v) in words.iter_mut().zip([a, b, c, d]) {
        // SAFETY: `column` is 16 bytes; the store is unaligned.
        unsafe { _mm_storeu_si128(column.as_mut_ptr().cast(), v) };
    }
    for (l, lane) in state.iter_mut().enumerate() {
        *lane = [words[0][l], words[1][l], words[2][l], words[3][l]];
    }
}

/// Whether the AVX-512 lanes run here (a cached load after the first call).
fn avx512_lanes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Bodies from which sixteen 512-bit lanes beat 128-bit lanes four at a time:
/// one 16-lane pass costs as much as 1.2 four-lane ones (7.15 against 2.18
/// GiB/s over all lanes, `md5-lanes`), so five bodies, two four-lane passes,
/// are the first that gain.
const WIDE_MIN_BODIES: usize = 5;

/// Hashes `data[l]` into `state[l]` for each lane, all in one pass. `data`'s
/// slices must all be the same length, a multiple of [`BLOCK_BYTES`]; there are
/// 1 to [`MAX_LANES`] of them.
///
/// With AVX-512VL, up to four bodies go into 128-bit lanes (even one body: it
/// runs faster there than in scalar code), [`WIDE_MIN_BODIES`] or more into
/// sixteen 512-bit lanes; without it, with AVX2, [`AVX2_MIN_BODIES`] or more
/// into eight 256-bit lanes; otherwise into scalar lanes, the width that costs
/// least per byte. Lanes that run empty are filled with a copy
/// of the first body, whose result is thrown away. Measured on a Sapphire
/// Rapids core (`cargo bench --bench erasure -- md5-lanes`, MiB/s over all
/// lanes): scalar 1 lane 500, 2 lanes 919, 4 lanes 1232; 128-bit lanes 556 for
/// one body, 1107 for two, 2229 for four; sixteen 512-bit lanes 7322.
pub fn compress(state: &mut [[u32; 4]], data: &[&[u8]]) {
    let n = data.len();
    assert!(n == state.len() && (1..=MAX_LANES).contains(&n), "{n} lanes");
    let len = data[0].len();
    assert!(len.is_multiple_of(BLOCK_BYTES) && data.iter().all(|d| d.len() == len), "unequal or partial blocks");
    #[cfg(target_arch = "x86_64")]
    if avx512_lanes() {
        // SAFETY (both): `avx512_lanes()` just checked that the CPU has
        // AVX-512F and VL.
        if n >= WIDE_MIN_BODIES {
            run::<16>(state, data, |s, d| unsafe { lanes16_avx512(s, d) });
        } else {
            run::<4>(state, data, |s, d| unsafe { lanes4_avx512vl(s, d) });
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        compress_avx2(state, data, AVX2_MIN_BODIES);
        return;
    }
    compress_scalar(state, data);
}

/// Bodies from which eight 256-bit AVX2 lanes beat scalar lanes. Without
/// AVX-512 a step's chain is longer in vectors than in scalar code (no
/// one-instruction rotate or round function), so a lane alone runs slower
/// there. Measured on a Zen 3 core (`md5-lanes`, MiB/s over all lanes), for
/// 1, 2, 3, 4 and 8 bodies: scalar lanes 536, 1010, 974, 1277 and 904 (two
/// passes of four); AVX2 lanes 446, 864, 1282, 1688 and 3318.
const AVX2_MIN_BODIES: usize = 3;

/// [`compress`] with AVX2 but not AVX-512: eight bodies at a time in 256-bit
/// lanes, a group of fewer than `min_bodies` in scalar lanes.
#[cfg(target_arch = "x86_64")]
fn compress_avx2(state: &mut [[u32; 4]], data: &[&[u8]], min_bodies: usize) {
    for (s, d) in state.chunks_mut(8).zip(data.chunks(8)) {
        if d.len() >= min_bodies {
            // SAFETY: the caller checked that the CPU has AVX2.
            run::<8>(s, d, |s, d| unsafe { lanes8_avx2(s, d) });
        } else {
            compress_scalar(s, d);
        }
    }
}

/// [`compress`] in scalar code, for CPUs without AVX-512VL.
fn compress_scalar(state: &mut [[u32; 4]], data: &[&[u8]]) {
    match data.len() {
        1 => run::<1>(state, data, lanes::<1>),
        2 => run::<2>(state, data, lanes::<2>),
        3 | 4 => run::<4>(state, data, lanes::<4>),
        _ => {
            for (s, d) in state.chunks_mut(4).zip(data.chunks(4)) {
                compress_scalar(s, d);
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
            let bodies: Vec<Vec<u8>> = (0..n).map(|l| body(l, len)).collect();
            let data: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            let mut state = vec![INITIAL; n];
            compress(&mut state, &data);
            for l in 0..n {
                let got = digest_via(state[l], len, |s, b| compress(std::slice::from_mut(s), &[b]));
                let want: [u8; 16] = md5::Md5::digest(&bodies[l]).into();
                assert_eq!(got, want, "{n} lanes, lane {l}");
            }
        }
    }

    /// The scalar lanes, which a CPU with AVX-512VL never picks, checked on
    /// their own.
    #[test]
    fn the_scalar_lanes_give_the_reference_digest_too() {
        use md5::Digest;
        let len = 64 * 37;
        for n in 1..=MAX_LANES {
            let bodies: Vec<Vec<u8>> = (0..n).map(|l| body(l + 100, len)).collect();
            let data: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            let mut state = vec![INITIAL; n];
            compress_scalar(&mut state, &data);
            for l in 0..n {
                let got = digest_via(state[l], len, |s, b| compress_scalar(std::slice::from_mut(s), &[b]));
                let want: [u8; 16] = md5::Md5::digest(&bodies[l]).into();
                assert_eq!(got, want, "{n} scalar lanes, lane {l}");
            }
        }
    }

    /// The AVX2 lanes, which a CPU with AVX-512VL never picks, checked on
    /// their own, every group of bodies in them.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_lanes_give_the_reference_digest_too() {
        use md5::Digest;
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let len = 64 * 37;
        for n in 1..=MAX_LANES {
            let bodies: Vec<Vec<u8>> = (0..n).map(|l| body(l + 200, len)).collect();
            let data: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
            let mut state = vec![INITIAL; n];
            compress_avx2(&mut state, &data, 1);
            for l in 0..n {
                let got = digest_via(state[l], len, |s, b| compress_avx2(std::slice::from_mut(s), &[b], 1));
                let want: [u8; 16] = md5::Md5::digest(&bodies[l]).into();
                assert_eq!(got, want, "{n} AVX2 lanes, lane {l}");
            }
        }
    }

    #[test]
    fn an_empty_pass_leaves_the_state_alone() {
        let mut state = [[1, 2, 3, 4], [5, 6, 7, 8]];
        compress(&mut state, &[&[], &[]]);
        assert_eq!(state, [[1, 2, 3, 4], [5, 6, 7, 8]]);
    }
}
