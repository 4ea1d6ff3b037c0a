//! Drives lost or corrupted: reads survive up to `m` bad drives and reconstruct
//! byte for byte; beyond that reads and writes fail cleanly; heal rewrites the
//! missing shards (checked on disk).

mod common;

use std::path::Path;

use basalt::Error;
use basalt::erasure::{BLOCK_SIZE_BYTES, Erasure, shard_file_size};
use common::{KIB, MIB, Node, data};

const SIZES: [usize; 4] = [100, 100 * KIB, MIB + 1, 5 * MIB + 3];

fn fill(node: &Node) -> Vec<(String, Vec<u8>)> {
    node.make_bucket("bucket").unwrap();
    SIZES
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let key = format!("dir/obj-{i}");
            let body = data(*size, 100 + i as u64);
            node.put("bucket", &key, &body).unwrap();
            (key, body)
        })
        .collect()
}

fn all_read_back(node: &Node, objects: &[(String, Vec<u8>)], what: &str) {
    for (key, body) in objects {
        for core in 0..node.cores {
            let got = node.get_on(core, "bucket", key, None).unwrap_or_else(|e| panic!("{what}: {key}: {e}"));
            assert!(got == *body, "{what}: {key} differs");
        }
    }
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = (at as usize).min(bytes.len() - 1);
    bytes[i] ^= 0xFF;
    std::fs::write(path, bytes).unwrap();
}

/// Bytes of frames in each shard file of an object of `size` bytes.
fn frames_len(node: &Node, size: usize) -> u64 {
    let layout = node.rt().layout();
    let erasure = Erasure::new(layout.data, layout.parity, BLOCK_SIZE_BYTES).unwrap();
    shard_file_size(&erasure, size as u64)
}

fn truncate(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len / 2).unwrap();
}

/// Damage of one kind applied to one drive's copy of every object.
#[derive(Clone, Copy, Debug)]
enum Damage {
    RemoveDrive,
    DeleteShards,
    Corrupt,
    Truncate,
}

fn damage(node: &Node, drive: usize, objects: &[(String, Vec<u8>)], how: Damage) {
    match how {
        Damage::RemoveDrive => std::fs::remove_dir_all(&node.drives[drive]).unwrap(),
        _ => {
            for (key, body) in objects {
                let files = node.shard_files(drive, "bucket", key);
                if files.is_empty() {
                    // Inline object: the shard lives in the metadata file.
                    let meta = node.key_dir(drive, "bucket", key).join(".basalt.meta");
                    match how {
                        Damage::DeleteShards => std::fs::remove_file(&meta).unwrap(),
                        Damage::Corrupt => flip_byte(&meta, std::fs::metadata(&meta).unwrap().len() - 3),
                        _ => truncate(&meta),
                    }
                }
                for f in files {
                    match how {
                        Damage::DeleteShards => std::fs::remove_file(&f).unwrap(),
                        // Flip a byte inside the last block's shard data (the
                        // zero padding after it is never read).
                        Damage::Corrupt => flip_byte(&f, frames_len(node, body.len()) - 5),
                        _ => truncate(&f),
                    }
                }
            }
        }
    }
}

fn survive_m_losses(drives: usize) {
    for how in [Damage::RemoveDrive, Damage::DeleteShards, Damage::Corrupt, Damage::Truncate] {
        let node = Node::start(drives, 2);
        let objects = fill(&node);
        let m = node.rt().layout().parity;
        // The last m drives, then (fresh node) the first m: data and parity shards both.
        for d in drives - m..drives {
            damage(&node, d, &objects, how);
        }
        all_read_back(&node, &objects, &format!("{drives} drives, {m} x {how:?}"));
        drop(node);
        let node = Node::start(drives, 2);
        let objects = fill(&node);
        for d in 0..m {
            damage(&node, d, &objects, how);
        }
        all_read_back(&node, &objects, &format!("{drives} drives, first {m} x {how:?}"));
    }
}

#[test]
fn four_drives_survive_two_losses() {
    survive_m_losses(4);
}

#[test]
fn sixteen_drives_survive_four_losses() {
    survive_m_losses(16);
}

fn beyond_m_losses(drives: usize) {
    let node = Node::start(drives, 2);
    let objects = fill(&node);
    let m = node.rt().layout().parity;
    let before: Vec<_> = node.drives.iter().map(|d| snapshot(d)).collect();
    for d in 0..=m {
        std::fs::remove_dir_all(&node.drives[d]).unwrap();
    }
    for (key, _) in &objects {
        let err = node.get("bucket", key).unwrap_err();
        assert!(matches!(err, Error::InsufficientReadQuorum { .. }), "{key}: {err:?}");
        assert_eq!(err.http_status(), 503);
    }
    // A write fails and leaves nothing on the surviving drives.
    for size in [10, 3 * MIB] {
        let err = node.put("bucket", "new-object", &data(size, 5)).unwrap_err();
        assert!(matches!(err, Error::InsufficientWriteQuorum { .. } | Error::InsufficientReadQuorum { .. }), "{err:?}");
    }
    for (d, before) in before.iter().enumerate().skip(m + 1) {
        assert!(!node.key_dir(d, "bucket", "new-object").exists(), "drive {d} has a partial object");
        assert_eq!(snapshot(&node.drives[d]), *before, "drive {d} changed");
    }
}

/// Every file under a drive except temp space, with its size.
fn snapshot(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().to_string();
            if rel.starts_with(".basalt.sys/tmp") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((rel, e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn four_drives_fail_cleanly_beyond_two_losses() {
    beyond_m_losses(4);
}

#[test]
fn sixteen_drives_fail_cleanly_beyond_four_losses() {
    beyond_m_losses(16);
}

#[test]
fn failed_overwrite_keeps_previous_version() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let old = data(2 * MIB, 1);
    node.put("bucket", "k", &old).unwrap();
    // On two drives the key's directory becomes a plain file, so the commit can
    // reach only 2 of the 3 drives it needs (permissions would not stop root).
    for d in [1, 3] {
        let dir = node.key_dir(d, "bucket", "k");
        std::fs::rename(&dir, dir.with_extension("aside")).unwrap();
        std::fs::write(&dir, b"in the way").unwrap();
    }
    let err = node.put("bucket", "k", &data(3 * MIB, 2)).unwrap_err();
    assert!(matches!(err, Error::InsufficientWriteQuorum { have: 2, need: 3 }), "{err:?}");
    assert_eq!(node.get("bucket", "k").unwrap(), old, "the previous version stays readable");
    for d in [1, 3] {
        let dir = node.key_dir(d, "bucket", "k");
        std::fs::remove_file(&dir).unwrap();
        std::fs::rename(dir.with_extension("aside"), &dir).unwrap();
    }
    assert_eq!(node.get("bucket", "k").unwrap(), old);
    for d in 0..4 {
        let dirs = std::fs::read_dir(node.key_dir(d, "bucket", "k"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".basalt.data."))
            .count();
        assert_eq!(dirs, 1, "drive {d}: the failed version's data was rolled back");
    }
}

#[test]
fn heal_restores_missing_and_corrupt_shards() {
    for drives in [4, 16] {
        let node = Node::start(drives, 2);
        let objects = fill(&node);
        let m = node.rt().layout().parity;
        let before: Vec<Vec<(String, Vec<u8>)>> = (0..drives)
            .map(|d| {
                objects
                    .iter()
                    .flat_map(|(k, _)| node.shard_files(d, "bucket", k))
                    .map(|f| (f.to_string_lossy().to_string(), std::fs::read(&f).unwrap()))
                    .collect()
            })
            .collect();
        // Drive 0 replaced by an empty one, drive 1 with deleted shards, the rest corrupt.
        std::fs::remove_dir_all(&node.drives[0]).unwrap();
        std::fs::create_dir(&node.drives[0]).unwrap();
        damage(&node, 1, &objects, Damage::DeleteShards);
        for d in 2..m {
            damage(&node, d, &objects, Damage::Corrupt);
        }
        for (key, _) in &objects {
            let report = node.heal("bucket", key).unwrap();
            assert!(!report.healed.is_empty() || report.failed.is_empty(), "{key}: {report:?}");
            assert!(report.failed.is_empty(), "{key}: {report:?}");
            // Healing twice finds nothing left to do.
            let again = node.heal("bucket", key).unwrap();
            assert!(again.healed.is_empty(), "{drives} drives, {key}: second heal rewrote {:?}", again.healed);
        }
        // The rebuilt shard files are byte-identical to the originals.
        for (d, files) in before.iter().enumerate().take(m) {
            for (path, bytes) in files {
                let now = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert!(now == *bytes, "{drives} drives: {path} was not restored exactly");
            }
            assert!(node.drives[d].join(".basalt.sys/format.json").exists());
        }
        // With the healed drives alone standing in for the lost ones, data reads back.
        for d in m..2 * m {
            std::fs::remove_dir_all(&node.drives[d]).unwrap();
        }
        all_read_back(&node, &objects, &format!("{drives} drives after heal"));
    }
}

#[test]
fn read_of_damaged_object_heals_it_in_the_background() {
    let node = Node::start(4, 1);
    node.make_bucket("bucket").unwrap();
    let body = data(3 * MIB, 4);
    node.put("bucket", "k", &body).unwrap();
    // Drives 0 and 2 hold shards two apart, so one of them holds a data shard
    // whatever the key's rotation: the read must notice.
    let files: Vec<_> = [0, 2].iter().flat_map(|d| node.shard_files(*d, "bucket", "k")).collect();
    assert_eq!(files.len(), 2);
    for f in &files {
        std::fs::remove_file(f).unwrap();
    }
    assert_eq!(node.get("bucket", "k").unwrap(), body);
    // The heal is queued on the core that served the read; wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files.iter().any(|f| !f.exists()) {
        assert!(std::time::Instant::now() < deadline, "background heal did not restore the shards");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(node.heal("bucket", "k").unwrap().healed.is_empty());
}
