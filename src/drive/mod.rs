//! Drives: the one interface through which the object layer reaches storage.
//!
//! A drive is a directory on one block volume. The object layer holds a
//! [`DriveHandle`] per drive of a set and calls it the same way whether the drive
//! is owned by this core ([`LocalDrive`], direct I/O through io_uring), by another
//! core of this node (a message to the owner, see `runtime::peer`), or, later, by
//! another node. Every operation is a [`DriveOp`] value so that all three
//! implementations share one vocabulary; only shard streaming has its own path.
//!
//! This module also owns the on-disk formats: `format.json` ([`format`]), the
//! per-object metadata file ([`meta`]) and the sorted key walk ([`walk`]).

mod durable;
pub mod format;
mod handle;
pub mod journal;
pub mod lend;
mod local;
pub mod meta;
mod ops;
mod piece;
pub mod walk;
mod writer;

pub use handle::{DriveHandle, ShardWriter};
pub use local::LocalDrive;
pub use ops::{DiskInfo, DriveOp, DriveReply, VolumeInfo};
pub use piece::Piece;
pub use writer::{FILE_ALIGN_BYTES, LocalWriter};

/// The volume (top-level directory of a drive) that holds basalt's own files.
pub const SYS_VOLUME: &str = ".basalt.sys";
/// In-flight writes, under [`SYS_VOLUME`]; emptied at start.
pub const TMP_DIR: &str = "tmp";
/// Multipart uploads in progress, under [`SYS_VOLUME`].
pub const MULTIPART_DIR: &str = "multipart";
/// Every name basalt keeps inside a bucket starts with this; object keys may not
/// contain a segment that does (see `object::names`).
pub const RESERVED_PREFIX: &str = ".basalt.";
/// The metadata file of object `k` lives at `<bucket>/<k>/.basalt.meta`.
pub const META_FILE: &str = ".basalt.meta";
/// The metadata file of a "directory object" `k/` (a key ending in a slash).
pub const DIR_META_FILE: &str = ".basalt.dirmeta";
/// Data directories of an object version are named `.basalt.data.<uuid>`.
pub const DATA_DIR_PREFIX: &str = ".basalt.data.";
/// Bucket metadata (creation time) inside the bucket directory.
pub const BUCKET_META_FILE: &str = ".basalt.bucket";
/// A metadata file being replaced is written first to `.basalt.tmp.<uuid>` in
/// its own directory (a rename within one directory takes no filesystem-wide
/// lock). A crash mid-commit can leave one behind: listings and reads never
/// look at reserved names, so it is only a few stray bytes.
pub const META_TMP_PREFIX: &str = ".basalt.tmp.";

/// Why one drive operation failed. Cloneable and `Send` so it can cross cores and,
/// later, the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum DriveError {
    #[error("file not found")]
    FileNotFound,
    #[error("volume not found")]
    VolumeNotFound,
    #[error("volume exists")]
    VolumeExists,
    #[error("volume not empty")]
    VolumeNotEmpty,
    #[error("file is corrupt: {0}")]
    Corrupt(String),
    #[error("drive is full")]
    DriveFull,
    #[error("drive is offline")]
    Offline,
    #[error("invalid path {0:?}")]
    InvalidPath(String),
    #[error("I/O error: {0}")]
    Io(String),
}

impl DriveError {
    pub fn from_io(e: &std::io::Error) -> DriveError {
        match e.kind() {
            std::io::ErrorKind::NotFound => DriveError::FileNotFound,
            std::io::ErrorKind::StorageFull => DriveError::DriveFull,
            _ => match e.raw_os_error() {
                Some(libc_enospc) if libc_enospc == nix::libc::ENOSPC => DriveError::DriveFull,
                _ => DriveError::Io(e.to_string()),
            },
        }
    }

    pub fn from_glommio(e: glommio::GlommioError<()>) -> DriveError {
        match e {
            glommio::GlommioError::IoError(io) => DriveError::from_io(&io),
            glommio::GlommioError::EnhancedIoError { source, .. } => DriveError::from_io(&source),
            other => DriveError::Io(other.to_string()),
        }
    }
}

pub type DriveResult<T> = Result<T, DriveError>;
