//! AWS Signature Version 2 for S3, in the `Authorization: AWS key:signature`
//! header and in presigned query strings (`AWSAccessKeyId`, `Expires`,
//! `Signature`). Old, but s3-benchmark and some SDKs' presigners still sign
//! with it. HMAC-SHA1 over the string S3 defines, compared in constant time.

use base64::Engine;
use ring::hmac;

use super::Credentials;
use super::sigv4::MAX_CLOCK_SKEW_SECS;
use crate::error::Error;
use crate::http::date;
use crate::http::head::Request;

/// Query parameters that are part of the signed resource.
const SIGNED_SUBRESOURCES: [&str; 26] = [
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
    "select",
];

/// The string to sign; `date` is the Date header, or Expires for presigned URLs;
/// `vhost_bucket` is the bucket a virtual-host request named in its Host header.
pub fn string_to_sign(req: &Request, query: &[(String, String)], date: &str, vhost_bucket: Option<&str>) -> String {
    let header = |n: &str| req.header(n).unwrap_or_default();
    let mut amz: Vec<(String, String)> = Vec::new();
    for (name, value) in &req.headers {
        if name.starts_with("x-amz-") {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            match amz.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(&value);
                }
                None => amz.push((name.clone(), value)),
            }
        }
    }
    amz.sort();
    let mut out = format!("{}\n{}\n{}\n{}\n", req.method, header("content-md5"), header("content-type"), date);
    for (n, v) in amz {
        out.push_str(&format!("{n}:{v}\n"));
    }
    match vhost_bucket {
        Some(b) => {
            out.push('/');
            out.push_str(b);
            out.push_str(&req.raw_path);
        }
        None => {
            out.push_str(&req.raw_path);
            // A request for a bucket itself is signed as "/bucket/".
            if req.raw_path.len() > 1 && !req.raw_path[1..].contains('/') {
                out.push('/');
            }
        }
    }
    let mut subs: Vec<&(String, String)> =
        query.iter().filter(|(n, _)| SIGNED_SUBRESOURCES.contains(&n.as_str())).collect();
    subs.sort();
    for (i, (n, v)) in subs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(n);
        if !v.is_empty() {
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

fn verify(secret: &str, sts: &str, signature_b64: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature_b64) else { return false };
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    hmac::verify(&key, sts.as_bytes(), &sig).is_ok()
}

pub fn sign(secret: &str, sts: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, sts.as_bytes()).as_ref())
}

/// Verifies `Authorization: AWS <access key>:<signature>`.
pub fn verify_header(
    req: &Request,
    query: &[(String, String)],
    creds: &Credentials,
    now: i64,
    vhost_bucket: Option<&str>,
) -> Result<(), Error> {
    let auth = req.header("authorization").unwrap_or_default();
    let (key, signature) = auth
        .strip_prefix("AWS ")
        .and_then(|s| s.split_once(':'))
        .ok_or_else(|| Error::AuthorizationMalformed("expected AWS <key>:<signature>".into()))?;
    if key != creds.access_key {
        return Err(Error::InvalidAccessKeyId);
    }
    let when = match req.header("x-amz-date") {
        Some(d) => date::parse_rfc1123(d).or_else(|| date::parse_amz(d)),
        None => req.header("date").and_then(date::parse_rfc1123),
    }
    .ok_or_else(|| Error::AccessDenied("the request has no valid Date or x-amz-date header".into()))?;
    if (now - when).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(Error::RequestTimeTooSkewed);
    }
    // With x-amz-date, the Date line is empty and x-amz-date is signed among the amz headers.
    let date_line = if req.header("x-amz-date").is_some() { "" } else { req.header("date").unwrap_or_default() };
    if !verify(&creds.secret_key, &string_to_sign(req, query, date_line, vhost_bucket), signature) {
        return Err(Error::SignatureDoesNotMatch);
    }
    Ok(())
}

/// Verifies a presigned V2 URL.
pub fn verify_presigned(
    req: &Request,
    query: &[(String, String)],
    creds: &Credentials,
    now: i64,
    vhost_bucket: Option<&str>,
) -> Result<(), Error> {
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let (Some(key), Some(expires), Some(signature)) = (get("AWSAccessKeyId"), get("Expires"), get("Signature")) else {
        return Err(Error::AuthorizationMalformed(
            "a V2 presigned URL needs AWSAccessKeyId, Expires and Signature".into(),
        ));
    };
    if key != creds.access_key {
        return Err(Error::InvalidAccessKeyId);
    }
    let expires_at: i64 =
        expires.parse().map_err(|_| Error::AuthorizationMalformed("Expires is not a number".into()))?;
    if now > expires_at {
        return Err(Error::AccessDenied("Request has expired".into()));
    }
    if !verify(&creds.secret_key, &string_to_sign(req, query, expires, vhost_bucket), signature) {
        return Err(Error::SignatureDoesNotMatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::parse_query;

    fn request(raw: &str) -> Request {
        crate::http::head::request_for_test(raw)
    }

    #[test]
    fn aws_documentation_example() {
        // The "Object GET" example of the S3 Signature Version 2 documentation.
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let raw = "GET /awsexamplebucket1/photos/puppy.jpg HTTP/1.1\r\nHost: s3.us-west-1.amazonaws.com\r\n\
                   Date: Tue, 27 Mar 2007 19:36:42 +0000\r\n\
                   Authorization: AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=\r\n\r\n";
        let req = request(raw);
        let sts = string_to_sign(&req, &[], "Tue, 27 Mar 2007 19:36:42 +0000", None);
        assert_eq!(sts, "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg");
        assert_eq!(sign(&creds.secret_key, &sts), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
        // Presigned: the signature is over Expires in place of the date.
        let target = "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=2000000000&Signature=";
        let unsigned = request(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let q = parse_query(&unsigned.raw_query).unwrap();
        let sig = sign(&creds.secret_key, &string_to_sign(&unsigned, &q, "2000000000", None));
        let encoded: String = sig
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let signed = request(&format!("GET {target}{encoded} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let q = parse_query(&signed.raw_query).unwrap();
        verify_presigned(&signed, &q, &creds, 1_900_000_000, None).unwrap();
        assert_eq!(
            verify_presigned(&signed, &q, &creds, 2_000_000_001, None),
            Err(Error::AccessDenied("Request has expired".into()))
        );
    }
}
