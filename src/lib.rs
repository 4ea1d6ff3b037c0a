//! basalt: an S3-compatible, erasure-coded object store on a thread-per-core
//! runtime. See ARCHITECTURE.md for the map of this crate.

pub mod config;
pub mod drive;
pub mod erasure;
pub mod error;
pub mod object;
pub mod runtime;

pub use error::{Error, Result};
