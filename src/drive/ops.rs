//! The operations a drive performs, as values: the same request travels to a
//! drive on this core, on another core, or (later) on another node.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One request to a drive. Paths are relative to a volume (a bucket, or
/// [`super::SYS_VOLUME`]); the drive checks them before touching the disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DriveOp {
    /// Creates a bucket directory and its metadata; `VolumeExists` if present.
    MakeVolume {
        volume: String,
        created_ns: i64,
    },
    /// Recreates whatever a healed drive lacks: its root, system folders,
    /// `format.json` and the volume. Never fails because something exists.
    HealVolume {
        volume: String,
        created_ns: i64,
    },
    /// Removes an empty bucket; `VolumeNotEmpty` if it holds any object.
    DeleteVolume {
        volume: String,
    },
    ListVolumes,
    StatVolume {
        volume: String,
    },
    /// Reads a whole (small) file.
    ReadAll {
        volume: String,
        path: String,
    },
    /// Replaces a file atomically and durably (temp file, fdatasync, rename, dir fsync).
    WriteAll {
        volume: String,
        path: String,
        data: Bytes,
    },
    /// Reads `len` bytes at `offset`; fewer only at end of file.
    ReadAt {
        volume: String,
        path: String,
        offset: u64,
        len: u64,
    },
    /// Removes a file, or a directory tree when `recursive`; missing is not an error.
    Delete {
        volume: String,
        path: String,
        recursive: bool,
    },
    /// Names in a directory, sorted; directories carry a trailing `/`.
    ListDir {
        volume: String,
        path: String,
    },
    /// Renames a file, creating the target's parent directory if needed.
    RenameFile {
        src_volume: String,
        src_path: String,
        dst_volume: String,
        dst_path: String,
    },
    /// Commits an object version: moves the temp data directory `src_dir` (if any)
    /// to `<key>/<data_dir>` and writes the metadata file `meta_name` atomically.
    /// Replies with the previous metadata file, if there was one, so the caller can
    /// roll back or clean up.
    RenameData {
        src_dir: Option<String>,
        volume: String,
        key_dir: String,
        data_dir: Option<String>,
        meta_name: String,
        meta: Bytes,
    },
    /// Undoes a [`DriveOp::RenameData`]: puts back `old_meta` (or removes the
    /// metadata file) and removes `data_dir`.
    UndoRename {
        volume: String,
        key_dir: String,
        meta_name: String,
        old_meta: Option<Bytes>,
        data_dir: Option<String>,
    },
    /// Removes an object: its metadata file, the data directory it names, and
    /// parent directories left empty.
    DeleteObject {
        volume: String,
        key_dir: String,
        meta_name: String,
    },
    /// Removes one data directory of an object (an old version's) and prunes.
    DeleteDataDir {
        volume: String,
        key_dir: String,
        data_dir: String,
    },
    /// Object keys in `volume` starting with `prefix`, greater than `start_after`,
    /// in byte order, at most `limit`.
    Walk {
        volume: String,
        prefix: String,
        start_after: String,
        limit: usize,
    },
    DiskInfo,
}

/// A drive's answer to a [`DriveOp`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DriveReply {
    Done,
    Data(Bytes),
    OldMeta(Option<Bytes>),
    Names(Vec<String>),
    Volumes(Vec<VolumeInfo>),
    Volume(VolumeInfo),
    Info(DiskInfo),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    pub created_ns: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    pub total_bytes: u64,
    pub free_bytes: u64,
}
