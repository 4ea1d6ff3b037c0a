//! Bucket-level operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, GetBucketVersioning, and the object listings (ListObjects
//! v1 and v2, ListObjectVersions for unversioned buckets).

use base64::Engine;

use super::xml::{self, XmlWriter};
use super::{Frontend, RequestBody, Target, quoted, xml_response};
use crate::error::Error;
use crate::http::date;
use crate::http::response::Response;
use crate::object::{ListOptions, ListResult, ObjectLayer};

/// The owner shown in listings: basalt has one user, the root.
const OWNER_ID: &str = "02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4";
const OWNER_NAME: &str = "basalt";

pub async fn list_buckets(objects: &ObjectLayer, _fe: &Frontend) -> Result<Response, Error> {
    let buckets = objects.list_buckets().await?;
    let mut w = XmlWriter::new("ListAllMyBucketsResult");
    w.open("Owner").elem("ID", OWNER_ID).elem("DisplayName", OWNER_NAME).close();
    w.open("Buckets");
    for b in buckets {
        w.open("Bucket").elem("Name", &b.name).elem("CreationDate", &date::iso8601(b.created_ns)).close();
    }
    w.close();
    Ok(xml_response(w.finish()))
}

pub fn location(fe: &Frontend) -> Response {
    let mut w = XmlWriter::new("LocationConstraint");
    // S3 answers an empty constraint for us-east-1.
    if fe.region != "us-east-1" {
        w.text(&fe.region);
    }
    xml_response(w.finish())
}

pub fn versioning() -> Response {
    xml_response(XmlWriter::new("VersioningConfiguration").finish())
}

pub async fn head_bucket(objects: &ObjectLayer, t: &Target) -> Result<Response, Error> {
    objects.bucket_info(&t.bucket).await?;
    Ok(Response::new(200))
}

pub async fn create_bucket(objects: &ObjectLayer, t: &Target, body: &mut RequestBody<'_>) -> Result<Response, Error> {
    let raw = body.read_small(xml::MAX_XML_BODY_BYTES).await?;
    if !raw.iter().all(u8::is_ascii_whitespace) {
        // CreateBucketConfiguration: any location is accepted; the body must parse.
        let doc = xml::parse(&raw)?;
        if doc.name != "CreateBucketConfiguration" {
            return Err(Error::MalformedXml);
        }
    }
    objects.make_bucket(&t.bucket).await?;
    let mut r = Response::new(200);
    r.header("location", format!("/{}", t.bucket));
    Ok(r)
}

pub async fn delete_bucket(objects: &ObjectLayer, t: &Target) -> Result<Response, Error> {
    objects.delete_bucket(&t.bucket).await?;
    Ok(Response::new(204))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    V1,
    V2,
    Versions,
}

pub async fn list_objects(objects: &ObjectLayer, t: &Target, kind: Listing) -> Result<Response, Error> {
    let prefix = t.q("prefix").unwrap_or_default().to_string();
    let delimiter = t.q("delimiter").filter(|d| !d.is_empty()).map(String::from);
    let max_keys = match t.q("max-keys") {
        Some(v) => v.parse::<i64>().map_err(|_| Error::InvalidArgument("max-keys must be a number".into()))?,
        None => 1000,
    };
    if max_keys < 0 {
        return Err(Error::InvalidArgument("max-keys must not be negative".into()));
    }
    let url_encode = match t.q("encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => return Err(Error::InvalidArgument("encoding-type must be url".into())),
    };
    let token = t.q("continuation-token");
    let start_after = match kind {
        Listing::V2 => match token {
            Some(tok) => decode_token(tok)?,
            None => t.q("start-after").unwrap_or_default().to_string(),
        },
        Listing::V1 => t.q("marker").unwrap_or_default().to_string(),
        Listing::Versions => t.q("key-marker").unwrap_or_default().to_string(),
    };
    let result = if max_keys == 0 {
        objects.bucket_info(&t.bucket).await?;
        crate::object::ListResult::default()
    } else {
        let opts = ListOptions {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            start_after,
            max_keys: max_keys as usize,
        };
        objects.list_objects(&t.bucket, &opts).await?
    };
    Ok(xml_response(listing_xml(&t.bucket, &t.query, kind, max_keys, url_encode, result)))
}

/// The XML body of a listing answering `query` (public for `benches/frontend.rs`,
/// which times it on 1,000 keys).
pub fn listing_xml(
    bucket: &str,
    query: &[(String, String)],
    kind: Listing,
    max_keys: i64,
    url_encode: bool,
    mut result: ListResult,
) -> String {
    let q = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let prefix = q("prefix").unwrap_or_default();
    let delimiter = q("delimiter").filter(|d| !d.is_empty());
    let token = q("continuation-token");
    let enc = |s: &str| if url_encode { crate::auth::sigv4::uri_encode(s, true) } else { s.to_string() };
    let root = if kind == Listing::Versions { "ListVersionsResult" } else { "ListBucketResult" };
    let mut w = XmlWriter::new(root);
    w.elem("Name", bucket).elem("Prefix", &enc(prefix));
    match kind {
        Listing::V2 => {
            w.elem("KeyCount", &(result.objects.len() + result.prefixes.len()).to_string());
            if let Some(tok) = token {
                w.elem("ContinuationToken", tok);
            }
            if let Some(sa) = q("start-after") {
                w.elem("StartAfter", &enc(sa));
            }
        }
        Listing::V1 => {
            w.elem("Marker", &enc(q("marker").unwrap_or_default()));
        }
        Listing::Versions => {
            w.elem("KeyMarker", &enc(q("key-marker").unwrap_or_default())).elem("VersionIdMarker", "");
        }
    }
    w.elem("MaxKeys", &max_keys.to_string());
    if let Some(d) = delimiter {
        w.elem("Delimiter", &enc(d));
    }
    if url_encode {
        w.elem("EncodingType", "url");
    }
    w.elem("IsTruncated", if result.is_truncated { "true" } else { "false" });
    if let Some(next) = result.next_marker.take().filter(|_| result.is_truncated) {
        match kind {
            Listing::V2 => w.elem("NextContinuationToken", &encode_token(&next)),
            Listing::V1 => w.elem("NextMarker", &enc(&next)),
            Listing::Versions => w.elem("NextKeyMarker", &enc(&next)).elem("NextVersionIdMarker", "null"),
        };
    }
    let fetch_owner = kind != Listing::V2 || q("fetch-owner") == Some("true");
    for o in &result.objects {
        w.open(if kind == Listing::Versions { "Version" } else { "Contents" });
        w.elem("Key", &enc(&o.key));
        if kind == Listing::Versions {
            w.elem("VersionId", "null").elem("IsLatest", "true");
        }
        w.elem("LastModified", &date::iso8601(o.mod_time_ns))
            .elem("ETag", &quoted(&o.etag))
            .elem("Size", &o.size.to_string())
            .elem("StorageClass", "STANDARD");
        if fetch_owner {
            w.open("Owner").elem("ID", OWNER_ID).elem("DisplayName", OWNER_NAME).close();
        }
        w.close();
    }
    for p in &result.prefixes {
        w.open("CommonPrefixes").elem("Prefix", &enc(p)).close();
    }
    w.finish()
}

/// Continuation tokens are opaque to clients: the marker key, base64url.
fn encode_token(marker: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker.as_bytes())
}

fn decode_token(token: &str) -> Result<String, Error> {
    let bad = || Error::InvalidArgument("the continuation token is not valid".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}
