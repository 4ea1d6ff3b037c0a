//! [`Body`]: the stream of bytes a PUT consumes, chunk by chunk. The HTTP front
//! end, a GET being copied, and tests all provide one; the object layer never
//! asks for more than one chunk at a time, so bodies stream.

use bytes::Bytes;

use crate::error::Result;

/// A source of object bytes.
#[allow(async_fn_in_trait)]
pub trait Body {
    /// The next chunk; `None` at the end. Chunks may have any size.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>>;

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
}

impl BytesBody {
    /// Hands out `data` in chunks of `chunk` bytes, as a network would.
    pub fn new(data: impl Into<Bytes>, chunk: usize) -> BytesBody {
        BytesBody { data: data.into(), chunk: chunk.max(1) }
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
}
