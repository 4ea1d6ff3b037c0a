//! ListObjects: a sorted walk of every drive of every set, merged, with keys kept
//! only when enough drives of their set hold them (see `quorum::list_quorum`),
//! then folded into common prefixes by the delimiter.
//!
//! Each drive returns a batch of keys after the marker. Keys up to the smallest
//! "last key" among drives that returned a full batch are complete; the merge
//! consumes those and asks again from there.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use futures_util::future::join_all;

use super::{ObjectInfo, ObjectLayer, names, quorum};
use crate::drive::meta;
use crate::error::{Error, Result};

/// S3's cap on keys per listing page.
pub const MAX_KEYS_PER_PAGE: usize = 1000;
/// Keys asked of each drive per round; more than a page so one round usually
/// suffices even when the delimiter folds many keys away.
const WALK_BATCH: usize = 1000;
/// Greater than any character a key may hold after a common prefix; used to skip
/// past everything under a prefix already reported.
const PAST_PREFIX: char = char::MAX;
/// Keys whose metadata a listing reads at once. Each read touches every drive of
/// the key's set, so this bounds open files at `16 * this` per listing.
const LIST_META_READS_IN_FLIGHT: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Exclusive lower bound: StartAfter, Marker, or a continuation token's key.
    pub start_after: String,
    /// 0 means the default, 1000; more is capped at 1000.
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListResult {
    pub objects: Vec<ObjectInfo>,
    pub prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page starts (exclusive), when truncated.
    pub next_marker: Option<String>,
}

impl ObjectLayer {
    pub async fn list_objects(&self, bucket: &str, options: &ListOptions) -> Result<ListResult> {
        names::check_bucket(bucket)?;
        names::check_prefix(&options.prefix)?;
        self.require_bucket(bucket).await?;
        let max_keys = match options.max_keys {
            0 => MAX_KEYS_PER_PAGE,
            n => n.min(MAX_KEYS_PER_PAGE),
        };
        let prefix = options.prefix.as_str();
        let delimiter = options.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut marker = options.start_after.clone();
        // Resuming after a common prefix skips everything under it.
        if let Some(d) = delimiter
            && let Some(cp) = common_prefix(&marker, prefix, d)
        {
            marker = format!("{cp}{PAST_PREFIX}");
        }
        let mut result = ListResult::default();
        loop {
            let (keys, exhausted) = self.merged_batch(bucket, prefix, &marker).await?;
            if keys.is_empty() && exhausted {
                return Ok(result);
            }
            let mut keys = keys.into_iter().peekable();
            while let Some((key, info)) = keys.next() {
                if result.objects.len() + result.prefixes.len() >= max_keys {
                    result.is_truncated = true;
                    result.next_marker = Some(marker);
                    return Ok(result);
                }
                if let Some(d) = delimiter
                    && let Some(cp) = common_prefix(&key, prefix, d)
                {
                    marker = format!("{cp}{PAST_PREFIX}");
                    result.prefixes.push(cp.to_string());
                    while keys.peek().is_some_and(|(k, _)| k.starts_with(cp)) {
                        keys.next();
                    }
                    if result.objects.len() + result.prefixes.len() >= max_keys {
                        result.next_marker = Some(cp.to_string());
                        result.is_truncated = self.has_more(bucket, prefix, &marker).await?;
                        if !result.is_truncated {
                            result.next_marker = None;
                        }
                        return Ok(result);
                    }
                    continue;
                }
                marker = key.clone();
                result.objects.push(info);
                if result.objects.len() + result.prefixes.len() >= max_keys {
                    result.is_truncated =
                        keys.peek().is_some() || (!exhausted && self.has_more(bucket, prefix, &marker).await?);
                    result.next_marker = result.is_truncated.then(|| key.clone());
                    return Ok(result);
                }
            }
            if exhausted {
                return Ok(result);
            }
        }
    }

    async fn has_more(&self, bucket: &str, prefix: &str, marker: &str) -> Result<bool> {
        let (keys, _) = self.merged_batch(bucket, prefix, marker).await?;
        Ok(!keys.is_empty())
    }

    /// One round of walks over every drive: the keys known complete, with the
    /// newest metadata seen for each, and whether the walk reached the end.
    async fn merged_batch(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
    ) -> Result<(Vec<(String, ObjectInfo)>, bool)> {
        let mut merged: BTreeMap<String, (usize, Option<meta::ObjectMeta>)> = BTreeMap::new();
        let mut frontier: Option<String> = None;
        for set in &self.sets {
            let walks = join_all(set.drives.iter().map(|d| d.walk(bucket, prefix, marker, WALK_BATCH))).await;
            let mut answered = 0;
            let mut per_set: BTreeMap<String, usize> = BTreeMap::new();
            for keys in walks.into_iter().flatten() {
                answered += 1;
                if keys.len() >= WALK_BATCH
                    && let Some(last) = keys.last()
                    && frontier.as_ref().is_none_or(|f| last < f)
                {
                    frontier = Some(last.clone());
                }
                for k in keys {
                    *per_set.entry(k).or_default() += 1;
                }
            }
            if answered < set.read_quorum {
                return Err(Error::InsufficientReadQuorum { have: answered, need: set.read_quorum });
            }
            let need = quorum::list_quorum(set);
            for (k, count) in per_set {
                if count >= need {
                    merged.insert(k, (count, None));
                }
            }
        }
        let exhausted = frontier.is_none();
        if let Some(f) = &frontier {
            merged.retain(|k, _| k <= f);
        }
        // Metadata for the listed keys (size, ETag, mtime), by quorum read per key.
        let mut out = Vec::with_capacity(merged.len());
        let keys: Vec<String> = merged.into_keys().collect();
        let infos: Vec<_> = futures_util::stream::iter(keys.iter().map(|k| self.list_entry(bucket, k)))
            .buffered(LIST_META_READS_IN_FLIGHT)
            .collect()
            .await;
        for (k, info) in keys.into_iter().zip(infos) {
            match info {
                Ok(Some(info)) => out.push((k, info)),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((out, exhausted))
    }

    /// A listed key's info; `None` when it vanished since the walk.
    async fn list_entry(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>> {
        let set = self.set_for(bucket, key);
        match quorum::read_metas(set, bucket, key).await {
            Ok(found) => Ok(Some(ObjectInfo::from_meta(bucket, key, &found.meta))),
            Err(Error::NoSuchKey) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The common prefix `key` rolls up into: `prefix` plus everything up to and
/// including the first delimiter after it.
fn common_prefix<'a>(key: &'a str, prefix: &str, delimiter: &str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn prefixes() {
        assert_eq!(common_prefix("a/b/c", "", "/"), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/"), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", "/"), None);
        assert_eq!(common_prefix("x", "a/", "/"), None);
        assert_eq!(common_prefix("a--b--c", "a", "--"), Some("a--"));
    }
}
