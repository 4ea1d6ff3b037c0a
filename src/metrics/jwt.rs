//! Bearer tokens for Prometheus, as MinIO's `mc admin prometheus generate`
//! makes them: a JWT signed HS512 with the secret key, the access key as
//! subject, issuer `prometheus`, and an expiry. Verified with ring's
//! constant-time HMAC check; nothing here is hand-rolled cryptography.

use base64::Engine as _;
use ring::hmac;

use crate::auth::Credentials;

/// Longest token accepted; real ones are about 250 bytes.
const MAX_TOKEN_BYTES: usize = 4 << 10;

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a JWT (header.claims.signature in base64url)")]
    Malformed,
    #[error("the token is not signed HS512")]
    Algorithm,
    #[error("the token's signature does not match the secret key")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token has no expiry")]
    NoExpiry,
    #[error("the token is not for this access key")]
    Subject,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
}

#[derive(serde::Deserialize)]
struct Claims {
    exp: Option<f64>,
    sub: Option<String>,
    /// Some MinIO tokens name the key in `accessKey` instead of `sub`.
    #[serde(rename = "accessKey")]
    access_key: Option<String>,
}

fn decode(part: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| JwtError::Malformed)
}

/// Checks `token` (the text after `Bearer `) against the root credentials at
/// time `now` (Unix seconds).
pub fn verify(token: &str, creds: &Credentials, now: i64) -> Result<(), JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.trim().split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let h: Header = serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if h.alg != "HS512" {
        return Err(JwtError::Algorithm);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA512, creds.secret_key.as_bytes());
    let signed = &token.trim()[..header.len() + 1 + claims.len()];
    hmac::verify(&key, signed.as_bytes(), &decode(signature)?).map_err(|_| JwtError::Signature)?;
    let c: Claims = serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::Malformed)?;
    let exp = c.exp.ok_or(JwtError::NoExpiry)?;
    if exp <= now as f64 {
        return Err(JwtError::Expired);
    }
    if c.sub.or(c.access_key).as_deref() != Some(creds.access_key.as_str()) {
        return Err(JwtError::Subject);
    }
    Ok(())
}

/// Makes a token as `mc admin prometheus generate` does (tests and tooling).
pub fn generate(creds: &Credentials, expires_at: i64) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"alg":"HS512","typ":"JWT"}"#);
    let claims = serde_json::json!({ "exp": expires_at, "sub": creds.access_key, "iss": "prometheus" });
    let claims = b64(claims.to_string().as_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA512, creds.secret_key.as_bytes());
    let signature = hmac::sign(&key, format!("{header}.{claims}").as_bytes());
    format!("{header}.{claims}.{}", b64(signature.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials { access_key: "promadmin".into(), secret_key: "promsecret123".into() }
    }

    #[test]
    fn tokens() {
        let now = 1_700_000_000;
        let good = generate(&creds(), now + 3600);
        assert_eq!(verify(&good, &creds(), now), Ok(()));
        assert_eq!(verify(&good, &creds(), now + 3600), Err(JwtError::Expired));
        let mut other = creds();
        other.secret_key = "anothersecret".into();
        assert_eq!(verify(&good, &other, now), Err(JwtError::Signature));
        let mut other = creds();
        other.access_key = "someoneelse".into();
        assert_eq!(verify(&good, &other, now), Err(JwtError::Subject));
        // A changed claim breaks the signature.
        let parts: Vec<&str> = good.split('.').collect();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let forged_claims = b64(br#"{"exp":9999999999,"sub":"promadmin"}"#);
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(verify(&forged, &creds(), now), Err(JwtError::Signature));
        // "alg: none" and HS256 are refused before any signature check.
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(verify(&none, &creds(), now), Err(JwtError::Algorithm));
        for bad in ["", "a.b", "a.b.c.d", "!!.??.##", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(verify(bad, &creds(), now).is_err(), "{bad:?}");
        }
    }
}
