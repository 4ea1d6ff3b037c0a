//! The ETag's MD5 of an object body: a streaming digest whose whole blocks can
//! be hashed in lanes together with the other bodies its core is receiving.
//!
//! MD5 is most of a large PUT's CPU (about 60%). One body cannot be hashed
//! faster than its chain of dependent steps allows, but bodies arriving at once
//! can share the CPU's idle ALUs: `lanes.rs` has the arithmetic, `shared.rs`
//! gathers a core's concurrent bodies into one pass. `Md5` here is the state
//! one body carries between its blocks.

mod lanes;
mod shared;

pub use lanes::{BLOCK_BYTES, MAX_LANES, compress};
pub use shared::{Hashing, Receiving, begin, forget_waiting, hashed_bytes, receiving};

/// A streaming MD5: the chaining state, the bytes of a block not yet complete,
/// and the length so far.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    partial: [u8; BLOCK_BYTES],
    partial_len: usize,
    total_bytes: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Md5 { state: lanes::INITIAL, partial: [0; BLOCK_BYTES], partial_len: 0, total_bytes: 0 }
    }
}

impl Md5 {
    pub fn new() -> Md5 {
        Md5::default()
    }

    /// The digest of `data` in one call.
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut md5 = Md5::new();
        md5.update(data);
        md5.finalize()
    }

    /// Hashes `data` on this thread, alone.
    pub fn update(&mut self, data: &[u8]) {
        let rest = self.complete_partial(data);
        let whole = rest.len() / BLOCK_BYTES * BLOCK_BYTES;
        self.compress_alone(&rest[..whole]);
        self.keep_partial(&rest[whole..]);
    }

    /// Tops up the incomplete block from `data` and hashes it once full;
    /// returns what is left of `data`.
    fn complete_partial<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.partial_len == 0 {
            return data;
        }
        let take = (BLOCK_BYTES - self.partial_len).min(data.len());
        self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
        self.partial_len += take;
        self.total_bytes += take as u64;
        if self.partial_len == BLOCK_BYTES {
            let block = self.partial;
            compress(std::slice::from_mut(&mut self.state), &[&block]);
            self.partial_len = 0;
        }
        &data[take..]
    }

    /// Hashes whole blocks alone.
    fn compress_alone(&mut self, whole: &[u8]) {
        compress(std::slice::from_mut(&mut self.state), &[whole]);
        self.total_bytes += whole.len() as u64;
    }

    /// Keeps the bytes of a block not yet complete (fewer than a block, and
    /// only after `complete_partial` emptied the buffer).
    fn keep_partial(&mut self, tail: &[u8]) {
        debug_assert!(tail.is_empty() || self.partial_len == 0);
        self.partial[self.partial_len..self.partial_len + tail.len()].copy_from_slice(tail);
        self.partial_len += tail.len();
        self.total_bytes += tail.len() as u64;
    }

    /// The 16-byte digest: pads with 0x80, zeros and the bit length (RFC 1321).
    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.total_bytes.wrapping_mul(8);
        let mut pad = [0u8; 2 * BLOCK_BYTES];
        pad[0] = 0x80;
        // Padding ends the last block 8 bytes short of its edge, for the length.
        let zeros = (BLOCK_BYTES + 56 - (self.partial_len + 1) % BLOCK_BYTES) % BLOCK_BYTES;
        let end = 1 + zeros;
        pad[end..end + 8].copy_from_slice(&bits.to_le_bytes());
        self.update(&pad[..end + 8]);
        debug_assert_eq!(self.partial_len, 0);
        let mut out = [0u8; 16];
        for (i, word) in self.state.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(131) ^ (i >> 9)) as u8).collect()
    }

    #[test]
    fn digests_match_the_reference_at_every_length_around_the_block_edges() {
        for len in (0..300).chain([1 << 20, (1 << 20) + 13, (1 << 20) - 1]) {
            let data = body(len);
            let want: [u8; 16] = md5::Md5::digest(&data).into();
            assert_eq!(Md5::digest(&data), want, "length {len}");
        }
        // The RFC's own examples.
        assert_eq!(crate::hex::encode(&Md5::digest(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(crate::hex::encode(&Md5::digest(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn updates_in_any_pieces_give_the_same_digest() {
        let data = body(10_000);
        let want: [u8; 16] = md5::Md5::digest(&data).into();
        for piece in [1, 3, 63, 64, 65, 127, 1000, 4096] {
            let mut md5 = Md5::new();
            for chunk in data.chunks(piece) {
                md5.update(chunk);
            }
            assert_eq!(md5.finalize(), want, "pieces of {piece}");
        }
    }
}
