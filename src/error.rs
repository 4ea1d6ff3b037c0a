//! The one error type of the storage engine, and the one place that maps it to the
//! wire: every S3 error code and HTTP status basalt can answer lives in this file.
//!
//! Layers below `s3` return these variants; they never format HTTP themselves.

use crate::drive::DriveError;

/// Everything the object layer can refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the bucket name {0:?} is not valid: {1}")]
    InvalidBucketName(String, &'static str),
    #[error("the object key is not valid: {0}")]
    InvalidObjectName(&'static str),
    #[error("the object key is longer than {} bytes", crate::object::names::MAX_KEY_BYTES)]
    KeyTooLong,
    #[error("the bucket {0:?} does not exist")]
    NoSuchBucket(String),
    #[error("the bucket {0:?} already exists")]
    BucketAlreadyExists(String),
    #[error("the bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("the object does not exist")]
    NoSuchKey,
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("the requested range is not satisfiable (object size {size})")]
    InvalidRange { size: u64 },
    #[error("part {0} is missing or its ETag does not match")]
    InvalidPart(u32),
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    #[error("part number {0} is outside 1..=10000")]
    InvalidPartNumber(u32),
    #[error("part {0} is smaller than the 5 MiB minimum for all parts but the last")]
    EntityTooSmall(u32),
    #[error("the body is larger than the {0} byte limit")]
    EntityTooLarge(u64),
    #[error("the body ended after {got} bytes, {expected} were declared")]
    IncompleteBody { expected: u64, got: u64 },
    #[error("the body is longer than the {0} bytes declared")]
    BodyTooLong(u64),
    #[error("the body's MD5 does not match Content-MD5")]
    BadDigest,
    #[error("not enough drives hold a consistent copy to read ({have} of {need} needed)")]
    InsufficientReadQuorum { have: usize, need: usize },
    #[error("not enough drives accepted the write ({have} of {need} needed)")]
    InsufficientWriteQuorum { have: usize, need: usize },
    #[error("timed out waiting for a lock on the object; retry")]
    LockTimeout,
    #[error("not enough nodes are reachable to lock the object ({have} of {need} needed)")]
    NodeQuorum { have: usize, need: usize, write: bool },
    #[error("the server is starting: its drives are not formatted or agreed on yet; retry shortly")]
    NotInitialized,
    #[error("the request body could not be read: {0}")]
    ClientRead(String),
    #[error("internal error: {0}")]
    Internal(String),
    // ---- front end: HTTP, auth, S3 request syntax ----
    #[error("the request head is larger than 16 KiB or has too many headers")]
    HeadTooLarge,
    #[error("{0}")]
    BadRequest(String),
    #[error("the request signature does not match the one computed with your secret key")]
    SignatureDoesNotMatch,
    #[error("the access key does not exist")]
    InvalidAccessKeyId,
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("the difference between the request time and the server's time is too large")]
    RequestTimeTooSkewed,
    #[error("the authorization header is malformed: {0}")]
    AuthorizationMalformed(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("the body's SHA-256 does not match x-amz-content-sha256")]
    ContentSha256Mismatch,
    #[error("the {0} checksum does not match the body")]
    BadChecksum(String),
    #[error("Content-MD5 is not a valid base64 MD5")]
    InvalidDigest,
    #[error("the XML body is not well formed or does not match the schema")]
    MalformedXml,
    #[error("this operation is not implemented: {0}")]
    NotImplemented(String),
    #[error("the method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("a body needs Content-Length or chunked transfer encoding")]
    MissingContentLength,
    #[error("the POST form is not valid: {0}")]
    MalformedPost(String),
    #[error("the body arrived too slowly; the request was cut off")]
    RequestTimeout,
    #[error("not enough drives have room for the write")]
    StorageFull,
    // ---- web console ----
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("not found")]
    NotFound,
}

impl Error {
    /// The S3 error code sent in the XML body.
    pub fn s3_code(&self) -> &'static str {
        match self {
            Error::InvalidBucketName(..) => "InvalidBucketName",
            Error::InvalidObjectName(_) => "XMinioInvalidObjectName",
            Error::KeyTooLong => "KeyTooLongError",
            Error::NoSuchBucket(_) => "NoSuchBucket",
            Error::BucketAlreadyExists(_) => "BucketAlreadyOwnedByYou",
            Error::BucketNotEmpty(_) => "BucketNotEmpty",
            Error::NoSuchKey => "NoSuchKey",
            Error::NoSuchUpload => "NoSuchUpload",
            Error::InvalidRange { .. } => "InvalidRange",
            Error::InvalidPart(_) => "InvalidPart",
            Error::InvalidPartOrder => "InvalidPartOrder",
            Error::InvalidPartNumber(_) => "InvalidArgument",
            Error::EntityTooSmall(_) => "EntityTooSmall",
            Error::EntityTooLarge(_) => "EntityTooLarge",
            Error::IncompleteBody { .. } => "IncompleteBody",
            Error::BodyTooLong(_) => "IncompleteBody",
            Error::BadDigest => "BadDigest",
            Error::InsufficientReadQuorum { .. } => "XMinioReadQuorum",
            Error::InsufficientWriteQuorum { .. } => "XMinioWriteQuorum",
            Error::LockTimeout => "SlowDown",
            Error::NodeQuorum { write: true, .. } => "XMinioWriteQuorum",
            Error::NodeQuorum { write: false, .. } => "XMinioReadQuorum",
            Error::NotInitialized => "XMinioServerNotInitialized",
            Error::ClientRead(_) => "IncompleteBody",
            Error::Internal(_) => "InternalError",
            Error::HeadTooLarge => "RequestHeaderSectionTooLarge",
            Error::BadRequest(_) => "BadRequest",
            Error::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            Error::InvalidAccessKeyId => "InvalidAccessKeyId",
            Error::AccessDenied(_) => "AccessDenied",
            Error::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            Error::AuthorizationMalformed(_) => "AuthorizationHeaderMalformed",
            Error::InvalidRequest(_) => "InvalidRequest",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
            Error::BadChecksum(_) => "BadDigest",
            Error::InvalidDigest => "InvalidDigest",
            Error::MalformedXml => "MalformedXML",
            Error::NotImplemented(_) => "NotImplemented",
            Error::MethodNotAllowed => "MethodNotAllowed",
            Error::PreconditionFailed => "PreconditionFailed",
            Error::NotModified => "NotModified",
            Error::MissingContentLength => "MissingContentLength",
            Error::MalformedPost(_) => "MalformedPOSTRequest",
            Error::RequestTimeout => "RequestTimeout",
            Error::StorageFull => "XMinioStorageFull",
            Error::Unauthorized(_) => "Unauthorized",
            Error::TooManyRequests { .. } => "TooManyRequests",
            Error::NotFound => "NotFound",
        }
    }

    /// The HTTP status that goes with [`Error::s3_code`].
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidBucketName(..)
            | Error::InvalidObjectName(_)
            | Error::KeyTooLong
            | Error::InvalidPart(_)
            | Error::InvalidPartOrder
            | Error::InvalidPartNumber(_)
            | Error::EntityTooSmall(_)
            | Error::EntityTooLarge(_)
            | Error::IncompleteBody { .. }
            | Error::BodyTooLong(_)
            | Error::BadDigest
            | Error::ClientRead(_)
            | Error::HeadTooLarge
            | Error::BadRequest(_)
            | Error::AuthorizationMalformed(_)
            | Error::InvalidRequest(_)
            | Error::InvalidArgument(_)
            | Error::ContentSha256Mismatch
            | Error::BadChecksum(_)
            | Error::InvalidDigest
            | Error::MalformedXml
            | Error::MalformedPost(_)
            | Error::RequestTimeout => 400,
            Error::SignatureDoesNotMatch
            | Error::InvalidAccessKeyId
            | Error::AccessDenied(_)
            | Error::RequestTimeTooSkewed => 403,
            Error::MethodNotAllowed => 405,
            Error::MissingContentLength => 411,
            Error::PreconditionFailed => 412,
            Error::NotModified => 304,
            Error::NotImplemented(_) => 501,
            Error::StorageFull => 507,
            Error::Unauthorized(_) => 401,
            Error::TooManyRequests { .. } => 429,
            Error::NotFound => 404,
            Error::NoSuchBucket(_) | Error::NoSuchKey | Error::NoSuchUpload => 404,
            Error::BucketAlreadyExists(_) | Error::BucketNotEmpty(_) => 409,
            Error::InvalidRange { .. } => 416,
            Error::InsufficientReadQuorum { .. }
            | Error::InsufficientWriteQuorum { .. }
            | Error::LockTimeout
            | Error::NodeQuorum { .. }
            | Error::NotInitialized => 503,
            Error::Internal(_) => 500,
        }
    }
}

impl From<DriveError> for Error {
    fn from(e: DriveError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<crate::erasure::ErasureError> for Error {
    fn from(e: crate::erasure::ErasureError) -> Self {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
