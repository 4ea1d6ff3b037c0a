//! Quorum decisions: which version of an object the drives of a set agree on,
//! and how many drives a listing needs to see a key on.

use bytes::Bytes;
use futures_util::future::join_all;

use super::{Set, key_location};
use crate::drive::DriveError;
use crate::drive::meta::{self, ObjectMeta};
use crate::error::{Error, Result};

/// The metadata of an object as found on the drives of its set.
pub(crate) struct Found {
    /// The newest version that read quorum agrees on.
    pub meta: ObjectMeta,
    /// Per drive of the set (set order): its metadata and inline bytes, if readable.
    pub per_drive: Vec<Option<(ObjectMeta, Bytes)>>,
    /// True when some reachable drive lacks the chosen version or holds it damaged.
    pub damaged: bool,
}

impl Found {
    /// Whether drive `i` (set order) holds the chosen version.
    pub fn agrees(&self, i: usize) -> bool {
        matches!(&self.per_drive[i], Some((m, _)) if m.same_version(&self.meta))
    }
}

/// Reads the metadata file from every drive of the set and picks the version.
pub(crate) async fn read_metas(set: &Set, bucket: &str, key: &str) -> Result<Found> {
    let (key_dir, meta_name) = key_location(key);
    let path = format!("{key_dir}/{meta_name}");
    let results = join_all(set.drives.iter().map(|d| d.read_all(bucket, &path))).await;
    let mut per_drive = Vec::with_capacity(results.len());
    let mut not_found = 0;
    let mut no_bucket = 0;
    let mut offline = 0;
    for r in results {
        match r.and_then(|bytes| meta::decode(&bytes)) {
            Ok(m) => per_drive.push(Some(m)),
            Err(e) => {
                match e {
                    DriveError::FileNotFound => not_found += 1,
                    DriveError::VolumeNotFound => no_bucket += 1,
                    DriveError::Offline => offline += 1,
                    _ => {}
                }
                per_drive.push(None);
            }
        }
    }
    pick(set, bucket, per_drive, not_found, no_bucket, offline)
}

fn pick(
    set: &Set,
    bucket: &str,
    per_drive: Vec<Option<(ObjectMeta, Bytes)>>,
    not_found: usize,
    no_bucket: usize,
    offline: usize,
) -> Result<Found> {
    // Newest version first; a version counts when read quorum holds it.
    let mut best: Option<(&ObjectMeta, usize)> = None;
    for (m, _) in per_drive.iter().flatten() {
        let votes = per_drive.iter().flatten().filter(|(o, _)| o.same_version(m)).count();
        if votes >= set.read_quorum && best.is_none_or(|(b, _)| m.mod_time_ns > b.mod_time_ns) {
            best = Some((m, votes));
        }
    }
    match best {
        Some((m, votes)) => {
            let meta = m.clone();
            // Drives that are offline cannot be healed now; a heal pass finds
            // them when they return.
            Ok(Found { meta, damaged: votes + offline < set.drives.len(), per_drive })
        }
        None => {
            let answered = per_drive.iter().flatten().count() + not_found;
            if no_bucket >= set.read_quorum {
                // The drive answering "no such directory" for the bucket itself.
                Err(Error::NoSuchBucket(bucket.to_string()))
            } else if answered + no_bucket >= set.read_quorum {
                Err(Error::NoSuchKey)
            } else {
                Err(Error::InsufficientReadQuorum { have: answered, need: set.read_quorum })
            }
        }
    }
}

/// A listed key is shown when at least this many drives of its set hold it. A
/// committed object is on at least write quorum drives, a deleted one lingers on
/// at most `n - write quorum`; one more than that tells them apart.
pub(crate) fn list_quorum(set: &Set) -> usize {
    (set.drives.len() - set.write_quorum + 1).max(1)
}
