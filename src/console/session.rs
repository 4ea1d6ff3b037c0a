//! Console sessions: the signed token in the session cookie, the CSRF token that
//! goes with it, the revocation of tokens at logout, and the cookie itself.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))` with
//! payload `version | issued_at | expires_at | session id | access key`. The key
//! is derived with HKDF from the root secret key, salted with the fingerprint of
//! the server's arguments (the same on every node): every node of a deployment
//! derives the same key, so a session works behind a
//! load balancer without sticky sessions, and changing the root secret ends every
//! session. Nothing in the token is secret; the browser never sees the secret key.
//!
//! The CSRF token is `HMAC(key, "csrf" | session id)`: the page learns it from the
//! login answer (or `GET /console/api/session`) and sends it in a header on every
//! state-changing call; another site can neither read it nor compute it.
//!
//! Logout revokes the session id on this node (a bounded table, shared by the
//! node's cores because a browser's next connection may land on any core). A
//! full table fails closed: every session issued so far on this node ends.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use ring::rand::SecureRandom;
use ring::{hkdf, hmac};

use crate::auth::Credentials;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "basalt_console";
/// The header that carries the CSRF token on state-changing calls.
pub const CSRF_HEADER: &str = "x-basalt-csrf";
/// How long a session lasts unless `BASALT_CONSOLE_SESSION_TTL` says otherwise: a
/// working day, so nobody logs in twice a day, and a stolen cookie dies overnight.
pub const DEFAULT_TTL_SECS: u64 = 12 * 3600;
/// The longest session the environment may ask for: a week, as presigned URLs.
pub const MAX_TTL_SECS: u64 = 7 * 24 * 3600;
/// Revoked sessions remembered per node until they expire. Logouts are rare (a
/// person clicks a button); 4096 within one TTL means something is wrong, and
/// then every session ends instead (fail closed).
pub const MAX_REVOKED_SESSIONS: usize = 4096;
/// A token longer than this is refused before any decoding: the real ones are
/// about 120 bytes.
const MAX_TOKEN_BYTES: usize = 512;
const TOKEN_VERSION: u8 = 1;
const SESSION_ID_BYTES: usize = 16;
/// version, issued_at, expires_at, session id; the access key follows.
const PAYLOAD_FIXED_BYTES: usize = 1 + 8 + 8 + SESSION_ID_BYTES;
const KEY_INFO: &[u8] = b"basalt console session v1";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A verified session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: [u8; SESSION_ID_BYTES],
    pub access_key: String,
    pub issued_at: u64,
    pub expires_at: u64,
}

/// Why a token was refused. Callers answer 401 for all of them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    BadSignature,
    Expired,
    Revoked,
    OtherUser,
}

/// The node's session authority: the signing key, the TTL, and revocations.
pub struct Sessions {
    key: hmac::Key,
    access_key: String,
    ttl_secs: u64,
    rng: ring::rand::SystemRandom,
    revoked: Mutex<Revoked>,
}

#[derive(Default)]
struct Revoked {
    /// Session id -> its expiry; entries leave once expired.
    ids: HashMap<[u8; SESSION_ID_BYTES], u64>,
    /// Tokens issued before this second are refused (raised when `ids` overflows).
    not_before: u64,
}

impl Sessions {
    pub fn new(creds: &Credentials, salt: &str, ttl_secs: u64) -> Sessions {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, salt.as_bytes());
        let info = [KEY_INFO, creds.access_key.as_bytes()];
        let key = match salt.extract(creds.secret_key.as_bytes()).expand(&info, hmac::HMAC_SHA256) {
            Ok(okm) => hmac::Key::from(okm),
            // Only an output longer than 255 hashes fails; ours is one.
            Err(_) => unreachable!("HKDF output of one hash length"),
        };
        Sessions {
            key,
            access_key: creds.access_key.clone(),
            ttl_secs,
            rng: ring::rand::SystemRandom::new(),
            revoked: Mutex::new(Revoked::default()),
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A new session for the root user, and its token.
    pub fn issue(&self, now: u64) -> Result<(Session, String), ring::error::Unspecified> {
        let mut id = [0u8; SESSION_ID_BYTES];
        self.rng.fill(&mut id)?;
        let session =
            Session { id, access_key: self.access_key.clone(), issued_at: now, expires_at: now + self.ttl_secs };
        let mut payload = Vec::with_capacity(PAYLOAD_FIXED_BYTES + session.access_key.len());
        payload.push(TOKEN_VERSION);
        payload.extend_from_slice(&session.issued_at.to_be_bytes());
        payload.extend_from_slice(&session.expires_at.to_be_bytes());
        payload.extend_from_slice(&session.id);
        payload.extend_from_slice(session.access_key.as_bytes());
        let tag = hmac::sign(&self.key, &payload);
        let token = format!("{}.{}", B64.encode(&payload), B64.encode(tag.as_ref()));
        Ok((session, token))
    }

    /// Checks a token: signature (constant time), version, expiry, user, revocation.
    pub fn verify(&self, token: &str, now: u64) -> Result<Session, Rejected> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejected::Malformed);
        }
        let (payload, tag) = token.split_once('.').ok_or(Rejected::Malformed)?;
        let payload = B64.decode(payload).map_err(|_| Rejected::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| Rejected::Malformed)?;
        hmac::verify(&self.key, &payload, &tag).map_err(|_| Rejected::BadSignature)?;
        // Signed by us, so well formed unless the format changed.
        if payload.len() < PAYLOAD_FIXED_BYTES || payload[0] != TOKEN_VERSION {
            return Err(Rejected::Malformed);
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut id = [0u8; SESSION_ID_BYTES];
        id.copy_from_slice(&payload[17..PAYLOAD_FIXED_BYTES]);
        let access_key = String::from_utf8(payload[PAYLOAD_FIXED_BYTES..].to_vec()).map_err(|_| Rejected::Malformed)?;
        let session = Session { id, access_key, issued_at: u64_at(1), expires_at: u64_at(9) };
        if now >= session.expires_at {
            return Err(Rejected::Expired);
        }
        if session.access_key != self.access_key {
            return Err(Rejected::OtherUser);
        }
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if session.issued_at < revoked.not_before || revoked.ids.contains_key(&session.id) {
            return Err(Rejected::Revoked);
        }
        Ok(session)
    }

    /// Ends a session on this node (logout).
    pub fn revoke(&self, session: &Session, now: u64) {
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        revoked.ids.retain(|_, expires_at| *expires_at > now);
        if revoked.ids.len() >= MAX_REVOKED_SESSIONS {
            // Cannot remember one more: end them all, which covers this one.
            revoked.ids.clear();
            revoked.not_before = now + 1;
            tracing::warn!("console: too many logouts to remember; every console session on this node ended");
            return;
        }
        revoked.ids.insert(session.id, session.expires_at);
    }

    /// Whether a login form's keys are the root user's. Both are always compared
    /// (so the time taken says nothing about which one was wrong), each in
    /// constant time: the typed value is MACed and the tag checked against the
    /// configured value with `hmac::verify`.
    pub fn credentials_match(&self, creds: &Credentials, access_key: &str, secret_key: &str) -> bool {
        let same = |expected: &str, given: &str| {
            let tag = hmac::sign(&self.key, given.as_bytes());
            hmac::verify(&self.key, expected.as_bytes(), tag.as_ref()).is_ok()
        };
        let access_ok = same(&creds.access_key, access_key);
        let secret_ok = same(&creds.secret_key, secret_key);
        access_ok & secret_ok
    }

    /// The CSRF token of a session.
    pub fn csrf_token(&self, session: &Session) -> String {
        B64.encode(hmac::sign(&self.key, &csrf_input(session)).as_ref())
    }

    /// Constant-time check of a CSRF token sent by the page.
    pub fn verify_csrf(&self, session: &Session, token: &str) -> bool {
        if token.len() > MAX_TOKEN_BYTES {
            return false;
        }
        match B64.decode(token) {
            Ok(tag) => hmac::verify(&self.key, &csrf_input(session), &tag).is_ok(),
            Err(_) => false,
        }
    }
}

fn csrf_input(session: &Session) -> Vec<u8> {
    let mut input = b"csrf".to_vec();
    input.extend_from_slice(&session.id);
    input
}

/// The session token in the request's cookies, if any.
pub fn token_from_cookies<'a>(cookie_headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The `Set-Cookie` value that stores `token`: never readable by scripts
/// (HttpOnly), never sent by another site's requests (SameSite=Strict), only to
/// the console's paths; `Secure` when the browser reached us over HTTPS (a TLS
/// proxy in front says so in X-Forwarded-Proto).
pub fn set_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={token}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

/// Reads `BASALT_CONSOLE_SESSION_TTL` (seconds) through `lookup`.
pub fn ttl_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<u64, String> {
    let Some(v) = lookup("BASALT_CONSOLE_SESSION_TTL") else { return Ok(DEFAULT_TTL_SECS) };
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_TTL_SECS).contains(&n) => Ok(n),
        _ => Err(format!(
            "BASALT_CONSOLE_SESSION_TTL must be a number of seconds from 1 to {MAX_TTL_SECS} (it is {v:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(secret: &str) -> Credentials {
        Credentials { access_key: "consoleadmin".into(), secret_key: secret.into() }
    }

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let s = Sessions::new(&creds("secret-one"), "deployment-a", 100);
        let (session, token) = s.issue(1_000).unwrap();
        assert!(!token.contains("secret-one"));
        assert_eq!(s.verify(&token, 1_050), Ok(session.clone()));
        assert_eq!(s.verify(&token, 1_100), Err(Rejected::Expired));
        // Any changed byte of the payload or the tag breaks the signature.
        let (payload, tag) = token.split_once('.').unwrap();
        let mut raw = B64.decode(payload).unwrap();
        raw[9..17].copy_from_slice(&u64::MAX.to_be_bytes());
        let forged = format!("{}.{tag}", B64.encode(&raw));
        assert_eq!(s.verify(&forged, 1_050), Err(Rejected::BadSignature));
        assert_eq!(s.verify(&format!("{payload}.{}", B64.encode([0u8; 32])), 1_050), Err(Rejected::BadSignature));
        for junk in ["", ".", "abc", "a.b.c", &"x".repeat(600)] {
            assert!(s.verify(junk, 1_050).is_err(), "{junk:?}");
        }
        // Another node of the same deployment accepts it; another secret or
        // another deployment does not.
        assert!(Sessions::new(&creds("secret-one"), "deployment-a", 100).verify(&token, 1_050).is_ok());
        assert_eq!(
            Sessions::new(&creds("secret-two"), "deployment-a", 100).verify(&token, 1_050),
            Err(Rejected::BadSignature)
        );
        assert_eq!(
            Sessions::new(&creds("secret-one"), "deployment-b", 100).verify(&token, 1_050),
            Err(Rejected::BadSignature)
        );
    }

    #[test]
    fn logout_revokes_and_overflow_fails_closed() {
        let s = Sessions::new(&creds("secret-one"), "d", 100);
        let (a, token_a) = s.issue(1_000).unwrap();
        let (_, token_b) = s.issue(1_000).unwrap();
        s.revoke(&a, 1_001);
        assert_eq!(s.verify(&token_a, 1_002), Err(Rejected::Revoked));
        assert!(s.verify(&token_b, 1_002).is_ok());
        // Filling the table ends every session issued so far, and only those.
        for _ in 0..MAX_REVOKED_SESSIONS {
            let (x, _) = s.issue(1_000).unwrap();
            s.revoke(&x, 1_002);
        }
        assert_eq!(s.verify(&token_b, 1_003), Err(Rejected::Revoked));
        let (_, fresh) = s.issue(1_010).unwrap();
        assert!(s.verify(&fresh, 1_011).is_ok());
        // Expired revocations are forgotten, so the table does not fill with them.
        let (c, _) = s.issue(1_020).unwrap();
        s.revoke(&c, 1_021);
        s.revoke(&s.issue(1_200).unwrap().0, 1_200);
        assert_eq!(s.revoked.lock().unwrap().ids.len(), 1);
    }

    #[test]
    fn credentials_compare_both_keys() {
        let c = creds("secret-one");
        let s = Sessions::new(&c, "d", 100);
        assert!(s.credentials_match(&c, "consoleadmin", "secret-one"));
        assert!(!s.credentials_match(&c, "consoleadmin", "secret-on"));
        assert!(!s.credentials_match(&c, "consoleadmix", "secret-one"));
        assert!(!s.credentials_match(&c, "", ""));
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let s = Sessions::new(&creds("secret-one"), "d", 100);
        let (a, _) = s.issue(1_000).unwrap();
        let (b, _) = s.issue(1_000).unwrap();
        let token = s.csrf_token(&a);
        assert!(s.verify_csrf(&a, &token));
        assert!(!s.verify_csrf(&b, &token));
        assert!(!s.verify_csrf(&a, ""));
        assert!(!s.verify_csrf(&a, "not base64 !"));
    }

    #[test]
    fn cookies_and_ttl() {
        let headers = ["theme=dark; basalt_console=abc.def", "other=1"];
        assert_eq!(token_from_cookies(headers.iter().copied()), Some("abc.def"));
        assert_eq!(token_from_cookies(["basalt_consolex=1"].iter().copied()), None);
        let c = set_cookie("t", 60, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/console"));
        assert!(!c.contains("Secure") && set_cookie("t", 60, true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert_eq!(ttl_from_lookup(|_| None), Ok(DEFAULT_TTL_SECS));
        assert_eq!(ttl_from_lookup(|_| Some("2".into())), Ok(2));
        assert!(ttl_from_lookup(|_| Some("0".into())).is_err());
        assert!(ttl_from_lookup(|_| Some("1h".into())).is_err());
        assert!(ttl_from_lookup(|_| Some((MAX_TTL_SECS + 1).to_string())).is_err());
    }
}
