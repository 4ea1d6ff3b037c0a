//! Multipart uploads. An upload lives in the set of its final key, under
//! `.basalt.sys/multipart/<bucket>/<upload id>/` on each drive:
//! `upload.json` (key, options, start time), and per part a shard file
//! `part.<n>.<uuid>` plus `part.<n>.meta` naming it. A part becomes visible only
//! when its metadata is written, so a re-upload or a crash mid-part never mixes
//! two uploads of one part. Completing moves the chosen part files into a new
//! data directory and commits the object like a PUT.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::put::{StageTo, Staged, discard, hex, stage};
use super::{Body, ObjectInfo, ObjectLayer, PutOptions, Set, names};
use crate::drive::meta::{ErasureInfo, ObjectMeta, PartInfo};
use crate::drive::{DriveOp, MULTIPART_DIR, SYS_VOLUME, TMP_DIR};
use crate::error::{Error, Result};

/// S3's limits on parts.
pub const MAX_PART_NUMBER: u32 = 10_000;
pub const MIN_PART_BYTES: u64 = 5 << 20;
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// Uploads returned per ListMultipartUploads page.
pub const MAX_UPLOADS_PER_PAGE: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadFile {
    bucket: String,
    key: String,
    upload_id: String,
    initiated_ns: i64,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
    user_meta: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartFile {
    number: u32,
    size: u64,
    etag: String,
    mod_time_ns: i64,
    /// Name of the shard file in the upload directory.
    data: String,
}

/// An upload in progress, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated_ns: i64,
}

/// A part, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub mod_time_ns: i64,
}

/// A part named in CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletePart {
    pub number: u32,
    pub etag: String,
}

fn upload_dir(bucket: &str, upload_id: &str) -> String {
    format!("{MULTIPART_DIR}/{bucket}/{upload_id}")
}

fn check_upload_id(upload_id: &str) -> Result<()> {
    uuid::Uuid::parse_str(upload_id).map(|_| ()).map_err(|_| Error::NoSuchUpload)
}

fn trim_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

impl ObjectLayer {
    /// Starts an upload; returns its id.
    pub async fn new_multipart_upload(&self, bucket: &str, key: &str, options: PutOptions) -> Result<String> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        self.require_bucket(bucket).await?;
        let upload_id = uuid::Uuid::new_v4().to_string();
        let file = UploadFile {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.clone(),
            initiated_ns: super::now_ns(),
            content_type: options.content_type,
            headers: options.headers,
            user_meta: options.user_meta,
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&file).expect("serialises"));
        let set = self.set_for(bucket, key);
        let path = format!("{}/upload.json", upload_dir(bucket, &upload_id));
        let ok = join_all(set.drives.iter().map(|d| d.write_all(SYS_VOLUME, &path, body.clone())))
            .await
            .iter()
            .filter(|r| r.is_ok())
            .count();
        if ok < set.write_quorum {
            let dir = upload_dir(bucket, &upload_id);
            join_all(set.drives.iter().map(|d| d.delete(SYS_VOLUME, &dir, true))).await;
            return Err(Error::InsufficientWriteQuorum { have: ok, need: set.write_quorum });
        }
        Ok(upload_id)
    }

    async fn read_upload(&self, set: &Set, bucket: &str, key: &str, upload_id: &str) -> Result<UploadFile> {
        check_upload_id(upload_id)?;
        let path = format!("{}/upload.json", upload_dir(bucket, upload_id));
        let reads = join_all(set.drives.iter().map(|d| d.read_all(SYS_VOLUME, &path))).await;
        let found: Vec<UploadFile> = reads
            .into_iter()
            .flatten()
            .filter_map(|b| serde_json::from_slice::<UploadFile>(&b).ok())
            .filter(|u| u.key == key && u.bucket == bucket)
            .collect();
        if found.len() < set.read_quorum {
            return Err(Error::NoSuchUpload);
        }
        Ok(found.into_iter().next().expect("quorum is at least one"))
    }

    /// Stores one part; returns its ETag (the MD5 of its bytes).
    #[allow(clippy::too_many_arguments)] // the inputs of S3's UploadPart, one each
    pub async fn put_object_part<B: Body>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &mut B,
        size: Option<u64>,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        if number == 0 || number > MAX_PART_NUMBER {
            return Err(Error::InvalidPartNumber(number));
        }
        let set = self.set_for(bucket, key);
        self.read_upload(set, bucket, key, upload_id).await?;
        let order = self.shard_order(set, key);
        let dir = upload_dir(bucket, upload_id);
        let data = format!("part.{number}.{}", uuid::Uuid::new_v4());
        let data_path = format!("{dir}/{data}");
        let to = StageTo {
            order: &order,
            erasure: set.erasure,
            write_quorum: set.write_quorum,
            path: &data_path,
            declared: size,
            limit: MAX_PART_BYTES,
            allow_inline: false,
        };
        let staged = self.staged(stage(to, body)).await;
        let (ok, md5, size) = match staged {
            Ok(Staged::Files { ok, md5, size }) => (ok, md5, size),
            Ok(Staged::Inline { .. }) => unreachable!("parts are never inline"),
            Err(e) => {
                delete_everywhere(&order, &data_path).await;
                return Err(e);
            }
        };
        if content_md5.is_some_and(|want| want != md5) {
            delete_everywhere(&order, &data_path).await;
            return Err(Error::BadDigest);
        }
        let etag = hex(&md5);
        let part = PartFile { number, size, etag: etag.clone(), mod_time_ns: super::now_ns(), data };
        let body = bytes::Bytes::from(serde_json::to_vec(&part).expect("serialises"));
        let meta_path = format!("{dir}/part.{number}.meta");
        // One writer of a part number at a time, so drives never disagree on it.
        let _guard = self.lock(bucket, &format!("{key}\0{upload_id}\0{number}"), true).await?;
        let writes = order
            .iter()
            .zip(&ok)
            .filter(|(_, ok)| **ok)
            .map(|(d, _)| d.write_all(SYS_VOLUME, &meta_path, body.clone()));
        let written = join_all(writes).await.iter().filter(|r| r.is_ok()).count();
        if written < set.write_quorum {
            return Err(Error::InsufficientWriteQuorum { have: written, need: set.write_quorum });
        }
        Ok(etag)
    }

    /// Part metadata per drive (set order): part number -> part.
    async fn read_parts(&self, set: &Set, bucket: &str, upload_id: &str) -> Vec<Option<BTreeMap<u32, PartFile>>> {
        let dir = upload_dir(bucket, upload_id);
        join_all(set.drives.iter().map(|d| {
            let dir = &dir;
            async move {
                let names = d.list_dir(SYS_VOLUME, dir).await.ok()?;
                let paths: Vec<String> = names
                    .iter()
                    .filter(|n| n.starts_with("part.") && n.ends_with(".meta"))
                    .map(|n| format!("{dir}/{n}"))
                    .collect();
                let reads = join_all(paths.iter().map(|p| d.read_all(SYS_VOLUME, p))).await;
                Some(
                    reads
                        .into_iter()
                        .flatten()
                        .filter_map(|b| serde_json::from_slice::<PartFile>(&b).ok())
                        .map(|p| (p.number, p))
                        .collect(),
                )
            }
        }))
        .await
    }

    /// The parts read quorum agrees on, by part number.
    fn agreed_parts(set: &Set, per_drive: &[Option<BTreeMap<u32, PartFile>>]) -> BTreeMap<u32, PartFile> {
        let mut agreed = BTreeMap::new();
        for parts in per_drive.iter().flatten() {
            for (n, p) in parts {
                if agreed.contains_key(n) {
                    continue;
                }
                let votes = per_drive.iter().flatten().filter(|o| o.get(n) == Some(p)).count();
                if votes >= set.read_quorum {
                    agreed.insert(*n, p.clone());
                }
            }
        }
        agreed
    }

    /// Parts uploaded so far, in order, after `marker`, at most `max_parts`.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max_parts: usize,
    ) -> Result<(Vec<PartSummary>, bool)> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let set = self.set_for(bucket, key);
        self.read_upload(set, bucket, key, upload_id).await?;
        let per_drive = self.read_parts(set, bucket, upload_id).await;
        let agreed = Self::agreed_parts(set, &per_drive);
        let max_parts = max_parts.clamp(1, 1000);
        let mut out: Vec<PartSummary> = agreed
            .range(marker + 1..)
            .map(|(_, p)| PartSummary {
                number: p.number,
                size: p.size,
                etag: p.etag.clone(),
                mod_time_ns: p.mod_time_ns,
            })
            .take(max_parts + 1)
            .collect();
        let truncated = out.len() > max_parts;
        out.truncate(max_parts);
        Ok((out, truncated))
    }

    /// Assembles the listed parts into the object.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
    ) -> Result<ObjectInfo> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let set = self.set_for(bucket, key);
        let upload = self.read_upload(set, bucket, key, upload_id).await?;
        if parts.is_empty() {
            return Err(Error::InvalidPart(0));
        }
        if parts.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(Error::InvalidPartOrder);
        }
        let per_drive = self.read_parts(set, bucket, upload_id).await;
        let agreed = Self::agreed_parts(set, &per_drive);
        let mut chosen = Vec::with_capacity(parts.len());
        let mut md5s = Md5::new();
        for (i, want) in parts.iter().enumerate() {
            let part = agreed.get(&want.number).ok_or(Error::InvalidPart(want.number))?;
            if trim_etag(&want.etag) != part.etag {
                return Err(Error::InvalidPart(want.number));
            }
            if i + 1 < parts.len() && part.size < MIN_PART_BYTES {
                return Err(Error::EntityTooSmall(want.number));
            }
            md5s.update(crate::hex::decode(&part.etag).ok_or(Error::InvalidPart(want.number))?);
            chosen.push(part.clone());
        }
        let etag = format!("{}-{}", hex(&md5s.finalize()), chosen.len());
        let size = chosen.iter().map(|p| p.size).sum();
        let meta = ObjectMeta {
            version_id: uuid::Uuid::new_v4().to_string(),
            mod_time_ns: super::now_ns(),
            size,
            etag,
            content_type: upload.content_type.unwrap_or_else(|| "application/octet-stream".into()),
            headers: upload.headers,
            user_meta: upload.user_meta,
            checksums: BTreeMap::new(),
            erasure: ErasureInfo {
                data: set.erasure.data_shards(),
                parity: set.erasure.parity_shards(),
                block_size: set.erasure.block_size(),
                index: 0,
            },
            parts: chosen.iter().map(|p| PartInfo { number: p.number, size: p.size, etag: p.etag.clone() }).collect(),
            data_dir: None,
        };
        // Move each drive's part files into a staging directory named like a PUT's.
        let order = self.shard_order(set, key);
        let dir = upload_dir(bucket, upload_id);
        let tmp_dir = format!("{TMP_DIR}/{}", uuid::Uuid::new_v4());
        let staged_ok = join_all(order.iter().map(|d| {
            let (chosen, dir, tmp_dir) = (&chosen, &dir, &tmp_dir);
            async move {
                for p in chosen {
                    let op = DriveOp::RenameFile {
                        src_volume: SYS_VOLUME.into(),
                        src_path: format!("{dir}/{}", p.data),
                        dst_volume: SYS_VOLUME.into(),
                        dst_path: format!("{tmp_dir}/part.{}", p.number),
                    };
                    if d.call(op).await.is_err() {
                        return false;
                    }
                }
                true
            }
        }))
        .await;
        let size_ok = staged_ok.iter().filter(|ok| **ok).count();
        let staged = Staged::Files { size, md5: [0; 16], ok: staged_ok };
        let result = if size_ok < set.write_quorum {
            Err(Error::InsufficientWriteQuorum { have: size_ok, need: set.write_quorum })
        } else {
            self.commit(set, &order, bucket, key, meta, staged, &tmp_dir).await
        };
        match &result {
            Ok(_) => {
                join_all(order.iter().map(|d| d.delete(SYS_VOLUME, &dir, true))).await;
                discard(&order, &tmp_dir).await;
            }
            Err(_) => {
                // Put the parts back so the client can retry the completion.
                join_all(order.iter().map(|d| {
                    let (chosen, dir, tmp_dir) = (&chosen, &dir, &tmp_dir);
                    async move {
                        for p in chosen {
                            let _ = d
                                .call(DriveOp::RenameFile {
                                    src_volume: SYS_VOLUME.into(),
                                    src_path: format!("{tmp_dir}/part.{}", p.number),
                                    dst_volume: SYS_VOLUME.into(),
                                    dst_path: format!("{dir}/{}", p.data),
                                })
                                .await;
                        }
                    }
                }))
                .await;
                discard(&order, &tmp_dir).await;
            }
        }
        result
    }

    /// Abandons an upload and frees its parts.
    pub async fn abort_multipart_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        names::check_bucket(bucket)?;
        names::check_key(key)?;
        let set = self.set_for(bucket, key);
        self.read_upload(set, bucket, key, upload_id).await?;
        let dir = upload_dir(bucket, upload_id);
        let ok = join_all(set.drives.iter().map(|d| d.delete(SYS_VOLUME, &dir, true)))
            .await
            .iter()
            .filter(|r| r.is_ok())
            .count();
        if ok < set.write_quorum {
            return Err(Error::InsufficientWriteQuorum { have: ok, need: set.write_quorum });
        }
        Ok(())
    }

    /// Uploads in progress in a bucket, sorted by key then start time.
    pub async fn list_multipart_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<MultipartUpload>> {
        names::check_bucket(bucket)?;
        self.require_bucket(bucket).await?;
        let dir = format!("{MULTIPART_DIR}/{bucket}");
        let mut seen: BTreeMap<String, (usize, Option<UploadFile>)> = BTreeMap::new();
        for set in &self.sets {
            let lists = join_all(set.drives.iter().map(|d| d.list_dir(SYS_VOLUME, &dir))).await;
            for (d, names) in set.drives.iter().zip(lists) {
                for name in names.unwrap_or_default() {
                    let id = name.trim_end_matches('/').to_string();
                    let entry = seen.entry(id.clone()).or_insert((0, None));
                    entry.0 += 1;
                    if entry.1.is_none()
                        && let Ok(b) = d.read_all(SYS_VOLUME, &format!("{dir}/{id}/upload.json")).await
                    {
                        entry.1 = serde_json::from_slice(&b).ok();
                    }
                }
            }
        }
        let mut out: Vec<MultipartUpload> = seen
            .into_values()
            .filter_map(|(count, file)| {
                let f = file?;
                let set = self.set_for(bucket, &f.key);
                (count >= super::quorum::list_quorum(set) && f.key.starts_with(prefix)).then_some(MultipartUpload {
                    key: f.key,
                    upload_id: f.upload_id,
                    initiated_ns: f.initiated_ns,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.key, a.initiated_ns).cmp(&(&b.key, b.initiated_ns)));
        out.truncate(MAX_UPLOADS_PER_PAGE);
        Ok(out)
    }
}

async fn delete_everywhere(drives: &[crate::drive::DriveHandle], path: &str) {
    join_all(drives.iter().map(|d| d.delete(SYS_VOLUME, path, false))).await;
}
