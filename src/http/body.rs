//! Request bodies as the HTTP layer frames them: `Content-Length` or
//! `Transfer-Encoding: chunked`, read from the connection chunk by chunk.
//! `Expect: 100-continue` is answered when the body is first read, so a request
//! refused before its body (bad signature, no such bucket) never invites it.

use bytes::{Buf, Bytes};

use super::conn::Conn;
use crate::error::{Error, Result};
use crate::object::Body;

/// Longest chunk-size or trailer line of a chunked body.
const MAX_CHUNK_LINE_BYTES: usize = 4 << 10;
/// Most trailer bytes after the last chunk.
const MAX_TRAILER_BYTES: usize = 16 << 10;
/// A body slower than this on average, once [`SLOW_BODY_GRACE`] has passed, is
/// cut off: a client trickling bytes would otherwise hold a request (and its
/// object lock) forever. 4 KiB/s is far below any real link.
const MIN_BODY_BYTES_PER_SEC: u64 = 4 << 10;
const SLOW_BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bytes left of a Content-Length body, or of the current chunk.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// Expecting a chunk-size line.
    ChunkSize,
    Done,
}

pub struct HttpBody<'a> {
    conn: &'a mut Conn,
    framing: Framing,
    state: State,
    expect_continue: bool,
    /// Trailers received after the last chunk (lower-case names).
    pub trailers: Vec<(String, String)>,
    started: std::time::Instant,
    received: u64,
}

impl<'a> HttpBody<'a> {
    pub fn new(conn: &'a mut Conn, framing: Framing, expect_continue: bool) -> HttpBody<'a> {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Data(n),
            Framing::Chunked => State::ChunkSize,
        };
        HttpBody {
            conn,
            framing,
            state,
            expect_continue,
            trailers: Vec::new(),
            started: std::time::Instant::now(),
            received: 0,
        }
    }

    /// Whether every byte of the body has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads and drops what is left of the body, up to `max` bytes. Returns
    /// false when more was left (the connection must then be closed).
    pub async fn drain(&mut self, max: u64) -> bool {
        if self.expect_continue {
            // The client waits for our answer before sending: nothing to drain,
            // but it may still send, so the connection cannot be reused. (And
            // botocore keeps a final response to an Expect request as the
            // status of its next request on that connection; closing resets it.)
            return false;
        }
        let mut seen = 0u64;
        while !self.is_done() {
            match self.next_chunk().await {
                Ok(Some(c)) => {
                    seen += c.len() as u64;
                    if seen > max {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        true
    }

    /// Answers `Expect: 100-continue` on the body's first read, even for an
    /// empty body: clients that asked wait for it.
    async fn send_continue(&mut self) -> Result<()> {
        if self.expect_continue {
            self.expect_continue = false;
            self.conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Accounts `n` bytes taken of the `left` in the current data.
    fn consumed(&mut self, left: u64, n: usize) {
        self.received += n as u64;
        self.state = match (left - n as u64, self.framing) {
            (0, Framing::Length(_)) => State::Done,
            (0, Framing::Chunked) => State::ChunkEnd,
            (rest, _) => State::Data(rest),
        };
    }

    fn check_rate(&self) -> Result<()> {
        let elapsed = self.started.elapsed();
        if elapsed > SLOW_BODY_GRACE && self.received < MIN_BODY_BYTES_PER_SEC * elapsed.as_secs() {
            return Err(Error::RequestTimeout);
        }
        Ok(())
    }

    async fn line(&mut self) -> Result<String> {
        loop {
            if let Some(at) = self.conn.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.conn.buf.split_to(at);
                self.conn.buf.advance(2);
                return String::from_utf8(line.to_vec()).map_err(|_| Error::BadRequest("bad chunk line".into()));
            }
            if self.conn.buf.len() > MAX_CHUNK_LINE_BYTES {
                return Err(Error::BadRequest("chunk line too long".into()));
            }
            self.check_rate()?;
            if self.conn.fill().await? == 0 {
                return Err(Error::ClientRead("connection closed inside a chunked body".into()));
            }
        }
    }

    async fn read_trailers(&mut self) -> Result<()> {
        let mut total = 0;
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len();
            if total > MAX_TRAILER_BYTES {
                return Err(Error::BadRequest("trailers too long".into()));
            }
            if let Some((n, v)) = line.split_once(':') {
                self.trailers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
    }
}

impl Body for HttpBody<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        self.send_continue().await?;
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Data(left) => {
                    if self.conn.buf.is_empty() {
                        self.check_rate()?;
                        if self.conn.fill().await? == 0 {
                            return Err(closed_mid_body());
                        }
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.conn.buf.len());
                    self.consumed(left, take);
                    return Ok(Some(self.conn.buf.split_to(take).freeze()));
                }
                State::ChunkEnd => {
                    let line = self.line().await?;
                    if !line.is_empty() {
                        return Err(Error::BadRequest("chunk data longer than its size".into()));
                    }
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    let line = self.line().await?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = super::server::parse_hex(size)
                        .ok_or_else(|| Error::BadRequest(format!("bad chunk size {size:?}")))?;
                    if size == 0 {
                        self.read_trailers().await?;
                        self.state = State::Done;
                    } else {
                        self.state = State::Data(size);
                    }
                }
            }
        }
    }

    /// Inside data (a `Content-Length` body, or a chunk's data), reads from the
    /// socket straight into `dst` once the connection's buffer is used up.
    /// Chunk framing lines are left to `next_chunk`.
    async fn read_into(&mut self, dst: &mut [u8]) -> Result<Option<usize>> {
        self.send_continue().await?;
        let left = match self.state {
            State::Done => return Ok(Some(0)),
            State::Data(left) if !dst.is_empty() => left,
            _ => return Ok(None),
        };
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(dst.len());
        let n = if self.conn.buf.is_empty() {
            self.check_rate()?;
            match self.conn.read_direct(&mut dst[..want]).await? {
                0 => return Err(closed_mid_body()),
                n => n,
            }
        } else {
            let n = want.min(self.conn.buf.len());
            dst[..n].copy_from_slice(&self.conn.buf[..n]);
            self.conn.buf.advance(n);
            n
        };
        self.consumed(left, n);
        Ok(Some(n))
    }
}

/// The connection ended before the body did.
fn closed_mid_body() -> Error {
    Error::ClientRead("the client closed the connection mid-body".into())
}
