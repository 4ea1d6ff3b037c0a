//! Object operations: PutObject, GetObject and HeadObject (ranges, conditions,
//! response overrides), CopyObject, DeleteObject, DeleteObjects.

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine;

use super::checksum::{self, ChecksumBody, Expected};
use super::xml::{self, XmlWriter};
use super::{RequestBody, Target, quoted, xml_response};
use crate::error::Error;
use crate::http::date;
use crate::http::head::{Request, percent_decode};
use crate::http::response::{Response, ResponseBody};
use crate::object::{ObjectInfo, ObjectLayer, PutOptions, Range};

/// Standard headers stored with an object and returned on GET/HEAD.
const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];
/// S3's limit on user metadata (names and values together).
const MAX_USER_META_BYTES: usize = 2 << 10;
/// Keys per DeleteObjects request, as S3.
const MAX_DELETE_KEYS: usize = 1000;

/// The options a PUT (or a REPLACE copy, or a multipart start) carries in headers.
pub(super) fn put_options(req: &Request) -> Result<PutOptions, Error> {
    let mut opts = PutOptions { content_type: req.header("content-type").map(String::from), ..Default::default() };
    let mut meta_bytes = 0;
    for (name, value) in &req.headers {
        if let Some(k) = name.strip_prefix("x-amz-meta-") {
            meta_bytes += k.len() + value.len();
            opts.user_meta.insert(k.to_string(), value.clone());
        } else if STORED_HEADERS.contains(&name.as_str()) {
            // aws-chunked is how the body travelled, not what it is.
            let v: Vec<&str> =
                value.split(',').map(str::trim).filter(|v| !v.eq_ignore_ascii_case("aws-chunked")).collect();
            if !v.is_empty() {
                opts.headers.insert(name.clone(), v.join(","));
            }
        }
    }
    if meta_bytes > MAX_USER_META_BYTES {
        return Err(Error::InvalidArgument("user metadata is larger than 2 KiB".into()));
    }
    if let Some(md5) = req.header("content-md5") {
        let bytes = base64::engine::general_purpose::STANDARD.decode(md5).map_err(|_| Error::InvalidDigest)?;
        opts.content_md5 = Some(bytes.try_into().map_err(|_| Error::InvalidDigest)?);
    }
    Ok(opts)
}

/// The object's length as the client declared it.
pub(super) fn declared_length(req: &Request) -> Result<Option<u64>, Error> {
    let parse = |v: &str| {
        crate::http::server::parse_decimal(v.trim()).ok_or_else(|| Error::InvalidArgument(format!("bad length {v:?}")))
    };
    if let Some(d) = req.header("x-amz-decoded-content-length") {
        return parse(d).map(Some);
    }
    if req.header("content-encoding").is_some_and(|e| e.contains("aws-chunked")) {
        return Ok(None);
    }
    match req.header("content-length") {
        Some(v) => parse(v).map(Some),
        None if req.header("transfer-encoding").is_some() => Ok(None),
        None => Err(Error::MissingContentLength),
    }
}

pub async fn put(
    objects: &ObjectLayer,
    req: &Request,
    t: &Target,
    body: &mut RequestBody<'_>,
) -> Result<Response, Error> {
    let mut opts = put_options(req)?;
    opts.size = declared_length(req)?;
    let mut body = ChecksumBody::new(body, Expected::from_request(req)?);
    let info = objects.put_object(&t.bucket, &t.key, &mut body, opts).await?;
    let mut r = Response::new(200);
    r.header("etag", quoted(&info.etag));
    Ok(r)
}

fn parse_range(value: &str) -> Result<Option<Range>, Error> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        // Several ranges: S3 ignores the header and returns the whole object.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Error::InvalidArgument("bad Range".into()))?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| Error::InvalidArgument("bad Range".into()));
    Ok(Some(match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => Range::Suffix(num(b)?),
        (false, true) => Range::From { start: num(a)?, end: None },
        (false, false) => Range::From { start: num(a)?, end: Some(num(b)?) },
        (true, true) => return Ok(None),
    }))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(|e| e.trim().trim_matches('"')).any(|e| e == "*" || e == etag)
}

/// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since (RFC 7232 order).
fn check_conditions(req: &Request, info: &ObjectInfo) -> Result<(), Error> {
    let modified = info.mod_time_ns / 1_000_000_000;
    if let Some(m) = req.header("if-match") {
        if !etag_matches(m, &info.etag) {
            return Err(Error::PreconditionFailed);
        }
    } else if let Some(since) = req.header("if-unmodified-since").and_then(date::parse_rfc1123)
        && modified > since
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(m) = req.header("if-none-match") {
        if etag_matches(m, &info.etag) {
            return Err(if req.method == "GET" || req.method == "HEAD" {
                Error::NotModified
            } else {
                Error::PreconditionFailed
            });
        }
    } else if let Some(since) = req.header("if-modified-since").and_then(date::parse_rfc1123)
        && modified <= since
    {
        return Err(Error::NotModified);
    }
    Ok(())
}

/// Headers describing an object (GET, HEAD).
fn object_headers(r: &mut Response, info: &ObjectInfo) {
    r.header("etag", quoted(&info.etag))
        .header("last-modified", date::rfc1123(info.mod_time_ns / 1_000_000_000))
        .header("content-type", info.content_type.clone())
        .header("accept-ranges", "bytes");
    for (k, v) in &info.headers {
        r.header(k, v.clone());
    }
    for (k, v) in &info.user_meta {
        r.header(&format!("x-amz-meta-{k}"), v.clone());
    }
    if info.part_sizes.len() > 1 {
        r.header("x-amz-mp-parts-count", info.part_sizes.len().to_string());
    }
}

/// Stored checksums, for clients that send `x-amz-checksum-mode: ENABLED`.
fn checksum_headers(r: &mut Response, req: &Request, info: &ObjectInfo) {
    if !req.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("enabled")) {
        return;
    }
    for algorithm in checksum::ALL {
        if let Some(v) = info.checksums.get(algorithm.name()) {
            r.header(algorithm.header(), v.clone());
        }
    }
}

pub async fn get(objects: &Rc<ObjectLayer>, req: &Request, t: &Target, head_only: bool) -> Result<Response, Error> {
    let mut range = match req.header("range") {
        Some(v) => parse_range(v)?,
        None => None,
    };
    if let Some(n) = t.q("partNumber") {
        // One part of a multipart object, as the parallel downloaders ask.
        let n: usize = n.parse().map_err(|_| Error::InvalidArgument("partNumber must be a number".into()))?;
        if range.is_some() {
            return Err(Error::InvalidRequest("Range and partNumber cannot both be given".into()));
        }
        let info = objects.head_object(&t.bucket, &t.key).await?;
        if n == 0 || n > info.part_sizes.len() {
            return Err(Error::InvalidPart(n as u32));
        }
        let start: u64 = info.part_sizes[..n - 1].iter().sum();
        let size = info.part_sizes[n - 1];
        if size > 0 {
            range = Some(Range::From { start, end: Some(start + size - 1) });
        }
    }
    let reader = match objects.get_object(&t.bucket, &t.key, range).await {
        Err(Error::InvalidRange { size }) if size == 0 && matches!(range, Some(Range::From { start: 0, .. })) => {
            // A range on an empty object: S3 returns the (empty) object.
            objects.get_object(&t.bucket, &t.key, None).await?
        }
        other => other?,
    };
    let info = reader.info().clone();
    check_conditions(req, &info)?;
    let mut r = Response::new(200);
    object_headers(&mut r, &info);
    if range.is_none() {
        // A checksum describes the whole object, never a range of it.
        checksum_headers(&mut r, req, &info);
    }
    if let Some(range) = range
        && info.size > 0
    {
        let (start, len) = range.resolve(info.size)?;
        r.status = 206;
        r.header("content-range", format!("bytes {start}-{}/{}", start + len - 1, info.size));
    }
    // response-* query parameters override headers on GET (presigned downloads).
    for (param, header) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(v) = t.q(param) {
            r.headers.retain(|(n, _)| n != header);
            r.header(header, v);
        }
    }
    if head_only {
        r.header("content-length", reader.remaining().to_string());
        drop(reader);
    } else {
        r.body = ResponseBody::Object(Box::new(reader));
    }
    Ok(r)
}

/// `x-amz-copy-source: /bucket/key` (URL-encoded, optional leading slash).
pub(super) fn copy_source(req: &Request) -> Result<(String, String), Error> {
    let raw = req.header("x-amz-copy-source").unwrap_or_default();
    let raw = raw.split('?').next().unwrap_or_default();
    let decoded = percent_decode(raw, false)?;
    let decoded = decoded.trim_start_matches('/');
    let (b, k) = decoded
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| Error::InvalidArgument("x-amz-copy-source must be bucket/key".into()))?;
    Ok((b.to_string(), k.to_string()))
}

pub async fn copy(objects: &Rc<ObjectLayer>, req: &Request, t: &Target) -> Result<Response, Error> {
    let (src_bucket, src_key) = copy_source(req)?;
    let src = objects.head_object(&src_bucket, &src_key).await?;
    // copy-source conditions, checked on the source.
    if let Some(m) = req.header("x-amz-copy-source-if-match")
        && !etag_matches(m, &src.etag)
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(m) = req.header("x-amz-copy-source-if-none-match")
        && etag_matches(m, &src.etag)
    {
        return Err(Error::PreconditionFailed);
    }
    let modified = src.mod_time_ns / 1_000_000_000;
    if req.header("x-amz-copy-source-if-modified-since").and_then(date::parse_rfc1123).is_some_and(|s| modified <= s) {
        return Err(Error::PreconditionFailed);
    }
    if req.header("x-amz-copy-source-if-unmodified-since").and_then(date::parse_rfc1123).is_some_and(|s| modified > s) {
        return Err(Error::PreconditionFailed);
    }
    let replace = match req.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => return Err(Error::InvalidArgument("x-amz-metadata-directive must be COPY or REPLACE".into())),
    };
    let same = src_bucket == t.bucket && src_key == t.key;
    if same && !replace {
        return Err(Error::InvalidRequest(
            "copying an object onto itself needs x-amz-metadata-directive: REPLACE".into(),
        ));
    }
    let options = if replace { Some(put_options(req)?) } else { None };
    let info = objects.copy_object(&src_bucket, &src_key, &t.bucket, &t.key, options).await?;
    let mut w = XmlWriter::new("CopyObjectResult");
    w.elem("LastModified", &date::iso8601(info.mod_time_ns)).elem("ETag", &quoted(&info.etag));
    Ok(xml_response(w.finish()))
}

pub async fn delete(objects: &ObjectLayer, t: &Target) -> Result<Response, Error> {
    objects.delete_object(&t.bucket, &t.key).await?;
    Ok(Response::new(204))
}

pub async fn delete_many(objects: &ObjectLayer, t: &Target, body: &mut RequestBody<'_>) -> Result<Response, Error> {
    let raw = body.read_small(xml::MAX_XML_BODY_BYTES).await?;
    let doc = xml::parse(&raw)?;
    if doc.name != "Delete" {
        return Err(Error::MalformedXml);
    }
    let quiet = doc.child_text("Quiet").is_some_and(|q| q.trim() == "true");
    let keys: Vec<&str> = doc.children_named("Object").filter_map(|o| o.child_text("Key")).collect();
    if keys.len() > MAX_DELETE_KEYS {
        return Err(Error::MalformedXml);
    }
    objects.bucket_info(&t.bucket).await?;
    let mut w = XmlWriter::new("DeleteResult");
    let mut errors: BTreeMap<usize, Error> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        if let Err(e) = objects.delete_object(&t.bucket, key).await {
            errors.insert(i, e);
        }
    }
    for (i, key) in keys.iter().enumerate() {
        match errors.get(&i) {
            None if !quiet => {
                w.open("Deleted").elem("Key", key).close();
            }
            None => {}
            Some(e) => {
                w.open("Error").elem("Key", key).elem("Code", e.s3_code()).elem("Message", &e.to_string()).close();
            }
        }
    }
    Ok(xml_response(w.finish()))
}
