//! Metrics: per-core counters and latency histograms, merged when scraped and
//! exposed in Prometheus text format at MinIO's paths.
//!
//! Every executor thread owns one [`CoreMetrics`] (a thread-local, created when
//! the core starts): request counts by S3 operation and status, hdrhistograms
//! of latency and time to first byte per operation, bytes in and out, drive I/O
//! errors, heals. Recording is a `Cell` add or a histogram increment on the
//! core's own memory: no lock, no atomic, no allocation on the request path.
//! A scrape asks every core for a copy ([`crate::runtime::Core::call_on`]),
//! merges them, adds the drives' state, and renders text ([`render`]).

pub mod jwt;
pub mod render;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::drive::{DiskInfo, DriveOp, DriveReply};
use crate::runtime::CoreCtx;

/// Latencies are kept in microseconds up to this (one hour); longer ones count
/// as one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Two significant digits: 1% resolution, 27 KiB per histogram, so the
/// histograms of every operation of a core stay under 2 MiB.
const HISTOGRAM_SIGFIG: u8 = 2;
/// Drives a core keeps error counters for before any is known (grown at start).
const INITIAL_DRIVES: usize = 16;

/// The S3 operations counted apart, named as MinIO's `api` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    ListBuckets,
    GetBucketLocation,
    GetBucketVersioning,
    ListMultipartUploads,
    ListObjectVersions,
    ListObjectsV2,
    ListObjectsV1,
    HeadBucket,
    PutBucket,
    DeleteBucket,
    DeleteMultipleObjects,
    PostPolicyBucket,
    ListObjectParts,
    GetObject,
    HeadObject,
    PutObjectPart,
    CopyObjectPart,
    CopyObject,
    PutObject,
    NewMultipartUpload,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    DeleteObject,
    /// A sub-resource basalt answers `NotImplemented`.
    NotImplemented,
    /// No operation for this method and target (`MethodNotAllowed`).
    Unknown,
    /// Refused before routing: authentication, malformed target.
    Rejected,
    /// `/minio/health/*`.
    Health,
    /// The metrics endpoints themselves.
    Metrics,
    /// The admin API (`/minio/admin/v3/...`).
    Admin,
    /// The web console's pages and API.
    Console,
}

impl Op {
    pub const ALL: [Op; 30] = [
        Op::ListBuckets,
        Op::GetBucketLocation,
        Op::GetBucketVersioning,
        Op::ListMultipartUploads,
        Op::ListObjectVersions,
        Op::ListObjectsV2,
        Op::ListObjectsV1,
        Op::HeadBucket,
        Op::PutBucket,
        Op::DeleteBucket,
        Op::DeleteMultipleObjects,
        Op::PostPolicyBucket,
        Op::ListObjectParts,
        Op::GetObject,
        Op::HeadObject,
        Op::PutObjectPart,
        Op::CopyObjectPart,
        Op::CopyObject,
        Op::PutObject,
        Op::NewMultipartUpload,
        Op::CompleteMultipartUpload,
        Op::AbortMultipartUpload,
        Op::DeleteObject,
        Op::NotImplemented,
        Op::Unknown,
        Op::Rejected,
        Op::Health,
        Op::Metrics,
        Op::Admin,
        Op::Console,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::ListBuckets => "ListBuckets",
            Op::GetBucketLocation => "GetBucketLocation",
            Op::GetBucketVersioning => "GetBucketVersioning",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::ListObjectsV2 => "ListObjectsV2",
            Op::ListObjectsV1 => "ListObjectsV1",
            Op::HeadBucket => "HeadBucket",
            Op::PutBucket => "PutBucket",
            Op::DeleteBucket => "DeleteBucket",
            Op::DeleteMultipleObjects => "DeleteMultipleObjects",
            Op::PostPolicyBucket => "PostPolicyBucket",
            Op::ListObjectParts => "ListObjectParts",
            Op::GetObject => "GetObject",
            Op::HeadObject => "HeadObject",
            Op::PutObjectPart => "PutObjectPart",
            Op::CopyObjectPart => "CopyObjectPart",
            Op::CopyObject => "CopyObject",
            Op::PutObject => "PutObject",
            Op::NewMultipartUpload => "NewMultipartUpload",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::DeleteObject => "DeleteObject",
            Op::NotImplemented => "NotImplemented",
            Op::Unknown => "Unknown",
            Op::Rejected => "Rejected",
            Op::Health => "Health",
            Op::Metrics => "Metrics",
            Op::Admin => "Admin",
            Op::Console => "Console",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// HTTP statuses counted apart; anything else counts under its class (`2xx` ...).
pub const STATUSES: [u16; 19] =
    [200, 204, 206, 304, 400, 403, 404, 405, 409, 411, 412, 413, 416, 431, 500, 501, 503, 504, 507];
/// Slots per operation: the statuses above, then 1xx..5xx for the rest.
const STATUS_SLOTS: usize = STATUSES.len() + 5;

fn status_slot(status: u16) -> usize {
    match STATUSES.iter().position(|s| *s == status) {
        Some(i) => i,
        None => STATUSES.len() + (status as usize / 100).clamp(1, 5) - 1,
    }
}

/// The label of a status slot: `200`, or `2xx` for the rest of a class.
pub fn status_label(slot: usize) -> String {
    match STATUSES.get(slot) {
        Some(s) => s.to_string(),
        None => format!("{}xx", slot - STATUSES.len() + 1),
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, HISTOGRAM_SIGFIG).expect("bounds are valid")
}

/// One core's figures.
struct CoreMetrics {
    /// `[op][status slot]`.
    requests: Vec<[Cell<u64>; STATUS_SLOTS]>,
    latency_us: Vec<RefCell<Histogram<u64>>>,
    ttfb_us: Vec<RefCell<Histogram<u64>>>,
    received_bytes: Cell<u64>,
    sent_bytes: Cell<u64>,
    /// By drive index; grown at start to the node's drive count.
    drive_io_errors: RefCell<Vec<u64>>,
    heal_objects: Cell<u64>,
    heal_drives: Cell<u64>,
    heal_failed_drives: Cell<u64>,
}

impl CoreMetrics {
    fn new() -> CoreMetrics {
        CoreMetrics {
            requests: Op::ALL.iter().map(|_| std::array::from_fn(|_| Cell::new(0))).collect(),
            latency_us: Op::ALL.iter().map(|_| RefCell::new(new_histogram())).collect(),
            ttfb_us: Op::ALL.iter().map(|_| RefCell::new(new_histogram())).collect(),
            received_bytes: Cell::new(0),
            sent_bytes: Cell::new(0),
            drive_io_errors: RefCell::new(vec![0; INITIAL_DRIVES]),
            heal_objects: Cell::new(0),
            heal_drives: Cell::new(0),
            heal_failed_drives: Cell::new(0),
        }
    }
}

thread_local! {
    static CORE: CoreMetrics = CoreMetrics::new();
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// Creates this core's metrics (executor start), so the first request pays
/// no allocation; `drives` sizes the per-drive counters.
pub fn init_core(drives: usize) {
    CORE.with(|m| {
        let mut errors = m.drive_io_errors.borrow_mut();
        if errors.len() < drives {
            errors.resize(drives, 0);
        }
    });
}

/// Counts a finished request: its latency to the last byte sent, and the
/// time until its response head was ready.
pub fn record_request(op: Op, status: u16, latency: Duration, ttfb: Duration) {
    CORE.with(|m| {
        let i = op.index();
        add(&m.requests[i][status_slot(status)], 1);
        let us = |d: Duration| (d.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        m.latency_us[i].borrow_mut().saturating_record(us(latency));
        m.ttfb_us[i].borrow_mut().saturating_record(us(ttfb));
    });
}

/// Bytes read from S3 clients' sockets.
pub fn received(bytes: usize) {
    CORE.with(|m| add(&m.received_bytes, bytes as u64));
}

/// Bytes written to S3 clients' sockets.
pub fn sent(bytes: usize) {
    CORE.with(|m| add(&m.sent_bytes, bytes as u64));
}

/// An I/O error on drive `index` (counted by its owner core).
pub fn drive_io_error(index: usize) {
    CORE.with(|m| {
        let mut errors = m.drive_io_errors.borrow_mut();
        // Only past the drive count given at start, which a drive index never is.
        if errors.len() <= index {
            errors.resize(index + 1, 0);
        }
        errors[index] += 1;
    });
}

/// An object healed: `drives` rewritten, `failed` that could not be.
pub fn healed(drives: usize, failed: usize) {
    CORE.with(|m| {
        if drives > 0 {
            add(&m.heal_objects, 1);
        }
        add(&m.heal_drives, drives as u64);
        add(&m.heal_failed_drives, failed as u64);
    });
}

/// A copy of one or more cores' figures, sent between cores and merged.
#[derive(Clone)]
pub struct Snapshot {
    pub requests: Vec<[u64; STATUS_SLOTS]>,
    pub latency_us: Vec<Histogram<u64>>,
    pub ttfb_us: Vec<Histogram<u64>>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub drive_io_errors: Vec<u64>,
    pub heal_objects: u64,
    pub heal_drives: u64,
    pub heal_failed_drives: u64,
    /// Body bytes hashed for ETags by the per-core hashers, and of those, the
    /// bytes hashed side by side with other bodies (`crate::etag`).
    pub md5_bytes: u64,
    pub md5_shared_bytes: u64,
    /// Local drives of the cores merged: (index, path).
    pub drive_paths: Vec<(usize, String)>,
    pub cores: usize,
}

/// This core's figures.
pub fn snapshot() -> Snapshot {
    let (md5_bytes, md5_shared_bytes) = crate::etag::hashed_bytes();
    CORE.with(|m| Snapshot {
        requests: m.requests.iter().map(|row| std::array::from_fn(|i| row[i].get())).collect(),
        latency_us: m.latency_us.iter().map(|h| h.borrow().clone()).collect(),
        ttfb_us: m.ttfb_us.iter().map(|h| h.borrow().clone()).collect(),
        received_bytes: m.received_bytes.get(),
        sent_bytes: m.sent_bytes.get(),
        drive_io_errors: m.drive_io_errors.borrow().clone(),
        heal_objects: m.heal_objects.get(),
        heal_drives: m.heal_drives.get(),
        heal_failed_drives: m.heal_failed_drives.get(),
        md5_bytes,
        md5_shared_bytes,
        drive_paths: Vec::new(),
        cores: 1,
    })
}

impl Snapshot {
    pub fn merge(&mut self, o: &Snapshot) {
        for (mine, theirs) in self.requests.iter_mut().zip(&o.requests) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for (a, b) in self.latency_us.iter_mut().zip(&o.latency_us) {
            // Same bounds on every core: adding cannot fail.
            let _ = a.add(b);
        }
        for (a, b) in self.ttfb_us.iter_mut().zip(&o.ttfb_us) {
            let _ = a.add(b);
        }
        self.received_bytes += o.received_bytes;
        self.sent_bytes += o.sent_bytes;
        if self.drive_io_errors.len() < o.drive_io_errors.len() {
            self.drive_io_errors.resize(o.drive_io_errors.len(), 0);
        }
        for (a, b) in self.drive_io_errors.iter_mut().zip(&o.drive_io_errors) {
            *a += b;
        }
        self.heal_objects += o.heal_objects;
        self.heal_drives += o.heal_drives;
        self.heal_failed_drives += o.heal_failed_drives;
        self.md5_bytes += o.md5_bytes;
        self.md5_shared_bytes += o.md5_shared_bytes;
        self.drive_paths.extend(o.drive_paths.iter().cloned());
        self.cores += o.cores;
    }

    /// Requests of `op`, every status.
    pub fn requests_of(&self, op: Op) -> u64 {
        self.requests[op.index()].iter().sum()
    }
}

/// One drive as a scrape sees it.
pub struct DriveState {
    pub index: usize,
    pub path: String,
    /// `None` when the drive did not answer (offline).
    pub info: Option<DiskInfo>,
    pub io_errors: u64,
}

/// Which endpoint was scraped; `/metrics` gets both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Node,
    All,
}

/// The scrape endpoint `path` names, if any.
pub fn endpoint(path: &str) -> Option<Scope> {
    match path {
        "/minio/v2/metrics/cluster" => Some(Scope::Cluster),
        "/minio/v2/metrics/node" => Some(Scope::Node),
        "/metrics" => Some(Scope::All),
        _ => None,
    }
}

/// Who may scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeAuth {
    /// A signed S3 request or a bearer JWT (MinIO's default, `jwt`).
    Jwt,
    /// Anyone (`BASALT_PROMETHEUS_AUTH_TYPE=public`).
    Public,
}

impl ScrapeAuth {
    /// From `BASALT_PROMETHEUS_AUTH_TYPE` (or MinIO's `MINIO_PROMETHEUS_AUTH_TYPE`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ScrapeAuth, String> {
        for var in ["BASALT_PROMETHEUS_AUTH_TYPE", "MINIO_PROMETHEUS_AUTH_TYPE"] {
            if let Some(v) = lookup(var) {
                return match v.trim().to_ascii_lowercase().as_str() {
                    "jwt" | "" => Ok(ScrapeAuth::Jwt),
                    "public" => Ok(ScrapeAuth::Public),
                    other => Err(format!("{var}={other:?}: use jwt (the default) or public")),
                };
            }
        }
        Ok(ScrapeAuth::Jwt)
    }
}

/// Gathers every core's figures and the drives' state, and renders them.
pub async fn scrape(ctx: &Rc<CoreCtx>, scope: Scope) -> String {
    let drives = ctx.objects.layout().drives;
    let local_paths = move |core: &crate::runtime::Core| -> Vec<(usize, String)> {
        (0..drives).filter_map(|i| core.local_drive(i).map(|d| (i, d.root().display().to_string()))).collect()
    };
    let mut total = snapshot();
    total.drive_paths = local_paths(&ctx.core);
    for core in (0..ctx.core.cores()).filter(|c| *c != ctx.core.id()) {
        let theirs = ctx
            .core
            .call_on(core, move |c| {
                let mut s = snapshot();
                s.drive_paths = local_paths(c);
                s
            })
            .await;
        if let Some(s) = theirs {
            total.merge(&s);
        }
    }
    // The node scope shows this node's drives; the cluster scope every drive,
    // other nodes' asked over the inter-node protocol (offline if unreachable).
    let topo = ctx.core.topology().clone();
    let shown: Vec<usize> = (0..drives).filter(|i| scope == Scope::Cluster || topo.is_local(*i)).collect();
    let infos = futures_util::future::join_all(
        shown.into_iter().map(|i| async move { (i, ctx.core.drive_handle(i).call(DriveOp::DiskInfo).await) }),
    )
    .await;
    let states: Vec<DriveState> = infos
        .into_iter()
        .map(|(index, r)| DriveState {
            index,
            path: total
                .drive_paths
                .iter()
                .find(|(i, _)| *i == index)
                .map_or_else(|| topo.endpoints[index].text.clone(), |p| p.1.clone()),
            info: match r {
                Ok(DriveReply::Info(info)) => Some(info),
                _ => None,
            },
            io_errors: total.drive_io_errors.get(index).copied().unwrap_or(0),
        })
        .collect();
    render::render(&total, &states, scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_merge_across_cores() {
        // Each test thread has its own core metrics.
        let other = std::thread::spawn(|| {
            init_core(4);
            record_request(Op::PutObject, 200, Duration::from_millis(3), Duration::from_millis(1));
            drive_io_error(2);
            snapshot()
        })
        .join()
        .unwrap();
        init_core(4);
        record_request(Op::PutObject, 200, Duration::from_millis(5), Duration::from_millis(2));
        record_request(Op::PutObject, 507, Duration::from_millis(1), Duration::from_millis(1));
        record_request(Op::GetObject, 599, Duration::from_secs(7200), Duration::from_millis(1));
        received(100);
        sent(50);
        healed(2, 1);
        let mut s = snapshot();
        s.merge(&other);
        assert_eq!(s.cores, 2);
        assert_eq!(s.requests_of(Op::PutObject), 3);
        assert_eq!(s.requests[Op::PutObject.index()][status_slot(507)], 1);
        assert_eq!(status_label(status_slot(599)), "5xx");
        assert_eq!(status_label(status_slot(200)), "200");
        assert_eq!(s.latency_us[Op::PutObject.index()].len(), 3);
        // Past the histogram's range counts as its top.
        assert!(s.latency_us[Op::GetObject.index()].max() >= MAX_LATENCY_US / 2);
        assert_eq!((s.received_bytes, s.sent_bytes), (100, 50));
        assert_eq!(s.drive_io_errors[2], 1);
        assert_eq!((s.heal_objects, s.heal_drives, s.heal_failed_drives), (1, 2, 1));
        assert_eq!(Op::ALL.iter().enumerate().filter(|(i, op)| op.index() != *i).count(), 0);
    }

    #[test]
    fn operations_are_named_as_routed() {
        use crate::http::head::{Parsed, parse, parse_query};
        let op = |head: &str| {
            let raw = format!("{head} HTTP/1.1\r\nHost: x\r\n\r\n");
            let Ok(Parsed::Complete(mut req, _)) = parse(raw.as_bytes()) else { panic!("{head}") };
            if head.contains("copy") {
                req.headers.push(("x-amz-copy-source".into(), "/b/src".into()));
            }
            let path = req.raw_path.trim_start_matches('/').to_string();
            let (bucket, key) =
                path.split_once('/').map_or((path.clone(), String::new()), |(b, k)| (b.into(), k.into()));
            let t = crate::s3::Target { bucket, key, query: parse_query(&req.raw_query).unwrap() };
            crate::s3::operation(&req, &t)
        };
        for (head, expected) in [
            ("GET /", Op::ListBuckets),
            ("GET /b", Op::ListObjectsV1),
            ("GET /b?list-type=2", Op::ListObjectsV2),
            ("GET /b?location", Op::GetBucketLocation),
            ("GET /b?uploads", Op::ListMultipartUploads),
            ("GET /b?acl", Op::NotImplemented),
            ("PUT /b", Op::PutBucket),
            ("HEAD /b", Op::HeadBucket),
            ("DELETE /b", Op::DeleteBucket),
            ("POST /b?delete", Op::DeleteMultipleObjects),
            ("GET /b/k", Op::GetObject),
            ("HEAD /b/k", Op::HeadObject),
            ("PUT /b/k", Op::PutObject),
            ("PUT /b/k?copy", Op::CopyObject),
            ("PUT /b/k?partNumber=1&uploadId=u", Op::PutObjectPart),
            ("PUT /b/k?partNumber=1&uploadId=u&copy", Op::CopyObjectPart),
            ("POST /b/k?uploads", Op::NewMultipartUpload),
            ("POST /b/k?uploadId=u", Op::CompleteMultipartUpload),
            ("GET /b/k?uploadId=u", Op::ListObjectParts),
            ("DELETE /b/k?uploadId=u", Op::AbortMultipartUpload),
            ("DELETE /b/k", Op::DeleteObject),
            ("PATCH /b/k", Op::Unknown),
        ] {
            assert_eq!(op(head), expected, "{head}");
        }
    }

    #[test]
    fn scrape_auth_from_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(ScrapeAuth::from_lookup(env(&[])), Ok(ScrapeAuth::Jwt));
        assert_eq!(ScrapeAuth::from_lookup(env(&[("BASALT_PROMETHEUS_AUTH_TYPE", "public")])), Ok(ScrapeAuth::Public));
        assert_eq!(ScrapeAuth::from_lookup(env(&[("MINIO_PROMETHEUS_AUTH_TYPE", "Public")])), Ok(ScrapeAuth::Public));
        assert!(ScrapeAuth::from_lookup(env(&[("BASALT_PROMETHEUS_AUTH_TYPE", "open")])).is_err());
        assert_eq!(endpoint("/minio/v2/metrics/node"), Some(Scope::Node));
        assert_eq!(endpoint("/metrics/x"), None);
    }
}
