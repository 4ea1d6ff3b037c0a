//! The drive's metadata journal: object commits and deletes made durable with
//! one shared write instead of a chain of syncs each.
//!
//! A small PUT used to cost every drive three syncs of its own (the new key
//! directory's parent, the metadata file, the directory it is renamed into);
//! on a filesystem without a journal those are three device cache flushes per
//! object per drive, and nothing else bounded small PUTs. Here a commit (a
//! `RenameData` without staged data: inline objects, heals of them) or an
//! object delete is first written as a record to the drive's journal file,
//! together with every other record that arrived while the previous write was
//! in flight (group commit: one `O_DIRECT | O_DSYNC` write for all of them),
//! and only then carried out with plain syscalls and no syncs. The layout on
//! the drive stays what it was: a metadata file per object, read and listed as
//! before; the journal only says how to redo what the page cache may still
//! hold when the machine dies.
//!
//! Two preallocated files take turns. When the active one is full, the other
//! becomes active and the full one is checkpointed: once every record in it
//! has been carried out, `syncfs` makes their effects durable and the file's
//! first block is zeroed, so a restart finds nothing in it to redo. At start,
//! [`recover`] redoes what the files hold, oldest first, syncs and zeroes them.
//!
//! Invariants that keep a redo correct:
//! - A record is durable before its effect is started, so whatever a crash
//!   leaves half-done (a torn metadata file, a rename without its data) is
//!   redone; a record's effect is absolute (this metadata, or no object), so
//!   redoing it twice or over a later state of the same record is harmless.
//! - An operation that changes a key without the journal (a large PUT's
//!   rename, a metadata rewrite, an undo, a bucket made or removed) first
//!   waits until no record touching that path is live ([`Journal::settle`]):
//!   a redo must never roll back what happened after it.
//! - A record whose effect then failed is voided by a later record, so an
//!   operation the drive reported as failed never reappears after a crash.
//! - Directories a record's effect created are not durable until its
//!   checkpoint; they are listed in [`NewDirs`] until then, so that a durable
//!   commit beneath one still makes it durable itself.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::oneshot;
use glommio::io::DmaFile;
use serde::{Deserialize, Serialize};

use super::durable::{self, NewDirs};
use super::local::{check_name, prune, remove_path, resolve};
use super::{DriveError, DriveResult, META_TMP_PREFIX, SYS_VOLUME, meta};

/// Bytes of each of a drive's two journal files. A record is a metadata file
/// (at most an inline object's shard, under 128 KiB, plus its header), so a
/// file holds from over a hundred of the largest inline records to some three
/// thousand of a 4 KiB object's before it is checkpointed. Each is written in
/// full when made (in the background, before it is needed), so that commits
/// never wait for one.
pub const JOURNAL_FILE_BYTES: u64 = 8 << 20;

/// The journal files, in the drive's system folder.
pub const JOURNAL_FILES: [&str; 2] = ["journal.0", "journal.1"];

/// Batches start on this boundary: the unit of a direct write.
const BLOCK_BYTES: usize = 4096;

/// The most record bytes one write carries; what arrives beyond waits for the
/// next write.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// A record over this is refused (a metadata file never is, unless damaged).
const MAX_RECORD_BYTES: usize = 512 << 10;

const MAGIC: [u8; 4] = *b"BJNL";
const VERSION: u32 = 1;
/// magic, version, generation, epoch, sequence, payload length, hash.
const HEADER_BYTES: usize = 4 + 4 + 8 + 8 + 4 + 4 + 8;

/// First and longest pause between retries of a failed checkpoint.
const CHECKPOINT_RETRY_FIRST: Duration = Duration::from_millis(100);
const CHECKPOINT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether drives use a journal: `BASALT_METADATA_JOURNAL`, read once.
static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// The environment variable that turns the journal off.
pub const ENV: &str = "BASALT_METADATA_JOURNAL";

/// Reads `BASALT_METADATA_JOURNAL` (`on`, the default, or `off`) through
/// `lookup`; anything else is an error naming the variable.
pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
    match lookup(ENV).as_deref().map(str::trim) {
        None | Some("") | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(format!("{ENV}={other:?}: use on or off")),
    }
}

/// Sets whether drives opened from now on use a journal (at start, before
/// any drive opens; later calls are ignored).
pub fn set_enabled(on: bool) {
    let _ = ENABLED.set(on);
}

/// Whether drives use a journal; on unless turned off at start.
pub fn enabled() -> bool {
    *ENABLED.get().unwrap_or(&true)
}

/// What one record says to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Make `meta_name` in `volume/key_dir` hold `meta` (creating the directory).
    Put { volume: String, key_dir: String, meta_name: String, meta: Bytes },
    /// Remove the object: its metadata file, `data_dir` if any, and the
    /// directories left empty.
    Delete { volume: String, key_dir: String, meta_name: String, data_dir: Option<String> },
    /// The record `id` failed when carried out: never redo it.
    Void { id: RecordId },
}

/// Where a record sits: the generation of its file's turn, the batch, the
/// place in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordId {
    pub generation: u64,
    pub seq: u32,
    pub index: u32,
}

impl Record {
    /// The key a record changes, if any.
    fn key(&self) -> Option<(&str, &str)> {
        match self {
            Record::Put { volume, key_dir, .. } | Record::Delete { volume, key_dir, .. } => {
                Some((volume.as_str(), key_dir.as_str()))
            }
            Record::Void { .. } => None,
        }
    }
}

/// Bytes of the records of a batch, each with its length prefix.
fn payload_bytes<R: AsRef<[u8]>>(records: &[R]) -> usize {
    records.iter().map(|r| 4 + r.as_ref().len()).sum()
}

/// Bytes of a batch as written, for records of `payload` bytes with their
/// prefixes: header and records, padded to [`BLOCK_BYTES`].
fn batch_bytes(payload: usize) -> usize {
    (HEADER_BYTES + payload).div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// Writes one batch into `out` (of [`batch_bytes`] bytes, for example the
/// direct-I/O buffer it goes to disk from): a header, then records each
/// prefixed by its length, zero-padded to [`BLOCK_BYTES`].
fn encode_batch_into<R: AsRef<[u8]>>(out: &mut [u8], generation: u64, epoch: u64, seq: u32, records: &[R]) {
    let payload = payload_bytes(records);
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&MAGIC);
    put(&VERSION.to_le_bytes());
    put(&generation.to_le_bytes());
    put(&epoch.to_le_bytes());
    put(&seq.to_le_bytes());
    put(&(payload as u32).to_le_bytes());
    put(&[0; 8]);
    for r in records.iter().map(AsRef::as_ref) {
        put(&(r.len() as u32).to_le_bytes());
        put(r);
    }
    let end = HEADER_BYTES + payload;
    let hash = batch_hash(&out[..HEADER_BYTES - 8], &out[HEADER_BYTES..end]);
    out[HEADER_BYTES - 8..HEADER_BYTES].copy_from_slice(&hash.to_le_bytes());
    out[end..].fill(0);
}

/// One batch as written, in a buffer of its own.
#[cfg(test)]
fn encode_batch<R: AsRef<[u8]>>(generation: u64, epoch: u64, seq: u32, records: &[R]) -> Vec<u8> {
    let mut out = vec![0; batch_bytes(payload_bytes(records))];
    encode_batch_into(&mut out, generation, epoch, seq, records);
    out
}

fn batch_hash(head: &[u8], payload: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(head);
    h.update(payload);
    h.digest()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// One journal file's turn: its generation, and its records in order.
pub type Turn = (u64, Vec<(RecordId, Record)>);

/// The records of one journal file's current turn: its generation and its
/// records in order; `None` when the file holds no turn (zeroed, or torn at
/// its first batch). Reading stops at the first batch that is torn, of
/// another turn, or out of sequence.
pub fn decode_file(bytes: &[u8]) -> io::Result<Option<Turn>> {
    let mut at = 0;
    let mut turn: Option<(u64, u64)> = None;
    let mut records = Vec::new();
    let mut seq = 0u32;
    while at + HEADER_BYTES <= bytes.len() {
        let head = &bytes[at..at + HEADER_BYTES];
        if head[..4] != MAGIC {
            break;
        }
        let len = le_u32(head, 28) as usize;
        let end = at + HEADER_BYTES + len;
        if end > bytes.len() {
            break;
        }
        let payload = &bytes[at + HEADER_BYTES..end];
        if batch_hash(&head[..HEADER_BYTES - 8], payload) != le_u64(head, HEADER_BYTES - 8) {
            break;
        }
        let version = le_u32(head, 4);
        let (generation, epoch) = (le_u64(head, 8), le_u64(head, 16));
        match turn {
            None => turn = Some((generation, epoch)),
            Some(t) if t != (generation, epoch) => break,
            Some(_) => {}
        }
        if le_u32(head, 24) != seq {
            break;
        }
        if version != VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("journal batch of version {version}: this build reads version {VERSION}"),
            ));
        }
        let mut p = 0;
        let mut index = 0u32;
        while p + 4 <= payload.len() {
            let n = le_u32(payload, p) as usize;
            let body = payload.get(p + 4..p + 4 + n).ok_or_else(|| bad("a record runs past its batch"))?;
            let record: Record = postcard::from_bytes(body).map_err(|e| bad(&format!("undecodable record: {e}")))?;
            records.push((RecordId { generation, seq, index }, record));
            p += 4 + n;
            index += 1;
        }
        seq += 1;
        at = end.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
    }
    Ok(turn.map(|(generation, _)| (generation, records)))
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// The largest metadata file read back while carrying out a record.
const MAX_META_BYTES: u64 = 8 << 20;

/// Carries out a `Put` with plain syscalls and no syncs: makes the key's
/// directory (the volume must exist), reads the metadata file it replaces and
/// renames a new one into place. Directories it made are listed in `new_dirs`
/// under `generation` until the checkpoint. Returns the replaced file.
pub fn apply_put(
    root: &Path,
    new_dirs: &NewDirs,
    generation: u64,
    volume: &str,
    key_dir: &str,
    meta_name: &str,
    meta: &[u8],
) -> DriveResult<Option<Bytes>> {
    let volume_dir = resolve(root, volume, "")?;
    let dir = resolve(root, volume, key_dir)?;
    let path = dir.join(check_name(meta_name)?);
    if !volume_dir.is_dir() {
        return Err(DriveError::VolumeNotFound);
    }
    let io = |e: io::Error| DriveError::from_io(&e);
    let mut made = Vec::new();
    let mut cur = dir.as_path();
    while !cur.is_dir() {
        if cur == volume_dir || !cur.starts_with(&volume_dir) {
            return Err(DriveError::VolumeNotFound);
        }
        made.push(cur.to_path_buf());
        cur = cur.parent().ok_or(DriveError::VolumeNotFound)?;
    }
    for d in made.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    new_dirs.note_journaled(&made, generation);
    let old = match durable::read_optional(&path, MAX_META_BYTES) {
        Ok(old) => old.map(Bytes::from),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
        Err(e) => return Err(io(e)),
    };
    let tmp = dir.join(format!("{META_TMP_PREFIX}{}", uuid::Uuid::new_v4()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&tmp)?;
        f.write_all(meta)?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(old)
}

/// Carries out a `Delete` with plain syscalls and no syncs: removes the
/// metadata file, the data directory and the directories left empty.
pub fn apply_delete(
    root: &Path,
    volume: &str,
    key_dir: &str,
    meta_name: &str,
    data_dir: Option<&str>,
) -> DriveResult<()> {
    let stop = resolve(root, volume, "")?;
    let dir = resolve(root, volume, key_dir)?;
    let io = |e: io::Error| DriveError::from_io(&e);
    remove_path(&dir.join(check_name(meta_name)?), false).map_err(io)?;
    if let Some(d) = data_dir {
        remove_path(&dir.join(check_name(d)?), true).map_err(io)?;
    }
    prune(&dir, &stop);
    Ok(())
}

/// The data directory a metadata file names, if it decodes.
pub fn data_dir_of(meta_bytes: Vec<u8>) -> Option<String> {
    meta::decode(&Bytes::from(meta_bytes)).ok().and_then(|(m, _)| m.data_dir)
}

/// What [`recover`] found and redid on one drive.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Records redone.
    pub redone: usize,
    /// Records skipped: their bucket is gone, or they were voided.
    pub skipped: usize,
}

/// At start, before the drive serves: redoes the records of both journal
/// files, oldest turn first, makes their effects durable with `syncfs`, and
/// zeroes the files' first blocks. An error leaves the files as they are, for
/// the next start to redo.
pub fn recover(root: &Path) -> io::Result<Recovered> {
    let sys = root.join(SYS_VOLUME);
    let mut turns = Vec::new();
    for name in JOURNAL_FILES {
        let path = sys.join(name);
        let mut bytes = Vec::new();
        match std::fs::File::open(&path) {
            Ok(f) => {
                f.take(JOURNAL_FILE_BYTES).read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        let decoded = decode_file(&bytes).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if let Some((generation, records)) = decoded {
            turns.push((generation, path, records));
        }
    }
    if turns.is_empty() {
        return Ok(Recovered::default());
    }
    turns.sort_by_key(|t| t.0);
    let voided: std::collections::HashSet<RecordId> = turns
        .iter()
        .flat_map(|t| t.2.iter())
        .filter_map(|(_, r)| match r {
            Record::Void { id } => Some(*id),
            _ => None,
        })
        .collect();
    let new_dirs = NewDirs::default();
    let mut done = Recovered::default();
    for (id, record) in turns.iter().flat_map(|t| t.2.iter()) {
        if voided.contains(id) {
            done.skipped += 1;
            continue;
        }
        let result = match record {
            Record::Put { volume, key_dir, meta_name, meta } => {
                apply_put(root, &new_dirs, 0, volume, key_dir, meta_name, meta).map(|_| ())
            }
            Record::Delete { volume, key_dir, meta_name, data_dir } => {
                apply_delete(root, volume, key_dir, meta_name, data_dir.as_deref())
            }
            Record::Void { .. } => continue,
        };
        match result {
            Ok(()) => done.redone += 1,
            Err(DriveError::VolumeNotFound) => done.skipped += 1,
            Err(DriveError::InvalidPath(p)) => {
                tracing::warn!(drive = %root.display(), path = %p, "skipped a journal record with a path the drive refuses");
                done.skipped += 1;
            }
            Err(e) => return Err(io::Error::other(format!("cannot redo a journal record: {e}"))),
        }
    }
    let root_dir = std::fs::File::open(root)?;
    nix::unistd::syncfs(&root_dir).map_err(io::Error::from)?;
    for (_, path, _) in &turns {
        zero_first_block(path)?;
    }
    Ok(done)
}

/// Renames the journal files to `<name>.unrecovered.<unix seconds>`, after a
/// failed [`recover`]: the drive starts with fresh ones.
pub fn set_aside(root: &Path) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for name in JOURNAL_FILES {
        let path = root.join(SYS_VOLUME).join(name);
        if path.exists()
            && let Err(e) = std::fs::rename(&path, path.with_file_name(format!("{name}.unrecovered.{secs}")))
        {
            tracing::error!(path = %path.display(), error = %e, "cannot move the journal aside");
        }
    }
}

/// Makes a journal file hold no turn: zeroes its first block, durably.
fn zero_first_block(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(&[0; BLOCK_BYTES], 0)?;
    f.sync_data()
}

/// Creates a journal file if it is missing or not the expected size: zeroes
/// written in full (so that a later direct write changes no extent, and its
/// `O_DSYNC` flushes data only; on tmpfs a sparse file), under a temp name,
/// then renamed durably.
fn prepare_file(path: &Path) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == JOURNAL_FILE_BYTES) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("new.{}", uuid::Uuid::new_v4().simple()));
    let zeros = vec![0u8; 1 << 20];
    let made = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        let in_memory =
            nix::sys::statfs::fstatfs(&f).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        if in_memory {
            // No extents to convert, and memory is only taken where written.
            f.set_len(JOURNAL_FILE_BYTES)?;
        } else {
            for _ in 0..JOURNAL_FILE_BYTES / zeros.len() as u64 {
                f.write_all(&zeros)?;
            }
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    durable::sync_dir(path.parent().unwrap_or(path))
}

/// Where a journal file is in its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Holds nothing live: may become active.
    Free,
    /// Takes new batches.
    Active,
    /// Full or asked to retire: its records' effects are being made durable.
    Checkpointing,
}

struct Slot {
    path: PathBuf,
    file: Option<Rc<DmaFile>>,
    /// Held while the file is made and opened: two makers at once would each
    /// rename a new file into place, and writes to the first one opened
    /// would go to a file no longer at the path.
    opening: Rc<glommio::sync::Semaphore>,
    phase: Phase,
    generation: u64,
    epoch: u64,
    /// Where the next batch goes, and its sequence number.
    offset: u64,
    seq: u32,
    /// Records written to this file whose effects are not finished yet.
    applying: usize,
    /// Woken when `applying` drops to zero or a checkpoint ends.
    waiters: Vec<oneshot::Sender<()>>,
}

impl Slot {
    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

struct Pending {
    record: Vec<u8>,
    key: Option<(String, String)>,
    reply: oneshot::Sender<DriveResult<Applying>>,
}

struct State {
    slots: [Slot; 2],
    active: usize,
    pending: VecDeque<Pending>,
    flushing: bool,
    /// Keys with live records, by volume, with the generation of their newest.
    dirty: HashMap<String, HashMap<String, u64>>,
    next_generation: u64,
}

/// The journal of one drive; lives on the drive's owner core.
pub struct Journal {
    root: PathBuf,
    new_dirs: Arc<NewDirs>,
    state: RefCell<State>,
}

/// A record written and durable, whose effect is being carried out. Dropping
/// it says the effect is finished (or abandoned), which a checkpoint waits for.
pub struct Applying {
    journal: Rc<Journal>,
    slot: usize,
    id: RecordId,
}

impl Applying {
    pub fn generation(&self) -> u64 {
        self.id.generation
    }

    /// The effect failed: writes a record that voids this one (best effort:
    /// if even that write fails, the drive is failing and a redo after a
    /// crash may still carry it out).
    pub async fn void(self) {
        let id = self.id;
        let journal = self.journal.clone();
        drop(self);
        if let Err(e) = journal.append(&Record::Void { id }).await {
            tracing::warn!(drive = %journal.root.display(), error = %e, "cannot void a failed journal record");
        }
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        let mut st = self.journal.state.borrow_mut();
        let slot = &mut st.slots[self.slot];
        slot.applying -= 1;
        if slot.applying == 0 {
            slot.wake();
        }
    }
}

/// Whether a key directory and a path a non-journaled operation changes
/// overlap: one is the other, or lies beneath it.
fn overlaps(key_dir: &str, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let key = key_dir.trim_end_matches('/');
    path.is_empty()
        || key == path
        || key.strip_prefix(path).is_some_and(|r| r.starts_with('/'))
        || path.strip_prefix(key).is_some_and(|r| r.starts_with('/'))
}

impl Journal {
    pub fn new(root: PathBuf, new_dirs: Arc<NewDirs>) -> Rc<Journal> {
        let sys = root.join(SYS_VOLUME);
        // The free slot has generation 0 until its first turn: no record has it.
        let slot = |i: usize, phase, generation| Slot {
            path: sys.join(JOURNAL_FILES[i]),
            file: None,
            opening: Rc::new(glommio::sync::Semaphore::new(1)),
            phase,
            generation,
            epoch: rand_epoch(),
            offset: 0,
            seq: 0,
            applying: 0,
            waiters: Vec::new(),
        };
        Rc::new(Journal {
            root,
            new_dirs,
            state: RefCell::new(State {
                slots: [slot(0, Phase::Active, 1), slot(1, Phase::Free, 0)],
                active: 0,
                pending: VecDeque::new(),
                flushing: false,
                dirty: HashMap::new(),
                next_generation: 2,
            }),
        })
    }

    /// Writes `record` durably (sharing the write with whatever else is
    /// waiting) and returns once it is; the effect is the caller's to carry
    /// out while it holds the [`Applying`].
    pub async fn append(self: &Rc<Self>, record: &Record) -> DriveResult<Applying> {
        let bytes = postcard::to_stdvec(record).map_err(|e| DriveError::Io(format!("journal record: {e}")))?;
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(DriveError::Io(format!("journal record of {} bytes is over the limit", bytes.len())));
        }
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.borrow_mut();
            st.pending.push_back(Pending {
                record: bytes,
                key: record.key().map(|(v, k)| (v.to_string(), k.to_string())),
                reply: tx,
            });
            !std::mem::replace(&mut st.flushing, true)
        };
        if start {
            glommio::spawn_local(self.clone().flush()).detach();
        }
        rx.await.unwrap_or_else(|_| Err(DriveError::Io("the journal writer stopped".into())))
    }

    /// Writes batches until nothing waits.
    async fn flush(self: Rc<Self>) {
        loop {
            let (batch, payload): (Vec<Pending>, usize) = {
                let mut st = self.state.borrow_mut();
                let mut payload = 0;
                let mut batch = Vec::new();
                while let Some(p) = st.pending.front() {
                    if !batch.is_empty() && payload + 4 + p.record.len() > MAX_BATCH_BYTES {
                        break;
                    }
                    payload += 4 + p.record.len();
                    batch.extend(st.pending.pop_front());
                }
                if batch.is_empty() {
                    st.flushing = false;
                    return;
                }
                (batch, payload)
            };
            let size = batch_bytes(payload);
            let slot = loop {
                let (active, room) = {
                    let st = self.state.borrow();
                    let s = &st.slots[st.active];
                    (st.active, s.offset + size as u64 <= JOURNAL_FILE_BYTES)
                };
                if room {
                    break active;
                }
                self.rotate().await;
            };
            let written = self.write_batch(slot, &batch, size).await;
            for (index, p) in batch.into_iter().enumerate() {
                let reply = written.as_ref().map_err(Clone::clone).map(|(generation, seq)| Applying {
                    journal: self.clone(),
                    slot,
                    id: RecordId { generation: *generation, seq: *seq, index: index as u32 },
                });
                // A caller gone drops its Applying here, which counts it finished.
                let _ = p.reply.send(reply);
            }
        }
    }

    /// Writes one batch to `slot`'s file at its offset. Counts the records as
    /// applying and their keys as dirty before the write, so a checkpoint or a
    /// settle that starts meanwhile waits for them; on failure the count is
    /// given back.
    async fn write_batch(self: &Rc<Self>, slot: usize, batch: &[Pending], size: usize) -> DriveResult<(u64, u32)> {
        let file = self.file(slot).await?;
        let (generation, epoch, seq, offset) = {
            let mut st = self.state.borrow_mut();
            let st = &mut *st;
            let s = &mut st.slots[slot];
            s.applying += batch.len();
            let (generation, epoch, seq, offset) = (s.generation, s.epoch, s.seq, s.offset);
            for (volume, key) in batch.iter().filter_map(|p| p.key.as_ref()) {
                st.dirty.entry(volume.clone()).or_default().insert(key.clone(), generation);
            }
            (generation, epoch, seq, offset)
        };
        let records: Vec<&[u8]> = batch.iter().map(|p| p.record.as_slice()).collect();
        let mut buf = file.alloc_dma_buffer(size);
        encode_batch_into(buf.as_bytes_mut(), generation, epoch, seq, &records);
        let r = file.write_at(buf, offset).await;
        let mut st = self.state.borrow_mut();
        let s = &mut st.slots[slot];
        match r {
            Ok(n) if n == size => {
                s.offset += size as u64;
                s.seq += 1;
                let half = JOURNAL_FILE_BYTES / 2;
                let next_unready =
                    s.offset >= half && s.offset - (size as u64) < half && st.slots[1 - slot].file.is_none();
                drop(st);
                if next_unready {
                    self.warm(1 - slot);
                }
                Ok((generation, seq))
            }
            other => {
                // The Applying values are never made: give the count back here.
                s.applying -= batch.len();
                if s.applying == 0 {
                    s.wake();
                }
                Err(match other {
                    Ok(n) => DriveError::Io(format!("journal write of {size} bytes wrote {n}")),
                    Err(e) => DriveError::from_glommio(e),
                })
            }
        }
    }

    /// `slot`'s file, opened (and created if missing) on first use.
    async fn file(&self, slot: usize) -> DriveResult<Rc<DmaFile>> {
        let opening = {
            let st = self.state.borrow();
            if let Some(f) = &st.slots[slot].file {
                return Ok(f.clone());
            }
            st.slots[slot].opening.clone()
        };
        let _one_at_a_time =
            opening.acquire_permit(1).await.map_err(|e| DriveError::Io(format!("journal file: {e}")))?;
        // Whoever held it before may have opened the file.
        let path = {
            let st = self.state.borrow();
            if let Some(f) = &st.slots[slot].file {
                return Ok(f.clone());
            }
            st.slots[slot].path.clone()
        };
        let p = path.clone();
        glommio::executor().spawn_blocking(move || prepare_file(&p)).await.map_err(|e| DriveError::from_io(&e))?;
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_DSYNC)
            .dma_open(&path)
            .await
            .map_err(DriveError::from_glommio)?;
        let file = Rc::new(file);
        self.state.borrow_mut().slots[slot].file = Some(file.clone());
        Ok(file)
    }

    /// Makes `slot`'s file ready in the background, so that no commit waits
    /// while 8 MiB of zeros are written: the first at start, the other once
    /// the active one is half full.
    pub fn warm(self: &Rc<Self>, slot: usize) {
        let journal = self.clone();
        glommio::spawn_local(async move {
            if let Err(e) = journal.file(slot).await {
                tracing::warn!(drive = %journal.root.display(), error = %e, "cannot prepare a journal file");
            }
        })
        .detach();
    }

    /// Retires the active file (its checkpoint starts) and makes the other
    /// one active, first waiting for the other's own checkpoint to end.
    async fn rotate(self: &Rc<Self>) {
        loop {
            // (glommio runs a spawned task at once: spawn with no borrow held.)
            let wait = {
                let mut st = self.state.borrow_mut();
                let st = &mut *st;
                let other = 1 - st.active;
                if st.slots[other].phase == Phase::Free {
                    let old = st.active;
                    st.slots[old].phase = Phase::Checkpointing;
                    let generation = st.next_generation;
                    st.next_generation += 1;
                    let s = &mut st.slots[other];
                    s.phase = Phase::Active;
                    s.generation = generation;
                    s.epoch = rand_epoch();
                    s.offset = 0;
                    s.seq = 0;
                    st.active = other;
                    Err(old)
                } else {
                    let (tx, rx) = oneshot::channel();
                    st.slots[other].waiters.push(tx);
                    Ok(rx)
                }
            };
            match wait {
                Ok(rx) => {
                    let waited = std::time::Instant::now();
                    let _ = rx.await;
                    tracing::debug!(drive = %self.root.display(), ms = waited.elapsed().as_millis() as u64, "journal waited for a checkpoint to rotate");
                }
                Err(retired) => {
                    glommio::spawn_local(self.clone().checkpoint(retired)).detach();
                    return;
                }
            }
        }
    }

    /// Makes the effects of `slot`'s records durable and empties it: waits
    /// until every one is carried out, `syncfs`, zeroes the first block.
    /// Retried until it works: until then its keys stay dirty.
    async fn checkpoint(self: Rc<Self>, slot: usize) {
        loop {
            let wait = {
                let mut st = self.state.borrow_mut();
                let s = &mut st.slots[slot];
                if s.applying == 0 {
                    break;
                }
                let (tx, rx) = oneshot::channel();
                s.waiters.push(tx);
                rx
            };
            let _ = wait.await;
        }
        let started = std::time::Instant::now();
        let mut delay = CHECKPOINT_RETRY_FIRST;
        loop {
            match self.sync_and_zero(slot).await {
                Ok(()) => break,
                // The drive's root or system folder is gone (wiped, unmounted):
                // nothing of it is left to make durable, and retrying would
                // hold every operation that waits for this checkpoint forever.
                Err(DriveError::FileNotFound) => {
                    tracing::warn!(drive = %self.root.display(), "journal checkpoint found the drive gone; its records are dropped");
                    break;
                }
                Err(e) => {
                    tracing::warn!(drive = %self.root.display(), error = %e, "journal checkpoint failed; retrying");
                    glommio::timer::sleep(delay).await;
                    delay = (delay * 2).min(CHECKPOINT_RETRY_MAX);
                }
            }
        }
        let mut st = self.state.borrow_mut();
        let generation = st.slots[slot].generation;
        tracing::debug!(drive = %self.root.display(), generation, ms = started.elapsed().as_millis() as u64, "journal checkpoint");
        st.dirty.retain(|_, keys| {
            keys.retain(|_, g| *g != generation);
            !keys.is_empty()
        });
        self.new_dirs.forget_journaled(generation);
        let s = &mut st.slots[slot];
        s.phase = Phase::Free;
        s.wake();
    }

    async fn sync_and_zero(&self, slot: usize) -> DriveResult<()> {
        let root = self.root.clone();
        glommio::executor()
            .spawn_blocking(move || {
                let dir = std::fs::File::open(&root)?;
                nix::unistd::syncfs(&dir).map_err(io::Error::from)
            })
            .await
            .map_err(|e| DriveError::from_io(&e))?;
        let file = self.file(slot).await?;
        let mut zero = file.alloc_dma_buffer(BLOCK_BYTES);
        zero.as_bytes_mut().fill(0);
        let n = file.write_at(zero, 0).await.map_err(DriveError::from_glommio)?;
        if n != BLOCK_BYTES {
            return Err(DriveError::Io(format!("journal reset wrote {n} bytes")));
        }
        Ok(())
    }

    /// Returns once no live record touches `volume/path` (or anything
    /// beneath or above it): a checkpoint ran since. For operations that
    /// change keys without the journal.
    pub async fn settle(self: &Rc<Self>, volume: &str, path: &str) {
        loop {
            let wait = {
                let mut st = self.state.borrow_mut();
                let st = &mut *st;
                let Some(keys) = st.dirty.get(volume) else { return };
                let Some(generation) = keys.iter().filter(|(k, _)| overlaps(k, path)).map(|(_, g)| *g).max() else {
                    return;
                };
                let Some(slot) = (0..2).find(|&i| st.slots[i].generation == generation) else { return };
                if slot == st.active {
                    None
                } else {
                    let (tx, rx) = oneshot::channel();
                    st.slots[slot].waiters.push(tx);
                    Some(rx)
                }
            };
            match wait {
                None => self.rotate().await,
                Some(rx) => {
                    let _ = rx.await;
                }
            }
        }
    }

    /// A drive being healed may have been wiped, journal files and all: a
    /// file gone from its path is closed, to be made anew on next use, and
    /// the active one starts a new turn at its beginning (the records of the
    /// old turn went with the drive).
    pub async fn reopen_if_gone(&self) {
        let paths: Vec<PathBuf> = self.state.borrow().slots.iter().map(|s| s.path.clone()).collect();
        let gone =
            glommio::executor().spawn_blocking(move || paths.iter().map(|p| !p.exists()).collect::<Vec<bool>>()).await;
        let mut st = self.state.borrow_mut();
        let active = st.active;
        for (i, s) in st.slots.iter_mut().enumerate() {
            if !gone[i] || s.file.is_none() {
                continue;
            }
            s.file = None;
            if i == active {
                s.epoch = rand_epoch();
                s.offset = 0;
                s.seq = 0;
            }
        }
    }
}

/// A random epoch for a file's turn: batches of an older turn left further
/// in the file never match it.
fn rand_epoch() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, meta: &[u8]) -> Record {
        Record::Put {
            volume: "b".into(),
            key_dir: key.into(),
            meta_name: ".basalt.meta".into(),
            meta: Bytes::copy_from_slice(meta),
        }
    }

    fn enc(r: &Record) -> Vec<u8> {
        postcard::to_stdvec(r).unwrap()
    }

    #[test]
    fn a_file_reads_back_its_turn_and_stops_at_a_torn_or_stale_batch() {
        let a = encode_batch(7, 99, 0, &[enc(&put("x", b"1")), enc(&put("y", b"2"))]);
        let b = encode_batch(7, 99, 1, &[enc(&put("x", b"3"))]);
        // A batch of an older turn left behind: same generation, other epoch.
        let stale = encode_batch(7, 98, 2, &[enc(&put("z", b"old"))]);
        let file = [a.clone(), b.clone(), stale].concat();
        let (generation, records) = decode_file(&file).unwrap().unwrap();
        assert_eq!(generation, 7);
        let got: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
        assert_eq!(got, vec![put("x", b"1"), put("y", b"2"), put("x", b"3")]);

        // A torn second batch ends the turn after the first.
        let mut torn = [a.clone(), b].concat();
        let last = torn.len() - BLOCK_BYTES + HEADER_BYTES + 2;
        torn[last] ^= 1;
        assert_eq!(decode_file(&torn).unwrap().unwrap().1.len(), 2);
        // A zeroed first block: nothing.
        let mut zeroed = a;
        zeroed[..BLOCK_BYTES].fill(0);
        assert!(decode_file(&zeroed).unwrap().is_none());
        // A batch out of sequence is not part of the turn.
        let skipped =
            [encode_batch(3, 1, 0, &[enc(&put("a", b"1"))]), encode_batch(3, 1, 2, &[enc(&put("b", b"2"))])].concat();
        assert_eq!(decode_file(&skipped).unwrap().unwrap().1.len(), 1);
    }

    #[test]
    fn an_unknown_version_is_an_error() {
        let mut a = encode_batch(1, 1, 0, &[enc(&put("x", b"1"))]);
        a[4] = 9;
        let hash = batch_hash(&a[..HEADER_BYTES - 8], &a[HEADER_BYTES..HEADER_BYTES + le_u32(&a, 28) as usize]);
        a[HEADER_BYTES - 8..HEADER_BYTES].copy_from_slice(&hash.to_le_bytes());
        let err = decode_file(&a).unwrap_err().to_string();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn overlap_is_the_key_its_ancestors_and_its_descendants() {
        assert!(overlaps("a/b", ""));
        assert!(overlaps("a/b", "a/b"));
        assert!(overlaps("a/b", "a"));
        assert!(overlaps("a/b", "a/b/.basalt.meta"));
        assert!(!overlaps("a/b", "a/bc"));
        assert!(!overlaps("a/bc", "a/b"));
        assert!(!overlaps("x", "y"));
    }

    /// A commit that arrives while its file is still being made (the warm-up
    /// at start, or at half of the other file) writes to the file that ends
    /// up at the path, where a restart will look for it.
    #[test]
    fn a_commit_racing_the_file_warm_up_lands_in_the_file_at_the_path() {
        for round in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            std::fs::create_dir_all(root.join(SYS_VOLUME)).unwrap();
            let r = root.clone();
            // Several blocking threads, as the server runs with.
            let written = glommio::LocalExecutorBuilder::default()
                .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(4))
                .spawn(move || async move {
                    let journal = Journal::new(r, Arc::new(NewDirs::default()));
                    journal.warm(0);
                    let applying = journal.append(&put("k", b"meta")).await.unwrap();
                    // Let the warm-up finish too before looking.
                    journal.file(0).await.unwrap();
                    applying.generation()
                })
                .unwrap()
                .join()
                .unwrap();
            let bytes = std::fs::read(root.join(SYS_VOLUME).join(JOURNAL_FILES[0])).unwrap();
            let (generation, records) =
                decode_file(&bytes).unwrap().unwrap_or_else(|| panic!("round {round}: no turn at the path"));
            assert_eq!(generation, written);
            assert_eq!(records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), vec![put("k", b"meta")]);
        }
    }

    /// Records redone at start, in order, over whatever a crash left: the
    /// last word on a key wins, a voided record is not redone, a record of a
    /// bucket that is gone is skipped, and the files are emptied after.
    #[test]
    fn recovery_redoes_the_records_in_order_and_empties_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(SYS_VOLUME)).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        let older = encode_batch(
            4,
            11,
            0,
            &[
                enc(&put("k/one", b"first")),
                enc(&put("k/two", b"two")),
                enc(&Record::Put {
                    volume: "gone".into(),
                    key_dir: "x".into(),
                    meta_name: ".basalt.meta".into(),
                    meta: Bytes::from_static(b"x"),
                }),
            ],
        );
        let newer = encode_batch(
            5,
            12,
            0,
            &[
                enc(&put("k/one", b"second")),
                enc(&Record::Delete {
                    volume: "b".into(),
                    key_dir: "k/two".into(),
                    meta_name: ".basalt.meta".into(),
                    data_dir: None,
                }),
                enc(&put("k/three", b"failed")),
                enc(&Record::Void { id: RecordId { generation: 5, seq: 0, index: 2 } }),
            ],
        );
        for (name, bytes) in [(JOURNAL_FILES[1], older), (JOURNAL_FILES[0], newer)] {
            let mut file = bytes;
            file.resize(JOURNAL_FILE_BYTES as usize, 0);
            std::fs::write(root.join(SYS_VOLUME).join(name), file).unwrap();
        }
        // What the crash left: a torn metadata file for k/one, k/two whole.
        std::fs::create_dir_all(root.join("b/k/one")).unwrap();
        std::fs::write(root.join("b/k/one/.basalt.meta"), b"").unwrap();
        std::fs::create_dir_all(root.join("b/k/two")).unwrap();
        std::fs::write(root.join("b/k/two/.basalt.meta"), b"two").unwrap();

        let done = recover(root).unwrap();
        assert_eq!(done, Recovered { redone: 4, skipped: 2 });
        assert_eq!(std::fs::read(root.join("b/k/one/.basalt.meta")).unwrap(), b"second");
        assert!(!root.join("b/k/two").exists());
        assert!(!root.join("b/k/three").exists());
        assert!(!root.join("gone").exists());
        // Emptied: a second start redoes nothing.
        assert_eq!(recover(root).unwrap(), Recovered::default());
    }
}
