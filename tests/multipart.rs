//! Multipart uploads: parts in any order, re-uploaded parts, completion with S3's
//! ETag rule, listing, abort, and the S3 errors for bad completions.

mod common;

use basalt::Error;
use basalt::object::{BytesBody, CompletePart, PutOptions};
use common::{MIB, Node, data};
use md5::Digest;

fn md5(b: &[u8]) -> [u8; 16] {
    md5::Md5::digest(b).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn upload_complete_and_read_back() {
    let node = Node::start(4, 2);
    node.make_bucket("bucket").unwrap();
    let rt = node.rt();
    let parts: Vec<Vec<u8>> = vec![data(5 * MIB, 1), data(5 * MIB + 17, 2), data(1234, 3)];
    let upload = rt
        .run_on(0, |ctx| async move {
            let opts = PutOptions { content_type: Some("video/mp4".into()), ..Default::default() };
            ctx.objects.new_multipart_upload("bucket", "movies/a.mp4", opts).await
        })
        .unwrap();
    // Upload out of order, from both cores, and part 2 twice (the second wins).
    let order = [(3usize, 1usize), (2, 0), (1, 1), (2, 1)];
    let mut etags = std::collections::BTreeMap::new();
    for (number, core) in order {
        let body = if number == 2 && core == 0 { data(5 * MIB, 99) } else { parts[number - 1].clone() };
        let id = upload.clone();
        let etag = rt
            .run_on(core, move |ctx| async move {
                let size = body.len() as u64;
                ctx.objects
                    .put_object_part(
                        "bucket",
                        "movies/a.mp4",
                        &id,
                        number as u32,
                        &mut BytesBody::new(body, 65536),
                        Some(size),
                        None,
                    )
                    .await
            })
            .unwrap();
        etags.insert(number, etag);
    }
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(etags[&(i + 1)], hex(&md5(p)), "part ETag is the MD5 of the part");
    }
    let id = upload.clone();
    let (listed, truncated) = rt
        .run_on(1, move |ctx| async move { ctx.objects.list_parts("bucket", "movies/a.mp4", &id, 0, 1000).await })
        .unwrap();
    assert!(!truncated);
    assert_eq!(listed.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(listed[1].size, parts[1].len() as u64);
    let uploads =
        rt.run_on(0, |ctx| async move { ctx.objects.list_multipart_uploads("bucket", "movies/").await }).unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!((uploads[0].key.as_str(), uploads[0].upload_id.as_str()), ("movies/a.mp4", upload.as_str()));

    let complete: Vec<CompletePart> =
        (1..=3).map(|n| CompletePart { number: n, etag: format!("\"{}\"", etags[&(n as usize)]) }).collect();
    let id = upload.clone();
    let info = rt
        .run_on(0, move |ctx| async move {
            ctx.objects.complete_multipart_upload("bucket", "movies/a.mp4", &id, &complete).await
        })
        .unwrap();
    let mut joined = Vec::new();
    for p in &parts {
        joined.extend_from_slice(&md5(p));
    }
    assert_eq!(info.etag, format!("{}-3", hex(&md5(&joined))));
    let whole: Vec<u8> = parts.concat();
    assert_eq!(info.size, whole.len() as u64);
    assert_eq!(node.get("bucket", "movies/a.mp4").unwrap(), whole);
    assert_eq!(node.head("bucket", "movies/a.mp4").unwrap().content_type, "video/mp4");
    // Ranges that cross part boundaries.
    let start = 5 * MIB - 10;
    let got = node
        .get_on(
            1,
            "bucket",
            "movies/a.mp4",
            Some(basalt::object::Range::From { start: start as u64, end: Some((start + 2 * MIB) as u64) }),
        )
        .unwrap();
    assert_eq!(got, whole[start..=start + 2 * MIB]);
    // The upload is gone: no listing, no staging left on the drives.
    let uploads = rt.run_on(0, |ctx| async move { ctx.objects.list_multipart_uploads("bucket", "").await }).unwrap();
    assert!(uploads.is_empty());
    for d in &node.drives {
        assert_eq!(std::fs::read_dir(d.join(".basalt.sys/multipart/bucket")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(d.join(".basalt.sys/tmp")).unwrap().count(), 0);
    }
    // A multipart object survives the loss of two drives like any other.
    std::fs::remove_dir_all(&node.drives[0]).unwrap();
    std::fs::remove_dir_all(&node.drives[3]).unwrap();
    assert_eq!(node.get_on(1, "bucket", "movies/a.mp4", None).unwrap(), whole);
}

#[test]
fn bad_completions_and_abort() {
    let node = Node::start(4, 1);
    node.make_bucket("bucket").unwrap();
    let rt = node.rt();
    let id = rt
        .run_on(0, |ctx| async move { ctx.objects.new_multipart_upload("bucket", "k", PutOptions::default()).await })
        .unwrap();
    let put_part = |n: u32, body: Vec<u8>| {
        let id = id.clone();
        rt.run_on(0, move |ctx| async move {
            let size = body.len() as u64;
            ctx.objects.put_object_part("bucket", "k", &id, n, &mut BytesBody::new(body, 65536), Some(size), None).await
        })
    };
    let small = put_part(1, vec![1; 1000]).unwrap();
    let last = put_part(2, vec![2; 10]).unwrap();
    assert_eq!(put_part(0, vec![1]).unwrap_err(), Error::InvalidPartNumber(0));
    assert_eq!(put_part(10_001, vec![1]).unwrap_err(), Error::InvalidPartNumber(10_001));
    let complete = |parts: Vec<(u32, String)>| {
        let id = id.clone();
        rt.run_on(0, move |ctx| async move {
            let parts: Vec<CompletePart> =
                parts.into_iter().map(|(number, etag)| CompletePart { number, etag }).collect();
            ctx.objects.complete_multipart_upload("bucket", "k", &id, &parts).await
        })
    };
    assert_eq!(complete(vec![(1, small.clone()), (2, last.clone())]).unwrap_err(), Error::EntityTooSmall(1));
    assert_eq!(complete(vec![(2, last.clone()), (1, small.clone())]).unwrap_err(), Error::InvalidPartOrder);
    assert_eq!(complete(vec![(1, "0".repeat(32))]).unwrap_err(), Error::InvalidPart(1));
    assert_eq!(complete(vec![(7, small.clone())]).unwrap_err(), Error::InvalidPart(7));
    // A single small part is a valid (last) part.
    let info = complete(vec![(1, small.clone())]).unwrap();
    assert_eq!(node.get("bucket", "k").unwrap(), vec![1; 1000]);
    assert!(info.etag.ends_with("-1"));
    // The upload is finished: its id is no longer valid.
    assert_eq!(put_part(3, vec![3]).unwrap_err(), Error::NoSuchUpload);
    // Abort frees the parts.
    let id2 = rt
        .run_on(
            0,
            |ctx| async move { ctx.objects.new_multipart_upload("bucket", "other", PutOptions::default()).await },
        )
        .unwrap();
    let id3 = id2.clone();
    rt.run_on(0, move |ctx| async move {
        let mut body = BytesBody::new(vec![5u8; 6 * MIB], 65536);
        ctx.objects.put_object_part("bucket", "other", &id3, 1, &mut body, None, None).await
    })
    .unwrap();
    let id4 = id2.clone();
    rt.run_on(0, move |ctx| async move { ctx.objects.abort_multipart_upload("bucket", "other", &id4).await }).unwrap();
    for d in &node.drives {
        assert!(!d.join(format!(".basalt.sys/multipart/bucket/{id2}")).exists());
    }
    let err = rt
        .run_on(0, move |ctx| async move { ctx.objects.abort_multipart_upload("bucket", "other", &id2).await })
        .unwrap_err();
    assert_eq!(err, Error::NoSuchUpload);
    assert_eq!(node.get("bucket", "other").unwrap_err(), Error::NoSuchKey);
}
