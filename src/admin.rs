//! `basalt admin info|heal --endpoint URL`: the command-line side of the admin
//! API (`s3::admin`). One signed request (SigV4, root keys) over a plain
//! blocking socket; the JSON answer is rendered for a person, or printed as is
//! with `--json`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::auth::sigv4;
use crate::cluster::info::ClusterInfo;
use crate::http::head::Request;
use crate::object::HealSummary;

/// How long connecting and each read may take; a heal pass over many objects
/// answers only when done.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest answer read (an info report of many nodes is a few hundred KiB).
const MAX_ANSWER_BYTES: u64 = 16 << 20;

pub struct AdminTarget {
    /// `http://host:port`
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// `basalt admin info`: prints the report; Ok(false) when quorum is missing.
pub fn info(t: &AdminTarget, json: bool) -> Result<bool, String> {
    let body = call(t, "GET", "/minio/admin/v3/info")?;
    let info: ClusterInfo = serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))?;
    if json {
        crate::outln!("{}", String::from_utf8_lossy(&body));
    } else {
        print!("{}", info.render());
    }
    Ok(info.read_quorum && info.write_quorum)
}

/// `basalt admin heal`: runs a heal pass on the node and prints what it fixed.
pub fn heal(t: &AdminTarget, json: bool) -> Result<bool, String> {
    let body = call(t, "POST", "/minio/admin/v3/heal")?;
    let s: HealSummary = serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))?;
    if json {
        crate::outln!("{}", String::from_utf8_lossy(&body));
    } else {
        crate::outln!(
            "Heal pass: {} buckets, {} objects scanned, {} healed ({} shards rewritten), {} failed",
            s.buckets,
            s.objects_scanned,
            s.objects_healed,
            s.shards_healed,
            s.objects_failed
        );
        for e in &s.errors {
            crate::outln!("  {e}");
        }
    }
    Ok(s.objects_failed == 0)
}

/// Sends one signed request without a body; returns the body of a 200 answer.
fn call(t: &AdminTarget, method: &str, path: &str) -> Result<Vec<u8>, String> {
    let host = t
        .endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("--endpoint {:?} must be http://HOST:PORT", t.endpoint))?
        .trim_end_matches('/');
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))?;
    let now = crate::http::date::now_secs();
    let amz_date = sigv4::compact_date(now);
    let day = &amz_date[..8];
    let scope = sigv4::scope(day, &t.region);
    let key = sigv4::signing_key(&t.secret_key, day, &t.region, "s3");
    let mut req = Request {
        method: method.into(),
        raw_path: path.into(),
        raw_query: String::new(),
        headers: vec![
            ("host".into(), host.into()),
            ("x-amz-content-sha256".into(), sigv4::UNSIGNED_PAYLOAD.into()),
            ("x-amz-date".into(), amz_date.clone()),
        ],
        http10: false,
        peer: None,
    };
    let signed = sigv4::sign_request(
        &req,
        &t.access_key,
        &key,
        &scope,
        &amz_date,
        &["host", "x-amz-content-sha256", "x-amz-date"],
        sigv4::UNSIGNED_PAYLOAD,
    )
    .map_err(|e| e.to_string())?;
    req.headers.push(("authorization".into(), signed.authorization));
    let mut text = format!("{method} {path} HTTP/1.1\r\n");
    for (n, v) in &req.headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("content-length: 0\r\nconnection: close\r\n\r\n");
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot connect to {}: {e}", t.endpoint))?;
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    stream.write_all(text.as_bytes()).map_err(|e| format!("cannot send to {}: {e}", t.endpoint))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .map_err(|e| format!("cannot read the answer of {}: {e}", t.endpoint))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{} sent no HTTP answer", t.endpoint))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let body = answer[split + 4..].to_vec();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        let code = between(&text, "<Code>", "</Code>").unwrap_or("");
        let msg = between(&text, "<Message>", "</Message>").unwrap_or(&text);
        return Err(format!("{} answered {status} {code}: {msg}", t.endpoint));
    }
    Ok(body)
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}
