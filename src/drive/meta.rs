//! The metadata file of one object version on one drive.
//!
//! Layout (all integers little endian):
//! ```text
//! magic "BSLTMETA" | version u32 | json_len u32 | inline_len u32 | reserved u32
//! | xxh3-64 of (json ++ inline) u64 | json | inline shard bytes
//! ```
//! The JSON holds [`ObjectMeta`]; `inline` holds this drive's framed shards for a
//! small object stored inside its metadata. An unknown version or a checksum
//! mismatch is an error, never silently accepted.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::DriveError;

const MAGIC: &[u8; 8] = b"BSLTMETA";
/// Version of the layout above; bump on any incompatible change.
pub const META_VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 4 + 4 + 4 + 8;
/// Refuse to parse metadata claiming more than this; real ones are a few KiB plus
/// at most one inline object.
const MAX_META_BYTES: usize = 4 << 20;

/// Erasure layout of a version and this drive's place in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureInfo {
    pub data: usize,
    pub parity: usize,
    pub block_size: usize,
    /// Which shard (0-based) this drive holds.
    pub index: usize,
}

/// One part of an object (a single PUT has one part, number 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    pub etag: String,
}

/// Everything known about one object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Unique per PUT; drives that agree on it hold the same version.
    pub version_id: String,
    pub mod_time_ns: i64,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    /// Other standard headers (cache-control, content-encoding, ...), lower case.
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` user metadata, names lower case without the prefix.
    pub user_meta: BTreeMap<String, String>,
    /// Checksums the client asked for (algorithm -> base64 value).
    pub checksums: BTreeMap<String, String>,
    pub erasure: ErasureInfo,
    pub parts: Vec<PartInfo>,
    /// `None` when the data is inline in the metadata file.
    pub data_dir: Option<String>,
}

impl ObjectMeta {
    /// True when two drives' copies describe the same version (they differ only in
    /// the shard index each drive holds).
    pub fn same_version(&self, other: &ObjectMeta) -> bool {
        self.version_id == other.version_id && self.mod_time_ns == other.mod_time_ns && self.size == other.size
    }
}

/// Serialises metadata plus optional inline shard bytes into a metadata file.
pub fn encode(meta: &ObjectMeta, inline: &[u8]) -> Bytes {
    let json = serde_json::to_vec(meta).expect("metadata always serialises");
    let mut out = BytesMut::with_capacity(HEADER_BYTES + json.len() + inline.len());
    out.put_slice(MAGIC);
    out.put_u32_le(META_VERSION);
    out.put_u32_le(json.len() as u32);
    out.put_u32_le(inline.len() as u32);
    out.put_u32_le(0);
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&json);
    hasher.update(inline);
    out.put_u64_le(hasher.digest());
    out.put_slice(&json);
    out.put_slice(inline);
    out.freeze()
}

/// Parses and verifies a metadata file; returns the metadata and the inline bytes.
pub fn decode(file: &Bytes) -> Result<(ObjectMeta, Bytes), DriveError> {
    let corrupt = |why: &str| DriveError::Corrupt(format!("metadata file: {why}"));
    if file.len() < HEADER_BYTES || file.len() > MAX_META_BYTES {
        return Err(corrupt("bad length"));
    }
    if &file[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let word = |at: usize| u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]);
    let version = word(8);
    if version != META_VERSION {
        return Err(corrupt(&format!("unknown version {version}")));
    }
    let json_len = word(12) as usize;
    let inline_len = word(16) as usize;
    if HEADER_BYTES + json_len + inline_len != file.len() {
        return Err(corrupt("lengths do not match the file size"));
    }
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&file[24..32]);
    let body = &file[HEADER_BYTES..];
    if u64::from_le_bytes(sum) != xxhash_rust::xxh3::xxh3_64(body) {
        return Err(corrupt("checksum mismatch"));
    }
    let meta: ObjectMeta = serde_json::from_slice(&body[..json_len]).map_err(|e| corrupt(&format!("bad json: {e}")))?;
    let inline = file.slice(HEADER_BYTES + json_len..);
    Ok((meta, inline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectMeta {
        ObjectMeta {
            version_id: "v".into(),
            mod_time_ns: 5,
            size: 3,
            etag: "e".into(),
            content_type: "text/plain".into(),
            headers: BTreeMap::new(),
            user_meta: [("a".to_string(), "b".to_string())].into_iter().collect(),
            checksums: BTreeMap::new(),
            erasure: ErasureInfo { data: 2, parity: 2, block_size: 1 << 20, index: 1 },
            parts: vec![PartInfo { number: 1, size: 3, etag: "e".into() }],
            data_dir: None,
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let file = encode(&sample(), b"inline!");
        let (meta, inline) = decode(&file).unwrap();
        assert_eq!(meta, sample());
        assert_eq!(&inline[..], b"inline!");
        for at in [0, 9, 13, 30, file.len() - 1] {
            let mut bad = file.to_vec();
            bad[at] ^= 0x40;
            assert!(decode(&Bytes::from(bad)).is_err(), "flip at {at} accepted");
        }
        assert!(decode(&file.slice(..file.len() - 1)).is_err());
    }
}
