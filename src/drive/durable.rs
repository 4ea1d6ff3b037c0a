//! Small files made durable with plain syscalls, for the drive's metadata
//! operations.
//!
//! A metadata commit is a handful of tiny syscalls (mkdir, open, write,
//! fdatasync, rename, fsync of a directory). Through io_uring almost every one
//! of them is punted to a kernel worker thread, so a commit cost a dozen thread
//! wake-ups per drive. Run as one closure on the blocking pool, it costs one
//! round trip. Everything here is synchronous and meant to be called only from
//! there (`local::run`).
//!
//! Durability holds without a filesystem journal (ext4 without one is common on
//! cloud volumes): a new file is fdatasynced before it is renamed into place,
//! the directory it lands in is fsynced after, and every directory created on
//! the way is made durable by fsyncing its parent.
//!
//! A directory one commit has just created is not durable until that commit's
//! fsync of its parent ends; the drive's [`NewDirs`] lists such directories,
//! so that a concurrent commit that finds one on its path fsyncs that parent
//! too, instead of acknowledging a key under a directory a crash could forget.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The directories of one drive that commits are creating, with how many
/// commits are creating each: their entries in their parents are not durable
/// until those commits' fsyncs of the parents end.
///
/// (Sharing one fsync of a directory between the commits that changed it at
/// once, group-commit style, was measured and lost: waiting for an fsync that
/// began after one's change doubles a commit's latency, and small PUTs then
/// ran 10-20% slower than with each commit fsyncing on its own.)
#[derive(Default)]
pub struct NewDirs {
    creating: Mutex<HashMap<PathBuf, usize>>,
    /// Directories the journal's records created without syncs, with the
    /// generation of the journal file whose checkpoint makes them durable.
    journaled: Mutex<HashMap<PathBuf, u64>>,
    /// Directory fsyncs run.
    #[cfg(test)]
    fsyncs: std::sync::atomic::AtomicUsize,
}

impl NewDirs {
    fn lock(&self) -> MutexGuard<'_, HashMap<PathBuf, usize>> {
        // Only counters live behind the lock, each updated in one step: a
        // panic elsewhere cannot leave them half-changed.
        self.creating.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists directories a journal record created, until the checkpoint of
    /// `generation`.
    pub fn note_journaled(&self, dirs: &[PathBuf], generation: u64) {
        if dirs.is_empty() {
            return;
        }
        let mut journaled = self.journaled.lock().unwrap_or_else(PoisonError::into_inner);
        for d in dirs {
            journaled.insert(d.clone(), generation);
        }
    }

    /// The checkpoint of `generation` (and so of every older one) made its
    /// directories durable.
    pub fn forget_journaled(&self, generation: u64) {
        self.journaled.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, g| *g > generation);
    }

    /// [`sync_dir`], counted in tests.
    fn sync(&self, dir: &Path) -> io::Result<()> {
        #[cfg(test)]
        self.fsyncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sync_dir(dir)
    }

    /// Creates `dir` and any missing parents below `stop` (which must exist),
    /// then makes each one it created durable by fsyncing its parent, deepest
    /// first, so that a crash cannot forget a directory a later write relies
    /// on. Existing directories on the way that another commit is still
    /// making durable get their parents fsynced too. Returns whether anything
    /// was created.
    pub fn make_dirs(&self, dir: &Path, stop: &Path) -> io::Result<bool> {
        // The missing directories, deepest first; `stop` itself is never made.
        let mut missing = Vec::new();
        let mut cur = dir;
        while !cur.is_dir() {
            if cur == stop || !cur.starts_with(stop) {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            missing.push(cur.to_path_buf());
            cur = cur.parent().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        }
        // Existing directories from here up to `stop` that are not durable yet.
        let unsynced: Vec<PathBuf> = {
            let creating = self.lock();
            let journaled = self.journaled.lock().unwrap_or_else(PoisonError::into_inner);
            cur.ancestors()
                .take_while(|a| *a != stop && a.starts_with(stop))
                .filter(|a| creating.contains_key(*a) || journaled.contains_key(*a))
                .map(Path::to_path_buf)
                .collect()
        };
        let created = !missing.is_empty();
        if created {
            // Listed before they exist: whoever sees one of them exist also
            // sees that it is not durable yet.
            let mut listed = Creating::list(self, &missing);
            for d in missing.iter().rev() {
                match std::fs::create_dir(d) {
                    Ok(()) => {}
                    // Another commit made it in the meantime; this one still
                    // fsyncs the parent below, relying on nothing unsynced.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            if let Err(e) = missing.iter().try_for_each(|d| d.parent().map_or(Ok(()), |p| self.sync(p))) {
                // Not known to be durable: they stay listed, so that later
                // commits under them fsync their parents again.
                listed.keep();
                return Err(e);
            }
        }
        for d in &unsynced {
            if let Some(parent) = d.parent() {
                self.sync(parent)?;
            }
        }
        Ok(created)
    }
}

/// Directories a commit is creating, listed in [`NewDirs`] until the commit
/// is done with them (made durable, or failed to create).
struct Creating<'a> {
    new_dirs: &'a NewDirs,
    dirs: &'a [PathBuf],
    kept: bool,
}

impl<'a> Creating<'a> {
    fn list(new_dirs: &'a NewDirs, dirs: &'a [PathBuf]) -> Creating<'a> {
        let mut creating = new_dirs.lock();
        for d in dirs {
            *creating.entry(d.clone()).or_default() += 1;
        }
        Creating { new_dirs, dirs, kept: false }
    }

    /// Leaves the directories listed for good.
    fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut creating = self.new_dirs.lock();
        for d in self.dirs {
            if let Some(n) = creating.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    creating.remove(d);
                }
            }
        }
    }
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
/// it, renames it over `path` and fsyncs the directory.
/// Readers see the old file or the new one, never a mix; `tmp` is removed on
/// failure.
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

/// fsyncs a directory, making the entries created, renamed or removed in it
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fsyncs(new_dirs: &NewDirs) -> usize {
        new_dirs.fsyncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn make_dirs_creates_below_stop_only() {
        let root = tempfile::tempdir().unwrap();
        let new_dirs = NewDirs::default();
        let vol = root.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let deep = vol.join("a/b/c");
        assert!(new_dirs.make_dirs(&deep, &vol).unwrap());
        assert!(deep.is_dir());
        assert_eq!(fsyncs(&new_dirs), 3, "the parent of each of a, b and c");
        assert!(new_dirs.lock().is_empty(), "durable directories are no longer listed");
        assert!(!new_dirs.make_dirs(&deep, &vol).unwrap(), "an existing directory is not created again");
        assert_eq!(fsyncs(&new_dirs), 3);
        // A missing volume is not recreated: that is how a deleted bucket shows.
        let gone = root.path().join("gone/x");
        assert_eq!(new_dirs.make_dirs(&gone, &root.path().join("gone")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(!root.path().join("gone").exists());
    }

    #[test]
    fn a_directory_still_being_made_durable_is_made_durable_by_whoever_finds_it() {
        let root = tempfile::tempdir().unwrap();
        let new_dirs = NewDirs::default();
        let vol = root.path().join("vol");
        let prefix = vol.join("prefix");
        std::fs::create_dir_all(&prefix).unwrap();
        // Another commit has just created `prefix` and not yet fsynced `vol`.
        let others = [prefix.clone()];
        let other = Creating::list(&new_dirs, &others);
        assert!(new_dirs.make_dirs(&prefix.join("key"), &vol).unwrap());
        assert_eq!(fsyncs(&new_dirs), 2, "prefix for the new key, and vol for prefix");
        drop(other);
        assert!(new_dirs.lock().is_empty());
        // Once the other commit is done, finding `prefix` costs nothing extra.
        assert!(new_dirs.make_dirs(&prefix.join("key2"), &vol).unwrap());
        assert_eq!(fsyncs(&new_dirs), 3);
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
