//! The console's API under `/console/api/`: JSON calls for the session (login,
//! logout), listings, share links and the cluster, and `s3/...`, which runs any
//! S3 operation as the root user for a signed-in page (uploads, multipart,
//! downloads, deletes), so object bodies stream through the same code as S3's.
//!
//! Every call but login needs a valid session cookie (else 401); every call with
//! a method other than GET or HEAD also needs the session's CSRF token in the
//! `X-Basalt-CSRF` header (else 403). Requests a browser marks as cross-site
//! (`Sec-Fetch-Site`) are refused outright.

use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::session::{self, CSRF_HEADER, Session};
use super::{Console, DRAIN_MAX_BYTES, secure_common};
use crate::auth::sigv4;
use crate::error::Error;
use crate::http::body::HttpBody;
use crate::http::date;
use crate::http::head::{Request, parse_query, percent_decode};
use crate::http::response::Response;
use crate::object::{Body, ListOptions, names};
use crate::runtime::CoreCtx;
use crate::s3::{Frontend, Target};

/// JSON request bodies (login, share) are tiny; refuse anything larger.
const MAX_JSON_BODY_BYTES: usize = 8 << 10;
/// Entries per listing page when the page does not say.
const DEFAULT_PAGE_KEYS: usize = 100;
/// The most entries per listing page: S3's cap, which the object layer applies too.
const MAX_PAGE_KEYS: usize = 1000;
/// Longest Host header a share link is built on (a DNS name plus a port).
const MAX_HOST_BYTES: usize = 262;
/// What S3 pass-through answers may do if a browser renders them: nothing.
const PASSTHROUGH_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'";

/// Serves `/console/api/<rest>`.
pub async fn serve(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    mut body: HttpBody<'_>,
    request_id: &str,
    rest: &str,
) -> (Response, bool) {
    let console = &fe.console;
    let checked = check(console, req, rest);
    let (mut response, reusable) = match checked {
        Err(e) => (error_json(&e), body.drain(DRAIN_MAX_BYTES).await),
        Ok(session) => match rest.split_once('/').map_or(rest, |(first, _)| first) {
            "s3" => {
                let (mut r, reusable) = match s3_target(rest, &req.raw_query) {
                    Ok(target) => crate::s3::serve_authenticated(ctx, fe, req, target, body, request_id).await,
                    Err(e) => (error_json(&e), body.drain(DRAIN_MAX_BYTES).await),
                };
                passthrough_headers(req, &mut r);
                (r, reusable)
            }
            _ => {
                let answer = call(ctx, fe, req, &mut body, rest, session.as_ref()).await;
                let r = answer.unwrap_or_else(|e| error_json(&e));
                (r, body.drain(DRAIN_MAX_BYTES).await)
            }
        },
    };
    if !response.headers.iter().any(|(n, _)| n == "content-security-policy") {
        response.header("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
    }
    response.header("cache-control", "no-store");
    secure_common(&mut response);
    (response, reusable)
}

/// The checks before any call: not cross-site, a session (except to log in),
/// and the CSRF token on state-changing methods.
fn check(console: &Console, req: &Request, rest: &str) -> Result<Option<Session>, Error> {
    if req.header("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Err(Error::AccessDenied("cross-site requests to the console are refused".into()));
    }
    if rest == "login" {
        return Ok(None);
    }
    let session = session_of(console, req).ok_or(Error::Unauthorized("Log in to use the console."))?;
    if req.method != "GET" && req.method != "HEAD" {
        let token = req.header(CSRF_HEADER).unwrap_or_default();
        if !console.sessions.verify_csrf(&session, token) {
            return Err(Error::AccessDenied("the CSRF token is missing or wrong; reload the page".into()));
        }
    }
    Ok(Some(session))
}

/// The request's valid session, if it has one.
pub fn session_of(console: &Console, req: &Request) -> Option<Session> {
    let cookies = req.headers.iter().filter(|(n, _)| n == "cookie").map(|(_, v)| v.as_str());
    let token = session::token_from_cookies(cookies)?;
    console.sessions.verify(token, now()).ok()
}

async fn call(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    body: &mut HttpBody<'_>,
    rest: &str,
    session: Option<&Session>,
) -> Result<Response, Error> {
    let console = &fe.console;
    let m = req.method.as_str();
    match (m, rest, session) {
        ("POST", "login", _) => login(console, fe, req, body).await,
        ("POST", "logout", Some(s)) => Ok(logout(console, req, s)),
        ("GET", "session", Some(s)) => Ok(json(200, &SessionInfo::of(console, s))),
        ("GET", "buckets", Some(_)) => buckets(ctx).await,
        ("GET", "objects", Some(_)) => objects(ctx, req).await,
        ("GET", "object", Some(_)) => object(ctx, req).await,
        ("POST", "share", Some(_)) => share(ctx, fe, req, body).await,
        ("GET", "cluster", Some(_)) => Ok(json(200, &super::cluster::snapshot(ctx, console).await)),
        (_, "login" | "logout" | "session" | "buckets" | "objects" | "object" | "share" | "cluster", _) => {
            Err(Error::MethodNotAllowed)
        }
        _ => Err(Error::NotFound),
    }
}

fn now() -> u64 {
    date::now_secs().max(0) as u64
}

/// What the page learns about its session (never the token itself: that stays
/// in the HttpOnly cookie).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionInfo {
    access_key: String,
    csrf: String,
    expires_at: u64,
}

impl SessionInfo {
    fn of(console: &Console, s: &Session) -> SessionInfo {
        SessionInfo { access_key: s.access_key.clone(), csrf: console.sessions.csrf_token(s), expires_at: s.expires_at }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginForm {
    access_key: String,
    secret_key: String,
}

async fn login(console: &Console, fe: &Frontend, req: &Request, body: &mut HttpBody<'_>) -> Result<Response, Error> {
    // Without an address (never on TCP) every such client shares one record.
    let client = req.peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if let Some(wait) = console.limiter.wait(client, Instant::now()) {
        return Err(Error::TooManyRequests { retry_after_secs: whole_secs(wait) });
    }
    let form: LoginForm = read_json(req, body).await?;
    if !console.sessions.credentials_match(&fe.credentials, &form.access_key, &form.secret_key) {
        let wait = console.limiter.failed(client, Instant::now());
        // The address, never what was typed: a mistyped secret is still a secret.
        tracing::info!(client = %client, "console: failed login");
        let mut r = error_json(&Error::Unauthorized("Invalid access key or secret key."));
        if !wait.is_zero() {
            r.header("retry-after", whole_secs(wait).to_string());
        }
        return Ok(r);
    }
    console.limiter.succeeded(client);
    let (session, token) =
        console.sessions.issue(now()).map_err(|_| Error::Internal("no randomness for a session id".into()))?;
    tracing::info!(client = %client, "console: login");
    let mut r = json(200, &SessionInfo::of(console, &session));
    r.header("set-cookie", session::set_cookie(&token, console.sessions.ttl_secs(), https(req)));
    Ok(r)
}

fn logout(console: &Console, req: &Request, s: &Session) -> Response {
    console.sessions.revoke(s, now());
    let mut r = Response::new(204);
    r.header("set-cookie", session::clear_cookie(https(req)));
    r
}

fn whole_secs(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// Whether the browser reached us over HTTPS (through a TLS proxy).
fn https(req: &Request) -> bool {
    req.header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[derive(Serialize)]
struct BucketEntry {
    name: String,
    created: String,
}

async fn buckets(ctx: &Rc<CoreCtx>) -> Result<Response, Error> {
    let list = ctx.objects.list_buckets().await?;
    let buckets: Vec<BucketEntry> =
        list.into_iter().map(|b| BucketEntry { name: b.name, created: date::iso8601(b.created_ns) }).collect();
    Ok(json(200, &serde_json::json!({ "buckets": buckets })))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectEntry {
    key: String,
    size: u64,
    etag: String,
    last_modified: String,
    content_type: String,
}

#[derive(Serialize)]
struct Listing {
    bucket: String,
    prefix: String,
    folders: Vec<String>,
    objects: Vec<ObjectEntry>,
    /// Where the next page starts, when there is one.
    next: Option<String>,
}

/// `objects?bucket=B&prefix=P&after=M&max=N[&recursive=1]`: one page of a
/// bucket, folded into folders at `/` unless recursive.
async fn objects(ctx: &Rc<CoreCtx>, req: &Request) -> Result<Response, Error> {
    let query = parse_query(&req.raw_query)?;
    let q = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let bucket = q("bucket").unwrap_or_default().to_string();
    let prefix = q("prefix").unwrap_or_default().to_string();
    let max_keys = match q("max") {
        Some(v) => v.parse::<usize>().map_err(|_| Error::InvalidArgument("max must be a number".into()))?,
        None => DEFAULT_PAGE_KEYS,
    }
    .clamp(1, MAX_PAGE_KEYS);
    let recursive = q("recursive").is_some_and(|v| v == "1" || v == "true");
    let opts = ListOptions {
        prefix: prefix.clone(),
        delimiter: (!recursive).then(|| "/".to_string()),
        start_after: q("after").unwrap_or_default().to_string(),
        max_keys,
    };
    let page = ctx.objects.list_objects(&bucket, &opts).await?;
    let objects = page
        .objects
        .into_iter()
        .map(|o| ObjectEntry {
            last_modified: date::iso8601(o.mod_time_ns),
            key: o.key,
            size: o.size,
            etag: o.etag,
            content_type: o.content_type,
        })
        .collect();
    let next = if page.is_truncated { page.next_marker } else { None };
    Ok(json(200, &Listing { bucket, prefix, folders: page.prefixes, objects, next }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectDetails {
    bucket: String,
    key: String,
    size: u64,
    etag: String,
    last_modified: String,
    content_type: String,
    /// Stored standard headers (cache-control, content-encoding, ...).
    headers: std::collections::BTreeMap<String, String>,
    /// `x-amz-meta-*` without the prefix.
    metadata: std::collections::BTreeMap<String, String>,
    checksums: std::collections::BTreeMap<String, String>,
    parts: usize,
}

/// `object?bucket=B&key=K`: what the details panel shows.
async fn object(ctx: &Rc<CoreCtx>, req: &Request) -> Result<Response, Error> {
    let query = parse_query(&req.raw_query)?;
    let q = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    let info = ctx.objects.head_object(q("bucket"), q("key")).await?;
    Ok(json(
        200,
        &ObjectDetails {
            last_modified: date::iso8601(info.mod_time_ns),
            parts: info.part_sizes.len(),
            bucket: info.bucket,
            key: info.key,
            size: info.size,
            etag: info.etag,
            content_type: info.content_type,
            headers: info.headers,
            metadata: info.user_meta,
            checksums: info.checksums,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShareForm {
    bucket: String,
    key: String,
    expires_secs: i64,
}

/// A presigned GET URL for an object, signed with the root credentials, that
/// downloads (rather than displays) the object.
async fn share(ctx: &Rc<CoreCtx>, fe: &Frontend, req: &Request, body: &mut HttpBody<'_>) -> Result<Response, Error> {
    let form: ShareForm = read_json(req, body).await?;
    names::check_bucket(&form.bucket)?;
    names::check_key(&form.key)?;
    if !(1..=sigv4::MAX_PRESIGN_EXPIRY_SECS).contains(&form.expires_secs) {
        return Err(Error::InvalidArgument("a share link lasts from 1 second to 7 days".into()));
    }
    ctx.objects.head_object(&form.bucket, &form.key).await?;
    let host = share_host(req, fe.console_only, fe.console.settings.s3_port)?;
    let name = form.key.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let disposition = attachment(name);
    let now = date::now_secs();
    let path = format!("/{}/{}", form.bucket, form.key);
    let extra = [("response-content-disposition", disposition.as_str())];
    let signed = sigv4::presign(&fe.credentials, "GET", &host, &path, &extra, &fe.region, now, form.expires_secs)?;
    let scheme = if https(req) { "https" } else { "http" };
    let url = format!("{scheme}://{host}{signed}");
    Ok(json(200, &serde_json::json!({ "url": url, "expiresAt": now + form.expires_secs })))
}

/// The host a share link names: the one the browser used, but on the S3 port
/// when the page came from a console-only listener.
fn share_host(req: &Request, console_only: bool, s3_port: u16) -> Result<String, Error> {
    let host = req.header("host").unwrap_or_default();
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b);
    if host.is_empty() || host.len() > MAX_HOST_BYTES || !host.bytes().all(valid) {
        return Err(Error::InvalidRequest("the Host header cannot name a share link".into()));
    }
    if !console_only {
        return Ok(host.to_string());
    }
    let name = match host.rfind(']') {
        Some(end) => &host[..=end],
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    Ok(format!("{name}:{s3_port}"))
}

/// `attachment; filename="..."; filename*=UTF-8''...` for any key (RFC 6266).
fn attachment(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", sigv4::uri_encode(name, false))
}

/// The S3 target of `s3/<bucket>/<key>?<query>`.
fn s3_target(rest: &str, raw_query: &str) -> Result<Target, Error> {
    let path = rest.strip_prefix("s3").unwrap_or_default();
    let path = percent_decode(path, false)?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    Ok(Target { bucket: bucket.to_string(), key: key.to_string(), query: parse_query(raw_query)? })
}

/// Makes a pass-through answer inert if a browser were to render it (objects
/// are user data: an HTML object must never run in the console's origin) and
/// makes object downloads save to a file.
fn passthrough_headers(req: &Request, r: &mut Response) {
    r.header("content-security-policy", PASSTHROUGH_CSP);
    let object_get = req.method == "GET" && matches!(r.status, 200 | 206);
    if let (true, Ok(target)) = (object_get, s3_target(req.raw_path.strip_prefix("/console/api/").unwrap_or(""), ""))
        && !target.key.is_empty()
    {
        r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-disposition"));
        let name = target.key.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        r.header("content-disposition", attachment(name));
    }
}

async fn read_json<T: DeserializeOwned>(req: &Request, body: &mut HttpBody<'_>) -> Result<T, Error> {
    // A form on another site cannot send this type without a CORS preflight,
    // which the console never grants.
    if !req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
        return Err(Error::InvalidRequest("the console API takes application/json".into()));
    }
    let mut raw = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        if raw.len() + chunk.len() > MAX_JSON_BODY_BYTES {
            return Err(Error::InvalidRequest(format!("the body is larger than {MAX_JSON_BODY_BYTES} bytes")));
        }
        raw.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&raw).map_err(|_| Error::InvalidRequest("the body is not the JSON expected".into()))
}

fn json(status: u16, value: &impl Serialize) -> Response {
    // Serialising our own plain structs cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::with_body(status, "application/json", body)
}

/// An error as the page reads it: `{"code": ..., "message": ...}`.
fn error_json(e: &Error) -> Response {
    let mut r = json(e.http_status(), &serde_json::json!({ "code": e.s3_code(), "message": e.to_string() }));
    if let Error::TooManyRequests { retry_after_secs } = e {
        r.header("retry-after", retry_after_secs.to_string());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Request {
        crate::http::head::request_for_test(raw)
    }

    #[test]
    fn s3_targets() {
        let t = s3_target("s3/photos/2026/a%20b.jpg", "uploadId=x&partNumber=2").unwrap();
        assert_eq!((t.bucket.as_str(), t.key.as_str()), ("photos", "2026/a b.jpg"));
        assert_eq!((t.q("uploadId"), t.q("partNumber")), (Some("x"), Some("2")));
        let t = s3_target("s3/photos", "").unwrap();
        assert_eq!((t.bucket.as_str(), t.key.as_str()), ("photos", ""));
        let t = s3_target("s3", "").unwrap();
        assert_eq!((t.bucket.as_str(), t.key.as_str()), ("", ""));
        assert!(s3_target("s3/b/%zz", "").is_err());
    }

    #[test]
    fn share_hosts() {
        let req = request("GET / HTTP/1.1\r\nHost: store.example:9001\r\n\r\n");
        assert_eq!(share_host(&req, false, 9000).unwrap(), "store.example:9001");
        assert_eq!(share_host(&req, true, 9000).unwrap(), "store.example:9000");
        let req = request("GET / HTTP/1.1\r\nHost: [::1]:9001\r\n\r\n");
        assert_eq!(share_host(&req, true, 9000).unwrap(), "[::1]:9000");
        let req = request("GET / HTTP/1.1\r\nHost: store.example\r\n\r\n");
        assert_eq!(share_host(&req, true, 9000).unwrap(), "store.example:9000");
        let req = request("GET / HTTP/1.1\r\nHost: evil/\"x\r\n\r\n");
        assert!(share_host(&req, false, 9000).is_err());
    }

    #[test]
    fn attachments_are_quoted_safely() {
        assert_eq!(attachment("a b.txt"), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        let odd = attachment("q\"\\\r\né.txt");
        assert!(odd.starts_with("attachment; filename=\"q_____.txt\""), "{odd}");
        assert!(!odd.contains('\r') && !odd.contains('\n'));
    }
}
