//! The object layer: buckets and objects stored erasure coded across the drives of
//! an erasure set, with quorum reads and writes. One [`ObjectLayer`] lives on every
//! core; it reaches drives only through [`DriveHandle`], never knowing which core
//! (or, later, which node) owns them. Nothing here knows HTTP or XML.
//!
//! Placement: `hash(bucket/key)` picks the set, `hash(key)` rotates which drive
//! holds shard 0, so load spreads evenly over a set's drives.

mod blocks;
mod body;
mod get;
mod heal;
mod list;
mod multipart;
pub mod names;
mod put;
mod quorum;
mod scan;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::join_all;

pub use body::{Body, BytesBody};
pub use get::{ObjectReader, Range};
pub use heal::HealReport;
pub use list::{ListOptions, ListResult};
pub use multipart::{CompletePart, MultipartUpload, PartSummary};
pub use scan::{HealSummary, heal_pass_after_start};

use crate::config::Layout;
use crate::drive::meta::ObjectMeta;
use crate::drive::{DIR_META_FILE, DriveError, DriveHandle, DriveOp, DriveReply, META_FILE, VolumeInfo};
use crate::erasure::Erasure;
use crate::error::{Error, Result};
use crate::runtime::Core;
use crate::runtime::lock::{LOCK_TIMEOUT, LockGuard};

/// Objects up to this size live inside their metadata file: one write per drive
/// instead of three (data, metadata, directory), which is what makes small PUTs fast.
pub const INLINE_MAX_BYTES: usize = 128 << 10;
// A body read to decide whether it goes inline must fit in one block (`put::stage`).
const _: () = assert!(INLINE_MAX_BYTES < crate::erasure::BLOCK_SIZE_BYTES);
/// S3's largest object.
pub const MAX_OBJECT_BYTES: u64 = 5 << 40;
/// Objects queued on one core for healing after a read found bad shards; more are
/// dropped (a scanner finds them later).
const HEAL_QUEUE_MAX: usize = 1024;
/// An object whose heal did not fix it (its bad drives are gone or offline) is
/// not queued again for this long, so reads of a degraded set do not each pay
/// for a heal that cannot succeed.
const HEAL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Bodies one core stages at once (each holds about 10 MiB of block, coding and
/// DMA buffers); more PUTs and part uploads wait their turn, reading nothing, so
/// memory stays bounded however many clients upload at once.
pub const STAGING_SLOTS_PER_CORE: u64 = 8;

/// What a PUT says about the object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Declared length (Content-Length); the body must match it exactly.
    pub size: Option<u64>,
    pub content_type: Option<String>,
    /// Other standard headers to keep (cache-control, content-encoding, ...).
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` without the prefix.
    pub user_meta: BTreeMap<String, String>,
    /// Content-MD5, if the client sent one; a mismatch fails the PUT.
    pub content_md5: Option<[u8; 16]>,
    /// Checksums already verified by the front end, stored and returned.
    pub checksums: BTreeMap<String, String>,
}

/// What a client sees of an object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub mod_time_ns: i64,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    pub user_meta: BTreeMap<String, String>,
    pub checksums: BTreeMap<String, String>,
    /// Sizes of the object's parts, in order (one for a single PUT).
    pub part_sizes: Vec<u64>,
}

impl ObjectInfo {
    fn from_meta(bucket: &str, key: &str, m: &ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: m.size,
            etag: m.etag.clone(),
            mod_time_ns: m.mod_time_ns,
            content_type: m.content_type.clone(),
            headers: m.headers.clone(),
            user_meta: m.user_meta.clone(),
            checksums: m.checksums.clone(),
            part_sizes: m.parts.iter().map(|p| p.size).collect(),
        }
    }
}

/// A bucket as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ns: i64,
}

/// One erasure set as the object layer uses it.
pub(crate) struct Set {
    pub drives: Vec<DriveHandle>,
    pub erasure: Erasure,
    pub read_quorum: usize,
    pub write_quorum: usize,
}

/// The per-core object layer.
pub struct ObjectLayer {
    core: Rc<Core>,
    layout: Arc<Layout>,
    sets: Vec<Set>,
    /// Placement seed, from the deployment id; set when the drives are formatted.
    seed: std::cell::Cell<u64>,
    /// False until the drives are formatted (a cluster still agreeing at start).
    ready: std::cell::Cell<bool>,
    deployment_id: RefCell<String>,
    heal_queue: RefCell<VecDeque<(String, String)>>,
    healing: std::cell::Cell<bool>,
    /// Objects whose last heal left them damaged, and when.
    heal_failed: RefCell<std::collections::HashMap<(String, String), std::time::Instant>>,
    staging: glommio::sync::Semaphore,
}

/// Where an object's metadata lives: key `a/b` is `a/b/.basalt.meta`, key `a/b/`
/// is `a/b/.basalt.dirmeta`.
pub(crate) fn key_location(key: &str) -> (&str, &'static str) {
    match key.strip_suffix('/') {
        Some(dir) => (dir, DIR_META_FILE),
        None => (key, META_FILE),
    }
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

impl ObjectLayer {
    /// An object layer; `deployment_id` is `None` until the drives are formatted,
    /// and the layer refuses work until [`ObjectLayer::activate`].
    pub fn new(core: Rc<Core>, layout: Arc<Layout>, deployment_id: Option<&str>) -> ObjectLayer {
        let sets = layout
            .sets
            .iter()
            .map(|drives| Set {
                drives: drives.iter().map(|i| core.drive_handle(*i)).collect(),
                erasure: Erasure::new(layout.data, layout.parity, crate::erasure::BLOCK_SIZE_BYTES)
                    .expect("layout was validated at start"),
                read_quorum: layout.read_quorum(),
                write_quorum: layout.write_quorum(),
            })
            .collect();
        ObjectLayer {
            core,
            layout,
            sets,
            seed: std::cell::Cell::new(xxhash_rust::xxh3::xxh3_64(deployment_id.unwrap_or("").as_bytes())),
            ready: std::cell::Cell::new(deployment_id.is_some()),
            deployment_id: RefCell::new(deployment_id.unwrap_or("").to_string()),
            heal_queue: RefCell::new(VecDeque::new()),
            healing: std::cell::Cell::new(false),
            heal_failed: RefCell::new(std::collections::HashMap::new()),
            staging: glommio::sync::Semaphore::new(STAGING_SLOTS_PER_CORE),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Starts serving once the drives carry deployment `deployment_id`.
    pub fn activate(&self, deployment_id: &str) {
        self.seed.set(xxhash_rust::xxh3::xxh3_64(deployment_id.as_bytes()));
        *self.deployment_id.borrow_mut() = deployment_id.to_string();
        self.ready.set(true);
    }

    /// Empty until the drives are formatted.
    pub fn deployment_id(&self) -> String {
        self.deployment_id.borrow().clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Per set: drives reachable now, and the set's read and write quorum.
    fn reachable(&self) -> Vec<(usize, usize, usize)> {
        self.sets
            .iter()
            .map(|s| (s.drives.iter().filter(|d| d.is_online()).count(), s.read_quorum, s.write_quorum))
            .collect()
    }

    /// Whether every set has enough reachable drives for writes (or reads).
    pub fn has_quorum(&self, write: bool) -> bool {
        self.ready.get() && self.reachable().iter().all(|(up, r, w)| up >= if write { w } else { r })
    }

    pub fn core(&self) -> &Rc<Core> {
        &self.core
    }

    pub(crate) fn set_index(&self, bucket: &str, key: &str) -> usize {
        if self.sets.len() == 1 {
            return 0;
        }
        let mut h = xxhash_rust::xxh3::Xxh3::with_seed(self.seed.get());
        h.update(bucket.as_bytes());
        h.update(b"/");
        h.update(key.as_bytes());
        (h.digest() % self.sets.len() as u64) as usize
    }

    pub(crate) fn set_for(&self, bucket: &str, key: &str) -> &Set {
        &self.sets[self.set_index(bucket, key)]
    }

    /// The drives of `set` in shard order for `key`: shard `i` goes to `order[i]`.
    pub(crate) fn shard_order(&self, set: &Set, key: &str) -> Vec<DriveHandle> {
        self.shard_positions(set, key).into_iter().map(|p| set.drives[p].clone()).collect()
    }

    pub(crate) async fn lock(&self, bucket: &str, key: &str, write: bool) -> Result<LockGuard> {
        if !self.ready.get() {
            return Err(Error::NotInitialized);
        }
        crate::cluster::lock(&self.core, &format!("{bucket}/{key}"), write, LOCK_TIMEOUT).await
    }

    // ---- buckets -------------------------------------------------------------

    /// Creates a bucket on every drive; needs write quorum of every set.
    pub async fn make_bucket(&self, bucket: &str) -> Result<()> {
        names::check_bucket(bucket)?;
        let created_ns = now_ns();
        let _guard = self.lock(bucket, "", true).await?;
        for set in &self.sets {
            let results =
                join_all(set.drives.iter().map(|d| d.call(DriveOp::MakeVolume { volume: bucket.into(), created_ns })))
                    .await;
            let ok = results.iter().filter(|r| r.is_ok()).count();
            let exists = results.iter().filter(|r| matches!(r, Err(DriveError::VolumeExists))).count();
            if exists >= set.write_quorum || (ok == 0 && exists > 0 && exists + ok >= set.read_quorum) {
                return Err(Error::BucketAlreadyExists(bucket.to_string()));
            }
            if ok + exists < set.write_quorum {
                // Roll back what this call created so a failed create leaves nothing.
                for (d, r) in set.drives.iter().zip(&results) {
                    if r.is_ok() {
                        let _ = d.call(DriveOp::DeleteVolume { volume: bucket.into() }).await;
                    }
                }
                return Err(Error::InsufficientWriteQuorum { have: ok + exists, need: set.write_quorum });
            }
        }
        Ok(())
    }

    /// The bucket's info when read quorum of every set has it.
    pub async fn bucket_info(&self, bucket: &str) -> Result<BucketInfo> {
        names::check_bucket(bucket)?;
        let mut created_ns = 0;
        for set in &self.sets {
            let results =
                join_all(set.drives.iter().map(|d| d.call(DriveOp::StatVolume { volume: bucket.into() }))).await;
            let mut found = 0;
            let mut missing = 0;
            for r in results {
                match r {
                    Ok(DriveReply::Volume(v)) => {
                        found += 1;
                        created_ns = created_ns.max(v.created_ns);
                    }
                    Err(DriveError::VolumeNotFound) => missing += 1,
                    _ => {}
                }
            }
            if found < set.read_quorum {
                return Err(if missing + found >= set.read_quorum {
                    Error::NoSuchBucket(bucket.to_string())
                } else {
                    Error::InsufficientReadQuorum { have: found, need: set.read_quorum }
                });
            }
        }
        Ok(BucketInfo { name: bucket.to_string(), created_ns })
    }

    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        match self.bucket_info(bucket).await {
            Ok(_) => Ok(true),
            Err(Error::NoSuchBucket(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Buckets present on read quorum of the first set's drives, sorted by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let set = &self.sets[0];
        let results = join_all(set.drives.iter().map(|d| d.call(DriveOp::ListVolumes))).await;
        let mut seen: BTreeMap<String, (usize, i64)> = BTreeMap::new();
        let mut answered = 0;
        for r in results {
            if let Ok(DriveReply::Volumes(vols)) = r {
                answered += 1;
                for VolumeInfo { name, created_ns } in vols {
                    let e = seen.entry(name).or_insert((0, 0));
                    e.0 += 1;
                    e.1 = e.1.max(created_ns);
                }
            }
        }
        if answered < set.read_quorum {
            return Err(Error::InsufficientReadQuorum { have: answered, need: set.read_quorum });
        }
        let need = quorum::list_quorum(set);
        Ok(seen
            .into_iter()
            .filter(|(_, (count, _))| *count >= need)
            .map(|(name, (_, created_ns))| BucketInfo { name, created_ns })
            .collect())
    }

    /// Deletes an empty bucket from every drive.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        names::check_bucket(bucket)?;
        let _guard = self.lock(bucket, "", true).await?;
        self.bucket_info(bucket).await?;
        let empty = self.list_objects(bucket, &ListOptions { max_keys: 1, ..Default::default() }).await?;
        if !empty.objects.is_empty() || !empty.prefixes.is_empty() {
            return Err(Error::BucketNotEmpty(bucket.to_string()));
        }
        for set in &self.sets {
            let results =
                join_all(set.drives.iter().map(|d| d.call(DriveOp::DeleteVolume { volume: bucket.into() }))).await;
            if results.iter().any(|r| matches!(r, Err(DriveError::VolumeNotEmpty))) {
                return Err(Error::BucketNotEmpty(bucket.to_string()));
            }
            let ok = results.iter().filter(|r| matches!(r, Ok(_) | Err(DriveError::VolumeNotFound))).count();
            if ok < set.write_quorum {
                return Err(Error::InsufficientWriteQuorum { have: ok, need: set.write_quorum });
            }
        }
        Ok(())
    }

    pub(crate) async fn require_bucket(&self, bucket: &str) -> Result<()> {
        self.bucket_info(bucket).await.map(|_| ())
    }

    // ---- objects ---------------------------------------------------------------

    /// The newest version read quorum agrees on.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let _guard = self.lock(bucket, key, false).await?;
        let set = self.set_for(bucket, key);
        let found = quorum::read_metas(set, bucket, key).await?;
        Ok(ObjectInfo::from_meta(bucket, key, &found.meta))
    }

    /// Deletes an object from every drive; deleting a missing object succeeds, as in S3.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let _guard = self.lock(bucket, key, true).await?;
        let set = self.set_for(bucket, key);
        let (key_dir, meta_name) = key_location(key);
        let results = join_all(set.drives.iter().map(|d| {
            d.call(DriveOp::DeleteObject {
                volume: bucket.into(),
                key_dir: key_dir.into(),
                meta_name: meta_name.into(),
            })
        }))
        .await;
        let ok = results.iter().filter(|r| matches!(r, Ok(_) | Err(DriveError::FileNotFound))).count();
        let no_bucket = results.iter().filter(|r| matches!(r, Err(DriveError::VolumeNotFound))).count();
        if no_bucket >= set.read_quorum {
            return Err(Error::NoSuchBucket(bucket.to_string()));
        }
        if ok < set.write_quorum {
            return Err(Error::InsufficientWriteQuorum { have: ok, need: set.write_quorum });
        }
        Ok(())
    }

    /// Copies an object. With the same source and target only the metadata is
    /// replaced (`options` given) in place; otherwise the data streams through.
    pub async fn copy_object(
        self: &Rc<Self>,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        options: Option<PutOptions>,
    ) -> Result<ObjectInfo> {
        if src_bucket == dst_bucket && src_key == dst_key {
            return self.replace_metadata(src_bucket, src_key, options).await;
        }
        let mut reader = self.get_object(src_bucket, src_key, None).await?;
        let info = reader.info().clone();
        let mut opts = options.unwrap_or_else(|| PutOptions {
            content_type: Some(info.content_type.clone()),
            headers: info.headers.clone(),
            user_meta: info.user_meta.clone(),
            checksums: info.checksums.clone(),
            ..Default::default()
        });
        opts.size = Some(info.size);
        opts.content_md5 = None;
        self.put_object(dst_bucket, dst_key, &mut reader, opts).await
    }

    async fn replace_metadata(&self, bucket: &str, key: &str, options: Option<PutOptions>) -> Result<ObjectInfo> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let _guard = self.lock(bucket, key, true).await?;
        let set = self.set_for(bucket, key);
        let found = quorum::read_metas(set, bucket, key).await?;
        let mut meta = found.meta.clone();
        if let Some(o) = options {
            meta.content_type = o.content_type.unwrap_or_else(|| "application/octet-stream".into());
            meta.headers = o.headers;
            meta.user_meta = o.user_meta;
        }
        meta.mod_time_ns = now_ns();
        let (key_dir, meta_name) = key_location(key);
        let path = format!("{key_dir}/{meta_name}");
        let path = path.as_str();
        let writes = found.per_drive.iter().enumerate().filter_map(|(i, m)| {
            let (drive_meta, inline) = m.as_ref()?;
            if !drive_meta.same_version(&found.meta) {
                return None;
            }
            let mut mine = meta.clone();
            mine.erasure.index = drive_meta.erasure.index;
            let bytes = crate::drive::meta::encode(&mine, inline);
            Some(set.drives[i].write_all(bucket, path, bytes))
        });
        let ok = join_all(writes).await.iter().filter(|r| r.is_ok()).count();
        if ok < set.write_quorum {
            return Err(Error::InsufficientWriteQuorum { have: ok, need: set.write_quorum });
        }
        Ok(ObjectInfo::from_meta(bucket, key, &meta))
    }

    /// Runs a body's staging within this core's staging slots (see
    /// [`STAGING_SLOTS_PER_CORE`]).
    pub(crate) async fn staged<T>(&self, staging: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let _slot = self.staging.acquire_permit(1).await.map_err(|e| Error::Internal(e.to_string()))?;
        staging.await
    }

    /// Notes an object a read found damaged; a per-core task heals queued objects
    /// one at a time.
    pub(crate) fn report_damage(self: &Rc<Self>, bucket: &str, key: &str) {
        {
            let id = (bucket.to_string(), key.to_string());
            if self.heal_failed.borrow().get(&id).is_some_and(|t| t.elapsed() < HEAL_RETRY_AFTER) {
                return;
            }
            let mut q = self.heal_queue.borrow_mut();
            if q.len() >= HEAL_QUEUE_MAX || q.iter().any(|(b, k)| b == bucket && k == key) {
                return;
            }
            q.push_back((bucket.to_string(), key.to_string()));
        }
        if self.healing.replace(true) {
            return;
        }
        let this = self.clone();
        glommio::spawn_local(async move {
            loop {
                let next = this.heal_queue.borrow_mut().pop_front();
                let Some((bucket, key)) = next else { break };
                let fixed = match this.heal_object(&bucket, &key).await {
                    Ok(r) => {
                        if !r.healed.is_empty() {
                            tracing::info!(%bucket, %key, drives = ?r.healed, "healed object after a damaged read");
                        }
                        r.failed.is_empty()
                    }
                    Err(e) => {
                        tracing::warn!(%bucket, %key, error = %e, "heal after a damaged read failed");
                        false
                    }
                };
                let mut failed = this.heal_failed.borrow_mut();
                if fixed {
                    failed.remove(&(bucket, key));
                } else {
                    if failed.len() >= HEAL_QUEUE_MAX {
                        failed.retain(|_, t| t.elapsed() < HEAL_RETRY_AFTER);
                    }
                    if failed.len() < HEAL_QUEUE_MAX {
                        failed.insert((bucket, key), std::time::Instant::now());
                    }
                }
            }
            this.healing.set(false);
        })
        .detach();
    }
}
