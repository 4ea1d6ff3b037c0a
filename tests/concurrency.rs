//! Two executors writing and reading the same keys at once: every read returns
//! one complete version, never a mix or a torn object.

mod common;

use common::{MIB, Node, data};

/// Each version's bytes are derived from its number, so a reader can tell which
/// version it got and check it whole.
fn version(key: usize, v: u64, size: usize) -> Vec<u8> {
    let mut body = data(size, key as u64 * 1000 + v);
    body[..8].copy_from_slice(&v.to_le_bytes());
    body
}

#[test]
fn readers_see_whole_versions_while_writers_overwrite() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    const KEYS: usize = 3;
    const ROUNDS: u64 = 12;
    // One small (inline) key and two multi-block keys.
    let sizes = [60 * 1024, MIB + 7, 2 * MIB + 3];
    for (k, size) in sizes.iter().enumerate() {
        node.put("bucket", &format!("k{k}"), &version(k, 0, *size)).unwrap();
    }
    let rt = node.rt();
    // Writers on core 0 and core 1 overwrite the same keys; readers on both cores
    // read them at the same time.
    let mut jobs = Vec::new();
    for core in 0..2usize {
        jobs.push(rt.spawn_on(core, move |ctx| async move {
            for round in 1..=ROUNDS {
                for (k, size) in sizes.iter().enumerate() {
                    let v = round * 2 + core as u64;
                    let body = version(k, v, *size);
                    let mut b = basalt::object::BytesBody::new(body, 100_000);
                    let opts = basalt::object::PutOptions { size: Some(*size as u64), ..Default::default() };
                    ctx.objects
                        .put_object("bucket", &format!("k{k}"), &mut b, opts)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok::<u64, String>(0)
        }));
        jobs.push(rt.spawn_on(core, move |ctx| async move {
            let mut checked = 0u64;
            for _ in 0..ROUNDS * 2 {
                for (k, size) in sizes.iter().enumerate() {
                    let mut r =
                        ctx.objects.get_object("bucket", &format!("k{k}"), None).await.map_err(|e| e.to_string())?;
                    let mut got = Vec::new();
                    while let Some(c) = r.next_chunk().await.map_err(|e| e.to_string())? {
                        got.extend_from_slice(&c);
                    }
                    let v = u64::from_le_bytes(got[..8].try_into().unwrap());
                    if got != version(k, v, *size) {
                        return Err(format!("k{k}: read a torn or mixed copy of version {v}"));
                    }
                    checked += 1;
                }
            }
            Ok(checked)
        }));
    }
    let mut reads = 0;
    for j in jobs {
        reads += j.join().unwrap();
    }
    assert_eq!(reads, 2 * ROUNDS * 2 * KEYS as u64);
    // The final state is one of the last two writes, whole.
    for (k, size) in sizes.iter().enumerate() {
        let got = node.get("bucket", &format!("k{k}")).unwrap();
        let v = u64::from_le_bytes(got[..8].try_into().unwrap());
        assert!(v == ROUNDS * 2 || v == ROUNDS * 2 + 1, "k{k} ended at version {v}");
        assert_eq!(got, version(k, v, *size));
    }
    // No lock is left behind on either core.
    for core in 0..2 {
        assert_eq!(rt.run_on(core, |ctx| async move { ctx.core.active_locks() }), 0);
    }
}

/// Bodies received at once on one core are hashed side by side (the ETag's
/// MD5 in lanes): each object's ETag must still be the MD5 of its own bytes,
/// whatever its length and however its body arrives, and each must read back
/// whole.
#[test]
fn etags_of_bodies_hashed_together_are_each_their_own() {
    use md5::Digest;
    /// Batches tried until one shares a pass: whether two bodies wait at the
    /// same moment depends on how the core interleaves the PUTs' I/O with the
    /// hasher, and one batch in three shared none in a debug build.
    const MAX_BATCHES: usize = 8;
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let sizes = [3 * MIB + 17, 2 * MIB, 3 * MIB / 2 + 1, 5 * MIB, 700 * 1024 + 63, 200 * 1024, 64 * 1024 + 5];
    let rt = node.rt();
    let mut shared = 0;
    for batch in 0..MAX_BATCHES {
        let (etags, batch_shared) = rt.run_on(0, move |ctx| async move {
            let before = basalt::etag::hashed_bytes().1;
            let puts = sizes.iter().enumerate().map(|(k, size)| {
                let ctx = ctx.clone();
                async move {
                    // Different chunk sizes, some not a multiple of MD5's block.
                    let mut b = basalt::object::BytesBody::new(data(*size, k as u64), 60_000 + 4_099 * k);
                    let opts = basalt::object::PutOptions { size: Some(*size as u64), ..Default::default() };
                    let key = format!("b{batch}k{k}");
                    ctx.objects.put_object("bucket", &key, &mut b, opts).await.map(|info| info.etag)
                }
            });
            let etags = futures_util::future::join_all(puts).await;
            (etags, basalt::etag::hashed_bytes().1 - before)
        });
        for (k, (size, etag)) in sizes.iter().zip(etags).enumerate() {
            let body = data(*size, k as u64);
            let want = basalt::hex::encode(&md5::Md5::digest(&body));
            assert_eq!(etag.unwrap(), want, "b{batch}k{k} of {size} bytes");
            assert_eq!(node.get("bucket", &format!("b{batch}k{k}")).unwrap(), body, "b{batch}k{k} read back");
        }
        shared += batch_shared;
        if shared > 0 {
            break;
        }
    }
    // Six multi-block bodies started together on one core: some of their
    // bytes must have been hashed side by side, or the lanes are not used.
    assert!(shared > 0, "no bytes hashed in lanes in {MAX_BATCHES} batches");
}
