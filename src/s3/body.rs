//! The body of an S3 request as the signature says it must be read: plain,
//! checked against the signed SHA-256, or decoded from `aws-chunked` with chunk
//! signatures verified.

use bytes::Bytes;

use crate::auth::chunked::AwsChunked;
use crate::auth::sigv4::Payload;
use crate::error::{Error, Result};
use crate::http::body::HttpBody;
use crate::object::Body;

pub enum RequestBody<'a> {
    Plain(HttpBody<'a>),
    Hashed { inner: HttpBody<'a>, want: String, hasher: Option<ring::digest::Context> },
    Chunked(AwsChunked<HttpBody<'a>>),
}

impl<'a> RequestBody<'a> {
    pub fn new(http: HttpBody<'a>, payload: &Payload) -> RequestBody<'a> {
        match payload {
            Payload::Unsigned => RequestBody::Plain(http),
            Payload::Sha256(want) => RequestBody::Hashed {
                inner: http,
                want: want.clone(),
                hasher: Some(ring::digest::Context::new(&ring::digest::SHA256)),
            },
            Payload::SignedChunks(ctx) => RequestBody::Chunked(AwsChunked::new(http, Some(ctx.clone()))),
            Payload::UnsignedChunks => RequestBody::Chunked(AwsChunked::new(http, None)),
        }
    }

    /// Trailing headers (checksums) received with an aws-chunked body.
    pub fn trailers(&self) -> &[(String, String)] {
        match self {
            RequestBody::Chunked(c) => &c.trailers,
            _ => &[],
        }
    }

    pub fn http(&mut self) -> &mut HttpBody<'a> {
        match self {
            RequestBody::Plain(h) | RequestBody::Hashed { inner: h, .. } => h,
            RequestBody::Chunked(c) => c.inner_mut(),
        }
    }

    /// Reads a whole small body (XML requests), refusing more than `max` bytes.
    pub async fn read_small(&mut self, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            if out.len() + chunk.len() > max {
                return Err(Error::InvalidRequest(format!("the request body is larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

impl Body for RequestBody<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self {
            RequestBody::Plain(b) => b.next_chunk().await,
            RequestBody::Chunked(b) => b.next_chunk().await,
            RequestBody::Hashed { inner, want, hasher } => match inner.next_chunk().await? {
                Some(c) => {
                    if let Some(h) = hasher {
                        h.update(&c);
                    }
                    Ok(Some(c))
                }
                None => {
                    check_sha256(hasher, want)?;
                    Ok(None)
                }
            },
        }
    }

    async fn read_into(&mut self, dst: &mut [u8]) -> Result<Option<usize>> {
        match self {
            RequestBody::Plain(b) => b.read_into(dst).await,
            RequestBody::Chunked(b) => b.read_into(dst).await,
            RequestBody::Hashed { inner, want, hasher } => {
                let read = inner.read_into(dst).await?;
                match read {
                    Some(0) => check_sha256(hasher, want)?,
                    Some(n) => {
                        if let Some(h) = hasher {
                            h.update(&dst[..n]);
                        }
                    }
                    None => {}
                }
                Ok(read)
            }
        }
    }
}

/// At the end of a body: the SHA-256 of everything read must be the signed one
/// (checked once; `hasher` is spent).
fn check_sha256(hasher: &mut Option<ring::digest::Context>, want: &str) -> Result<()> {
    if let Some(h) = hasher.take()
        && crate::auth::hex(h.finish().as_ref()) != want
    {
        return Err(Error::ContentSha256Mismatch);
    }
    Ok(())
}
