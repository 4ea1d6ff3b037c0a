//! Validation of bucket names and object keys: everything that becomes a path on
//! a drive passes through here first.

use crate::drive::RESERVED_PREFIX;
use crate::error::{Error, Result};

/// S3's limit on key length, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// S3 bucket naming rules: 3-63 characters of lower-case letters, digits, '.' and
/// '-', starting and ending with a letter or digit, no "..", not an IP address.
pub fn check_bucket(name: &str) -> Result<()> {
    let bad = |why| Err(Error::InvalidBucketName(name.to_string(), why));
    if name.len() < 3 || name.len() > 63 {
        return bad("it must be 3 to 63 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return bad("only lower-case letters, digits, '.' and '-' are allowed");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return bad("it must start and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("it must not contain \"..\", \".-\" or \"-.\"");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("it must not look like an IP address");
    }
    if name.starts_with("xn--") || name.ends_with("-s3alias") {
        return bad("the prefix \"xn--\" and suffix \"-s3alias\" are reserved");
    }
    Ok(())
}

/// Object keys map onto directories, so a key may not escape the bucket or
/// collide with basalt's own names. A trailing '/' is allowed: `a/b/` is a
/// "directory object", as S3 clients create for folders.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidObjectName("the key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLong);
    }
    if key.contains('\0') {
        return Err(Error::InvalidObjectName("the key contains a NUL byte"));
    }
    if key.starts_with('/') {
        return Err(Error::InvalidObjectName("the key starts with '/'"));
    }
    let body = key.strip_suffix('/').unwrap_or(key);
    for segment in body.split('/') {
        if segment.is_empty() {
            return Err(Error::InvalidObjectName("the key has an empty path segment (\"//\")"));
        }
        if segment == "." || segment == ".." {
            return Err(Error::InvalidObjectName("the key has a \".\" or \"..\" path segment"));
        }
        if segment.starts_with(RESERVED_PREFIX) {
            return Err(Error::InvalidObjectName("a key segment may not start with \".basalt.\" (reserved)"));
        }
    }
    Ok(())
}

/// Checks a listing prefix: it may be anything a key may start with.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLong);
    }
    if prefix.contains('\0') {
        return Err(Error::InvalidObjectName("the prefix contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        for ok in ["abc", "my-bucket", "a.b.c", "0bucket9", &"a".repeat(63)] {
            check_bucket(ok).unwrap();
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "192.168.1.1", "a_b", &"a".repeat(64), "a.-b", "xn--abc"] {
            assert!(check_bucket(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn keys() {
        for ok in ["a", "a/b", "a/b/", "dir/", "a b/c", ".hidden", "..a", "a/.b", "ünïcode"] {
            check_key(ok).unwrap();
        }
        for bad in ["", "/a", "a//b", "a/../b", "..", ".", "a/./b", "a\0b", "x/.basalt.meta", "a//"] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(check_key(&"k".repeat(1025)), Err(Error::KeyTooLong));
        check_key(&"k".repeat(1024)).unwrap();
    }
}
