//! One client connection: its socket, the bytes read ahead, reading request
//! heads, and writing responses. Owned by the core that accepted it.

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::head::{self, Parsed, Request};
use crate::error::Error;

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 << 10;

pub struct Conn {
    stream: TcpStream,
    /// Received but not yet consumed.
    pub(super) buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn { stream, buf: BytesMut::with_capacity(READ_CHUNK_BYTES) }
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    pub(super) async fn fill(&mut self) -> Result<usize, Error> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK_BYTES, 0);
        let n = self.stream.read(&mut self.buf[start..]).await;
        match n {
            Ok(n) => {
                self.buf.truncate(start + n);
                crate::metrics::received(n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(Error::ClientRead(e.to_string()))
            }
        }
    }

    /// Reads from the socket straight into `dst`, past the buffer (which must be
    /// empty, or bytes would be reordered); returns how many (0 at end of stream).
    pub(super) async fn read_direct(&mut self, dst: &mut [u8]) -> Result<usize, Error> {
        debug_assert!(self.buf.is_empty());
        let n = self.stream.read(dst).await.map_err(|e| Error::ClientRead(e.to_string()))?;
        crate::metrics::received(n);
        Ok(n)
    }

    /// The next request head; `None` when the client closed between requests.
    pub async fn read_head(&mut self) -> Result<Option<Request>, Error> {
        loop {
            if !self.buf.is_empty()
                && let Parsed::Complete(req, len) = head::parse(&self.buf)?
            {
                self.buf.advance(len);
                return Ok(Some(req));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(Error::BadRequest("connection closed inside a request head".into()))
                };
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), Error> {
        self.stream.write_all(data).await.map_err(|e| Error::ClientRead(e.to_string()))?;
        crate::metrics::sent(data.len());
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.flush().await.map_err(|e| Error::ClientRead(e.to_string()))
    }
}
