//! [`Body`]: the stream of bytes a PUT consumes, chunk by chunk or read straight
//! into the caller's buffer. The HTTP front end, a GET being copied, and tests
//! all provide one; the object layer never asks for more than one chunk or one
//! block at a time, so bodies stream.

use bytes::Bytes;

use crate::error::Result;

/// A source of object bytes.
#[allow(async_fn_in_trait)]
pub trait Body {
    /// The next chunk; `None` at the end. Chunks may have any size.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>>;

    /// Reads the next bytes straight into `dst`, sparing the copy out of a
    /// chunk (the HTTP body receives from the socket into it). `Some(n)` with
    /// `n > 0` is bytes read, `Some(0)` the end of the body (after the same
    /// checks `next_chunk` makes there), `None` that this body, at this point,
    /// only hands out chunks: the caller then asks `next_chunk`. The two may be
    /// mixed freely. `dst` is never empty.
    async fn read_into(&mut self, dst: &mut [u8]) -> Result<Option<usize>> {
        let _ = dst;
        Ok(None)
    }

    /// Checksums (algorithm name, base64 value) the body verified on its way
    /// through, known once it has ended; stored with the object.
    fn verified_checksums(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// A body held in memory (tests, small internal writes).
pub struct BytesBody {
    data: Bytes,
    chunk: usize,
    direct: bool,
}

impl BytesBody {
    /// Hands out `data` in chunks of `chunk` bytes, as a network would.
    pub fn new(data: impl Into<Bytes>, chunk: usize) -> BytesBody {
        BytesBody { data: data.into(), chunk: chunk.max(1), direct: false }
    }

    /// Like [`BytesBody::new`], but also read into the caller's buffer (at most
    /// `chunk` bytes a call), as the HTTP body does with `Content-Length`.
    pub fn direct(data: impl Into<Bytes>, chunk: usize) -> BytesBody {
        BytesBody { direct: true, ..BytesBody::new(data, chunk) }
    }
}

impl Body for BytesBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let n = self.chunk.min(self.data.len());
        Ok(Some(self.data.split_to(n)))
    }

    async fn read_into(&mut self, dst: &mut [u8]) -> Result<Option<usize>> {
        if !self.direct {
            return Ok(None);
        }
        let n = self.chunk.min(self.data.len()).min(dst.len());
        dst[..n].copy_from_slice(&self.data.split_to(n));
        Ok(Some(n))
    }
}
