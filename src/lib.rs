//! basalt: an S3-compatible, erasure-coded object store on a thread-per-core
//! runtime. See ARCHITECTURE.md for the map of this crate.

pub mod admin;
pub mod auth;
pub mod bench;
pub mod cluster;
pub mod config;
pub mod console;
pub mod drive;
pub mod erasure;
pub mod error;
pub mod etag;
pub mod hex;
pub mod http;
pub mod metrics;
pub mod object;
pub mod reuse;
pub mod runtime;
pub mod s3;
pub mod server;
pub mod tune;
pub mod units;

pub use error::{Error, Result};

/// `println!` for command output: a closed pipe (`basalt layout | head`) ends
/// the output quietly instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
