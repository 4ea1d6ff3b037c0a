//! PUT: stream a body into shard files (or, for small objects, into the metadata
//! itself), then commit on every drive under the object's write lock.
//!
//! Data path per 1 MiB block: the body is read straight into the block buffer
//! (for an HTTP body, the socket's receive is the only copy; a body that hands
//! out chunks is copied in), MD5, Reed-Solomon encode (data shards are slices of
//! the block; the codec copies them into its work buffers), bitrot hash, then
//! each shard goes to its drive's writer, which copies it into a DMA buffer or,
//! for another core, sends it over a channel first. Block buffers are reused
//! (`blocks`). The body is never held whole.

use crate::etag::{self, Md5};
use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;

use super::{
    Body, INLINE_MAX_BYTES, MAX_OBJECT_BYTES, ObjectInfo, ObjectLayer, PutOptions, Set, blocks, key_location, names,
};
use crate::drive::meta::{self, ErasureInfo, ObjectMeta, PartInfo};
use crate::drive::{DATA_DIR_PREFIX, DriveError, DriveHandle, DriveOp, DriveReply, SYS_VOLUME, ShardWriter, TMP_DIR};
use crate::erasure::{BITROT_HASH_BYTES, Erasure, bitrot_hash, shard_file_size};
use crate::error::{Error, Result};

/// A body consumed into shards.
pub(crate) enum Staged {
    /// Small object: each shard index's framed shards, to go inside its metadata.
    Inline { size: u64, md5: [u8; 16], shards: Vec<Bytes> },
    /// Shard files written and synced; `ok[i]` says whether shard `i`'s drive has its file.
    Files { size: u64, md5: [u8; 16], ok: Vec<bool> },
}

impl Staged {
    pub fn size(&self) -> u64 {
        match self {
            Staged::Inline { size, .. } | Staged::Files { size, .. } => *size,
        }
    }

    pub fn md5(&self) -> [u8; 16] {
        match self {
            Staged::Inline { md5, .. } | Staged::Files { md5, .. } => *md5,
        }
    }
}

/// Reads a body block by block, enforcing the declared length and the size limit.
struct BlockReader<'a, B> {
    body: &'a mut B,
    pending: Option<Bytes>,
    declared: Option<u64>,
    limit: u64,
    total: u64,
    eof: bool,
}

impl<B: Body> BlockReader<'_, B> {
    /// Appends to `small` until it holds `want` bytes or the body ends, chunk by
    /// chunk (a small body is mostly in the connection's buffer already).
    async fn fill_small(&mut self, small: &mut BytesMut, want: usize) -> Result<()> {
        while small.len() < want {
            let Some(chunk) = self.chunk().await? else { return Ok(()) };
            let take = (want - small.len()).min(chunk.len());
            self.count(take)?;
            small.extend_from_slice(&chunk[..take]);
            if take < chunk.len() {
                self.pending = Some(chunk.slice(take..));
            }
        }
        Ok(())
    }

    /// Fills `block[*filled..]` until it is full or the body ends, reading
    /// straight into it where the body can.
    async fn fill_block(&mut self, block: &mut [u8], filled: &mut usize) -> Result<()> {
        while *filled < block.len() {
            let dst = &mut block[*filled..];
            if self.pending.is_none() {
                match self.body.read_into(dst).await? {
                    Some(0) => return self.ended(),
                    Some(n) => {
                        self.count(n)?;
                        *filled += n;
                        continue;
                    }
                    None => {}
                }
            }
            let Some(chunk) = self.chunk().await? else { return Ok(()) };
            let take = dst.len().min(chunk.len());
            self.count(take)?;
            dst[..take].copy_from_slice(&chunk[..take]);
            *filled += take;
            if take < chunk.len() {
                self.pending = Some(chunk.slice(take..));
            }
        }
        Ok(())
    }

    /// The chunk left over from the last fill, or the body's next; `None` at the
    /// end of the body (then `eof` is set).
    async fn chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(c) = self.pending.take() {
            return Ok(Some(c));
        }
        match self.body.next_chunk().await? {
            Some(c) => Ok(Some(c)),
            None => {
                self.ended()?;
                Ok(None)
            }
        }
    }

    /// The body ended: it must have been as long as it said.
    fn ended(&mut self) -> Result<()> {
        self.eof = true;
        match self.declared {
            Some(d) if self.total != d => Err(Error::IncompleteBody { expected: d, got: self.total }),
            _ => Ok(()),
        }
    }

    /// Counts `n` more bytes against the declared length and the limit.
    fn count(&mut self, n: usize) -> Result<()> {
        self.total += n as u64;
        if let Some(d) = self.declared
            && self.total > d
        {
            return Err(Error::BodyTooLong(d));
        }
        if self.total > self.limit {
            return Err(Error::EntityTooLarge(self.limit));
        }
        Ok(())
    }
}

/// Where and how [`stage`] writes a body.
pub(crate) struct StageTo<'a> {
    /// Drives in shard order.
    pub order: &'a [DriveHandle],
    pub erasure: Erasure,
    pub write_quorum: usize,
    /// Shard file path under the system volume.
    pub path: &'a str,
    /// Declared body length, if any, and the most bytes allowed.
    pub declared: Option<u64>,
    pub limit: u64,
    /// Whether a small body may stay in memory to go inline in the metadata.
    pub allow_inline: bool,
}

/// Streams `body` into shard files, or returns it inline when allowed and small.
pub(crate) async fn stage<B: Body>(to: StageTo<'_>, body: &mut B) -> Result<Staged> {
    let StageTo { order, erasure, write_quorum, path, declared, limit, allow_inline } = to;
    if let Some(d) = declared
        && d > limit
    {
        return Err(Error::EntityTooLarge(limit));
    }
    let block_size = erasure.block_size();
    let mut reader = BlockReader { body, pending: None, declared, limit, total: 0, eof: false };
    let mut md5 = Md5::new();

    // The body's first bytes, when it may be small enough to go inline.
    let mut small = BytesMut::new();
    if allow_inline {
        small.reserve(INLINE_MAX_BYTES + 1);
        reader.fill_small(&mut small, INLINE_MAX_BYTES + 1).await?;
        if reader.eof {
            let small = small.freeze();
            let md5 = etag::begin(md5, small.clone()).finish().await;
            let shards = erasure.encode_owned(small.clone())?;
            let framed = shards.iter().map(|s| frame(s)).collect();
            return Ok(Staged::Inline { size: small.len() as u64, md5: md5.finalize(), shards: framed });
        }
    }

    // From here the body comes in blocks: their hashes may share lanes with
    // other bodies this core receives.
    let _receiving = etag::receiving();
    let shard_file = declared.map(|d| shard_file_size(&erasure, d));
    let opened = join_all(order.iter().map(|d| d.create_file(SYS_VOLUME, path, shard_file))).await;
    // Drives that failed because they are full: below quorum, that is the answer.
    let full = std::cell::Cell::new(opened.iter().filter(|r| matches!(r, Err(DriveError::DriveFull))).count());
    let mut writers: Vec<Option<ShardWriter>> = opened.into_iter().map(Result::ok).collect();
    check_quorum(&writers, write_quorum, full.get())?;
    let mut block = blocks::take(block_size);
    block[..small.len()].copy_from_slice(&small);
    let mut filled = small.len();
    drop(small);
    loop {
        reader.fill_block(&mut block, &mut filled).await?;
        if filled == 0 && reader.eof {
            break;
        }
        // The block's buffer goes to the coder as is (data shards are slices of
        // it); it is kept for reuse once the writers are done with it.
        let whole = std::mem::take(&mut block).freeze();
        // Hashed while the shards are written, in lanes with the other bodies
        // this core is receiving.
        let hashing = etag::begin(md5, whole.slice(..filled));
        let shards = erasure.encode_owned(whole.slice(..filled))?;
        blocks::give(whole);
        let full = &full;
        let writes = writers.iter_mut().zip(shards).map(|(w, shard)| async move {
            if let Some(writer) = w {
                let hash = Bytes::copy_from_slice(&bitrot_hash(&shard).to_le_bytes());
                if let Err(e) = writer.write_framed(hash, shard).await {
                    tracing::warn!(error = %e, "shard write failed; continuing with the remaining drives");
                    if e == DriveError::DriveFull {
                        full.set(full.get() + 1);
                    }
                    *w = None;
                }
            }
        });
        join_all(writes).await;
        md5 = hashing.finish().await;
        check_quorum(&writers, write_quorum, full.get())?;
        if reader.eof {
            break;
        }
        block = blocks::take(block_size);
        filled = 0;
    }
    if !block.is_empty() {
        // Taken for more of the body, which had ended at the last block's edge.
        blocks::give(block.freeze());
    }
    let finished = join_all(writers.into_iter().map(|w| async move {
        match w {
            Some(w) => w.finish().await,
            None => Err(DriveError::Offline),
        }
    }))
    .await;
    let have = finished.iter().filter(|r| r.is_ok()).count();
    if have < write_quorum {
        if finished.iter().any(|r| matches!(r, Err(DriveError::DriveFull))) || full.get() > 0 {
            return Err(Error::StorageFull);
        }
        return Err(Error::InsufficientWriteQuorum { have, need: write_quorum });
    }
    let finished: Vec<bool> = finished.iter().map(Result::is_ok).collect();
    Ok(Staged::Files { size: reader.total, md5: md5.finalize(), ok: finished })
}

fn check_quorum(writers: &[Option<ShardWriter>], need: usize, full: usize) -> Result<()> {
    let have = writers.iter().filter(|w| w.is_some()).count();
    match (have < need, full > 0) {
        (false, _) => Ok(()),
        (true, true) => Err(Error::StorageFull),
        (true, false) => Err(Error::InsufficientWriteQuorum { have, need }),
    }
}

/// `[hash][shard]`, the unit stored for each block.
pub(crate) fn frame(shard: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(BITROT_HASH_BYTES + shard.len());
    out.extend_from_slice(&bitrot_hash(shard).to_le_bytes());
    out.extend_from_slice(shard);
    out.freeze()
}

/// Best-effort removal of a staging directory from every drive.
pub(crate) async fn discard(order: &[DriveHandle], tmp_dir: &str) {
    join_all(order.iter().map(|d| d.delete(SYS_VOLUME, tmp_dir, true))).await;
}

impl ObjectLayer {
    /// Stores an object; returns once write quorum of drives has it durably.
    pub async fn put_object<B: Body>(
        &self,
        bucket: &str,
        key: &str,
        body: &mut B,
        options: PutOptions,
    ) -> Result<ObjectInfo> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        // A body that goes to shard files is not staged into a missing bucket. A
        // small one stays in memory; the commit itself finds a missing bucket
        // (every drive answers "no such volume"), which saves a round of drive
        // calls on every small PUT.
        if options.size.is_none_or(|s| s > INLINE_MAX_BYTES as u64) {
            self.require_bucket(bucket).await?;
        }
        let set = self.set_for(bucket, key);
        let order = self.shard_order(set, key);
        let tmp_dir = format!("{TMP_DIR}/{}", uuid::Uuid::new_v4());
        let path = format!("{tmp_dir}/part.1");
        let to = StageTo {
            order: &order,
            erasure: set.erasure,
            write_quorum: set.write_quorum,
            path: &path,
            declared: options.size,
            limit: MAX_OBJECT_BYTES,
            allow_inline: true,
        };
        let staged = self.staged(stage(to, body)).await;
        let staged = match staged {
            Ok(s) => s,
            Err(e) => {
                discard(&order, &tmp_dir).await;
                return Err(e);
            }
        };
        if let Some(want) = options.content_md5
            && want != staged.md5()
        {
            discard(&order, &tmp_dir).await;
            return Err(Error::BadDigest);
        }
        let etag = hex(&staged.md5());
        let size = staged.size();
        let mut checksums = options.checksums;
        checksums.extend(body.verified_checksums());
        let meta = ObjectMeta {
            version_id: uuid::Uuid::new_v4().to_string(),
            mod_time_ns: super::now_ns(),
            size,
            etag: etag.clone(),
            content_type: options.content_type.unwrap_or_else(|| "application/octet-stream".into()),
            headers: options.headers,
            user_meta: options.user_meta,
            checksums,
            erasure: ErasureInfo {
                data: set.erasure.data_shards(),
                parity: set.erasure.parity_shards(),
                block_size: set.erasure.block_size(),
                index: 0,
            },
            parts: vec![PartInfo { number: 1, size, etag }],
            data_dir: None,
        };
        let result = self.commit(set, &order, bucket, key, meta, staged, &tmp_dir).await;
        if result.is_err() {
            discard(&order, &tmp_dir).await;
        }
        result
    }

    /// Commits a staged version on every drive that staged it, under the write lock.
    /// Below write quorum, the drives that did commit are rolled back, so the
    /// previous version stays the one readers see.
    #[allow(clippy::too_many_arguments)] // where (set, order, bucket, key), what (meta, staged, tmp)
    pub(crate) async fn commit(
        &self,
        set: &Set,
        order: &[DriveHandle],
        bucket: &str,
        key: &str,
        mut meta: ObjectMeta,
        staged: Staged,
        tmp_dir: &str,
    ) -> Result<ObjectInfo> {
        let (key_dir, meta_name) = key_location(key);
        let (ok, inline, data_dir) = match staged {
            Staged::Inline { shards, .. } => (vec![true; order.len()], Some(shards), None),
            Staged::Files { ok, .. } => (ok, None, Some(format!("{DATA_DIR_PREFIX}{}", uuid::Uuid::new_v4()))),
        };
        meta.data_dir = data_dir.clone();
        let _guard = self.lock(bucket, key, true).await?;
        let renames = order.iter().enumerate().filter(|(i, _)| ok[*i]).map(|(i, d)| {
            let mut mine = meta.clone();
            mine.erasure.index = i;
            let bytes = meta::encode(&mine, inline.as_ref().map_or(&[][..], |s| &s[i][..]));
            let op = DriveOp::RenameData {
                src_dir: data_dir.as_ref().map(|_| tmp_dir.to_string()),
                volume: bucket.into(),
                key_dir: key_dir.into(),
                data_dir: data_dir.clone(),
                meta_name: meta_name.into(),
                meta: bytes,
            };
            async move { (d, d.call(op).await) }
        });
        let results = join_all(renames).await;
        let mut committed = Vec::new();
        let mut no_bucket = 0;
        let mut full = 0;
        for (d, r) in results {
            match r {
                Ok(DriveReply::OldMeta(old)) => committed.push((d, old)),
                Ok(_) => {}
                Err(DriveError::VolumeNotFound) => no_bucket += 1,
                Err(DriveError::DriveFull) => full += 1,
                Err(e) => tracing::warn!(error = %e, "commit failed on a drive"),
            }
        }
        if committed.len() < set.write_quorum {
            let undo = committed.iter().map(|(d, old)| {
                d.call(DriveOp::UndoRename {
                    volume: bucket.into(),
                    key_dir: key_dir.into(),
                    meta_name: meta_name.into(),
                    old_meta: old.clone(),
                    data_dir: data_dir.clone(),
                })
            });
            join_all(undo).await;
            if no_bucket >= set.read_quorum {
                return Err(Error::NoSuchBucket(bucket.to_string()));
            }
            if full > 0 {
                return Err(Error::StorageFull);
            }
            return Err(Error::InsufficientWriteQuorum { have: committed.len(), need: set.write_quorum });
        }
        // The new version is durable on quorum: drop the old version's data.
        let cleanups = committed.iter().filter_map(|(d, old)| {
            let old_dir = meta::decode(old.as_ref()?).ok()?.0.data_dir?;
            (Some(&old_dir) != data_dir.as_ref()).then(|| {
                d.call(DriveOp::DeleteDataDir { volume: bucket.into(), key_dir: key_dir.into(), data_dir: old_dir })
            })
        });
        join_all(cleanups).await;
        Ok(super::ObjectInfo::from_meta(bucket, key, &meta))
    }
}

pub(crate) use crate::hex::encode as hex;
