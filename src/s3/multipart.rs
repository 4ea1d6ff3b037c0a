//! Multipart upload operations: CreateMultipartUpload, UploadPart,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.

use super::checksum::{ChecksumBody, Expected};
use std::rc::Rc;

use super::object::{copy_source, declared_length, put_options};
use super::xml::{self, XmlWriter};
use super::{RequestBody, Target, quoted, xml_response};
use crate::error::Error;
use crate::http::date;
use crate::http::head::Request;
use crate::http::response::Response;
use crate::object::{CompletePart, ObjectLayer, Range};

fn upload_id(t: &Target) -> Result<&str, Error> {
    t.q("uploadId").ok_or_else(|| Error::InvalidArgument("uploadId is required".into()))
}

pub async fn create(objects: &ObjectLayer, req: &Request, t: &Target) -> Result<Response, Error> {
    let opts = put_options(req)?;
    let id = objects.new_multipart_upload(&t.bucket, &t.key, opts).await?;
    let mut w = XmlWriter::new("InitiateMultipartUploadResult");
    w.elem("Bucket", &t.bucket).elem("Key", &t.key).elem("UploadId", &id);
    Ok(xml_response(w.finish()))
}

pub async fn upload_part(
    objects: &Rc<ObjectLayer>,
    req: &Request,
    t: &Target,
    body: &mut RequestBody<'_>,
) -> Result<Response, Error> {
    let id = upload_id(t)?;
    let number: u32 = t
        .q("partNumber")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::InvalidArgument("partNumber must be a number from 1 to 10000".into()))?;
    if req.header("x-amz-copy-source").is_some() {
        return upload_part_copy(objects, req, t, id, number).await;
    }
    let opts = put_options(req)?;
    let size = declared_length(req)?;
    let mut body = ChecksumBody::new(body, Expected::from_request(req)?);
    let etag = objects.put_object_part(&t.bucket, &t.key, id, number, &mut body, size, opts.content_md5).await?;
    let mut r = Response::new(200);
    r.header("etag", quoted(&etag));
    Ok(r)
}

/// UploadPartCopy: a part made of (a range of) an existing object, streamed
/// through without a client round trip.
async fn upload_part_copy(
    objects: &Rc<ObjectLayer>,
    req: &Request,
    t: &Target,
    id: &str,
    number: u32,
) -> Result<Response, Error> {
    let (src_bucket, src_key) = copy_source(req)?;
    let range = match req.header("x-amz-copy-source-range") {
        None => None,
        Some(v) => {
            let spec = v.trim().strip_prefix("bytes=").ok_or_else(|| bad_copy_range(v))?;
            let (a, b) = spec.split_once('-').ok_or_else(|| bad_copy_range(v))?;
            let start: u64 = a.trim().parse().map_err(|_| bad_copy_range(v))?;
            let end: u64 = b.trim().parse().map_err(|_| bad_copy_range(v))?;
            Some(Range::From { start, end: Some(end) })
        }
    };
    let mut reader = objects.get_object(&src_bucket, &src_key, range).await?;
    if let (Some(Range::From { start, end: Some(end) }), size) = (range, reader.info().size)
        && (end < start || end >= size)
    {
        return Err(Error::InvalidRange { size });
    }
    let size = reader.remaining();
    let modified = reader.info().mod_time_ns;
    let etag = objects.put_object_part(&t.bucket, &t.key, id, number, &mut reader, Some(size), None).await?;
    let mut w = XmlWriter::new("CopyPartResult");
    w.elem("LastModified", &date::iso8601(modified)).elem("ETag", &quoted(&etag));
    Ok(xml_response(w.finish()))
}

fn bad_copy_range(v: &str) -> Error {
    Error::InvalidArgument(format!("x-amz-copy-source-range {v:?} is not bytes=first-last"))
}

pub async fn complete(objects: &ObjectLayer, t: &Target, body: &mut RequestBody<'_>) -> Result<Response, Error> {
    let id = upload_id(t)?;
    let raw = body.read_small(xml::MAX_XML_BODY_BYTES).await?;
    let doc = xml::parse(&raw)?;
    if doc.name != "CompleteMultipartUpload" {
        return Err(Error::MalformedXml);
    }
    let mut parts = Vec::new();
    for p in doc.children_named("Part") {
        let number = p.child_text("PartNumber").and_then(|n| n.trim().parse().ok()).ok_or(Error::MalformedXml)?;
        let etag = p.child_text("ETag").ok_or(Error::MalformedXml)?.trim().to_string();
        parts.push(CompletePart { number, etag });
    }
    let info = objects.complete_multipart_upload(&t.bucket, &t.key, id, &parts).await?;
    let mut w = XmlWriter::new("CompleteMultipartUploadResult");
    w.elem("Location", &format!("/{}/{}", t.bucket, t.key))
        .elem("Bucket", &t.bucket)
        .elem("Key", &t.key)
        .elem("ETag", &quoted(&info.etag));
    Ok(xml_response(w.finish()))
}

pub async fn abort(objects: &ObjectLayer, t: &Target) -> Result<Response, Error> {
    objects.abort_multipart_upload(&t.bucket, &t.key, upload_id(t)?).await?;
    Ok(Response::new(204))
}

pub async fn list_parts(objects: &ObjectLayer, t: &Target) -> Result<Response, Error> {
    let id = upload_id(t)?;
    let marker: u32 = t.q("part-number-marker").and_then(|m| m.parse().ok()).unwrap_or(0);
    let max: usize = t.q("max-parts").and_then(|m| m.parse().ok()).unwrap_or(1000);
    let (parts, truncated) = objects.list_parts(&t.bucket, &t.key, id, marker, max).await?;
    let mut w = XmlWriter::new("ListPartsResult");
    w.elem("Bucket", &t.bucket)
        .elem("Key", &t.key)
        .elem("UploadId", id)
        .elem("PartNumberMarker", &marker.to_string())
        .elem("MaxParts", &max.to_string())
        .elem("IsTruncated", if truncated { "true" } else { "false" })
        .elem("StorageClass", "STANDARD");
    if let Some(last) = parts.last().filter(|_| truncated) {
        w.elem("NextPartNumberMarker", &last.number.to_string());
    }
    for p in &parts {
        w.open("Part")
            .elem("PartNumber", &p.number.to_string())
            .elem("LastModified", &date::iso8601(p.mod_time_ns))
            .elem("ETag", &quoted(&p.etag))
            .elem("Size", &p.size.to_string())
            .close();
    }
    Ok(xml_response(w.finish()))
}

pub async fn list_uploads(objects: &ObjectLayer, t: &Target) -> Result<Response, Error> {
    let prefix = t.q("prefix").unwrap_or_default();
    let uploads = objects.list_multipart_uploads(&t.bucket, prefix).await?;
    let mut w = XmlWriter::new("ListMultipartUploadsResult");
    w.elem("Bucket", &t.bucket)
        .elem("KeyMarker", t.q("key-marker").unwrap_or_default())
        .elem("UploadIdMarker", t.q("upload-id-marker").unwrap_or_default())
        .elem("Prefix", prefix)
        .elem("MaxUploads", "1000")
        .elem("IsTruncated", "false");
    for u in &uploads {
        w.open("Upload")
            .elem("Key", &u.key)
            .elem("UploadId", &u.upload_id)
            .elem("Initiated", &date::iso8601(u.initiated_ns))
            .elem("StorageClass", "STANDARD")
            .close();
    }
    Ok(xml_response(w.finish()))
}
