//! The web console: a login page and a small application for buckets, objects
//! and the cluster's state, served from the binary on the S3 port (and, with
//! `--console-address`, on a port of its own).
//!
//! The S3 front end hands a request here before authenticating it when
//! [`claims`] says it is the console's: an unsigned request under `/console`, or
//! a browser's unsigned `GET /` (redirected to `/console/`). A signed request is
//! always S3's, so a bucket named `console` keeps working for S3 clients.
//!
//! Files: [`session`] (tokens, cookies, CSRF, logout), [`limiter`] (login
//! throttling), [`api`] (the JSON calls and the S3 pass-through the page uses),
//! [`cluster`] (the cluster page's data), [`assets`] (embedded HTML, CSS, JS).
//! This file routes pages and sets the security headers every answer carries.

mod api;
pub mod assets;
pub mod cluster;
pub mod limiter;
pub mod session;

use std::rc::Rc;
use std::time::Instant;

use crate::auth::Credentials;
use crate::http::body::HttpBody;
use crate::http::head::{Request, parse_query};
use crate::http::response::Response;
use crate::runtime::CoreCtx;
use crate::s3::Frontend;

/// Bytes of an unread request body read and dropped to keep the connection
/// (pages take no body; anything bigger closes the connection instead).
const DRAIN_MAX_BYTES: u64 = 64 << 10;

/// The policy of the console's pages: only our own scripts, styles and API; no
/// inline code, no framing, no forms to elsewhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                        connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console needs besides the S3 front end's credentials; fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a session lasts (`BASALT_CONSOLE_SESSION_TTL`).
    pub session_ttl_secs: u64,
    /// This node's S3 endpoint as shown on the cluster page.
    pub endpoint: String,
    /// Drive names (paths) by drive index.
    pub drives: Vec<String>,
    /// The S3 port, for share links made on a console-only listener.
    pub s3_port: u16,
}

/// The console of one node, shared by its cores.
pub struct Console {
    pub(crate) settings: Settings,
    pub(crate) sessions: session::Sessions,
    pub(crate) limiter: limiter::Limiter,
    pub(crate) started: Instant,
}

impl Console {
    /// `salt` is the same on every node of a deployment (sessions work on any node).
    pub fn new(creds: &Credentials, salt: &str, settings: Settings) -> Console {
        Console {
            sessions: session::Sessions::new(creds, salt, settings.session_ttl_secs),
            limiter: limiter::Limiter::default(),
            started: Instant::now(),
            settings,
        }
    }
}

/// Whether the console answers this request rather than S3. On a console-only
/// listener it answers everything.
pub fn claims(req: &Request, console_only: bool) -> bool {
    if console_only {
        return true;
    }
    if req.header("authorization").is_some() || signed_query(&req.raw_query) || form_upload(req) {
        return false;
    }
    is_console_path(&req.raw_path) || is_browser_root(req)
}

fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// A browser opening the server's address: `GET /` asking for HTML.
fn is_browser_root(req: &Request) -> bool {
    req.method == "GET"
        && req.raw_path == "/"
        && req.header("accept").is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
}

/// A presigned URL (SigV4 or V2) is S3's whatever its path.
fn signed_query(raw: &str) -> bool {
    const SIGNED: [&str; 4] = ["X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId"];
    match parse_query(raw) {
        Ok(q) => q.iter().any(|(n, _)| SIGNED.contains(&n.as_str())),
        // Let S3 answer what it cannot parse.
        Err(_) => true,
    }
}

/// A POST form upload carries its signature in the body; it is S3's.
fn form_upload(req: &Request) -> bool {
    req.method == "POST"
        && req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Serves a console request. Returns the response and whether the connection
/// can be reused.
pub async fn serve(
    ctx: &Rc<CoreCtx>,
    fe: &Frontend,
    req: &Request,
    mut http_body: HttpBody<'_>,
    request_id: &str,
) -> (Response, bool) {
    if let Some(rest) = req.raw_path.strip_prefix("/console/api/") {
        return api::serve(ctx, fe, req, http_body, request_id, rest).await;
    }
    let mut response = page(&fe.console, req);
    secure_page(&mut response);
    (response, http_body.drain(DRAIN_MAX_BYTES).await)
}

/// Pages and static files.
fn page(console: &Console, req: &Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::with_body(405, "text/plain; charset=utf-8", "method not allowed");
        r.header("allow", "GET, HEAD");
        return r;
    }
    let signed_in = || api::session_of(console, req).is_some();
    match req.raw_path.as_str() {
        "/" | "/console" => redirect("/console/"),
        "/console/" if signed_in() => html(assets::APP_HTML),
        "/console/" => redirect("/console/login"),
        "/console/login" if signed_in() => redirect("/console/"),
        "/console/login" => html(assets::LOGIN_HTML),
        path => match path.strip_prefix("/console/assets/").and_then(assets::find) {
            Some(asset) => static_file(req, asset),
            None => Response::with_body(404, "text/plain; charset=utf-8", "not found"),
        },
    }
}

fn redirect(to: &str) -> Response {
    let mut r = Response::new(302);
    r.header("location", to);
    r
}

fn html(body: &'static str) -> Response {
    let mut r = Response::with_body(200, "text/html; charset=utf-8", body);
    // Pages depend on the session: never from a cache after logout.
    r.header("cache-control", "no-store");
    r
}

fn static_file(req: &Request, asset: &assets::Asset) -> Response {
    let etag = assets::etag(asset.body);
    let mut r = if req.header("if-none-match").is_some_and(|m| m.split(',').any(|t| t.trim() == etag)) {
        Response::new(304)
    } else {
        Response::with_body(200, asset.content_type, asset.body)
    };
    r.header("etag", etag).header("cache-control", "no-cache");
    r
}

/// Headers every console page and API answer carries.
fn secure_common(r: &mut Response) {
    r.header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin");
}

fn secure_page(r: &mut Response) {
    r.header("content-security-policy", PAGE_CSP);
    secure_common(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Request {
        crate::http::head::request_for_test(raw)
    }

    #[test]
    fn claims_only_unsigned_console_requests() {
        let browser = "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n";
        assert!(claims(&request(&format!("GET / HTTP/1.1\r\n{browser}\r\n")), false));
        assert!(claims(&request("GET /console/ HTTP/1.1\r\n\r\n"), false));
        assert!(claims(&request("GET /console HTTP/1.1\r\n\r\n"), false));
        assert!(claims(&request("POST /console/api/login HTTP/1.1\r\n\r\n"), false));
        // S3 keeps everything signed, even in a bucket named "console".
        assert!(!claims(&request("GET / HTTP/1.1\r\n\r\n"), false));
        assert!(!claims(&request("GET / HTTP/1.1\r\nAccept: application/xml\r\n\r\n"), false));
        assert!(!claims(
            &request(&format!("GET / HTTP/1.1\r\n{browser}Authorization: AWS4-HMAC-SHA256 x\r\n\r\n")),
            false
        ));
        assert!(!claims(&request("GET /console/k HTTP/1.1\r\nAuthorization: AWS4-HMAC-SHA256 x\r\n\r\n"), false));
        assert!(!claims(&request("GET /console/k?X-Amz-Signature=ab&X-Amz-Credential=x HTTP/1.1\r\n\r\n"), false));
        assert!(!claims(&request("GET /console/k?Signature=ab&AWSAccessKeyId=x HTTP/1.1\r\n\r\n"), false));
        assert!(!claims(&request("POST /console HTTP/1.1\r\nContent-Type: multipart/form-data; b=x\r\n\r\n"), false));
        assert!(!claims(&request("GET /consoles/x HTTP/1.1\r\n\r\n"), false));
        assert!(!claims(&request(&format!("HEAD / HTTP/1.1\r\n{browser}\r\n")), false));
        // A console-only listener answers everything.
        assert!(claims(&request("GET /bucket/key HTTP/1.1\r\n\r\n"), true));
    }
}
