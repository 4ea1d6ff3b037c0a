//! The inter-node protocol on the wire: the preamble that tells it apart from
//! HTTP on the shared port, length-prefixed frames, the messages they carry, and
//! the mutual HMAC handshake.
//!
//! A frame is `[u32 len][u64 id][u8 kind][body]` (big endian; `len` counts id,
//! kind and body). Requests and responses carry a postcard-encoded message;
//! shard chunks carry raw bytes, so streaming a shard costs no encoding. Ids tie
//! a response (or a stream's chunks and acks) to its request; many requests are
//! in flight on one connection at once.
//!
//! Handshake, before any request: the client sends the preamble and `Hello`
//! (protocol version, nonce, its node, the topology fingerprint, the deployment
//! id); the server answers `Challenge` with its nonce and an HMAC proving it knows
//! the cluster key; the client answers `Proof` with its own HMAC; the server says
//! `Welcome` or `Refused`. The key is derived from the root credentials, so a node
//! with other keys fails, and the fingerprint and deployment id keep nodes of
//! another cluster (or started with other arguments) out.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::drive::format::Format;
use crate::drive::{DriveError, DriveOp, DriveReply};

/// First bytes of an inter-node connection. HTTP requests start with a method
/// name, never with a NUL byte.
pub const PREAMBLE: &[u8; 8] = b"\0BASALT\x01";
/// Protocol version; peers with another one are refused at the handshake.
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest frame accepted: a shard block (1 MiB / k plus its hash) or a listing
/// page fits with room to spare; anything larger is a broken or hostile peer.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
const HEADER_BYTES: usize = 13;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    Challenge = 2,
    Proof = 3,
    Welcome = 4,
    Refused = 5,
    Request = 10,
    Response = 11,
    /// Shard bytes of a stream opened by a `CreateFile` request.
    Chunk = 12,
    /// The end of a stream; the response follows.
    End = 13,
    /// The receiver consumed one chunk of the stream: the sender may send another.
    Ack = 14,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Challenge,
            3 => Kind::Proof,
            4 => Kind::Welcome,
            5 => Kind::Refused,
            10 => Kind::Request,
            11 => Kind::Response,
            12 => Kind::Chunk,
            13 => Kind::End,
            14 => Kind::Ack,
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub struct Frame {
    pub id: u64,
    pub kind: Kind,
    pub body: Bytes,
}

impl Frame {
    pub fn new(id: u64, kind: Kind, body: Bytes) -> Frame {
        Frame { id, kind, body }
    }

    pub fn message<T: Serialize>(id: u64, kind: Kind, msg: &T) -> Frame {
        let body = postcard::to_stdvec(msg).map(Bytes::from).unwrap_or_default();
        Frame { id, kind, body }
    }

    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T, WireError> {
        postcard::from_bytes(&self.body).map_err(|e| WireError::Malformed(format!("{:?} frame: {e}", self.kind)))
    }
}

/// Why a connection ended or could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(String),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("refused: {0}")]
    Refused(String),
    #[error("timed out")]
    Timeout,
}

pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, WireError> {
    let mut head = [0u8; HEADER_BYTES];
    r.read_exact(&mut head).await.map_err(io_err)?;
    let mut h = &head[..];
    let len = h.get_u32() as usize;
    let id = h.get_u64();
    let kind = Kind::from_u8(h.get_u8()).ok_or_else(|| WireError::Malformed(format!("unknown kind {}", head[12])))?;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(len));
    }
    let body_len = len.checked_sub(HEADER_BYTES - 4).ok_or_else(|| WireError::Malformed("short frame".into()))?;
    let mut body = BytesMut::zeroed(body_len);
    r.read_exact(&mut body).await.map_err(io_err)?;
    Ok(Frame { id, kind, body: body.freeze() })
}

/// Writes frames back to back; small ones are gathered into one write.
pub async fn write_frames<W: AsyncWrite + Unpin>(w: &mut W, frames: &[Frame]) -> Result<(), WireError> {
    let mut small = BytesMut::new();
    for f in frames {
        small.put_u32((HEADER_BYTES - 4 + f.body.len()) as u32);
        small.put_u64(f.id);
        small.put_u8(f.kind as u8);
        if f.body.len() <= 4096 {
            small.extend_from_slice(&f.body);
        } else {
            w.write_all(&small).await.map_err(io_err)?;
            small.clear();
            w.write_all(&f.body).await.map_err(io_err)?;
        }
    }
    if !small.is_empty() {
        w.write_all(&small).await.map_err(io_err)?;
    }
    w.flush().await.map_err(io_err)
}

fn io_err(e: std::io::Error) -> WireError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { WireError::Closed } else { WireError::Io(e.to_string()) }
}

// ---- handshake ----------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub nonce: [u8; 32],
    pub node: u32,
    pub fingerprint: u64,
    pub deployment: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Challenge {
    pub version: u16,
    pub nonce: [u8; 32],
    pub deployment: String,
    pub proof: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Proof {
    pub proof: Vec<u8>,
}

/// The key nodes prove to each other they hold: HMAC-SHA256 of a fixed label
/// under the root secret, so it never equals anything that signs S3 requests.
pub fn cluster_key(access_key: &str, secret_key: &str) -> hmac::Key {
    let root = hmac::Key::new(hmac::HMAC_SHA256, secret_key.as_bytes());
    let derived = hmac::sign(&root, format!("basalt inter-node v1\n{access_key}").as_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// What one side signs: who speaks, both nonces (its peer's first), and the
/// topology fingerprint, so a proof cannot be replayed on another connection.
fn transcript(role: &[u8], theirs: &[u8; 32], ours: &[u8; 32], fingerprint: u64) -> Vec<u8> {
    let mut t = Vec::with_capacity(80);
    t.extend_from_slice(role);
    t.extend_from_slice(theirs);
    t.extend_from_slice(ours);
    t.extend_from_slice(&fingerprint.to_be_bytes());
    t
}

pub fn server_proof(key: &hmac::Key, client: &[u8; 32], server: &[u8; 32], fingerprint: u64) -> Vec<u8> {
    hmac::sign(key, &transcript(b"server", client, server, fingerprint)).as_ref().to_vec()
}

pub fn client_proof(key: &hmac::Key, server: &[u8; 32], client: &[u8; 32], fingerprint: u64) -> Vec<u8> {
    hmac::sign(key, &transcript(b"client", server, client, fingerprint)).as_ref().to_vec()
}

/// Constant-time check of a peer's proof.
pub fn verify_server(key: &hmac::Key, client: &[u8; 32], server: &[u8; 32], fp: u64, proof: &[u8]) -> bool {
    hmac::verify(key, &transcript(b"server", client, server, fp), proof).is_ok()
}

pub fn verify_client(key: &hmac::Key, server: &[u8; 32], client: &[u8; 32], fp: u64, proof: &[u8]) -> bool {
    hmac::verify(key, &transcript(b"client", server, client, fp), proof).is_ok()
}

pub fn nonce() -> [u8; 32] {
    use ring::rand::SecureRandom;
    let mut n = [0u8; 32];
    // The system RNG does not fail on Linux; a zero nonce would still be unique
    // enough per connection combined with the peer's.
    let _ = ring::rand::SystemRandom::new().fill(&mut n);
    n
}

// ---- requests -------------------------------------------------------------------

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Ping,
    /// One drive operation on a drive of the receiving node (global index).
    Drive {
        drive: u32,
        op: DriveOp,
    },
    /// Opens a shard file for streaming: `Chunk` frames follow, then `End`.
    CreateFile {
        drive: u32,
        volume: String,
        path: String,
        /// The file's final size, when known: reserved up front.
        size: Option<u64>,
    },
    /// The receiving node's drives' `format.json`s, for start-up agreement.
    Formats,
    /// Writes a format on an unformatted drive of the receiving node.
    WriteFormat {
        drive: u32,
        format: Format,
    },
    /// Takes a lock if it is free now; held until released or the lease lapses.
    TryLock {
        key: String,
        write: bool,
        holder: u64,
        lease_ms: u64,
    },
    Unlock {
        key: String,
        holder: u64,
    },
    /// Extends the leases of locks this node holds there.
    Refresh {
        locks: Vec<(String, u64)>,
        lease_ms: u64,
    },
    /// The receiving node's drives and their state, for `admin info`.
    Info,
}

/// A drive as `admin info` reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriveStatus {
    pub drive: u32,
    pub path: String,
    pub online: bool,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Pong,
    Drive(Result<DriveReply, DriveError>),
    Written(Result<u64, DriveError>),
    Formats(Vec<(u32, Result<Option<Format>, String>)>),
    Done(Result<(), String>),
    Granted(bool),
    Info(Vec<DriveStatus>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        futures_lite::future::block_on(async {
            let mut buf = Vec::new();
            let frames = vec![
                Frame::message(7, Kind::Request, &Request::Ping),
                Frame::new(8, Kind::Chunk, Bytes::from(vec![9u8; 10_000])),
                Frame::new(8, Kind::End, Bytes::new()),
            ];
            write_frames(&mut buf, &frames).await.unwrap();
            let mut r = &buf[..];
            let f = read_frame(&mut r).await.unwrap();
            assert_eq!((f.id, f.kind), (7, Kind::Request));
            assert!(matches!(f.decode::<Request>().unwrap(), Request::Ping));
            let f = read_frame(&mut r).await.unwrap();
            assert_eq!((f.id, f.kind, f.body.len()), (8, Kind::Chunk, 10_000));
            let f = read_frame(&mut r).await.unwrap();
            assert_eq!(f.kind, Kind::End);
            assert_eq!(read_frame(&mut r).await.unwrap_err(), WireError::Closed);
            // A length over the limit is refused before anything is allocated.
            let mut huge = Vec::new();
            huge.put_u32(u32::MAX);
            huge.put_u64(1);
            huge.put_u8(10);
            assert!(matches!(read_frame(&mut &huge[..]).await, Err(WireError::TooLarge(_))));
        });
    }

    #[test]
    fn proofs_need_the_same_key_and_nonces() {
        let k = cluster_key("admin", "secret-1");
        let other = cluster_key("admin", "secret-2");
        let (c, s) = (nonce(), nonce());
        let p = server_proof(&k, &c, &s, 42);
        assert!(verify_server(&k, &c, &s, 42, &p));
        assert!(!verify_server(&other, &c, &s, 42, &p));
        assert!(!verify_server(&k, &c, &s, 43, &p));
        assert!(!verify_server(&k, &s, &c, 42, &p));
        let q = client_proof(&k, &s, &c, 42);
        assert!(verify_client(&k, &s, &c, 42, &q));
        // A server proof is never a valid client proof.
        assert!(!verify_client(&k, &c, &s, 42, &p));
    }
}
