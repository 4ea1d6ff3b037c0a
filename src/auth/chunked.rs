//! `Content-Encoding: aws-chunked` bodies: `<hex size>[;chunk-signature=<sig>]\r\n
//! <data>\r\n` repeated, a zero-size chunk, then optional trailers. With
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` every chunk's signature is verified
//! against the chain started by the request's signature, and a chunk's bytes
//! are released only after its signature checks out.

use bytes::{Buf, Bytes, BytesMut};

use super::sha256_hex;
use super::sigv4::{self, ChunkContext};
use crate::error::{Error, Result};
use crate::object::Body;

/// The largest chunk accepted: each chunk is held until its signature is
/// verified, so this bounds memory per upload. SDKs send 64 KiB to 8 MiB.
pub const MAX_CHUNK_BYTES: usize = 16 << 20;
/// Longest chunk header or trailer line.
const MAX_LINE_BYTES: usize = 4 << 10;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub struct AwsChunked<B> {
    inner: B,
    buf: BytesMut,
    signing: Option<ChunkContext>,
    previous: String,
    done: bool,
    /// Trailing headers (lower-case names), once the body is read.
    pub trailers: Vec<(String, String)>,
    /// Decoded bytes returned so far.
    pub decoded: u64,
}

impl<B: Body> AwsChunked<B> {
    pub fn new(inner: B, signing: Option<ChunkContext>) -> AwsChunked<B> {
        let previous = signing.as_ref().map(|s| s.seed.clone()).unwrap_or_default();
        AwsChunked { inner, buf: BytesMut::new(), signing, previous, done: false, trailers: Vec::new(), decoded: 0 }
    }

    pub fn inner_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    async fn more(&mut self) -> Result<()> {
        match self.inner.next_chunk().await? {
            Some(b) => {
                self.buf.extend_from_slice(&b);
                Ok(())
            }
            None => Err(Error::IncompleteBody { expected: 0, got: self.decoded }),
        }
    }

    async fn line(&mut self) -> Result<String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(at);
                self.buf.advance(2);
                return String::from_utf8(line.to_vec()).map_err(|_| malformed("chunk header is not text"));
            }
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(malformed("chunk header too long"));
            }
            self.more().await?;
        }
    }

    async fn take(&mut self, n: usize) -> Result<Bytes> {
        while self.buf.len() < n {
            self.more().await?;
        }
        Ok(self.buf.split_to(n).freeze())
    }

    fn check_chunk(&mut self, signature: Option<&str>, data: &[u8]) -> Result<()> {
        let Some(ctx) = &self.signing else { return Ok(()) };
        let signature = signature.ok_or(Error::SignatureDoesNotMatch)?;
        let sts = chunk_string_to_sign(ctx, &self.previous, data);
        if !sigv4::verify(&ctx.key, &sts, signature) {
            return Err(Error::SignatureDoesNotMatch);
        }
        self.previous = signature.to_string();
        Ok(())
    }

    async fn read_trailers(&mut self) -> Result<()> {
        let mut raw = String::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            if raw.len() + line.len() > MAX_LINE_BYTES {
                return Err(malformed("trailers too long"));
            }
            if let Some((n, v)) = line.split_once(':') {
                let name = n.trim().to_ascii_lowercase();
                if name == "x-amz-trailer-signature" {
                    self.check_trailer_signature(&raw, v.trim())?;
                    continue;
                }
                raw.push_str(&format!("{}:{}\n", name, v.trim()));
                self.trailers.push((name, v.trim().to_string()));
            }
        }
        if self.signing.as_ref().is_some_and(|s| s.trailer) && !self.previous.is_empty() && !self.trailers.is_empty() {
            // A signed trailer without its signature line.
            return Err(Error::SignatureDoesNotMatch);
        }
        Ok(())
    }

    fn check_trailer_signature(&mut self, trailer_text: &str, signature: &str) -> Result<()> {
        let Some(ctx) = &self.signing else { return Ok(()) };
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            ctx.amz_date,
            ctx.scope,
            self.previous,
            sha256_hex(trailer_text.as_bytes())
        );
        if !sigv4::verify(&ctx.key, &sts, signature) {
            return Err(Error::SignatureDoesNotMatch);
        }
        self.previous.clear();
        Ok(())
    }
}

impl<B: Body> Body for AwsChunked<B> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        let header = self.line().await?;
        let (size, signature) = match header.split_once(';') {
            Some((s, ext)) => (s.trim(), ext.trim().strip_prefix("chunk-signature=")),
            None => (header.trim(), None),
        };
        let size = crate::http::server::parse_hex(size).ok_or_else(|| malformed("bad chunk size"))? as usize;
        if size > MAX_CHUNK_BYTES {
            return Err(malformed("chunk larger than 16 MiB"));
        }
        let data = self.take(size).await?;
        self.check_chunk(signature, &data)?;
        if size == 0 {
            if self.signing.as_ref().is_some_and(|s| !s.trailer) {
                // No trailer: the final CRLF closes the body.
                let end = self.line().await?;
                if !end.is_empty() {
                    return Err(malformed("data after the final chunk"));
                }
            } else {
                self.read_trailers().await?;
            }
            self.done = true;
            return Ok(None);
        }
        if self.take(2).await?.as_ref() != b"\r\n" {
            return Err(malformed("chunk data longer than its size"));
        }
        self.decoded += size as u64;
        Ok(Some(data))
    }
}

/// What a chunk's signature signs: the previous signature chains the chunks.
fn chunk_string_to_sign(ctx: &ChunkContext, previous: &str, data: &[u8]) -> String {
    format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{EMPTY_SHA256}\n{}",
        ctx.amz_date,
        ctx.scope,
        sha256_hex(data)
    )
}

/// The signature a client (`basalt bench`) puts on a chunk of `data` that
/// follows the chunk signed `previous` (the request's signature for the first).
pub fn chunk_signature(ctx: &ChunkContext, previous: &str, data: &[u8]) -> String {
    sigv4::sign(&ctx.key, &chunk_string_to_sign(ctx, previous, data))
}

/// Bytes on the wire of one signed chunk of `size` data bytes:
/// `<hex size>;chunk-signature=<64 hex>\r\n<data>\r\n`.
pub fn signed_chunk_wire_bytes(size: usize) -> usize {
    format!("{size:x}").len() + ";chunk-signature=".len() + 64 + 2 + size + 2
}

fn malformed(why: &str) -> Error {
    Error::BadRequest(format!("malformed aws-chunked body: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::BytesBody;

    fn example_ctx() -> ChunkContext {
        ChunkContext {
            seed: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            key: sigv4::signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
            trailer: false,
        }
    }

    /// The chunked upload example of AWS's SigV4 streaming documentation:
    /// 65,536 + 1,024 bytes of 'a' and the final empty chunk.
    fn example_body(tamper: bool) -> Vec<u8> {
        let mut body = Vec::new();
        let chunks = [
            (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
            (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
            (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
        ];
        for (size, sig) in chunks {
            body.extend_from_slice(format!("{size:x};chunk-signature={sig}\r\n").as_bytes());
            body.extend(std::iter::repeat_n(b'a', size));
            body.extend_from_slice(b"\r\n");
        }
        if tamper {
            body[200] = b'b';
        }
        body
    }

    async fn read_all<B: Body>(b: &mut B) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = b.next_chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    #[test]
    fn aws_streaming_example_verifies() {
        futures_lite::future::block_on(async {
            let mut body = AwsChunked::new(BytesBody::new(example_body(false), 1000), Some(example_ctx()));
            let data = read_all(&mut body).await.unwrap();
            assert_eq!(data.len(), 66560);
            assert!(data.iter().all(|b| *b == b'a'));
            let mut bad = AwsChunked::new(BytesBody::new(example_body(true), 1000), Some(example_ctx()));
            assert_eq!(read_all(&mut bad).await, Err(Error::SignatureDoesNotMatch));
        });
    }

    #[test]
    fn verifier_accepts_what_the_signer_signs() {
        let ctx = example_ctx();
        // The signer reproduces AWS's example signatures...
        let first = chunk_signature(&ctx, &ctx.seed, &[b'a'; 65536]);
        assert_eq!(first, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        // ...and a body it signs, cut in chunks of any size, verifies.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut wire = Vec::new();
        let mut previous = ctx.seed.clone();
        for chunk in data.chunks(64 << 10).chain(std::iter::once(&[][..])) {
            let sig = chunk_signature(&ctx, &previous, chunk);
            let before = wire.len();
            wire.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
            assert_eq!(wire.len() - before, signed_chunk_wire_bytes(chunk.len()));
            previous = sig;
        }
        futures_lite::future::block_on(async {
            let mut body = AwsChunked::new(BytesBody::new(wire, 4096), Some(ctx));
            assert_eq!(read_all(&mut body).await.unwrap(), data);
        });
    }

    #[test]
    fn unsigned_with_trailer() {
        futures_lite::future::block_on(async {
            let raw = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_vec();
            let mut body = AwsChunked::new(BytesBody::new(raw, 3), None);
            assert_eq!(read_all(&mut body).await.unwrap(), b"hello world");
            assert_eq!(body.trailers, vec![("x-amz-checksum-crc32".to_string(), "DUoRhQ==".to_string())]);
        });
    }
}
