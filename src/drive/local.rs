//! A drive owned by this core: a directory, reached through glommio's io_uring
//! reactor with O_DIRECT (`DmaFile`; shard files are written by `writer`).
//!
//! Where O_DIRECT is impossible (tmpfs) glommio itself falls back to buffered
//! I/O; the drive logs that once when it is opened. Operations with no io_uring
//! form (readdir, mkdir -p, statvfs, rm -r) run on glommio's blocking pool so the
//! executor never blocks.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use glommio::io::{DmaFile, ReadResult};

use super::durable::{self, NewDirs};
use super::format::{self, Format};
use super::journal::{self, Journal, Record};
use super::ops::{DiskInfo, DriveOp, DriveReply, VolumeInfo};
use super::writer::LocalWriter;
use super::{
    BUCKET_META_FILE, DriveError, DriveResult, META_TMP_PREFIX, MULTIPART_DIR, RESERVED_PREFIX, SYS_VOLUME, TMP_DIR,
    walk,
};

/// A single `ReadAll`/`ReadAt` may not ask for more than this: it is a block's
/// shard or a metadata file, never a whole object.
const MAX_READ_BYTES: u64 = 8 << 20;

/// Shard files a drive keeps open for reads. A GET reads the same part files
/// block after block; opening and closing them for every block cost two
/// io_uring worker round trips and a statfs per shard per MiB.
const OPEN_READ_FILES: usize = 64;

/// A shard file held open for reads, and the inode it was opened as.
struct OpenRead {
    path: PathBuf,
    inode: u64,
    file: std::rc::Rc<DmaFile>,
}

/// One local drive; lives on its owner core only.
pub struct LocalDrive {
    root: PathBuf,
    index: usize,
    /// Known once the drives are formatted (at start-up; in a cluster, after the
    /// nodes agreed); heal rewrites it on a wiped drive.
    format: std::cell::RefCell<Option<Format>>,
    /// Recently read shard files, least recently used first.
    open_reads: std::cell::RefCell<std::collections::VecDeque<OpenRead>>,
    /// Directories being created by the metadata operations running now.
    new_dirs: Arc<NewDirs>,
    /// Where object commits and deletes are made durable (`journal`); `None`
    /// when `BASALT_METADATA_JOURNAL=off`.
    journal: Option<Rc<Journal>>,
}

impl LocalDrive {
    pub fn open(root: PathBuf, index: usize, format: Option<Format>) -> LocalDrive {
        if let Ok(stat) = nix::sys::statfs::statfs(&root)
            && stat.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
        {
            tracing::warn!(drive = %root.display(), "drive is on tmpfs: O_DIRECT is impossible there, using buffered I/O");
        }
        let new_dirs: Arc<NewDirs> = Arc::default();
        LocalDrive {
            journal: journal::enabled().then(|| {
                let j = Journal::new(root.clone(), new_dirs.clone());
                // A formatted drive has its system folder: the first file can be made now.
                if format.is_some() {
                    j.warm(0);
                }
                j
            }),
            root,
            index,
            new_dirs,
            format: std::cell::RefCell::new(format),
            open_reads: std::cell::RefCell::new(std::collections::VecDeque::new()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// Resolves a volume-relative path, refusing anything that could leave the
    /// drive: paths arrive from other cores and other nodes, so check them here.
    fn resolve(&self, volume: &str, path: &str) -> DriveResult<PathBuf> {
        resolve(&self.root, volume, path)
    }

    fn tmp_file(&self) -> PathBuf {
        self.tmp_area().join(format!("{}.w", uuid::Uuid::new_v4()))
    }

    /// A fresh name for the new copy of a metadata file in `dir`, beside the
    /// file it replaces. A temp file in the system volume instead costs every
    /// commit a rename across directories, which takes the filesystem-wide
    /// rename lock, and (on ext4 without a journal, which syncs a new file's
    /// directory with the file) an fsync of the one directory all commits are
    /// changing. (On the 2-core development VM the difference in small PUTs
    /// was lost in the noise of alternating runs; it grows with the commits
    /// running at once on a drive.)
    fn tmp_beside(dir: &Path) -> PathBuf {
        dir.join(format!("{META_TMP_PREFIX}{}", uuid::Uuid::new_v4()))
    }

    /// The system volume's temp area: emptied at start, never removed, so it is
    /// there as long as the drive is mounted and formatted.
    fn tmp_area(&self) -> PathBuf {
        self.root.join(SYS_VOLUME).join(TMP_DIR)
    }

    fn note<T>(&self, r: DriveResult<T>) -> DriveResult<T> {
        if let Err(DriveError::Io(e)) = &r {
            crate::metrics::drive_io_error(self.index);
            tracing::warn!(drive = %self.root.display(), error = %e, "drive I/O error");
        }
        r
    }

    /// Performs one operation.
    pub async fn execute(&self, op: DriveOp) -> DriveResult<DriveReply> {
        let r = self.execute_inner(op).await;
        self.judge(r).await
    }

    /// `ReadAt` without the copy out of the DMA buffer, for a reader on this core.
    pub async fn read_piece(&self, volume: &str, path: &str, offset: u64, len: u64) -> DriveResult<ReadResult> {
        let r = async {
            check_read_len(len)?;
            let path = self.resolve(volume, path)?;
            self.read_shard(&path, offset, len).await
        }
        .await;
        self.judge(r).await
    }

    /// An operation's result as the drive reports it: "not found" from a drive
    /// whose root vanished (unmounted, wiped) means the drive is gone, not the
    /// file, so it never votes "no such object"; I/O errors are counted.
    async fn judge<T>(&self, r: DriveResult<T>) -> DriveResult<T> {
        let r = match r {
            Err(DriveError::FileNotFound | DriveError::VolumeNotFound) if !self.present().await => {
                Err(DriveError::Offline)
            }
            other => other,
        };
        self.note(r)
    }

    /// Whether the drive still holds its format file.
    async fn present(&self) -> bool {
        let format = format::format_path(&self.root);
        blocking(move || Ok(format.exists())).await.unwrap_or(false)
    }

    /// Closes kept-open shard files under `dir`, before it changes: a removed file
    /// held open would keep its space until evicted.
    fn forget_under(&self, dir: &Path) {
        self.open_reads.borrow_mut().retain(|o| !o.path.starts_with(dir));
    }

    /// Forgets kept-open files an operation may remove or replace.
    fn forget_for(&self, op: &DriveOp) {
        if self.open_reads.borrow().is_empty() {
            return;
        }
        let under = |volume: &str, path: &str| self.resolve(volume, path).ok();
        let dir = match op {
            DriveOp::DeleteVolume { volume } => under(volume, ""),
            DriveOp::Delete { volume, path, .. } => under(volume, path),
            DriveOp::RenameFile { src_volume, src_path, dst_volume, dst_path } => {
                if let Some(d) = under(dst_volume, dst_path) {
                    self.forget_under(&d);
                }
                under(src_volume, src_path)
            }
            DriveOp::RenameData { volume, key_dir, .. }
            | DriveOp::UndoRename { volume, key_dir, .. }
            | DriveOp::DeleteObject { volume, key_dir, .. }
            | DriveOp::DeleteDataDir { volume, key_dir, .. } => under(volume, key_dir),
            _ => None,
        };
        if let Some(d) = dir {
            self.forget_under(&d);
        }
    }

    /// Waits until no live journal record touches what `op` changes without
    /// the journal (see `journal`'s invariants).
    async fn settle_for(&self, op: &DriveOp) {
        let Some(j) = &self.journal else { return };
        match op {
            // (Making a volume needs no settling: a record whose bucket was
            // missing failed and was voided, so no redo lands in a new one.)
            DriveOp::DeleteVolume { volume } => j.settle(volume, "").await,
            DriveOp::WriteAll { volume, path, .. } | DriveOp::Delete { volume, path, .. } => {
                j.settle(volume, path).await
            }
            DriveOp::RenameFile { src_volume, src_path, dst_volume, dst_path } => {
                j.settle(src_volume, src_path).await;
                j.settle(dst_volume, dst_path).await;
            }
            DriveOp::RenameData { src_dir: Some(_), volume, key_dir, .. }
            | DriveOp::UndoRename { volume, key_dir, .. } => j.settle(volume, key_dir).await,
            _ => {}
        }
    }

    async fn execute_inner(&self, op: DriveOp) -> DriveResult<DriveReply> {
        self.forget_for(&op);
        self.settle_for(&op).await;
        match op {
            DriveOp::MakeVolume { volume, created_ns } => {
                let dir = self.resolve(&volume, "")?;
                let created = blocking(move || match std::fs::create_dir(&dir) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                })
                .await
                .map_err(|e| if e == DriveError::FileNotFound { DriveError::Offline } else { e })?;
                if !created {
                    return Err(DriveError::VolumeExists);
                }
                self.write_bucket_meta(&volume, created_ns).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::HealVolume { volume, created_ns } => {
                // A wiped drive's journal files went with it: make them anew.
                if let Some(j) = &self.journal {
                    j.reopen_if_gone().await;
                }
                self.heal_volume(&volume, created_ns).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::DeleteVolume { volume } => {
                let dir = self.resolve(&volume, "")?;
                let uploads = self.resolve(SYS_VOLUME, &format!("{MULTIPART_DIR}/{volume}"))?;
                let removed = blocking(move || {
                    if !dir.is_dir() {
                        return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
                    }
                    if !walk::walk(&dir, "", "", 1)?.is_empty() {
                        return Ok(false);
                    }
                    std::fs::remove_dir_all(&dir)?;
                    remove_path(&uploads, true)?;
                    Ok(true)
                })
                .await
                .map_err(|e| if e == DriveError::FileNotFound { DriveError::VolumeNotFound } else { e })?;
                if !removed {
                    return Err(DriveError::VolumeNotEmpty);
                }
                Ok(DriveReply::Done)
            }
            DriveOp::ListVolumes => {
                let root = self.root.clone();
                let names = blocking(move || {
                    let mut names = Vec::new();
                    for entry in std::fs::read_dir(&root)? {
                        let entry = entry?;
                        if let Ok(name) = entry.file_name().into_string()
                            && !name.starts_with('.')
                            && entry.file_type()?.is_dir()
                        {
                            names.push(name);
                        }
                    }
                    names.sort();
                    Ok(names)
                })
                .await
                .map_err(|e| if e == DriveError::FileNotFound { DriveError::Offline } else { e })?;
                let mut volumes = Vec::with_capacity(names.len());
                for name in names {
                    volumes.push(self.stat_volume(&name).await?);
                }
                Ok(DriveReply::Volumes(volumes))
            }
            DriveOp::StatVolume { volume } => Ok(DriveReply::Volume(self.stat_volume(&volume).await?)),
            DriveOp::ReadAll { volume, path } => {
                let path = self.resolve(&volume, &path)?;
                Ok(DriveReply::Data(read_whole(&path).await?))
            }
            DriveOp::WriteAll { volume, path, data } => {
                let path = self.resolve(&volume, &path)?;
                self.write_atomic(&path, data).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::ReadAt { volume, path, offset, len } => {
                check_read_len(len)?;
                let path = self.resolve(&volume, &path)?;
                // Another core or node reads the DMA buffer in place (`lend`).
                Ok(DriveReply::Data(super::lend::lend(self.read_shard(&path, offset, len).await?)))
            }
            DriveOp::Delete { volume, path, recursive } => {
                let path = self.resolve(&volume, &path)?;
                blocking(move || remove_path(&path, recursive)).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::ListDir { volume, path } => {
                let path = self.resolve(&volume, &path)?;
                let names = blocking(move || {
                    let mut names = Vec::new();
                    for entry in std::fs::read_dir(&path)? {
                        let entry = entry?;
                        if let Ok(mut name) = entry.file_name().into_string() {
                            if entry.file_type()?.is_dir() {
                                name.push('/');
                            }
                            names.push(name);
                        }
                    }
                    names.sort();
                    Ok(names)
                })
                .await?;
                Ok(DriveReply::Names(names))
            }
            DriveOp::RenameFile { src_volume, src_path, dst_volume, dst_path } => {
                let src = self.resolve(&src_volume, &src_path)?;
                let dst = self.resolve(&dst_volume, &dst_path)?;
                rename_making_parent(&src, &dst).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::RenameData { src_dir: None, volume, key_dir, meta_name, meta, .. } if self.journal.is_some() => {
                let old = self.commit_journaled(volume, key_dir, meta_name, meta).await?;
                Ok(DriveReply::OldMeta(old))
            }
            DriveOp::RenameData { src_dir, volume, key_dir, data_dir, meta_name, meta } => {
                let old = self.rename_data(src_dir, &volume, &key_dir, data_dir, &meta_name, meta).await?;
                Ok(DriveReply::OldMeta(old))
            }
            DriveOp::UndoRename { volume, key_dir, meta_name, old_meta, data_dir } => {
                let stop = self.resolve(&volume, "")?;
                let dir = self.resolve(&volume, &key_dir)?;
                let meta_path = dir.join(check_name(&meta_name)?);
                let data = data_dir.map(|d| check_name(&d).map(|d| dir.join(d))).transpose()?;
                let tmp = LocalDrive::tmp_beside(&dir);
                let (new_dirs, tmp_area) = (self.new_dirs.clone(), self.tmp_area());
                run(move || {
                    match old_meta {
                        Some(old) => replace_file(&new_dirs, &tmp_area, &tmp, &meta_path, &old, Some(&stop))?,
                        None => remove_path(&meta_path, false).map_err(|e| DriveError::from_io(&e))?,
                    }
                    if let Some(data) = data {
                        remove_path(&data, true).map_err(|e| DriveError::from_io(&e))?;
                    }
                    prune(&dir, &stop);
                    Ok(())
                })
                .await?;
                Ok(DriveReply::Done)
            }
            DriveOp::DeleteObject { volume, key_dir, meta_name } if self.journal.is_some() => {
                self.delete_journaled(volume, key_dir, meta_name).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::DeleteObject { volume, key_dir, meta_name } => {
                let stop = self.resolve(&volume, "")?;
                let dir = self.resolve(&volume, &key_dir)?;
                let meta_path = dir.join(check_name(&meta_name)?);
                run(move || {
                    let Some(file) =
                        durable::read_optional(&meta_path, MAX_READ_BYTES).map_err(|e| meta_read_error(&e))?
                    else {
                        return Err(DriveError::FileNotFound);
                    };
                    // A corrupt metadata file is still removed; its data directory is then unknown.
                    let data_dir = journal::data_dir_of(file);
                    remove_path(&meta_path, false).map_err(|e| DriveError::from_io(&e))?;
                    if let Some(data_dir) = data_dir {
                        let data = dir.join(check_name(&data_dir)?);
                        remove_path(&data, true).map_err(|e| DriveError::from_io(&e))?;
                    }
                    prune(&dir, &stop);
                    // An acknowledged delete must not come back after a crash.
                    durable::sync_after_removal(&dir, &stop).map_err(|e| DriveError::from_io(&e))
                })
                .await?;
                Ok(DriveReply::Done)
            }
            DriveOp::DeleteDataDir { volume, key_dir, data_dir } => {
                let dir = self.resolve(&volume, &key_dir)?;
                let data = dir.join(check_name(&data_dir)?);
                blocking(move || remove_path(&data, true)).await?;
                Ok(DriveReply::Done)
            }
            DriveOp::Walk { volume, prefix, start_after, limit } => {
                let dir = self.resolve(&volume, "")?;
                let keys = blocking(move || {
                    if !dir.is_dir() {
                        return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
                    }
                    walk::walk(&dir, &prefix, &start_after, limit)
                })
                .await
                .map_err(|e| if e == DriveError::FileNotFound { DriveError::VolumeNotFound } else { e })?;
                Ok(DriveReply::Names(keys))
            }
            DriveOp::DiskInfo => {
                let root = self.root.clone();
                let info = blocking(move || {
                    let s = nix::sys::statvfs::statvfs(&root).map_err(std::io::Error::from)?;
                    let unit = s.fragment_size();
                    Ok(DiskInfo { total_bytes: s.blocks() * unit, free_bytes: s.blocks_available() * unit })
                })
                .await
                .map_err(|e| if e == DriveError::FileNotFound { DriveError::Offline } else { e })?;
                Ok(DriveReply::Info(info))
            }
        }
    }

    async fn stat_volume(&self, volume: &str) -> DriveResult<VolumeInfo> {
        let dir = self.resolve(volume, "")?;
        let meta = self.resolve(volume, BUCKET_META_FILE)?;
        let name = volume.to_string();
        run(move || {
            if !dir.is_dir() {
                return Err(DriveError::VolumeNotFound);
            }
            // A bucket whose metadata file is missing or damaged still exists.
            let created_ns = match durable::read_optional(&meta, MAX_READ_BYTES) {
                Ok(Some(bytes)) => serde_json::from_slice::<BucketMeta>(&bytes).map(|m| m.created_ns).unwrap_or(0),
                _ => 0,
            };
            Ok(VolumeInfo { name, created_ns })
        })
        .await
    }

    async fn write_bucket_meta(&self, volume: &str, created_ns: i64) -> DriveResult<()> {
        let body = serde_json::to_vec(&BucketMeta { created_ns }).expect("serialises");
        self.write_atomic(&self.resolve(volume, BUCKET_META_FILE)?, body.into()).await
    }

    async fn heal_volume(&self, volume: &str, created_ns: i64) -> DriveResult<()> {
        let root = self.root.clone();
        let format = self.format.borrow().clone().ok_or(DriveError::Offline)?;
        let dir = self.resolve(volume, "")?;
        blocking(move || {
            // A vanished root is an unmounted or pulled drive: never recreate it,
            // or data meant for that drive would land on the root filesystem.
            if !root.is_dir() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            if format::read_format(&root).ok().flatten().is_none() {
                format::write_format(&root, &format)?;
            }
            std::fs::create_dir_all(root.join(SYS_VOLUME).join(TMP_DIR))?;
            std::fs::create_dir_all(root.join(SYS_VOLUME).join(MULTIPART_DIR))?;
            std::fs::create_dir_all(&dir)
        })
        .await?;
        if volume != SYS_VOLUME && !self.resolve(volume, BUCKET_META_FILE)?.exists() {
            self.write_bucket_meta(volume, created_ns).await?;
        }
        Ok(())
    }

    /// Commits a version in one trip to the blocking pool: makes the key's
    /// directory (durably), reads the metadata it replaces, moves the staged data
    /// directory into place, and durably replaces the metadata file.
    async fn rename_data(
        &self,
        src_dir: Option<String>,
        volume: &str,
        key_dir: &str,
        data_dir: Option<String>,
        meta_name: &str,
        meta_bytes: Bytes,
    ) -> DriveResult<Option<Bytes>> {
        let volume_dir = self.resolve(volume, "")?;
        let dir = self.resolve(volume, key_dir)?;
        let meta_path = dir.join(check_name(meta_name)?);
        let moved = match (src_dir, data_dir) {
            (Some(src), Some(data_dir)) => Some((self.resolve(SYS_VOLUME, &src)?, dir.join(check_name(&data_dir)?))),
            _ => None,
        };
        let tmp = LocalDrive::tmp_beside(&dir);
        let (new_dirs, tmp_area) = (self.new_dirs.clone(), self.tmp_area());
        run(move || {
            make_key_dir(&new_dirs, &dir, &volume_dir)?;
            let old = durable::read_optional(&meta_path, MAX_READ_BYTES).map_err(|e| meta_read_error(&e))?;
            if let Some((src, target)) = moved {
                // A heal rewrites a version's data directory in place: move the bad copy aside.
                remove_path(&target, true).map_err(|e| DriveError::from_io(&e))?;
                std::fs::rename(&src, &target).map_err(|e| DriveError::from_io(&e))?;
                // The data directory's own entries (its part files) were made in
                // the temp area: make them durable where they now are.
                durable::sync_dir(&target).map_err(|e| DriveError::from_io(&e))?;
            }
            replace_file(&new_dirs, &tmp_area, &tmp, &meta_path, &meta_bytes, Some(&volume_dir))?;
            Ok(old.map(Bytes::from))
        })
        .await
    }

    fn journal(&self) -> DriveResult<&Rc<Journal>> {
        self.journal.as_ref().ok_or_else(|| DriveError::Io("the metadata journal is off".into()))
    }

    /// Commits a version that has no staged data (an inline object) through
    /// the journal: durable once its record is, then carried out with no
    /// syncs. Returns the metadata file it replaced.
    async fn commit_journaled(
        &self,
        volume: String,
        key_dir: String,
        meta_name: String,
        meta: Bytes,
    ) -> DriveResult<Option<Bytes>> {
        // A path the drive refuses is never journaled.
        self.resolve(&volume, &key_dir)?;
        check_name(&meta_name)?;
        let record = Record::Put {
            volume: volume.clone(),
            key_dir: key_dir.clone(),
            meta_name: meta_name.clone(),
            meta: meta.clone(),
        };
        let (root, new_dirs) = (self.root.clone(), self.new_dirs.clone());
        self.journaled(record, move |generation| {
            journal::apply_put(&root, &new_dirs, generation, &volume, &key_dir, &meta_name, &meta)
        })
        .await
    }

    /// Removes an object through the journal: reads which data directory its
    /// metadata names, makes the removal's record durable, then removes with
    /// no syncs. A corrupt metadata file is still removed (its data directory
    /// is then unknown); a missing one is `FileNotFound`.
    async fn delete_journaled(&self, volume: String, key_dir: String, meta_name: String) -> DriveResult<()> {
        let dir = self.resolve(&volume, &key_dir)?;
        let meta_path = dir.join(check_name(&meta_name)?);
        let data_dir =
            run(move || match durable::read_optional(&meta_path, MAX_READ_BYTES).map_err(|e| meta_read_error(&e))? {
                Some(file) => Ok(journal::data_dir_of(file)),
                None => Err(DriveError::FileNotFound),
            })
            .await?;
        if let Some(d) = &data_dir {
            check_name(d)?;
        }
        let record = Record::Delete {
            volume: volume.clone(),
            key_dir: key_dir.clone(),
            meta_name: meta_name.clone(),
            data_dir: data_dir.clone(),
        };
        let root = self.root.clone();
        self.journaled(record, move |_| {
            journal::apply_delete(&root, &volume, &key_dir, &meta_name, data_dir.as_deref())
        })
        .await
    }

    /// Makes `record` durable in the journal, then carries out its effect with
    /// `apply` (given the record's generation) on the blocking pool; an effect
    /// that fails voids the record.
    async fn journaled<T: Send + 'static>(
        &self,
        record: Record,
        apply: impl FnOnce(u64) -> DriveResult<T> + Send + 'static,
    ) -> DriveResult<T> {
        let applying = self.journal()?.append(&record).await?;
        let generation = applying.generation();
        let r = run(move || apply(generation)).await;
        if r.is_err() {
            applying.void().await;
        }
        r
    }

    /// Replaces `path` durably (see [`durable::replace`]), creating its
    /// directory if missing, in one trip to the blocking pool.
    async fn write_atomic(&self, path: &Path, data: Bytes) -> DriveResult<()> {
        let tmp = self.tmp_file();
        let path = path.to_path_buf();
        let root = self.root.clone();
        let (new_dirs, tmp_area) = (self.new_dirs.clone(), self.tmp_area());
        run(move || {
            if let Some(parent) = path.parent() {
                new_dirs.make_dirs(parent, &root).map_err(|e| match DriveError::from_io(&e) {
                    DriveError::FileNotFound => DriveError::Offline,
                    other => other,
                })?;
            }
            replace_file(&new_dirs, &tmp_area, &tmp, &path, &data, None)
        })
        .await
    }

    /// Opens a file for streaming writes (shard files), creating its directory.
    pub async fn create_file(&self, volume: &str, path: &str, size: Option<u64>) -> DriveResult<LocalWriter> {
        let path = self.resolve(volume, path)?;
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // A PUT stages into a fresh directory: make it first instead of failing
        // an open to find out (an io_uring worker round trip per drive). The
        // check is one stat, answered from the dentry cache.
        if !parent.is_dir() {
            let sys = self.root.join(SYS_VOLUME);
            blocking(move || {
                // Never recreate a drive that vanished: only dirs below an existing system folder.
                if !sys.is_dir() {
                    return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
                }
                std::fs::create_dir_all(&parent)
            })
            .await
            .map_err(|e| if e == DriveError::FileNotFound { DriveError::Offline } else { e })?;
        }
        let file = match create_dma(&path).await {
            Ok(f) => f,
            Err(e) => return self.note::<LocalWriter>(Err(DriveError::from_glommio(e))),
        };
        if let Some(size) = size.filter(|s| *s > 0) {
            // Reserved and sized up front (with the padding the writer ends the
            // file with), every write lands inside the file on allocated blocks:
            // ext4 then takes it straight from io_uring instead of handing each
            // appending write to a kernel worker thread (a context switch per
            // write). Best effort: a filesystem without fallocate still
            // takes the writes, and a drive too full for the whole reservation
            // says so now.
            let size = super::writer::padded_len(&file, size);
            if let Err(e) = file.pre_allocate(size, false).await {
                let e = DriveError::from_glommio(e);
                if e == DriveError::DriveFull {
                    let _ = file.close().await;
                    let _ = glommio::io::remove(&path).await;
                    return self.note(Err(e));
                }
            }
        }
        Ok(LocalWriter::new(file))
    }

    /// Reads part of a shard file through a kept-open handle. The path's inode
    /// is checked first (one stat, served from the dentry cache), so a file that
    /// was replaced (a heal, a new version) or removed is never read stale.
    async fn read_shard(&self, path: &Path, offset: u64, len: u64) -> DriveResult<ReadResult> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(path).map_err(|e| DriveError::from_io(&e))?.ino();
        let cached = {
            let mut open = self.open_reads.borrow_mut();
            match open.iter().position(|o| o.path.as_os_str() == path.as_os_str()) {
                Some(i) => match open.remove(i) {
                    Some(o) if o.inode == inode => {
                        let file = o.file.clone();
                        open.push_back(o);
                        Some(file)
                    }
                    _ => None,
                },
                None => None,
            }
        };
        let file = match cached {
            Some(f) => f,
            None => {
                let f = std::rc::Rc::new(open_dma(path).await.map_err(DriveError::from_glommio)?);
                let mut open = self.open_reads.borrow_mut();
                if open.len() >= OPEN_READ_FILES {
                    // Dropping the last handle closes the file asynchronously.
                    open.pop_front();
                }
                open.push_back(OpenRead { path: path.to_path_buf(), inode: f.inode(), file: f.clone() });
                f
            }
        };
        if len == 0 {
            return Ok(ReadResult::default());
        }
        file.read_at(offset, len as usize).await.map_err(DriveError::from_glommio)
    }

    pub fn format(&self) -> Option<Format> {
        self.format.borrow().clone()
    }

    pub fn set_format(&self, format: Format) {
        *self.format.borrow_mut() = Some(format);
    }
}

/// `DmaFile::create`, except that a file removed while it is being opened (a
/// write abandoned and cleaned up by another request at that moment) is an
/// error: glommio unwraps a `statfs` of the new file's path, which panics then.
async fn create_dma(path: &Path) -> Result<DmaFile, glommio::GlommioError<()>> {
    unpanicked(DmaFile::create(path)).await
}

/// `DmaFile::open`, with the same guard as [`create_dma`].
async fn open_dma(path: &Path) -> Result<DmaFile, glommio::GlommioError<()>> {
    unpanicked(DmaFile::open(path)).await
}

async fn unpanicked(
    open: impl std::future::Future<Output = Result<DmaFile, glommio::GlommioError<()>>>,
) -> Result<DmaFile, glommio::GlommioError<()>> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(open).catch_unwind().await {
        Ok(r) => r,
        Err(_) => Err(glommio::GlommioError::IoError(std::io::Error::from(std::io::ErrorKind::NotFound))),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BucketMeta {
    created_ns: i64,
}

/// `root/volume/path`, refusing anything that could leave the drive.
pub(super) fn resolve(root: &Path, volume: &str, path: &str) -> DriveResult<PathBuf> {
    let bad = || DriveError::InvalidPath(format!("{volume}/{path}"));
    if volume.is_empty() || volume.contains('/') || volume == "." || volume == ".." || volume.contains('\0') {
        return Err(bad());
    }
    if path.contains('\0') || path.starts_with('/') {
        return Err(bad());
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if !trimmed.is_empty() && trimmed.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(bad());
    }
    Ok(root.join(volume).join(trimmed))
}

/// A single path segment chosen by basalt (a metadata file or data directory name).
pub(super) fn check_name(name: &str) -> DriveResult<&str> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || !name.starts_with(RESERVED_PREFIX) {
        return Err(DriveError::InvalidPath(name.to_string()));
    }
    Ok(name)
}

/// [`run`] for a closure of plain syscalls: their error is an I/O error.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> DriveResult<T> {
    run(move || f().map_err(|e| DriveError::from_io(&e))).await
}

/// Runs a whole drive operation on the blocking pool: one thread round trip for
/// what would otherwise be an io_uring worker hop per syscall.
async fn run<T: Send + 'static>(f: impl FnOnce() -> DriveResult<T> + Send + 'static) -> DriveResult<T> {
    glommio::executor().spawn_blocking(f).await
}

/// Makes a key's directory inside its volume; a missing volume is a missing bucket.
fn make_key_dir(new_dirs: &NewDirs, dir: &Path, volume_dir: &Path) -> DriveResult<()> {
    new_dirs.make_dirs(dir, volume_dir).map(|_| ()).map_err(|e| match DriveError::from_io(&e) {
        DriveError::FileNotFound => DriveError::VolumeNotFound,
        other => other,
    })
}

/// An unreadable metadata file: a damaged one (over the size limit) is corrupt.
fn meta_read_error(e: &std::io::Error) -> DriveError {
    match e.kind() {
        std::io::ErrorKind::InvalidData => DriveError::Corrupt(e.to_string()),
        _ => DriveError::from_io(e),
    }
}

/// Attempts at replacing a file whose directory a concurrent delete pruned
/// between making it and renaming into it.
const REPLACE_ATTEMPTS: usize = 3;

/// [`durable::replace`], with the errors a drive reports: a missing temp area
/// (`tmp_area`) is a drive gone (wiped or unmounted). When `remake` names the
/// volume, a directory pruned away underneath is made again and the write
/// retried.
fn replace_file(
    new_dirs: &NewDirs,
    tmp_area: &Path,
    tmp: &Path,
    path: &Path,
    data: &[u8],
    remake: Option<&Path>,
) -> DriveResult<()> {
    let mut attempt = 1;
    loop {
        match durable::replace(tmp, path, data) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !tmp_area.is_dir() {
                    return Err(DriveError::Offline);
                }
                match (remake, path.parent()) {
                    (Some(volume_dir), Some(dir)) if attempt < REPLACE_ATTEMPTS => {
                        make_key_dir(new_dirs, dir, volume_dir)?
                    }
                    _ => return Err(DriveError::FileNotFound),
                }
                attempt += 1;
            }
            Err(e) => return Err(DriveError::from_io(&e)),
        }
    }
}

/// Removes now-empty directories from `dir` up to (not including) `stop`.
pub(super) fn prune(dir: &Path, stop: &Path) {
    let mut cur = dir;
    while cur != stop && cur.starts_with(stop) {
        if std::fs::remove_dir(cur).is_err() {
            break;
        }
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
}

/// A single read may not ask for more than [`MAX_READ_BYTES`].
fn check_read_len(len: u64) -> DriveResult<()> {
    if len > MAX_READ_BYTES {
        return Err(DriveError::InvalidPath(format!("read of {len} bytes is over the limit")));
    }
    Ok(())
}

/// Reads a whole small file (metadata) through the page cache. These files
/// are written with plain syscalls, and with the metadata journal their pages
/// may not be written back yet: a direct read would first have to write them
/// out and wait, which made a GET right after a PUT pay for a write.
async fn read_whole(path: &Path) -> DriveResult<Bytes> {
    let file = glommio::io::BufferedFile::open(path).await.map_err(DriveError::from_glommio)?;
    let result = async {
        let size = file.file_size().await.map_err(DriveError::from_glommio)?;
        if size > MAX_READ_BYTES {
            return Err(DriveError::Corrupt(format!("{} is {size} bytes, over the limit", path.display())));
        }
        if size == 0 {
            return Ok(Bytes::new());
        }
        let read = file.read_at(0, size as usize).await.map_err(DriveError::from_glommio)?;
        Ok(Bytes::copy_from_slice(&read))
    }
    .await;
    let _ = file.close().await;
    result
}

async fn rename_making_parent(src: &Path, dst: &Path) -> DriveResult<()> {
    match glommio::io::rename(src, dst).await.map_err(DriveError::from_glommio) {
        Err(DriveError::FileNotFound) => {
            let parent = dst.parent().map(Path::to_path_buf).unwrap_or_default();
            blocking(move || std::fs::create_dir_all(&parent)).await?;
            glommio::io::rename(src, dst).await.map_err(DriveError::from_glommio)
        }
        other => other,
    }
}

pub(super) fn remove_path(path: &Path, recursive: bool) -> std::io::Result<()> {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && recursive => std::fs::remove_dir_all(path),
        Ok(m) if m.is_dir() => std::fs::remove_dir(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
