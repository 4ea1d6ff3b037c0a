//! The front end's per-request CPU: what every request pays before and after
//! the object layer, measured apart so a regression shows where it is.
//!
//! - `sigv4/header`: verifying an `Authorization: AWS4-HMAC-SHA256` header
//!   (canonical request, SHA-256, the day's key derived, HMAC, constant-time compare).
//! - `sigv4/chunk-64KiB`: reading one signed 64 KiB `aws-chunked` chunk (and the
//!   final empty one) with its signature verified: a SHA-256 of the data and an HMAC.
//! - `http/head`: parsing a request head as the aws cli sends a PUT.
//! - `xml/list-1000`: the ListObjectsV2 body of a page of 1,000 keys.
//! - `metrics/record`: what every request pays for metrics (two histogram
//!   increments and a counter on the core's own memory).

use std::hint::black_box;

use basalt::auth::Credentials;
use basalt::auth::chunked::{AwsChunked, chunk_signature};
use basalt::auth::sigv4::{self, ChunkContext, UNSIGNED_PAYLOAD};
use basalt::http::head::{Parsed, Request, parse};
use basalt::object::{Body, BytesBody, ListResult, ObjectInfo};
use basalt::s3::{Listing, listing_xml};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const NOW: i64 = 1_769_000_000;
const CHUNK_BYTES: usize = 64 << 10;
const LIST_KEYS: usize = 1000;

fn creds() -> Credentials {
    Credentials { access_key: "benchadmin".into(), secret_key: "benchsecret-0123456789".into() }
}

/// A PUT head as the aws cli sends it, signed.
fn signed_put() -> String {
    let creds = creds();
    let amz_date = sigv4::compact_date(NOW);
    let day = &amz_date[..8];
    let key = sigv4::signing_key(&creds.secret_key, day, "us-east-1", "s3");
    let scope = sigv4::scope(day, "us-east-1");
    let mut headers: Vec<(String, String)> = vec![
        ("content-length".into(), "1048576".into()),
        ("content-md5".into(), "1B2M2Y8AsgTpgAmY7PhCfg==".into()),
        ("content-type".into(), "application/octet-stream".into()),
        ("host".into(), "127.0.0.1:9000".into()),
        ("user-agent".into(), "aws-cli/2.17.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.8.0 md/arch#x86_64".into()),
        ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
        ("x-amz-date".into(), amz_date.clone()),
        ("x-amz-meta-owner".into(), "bench".into()),
    ];
    let signed_names =
        ["content-md5", "content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-owner"];
    let req = Request {
        method: "PUT".into(),
        raw_path: "/bucket/photos/2026/holiday%20beach.jpg".into(),
        raw_query: String::new(),
        headers: headers.clone(),
        http10: false,
        peer: None,
    };
    let signed =
        sigv4::sign_request(&req, &creds.access_key, &key, &scope, &amz_date, &signed_names, UNSIGNED_PAYLOAD).unwrap();
    headers.push(("authorization".into(), signed.authorization));
    let mut wire = format!("PUT {} HTTP/1.1\r\n", req.raw_path);
    for (n, v) in &headers {
        wire.push_str(&format!("{n}: {v}\r\n"));
    }
    wire + "\r\n"
}

fn parsed(wire: &str) -> Request {
    match parse(wire.as_bytes()) {
        Ok(Parsed::Complete(r, _)) => r,
        _ => panic!("the benchmark's request head does not parse"),
    }
}

fn sigv4_and_http(c: &mut Criterion) {
    let wire = signed_put();
    let req = parsed(&wire);
    let creds = creds();
    assert!(sigv4::verify_header(&req, &creds, NOW).is_ok(), "the signed head must verify");
    c.bench_function("sigv4/header", |b| b.iter(|| sigv4::verify_header(black_box(&req), &creds, NOW)));

    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("head", |b| {
        b.iter(|| parse(black_box(wire.as_bytes())).map(|p| matches!(p, Parsed::Complete(..))))
    });
    group.finish();

    let amz_date = sigv4::compact_date(NOW);
    let ctx = ChunkContext {
        seed: "f".repeat(64),
        amz_date: amz_date.clone(),
        scope: sigv4::scope(&amz_date[..8], "us-east-1"),
        key: sigv4::signing_key(&creds.secret_key, &amz_date[..8], "us-east-1", "s3"),
        trailer: false,
    };
    let data: Vec<u8> = (0..CHUNK_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let first = chunk_signature(&ctx, &ctx.seed, &data);
    let last = chunk_signature(&ctx, &first, &[]);
    let mut body = format!("{:x};chunk-signature={first}\r\n", data.len()).into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n0;chunk-signature={last}\r\n\r\n").as_bytes());
    let body = bytes::Bytes::from(body);
    let read = |body: bytes::Bytes| {
        futures_lite::future::block_on(async {
            let mut chunked = AwsChunked::new(BytesBody::new(body, CHUNK_BYTES + 128), Some(ctx.clone()));
            let mut n = 0;
            while let Some(c) = chunked.next_chunk().await.expect("the chunk verifies") {
                n += c.len();
            }
            n
        })
    };
    assert_eq!(read(body.clone()), CHUNK_BYTES);
    let mut group = c.benchmark_group("sigv4");
    group.throughput(Throughput::Bytes(CHUNK_BYTES as u64));
    group.bench_function("chunk-64KiB", |b| b.iter(|| read(black_box(body.clone()))));
    group.finish();
}

fn list_xml(c: &mut Criterion) {
    let objects: Vec<ObjectInfo> = (0..LIST_KEYS)
        .map(|i| ObjectInfo {
            bucket: "bucket".into(),
            key: format!("logs/2026/11/29/host-{:03}/part-{i:06}.json.gz", i % 17),
            size: 1_000_000 + i as u64,
            etag: format!("{:032x}", i as u128 * 0x9E37_79B9_7F4A_7C15),
            mod_time_ns: 1_764_400_000_000_000_000 + i as i64 * 1_000_000,
            content_type: "application/gzip".into(),
            headers: Default::default(),
            user_meta: Default::default(),
            checksums: Default::default(),
            part_sizes: vec![1_000_000 + i as u64],
        })
        .collect();
    let result = ListResult {
        objects,
        prefixes: Vec::new(),
        is_truncated: true,
        next_marker: Some("logs/2026/11/29/host-999/part-999999.json.gz".into()),
    };
    let query = vec![("list-type".to_string(), "2".to_string()), ("prefix".to_string(), "logs/".to_string())];
    let xml = listing_xml("bucket", &query, Listing::V2, 1000, false, result.clone());
    assert_eq!(xml.matches("<Key>").count(), LIST_KEYS);
    let mut group = c.benchmark_group("xml");
    group.throughput(Throughput::Elements(LIST_KEYS as u64));
    group.bench_function("list-1000", |b| {
        b.iter_batched(
            || result.clone(),
            |r| listing_xml("bucket", black_box(&query), Listing::V2, 1000, false, r),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn metrics(c: &mut Criterion) {
    use basalt::metrics::{Op, init_core, record_request};
    use std::time::Duration;
    init_core(4);
    let mut i = 0u64;
    c.bench_function("metrics/record", |b| {
        b.iter(|| {
            i = i.wrapping_add(7919);
            let latency = Duration::from_micros(100 + i % 50_000);
            record_request(black_box(Op::GetObject), 200, latency, latency / 2)
        })
    });
}

criterion_group!(benches, sigv4_and_http, list_xml, metrics);
criterion_main!(benches);
