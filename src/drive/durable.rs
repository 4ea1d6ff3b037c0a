//! Small files made durable with plain syscalls, for the drive's metadata
//! operations.
//!
//! A metadata commit is a handful of tiny syscalls (mkdir, open, write,
//! fdatasync, rename, fsync of a directory). Through io_uring almost every one
//! of them is punted to a kernel worker thread, so a commit cost a dozen thread
//! wake-ups per drive. Run as one closure on the blocking pool, it costs one
//! round trip. Everything here is synchronous and meant to be called only from
//! there (`local::blocking`).
//!
//! Durability holds without a filesystem journal (ext4 without one is common on
//! cloud volumes): a new file is fdatasynced before it is renamed into place,
//! the directory it lands in is fsynced after, and every directory created on
//! the way is made durable by fsyncing its parent.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates `dir` and any missing parents below `stop` (which must exist), then
/// fsyncs the parent of each directory it created, deepest first, so that a
/// crash cannot forget a directory a later write relies on. Returns whether
/// anything was created.
pub fn make_dirs(dir: &Path, stop: &Path) -> io::Result<bool> {
    // The missing directories, deepest first; `stop` itself is never made.
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() {
        if cur == stop || !cur.starts_with(stop) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        missing.push(cur);
        cur = cur.parent().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    }
    if missing.is_empty() {
        return Ok(false);
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            // Another request made it in the meantime: it syncs its own parent.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    for d in &missing {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(true)
}

/// Reads a whole small file; `None` when it does not exist. Refuses files over
/// `limit` bytes (a metadata file is never that large unless damaged).
pub fn read_optional(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, over the limit of {limit}", path.display()),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.read_to_end(&mut buf)?;
    Ok(Some(buf))
}

/// Durably replaces `path` with `data`: writes `tmp` (a fresh name), fdatasyncs
/// it, renames it over `path` and fsyncs the directory. Readers see the old
/// file or the new one, never a mix; `tmp` is removed on failure.
pub fn replace(tmp: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(tmp)?;
        file.write_all(data)?;
        file.sync_data()?;
        std::fs::rename(tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(path))
}

/// Makes removals under `dir` durable: fsyncs the deepest directory from `dir`
/// up to `stop` that still exists, the one whose entry for the removed tree
/// went last (directories emptied on the way were removed with it).
pub fn sync_after_removal(dir: &Path, stop: &Path) -> io::Result<()> {
    let mut cur = dir;
    while !cur.is_dir() {
        if cur == stop || !cur.starts_with(stop) {
            return Ok(());
        }
        cur = match cur.parent() {
            Some(p) => p,
            None => return Ok(()),
        };
    }
    sync_dir(cur)
}

/// fsyncs a directory, making the entries created or renamed in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_dirs_creates_below_stop_only() {
        let root = tempfile::tempdir().unwrap();
        let vol = root.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let deep = vol.join("a/b/c");
        assert!(make_dirs(&deep, &vol).unwrap());
        assert!(deep.is_dir());
        assert!(!make_dirs(&deep, &vol).unwrap(), "an existing directory is not created again");
        // A missing volume is not recreated: that is how a deleted bucket shows.
        let gone = root.path().join("gone/x");
        assert_eq!(make_dirs(&gone, &root.path().join("gone")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(!root.path().join("gone").exists());
    }

    #[test]
    fn replace_swaps_whole_files_and_cleans_up() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("meta");
        let tmp = root.path().join("meta.tmp");
        replace(&tmp, &path, b"first").unwrap();
        replace(&tmp, &path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!tmp.exists());
        // A rename into a missing directory fails and leaves no temp file behind.
        let nowhere = root.path().join("missing/meta");
        assert!(replace(&tmp, &nowhere, b"x").is_err());
        assert!(!tmp.exists());
    }

    #[test]
    fn sync_after_removal_finds_the_surviving_directory() {
        let root = tempfile::tempdir().unwrap();
        let vol = root.path().join("vol");
        std::fs::create_dir_all(vol.join("a/b")).unwrap();
        // The removed tree's parent survives: it is synced, without error.
        sync_after_removal(&vol.join("a/b/c"), &vol).unwrap();
        // Everything below the volume is gone: the volume itself is synced.
        std::fs::remove_dir_all(vol.join("a")).unwrap();
        sync_after_removal(&vol.join("a/b/c"), &vol).unwrap();
        // A vanished volume (a deleted bucket) is not an error either.
        std::fs::remove_dir(&vol).unwrap();
        sync_after_removal(&vol.join("a"), &vol).unwrap();
    }

    #[test]
    fn read_optional_limits_and_absence() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        assert_eq!(read_optional(&path, 10).unwrap(), None);
        std::fs::write(&path, b"0123456789AB").unwrap();
        assert_eq!(read_optional(&path, 12).unwrap().as_deref(), Some(&b"0123456789AB"[..]));
        assert_eq!(read_optional(&path, 11).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
