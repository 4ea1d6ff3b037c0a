//! One client connection: its socket, the bytes read ahead, reading request
//! heads, and writing responses. Owned by the core that accepted it.

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::head::{self, Parsed, Request};
use crate::error::Error;

/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Buffers handed to one `sendmsg`: a GET's span is at most 4 blocks of up to
/// 16 data shards, and a call with more sends the rest in the next.
const MAX_IOVECS: usize = 64;

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
        self.write_all_vectored(&[data]).await
    }

    /// Writes all of `bufs` with as few `sendmsg` calls as the socket allows:
    /// one call takes every buffer (up to [`MAX_IOVECS`]) the send buffer has
    /// room for. Large pieces sent one `send` each left the client's socket
    /// empty between them, so the client slept and was woken per piece. When
    /// the send buffer is full, the stream's own write of the current buffer
    /// waits for room (and for the write timeout).
    pub async fn write_all_vectored<B: AsRef<[u8]>>(&mut self, bufs: &[B]) -> Result<(), Error> {
        use nix::sys::socket::{MsgFlags, sendmsg};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;
        let (mut index, mut offset) = (0, 0);
        loop {
            while bufs.get(index).is_some_and(|b| offset == b.as_ref().len()) {
                index += 1;
                offset = 0;
            }
            let Some(current) = bufs.get(index).map(|b| &b.as_ref()[offset..]) else { return Ok(()) };
            let slices: Vec<IoSlice<'_>> = std::iter::once(current)
                .chain(bufs[index + 1..].iter().map(|b| b.as_ref()))
                .filter(|s| !s.is_empty())
                .take(MAX_IOVECS)
                .map(IoSlice::new)
                .collect();
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let mut n = match sendmsg::<()>(self.stream.as_raw_fd(), &slices, &[], flags, None) {
                Ok(0) => return Err(Error::ClientRead("the connection took no more bytes".into())),
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    let n = self.stream.write(current).await.map_err(|e| Error::ClientRead(e.to_string()))?;
                    if n == 0 {
                        return Err(Error::ClientRead("the connection took no more bytes".into()));
                    }
                    n
                }
                Err(e) => return Err(Error::ClientRead(std::io::Error::from(e).to_string())),
            };
            crate::metrics::sent(n);
            while n > 0 {
                let left = bufs[index].as_ref().len() - offset;
                if n < left {
                    offset += n;
                    n = 0;
                } else {
                    n -= left;
                    index += 1;
                    offset = 0;
                }
            }
        }
    }

    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.flush().await.map_err(|e| Error::ClientRead(e.to_string()))
    }
}
