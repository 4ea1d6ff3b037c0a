//! The S3 API: authenticating a request, routing it to an operation, calling the
//! object layer, and rendering the answer (XML bodies, headers, S3 errors).
//!
//! Operations are grouped by what they act on: [`service`] (buckets),
//! [`object`] (objects), [`multipart`] (uploads).

mod admin;
mod body;
mod checksum;
mod multipart;
mod object;
mod post;
mod service;
pub mod xml;

use std::rc::Rc;

pub use body::RequestBody;
pub use service::{Listing, listing_xml};

use crate::auth::Credentials;
use crate::auth::sigv2;
use crate::auth::sigv4::{self, Payload};
use crate::error::Error;
use crate::http::body::HttpBody;
use crate::http::date;
use crate::http::head::{Request, parse_query, percent_decode};
use crate::http::response::Response;
use crate::metrics::{self, Op, ScrapeAuth};
use crate::runtime::CoreCtx;
use xml::XmlWriter;

/// Bytes of an unread request body the server reads and drops to keep the
/// connection; with more left it closes the connection instead.
const DRAIN_MAX_BYTES: u64 = 256 << 10;

/// What every core's front end needs; immutable after start.
#[derive(Clone)]
pub struct Frontend {
    pub credentials: Credentials,
    pub region: String,
    /// With a domain, `bucket.<domain>` hosts address buckets (virtual-host style).
    pub domain: Option<String>,
    /// The web console, shared by the node's cores.
    pub console: std::sync::Arc<crate::console::Console>,
    /// A `--console-address` listener: the console answers every request.
    pub console_only: bool,
    /// Who may read the metrics endpoints.
    pub metrics_auth: ScrapeAuth,
}

/// The bucket named by the Host header in virtual-host style, if any.
fn host_bucket(req: &Request, domain: Option<&str>) -> Option<String> {
    let domain = domain?;
    let host = req.header("host")?;
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    let bucket = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_ascii_lowercase())
}

/// A decoded request target.
pub(crate) struct Target {
    pub bucket: String,
    pub key: String,
    pub query: Vec<(String, String)>,
}

impl Target {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    /// The resource named in error bodies.
    fn resource(&self) -> String {
        match (self.bucket.is_empty(), self.key.is_empty()) {
            (true, _) => "/".into(),
            (false, true) => format!("/{}", self.bucket),
            (false, false) => format!("/{}/{}", self.bucket, self.key),
        }
    }
}

/// Serves one request. Returns the response, whether the connection can be
/// reused (the request body was fully read), and the operation (for metrics).
pub async fn serve(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    mut http_body: HttpBody<'_>,
    request_id: &str,
) -> (Response, bool, Op) {
    // Before S3 authentication: the console's pages and API, and browsers
    // opening `/`. Signed requests are never the console's.
    if crate::console::claims(req, fe.console_only) {
        let (response, reusable) = crate::console::serve(ctx, fe, req, http_body, request_id).await;
        return (response, reusable, Op::Console);
    }
    let admitted = match admit(ctx, fe, req).await {
        Ok(Admitted::Answered(r, op)) => Err((r, op)),
        Ok(Admitted::Operation(target, payload)) => Ok((target, payload)),
        Err(e) => Err((error_response(&e, &req.raw_path, request_id), Op::Rejected)),
    };
    let (target, payload) = match admitted {
        Ok(tp) => tp,
        Err((response, op)) => {
            let reusable = http_body.drain(DRAIN_MAX_BYTES).await;
            return (response, reusable, op);
        }
    };
    let op = operation(req, &target);
    let (response, reusable) = run(ctx, fe, req, &target, RequestBody::new(http_body, &payload), request_id).await;
    (response, reusable, op)
}

/// Runs an operation for a request the console has authenticated by its
/// session cookie: as the root user, with the body unsigned.
pub(crate) async fn serve_authenticated(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    target: Target,
    http_body: HttpBody<'_>,
    request_id: &str,
) -> (Response, bool) {
    run(ctx, fe, req, &target, RequestBody::new(http_body, &Payload::Unsigned), request_id).await
}

async fn run(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    target: &Target,
    mut body: RequestBody<'_>,
    request_id: &str,
) -> (Response, bool) {
    let response = route(ctx, fe, req, target, &mut body).await;
    let reusable = body.http().drain(DRAIN_MAX_BYTES).await;
    match response {
        Ok(r) => (r, reusable),
        Err(e) => (error_response(&e, &target.resource(), request_id), reusable),
    }
}

/// What the checks before an operation decided.
enum Admitted {
    /// Answered without an operation (health and metrics endpoints).
    Answered(Response, Op),
    /// Authenticated: run the operation on this target, reading the body this way.
    Operation(Target, Payload),
}

/// Decodes the target and authenticates the request.
async fn admit(ctx: &Rc<CoreCtx>, fe: &Frontend, req: &Request) -> Result<Admitted, Error> {
    let path = percent_decode(&req.raw_path, false)?;
    if let Some(r) = health(ctx, req, &path).await {
        return Ok(Admitted::Answered(r, Op::Health));
    }
    let query = parse_query(&req.raw_query)?;
    let vhost = host_bucket(req, fe.domain.as_deref());
    // `/metrics` (GET, no query) shadows ListObjects v1 of a bucket named
    // "metrics" without parameters; SDKs list with `list-type=2`, which still works.
    if let Some(scope) = metrics::endpoint(&path)
        && req.method == "GET"
        && req.raw_query.is_empty()
        && vhost.is_none()
    {
        return Ok(Admitted::Answered(scrape(ctx, fe, req, &query, scope).await?, Op::Metrics));
    }
    if !ctx.objects.is_ready() {
        return Err(Error::NotInitialized);
    }
    // A browser form upload carries its authorisation (a signed policy) in the
    // form; post::post_object checks it before storing anything.
    let form_post = post::is_form_post(req);
    let payload =
        if form_post { Payload::Unsigned } else { authenticate(req, &query, &fe.credentials, vhost.as_deref())? };
    let (bucket, key) = match vhost {
        Some(b) => (b, path.trim_start_matches('/').to_string()),
        None => match path.trim_start_matches('/').split_once('/') {
            Some((b, k)) => (b.to_string(), k.to_string()),
            None => (path.trim_start_matches('/').to_string(), String::new()),
        },
    };
    let target = Target { bucket, key, query };
    if form_post && (target.bucket.is_empty() || !target.key.is_empty() || !target.query.is_empty()) {
        return Err(Error::AccessDenied("form uploads go to a bucket, with no sub-resource".into()));
    }
    Ok(Admitted::Operation(target, payload))
}

/// Health endpoints, unauthenticated as load balancers probe them:
/// `/minio/health/live` (the process serves HTTP), `/minio/health/ready` and
/// `/minio/health/cluster` (this node can reach write quorum of every set), and
/// `/minio/health/cluster/read` (read quorum).
async fn health(ctx: &Rc<CoreCtx>, req: &Request, path: &str) -> Option<Response> {
    if req.method != "GET" && req.method != "HEAD" {
        return None;
    }
    let ok = match path {
        "/minio/health/live" => return Some(Response::new(200)),
        "/minio/health/ready" | "/minio/health/cluster" => ctx.objects.has_quorum(true),
        "/minio/health/cluster/read" => ctx.objects.has_quorum(false),
        _ => return None,
    };
    // A single node also checks its drives answer; a cluster node's links say it.
    let ok = ok && (ctx.core.cluster().is_some() || ctx.objects.list_buckets().await.is_ok());
    Some(Response::new(if ok { 200 } else { 503 }))
}

/// The metrics endpoints: public, or for a signed S3 request or a bearer JWT
/// (`mc admin prometheus generate`) made with the root credentials.
async fn scrape(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    query: &[(String, String)],
    scope: metrics::Scope,
) -> Result<Response, Error> {
    if fe.metrics_auth == ScrapeAuth::Jwt {
        match req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")) {
            Some(token) => metrics::jwt::verify(token, &fe.credentials, date::now_secs())
                .map_err(|e| Error::AccessDenied(e.to_string()))?,
            None => {
                authenticate(req, query, &fe.credentials, None)?;
            }
        }
    }
    let text = metrics::scrape(ctx, scope).await;
    Ok(Response::with_body(200, "text/plain; version=0.0.4; charset=utf-8", text))
}

/// Checks the request's signature; anonymous requests are refused.
fn authenticate(
    req: &Request,
    query: &[(String, String)],
    creds: &Credentials,
    vhost_bucket: Option<&str>,
) -> Result<Payload, Error> {
    let now = date::now_secs();
    if let Some(auth) = req.header("authorization") {
        if auth.starts_with(sigv4::ALGORITHM) {
            return sigv4::verify_header(req, creds, now);
        }
        if auth.starts_with("AWS ") {
            // V2 signs no payload hash; Content-MD5, when sent, still guards the body.
            sigv2::verify_header(req, query, creds, now, vhost_bucket)?;
            return Ok(Payload::Unsigned);
        }
        return Err(Error::AuthorizationMalformed("unsupported authorization type".into()));
    }
    if query.iter().any(|(n, _)| n == "X-Amz-Signature") {
        return sigv4::verify_presigned(req, query, creds, now);
    }
    if query.iter().any(|(n, _)| n == "Signature") {
        sigv2::verify_presigned(req, query, creds, now, vhost_bucket)?;
        return Ok(Payload::Unsigned);
    }
    Err(Error::AccessDenied("anonymous requests are not allowed".into()))
}

async fn route(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    t: &Target,
    body: &mut RequestBody<'_>,
) -> Result<Response, Error> {
    let objects = &ctx.objects;
    let m = req.method.as_str();
    if admin::is_admin(&t.bucket, &t.key) {
        return admin::route(ctx, m, &t.key).await;
    }
    if t.bucket.is_empty() {
        return match m {
            "GET" => service::list_buckets(objects, fe).await,
            _ => Err(Error::MethodNotAllowed),
        };
    }
    if t.key.is_empty() {
        return match m {
            "GET" if t.has("location") => Ok(service::location(fe)),
            "GET" if t.has("versioning") => Ok(service::versioning()),
            "GET" if t.has("uploads") => multipart::list_uploads(objects, t).await,
            "GET" if t.has("versions") => service::list_objects(objects, t, service::Listing::Versions).await,
            "GET" if t.q("list-type") == Some("2") => service::list_objects(objects, t, service::Listing::V2).await,
            "GET" if unsupported(t) => Err(Error::NotImplemented(subresource(t))),
            "GET" => service::list_objects(objects, t, service::Listing::V1).await,
            "HEAD" => service::head_bucket(objects, t).await,
            "PUT" if unsupported(t) => Err(Error::NotImplemented(subresource(t))),
            "PUT" => service::create_bucket(objects, t, body).await,
            "DELETE" if unsupported(t) => Err(Error::NotImplemented(subresource(t))),
            "DELETE" => service::delete_bucket(objects, t).await,
            "POST" if t.has("delete") => object::delete_many(objects, t, body).await,
            "POST" if post::is_form_post(req) => post::post_object(objects, &fe.credentials, req, t, body).await,
            _ => Err(Error::MethodNotAllowed),
        };
    }
    match m {
        "GET" if t.has("uploadId") => multipart::list_parts(objects, t).await,
        "GET" if unsupported(t) => Err(Error::NotImplemented(subresource(t))),
        "GET" => object::get(objects, req, t, false).await,
        "HEAD" => object::get(objects, req, t, true).await,
        "PUT" if t.has("uploadId") || t.has("partNumber") => multipart::upload_part(objects, req, t, body).await,
        "PUT" if unsupported(t) => Err(Error::NotImplemented(subresource(t))),
        "PUT" if req.header("x-amz-copy-source").is_some() => object::copy(objects, req, t).await,
        "PUT" => object::put(objects, req, t, body).await,
        "POST" if t.has("uploads") => multipart::create(objects, req, t).await,
        "POST" if t.has("uploadId") => multipart::complete(objects, t, body).await,
        "DELETE" if t.has("uploadId") => multipart::abort(objects, t).await,
        "DELETE" if unsupported(t) => Err(Error::NotImplemented(subresource(t))),
        "DELETE" => object::delete(objects, t).await,
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The operation `route` will run, named for metrics. Keep in step with
/// `route`: the same conditions in the same order.
pub(crate) fn operation(req: &Request, t: &Target) -> Op {
    let m = req.method.as_str();
    if admin::is_admin(&t.bucket, &t.key) {
        return Op::Admin;
    }
    if t.bucket.is_empty() {
        return if m == "GET" { Op::ListBuckets } else { Op::Unknown };
    }
    if t.key.is_empty() {
        return match m {
            "GET" if t.has("location") => Op::GetBucketLocation,
            "GET" if t.has("versioning") => Op::GetBucketVersioning,
            "GET" if t.has("uploads") => Op::ListMultipartUploads,
            "GET" if t.has("versions") => Op::ListObjectVersions,
            "GET" if t.q("list-type") == Some("2") => Op::ListObjectsV2,
            "GET" | "PUT" | "DELETE" if unsupported(t) => Op::NotImplemented,
            "GET" => Op::ListObjectsV1,
            "HEAD" => Op::HeadBucket,
            "PUT" => Op::PutBucket,
            "DELETE" => Op::DeleteBucket,
            "POST" if t.has("delete") => Op::DeleteMultipleObjects,
            "POST" if post::is_form_post(req) => Op::PostPolicyBucket,
            _ => Op::Unknown,
        };
    }
    match m {
        "GET" if t.has("uploadId") => Op::ListObjectParts,
        "GET" if unsupported(t) => Op::NotImplemented,
        "GET" => Op::GetObject,
        "HEAD" => Op::HeadObject,
        "PUT" if t.has("uploadId") || t.has("partNumber") => {
            if req.header("x-amz-copy-source").is_some() {
                Op::CopyObjectPart
            } else {
                Op::PutObjectPart
            }
        }
        "PUT" if unsupported(t) => Op::NotImplemented,
        "PUT" if req.header("x-amz-copy-source").is_some() => Op::CopyObject,
        "PUT" => Op::PutObject,
        "POST" if t.has("uploads") => Op::NewMultipartUpload,
        "POST" if t.has("uploadId") => Op::CompleteMultipartUpload,
        "DELETE" if t.has("uploadId") => Op::AbortMultipartUpload,
        "DELETE" if unsupported(t) => Op::NotImplemented,
        "DELETE" => Op::DeleteObject,
        _ => Op::Unknown,
    }
}

/// Sub-resources basalt does not implement; answered with `NotImplemented`
/// rather than a wrong answer.
const UNSUPPORTED: [&str; 16] = [
    "acl",
    "policy",
    "tagging",
    "lifecycle",
    "cors",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "retention",
    "legal-hold",
    "torrent",
    "restore",
    "select",
];

fn unsupported(t: &Target) -> bool {
    t.query.iter().any(|(n, _)| UNSUPPORTED.contains(&n.as_str()))
}

fn subresource(t: &Target) -> String {
    t.query.iter().find(|(n, _)| UNSUPPORTED.contains(&n.as_str())).map(|(n, _)| n.clone()).unwrap_or_default()
}

/// An S3 error body.
pub fn error_response(e: &Error, resource: &str, request_id: &str) -> Response {
    if let Error::NotModified = e {
        return Response::new(304);
    }
    let mut w = XmlWriter::plain("Error");
    w.elem("Code", e.s3_code()).elem("Message", &e.to_string()).elem("Resource", resource);
    if let Error::NoSuchBucket(b) | Error::BucketNotEmpty(b) | Error::BucketAlreadyExists(b) = e {
        w.elem("BucketName", b);
    }
    w.elem("RequestId", request_id);
    let mut r = Response::with_body(e.http_status(), "application/xml", w.finish());
    if let Error::InvalidRange { size } = e {
        r.header("content-range", format!("bytes */{size}"));
    }
    r
}

/// `"etag"` as S3 sends it.
pub(crate) fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

pub(crate) fn xml_response(doc: String) -> Response {
    Response::with_body(200, "application/xml", doc)
}
