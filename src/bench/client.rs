//! The HTTP/1.1 client behind `basalt bench`: one blocking keep-alive TCP
//! connection per worker, requests signed with SigV4 (`UNSIGNED-PAYLOAD` or
//! `aws-chunked` streaming signatures), bodies written straight from the shared
//! pre-generated buffer, responses read into a reused buffer and dropped unless
//! the caller needs them (listings, upload ids, errors). A body of known length
//! that nobody needs is dropped by the kernel as it arrives (`recv` with
//! `MSG_TRUNC`), never copied out: the client's CPU per GiB of GETs stays a
//! small fraction of the server's.
//!
//! It speaks only what the benchmark needs: `Content-Length` and `chunked`
//! response bodies, bodies delimited by the connection closing, no TLS, no
//! redirects, no `Expect: 100-continue`.

use std::io::{IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::chunked::{chunk_signature, signed_chunk_wire_bytes};
use crate::auth::sigv4::{self, ChunkContext, STREAMING_SIGNED, UNSIGNED_PAYLOAD, uri_encode};
use crate::http::head::Request;

/// Bytes asked of the socket per read; large reads keep a GET's syscall count low.
const READ_BUFFER_BYTES: usize = 256 << 10;
/// A response head larger than this is refused (servers send a few hundred bytes).
const MAX_RESPONSE_HEAD_BYTES: usize = 64 << 10;
/// Most response headers parsed.
const MAX_RESPONSE_HEADERS: usize = 64;
/// Bodies kept for the caller (listings, errors) are cut at this size.
const MAX_KEPT_BODY_BYTES: usize = 8 << 20;
/// Request bodies up to this size are copied behind the head and sent in one
/// write; larger ones go out as a second buffer of the same `writev`.
const COALESCE_MAX_BYTES: usize = 64 << 10;
/// Connect, read and write timeout: a server that stalls this long is an error.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest chunk line or trailer line accepted in a chunked response body.
const MAX_CHUNK_LINE_BYTES: usize = 4 << 10;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// An `http://host:port` endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// As given, for reports.
    pub url: String,
    /// `host:port`, for the Host header.
    pub host: String,
    pub addr: SocketAddr,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(format!("{url}: basalt bench speaks plain HTTP only (put TLS termination aside)"));
        } else {
            url
        };
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url}: an endpoint is http://HOST:PORT"));
        }
        let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: the name resolves to no address"))?;
        Ok(Endpoint { url: url.to_string(), host: host.to_string(), addr })
    }
}

/// How PUT bodies are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadSigning {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`: the body is not hashed.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: `aws-chunked` with a signature per chunk.
    Streaming,
}

/// The keys and region requests are signed with.
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// A request body.
pub enum Body<'a> {
    None,
    /// Sent as is, after the head.
    Bytes(&'a [u8]),
    /// Sent as is with `Content-MD5` (DeleteObjects requires one).
    WithMd5(&'a [u8]),
    /// A PUT body signed as the benchmark was told to.
    Payload(&'a [u8]),
}

/// What the server answered.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    /// Body bytes received.
    pub body_bytes: u64,
    /// The body, when the caller asked to keep it (or the status is an error).
    pub body: Vec<u8>,
    pub etag: Option<String>,
    /// From the start of the request to the first byte of the answer.
    pub ttfb: Duration,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `HTTP 404 NoSuchKey` from an S3 error body, for reports.
    pub fn error_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match (xml_text(&text, "Code"), xml_text(&text, "Message")) {
            (Some(code), Some(msg)) => format!("HTTP {} {code}: {msg}", self.status),
            (Some(code), None) => format!("HTTP {} {code}", self.status),
            _ => format!("HTTP {}", self.status),
        }
    }
}

/// The text of the first `<tag>...</tag>`, unescaped.
pub fn xml_text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    Some(xml_unescape(&doc[start..end]))
}

pub fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// One worker's connection to one endpoint.
pub struct Client {
    endpoint: Arc<Endpoint>,
    creds: Arc<Credentials>,
    signing: PayloadSigning,
    chunk_bytes: usize,
    stream: Option<TcpStream>,
    rbuf: ReadBuf,
    out: Vec<u8>,
    /// The signing key of `key_day`, derived once a day instead of per request.
    key_day: String,
    key: Vec<u8>,
    /// `x-amz-date` of `date_secs`, formatted once a second.
    date_secs: i64,
    amz_date: String,
}

impl Client {
    pub fn new(
        endpoint: Arc<Endpoint>,
        creds: Arc<Credentials>,
        signing: PayloadSigning,
        chunk_bytes: usize,
    ) -> Client {
        Client {
            endpoint,
            creds,
            signing,
            chunk_bytes: chunk_bytes.max(1),
            stream: None,
            rbuf: ReadBuf::new(),
            out: Vec::with_capacity(COALESCE_MAX_BYTES + 4096),
            key_day: String::new(),
            key: Vec::new(),
            date_secs: 0,
            amz_date: String::new(),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn connect(&mut self) -> Result<&mut TcpStream, ClientError> {
        if self.stream.is_none() {
            let ep = &self.endpoint;
            let s = TcpStream::connect_timeout(&ep.addr, IO_TIMEOUT)
                .map_err(|e| ClientError::Connect(ep.url.clone(), e))?;
            // Without TCP_NODELAY a small request waits on the server's delayed ACK.
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.stream = Some(s);
            self.rbuf.clear();
        }
        Ok(self.stream.as_mut().expect("connected above"))
    }

    /// Sends one request and reads its answer. `path` and `query` go on the wire
    /// as given: the caller encodes them (see [`object_path`]). A request that
    /// fails on a reused connection before any answer is retried once on a new one.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
        keep_body: bool,
    ) -> Result<Reply, ClientError> {
        let reused = self.stream.is_some();
        match self.request_once(method, path, query, headers, &body, keep_body) {
            Err(ClientError::Io(_) | ClientError::Malformed(_)) if reused && self.stream.is_none() => {
                self.request_once(method, path, query, headers, &body, keep_body)
            }
            other => other,
        }
    }

    fn request_once(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
        keep_body: bool,
    ) -> Result<Reply, ClientError> {
        let started = Instant::now();
        let payload = match body {
            Body::Payload(p) => Some(*p),
            _ => None,
        };
        let streaming = payload.is_some() && self.signing == PayloadSigning::Streaming;
        let signature = self.write_head(method, path, query, headers, body, streaming)?;
        let result = self.send_and_read(method, body, streaming, &signature, keep_body, started);
        if result.is_err() {
            // Whatever state the connection is in, it cannot carry another request.
            self.stream = None;
        }
        result
    }

    /// Builds the head into `self.out`; returns the request signature.
    fn write_head(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
        streaming: bool,
    ) -> Result<String, ClientError> {
        let now = crate::http::date::now_secs();
        if now != self.date_secs {
            self.date_secs = now;
            self.amz_date = sigv4::compact_date(now);
        }
        let day = &self.amz_date[..8];
        if self.key_day != day {
            self.key_day = day.to_string();
            self.key = sigv4::signing_key(&self.creds.secret_key, day, &self.creds.region, "s3");
        }
        let payload_hash = if streaming { STREAMING_SIGNED } else { UNSIGNED_PAYLOAD };
        let signed_names = ["host", "x-amz-content-sha256", "x-amz-date"];
        let req = Request {
            method: method.to_string(),
            raw_path: path.to_string(),
            raw_query: query.to_string(),
            headers: vec![
                ("host".into(), self.endpoint.host.clone()),
                ("x-amz-content-sha256".into(), payload_hash.into()),
                ("x-amz-date".into(), self.amz_date.clone()),
            ],
            http10: false,
            peer: None,
        };
        let scope = sigv4::scope(day, &self.creds.region);
        let signed = sigv4::sign_request(
            &req,
            &self.creds.access_key,
            &self.key,
            &scope,
            &self.amz_date,
            &signed_names,
            payload_hash,
        )
        .map_err(|e| ClientError::Sign(e.to_string()))?;
        let out = &mut self.out;
        out.clear();
        let target = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
        push_line(out, &format!("{method} {target} HTTP/1.1"));
        push_header(out, "Host", &self.endpoint.host);
        push_header(out, "x-amz-date", &self.amz_date);
        push_header(out, "x-amz-content-sha256", payload_hash);
        push_header(out, "Authorization", &signed.authorization);
        for (n, v) in headers {
            push_header(out, n, v);
        }
        let length = match body {
            Body::None => 0,
            Body::Bytes(b) | Body::Payload(b) if !streaming => b.len(),
            Body::WithMd5(b) => {
                use base64::Engine as _;
                use md5::Digest;
                let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b));
                push_header(out, "Content-MD5", &md5);
                b.len()
            }
            Body::Bytes(b) | Body::Payload(b) => {
                push_header(out, "Content-Encoding", "aws-chunked");
                push_header(out, "x-amz-decoded-content-length", &b.len().to_string());
                streaming_wire_bytes(b.len(), self.chunk_bytes)
            }
        };
        if length > 0 || method == "PUT" || method == "POST" {
            push_header(out, "Content-Length", &length.to_string());
        }
        out.extend_from_slice(b"\r\n");
        Ok(signed.signature)
    }

    fn send_and_read(
        &mut self,
        method: &str,
        body: &Body<'_>,
        streaming: bool,
        signature: &str,
        keep_body: bool,
        started: Instant,
    ) -> Result<Reply, ClientError> {
        let data: &[u8] = match body {
            Body::None => &[],
            Body::Bytes(b) | Body::WithMd5(b) | Body::Payload(b) => b,
        };
        if streaming {
            let ctx = ChunkContext {
                seed: signature.to_string(),
                amz_date: self.amz_date.clone(),
                scope: sigv4::scope(&self.key_day, &self.creds.region),
                key: self.key.clone(),
                trailer: false,
            };
            let mut head = std::mem::take(&mut self.out);
            let chunk_bytes = self.chunk_bytes;
            let stream = self.connect()?;
            let sent = write_streaming(stream, &mut head, data, chunk_bytes, &ctx);
            self.out = head;
            sent?;
        } else if data.len() <= COALESCE_MAX_BYTES {
            self.out.extend_from_slice(data);
            let out = std::mem::take(&mut self.out);
            let sent = self.connect().and_then(|s| s.write_all(&out).map_err(ClientError::from));
            self.out = out;
            sent?;
        } else {
            let out = std::mem::take(&mut self.out);
            let sent = self.connect().and_then(|s| write_all_vectored(s, &[&out, data]).map_err(ClientError::from));
            self.out = out;
            sent?;
        }
        let stream = self.stream.as_mut().expect("connected to send");
        let head_only = method == "HEAD";
        let (reply, close) = read_response(stream, &mut self.rbuf, head_only, keep_body, started)?;
        if close {
            self.stream = None;
        }
        Ok(reply)
    }
}

/// `/bucket/key` with the key encoded as SigV4 wants it.
pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/{}/{}", uri_encode(bucket, false), uri_encode(key, true))
}

fn push_line(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Encoded length of an `aws-chunked` body of `len` bytes cut into `chunk` bytes.
pub fn streaming_wire_bytes(len: usize, chunk: usize) -> usize {
    let full = len / chunk;
    let tail = len % chunk;
    let mut total = full * signed_chunk_wire_bytes(chunk) + signed_chunk_wire_bytes(0);
    if tail > 0 {
        total += signed_chunk_wire_bytes(tail);
    }
    total
}

/// Writes `head`, then `data` as signed chunks: each chunk's line goes out in
/// the same `writev` as the data before it, so a chunk costs one syscall.
fn write_streaming(
    stream: &mut TcpStream,
    head: &mut Vec<u8>,
    data: &[u8],
    chunk_bytes: usize,
    ctx: &ChunkContext,
) -> Result<(), ClientError> {
    let mut previous = ctx.seed.clone();
    // What follows the previous chunk's data: its CRLF and the next chunk's line.
    let mut line = std::mem::take(head);
    let mut pending: &[u8] = &[];
    for chunk in data.chunks(chunk_bytes).chain(std::iter::once(&[][..])) {
        let sig = chunk_signature(ctx, &previous, chunk);
        if !pending.is_empty() {
            line.extend_from_slice(b"\r\n");
        }
        line.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
        write_all_vectored(stream, &[pending, &line])?;
        line.clear();
        pending = chunk;
        previous = sig;
    }
    // The final, empty chunk's CRLF.
    write_all_vectored(stream, &[b"\r\n"])?;
    *head = line;
    Ok(())
}

fn write_all_vectored(stream: &mut impl Write, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().filter(|p| !p.is_empty()).map(|p| IoSlice::new(p)).collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match stream.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes read from the connection and not yet consumed.
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf::new()
    }
}

impl ReadBuf {
    pub fn new() -> ReadBuf {
        ReadBuf { buf: vec![0; READ_BUFFER_BYTES], start: 0, end: 0 }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.clear();
        }
    }

    /// Reads more; 0 at end of stream.
    fn fill(&mut self, r: &mut impl Read) -> std::io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start == 0 {
                return Err(std::io::Error::other("read buffer full"));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match r.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn line(&mut self, r: &mut impl Read) -> Result<String, ClientError> {
        loop {
            if let Some(at) = self.data().windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.data()[..at]).into_owned();
                self.consume(at + 2);
                return Ok(line);
            }
            if self.end - self.start > MAX_CHUNK_LINE_BYTES {
                return Err(ClientError::Malformed("chunk line too long".into()));
            }
            if self.fill(r)? == 0 {
                return Err(ClientError::Malformed("connection closed inside a chunked body".into()));
            }
        }
    }
}

/// How the response body is delimited.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// Most bytes one `Discard::discard` call asks the kernel to drop.
const DISCARD_STEP_BYTES: usize = 4 << 20;

/// A byte source that can drop the bytes that arrive without copying them out.
pub trait Discard: Read {
    /// Drops up to `n` bytes as they arrive (at least one, waiting for it);
    /// returns how many, 0 at the end of the stream.
    fn discard(&mut self, n: usize) -> std::io::Result<usize>;
}

impl Discard for TcpStream {
    /// `recv` with `MSG_TRUNC`: on TCP the kernel drops the bytes instead of
    /// copying them to a buffer (Linux 2.4 on; see tcp(7)), and no buffer is
    /// touched, so none is given.
    fn discard(&mut self, n: usize) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: with MSG_TRUNC a TCP socket writes nothing to the buffer
            // argument, so a null pointer with any length is never dereferenced.
            let got = unsafe {
                nix::libc::recv(self.as_raw_fd(), std::ptr::null_mut(), n.min(DISCARD_STEP_BYTES), nix::libc::MSG_TRUNC)
            };
            if got >= 0 {
                return Ok(got as usize);
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// Reads one response. Returns it and whether the connection must be closed
/// after it. The body is dropped as it arrives unless `keep_body` (or the status
/// is an error, whose S3 error body the report quotes).
pub fn read_response(
    r: &mut impl Discard,
    rb: &mut ReadBuf,
    head_only: bool,
    keep_body: bool,
    started: Instant,
) -> Result<(Reply, bool), ClientError> {
    let mut reply = Reply::default();
    let mut first_byte = rb.end > rb.start;
    if first_byte {
        reply.ttfb = started.elapsed();
    }
    let (framing, close) = loop {
        if rb.end > rb.start {
            let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(rb.data()) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    if (100..200).contains(&status) {
                        // An interim answer (100 Continue): the real one follows.
                        rb.consume(len);
                        continue;
                    }
                    reply.status = status;
                    let mut length = None;
                    let mut chunked = false;
                    let mut close = resp.version == Some(0);
                    for h in resp.headers.iter() {
                        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = value
                                .parse::<u64>()
                                .map_err(|_| ClientError::Malformed("bad Content-Length".into()))?;
                            length = Some(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = value.eq_ignore_ascii_case("chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = value.to_ascii_lowercase().contains("close");
                        } else if h.name.eq_ignore_ascii_case("etag") {
                            reply.etag = Some(value.to_string());
                        }
                    }
                    rb.consume(len);
                    let no_body = head_only || status == 204 || status == 304;
                    let framing = match (no_body, chunked, length) {
                        (true, _, _) => Framing::Length(0),
                        (false, true, _) => Framing::Chunked,
                        (false, false, Some(n)) => Framing::Length(n),
                        (false, false, None) => Framing::UntilClose,
                    };
                    let close = close || matches!(framing, Framing::UntilClose);
                    break (framing, close);
                }
                Ok(httparse::Status::Partial) if rb.end - rb.start > MAX_RESPONSE_HEAD_BYTES => {
                    return Err(ClientError::Malformed("response head too large".into()));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(ClientError::Malformed(format!("response head: {e}"))),
            }
        }
        if rb.fill(r)? == 0 {
            return Err(ClientError::Malformed("connection closed before the response".into()));
        }
        if !first_byte {
            first_byte = true;
            reply.ttfb = started.elapsed();
        }
    };
    let keep = keep_body || reply.status >= 300;
    let take = |rb: &mut ReadBuf, reply: &mut Reply, n: usize| {
        if keep && reply.body.len() < MAX_KEPT_BODY_BYTES {
            let room = MAX_KEPT_BODY_BYTES - reply.body.len();
            reply.body.extend_from_slice(&rb.data()[..n.min(room)]);
        }
        reply.body_bytes += n as u64;
        rb.consume(n);
    };
    match framing {
        Framing::Length(mut left) => {
            while left > 0 {
                let want = left.min(usize::MAX as u64) as usize;
                if rb.end == rb.start && !keep {
                    // Nothing buffered and nothing kept: the kernel drops it.
                    let n = r.discard(want)?;
                    if n == 0 {
                        return Err(ClientError::Malformed(format!("body ended {left} bytes short")));
                    }
                    reply.body_bytes += n as u64;
                    left -= n as u64;
                    continue;
                }
                if rb.end == rb.start && rb.fill(r)? == 0 {
                    return Err(ClientError::Malformed(format!("body ended {left} bytes short")));
                }
                let n = (rb.end - rb.start).min(want);
                take(rb, &mut reply, n);
                left -= n as u64;
            }
        }
        Framing::UntilClose => loop {
            if rb.end == rb.start && rb.fill(r)? == 0 {
                break;
            }
            let n = rb.end - rb.start;
            take(rb, &mut reply, n);
        },
        Framing::Chunked => loop {
            let line = rb.line(r)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = crate::http::server::parse_hex(size)
                .ok_or_else(|| ClientError::Malformed(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                while !rb.line(r)?.is_empty() {}
                break;
            }
            let mut left = size;
            while left > 0 {
                if rb.end == rb.start && rb.fill(r)? == 0 {
                    return Err(ClientError::Malformed("connection closed inside a chunk".into()));
                }
                let n = (rb.end - rb.start).min(left as usize);
                take(rb, &mut reply, n);
                left -= n as u64;
            }
            if !rb.line(r)?.is_empty() {
                return Err(ClientError::Malformed("chunk longer than its size".into()));
            }
        },
    }
    Ok((reply, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, as a slow socket would.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    impl Discard for Trickle<'_> {
        fn discard(&mut self, n: usize) -> std::io::Result<usize> {
            let n = self.step.min(n).min(self.data.len());
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn parse_all(wire: &[u8], head_only: bool, keep: bool, step: usize) -> Vec<(Reply, bool)> {
        let mut r = Trickle { data: wire, step };
        let mut rb = ReadBuf::new();
        let mut out = Vec::new();
        while !r.data.is_empty() || rb.end > rb.start {
            let (reply, close) = read_response(&mut r, &mut rb, head_only, keep, Instant::now()).unwrap();
            out.push((reply, close));
            if out.last().is_some_and(|(_, c)| *c) {
                break;
            }
        }
        out
    }

    /// Over a real socket, a dropped body is discarded by the kernel exactly:
    /// not a byte of the next response goes with it, however the bytes arrive.
    #[test]
    fn a_dropped_body_is_discarded_to_its_last_byte() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let big = 3 << 20;
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut wire = format!("HTTP/1.1 200 OK\r\nContent-Length: {big}\r\n\r\n").into_bytes();
            wire.extend((0..big).map(|i| (i % 251) as u8));
            wire.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnokey");
            // In uneven pieces, so that reads and discards end mid-body.
            for piece in wire.chunks(100_003) {
                s.write_all(piece).unwrap();
            }
        });
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut rb = ReadBuf::new();
        let (first, close) = read_response(&mut stream, &mut rb, false, false, Instant::now()).unwrap();
        assert_eq!((first.status, first.body_bytes, close), (200, big as u64, false));
        assert!(first.body.is_empty(), "a dropped body is not kept");
        let (second, _) = read_response(&mut stream, &mut rb, false, false, Instant::now()).unwrap();
        assert_eq!((second.status, second.body.as_slice()), (404, &b"nokey"[..]), "an error body is kept");
        server.join().unwrap();
    }

    #[test]
    fn length_chunked_and_pipelined_responses() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"abc\"\r\n\r\nhello\
                     HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n\
                     HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\
                     HTTP/1.1 404 Not Found\r\nContent-Length: 63\r\n\r\n<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>\n\n\n\
                     HTTP/1.0 200 OK\r\n\r\nuntil close";
        for step in [1, 7, 1 << 20] {
            let replies = parse_all(wire, false, true, step);
            assert_eq!(replies.len(), 5, "step {step}");
            assert_eq!((replies[0].0.status, replies[0].0.body.as_slice()), (200, &b"hello"[..]));
            assert_eq!(replies[0].0.etag.as_deref(), Some("\"abc\""));
            assert_eq!(replies[1].0.body, b"abcde");
            assert_eq!((replies[2].0.status, replies[2].0.body_bytes), (204, 0));
            assert_eq!(replies[3].0.error_text(), "HTTP 404 NoSuchKey: gone");
            assert_eq!((replies[4].0.body.as_slice(), replies[4].1), (&b"until close"[..], true));
            assert!(!replies[0].1);
        }
    }

    #[test]
    fn bodies_are_dropped_unless_kept_and_head_has_none() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nabcd";
        let replies = parse_all(wire, false, false, 3);
        assert_eq!((replies[0].0.body_bytes, replies[0].0.body.len(), replies[0].1), (4, 0, true));
        // A HEAD answer declares a length but carries no body.
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n";
        let replies = parse_all(wire, true, false, 5);
        assert_eq!((replies[0].0.status, replies[0].0.body_bytes), (200, 0));
    }

    #[test]
    fn malformed_responses_are_errors() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Le",
        ] {
            let mut r = Trickle { data: wire, step: 4 };
            let mut rb = ReadBuf::new();
            assert!(read_response(&mut r, &mut rb, false, false, Instant::now()).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn streaming_length_matches_what_is_written() {
        let ctx = ChunkContext {
            seed: "0".repeat(64),
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            key: vec![1; 32],
            trailer: false,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for (len, chunk) in [(0usize, 64usize), (10, 64), (64, 64), (200_000, 65536)] {
            let data = vec![7u8; len];
            let reader = std::thread::spawn({
                let listener = listener.try_clone().unwrap();
                move || {
                    let (mut s, _) = listener.accept().unwrap();
                    let mut all = Vec::new();
                    s.read_to_end(&mut all).unwrap();
                    all
                }
            });
            let mut s = TcpStream::connect(addr).unwrap();
            let mut head = b"HEAD\r\n".to_vec();
            write_streaming(&mut s, &mut head, &data, chunk, &ctx).unwrap();
            drop(s);
            let wire = reader.join().unwrap();
            assert_eq!(wire.len() - 6, streaming_wire_bytes(len, chunk), "{len} bytes in {chunk}");
            assert!(wire.ends_with(b"\r\n\r\n"));
        }
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!((e.host.as_str(), e.addr.port()), ("127.0.0.1:9000", 9000));
        assert_eq!(Endpoint::parse("127.0.0.1").unwrap().addr.port(), 80);
        assert!(Endpoint::parse("https://x:1").is_err());
        assert!(Endpoint::parse("http://x:1/path").is_err());
        assert_eq!(xml_text("<a><Key>x&amp;y</Key></a>", "Key").as_deref(), Some("x&y"));
    }
}
