//! AWS Signature Version 4 for S3: in the `Authorization` header and in
//! presigned query strings. Builds the canonical request from the request as
//! received, derives the signing key, and verifies the signature in constant
//! time. What the signature says about the payload (a hash, unsigned, or signed
//! chunks) is returned for the body reader to enforce.

use ring::hmac;

use super::{Credentials, hex, sha256_hex, unhex};
use crate::error::Error;
use crate::http::date;
use crate::http::head::{Request, percent_decode};

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// Requests dated further than this from our clock are refused (as S3 does).
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Longest validity a presigned URL may ask for: seven days, as S3.
pub const MAX_PRESIGN_EXPIRY_SECS: i64 = 7 * 24 * 3600;

/// What the verified signature says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Not covered by the signature.
    Unsigned,
    /// The body's SHA-256, hex; the body reader must check it.
    Sha256(String),
    /// `aws-chunked` body with a signature per chunk, chained from `seed`.
    SignedChunks(ChunkContext),
    /// `aws-chunked` body without chunk signatures; checksums in trailers.
    UnsignedChunks,
}

/// Everything needed to verify chunk signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkContext {
    pub seed: String,
    pub amz_date: String,
    pub scope: String,
    pub key: Vec<u8>,
    /// Whether a signed trailer chunk follows the last chunk.
    pub trailer: bool,
}

/// The signing key for a day, region and service.
pub fn signing_key(secret: &str, day: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [day, region, service, "aws4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes()).as_ref().to_vec();
    }
    key
}

pub fn sign(key: &[u8], string_to_sign: &str) -> String {
    hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), string_to_sign.as_bytes()).as_ref())
}

/// Constant-time check of a hex signature.
pub fn verify(key: &[u8], string_to_sign: &str, signature_hex: &str) -> bool {
    match unhex(signature_hex) {
        Some(sig) if sig.len() == 32 => {
            hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), string_to_sign.as_bytes(), &sig).is_ok()
        }
        _ => false,
    }
}

/// AWS's URI encoding: everything but `A-Za-z0-9-_.~` (and `/` when asked) as %XX.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical query string from the raw one, leaving out `skip`.
fn canonical_query(raw: &str, skip: Option<&str>) -> Result<String, Error> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        let n = percent_decode(n, true)?;
        if Some(n.as_str()) == skip {
            continue;
        }
        pairs.push((uri_encode(&n, false), uri_encode(&percent_decode(v, true)?, false)));
    }
    pairs.sort();
    Ok(pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&"))
}

/// The canonical request of SigV4.
pub fn canonical_request(
    req: &Request,
    signed_headers: &[&str],
    payload_hash: &str,
    skip_query: Option<&str>,
) -> Result<String, Error> {
    let path = uri_encode(&percent_decode(&req.raw_path, false)?, true);
    let query = canonical_query(&req.raw_query, skip_query)?;
    let mut out = format!("{}\n{path}\n{query}\n", req.method);
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(Error::SignatureDoesNotMatch);
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// `<day>/<region>/<service>/aws4_request`, checked.
struct Scope {
    access_key: String,
    day: String,
    region: String,
    service: String,
}

impl Scope {
    fn parse(credential: &str) -> Result<Scope, Error> {
        let parts: Vec<&str> = credential.split('/').collect();
        if parts.len() != 5 || parts[4] != "aws4_request" {
            return Err(Error::AuthorizationMalformed(
                "the credential is not key/date/region/service/aws4_request".into(),
            ));
        }
        Ok(Scope {
            access_key: parts[0].into(),
            day: parts[1].into(),
            region: parts[2].into(),
            service: parts[3].into(),
        })
    }

    fn text(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.day, self.region, self.service)
    }

    fn check(&self, creds: &Credentials, amz_date: &str) -> Result<Vec<u8>, Error> {
        if self.access_key != creds.access_key {
            return Err(Error::InvalidAccessKeyId);
        }
        if self.service != "s3" || !amz_date.starts_with(&self.day) {
            return Err(Error::AuthorizationMalformed("the credential scope does not match the request".into()));
        }
        Ok(signing_key(&creds.secret_key, &self.day, &self.region, &self.service))
    }
}

fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()))
}

/// `<day>/<region>/s3/aws4_request`, the scope a client signs with.
pub fn scope(day: &str, region: &str) -> String {
    format!("{day}/{region}/s3/aws4_request")
}

/// A signed request as a client sends it: the `Authorization` value, and the
/// signature alone (the seed of a streaming body's chunk signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub authorization: String,
    pub signature: String,
}

/// Signs `req` as a client (`basalt bench`) sends it, with the same canonical
/// request the verifier rebuilds. `req.raw_path` must be the path as it goes on
/// the wire (encoded with [`uri_encode`]); `signed_headers` are lower-case names
/// in sorted order, each present in `req.headers`, `host` and `x-amz-date` among
/// them. `key` is [`signing_key`] for the scope's day and region.
pub fn sign_request(
    req: &Request,
    access_key: &str,
    key: &[u8],
    scope: &str,
    amz_date: &str,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Result<Signed, Error> {
    let canonical = canonical_request(req, signed_headers, payload_hash, None)?;
    let signature = sign(key, &string_to_sign(amz_date, scope, &canonical));
    let authorization = format!(
        "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={}, Signature={signature}",
        signed_headers.join(";")
    );
    Ok(Signed { authorization, signature })
}

/// Verifies `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
pub fn verify_header(req: &Request, creds: &Credentials, now: i64) -> Result<Payload, Error> {
    let auth = req.header("authorization").unwrap_or_default();
    let fields =
        auth.strip_prefix(ALGORITHM).ok_or_else(|| Error::AuthorizationMalformed("unknown algorithm".into()))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let field = field.trim();
        if let Some(v) = field.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = field.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = field.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(Error::AuthorizationMalformed("Credential, SignedHeaders and Signature are required".into()));
    };
    let scope = Scope::parse(credential)?;
    let amz_date = match req.header("x-amz-date") {
        Some(d) => d.to_string(),
        None => {
            let secs = req
                .header("date")
                .and_then(date::parse_rfc1123)
                .ok_or_else(|| Error::AccessDenied("the request has no valid x-amz-date or Date header".into()))?;
            compact_date(secs)
        }
    };
    let when = date::parse_amz(&amz_date).ok_or_else(|| Error::AccessDenied("x-amz-date is not valid".into()))?;
    if (now - when).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(Error::RequestTimeTooSkewed);
    }
    let key = scope.check(creds, &amz_date)?;
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if !signed_headers.contains(&"host") {
        return Err(Error::AuthorizationMalformed("the host header must be signed".into()));
    }
    let payload_hash = req
        .header("x-amz-content-sha256")
        .ok_or_else(|| Error::InvalidRequest("missing required header x-amz-content-sha256".into()))?;
    let canonical = canonical_request(req, &signed_headers, payload_hash, None)?;
    let sts = string_to_sign(&amz_date, &scope.text(), &canonical);
    if !verify(&key, &sts, signature) {
        return Err(Error::SignatureDoesNotMatch);
    }
    let chunk_ctx = |trailer| ChunkContext {
        seed: signature.to_string(),
        amz_date: amz_date.clone(),
        scope: scope.text(),
        key: key.clone(),
        trailer,
    };
    Ok(match payload_hash {
        UNSIGNED_PAYLOAD => Payload::Unsigned,
        STREAMING_SIGNED => Payload::SignedChunks(chunk_ctx(false)),
        STREAMING_SIGNED_TRAILER => Payload::SignedChunks(chunk_ctx(true)),
        STREAMING_UNSIGNED_TRAILER => Payload::UnsignedChunks,
        h if h.len() == 64 && unhex(h).is_some() => Payload::Sha256(h.to_ascii_lowercase()),
        _ => return Err(Error::InvalidRequest("x-amz-content-sha256 is not a hash or a known payload mode".into())),
    })
}

/// Verifies a presigned URL (`X-Amz-Algorithm`, `X-Amz-Credential`, ...).
pub fn verify_presigned(
    req: &Request,
    query: &[(String, String)],
    creds: &Credentials,
    now: i64,
) -> Result<Payload, Error> {
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(Error::AuthorizationMalformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256".into()));
    }
    let (Some(credential), Some(amz_date), Some(expires), Some(signed), Some(signature)) = (
        get("X-Amz-Credential"),
        get("X-Amz-Date"),
        get("X-Amz-Expires"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Signature"),
    ) else {
        return Err(Error::AuthorizationMalformed(
            "a presigned URL needs X-Amz-Credential, -Date, -Expires, -SignedHeaders and -Signature".into(),
        ));
    };
    let scope = Scope::parse(credential)?;
    let when = date::parse_amz(amz_date).ok_or_else(|| Error::AccessDenied("X-Amz-Date is not valid".into()))?;
    let expires: i64 =
        expires.parse().map_err(|_| Error::AuthorizationMalformed("X-Amz-Expires is not a number".into()))?;
    if !(1..=MAX_PRESIGN_EXPIRY_SECS).contains(&expires) {
        return Err(Error::AuthorizationMalformed("X-Amz-Expires must be 1 to 604800 seconds".into()));
    }
    if when - now > MAX_CLOCK_SKEW_SECS {
        return Err(Error::RequestTimeTooSkewed);
    }
    if now > when + expires {
        return Err(Error::AccessDenied("Request has expired".into()));
    }
    let key = scope.check(creds, amz_date)?;
    let signed_headers: Vec<&str> = signed.split(';').collect();
    let payload_hash = get("X-Amz-Content-Sha256").unwrap_or(UNSIGNED_PAYLOAD);
    let canonical = canonical_request(req, &signed_headers, payload_hash, Some("X-Amz-Signature"))?;
    let sts = string_to_sign(amz_date, &scope.text(), &canonical);
    if !verify(&key, &sts, signature) {
        return Err(Error::SignatureDoesNotMatch);
    }
    Ok(if payload_hash == UNSIGNED_PAYLOAD {
        Payload::Unsigned
    } else {
        Payload::Sha256(payload_hash.to_ascii_lowercase())
    })
}

/// A presigned URL (path and query, no scheme or host) for `method` on the
/// object path `path` (decoded, e.g. `/bucket/key`), signed for the `host` a
/// client will send, valid `expires_secs` from `now`. `extra` query parameters
/// (e.g. `response-content-disposition`) are signed with it. The inverse of
/// [`verify_presigned`], which the tests hold it to.
#[allow(clippy::too_many_arguments)]
pub fn presign(
    creds: &Credentials,
    method: &str,
    host: &str,
    path: &str,
    extra: &[(&str, &str)],
    region: &str,
    now: i64,
    expires_secs: i64,
) -> Result<String, Error> {
    if !(1..=MAX_PRESIGN_EXPIRY_SECS).contains(&expires_secs) {
        return Err(Error::InvalidArgument("a presigned URL lasts 1 to 604800 seconds".into()));
    }
    let amz_date = compact_date(now);
    let scope = format!("{}/{region}/s3/aws4_request", &amz_date[..8]);
    let mut pairs: Vec<(String, String)> = vec![
        ("X-Amz-Algorithm".into(), ALGORITHM.into()),
        ("X-Amz-Credential".into(), format!("{}/{scope}", creds.access_key)),
        ("X-Amz-Date".into(), amz_date.clone()),
        ("X-Amz-Expires".into(), expires_secs.to_string()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ];
    pairs.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let query: Vec<String> =
        pairs.iter().map(|(n, v)| format!("{}={}", uri_encode(n, false), uri_encode(v, false))).collect();
    let unsigned = Request {
        method: method.into(),
        raw_path: uri_encode(path, true),
        raw_query: query.join("&"),
        headers: vec![("host".into(), host.into())],
        http10: false,
        peer: None,
    };
    let canonical = canonical_request(&unsigned, &["host"], UNSIGNED_PAYLOAD, None)?;
    let key = signing_key(&creds.secret_key, &amz_date[..8], region, "s3");
    let signature = sign(&key, &string_to_sign(&amz_date, &scope, &canonical));
    Ok(format!("{}?{}&X-Amz-Signature={signature}", unsigned.raw_path, unsigned.raw_query))
}

/// Unix seconds to `20130524T000000Z`.
pub fn compact_date(secs: i64) -> String {
    let iso = date::iso8601(secs * 1_000_000_000);
    // 2013-05-24T00:00:00.000Z -> 20130524T000000Z
    format!("{}{}{}T{}{}{}Z", &iso[0..4], &iso[5..7], &iso[8..10], &iso[11..13], &iso[14..16], &iso[17..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example credentials of AWS's SigV4 documentation.
    fn example_creds() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    fn request(raw: &str) -> Request {
        crate::http::head::request_for_test(raw)
    }

    const EXAMPLE_TIME: i64 = 1369353600; // 20130524T000000Z

    #[test]
    fn aws_example_get_object() {
        // "Example: GET Object" of the SigV4 header documentation.
        let raw = "GET /test.txt HTTP/1.1\r\nHost: examplebucket.s3.amazonaws.com\r\nRange: bytes=0-9\r\n\
                   x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n\
                   x-amz-date: 20130524T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 \
                   Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                   SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
                   Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n\r\n";
        let req = request(raw);
        let payload = verify_header(&req, &example_creds(), EXAMPLE_TIME).unwrap();
        assert_eq!(payload, Payload::Sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()));
        // One changed byte in a signed header breaks it; so does another secret.
        let tampered = request(&raw.replace("bytes=0-9", "bytes=0-8"));
        assert_eq!(verify_header(&tampered, &example_creds(), EXAMPLE_TIME), Err(Error::SignatureDoesNotMatch));
        let mut other = example_creds();
        other.secret_key.push('x');
        assert_eq!(verify_header(&req, &other, EXAMPLE_TIME), Err(Error::SignatureDoesNotMatch));
        other.access_key = "SOMEONEELSE".into();
        assert_eq!(verify_header(&req, &other, EXAMPLE_TIME), Err(Error::InvalidAccessKeyId));
        assert_eq!(verify_header(&req, &example_creds(), EXAMPLE_TIME + 16 * 60), Err(Error::RequestTimeTooSkewed));
    }

    #[test]
    fn aws_example_presigned_get() {
        // "Example: Presigned URL" of the SigV4 query-string documentation.
        let raw = "GET /test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404 HTTP/1.1\r\nHost: examplebucket.s3.amazonaws.com\r\n\r\n";
        let req = request(raw);
        let query = crate::http::head::parse_query(&req.raw_query).unwrap();
        assert_eq!(verify_presigned(&req, &query, &example_creds(), EXAMPLE_TIME + 3600), Ok(Payload::Unsigned));
        let late = verify_presigned(&req, &query, &example_creds(), EXAMPLE_TIME + 86401);
        assert_eq!(late, Err(Error::AccessDenied("Request has expired".into())));
    }

    #[test]
    fn verifier_accepts_what_the_signer_signs() {
        let creds = example_creds();
        let now = EXAMPLE_TIME + 42;
        let amz_date = compact_date(now);
        let scope = scope(&amz_date[..8], "us-east-1");
        let key = signing_key(&creds.secret_key, &amz_date[..8], "us-east-1", "s3");
        let headers = |auth: Option<&str>| {
            let mut h = vec![
                ("host".to_string(), "127.0.0.1:9000".to_string()),
                ("x-amz-content-sha256".to_string(), UNSIGNED_PAYLOAD.to_string()),
                ("x-amz-date".to_string(), amz_date.clone()),
            ];
            if let Some(a) = auth {
                h.push(("authorization".to_string(), a.to_string()));
            }
            h
        };
        let unsigned = Request {
            method: "PUT".into(),
            raw_path: uri_encode("/bucket/a key/x+y", true),
            raw_query: "partNumber=1&uploadId=abc".into(),
            headers: headers(None),
            http10: false,
            peer: None,
        };
        let signed_headers = ["host", "x-amz-content-sha256", "x-amz-date"];
        let signed =
            sign_request(&unsigned, &creds.access_key, &key, &scope, &amz_date, &signed_headers, UNSIGNED_PAYLOAD)
                .unwrap();
        let mut sent = unsigned.clone();
        sent.headers = headers(Some(&signed.authorization));
        assert_eq!(verify_header(&sent, &creds, now), Ok(Payload::Unsigned));
        // The same head, serialised and parsed back as the server does.
        let mut wire = format!("PUT {}?{} HTTP/1.1\r\n", sent.raw_path, sent.raw_query);
        for (n, v) in &sent.headers {
            wire.push_str(&format!("{n}: {v}\r\n"));
        }
        wire.push_str("\r\n");
        assert_eq!(verify_header(&request(&wire), &creds, now), Ok(Payload::Unsigned));
        let mut tampered = sent.clone();
        tampered.raw_query = "partNumber=2&uploadId=abc".into();
        assert_eq!(verify_header(&tampered, &creds, now), Err(Error::SignatureDoesNotMatch));
        // A streaming upload's seed is the request's signature.
        let mut streaming = Request { headers: headers(None), ..unsigned };
        streaming.headers[1].1 = STREAMING_SIGNED.into();
        let signed =
            sign_request(&streaming, &creds.access_key, &key, &scope, &amz_date, &signed_headers, STREAMING_SIGNED)
                .unwrap();
        streaming.headers.push(("authorization".into(), signed.authorization.clone()));
        match verify_header(&streaming, &creds, now) {
            Ok(Payload::SignedChunks(ctx)) => assert_eq!(ctx.seed, signed.signature),
            other => panic!("expected signed chunks, got {other:?}"),
        }
    }

    #[test]
    fn presign_matches_aws_example_and_verifier() {
        // The same URL as "Example: Presigned URL", signed here.
        let host = "examplebucket.s3.amazonaws.com";
        let creds = example_creds();
        let url = presign(&creds, "GET", host, "/test.txt", &[], "us-east-1", EXAMPLE_TIME, 86400).unwrap();
        assert!(url.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"));
        // Odd keys and signed extras round-trip through the verifier.
        let extra = [("response-content-disposition", "attachment; filename=\"a b.txt\"")];
        let url = presign(&creds, "GET", host, "/b/dir/a b+c%.txt", &extra, "eu-west-1", EXAMPLE_TIME, 60).unwrap();
        let req = request(&format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(percent_decode(&req.raw_path, false).unwrap(), "/b/dir/a b+c%.txt");
        let query = crate::http::head::parse_query(&req.raw_query).unwrap();
        assert_eq!(verify_presigned(&req, &query, &creds, EXAMPLE_TIME + 30), Ok(Payload::Unsigned));
        let late = verify_presigned(&req, &query, &creds, EXAMPLE_TIME + 61);
        assert_eq!(late, Err(Error::AccessDenied("Request has expired".into())));
        let other_host = request(&format!("GET {url} HTTP/1.1\r\nHost: elsewhere\r\n\r\n"));
        assert_eq!(verify_presigned(&other_host, &query, &creds, EXAMPLE_TIME), Err(Error::SignatureDoesNotMatch));
        let tampered = request(&format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", url.replace("/b/dir", "/b/die")));
        assert_eq!(verify_presigned(&tampered, &query, &creds, EXAMPLE_TIME), Err(Error::SignatureDoesNotMatch));
        assert!(presign(&creds, "GET", host, "/b/k", &[], "us-east-1", EXAMPLE_TIME, 0).is_err());
        assert!(presign(&creds, "GET", host, "/b/k", &[], "us-east-1", EXAMPLE_TIME, 604801).is_err());
    }

    #[test]
    fn encoding_rules() {
        assert_eq!(uri_encode("a b/c~d*", true), "a%20b/c~d%2A");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(compact_date(EXAMPLE_TIME), "20130524T000000Z");
    }
}
