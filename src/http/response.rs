//! Responses: status, headers, and a body that is empty, a small buffer, or an
//! object streaming from the object layer. The head leaves in the same
//! `sendmsg` as the body (or its first pieces), uncopied, so small responses
//! never wait on a delayed ACK.

use bytes::Bytes;

use super::conn::Conn;
use crate::drive::Piece;
use crate::error::Error;
use crate::object::ObjectReader;

pub enum ResponseBody {
    Empty,
    Bytes(Bytes),
    /// Boxed: a reader is large and most responses are not objects.
    Object(Box<ObjectReader>),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ResponseBody,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: ResponseBody::Empty }
    }

    pub fn with_body(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
        let mut r = Response::new(status);
        r.header("content-type", content_type);
        r.body = ResponseBody::Bytes(body.into());
        r
    }

    pub fn header(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a response. `head_only` (a HEAD request) keeps the headers a GET
/// would have but sends no body. Returns once the last byte is handed to the socket.
pub async fn write(
    conn: &mut Conn,
    mut resp: Response,
    request_id: &str,
    head_only: bool,
    close: bool,
) -> Result<(), Error> {
    let length = match &resp.body {
        ResponseBody::Empty => 0,
        ResponseBody::Bytes(b) => b.len() as u64,
        ResponseBody::Object(r) => r.remaining(),
    };
    if !resp.has_header("content-length") {
        resp.header("content-length", length.to_string());
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "date: {}\r\nserver: basalt\r\nx-amz-request-id: {request_id}\r\n",
        super::date::rfc1123(super::date::now_secs())
    ));
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let head = Bytes::from(head.into_bytes());
    match resp.body {
        ResponseBody::Empty => conn.write_all(&head).await?,
        _ if head_only => conn.write_all(&head).await?,
        ResponseBody::Bytes(b) => conn.write_all_vectored(&[head, b]).await?,
        ResponseBody::Object(mut reader) => {
            // Pieces go out from where they were read, each batch dropped
            // (its buffers freed) once sent.
            let mut first = vec![Piece::from(head)];
            first.extend(reader.next_pieces().await?);
            conn.write_all_vectored(&first).await?;
            drop(first);
            loop {
                // Headers are gone: on an error, the only honest signal left is a short body.
                let pieces = reader.next_pieces().await?;
                if pieces.is_empty() {
                    break;
                }
                conn.write_all_vectored(&pieces).await?;
            }
        }
    }
    conn.flush().await
}
