//! Objects of every interesting size come back byte for byte, whole and in
//! ranges, on every drive count the layouts cover.

mod common;

use basalt::Error;
use basalt::object::{PutOptions, Range};
use common::{KIB, MIB, Node, data};

const SIZES: [usize; 7] = [0, 1, 128 * KIB - 1, 128 * KIB + 1, MIB - 1, MIB + 1, 10 * MIB];

fn round_trips(drives: usize) {
    let node = Node::start(drives, 2);
    node.make_bucket("bucket").unwrap();
    for ((i, size), direct) in SIZES.iter().enumerate().flat_map(|s| [(s, false), (s, true)]) {
        let body = data(*size, i as u64);
        let key = format!("objects/size-{size}-direct-{direct}");
        let info = node.put_with(0, "bucket", &key, &body, direct).unwrap();
        assert_eq!(info.size, *size as u64);
        assert_eq!(info.etag, md5_hex(&body), "ETag is the MD5 of the content");
        // Read from both cores: one owns half the drives, the other the rest.
        for core in 0..2 {
            let got = node.get_on(core, "bucket", &key, None).unwrap();
            assert!(got == body, "{drives} drives, {size} bytes (direct {direct}), core {core}: content differs");
        }
        let head = node.head("bucket", &key).unwrap();
        assert_eq!((head.size, head.etag.as_str()), (*size as u64, info.etag.as_str()));
        check_shard_file_sizes(&node, &key, *size as u64);
        // A server-side copy of a range (UploadPartCopy) reads the object as a
        // body straight into its blocks; a range starting inside a block puts
        // the object's pieces across the copy's blocks.
        if direct && *size > 0 {
            let start = (*size / 3 + 7).min(*size - 1) as u64;
            let (src, dst) = (key.clone(), format!("copies/size-{size}"));
            let copy = node.rt().run_on(1, move |ctx| async move {
                let range = Some(Range::From { start, end: None });
                let mut reader = ctx.objects.get_object("bucket", &src, range).await?;
                let opts = PutOptions { size: Some(reader.remaining()), ..Default::default() };
                ctx.objects.put_object("bucket", &dst, &mut reader, opts).await
            });
            assert_eq!(copy.unwrap().size, *size as u64 - start);
            let got = node.get("bucket", &format!("copies/size-{size}")).unwrap();
            assert!(got[..] == body[start as usize..], "copy of bytes {start}.. of {size} differs");
        }
    }
}

/// Shard files are reserved at their final size before they are written: each
/// must end up exactly as long as its blocks, never longer (a reservation left
/// over) or shorter.
fn check_shard_file_sizes(node: &Node, key: &str, size: u64) {
    let drives = node.drives.len();
    let set = (2..=16).rev().find(|s| drives.is_multiple_of(*s)).unwrap_or(drives);
    let parity = basalt::erasure::default_parity(set);
    let erasure = basalt::erasure::Erasure::new(set - parity, parity, basalt::erasure::BLOCK_SIZE_BYTES).unwrap();
    let frames = basalt::erasure::shard_file_size(&erasure, size);
    // The frames, then zeros up to the next 4 KiB: never stale buffer contents.
    let want = frames.next_multiple_of(basalt::drive::FILE_ALIGN_BYTES);
    for d in 0..drives {
        for f in node.shard_files(d, "bucket", key) {
            let bytes = std::fs::read(&f).unwrap();
            let got = bytes.len() as u64;
            assert_eq!(got, want, "{} is {got} bytes, want {want} ({size}-byte object)", f.display());
            assert!(bytes[frames as usize..].iter().all(|b| *b == 0), "{}: padding is not zeros", f.display());
        }
    }
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn round_trip_1_drive() {
    round_trips(1);
}

#[test]
fn round_trip_4_drives() {
    round_trips(4);
}

#[test]
fn round_trip_6_drives() {
    round_trips(6);
}

#[test]
fn round_trip_16_drives() {
    round_trips(16);
}

#[test]
fn ranges_at_block_and_shard_boundaries() {
    for drives in [1, 4, 16] {
        let node = Node::start(drives, 2);
        node.make_bucket("bucket").unwrap();
        let size = 3 * MIB + 12345;
        let body = data(size, 7);
        node.put("bucket", "big", &body).unwrap();
        let small = data(100 * KIB, 8);
        node.put("bucket", "small", &small).unwrap();
        let layout = node.rt().layout().clone();
        let shard = MIB.div_ceil(layout.data);
        let mut points = vec![0, 1, shard - 1, shard, shard + 1, MIB - 1, MIB, MIB + 1, 2 * MIB, size - 1];
        points.extend([MIB + shard, 2 * MIB - shard]);
        for &start in &points {
            for &len in &[1usize, 2, shard, MIB, MIB + 1, size] {
                let end = (start + len - 1).min(size - 1);
                let got = node
                    .get_on(
                        start % 2,
                        "bucket",
                        "big",
                        Some(Range::From { start: start as u64, end: Some(end as u64) }),
                    )
                    .unwrap();
                assert!(got == body[start..=end], "{drives} drives: range {start}-{end}");
            }
        }
        let tail = node.get_on(0, "bucket", "big", Some(Range::From { start: (size - 10) as u64, end: None })).unwrap();
        assert_eq!(tail, body[size - 10..]);
        let suffix = node.get_on(0, "bucket", "big", Some(Range::Suffix(MIB as u64 + 3))).unwrap();
        assert_eq!(suffix, body[size - MIB - 3..]);
        let inline = node.get_on(1, "bucket", "small", Some(Range::From { start: 1000, end: Some(50_000) })).unwrap();
        assert_eq!(inline, small[1000..=50_000]);
        let err = node.get_on(0, "bucket", "big", Some(Range::From { start: size as u64, end: None })).unwrap_err();
        assert_eq!(err, Error::InvalidRange { size: size as u64 });
        assert_eq!(err.http_status(), 416);
    }
}

/// A GET reads longer spans when few GETs share its core: one that starts
/// alone, sees 80 others open mid-stream (its spans shrink to two blocks, while a
/// long span it fetched ahead is in flight) and then close again, returns the
/// same bytes as the others do.
#[test]
fn a_get_whose_span_length_changes_mid_stream_returns_every_byte() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let size = 13 * MIB + 4321;
    let body = data(size, 11);
    node.put("bucket", "big", &body).unwrap();
    let (first, others) = node
        .rt()
        .run_on(1, move |ctx| async move {
            let mut a = ctx.objects.get_object("bucket", "big", None).await?;
            let mut first = Vec::new();
            first.extend_from_slice(&a.next_chunk().await?.unwrap_or_default());
            let mut readers = Vec::new();
            for _ in 0..80 {
                readers.push(ctx.objects.get_object("bucket", "big", None).await?);
            }
            // Half of A while 81 GETs share the core, then the rest alone.
            while first.len() < size / 2 {
                let Some(chunk) = a.next_chunk().await? else { break };
                first.extend_from_slice(&chunk);
            }
            let mut others = Vec::new();
            for mut r in readers.drain(..).take(2) {
                let mut got = Vec::new();
                while let Some(chunk) = r.next_chunk().await? {
                    got.extend_from_slice(&chunk);
                }
                others.push(got);
            }
            drop(readers);
            while let Some(chunk) = a.next_chunk().await? {
                first.extend_from_slice(&chunk);
            }
            Ok::<_, Error>((first, others))
        })
        .unwrap();
    assert!(first == body, "the GET whose spans changed length differs");
    for got in others {
        assert!(got == body, "a GET among many differs");
    }
}

/// The chunks a GET hands out may be held anywhere, for as long as wanted:
/// each points into the DMA buffer of the core that read it (lent,
/// `drive::lend`), which stays as it was while held, whatever both cores read
/// and free meanwhile, and even after the executors have stopped.
#[test]
fn chunks_of_a_get_stay_whole_while_held_anywhere() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let size = 9 * MIB + 777;
    let body = data(size, 21);
    let other = data(6 * MIB + 3, 22);
    node.put("bucket", "held", &body).unwrap();
    node.put("bucket", "other", &other).unwrap();
    let chunks = node
        .rt()
        .run_on(0, |ctx| async move {
            let mut reader = ctx.objects.get_object("bucket", "held", None).await?;
            let mut chunks = Vec::new();
            while let Some(chunk) = reader.next_chunk().await? {
                chunks.push(chunk);
            }
            Ok::<_, Error>(chunks)
        })
        .unwrap();
    for core in 0..2 {
        for _ in 0..3 {
            assert!(node.get_on(core, "bucket", "other", None).unwrap() == other, "core {core}: the other object");
        }
    }
    assert!(chunks.concat() == body, "held while both cores read on");
    drop(node);
    assert!(chunks.concat() == body, "held after the executors stopped");
}

#[test]
fn overwrite_replaces_and_removes_old_data() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let first = data(3 * MIB, 1);
    let second = data(2 * MIB + 5, 2);
    node.put("bucket", "k", &first).unwrap();
    node.put("bucket", "k", &second).unwrap();
    assert_eq!(node.get("bucket", "k").unwrap(), second);
    for d in 0..4 {
        let dirs: Vec<_> = std::fs::read_dir(node.key_dir(d, "bucket", "k"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".basalt.data."))
            .collect();
        assert_eq!(dirs.len(), 1, "drive {d} keeps only the current version's data");
    }
    // Overwrite a large object with a small (inline) one and back.
    node.put("bucket", "k", b"tiny").unwrap();
    assert_eq!(node.get("bucket", "k").unwrap(), b"tiny");
    assert!(node.shard_files(0, "bucket", "k").is_empty());
    node.put("bucket", "k", &first).unwrap();
    assert_eq!(node.get("bucket", "k").unwrap(), first);
}

#[test]
fn delete_head_copy_and_metadata() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let body = data(2 * MIB, 3);
    let b2 = body.clone();
    let info = node.rt().run_on(1, move |ctx| async move {
        let mut opts = basalt::object::PutOptions {
            size: Some(b2.len() as u64),
            content_type: Some("image/png".into()),
            ..Default::default()
        };
        opts.user_meta.insert("color".into(), "blue".into());
        opts.headers.insert("cache-control".into(), "max-age=60".into());
        let mut src = basalt::object::BytesBody::new(b2, 1000);
        ctx.objects.put_object("bucket", "src", &mut src, opts).await
    });
    let info = info.unwrap();
    let head = node.head("bucket", "src").unwrap();
    assert_eq!(head.content_type, "image/png");
    assert_eq!(head.user_meta.get("color").map(String::as_str), Some("blue"));
    assert_eq!(head.headers.get("cache-control").map(String::as_str), Some("max-age=60"));
    // Copy keeps content and metadata.
    let copied = node
        .rt()
        .run_on(0, |ctx| async move { ctx.objects.copy_object("bucket", "src", "bucket", "dst/copy", None).await })
        .unwrap();
    assert_eq!(copied.etag, info.etag);
    assert_eq!(node.get("bucket", "dst/copy").unwrap(), body);
    assert_eq!(node.head("bucket", "dst/copy").unwrap().user_meta, head.user_meta);
    // Copy onto itself replaces metadata only.
    let replaced = node
        .rt()
        .run_on(0, |ctx| async move {
            let mut opts = basalt::object::PutOptions { content_type: Some("text/plain".into()), ..Default::default() };
            opts.user_meta.insert("color".into(), "red".into());
            ctx.objects.copy_object("bucket", "src", "bucket", "src", Some(opts)).await
        })
        .unwrap();
    assert_eq!(replaced.etag, info.etag);
    let head = node.head("bucket", "src").unwrap();
    assert_eq!((head.content_type.as_str(), head.user_meta["color"].as_str()), ("text/plain", "red"));
    assert_eq!(node.get("bucket", "src").unwrap(), body);
    // Delete removes it from every drive, directories included.
    node.delete("bucket", "dst/copy").unwrap();
    assert_eq!(node.get("bucket", "dst/copy").unwrap_err(), Error::NoSuchKey);
    assert_eq!(node.head("bucket", "dst/copy").unwrap_err(), Error::NoSuchKey);
    for d in 0..4 {
        assert!(!node.drives[d].join("bucket/dst").exists(), "empty directories pruned on drive {d}");
    }
    // Deleting a missing object succeeds, as in S3.
    node.delete("bucket", "never-existed").unwrap();
    // Directory objects ("folder/") live beside plain ones.
    node.put("bucket", "folder/", b"").unwrap();
    node.put("bucket", "folder", b"file").unwrap();
    assert_eq!(node.get("bucket", "folder/").unwrap(), b"");
    assert_eq!(node.get("bucket", "folder").unwrap(), b"file");
}

#[test]
fn buckets_lifecycle() {
    let node = Node::start(4, 2);
    node.make_bucket("alpha").unwrap();
    node.make_bucket("beta").unwrap();
    assert_eq!(node.make_bucket("alpha").unwrap_err(), Error::BucketAlreadyExists("alpha".into()));
    let names: Vec<String> = node
        .rt()
        .run_on(1, |ctx| async move { ctx.objects.list_buckets().await })
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    node.put("alpha", "x", b"1").unwrap();
    let del = |b: &'static str| node.rt().run_on(0, move |ctx| async move { ctx.objects.delete_bucket(b).await });
    assert_eq!(del("alpha").unwrap_err(), Error::BucketNotEmpty("alpha".into()));
    node.delete("alpha", "x").unwrap();
    del("alpha").unwrap();
    assert_eq!(del("alpha").unwrap_err(), Error::NoSuchBucket("alpha".into()));
    assert_eq!(node.put("alpha", "x", b"1").unwrap_err(), Error::NoSuchBucket("alpha".into()));
    assert_eq!(node.get("alpha", "x").unwrap_err(), Error::NoSuchBucket("alpha".into()));
    let exists = node.rt().run_on(0, |ctx| async move { ctx.objects.bucket_exists("beta").await }).unwrap();
    assert!(exists);
}

#[test]
fn data_survives_restart_and_tmp_is_cleaned() {
    let mut node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let body = data(5 * MIB, 9);
    node.put("bucket", "persisted", &body).unwrap();
    // Leftovers of an interrupted write.
    let junk = node.drives[2].join(".basalt.sys/tmp/interrupted-upload");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("part.1"), b"half a shard").unwrap();
    node.restart();
    assert!(!junk.exists(), "temp leftovers are removed at start");
    assert_eq!(node.get("bucket", "persisted").unwrap(), body);
}

#[test]
fn temp_files_a_crash_leaves_beside_metadata_stay_invisible() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    node.put("bucket", "dir/a", b"first").unwrap();
    // A crash between writing a commit's temp file and renaming it: one beside
    // the metadata of `dir/a`, and one in the directory of `dir/ghost`, whose
    // first commit never got further.
    for d in 0..4 {
        std::fs::write(node.key_dir(d, "bucket", "dir/a").join(".basalt.tmp.1234"), b"half").unwrap();
        let ghost = node.key_dir(d, "bucket", "dir/ghost");
        std::fs::create_dir_all(&ghost).unwrap();
        std::fs::write(ghost.join(".basalt.tmp.5678"), b"half").unwrap();
    }
    let keys = |opts: basalt::object::ListOptions| {
        let res = node.list("bucket", opts).unwrap();
        (res.objects.into_iter().map(|o| o.key).collect::<Vec<_>>(), res.prefixes)
    };
    assert_eq!(keys(Default::default()), (vec!["dir/a".to_string()], vec![]));
    let by_dir =
        basalt::object::ListOptions { prefix: "dir/".into(), delimiter: Some("/".into()), ..Default::default() };
    assert_eq!(keys(by_dir), (vec!["dir/a".to_string()], vec![]));
    assert_eq!(node.get("bucket", "dir/ghost").unwrap_err(), Error::NoSuchKey);
    // Both keys can be written, read and deleted as usual.
    node.put("bucket", "dir/a", b"second").unwrap();
    node.put("bucket", "dir/ghost", b"boo").unwrap();
    assert_eq!(node.get("bucket", "dir/a").unwrap(), b"second");
    assert_eq!(node.get("bucket", "dir/ghost").unwrap(), b"boo");
    node.delete("bucket", "dir/a").unwrap();
    node.delete("bucket", "dir/ghost").unwrap();
    assert_eq!(keys(Default::default()), (vec![], vec![]));
    // The stray files do not keep the bucket from being deleted.
    node.rt().run_on(0, |ctx| async move { ctx.objects.delete_bucket("bucket").await }).unwrap();
    assert!(!node.drives[0].join("bucket").exists());
}
