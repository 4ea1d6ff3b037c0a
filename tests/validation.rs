//! Bad input is refused with typed errors that map to S3 codes, before anything
//! touches a drive.

mod common;

use basalt::Error;
use basalt::object::{BytesBody, PutOptions};
use common::Node;

#[test]
fn bad_keys_are_refused() {
    let node = Node::start(4, 1);
    node.make_bucket("bucket").unwrap();
    let long = "k".repeat(1025);
    for key in ["../escape", "a/../../b", "a//b", "/abs", "a\0b", "", ".", "a/./b", "x/.basalt.meta", long.as_str()] {
        let err = node.put("bucket", key, b"x").unwrap_err();
        assert!(matches!(err, Error::InvalidObjectName(_) | Error::KeyTooLong), "{key:?} gave {err:?}");
        assert_eq!(err.http_status(), 400);
        assert!(node.get("bucket", key).is_err());
    }
    assert_eq!(node.put("bucket", &long, b"x").unwrap_err().s3_code(), "KeyTooLongError");
    // Nothing escaped the bucket on any drive.
    for d in &node.drives {
        let names: Vec<_> = std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 2, "{d:?} holds only .basalt.sys and the bucket: {names:?}");
    }
    // The longest legal key works.
    let max = format!("{}/{}", "d".repeat(200), "k".repeat(200));
    node.put("bucket", &max, b"ok").unwrap();
    assert_eq!(node.get("bucket", &max).unwrap(), b"ok");
}

#[test]
fn bad_bucket_names_are_refused() {
    let node = Node::start(1, 1);
    for name in ["ab", "UPPER", "under_score", "-dash", "dash-", "a..b", "10.0.0.1", &"b".repeat(64)] {
        let err = node.make_bucket(name).unwrap_err();
        assert!(matches!(err, Error::InvalidBucketName(..)), "{name}: {err:?}");
        assert_eq!((err.s3_code(), err.http_status()), ("InvalidBucketName", 400));
    }
    assert_eq!(node.put("nosuchbucket", "k", b"x").unwrap_err(), Error::NoSuchBucket("nosuchbucket".into()));
}

#[test]
fn body_length_and_digest_are_enforced() {
    let node = Node::start(4, 1);
    node.make_bucket("bucket").unwrap();
    let rt = node.rt();
    // Bodies that hand out chunks, and bodies read straight into block buffers.
    for direct in [false, true] {
        let put = |declared: u64, body: Vec<u8>, md5: Option<[u8; 16]>| {
            rt.run_on(0, move |ctx| async move {
                let opts = PutOptions { size: Some(declared), content_md5: md5, ..Default::default() };
                let mut body = if direct { BytesBody::direct(body, 1000) } else { BytesBody::new(body, 1000) };
                ctx.objects.put_object("bucket", "k", &mut body, opts).await
            })
        };
        let big = common::data(2 * common::MIB, 1);
        assert_eq!(put(10, vec![1; 5], None).unwrap_err(), Error::IncompleteBody { expected: 10, got: 5 });
        assert_eq!(put(5, vec![1; 10], None).unwrap_err(), Error::BodyTooLong(5));
        let long = put(big.len() as u64 - 1, big.clone(), None).unwrap_err();
        assert_eq!(long, Error::BodyTooLong(big.len() as u64 - 1), "direct {direct}");
        let short = put(big.len() as u64 + 1, big.clone(), None).unwrap_err();
        assert!(matches!(short, Error::IncompleteBody { .. }), "direct {direct}: {short:?}");
        assert_eq!(put(3, b"abc".to_vec(), Some([0; 16])).unwrap_err(), Error::BadDigest);
        assert_eq!(put(big.len() as u64, big.clone(), Some([7; 16])).unwrap_err(), Error::BadDigest);
    }
    let put = |declared: u64, body: Vec<u8>, md5: Option<[u8; 16]>| {
        rt.run_on(0, move |ctx| async move {
            let opts = PutOptions { size: Some(declared), content_md5: md5, ..Default::default() };
            ctx.objects.put_object("bucket", "k", &mut BytesBody::new(body, 1000), opts).await
        })
    };
    // None of the refused bodies left an object or temp files behind.
    assert_eq!(node.get("bucket", "k").unwrap_err(), Error::NoSuchKey);
    for d in &node.drives {
        assert_eq!(std::fs::read_dir(d.join(".basalt.sys/tmp")).unwrap().count(), 0, "{d:?} temp files left");
    }
    let md5: [u8; 16] = {
        use md5::Digest;
        md5::Md5::digest(b"abc").into()
    };
    put(3, b"abc".to_vec(), Some(md5)).unwrap();
    assert_eq!(node.get("bucket", "k").unwrap(), b"abc");
}
