//! [`Body`]: the stream of bytes a PUT consumes, chunk by chunk. The HTTP front
//! end, a GET being copied, and tests all provide one; the object layer never
//! asks for more than one chunk at a time, so bodies stream.

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};

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

/// Adapts any `AsyncRead` (a socket, a file) into a [`Body`].
pub struct ReaderBody<R> {
    reader: R,
    buf_bytes: usize,
}

/// Bytes read from an `AsyncRead` per chunk.
const READER_CHUNK_BYTES: usize = 256 << 10;

impl<R: AsyncRead + Unpin> ReaderBody<R> {
    pub fn new(reader: R) -> ReaderBody<R> {
        ReaderBody { reader, buf_bytes: READER_CHUNK_BYTES }
    }
}

impl<R: AsyncRead + Unpin> Body for ReaderBody<R> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let mut buf = vec![0u8; self.buf_bytes];
        let n = self.reader.read(&mut buf).await.map_err(|e| Error::ClientRead(e.to_string()))?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(Bytes::from(buf)))
    }
}
