//! [`Piece`]: bytes read from a shard file, as the object layer passes them on
//! to a client. A read of a drive this core owns stays in the DMA buffer the
//! kernel read it into, with no copy out; bytes that came from another core or
//! node are shared [`Bytes`] (another core's are its DMA buffer, lent: see
//! `lend`). glommio's buffers are `Rc`-based, so a `Piece` never leaves its
//! core: [`Piece::into_bytes`] lends its buffer when bytes must.

use std::ops::{Deref, Range};

use bytes::Bytes;
use glommio::io::ReadResult;

#[derive(Clone)]
pub enum Piece {
    Shared(Bytes),
    /// A direct-I/O read of a drive of this core.
    Dma(ReadResult),
}

impl Piece {
    /// The bytes in `range` (which must lie inside the piece), without a copy.
    pub fn slice(&self, range: Range<usize>) -> Piece {
        match self {
            Piece::Shared(b) => Piece::Shared(b.slice(range)),
            // Out of bounds is a bug in the caller, as for `Bytes::slice`.
            Piece::Dma(r) => Piece::Dma(
                ReadResult::slice(r, range.start, range.len())
                    .unwrap_or_else(|| panic!("range {range:?} out of bounds of a {}-byte piece", r.len())),
            ),
        }
    }

    /// The bytes as `Bytes`, which may cross cores: a DMA buffer is lent, not
    /// copied.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Piece::Shared(b) => b,
            Piece::Dma(r) => super::lend::lend(r),
        }
    }
}

impl Deref for Piece {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Piece::Shared(b) => b,
            Piece::Dma(r) => r,
        }
    }
}

impl From<Bytes> for Piece {
    fn from(b: Bytes) -> Piece {
        Piece::Shared(b)
    }
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        self
    }
}
