//! The sorted key walk of one volume on one drive.
//!
//! Every object key is a directory (`a/b` is `<bucket>/a/b/.basalt.meta`), so a
//! listing is a walk of the directory tree. A plain depth-first walk would be out
//! of order: `a/b-x` sorts before `a/b/c` because `-` < `/`. The walk therefore
//! sorts each directory's entries as two keys, `name` (the object, if its metadata
//! exists) and `name/` (the subtree), which yields keys in exact byte order.
//! Subtrees that cannot hold a key after `start_after` or under `prefix` are
//! skipped without being read. Runs on the blocking pool: readdir has no io_uring
//! form.

use std::path::Path;

use super::{DIR_META_FILE, META_FILE, RESERVED_PREFIX};

/// Keys in `volume_root` with `prefix`, greater than `start_after`, byte order,
/// at most `limit`.
pub fn walk(volume_root: &Path, prefix: &str, start_after: &str, limit: usize) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    // Start at the deepest directory the prefix fixes.
    let base = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let dir = volume_root.join(base);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    }
    if !base.is_empty() {
        // The directory object `base` itself (a key ending in '/').
        let key = base.to_string();
        if wanted(&key, prefix, start_after) && dir.join(DIR_META_FILE).exists() {
            out.push(key);
        }
    }
    let mut walker = Walker { prefix, start_after, limit, out };
    walker.dir(&dir, base)?;
    Ok(walker.out)
}

fn wanted(key: &str, prefix: &str, start_after: &str) -> bool {
    key.starts_with(prefix) && key > start_after
}

struct Walker<'a> {
    prefix: &'a str,
    start_after: &'a str,
    limit: usize,
    out: Vec<String>,
}

enum Entry {
    Object(String),
    Subtree(String),
}

impl Walker<'_> {
    /// Walks directory `dir` whose keys start with `dir_key` (empty or ending in '/').
    /// Returns true once `limit` keys were found.
    fn dir(&mut self, dir: &Path, dir_key: &str) -> std::io::Result<bool> {
        let read = match std::fs::read_dir(dir) {
            Ok(r) => r,
            // A directory removed by a concurrent delete is simply empty.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for entry in read {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.starts_with(RESERVED_PREFIX) || !entry.file_type()?.is_dir() {
                continue;
            }
            let key = format!("{dir_key}{name}");
            let subtree = format!("{key}/");
            // Prune: the object key and the subtree only matter if they can match.
            if wanted(&key, self.prefix, self.start_after) {
                entries.push(Entry::Object(key));
            }
            let under_prefix = subtree.starts_with(self.prefix) || self.prefix.starts_with(&subtree);
            let after_marker = subtree.as_str() > self.start_after || self.start_after.starts_with(&subtree);
            if under_prefix && after_marker {
                entries.push(Entry::Subtree(subtree));
            }
        }
        entries.sort_unstable_by(|a, b| sort_key(a).cmp(sort_key(b)));
        for entry in entries {
            match entry {
                Entry::Object(key) => {
                    if dir.join(&key[dir_key.len()..]).join(META_FILE).exists() {
                        self.out.push(key);
                        if self.out.len() >= self.limit {
                            return Ok(true);
                        }
                    }
                }
                Entry::Subtree(sub) => {
                    let path = dir.join(&sub[dir_key.len()..sub.len() - 1]);
                    if wanted(&sub, self.prefix, self.start_after) && path.join(DIR_META_FILE).exists() {
                        self.out.push(sub.clone());
                        if self.out.len() >= self.limit {
                            return Ok(true);
                        }
                    }
                    if self.dir(&path, &sub)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }
}

fn sort_key(e: &Entry) -> &str {
    match e {
        Entry::Object(k) | Entry::Subtree(k) => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, key: &str) {
        let (dir, file) = match key.strip_suffix('/') {
            Some(d) => (root.join(d), DIR_META_FILE),
            None => (root.join(key), META_FILE),
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), b"x").unwrap();
    }

    #[test]
    fn byte_order_prefix_and_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let mut keys = vec!["a/b", "a/b-x", "a/b/c", "a/b/", "a!", "a", "b/c/d/e", "b/c", "z", "a/b/c/d"];
        for k in &keys {
            put(tmp.path(), k);
        }
        // A data directory and an empty directory are not keys.
        std::fs::create_dir_all(tmp.path().join("a/.basalt.data.123")).unwrap();
        std::fs::create_dir_all(tmp.path().join("empty/dir")).unwrap();
        keys.sort();
        let all = walk(tmp.path(), "", "", 100).unwrap();
        assert_eq!(all, keys);
        for start in 0..keys.len() {
            for limit in 1..4 {
                let got = walk(tmp.path(), "", keys[start], limit).unwrap();
                let want: Vec<_> = keys[start + 1..].iter().take(limit).map(|s| s.to_string()).collect();
                assert_eq!(got, want, "after {} limit {limit}", keys[start]);
            }
        }
        for prefix in ["a", "a/", "a/b", "a/b/", "b/c/", "b/c/d", "q", "a/b/c/"] {
            let got = walk(tmp.path(), prefix, "", 100).unwrap();
            let want: Vec<_> = keys.iter().filter(|k| k.starts_with(prefix)).map(|s| s.to_string()).collect();
            assert_eq!(got, want, "prefix {prefix}");
        }
    }
}
