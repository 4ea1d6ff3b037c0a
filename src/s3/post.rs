//! POST Object: the browser form upload (`multipart/form-data`) authorised by a
//! signed policy instead of a signed request, as HTML forms and `warp put
//! --post` use it. The form's fields come first and are held (bounded); the
//! file field's bytes stream straight into the object layer.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::{Bytes, BytesMut};

use super::{RequestBody, Target, quoted};
use crate::auth::Credentials;
use crate::auth::sigv4::{self, signing_key};
use crate::error::{Error, Result};
use crate::http::date;
use crate::http::head::Request;
use crate::http::response::Response;
use crate::object::{Body, ObjectLayer, PutOptions};

/// Form fields before the file, all together.
const MAX_FIELDS_BYTES: usize = 64 << 10;
/// Fields a form may carry.
const MAX_FIELDS: usize = 64;
/// A policy document, decoded.
const MAX_POLICY_BYTES: usize = 16 << 10;

/// Whether a request is a browser form upload.
pub fn is_form_post(req: &Request) -> bool {
    req.method == "POST"
        && req.header("authorization").is_none()
        && req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn boundary(req: &Request) -> Result<String> {
    let ct = req.header("content-type").unwrap_or_default();
    ct.split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
        .find(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| Error::InvalidRequest("multipart/form-data without a boundary".into()))
}

/// Reads a multipart form from the body: fields until the file, then the file
/// as a stream.
struct Form<'b, 'a> {
    body: &'b mut RequestBody<'a>,
    buf: BytesMut,
    /// `\r\n--boundary`
    delimiter: Vec<u8>,
    ended: bool,
    file_done: bool,
    file_len: u64,
    max_len: u64,
}

impl<'b, 'a> Form<'b, 'a> {
    async fn more(&mut self) -> Result<()> {
        match self.body.next_chunk().await? {
            Some(c) => {
                self.buf.extend_from_slice(&c);
                Ok(())
            }
            None => Err(Error::MalformedPost("the form ended early".into())),
        }
    }

    fn find(&self, needle: &[u8]) -> Option<usize> {
        self.buf.windows(needle.len()).position(|w| w == needle)
    }

    /// Skips the preamble up to the first boundary line.
    async fn start(&mut self) -> Result<()> {
        let first = self.delimiter[2..].to_vec();
        loop {
            if let Some(at) = self.find(&first) {
                let _ = self.buf.split_to(at + first.len());
                return self.after_delimiter().await;
            }
            if self.buf.len() > MAX_FIELDS_BYTES {
                return Err(Error::MalformedPost("no boundary found".into()));
            }
            self.more().await?;
        }
    }

    /// After a delimiter: `--` ends the form, CRLF starts a part.
    async fn after_delimiter(&mut self) -> Result<()> {
        while self.buf.len() < 2 {
            self.more().await?;
        }
        if &self.buf[..2] == b"--" {
            self.ended = true;
            return Ok(());
        }
        if &self.buf[..2] != b"\r\n" {
            return Err(Error::MalformedPost("bad boundary line".into()));
        }
        let _ = self.buf.split_to(2);
        Ok(())
    }

    /// The next part's headers: (field name, file name).
    async fn part_headers(&mut self) -> Result<(String, Option<String>)> {
        loop {
            if let Some(at) = self.find(b"\r\n\r\n") {
                let head = self.buf.split_to(at + 4);
                let text = String::from_utf8_lossy(&head[..at]).to_string();
                let mut name = None;
                let mut filename = None;
                for line in text.split("\r\n") {
                    let Some((h, v)) = line.split_once(':') else { continue };
                    if !h.trim().eq_ignore_ascii_case("content-disposition") {
                        continue;
                    }
                    for param in v.split(';').map(str::trim) {
                        if let Some(n) = param.strip_prefix("name=") {
                            name = Some(n.trim_matches('"').to_string());
                        } else if let Some(f) = param.strip_prefix("filename=") {
                            filename = Some(f.trim_matches('"').to_string());
                        }
                    }
                }
                let name = name.ok_or_else(|| Error::MalformedPost("a form part has no name".into()))?;
                return Ok((name, filename));
            }
            if self.buf.len() > MAX_FIELDS_BYTES {
                return Err(Error::MalformedPost("form part headers too long".into()));
            }
            self.more().await?;
        }
    }

    /// A whole (small) field value.
    async fn field_value(&mut self) -> Result<String> {
        let delimiter = self.delimiter.clone();
        loop {
            if let Some(at) = self.find(&delimiter) {
                let value = self.buf.split_to(at);
                let _ = self.buf.split_to(delimiter.len());
                self.after_delimiter().await?;
                return String::from_utf8(value.to_vec())
                    .map_err(|_| Error::MalformedPost("a field is not UTF-8".into()));
            }
            if self.buf.len() > MAX_FIELDS_BYTES {
                return Err(Error::MalformedPost("form fields larger than 64 KiB".into()));
            }
            self.more().await?;
        }
    }
}

impl Body for Form<'_, '_> {
    /// The file's bytes, up to the next delimiter.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.file_done {
            return Ok(None);
        }
        loop {
            let delimiter = self.delimiter.clone();
            if let Some(at) = self.find(&delimiter) {
                let data = self.buf.split_to(at).freeze();
                let _ = self.buf.split_to(delimiter.len());
                self.after_delimiter().await?;
                self.file_done = true;
                return self.count(data).map(Some);
            }
            // Keep a possible partial delimiter at the end for the next round.
            let keep = delimiter.len() - 1;
            if self.buf.len() > keep {
                let data = self.buf.split_to(self.buf.len() - keep).freeze();
                return self.count(data).map(Some);
            }
            self.more().await?;
        }
    }
}

impl Form<'_, '_> {
    fn count(&mut self, data: Bytes) -> Result<Bytes> {
        self.file_len += data.len() as u64;
        if self.file_len > self.max_len {
            return Err(Error::EntityTooLarge(self.max_len));
        }
        Ok(data)
    }
}

/// A policy condition on a form field.
enum Condition {
    Eq(String, String),
    StartsWith(String, String),
    LengthRange(u64, u64),
}

fn parse_policy(policy_b64: &str) -> Result<(i64, Vec<Condition>)> {
    let bad = |why: &str| Error::MalformedPost(format!("policy: {why}"));
    let raw = base64::engine::general_purpose::STANDARD.decode(policy_b64.trim()).map_err(|_| bad("not base64"))?;
    if raw.len() > MAX_POLICY_BYTES {
        return Err(bad("too large"));
    }
    let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
    let expiration = doc
        .get("expiration")
        .and_then(|e| e.as_str())
        .and_then(date::parse_iso8601)
        .ok_or_else(|| bad("no valid expiration"))?;
    let mut conditions = Vec::new();
    for c in doc.get("conditions").and_then(|c| c.as_array()).ok_or_else(|| bad("no conditions"))? {
        match c {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let v = v.as_str().ok_or_else(|| bad("condition value is not a string"))?;
                    conditions.push(Condition::Eq(k.to_ascii_lowercase(), v.to_string()));
                }
            }
            serde_json::Value::Array(items) => {
                let op = items.first().and_then(|o| o.as_str()).unwrap_or_default().to_ascii_lowercase();
                match op.as_str() {
                    "eq" | "starts-with" => {
                        let field = items.get(1).and_then(|f| f.as_str()).ok_or_else(|| bad("condition field"))?;
                        let field = field.strip_prefix('$').ok_or_else(|| bad("field must start with $"))?;
                        let value = items.get(2).and_then(|v| v.as_str()).ok_or_else(|| bad("condition value"))?;
                        let field = field.to_ascii_lowercase();
                        conditions.push(if op == "eq" {
                            Condition::Eq(field, value.to_string())
                        } else {
                            Condition::StartsWith(field, value.to_string())
                        });
                    }
                    "content-length-range" => {
                        let n = |i: usize| items.get(i).and_then(|v| v.as_u64()).ok_or_else(|| bad("length range"));
                        conditions.push(Condition::LengthRange(n(1)?, n(2)?));
                    }
                    _ => return Err(bad("unknown condition")),
                }
            }
            _ => return Err(bad("a condition is neither an object nor an array")),
        }
    }
    Ok((expiration, conditions))
}

/// Fields that are not checked against the policy (they carry it).
fn exempt(name: &str) -> bool {
    matches!(name, "policy" | "x-amz-signature" | "signature" | "awsaccesskeyid" | "file")
        || name.starts_with("x-ignore-")
}

/// Checks the form's signature over its policy.
fn verify_signature(fields: &BTreeMap<String, String>, creds: &Credentials) -> Result<()> {
    let policy = fields.get("policy").ok_or_else(|| Error::AccessDenied("the form has no policy".into()))?;
    if let Some(signature) = fields.get("x-amz-signature") {
        if fields.get("x-amz-algorithm").map(String::as_str) != Some(sigv4::ALGORITHM) {
            return Err(Error::MalformedPost("x-amz-algorithm must be AWS4-HMAC-SHA256".into()));
        }
        let credential =
            fields.get("x-amz-credential").ok_or_else(|| Error::MalformedPost("no x-amz-credential".into()))?;
        let parts: Vec<&str> = credential.split('/').collect();
        if parts.len() != 5 || parts[3] != "s3" || parts[4] != "aws4_request" {
            return Err(Error::MalformedPost("bad x-amz-credential".into()));
        }
        if parts[0] != creds.access_key {
            return Err(Error::InvalidAccessKeyId);
        }
        let key = signing_key(&creds.secret_key, parts[1], parts[2], "s3");
        if !sigv4::verify(&key, policy, signature) {
            return Err(Error::SignatureDoesNotMatch);
        }
        return Ok(());
    }
    if let (Some(access), Some(signature)) = (fields.get("awsaccesskeyid"), fields.get("signature")) {
        if *access != creds.access_key {
            return Err(Error::InvalidAccessKeyId);
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, creds.secret_key.as_bytes());
        let sig =
            base64::engine::general_purpose::STANDARD.decode(signature).map_err(|_| Error::SignatureDoesNotMatch)?;
        return ring::hmac::verify(&key, policy.as_bytes(), &sig).map_err(|_| Error::SignatureDoesNotMatch);
    }
    Err(Error::AccessDenied("the form is not signed".into()))
}

fn check_policy(conditions: &[Condition], fields: &BTreeMap<String, String>) -> Result<Option<(u64, u64)>> {
    let denied = |why: String| Error::AccessDenied(format!("Invalid according to Policy: {why}"));
    let mut range = None;
    let mut covered: Vec<&str> = Vec::new();
    for c in conditions {
        match c {
            Condition::Eq(f, v) => {
                covered.push(f);
                if fields.get(f.as_str()).map(String::as_str).unwrap_or_default() != v {
                    return Err(denied(format!("condition failed: [\"eq\", \"${f}\", \"{v}\"]")));
                }
            }
            Condition::StartsWith(f, v) => {
                covered.push(f);
                if !fields.get(f.as_str()).map(String::as_str).unwrap_or_default().starts_with(v.as_str()) {
                    return Err(denied(format!("condition failed: [\"starts-with\", \"${f}\", \"{v}\"]")));
                }
            }
            Condition::LengthRange(lo, hi) => range = Some((*lo, *hi)),
        }
    }
    for name in fields.keys() {
        if !exempt(name) && name != "bucket" && !covered.contains(&name.as_str()) {
            return Err(denied(format!("extra input field: {name}")));
        }
    }
    Ok(range)
}

pub async fn post_object(
    objects: &ObjectLayer,
    creds: &Credentials,
    req: &Request,
    t: &Target,
    body: &mut RequestBody<'_>,
) -> Result<Response> {
    let mut delimiter = b"\r\n--".to_vec();
    delimiter.extend_from_slice(boundary(req)?.as_bytes());
    let mut form = Form {
        body,
        buf: BytesMut::new(),
        delimiter,
        ended: false,
        file_done: false,
        file_len: 0,
        max_len: crate::object::MAX_OBJECT_BYTES,
    };
    form.start().await?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut filename = None;
    while !form.ended {
        let (name, file) = form.part_headers().await?;
        if name.eq_ignore_ascii_case("file") {
            filename = Some(file.unwrap_or_default());
            break;
        }
        if fields.len() >= MAX_FIELDS {
            return Err(Error::MalformedPost("too many form fields".into()));
        }
        let value = form.field_value().await?;
        fields.insert(name.to_ascii_lowercase(), value);
    }
    let filename = filename.ok_or_else(|| Error::MalformedPost("the form has no file field".into()))?;
    fields.insert("bucket".into(), t.bucket.clone());
    verify_signature(&fields, creds)?;
    let (expiration, conditions) = parse_policy(fields.get("policy").map(String::as_str).unwrap_or_default())?;
    if date::now_secs() > expiration {
        return Err(Error::AccessDenied("Invalid according to Policy: Policy expired".into()));
    }
    let key = fields.get("key").ok_or_else(|| Error::MalformedPost("the form has no key field".into()))?.clone();
    let key = key.replace("${filename}", &filename);
    fields.insert("key".into(), key.clone());
    let range = check_policy(&conditions, &fields)?;
    if let Some((_, hi)) = range {
        form.max_len = hi;
    }
    let mut opts = PutOptions { content_type: fields.get("content-type").cloned(), ..Default::default() };
    for (name, value) in &fields {
        if let Some(m) = name.strip_prefix("x-amz-meta-") {
            opts.user_meta.insert(m.to_string(), value.clone());
        } else if ["cache-control", "content-disposition", "content-encoding", "expires"].contains(&name.as_str()) {
            opts.headers.insert(name.clone(), value.clone());
        }
    }
    let info = objects.put_object(&t.bucket, &key, &mut form, opts).await?;
    if let Some((lo, _)) = range
        && info.size < lo
    {
        objects.delete_object(&t.bucket, &key).await?;
        return Err(Error::EntityTooSmall(0));
    }
    let location = format!("/{}/{}", t.bucket, crate::auth::sigv4::uri_encode(&key, true));
    let mut r = match fields.get("success_action_status").map(String::as_str) {
        Some("200") => Response::new(200),
        Some("201") => {
            let mut w = super::xml::XmlWriter::plain("PostResponse");
            w.elem("Location", &location).elem("Bucket", &t.bucket).elem("Key", &key).elem("ETag", &quoted(&info.etag));
            Response::with_body(201, "application/xml", w.finish())
        }
        _ => Response::new(204),
    };
    r.header("etag", quoted(&info.etag)).header("location", location);
    Ok(r)
}
