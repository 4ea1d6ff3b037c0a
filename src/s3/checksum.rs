//! Flexible checksums (`x-amz-checksum-crc32`, `-crc32c`, `-sha1`, `-sha256`,
//! `-crc64nvme`), as modern SDKs send them: in a header before the body, or in
//! a trailer after an `aws-chunked` body. The body is checksummed as it streams;
//! at its end the value is compared and, when it matches, stored with the object
//! and returned on GET/HEAD to clients that ask (`x-amz-checksum-mode: ENABLED`).

use base64::Engine;
use bytes::Bytes;

use super::RequestBody;
use crate::error::{Error, Result};
use crate::http::head::Request;
use crate::object::Body;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Sha1,
    Sha256,
    Crc64Nvme,
}

pub const ALL: [Algorithm; 5] =
    [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Sha1, Algorithm::Sha256, Algorithm::Crc64Nvme];

impl Algorithm {
    /// The header (and trailer) carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    /// The name S3 uses in XML and `x-amz-checksum-algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Crc64Nvme => "CRC64NVME",
        }
    }

    fn from_header(name: &str) -> Option<Algorithm> {
        ALL.into_iter().find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }
}

enum State {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    /// Boxed: a SHA context is far larger than a CRC state.
    Sha(Box<ring::digest::Context>),
    Crc64(crc64fast_nvme::Digest),
}

/// A running checksum.
pub struct Hasher {
    algorithm: Algorithm,
    state: State,
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        let state = match algorithm {
            Algorithm::Crc32 => State::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => State::Crc32c(0),
            Algorithm::Sha1 => {
                State::Sha(Box::new(ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY)))
            }
            Algorithm::Sha256 => State::Sha(Box::new(ring::digest::Context::new(&ring::digest::SHA256))),
            Algorithm::Crc64Nvme => State::Crc64(crc64fast_nvme::Digest::new()),
        };
        Hasher { algorithm, state }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(h) => h.update(data),
            State::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            State::Sha(h) => h.update(data),
            State::Crc64(h) => h.write(data),
        }
    }

    /// The checksum as S3 writes it: big-endian bytes, base64.
    pub fn finish(self) -> String {
        let bytes = match self.state {
            State::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            State::Crc32c(c) => c.to_be_bytes().to_vec(),
            State::Sha(h) => h.finish().as_ref().to_vec(),
            State::Crc64(h) => h.sum64().to_be_bytes().to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Which checksum a request carries and where.
pub struct Expected {
    algorithm: Algorithm,
    /// The value from a header; `None` when it comes in a trailer.
    value: Option<String>,
}

impl Expected {
    /// Reads the request's checksum header or announced trailer, if any.
    pub fn from_request(req: &Request) -> Result<Option<Expected>> {
        let mut found = None;
        for algorithm in ALL {
            if let Some(v) = req.header(algorithm.header()) {
                if found.is_some() {
                    return Err(Error::InvalidRequest("more than one checksum header".into()));
                }
                found = Some(Expected { algorithm, value: Some(v.trim().to_string()) });
            }
        }
        if let Some(trailer) = req.header("x-amz-trailer") {
            let algorithm = Algorithm::from_header(trailer)
                .ok_or_else(|| Error::InvalidRequest(format!("unsupported trailer {trailer}")))?;
            if found.is_some() {
                return Err(Error::InvalidRequest("a checksum in both a header and a trailer".into()));
            }
            found = Some(Expected { algorithm, value: None });
        }
        Ok(found)
    }
}

/// A request body checked against its flexible checksum as it streams.
pub struct ChecksumBody<'b, 'a> {
    inner: &'b mut RequestBody<'a>,
    check: Option<(Expected, Hasher)>,
    verified: Option<(Algorithm, String)>,
}

impl<'b, 'a> ChecksumBody<'b, 'a> {
    pub fn new(inner: &'b mut RequestBody<'a>, expected: Option<Expected>) -> ChecksumBody<'b, 'a> {
        let check = expected.map(|e| {
            let h = Hasher::new(e.algorithm);
            (e, h)
        });
        ChecksumBody { inner, check, verified: None }
    }

    fn verify_end(&mut self) -> Result<()> {
        let Some((expected, hasher)) = self.check.take() else { return Ok(()) };
        let algorithm = hasher.algorithm();
        let want = match expected.value {
            Some(v) => v,
            None => {
                self.inner.trailers().iter().find(|(n, _)| n == algorithm.header()).map(|(_, v)| v.clone()).ok_or_else(
                    || Error::InvalidRequest(format!("the announced trailer {} is missing", algorithm.header())),
                )?
            }
        };
        let got = hasher.finish();
        if got != want {
            return Err(Error::BadChecksum(algorithm.name().into()));
        }
        self.verified = Some((algorithm, got));
        Ok(())
    }
}

impl Body for ChecksumBody<'_, '_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.inner.next_chunk().await? {
            Some(c) => {
                if let Some((_, h)) = &mut self.check {
                    h.update(&c);
                }
                Ok(Some(c))
            }
            None => {
                self.verify_end()?;
                Ok(None)
            }
        }
    }

    async fn read_into(&mut self, dst: &mut [u8]) -> Result<Option<usize>> {
        let read = self.inner.read_into(dst).await?;
        match read {
            Some(0) => self.verify_end()?,
            Some(n) => {
                if let Some((_, h)) = &mut self.check {
                    h.update(&dst[..n]);
                }
            }
            None => {}
        }
        Ok(read)
    }

    fn verified_checksums(&self) -> Vec<(String, String)> {
        self.verified.iter().map(|(a, v)| (a.name().to_string(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(a);
        h.update(data);
        h.finish()
    }

    #[test]
    fn known_values() {
        // "hello world" as the SDKs compute it.
        assert_eq!(sum(Algorithm::Crc32, b"hello world"), "DUoRhQ==");
        assert_eq!(sum(Algorithm::Crc32c, b"hello world"), "yZRlqg==");
        assert_eq!(sum(Algorithm::Sha1, b"hello world"), "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(sum(Algorithm::Sha256, b"hello world"), "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=");
        assert_eq!(sum(Algorithm::Crc64Nvme, b"hello world"), "jSnVw/bqjr4=");
    }
}
