//! Healing one object: find the drives of its set that lack the current version
//! or hold it damaged (missing metadata, missing, truncated or bit-flipped
//! shards), rebuild their shards from the good ones, and commit them there.
//! Runs under the object's write lock, so it never races a PUT.

use bytes::Bytes;
use futures_util::future::join_all;

use super::put::{discard, frame};
use super::quorum::{self, Found};
use super::{ObjectLayer, Set, key_location, names};
use crate::drive::meta::{self, ObjectMeta};
use crate::drive::{DriveHandle, DriveOp, SYS_VOLUME, ShardWriter, TMP_DIR};
use crate::erasure::{BITROT_HASH_BYTES, Erasure, shard_file_offset, shard_file_size, verify_framed};
use crate::error::{Error, Result};

/// What a heal found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealReport {
    /// Set positions of the drives that were rewritten.
    pub healed: Vec<usize>,
    /// Set positions of drives found bad but that could not be rewritten.
    pub failed: Vec<usize>,
}

impl ObjectLayer {
    /// Checks every shard of an object and rebuilds the bad ones.
    pub async fn heal_object(&self, bucket: &str, key: &str) -> Result<HealReport> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let _guard = self.lock(bucket, key, true).await?;
        let set = self.set_for(bucket, key);
        let found = quorum::read_metas(set, bucket, key).await?;
        let meta = found.meta.clone();
        let erasure = Erasure::new(meta.erasure.data, meta.erasure.parity, meta.erasure.block_size)?;
        let n = erasure.total_shards();
        if n != set.drives.len() {
            return Err(Error::Internal("stored layout does not match the set".into()));
        }
        // Canonical placement: shard i belongs on set position positions[i].
        let positions = self.shard_positions(set, key);
        let (key_dir, _) = key_location(key);
        let data_path = meta.data_dir.as_ref().map(|d| format!("{key_dir}/{d}"));
        let mut good = vec![false; n];
        for (index, &pos) in positions.iter().enumerate() {
            good[index] = found.agrees(pos)
                && found.per_drive[pos].as_ref().is_some_and(|(m, _)| m.erasure.index == index)
                && verify_shards(set, &found, pos, &erasure, &meta, data_path.as_deref(), bucket).await;
        }
        let bad: Vec<usize> = (0..n).filter(|i| !good[*i]).collect();
        if bad.is_empty() {
            return Ok(HealReport::default());
        }
        let have = n - bad.len();
        if have < erasure.data_shards() {
            return Err(Error::InsufficientReadQuorum { have, need: erasure.data_shards() });
        }
        // Make sure the bad drives can take data: a replaced drive is formatted here.
        let created_ns = self.bucket_info(bucket).await.map(|b| b.created_ns).unwrap_or(0);
        join_all(
            bad.iter()
                .map(|&i| set.drives[positions[i]].call(DriveOp::HealVolume { volume: bucket.into(), created_ns })),
        )
        .await;
        let sources: Vec<Option<&DriveHandle>> = (0..n).map(|i| good[i].then(|| &set.drives[positions[i]])).collect();
        let tmp_dir = format!("{TMP_DIR}/{}", uuid::Uuid::new_v4());
        let rebuilt = match &meta.data_dir {
            None => self.rebuild_inline(&found, &positions, &erasure, &good).await.map(Some),
            Some(_) => {
                let path = data_path.as_deref().unwrap_or_default();
                rebuild_files(set, &positions, &sources, &bad, &erasure, &meta, path, &tmp_dir, bucket)
                    .await
                    .map(|()| None)
            }
        };
        let inline = match rebuilt {
            Ok(i) => i,
            Err(e) => {
                discard(&set.drives, &tmp_dir).await;
                return Err(e);
            }
        };
        let (_, meta_name) = key_location(key);
        let commits = bad.iter().map(|&i| {
            let mut mine = meta.clone();
            mine.erasure.index = i;
            let inline_bytes = inline.as_ref().map_or(Bytes::new(), |v: &Vec<Bytes>| v[i].clone());
            let op = DriveOp::RenameData {
                src_dir: meta.data_dir.as_ref().map(|_| tmp_dir.clone()),
                volume: bucket.into(),
                key_dir: key_dir.into(),
                data_dir: meta.data_dir.clone(),
                meta_name: meta_name.into(),
                meta: meta::encode(&mine, &inline_bytes),
            };
            let drive = &set.drives[positions[i]];
            async move { drive.call(op).await }
        });
        let results = join_all(commits).await;
        let mut report = HealReport::default();
        for (&i, r) in bad.iter().zip(results) {
            match r {
                Ok(_) => report.healed.push(positions[i]),
                Err(e) => {
                    tracing::warn!(%bucket, %key, drive = positions[i], error = %e, "heal could not rewrite a drive");
                    report.failed.push(positions[i]);
                }
            }
        }
        discard(&set.drives, &tmp_dir).await;
        crate::metrics::healed(report.healed.len(), report.failed.len());
        Ok(report)
    }

    /// Set positions in shard order for `key` (shard i on position `[i]`).
    pub(crate) fn shard_positions(&self, set: &Set, key: &str) -> Vec<usize> {
        let n = set.drives.len();
        let rot = (xxhash_rust::xxh3::xxh3_64_with_seed(key.as_bytes(), self.seed.get()) % n as u64) as usize;
        (0..n).map(|i| (i + rot) % n).collect()
    }

    /// Rebuilds the inline shards of a small object; returns every shard index's bytes.
    async fn rebuild_inline(
        &self,
        found: &Found,
        positions: &[usize],
        erasure: &Erasure,
        good: &[bool],
    ) -> Result<Vec<Bytes>> {
        let n = erasure.total_shards();
        let size = found.meta.size as usize;
        let shard_len = erasure.shard_size(size);
        let mut shards: Vec<Option<Bytes>> = vec![None; n];
        for i in 0..n {
            if good[i]
                && let Some((_, inline)) = &found.per_drive[positions[i]]
            {
                shards[i] = verify_framed(inline, shard_len).map(Bytes::copy_from_slice);
            }
        }
        erasure.reconstruct_all(&mut shards, shard_len)?;
        Ok(shards.into_iter().map(|s| frame(&s.unwrap_or_default())).collect())
    }
}

/// Reads every block of one drive's shards and checks its bitrot hashes.
async fn verify_shards(
    set: &Set,
    found: &Found,
    pos: usize,
    erasure: &Erasure,
    meta: &ObjectMeta,
    data_path: Option<&str>,
    bucket: &str,
) -> bool {
    let Some(data_path) = data_path else {
        let Some((_, inline)) = &found.per_drive[pos] else { return false };
        return verify_framed(inline, erasure.shard_size(meta.size as usize)).is_some();
    };
    let drive = &set.drives[pos];
    for part in &meta.parts {
        let path = format!("{data_path}/part.{}", part.number);
        for (block_index, block_len) in blocks(erasure, part.size) {
            let shard_len = erasure.shard_size(block_len);
            let offset = shard_file_offset(erasure, block_index);
            let framed = drive.read_at(bucket, &path, offset, (BITROT_HASH_BYTES + shard_len) as u64).await;
            if !framed.is_ok_and(|f| verify_framed(&f, shard_len).is_some()) {
                return false;
            }
        }
    }
    true
}

/// (block index, block length) of every block of a part.
fn blocks(erasure: &Erasure, part_size: u64) -> impl Iterator<Item = (u64, usize)> {
    let block = erasure.block_size() as u64;
    let count = part_size.div_ceil(block);
    (0..count).map(move |b| (b, (part_size - b * block).min(block) as usize))
}

/// Streams rebuilt shard files for the `bad` shard indices into `tmp_dir`.
#[allow(clippy::too_many_arguments)]
async fn rebuild_files(
    set: &Set,
    positions: &[usize],
    sources: &[Option<&DriveHandle>],
    bad: &[usize],
    erasure: &Erasure,
    meta: &ObjectMeta,
    data_path: &str,
    tmp_dir: &str,
    bucket: &str,
) -> Result<()> {
    let n = erasure.total_shards();
    for part in &meta.parts {
        let target = format!("{tmp_dir}/part.{}", part.number);
        let size = Some(shard_file_size(erasure, part.size));
        let opened =
            join_all(bad.iter().map(|&i| set.drives[positions[i]].create_file(SYS_VOLUME, &target, size))).await;
        let mut writers: Vec<ShardWriter> = opened.into_iter().collect::<std::result::Result<_, _>>()?;
        let path = format!("{data_path}/part.{}", part.number);
        for (block_index, block_len) in blocks(erasure, part.size) {
            let shard_len = erasure.shard_size(block_len);
            let offset = shard_file_offset(erasure, block_index);
            let framed_len = (BITROT_HASH_BYTES + shard_len) as u64;
            let reads = join_all((0..n).map(|i| {
                let path = &path;
                async move {
                    let d = sources[i]?;
                    let f = d.read_at(bucket, path, offset, framed_len).await.ok()?;
                    verify_framed(&f, shard_len).map(Bytes::copy_from_slice)
                }
            }))
            .await;
            let mut shards = reads;
            erasure.reconstruct_all(&mut shards, shard_len)?;
            for (w, &i) in writers.iter_mut().zip(bad) {
                let shard = shards[i].as_ref().ok_or_else(|| Error::Internal("shard not rebuilt".into()))?;
                w.write(frame(shard)).await?;
            }
        }
        for w in writers {
            w.finish().await?;
        }
    }
    Ok(())
}
