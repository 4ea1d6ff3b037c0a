//! HTTP/1.1, hand-rolled on httparse: request heads ([`head`]), request bodies
//! ([`body`]), responses ([`response`]), the per-connection state ([`conn`]), and
//! the accept loop of each core ([`server`]). Knows nothing of S3 beyond
//! handing each request to `s3::serve`.

pub mod body;
pub mod conn;
pub mod date;
pub mod head;
pub mod response;
pub mod server;
