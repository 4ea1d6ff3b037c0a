//! The metadata journal: what a node acknowledged is still there after a
//! crash that lost what the page cache held, and nothing it acknowledged
//! later is rolled back by the redo.
//!
//! A crash is a runtime stopped with no checkpoint (as `kill -9` leaves it);
//! what the machine's death would lose from the page cache is then taken
//! away by hand before the restart: the metadata files written since the
//! last checkpoint, removed or cut to nothing.

mod common;

use common::{Node, data};

const BUCKET: &str = "jbucket";

/// Stops the node as a crash would (no checkpoint) and runs `lose` on the
/// drives before starting it again.
fn crash(node: &mut Node, lose: impl Fn(&Node)) {
    if let Some(rt) = node.rt.take() {
        rt.shutdown();
    }
    lose(node);
    node.restart();
}

/// Whether drive `d` still holds journal records to redo.
fn journal_holds_records(node: &Node, d: usize) -> bool {
    ["journal.0", "journal.1"].iter().any(|f| {
        std::fs::read(node.drives[d].join(".basalt.sys").join(f)).is_ok_and(|b| b.len() >= 4 && &b[..4] == b"BJNL")
    })
}

#[test]
fn acknowledged_small_puts_are_redone_when_a_crash_lost_their_metadata() {
    let mut node = Node::start(4, 2);
    node.make_bucket(BUCKET).unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("dir{}/obj-{i}", i % 3), data([0, 1, 4096, 100 << 10][i % 4] + i, i as u64)))
        .collect();
    for (key, body) in &objects {
        node.put(BUCKET, key, body).unwrap();
    }
    // Overwritten: the redo must end on the second body.
    node.put(BUCKET, "dir0/obj-0", b"second body").unwrap();
    assert!((0..4).all(|d| journal_holds_records(&node, d)), "small PUTs went through the journal");

    crash(&mut node, |node| {
        for d in 0..4 {
            let bucket = node.drives[d].join(BUCKET);
            for (i, (key, _)) in objects.iter().enumerate() {
                let dir = node.key_dir(d, BUCKET, key);
                if i % 2 == 0 {
                    // Never written back: gone, with its directory.
                    let _ = std::fs::remove_dir_all(&dir);
                } else if let Ok(entries) = std::fs::read_dir(&dir) {
                    // Torn: the rename reached the disk, the bytes did not.
                    for e in entries.flatten() {
                        std::fs::write(e.path(), b"").unwrap();
                    }
                }
            }
            assert!(bucket.is_dir(), "the bucket itself was made durably");
        }
    });

    for (i, (key, body)) in objects.iter().enumerate() {
        let want: &[u8] = if i == 0 { b"second body" } else { body };
        assert_eq!(node.get(BUCKET, key).unwrap(), want, "{key} after the redo");
    }
    let listed = node.list(BUCKET, Default::default()).unwrap();
    assert_eq!(listed.objects.len(), objects.len());
    assert!((0..4).all(|d| !journal_holds_records(&node, d)), "the redo emptied the journals");
}

#[test]
fn an_acknowledged_delete_stays_deleted_when_a_crash_lost_it() {
    let mut node = Node::start(4, 2);
    node.make_bucket(BUCKET).unwrap();
    node.put(BUCKET, "gone", &data(3000, 1)).unwrap();
    node.put(BUCKET, "kept", &data(3000, 2)).unwrap();
    // What each drive held before the delete, to put back as if the removal
    // never reached the disk.
    let saved: Vec<Vec<(std::path::PathBuf, Vec<u8>)>> = (0..4)
        .map(|d| {
            let dir = node.key_dir(d, BUCKET, "gone");
            std::fs::read_dir(&dir).unwrap().flatten().map(|e| (e.path(), std::fs::read(e.path()).unwrap())).collect()
        })
        .collect();
    node.delete(BUCKET, "gone").unwrap();

    crash(&mut node, |node| {
        for (d, files) in saved.iter().enumerate() {
            std::fs::create_dir_all(node.key_dir(d, BUCKET, "gone")).unwrap();
            for (path, bytes) in files {
                std::fs::write(path, bytes).unwrap();
            }
        }
    });

    assert!(matches!(node.get(BUCKET, "gone"), Err(basalt::Error::NoSuchKey)), "a deleted object came back");
    assert_eq!(node.get(BUCKET, "kept").unwrap(), data(3000, 2));
}

#[test]
fn a_large_overwrite_of_a_journaled_key_is_not_rolled_back_by_the_redo() {
    let mut node = Node::start(4, 2);
    node.make_bucket(BUCKET).unwrap();
    node.put(BUCKET, "k", b"small and journaled").unwrap();
    // Staged in shard files: committed without the journal, which must
    // first retire the small version's record.
    let large = data(3 << 20, 7);
    node.put(BUCKET, "k", &large).unwrap();
    // A rewrite of the metadata in place (CopyObject onto itself) is also
    // outside the journal.
    node.put(BUCKET, "m", b"small").unwrap();
    node.rt()
        .run_on(0, |ctx| async move {
            let options =
                basalt::object::PutOptions { content_type: Some("text/x-replaced".into()), ..Default::default() };
            ctx.objects.copy_object(BUCKET, "m", BUCKET, "m", Some(options)).await
        })
        .unwrap();
    crash(&mut node, |_| {});
    assert_eq!(node.get(BUCKET, "k").unwrap(), large, "the redo rolled back a later large PUT");
    assert_eq!(node.get(BUCKET, "m").unwrap(), b"small");
    assert_eq!(
        node.head(BUCKET, "m").unwrap().content_type,
        "text/x-replaced",
        "the redo rolled back a metadata rewrite"
    );
}

#[test]
fn the_journal_files_take_turns_and_nothing_is_lost_across_their_checkpoints() {
    let mut node = Node::start(4, 2);
    node.make_bucket(BUCKET).unwrap();
    // About 50 KiB per record per drive: an 8 MiB file fills after some 160.
    let n = 760;
    for i in 0..n {
        node.put(BUCKET, &format!("o{i:04}"), &data(100 << 10, i)).unwrap();
    }
    for d in 0..4 {
        let live: usize = basalt::drive::journal::JOURNAL_FILES
            .iter()
            .filter_map(|f| std::fs::read(node.drives[d].join(".basalt.sys").join(f)).ok())
            .filter_map(|bytes| basalt::drive::journal::decode_file(&bytes).unwrap())
            .map(|(_, records)| records.len())
            .sum();
        assert!(live > 0 && live < 400, "drive {d}: {live} live records; older turns should have been checkpointed");
    }
    crash(&mut node, |_| {});
    for i in (0..n).step_by(7) {
        assert_eq!(node.get(BUCKET, &format!("o{i:04}")).unwrap(), data(100 << 10, i), "o{i:04}");
    }
    let listed = node.list(BUCKET, basalt::object::ListOptions { max_keys: 1000, ..Default::default() }).unwrap();
    assert_eq!(listed.objects.len(), n as usize);
}

#[test]
fn a_pulled_drive_does_not_hold_a_later_change_forever() {
    let node = Node::start(4, 2);
    node.make_bucket(BUCKET).unwrap();
    node.put(BUCKET, "k", b"small and journaled").unwrap();
    node.delete(BUCKET, "k").unwrap();
    // A drive is pulled: its root goes, live journal records and all.
    std::fs::remove_dir_all(&node.drives[3]).unwrap();
    // Removing the bucket first retires the records of its keys on every
    // drive; on the pulled one that checkpoint has nothing left to sync.
    let node = std::sync::Arc::new(node);
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let node = node.clone();
        // A thread of its own, so that a hang fails the test instead of holding it.
        std::thread::spawn(move || {
            let r = node.rt().run_on(0, |ctx| async move { ctx.objects.delete_bucket(BUCKET).await });
            let _ = tx.send(r);
        });
    }
    let removed = rx.recv_timeout(std::time::Duration::from_secs(60));
    assert!(matches!(removed, Ok(Ok(()))), "the bucket delete on three drives did not finish: {removed:?}");
    assert!(!node.drives[0].join(BUCKET).exists());
}
