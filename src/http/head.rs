//! Request heads: reading one from a connection buffer with httparse, within
//! limits, into an owned [`Request`].

use crate::error::Error;

/// A request head larger than this is refused: S3 caps headers at 8 KiB of user
/// metadata, and 16 KiB leaves room for long signed URLs.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 100;
/// Longest request target (path and query) accepted.
pub const MAX_TARGET_BYTES: usize = 8 << 10;

/// One parsed request head. Header names are lower case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path as sent, still percent-encoded.
    pub raw_path: String,
    /// The query string as sent (without '?'), still percent-encoded.
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    /// HTTP/1.0 closes by default.
    pub http10: bool,
    /// The address of the client on the other end of the connection, when known.
    pub peer: Option<std::net::IpAddr>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection closed after this request.
    pub fn wants_close(&self) -> bool {
        match self.header("connection").map(str::to_ascii_lowercase) {
            Some(v) if v.contains("close") => true,
            Some(v) if v.contains("keep-alive") => false,
            _ => self.http10,
        }
    }
}

/// Outcome of trying to parse a head from the bytes received so far.
pub enum Parsed {
    /// A complete head of this many bytes.
    Complete(Request, usize),
    /// Need more bytes.
    Partial,
}

/// Parses a request head from the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(e) => return Err(Error::BadRequest(format!("malformed request: {e}"))),
    };
    let len = match status {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => {
            return if buf.len() >= MAX_HEAD_BYTES { Err(Error::HeadTooLarge) } else { Ok(Parsed::Partial) };
        }
    };
    if len > MAX_HEAD_BYTES {
        return Err(Error::HeadTooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_TARGET_BYTES {
        return Err(Error::KeyTooLong);
    }
    if !target.starts_with('/') {
        return Err(Error::BadRequest("the request target must be a path".into()));
    }
    let (raw_path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut parsed = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| Error::BadRequest(format!("header {} is not valid UTF-8", h.name)))?;
        parsed.push((h.name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let http10 = req.version == Some(0);
    Ok(Parsed::Complete(Request { method, raw_path, raw_query, headers: parsed, http10, peer: None }, len))
}

/// Decodes `%XX` escapes (and, in queries, `+` as space).
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(|| Error::BadRequest("bad percent escape".into()))?;
                let hex = std::str::from_utf8(hex).map_err(|_| Error::BadRequest("bad percent escape".into()))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| Error::BadRequest("bad percent escape".into()))?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::BadRequest("the request path is not valid UTF-8".into()))
}

/// Splits and decodes a query string into (name, value) pairs, in order.
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, Error> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(n, true)?, percent_decode(v, true)?))
        })
        .collect()
}

/// A complete request head, parsed, for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn request_for_test(raw: &str) -> Request {
    match parse(raw.as_bytes()) {
        Ok(Parsed::Complete(r, _)) => r,
        other => panic!("not a complete request head: {raw:?} ({:?})", other.is_ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_limits() {
        let raw = b"GET /b/k%20x?list-type=2&prefix=a%2Fb HTTP/1.1\r\nHost: x\r\nX-Amz-Date: 1\r\n\r\nrest";
        let Parsed::Complete(req, len) = parse(raw).unwrap() else { panic!("partial") };
        assert_eq!(len, raw.len() - 4);
        assert_eq!((req.method.as_str(), req.raw_path.as_str()), ("GET", "/b/k%20x"));
        assert_eq!(req.header("x-amz-date"), Some("1"));
        assert_eq!(percent_decode(&req.raw_path, false).unwrap(), "/b/k x");
        let q = parse_query(&req.raw_query).unwrap();
        assert_eq!(q[1], ("prefix".to_string(), "a/b".to_string()));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(Parsed::Partial)));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert!(matches!(parse(big.as_bytes()), Err(Error::HeadTooLarge)));
        assert!(parse(b"\x00\x01garbage\r\n\r\n").is_err());
        assert!(percent_decode("%zz", false).is_err());
    }
}
