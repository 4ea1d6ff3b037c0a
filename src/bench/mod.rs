//! `basalt bench`: a warp-style load generator in the same binary. It prepares
//! the objects a benchmark needs, runs the timed phase with `--concurrent`
//! workers spread round-robin over the endpoints, cleans up, and reports
//! throughput, latency percentiles (hdrhistogram), time to first byte, errors,
//! and its own CPU time beside the server's (`--server-pid`), so a reader can
//! see that the load generator was not the bottleneck.
//!
//! Why plain threads with blocking sockets and not glommio: a worker is one
//! connection doing one request at a time, which a blocking socket does with
//! the fewest syscalls (one `writev`, then reads); there is no runtime to pay
//! for, nothing to pin, and the bench stays out of the server's io_uring and
//! memlock budget when both run on one machine. The kernel's socket work, which
//! any client pays, dominates its CPU time; the report shows how much.
//!
//! Bodies are slices of one pre-generated random buffer: no per-request
//! allocation or generation of object data.

pub mod client;
pub mod procfs;
pub mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use client::{Body, Client, Credentials, Endpoint, PayloadSigning, Reply, object_path};
use stats::{CpuFigures, OpKind, OpStats, REPORT_VERSION, Report};

/// Objects a benchmark prepares by default are capped so their bytes stay
/// under this, and their count under [`DEFAULT_MAX_OBJECTS`].
const PREPARE_BUDGET_BYTES: u64 = 1 << 30;
const DEFAULT_MAX_OBJECTS: usize = 1000;
/// Keys per DeleteObjects request during cleanup (S3's maximum).
const DELETE_BATCH_KEYS: usize = 1000;
/// Threads that delete during cleanup, at most.
const CLEANUP_THREADS: usize = 8;
/// Keys per ListObjectsV2 page.
const LIST_PAGE_KEYS: usize = 1000;
/// S3's smallest part but the last.
const MIN_PART_BYTES: u64 = 5 << 20;
/// Workers at most: each is a thread and a connection.
const MAX_CONCURRENT: usize = 4096;
/// Largest object size the benchmark generates a buffer for.
const MAX_OBJECT_BYTES: u64 = 16 << 30;
/// Share of each operation in `mixed`, in percent (warp's defaults).
const MIXED_WEIGHTS: [(OpKind, u64); 4] =
    [(OpKind::Get, 45), (OpKind::Stat, 30), (OpKind::Put, 15), (OpKind::Delete, 10)];

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Upload new objects for the duration.
    Put(BenchArgs),
    /// Download prepared objects (whole, or random ranges with --range).
    Get(BenchArgs),
    /// HEAD prepared objects.
    Stat(BenchArgs),
    /// List prepared objects, 1,000 keys a page.
    List(BenchArgs),
    /// Delete prepared objects, one request each, until the duration or the objects run out.
    Delete(BenchArgs),
    /// 45% GET, 30% STAT, 15% PUT, 10% DELETE on prepared objects.
    Mixed(BenchArgs),
    /// Multipart uploads of --obj.size objects in --part.size parts.
    Multipart(BenchArgs),
    /// Print the differences between two --json reports (B against A).
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// S3 endpoints, comma separated; workers are spread over them round-robin.
    #[arg(long, default_value = "http://127.0.0.1:9000", value_delimiter = ',')]
    pub endpoint: Vec<String>,
    /// Access key; default: BASALT_ROOT_USER, AWS_ACCESS_KEY_ID, else the development key.
    #[arg(long)]
    pub access_key: Option<String>,
    /// Secret key; default: BASALT_ROOT_PASSWORD, AWS_SECRET_ACCESS_KEY, else the development key.
    #[arg(long)]
    pub secret_key: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Bucket to use; created if missing (and then removed at cleanup).
    #[arg(long, default_value = "basalt-bench")]
    pub bucket: String,
    /// Object size: 4KiB, 1MiB, 64MiB, 1GiB (KB/MB/GB are powers of 1000).
    #[arg(long = "obj.size", default_value = "1MiB")]
    pub obj_size: String,
    /// Workers (threads, each with one keep-alive connection).
    #[arg(long, default_value_t = 16)]
    pub concurrent: usize,
    /// Length of the timed phase: 30s, 2m, 1m30s, 500ms.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Objects to prepare (get, stat, list, delete, mixed); default fits 1 GiB, at most 1,000.
    #[arg(long)]
    pub objects: Option<usize>,
    /// GET random byte ranges instead of whole objects.
    #[arg(long)]
    pub range: bool,
    /// Write every figure to this file as JSON (for `basalt bench compare`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// How PUT bodies are signed: UNSIGNED-PAYLOAD, or aws-chunked streaming signatures.
    #[arg(long, value_enum, default_value = "unsigned")]
    pub payload: PayloadSigning,
    /// Chunk size of streaming signatures.
    #[arg(long = "chunk.size", default_value = "64KiB")]
    pub chunk_size: String,
    /// Part size of multipart uploads.
    #[arg(long = "part.size", default_value = "5MiB")]
    pub part_size: String,
    /// Key prefix of the benchmark's objects; default: a random one per run.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Leave the objects (and the bucket) in place.
    #[arg(long)]
    pub no_clean: bool,
    /// Use objects a previous run left (`--prefix P --no-clean`) instead of uploading them.
    #[arg(long)]
    pub no_prepare: bool,
    /// Server processes (comma separated) whose CPU time and peak memory to report beside the bench's own.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
}

/// What a benchmark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Put,
    Get,
    Stat,
    List,
    Delete,
    Mixed,
    Multipart,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Put => "put",
            Mode::Get => "get",
            Mode::Stat => "stat",
            Mode::List => "list",
            Mode::Delete => "delete",
            Mode::Mixed => "mixed",
            Mode::Multipart => "multipart",
        }
    }

    fn prepares(self) -> bool {
        matches!(self, Mode::Get | Mode::Stat | Mode::List | Mode::Delete | Mode::Mixed)
    }
}

/// Runs a `basalt bench` command. Returns the process exit code: 0, or 1 when
/// requests failed. Errors are for the person at the terminal.
pub fn main(cmd: BenchCommand) -> Result<u8, String> {
    let (mode, args) = match cmd {
        BenchCommand::Compare { a, b } => {
            let (a, b) = (read_report(&a)?, read_report(&b)?);
            print!("{}", stats::compare(&a, &b));
            return Ok(0);
        }
        BenchCommand::Put(a) => (Mode::Put, a),
        BenchCommand::Get(a) => (Mode::Get, a),
        BenchCommand::Stat(a) => (Mode::Stat, a),
        BenchCommand::List(a) => (Mode::List, a),
        BenchCommand::Delete(a) => (Mode::Delete, a),
        BenchCommand::Mixed(a) => (Mode::Mixed, a),
        BenchCommand::Multipart(a) => (Mode::Multipart, a),
    };
    let plan = Plan::new(mode, &args)?;
    let report = run(&plan)?;
    print!("{}", report.render());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot encode the report: {e}"))?;
        std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if report.total_errors() > 0 { 1 } else { 0 })
}

fn read_report(path: &PathBuf) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report: Report =
        serde_json::from_str(&text).map_err(|e| format!("{} is not a basalt bench report: {e}", path.display()))?;
    if report.version != REPORT_VERSION {
        return Err(format!(
            "{}: report version {} (this basalt reads {REPORT_VERSION})",
            path.display(),
            report.version
        ));
    }
    Ok(report)
}

/// A benchmark with its arguments checked.
pub struct Plan {
    pub mode: Mode,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub creds: Arc<Credentials>,
    pub bucket: String,
    pub prefix: String,
    pub obj_size: u64,
    pub part_size: u64,
    pub chunk_size: u64,
    pub concurrent: usize,
    pub duration: Duration,
    pub objects: usize,
    pub range: bool,
    pub signing: PayloadSigning,
    pub clean: bool,
    pub prepare: bool,
    pub server_pids: Vec<u32>,
}

impl Plan {
    pub fn new(mode: Mode, a: &BenchArgs) -> Result<Plan, String> {
        let endpoints = a
            .endpoint
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| Endpoint::parse(e).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err("--endpoint: give at least one".into());
        }
        let env = |names: [&str; 2]| names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()));
        let access_key = a
            .access_key
            .clone()
            .or_else(|| env(["BASALT_ROOT_USER", "AWS_ACCESS_KEY_ID"]))
            .unwrap_or_else(|| crate::auth::DEV_ACCESS_KEY.into());
        let secret_key = a
            .secret_key
            .clone()
            .or_else(|| env(["BASALT_ROOT_PASSWORD", "AWS_SECRET_ACCESS_KEY"]))
            .unwrap_or_else(|| crate::auth::DEV_SECRET_KEY.into());
        let obj_size = parse_size(&a.obj_size).map_err(|e| format!("--obj.size: {e}"))?;
        if obj_size > MAX_OBJECT_BYTES || (obj_size == 0 && mode == Mode::Multipart) {
            return Err(format!("--obj.size: {obj_size} bytes is out of range"));
        }
        let part_size = parse_size(&a.part_size).map_err(|e| format!("--part.size: {e}"))?;
        if mode == Mode::Multipart && part_size < MIN_PART_BYTES {
            return Err("--part.size: parts but the last must be at least 5 MiB".into());
        }
        let chunk_size = parse_size(&a.chunk_size).map_err(|e| format!("--chunk.size: {e}"))?;
        if !(1..=crate::auth::chunked::MAX_CHUNK_BYTES as u64).contains(&chunk_size) {
            return Err("--chunk.size: 1 byte to 16 MiB".into());
        }
        if !(1..=MAX_CONCURRENT).contains(&a.concurrent) {
            return Err(format!("--concurrent: 1 to {MAX_CONCURRENT}"));
        }
        let duration = parse_duration(&a.duration).map_err(|e| format!("--duration: {e}"))?;
        let objects = match a.objects {
            Some(0) => return Err("--objects: at least 1".into()),
            Some(n) => n,
            None => default_objects(mode, obj_size, a.concurrent),
        };
        if mode == Mode::Mixed && objects < a.concurrent {
            return Err("--objects: mixed needs at least one object per worker".into());
        }
        if a.no_prepare && a.prefix.is_none() {
            return Err("--no-prepare uses the objects of an earlier run: name its --prefix".into());
        }
        let prefix = a.prefix.clone().unwrap_or_else(|| format!("basalt-bench/{:08x}/", random_seed() as u32));
        Ok(Plan {
            mode,
            endpoints,
            creds: Arc::new(Credentials { access_key, secret_key, region: a.region.clone() }),
            bucket: a.bucket.clone(),
            prefix,
            obj_size,
            part_size,
            chunk_size,
            concurrent: a.concurrent,
            duration,
            objects,
            range: a.range,
            signing: a.payload,
            clean: !a.no_clean,
            prepare: !a.no_prepare,
            server_pids: a.server_pid.clone(),
        })
    }

    fn client(&self, worker: usize) -> Client {
        let ep = self.endpoints[worker % self.endpoints.len()].clone();
        Client::new(ep, self.creds.clone(), self.signing, self.chunk_size as usize)
    }

    fn prepared_key(&self, i: usize) -> String {
        format!("{}obj-{i:08}", self.prefix)
    }
}

fn default_objects(mode: Mode, size: u64, concurrent: usize) -> usize {
    if !mode.prepares() {
        return 0;
    }
    let fit = (PREPARE_BUDGET_BYTES / size.max(1)).min(DEFAULT_MAX_OBJECTS as u64) as usize;
    fit.max(concurrent).max(1)
}

/// Runs the whole benchmark: bucket, preparation, timed phase, cleanup.
pub fn run(plan: &Plan) -> Result<Report, String> {
    let buffer_bytes = if plan.mode == Mode::Multipart { plan.obj_size.min(plan.part_size) } else { plan.obj_size };
    let data: Arc<Vec<u8>> = Arc::new(random_bytes(buffer_bytes as usize, random_seed()));
    // Without preparation the bucket and its objects are an earlier run's; the
    // endpoint may even be a plain file server (benches/baseline_server.rs).
    let created_bucket = if plan.prepare { ensure_bucket(plan)? } else { false };
    let prepared = if plan.mode.prepares() && plan.prepare {
        eprintln!("basalt bench: preparing {} objects of {}", plan.objects, stats::human_bytes(plan.obj_size));
        prepare(plan, &data)?;
        plan.objects
    } else if plan.mode.prepares() {
        plan.objects
    } else {
        0
    };
    eprintln!(
        "basalt bench: {} for {:.1} s with {} workers on {} endpoint(s)",
        plan.mode.name(),
        plan.duration.as_secs_f64(),
        plan.concurrent,
        plan.endpoints.len()
    );
    let timed = timed_phase(plan, &data);
    let mut leftover: Vec<String> = timed.created;
    let mut cleanup_failures = 0;
    if plan.clean {
        leftover.extend((0..prepared).map(|i| plan.prepared_key(i)));
        eprintln!("basalt bench: cleaning up {} objects", leftover.len());
        cleanup_failures = delete_keys(plan, leftover);
        if created_bucket && cleanup_failures == 0 {
            let mut c = plan.client(0);
            match c.request("DELETE", &format!("/{}", plan.bucket), "", &[], Body::None, false) {
                Ok(r) if r.ok() => {}
                Ok(r) => eprintln!("basalt bench: could not remove bucket {}: {}", plan.bucket, r.error_text()),
                Err(e) => eprintln!("basalt bench: could not remove bucket {}: {e}", plan.bucket),
            }
        }
    }
    let elapsed = timed.elapsed;
    let total = merge_all(timed.workers.iter().map(|w| &w.stats));
    let bytes: u64 = total.values().map(|s| s.bytes).sum();
    let ops: u64 = total.iter().filter(|(k, _)| **k != OpKind::Part).map(|(_, s)| s.ops).sum();
    let per_endpoint = if plan.endpoints.len() > 1 {
        (0..plan.endpoints.len())
            .map(|e| {
                let merged = merge_all(timed.workers.iter().filter(|w| w.endpoint == e).map(|w| &w.stats));
                merged.iter().map(|(k, s)| (*k, s.summary(elapsed))).collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Report {
        version: REPORT_VERSION,
        mode: plan.mode.name().into(),
        endpoints: plan.endpoints.iter().map(|e| e.url.clone()).collect(),
        bucket: plan.bucket.clone(),
        obj_size_bytes: plan.obj_size,
        concurrent: plan.concurrent,
        duration_s: plan.duration.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        signing: match plan.signing {
            PayloadSigning::Unsigned => "unsigned".into(),
            PayloadSigning::Streaming => "streaming".into(),
        },
        objects_prepared: prepared as u64,
        ops: total.iter().map(|(k, s)| (*k, s.summary(elapsed))).collect(),
        per_endpoint,
        client: CpuFigures::new(timed.client_cpu_s, bytes, ops, None),
        server: timed.server_cpu_s.map(|cpu| CpuFigures::new(cpu, bytes, ops, Some(timed.server_peak_rss))),
        cleanup_failures,
    })
}

fn merge_all<'a>(stats: impl Iterator<Item = &'a BTreeMap<OpKind, OpStats>>) -> BTreeMap<OpKind, OpStats> {
    let mut total: BTreeMap<OpKind, OpStats> = BTreeMap::new();
    for s in stats {
        for (k, v) in s {
            total.entry(*k).or_default().merge(v);
        }
    }
    total
}

/// Creates the bucket unless it exists; true when this run created it.
fn ensure_bucket(plan: &Plan) -> Result<bool, String> {
    let mut c = plan.client(0);
    let path = format!("/{}", plan.bucket);
    let r = c.request("PUT", &path, "", &[], Body::None, true).map_err(|e| e.to_string())?;
    if r.ok() {
        return Ok(true);
    }
    let text = r.error_text();
    if r.status == 409 && (text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists")) {
        return Ok(false);
    }
    Err(format!("cannot create bucket {}: {text}", plan.bucket))
}

/// Uploads the prepared objects, `--concurrent` at a time.
fn prepare(plan: &Plan, data: &Arc<Vec<u8>>) -> Result<(), String> {
    let threads = plan.concurrent.min(plan.objects).max(1);
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut c = plan.client(t);
                    for i in (t..plan.objects).step_by(threads) {
                        let key = plan.prepared_key(i);
                        put(&mut c, plan, &key, &data[..plan.obj_size as usize])
                            .map_err(|e| format!("cannot prepare {key}: {e}"))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into()))).collect()
    });
    results.into_iter().collect()
}

/// Deletes keys with DeleteObjects, a few requests in parallel; returns how
/// many could not be deleted.
fn delete_keys(plan: &Plan, keys: Vec<String>) -> u64 {
    let batches: Vec<&[String]> = keys.chunks(DELETE_BATCH_KEYS).collect();
    let threads = CLEANUP_THREADS.min(batches.len()).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let batches = &batches;
                s.spawn(move || {
                    let mut c = plan.client(t);
                    let mut failed = 0u64;
                    for batch in batches.iter().skip(t).step_by(threads) {
                        failed += delete_batch(&mut c, plan, batch);
                    }
                    failed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

fn delete_batch(c: &mut Client, plan: &Plan, keys: &[String]) -> u64 {
    let mut xml = String::from("<Delete><Quiet>true</Quiet>");
    for k in keys {
        xml.push_str("<Object><Key>");
        xml.push_str(&xml_escape(k));
        xml.push_str("</Key></Object>");
    }
    xml.push_str("</Delete>");
    match c.request("POST", &format!("/{}", plan.bucket), "delete", &[], Body::WithMd5(xml.as_bytes()), true) {
        Ok(r) if r.ok() => String::from_utf8_lossy(&r.body).matches("<Error>").count() as u64,
        Ok(r) => {
            eprintln!("basalt bench: cleanup failed: {}", r.error_text());
            keys.len() as u64
        }
        Err(e) => {
            eprintln!("basalt bench: cleanup failed: {e}");
            keys.len() as u64
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What the timed phase measured.
struct Timed {
    workers: Vec<WorkerResult>,
    elapsed: Duration,
    client_cpu_s: f64,
    server_cpu_s: Option<f64>,
    server_peak_rss: u64,
    /// Objects the phase created that still exist.
    created: Vec<String>,
}

struct WorkerResult {
    endpoint: usize,
    stats: BTreeMap<OpKind, OpStats>,
    created: Vec<String>,
}

fn timed_phase(plan: &Plan, data: &Arc<Vec<u8>>) -> Timed {
    let barrier = Barrier::new(plan.concurrent + 1);
    let server_cpu = |pids: &[u32]| -> Option<f64> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|p| procfs::process_cpu_secs(*p)).sum()
    };
    let (workers, started, ended, cpu0, server0, sampler) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.concurrent)
            .map(|w| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut worker = Worker::new(plan, w, data);
                    barrier.wait();
                    worker.run(Instant::now() + plan.duration);
                    WorkerResult { endpoint: w % plan.endpoints.len(), stats: worker.stats, created: worker.created }
                })
            })
            .collect();
        let sampler = (!plan.server_pids.is_empty()).then(|| procfs::RssSampler::start(plan.server_pids.clone()));
        let cpu0 = procfs::own_cpu_secs();
        let server0 = server_cpu(&plan.server_pids);
        barrier.wait();
        let started = Instant::now();
        let workers: Vec<WorkerResult> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
        (workers, started, Instant::now(), cpu0, server0, sampler)
    });
    let client_cpu_s = procfs::own_cpu_secs() - cpu0;
    let server_cpu_s = match (server0, server_cpu(&plan.server_pids)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let server_peak_rss = sampler.map_or(0, |s| s.finish());
    let created = workers.iter().flat_map(|w| w.created.iter().cloned()).collect();
    Timed { workers, elapsed: ended - started, client_cpu_s, server_cpu_s, server_peak_rss, created }
}

/// One worker of the timed phase: a connection, its own figures, its own
/// random numbers, and (in delete and mixed) its own share of the objects, so
/// no two workers ever touch one key.
struct Worker<'a> {
    plan: &'a Plan,
    id: usize,
    data: &'a [u8],
    client: Client,
    rng: u64,
    stats: BTreeMap<OpKind, OpStats>,
    created: Vec<String>,
    seq: u64,
    /// delete and mixed: the prepared objects this worker owns, and whether each exists now.
    owned: Vec<(usize, bool)>,
    next_owned: usize,
    continuation: Option<String>,
}

impl<'a> Worker<'a> {
    fn new(plan: &'a Plan, id: usize, data: &'a Arc<Vec<u8>>) -> Worker<'a> {
        let owned = if matches!(plan.mode, Mode::Delete | Mode::Mixed) {
            (id..plan.objects).step_by(plan.concurrent).map(|i| (i, true)).collect()
        } else {
            Vec::new()
        };
        Worker {
            plan,
            id,
            data: data.as_slice(),
            client: plan.client(id),
            rng: random_seed() ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            stats: BTreeMap::new(),
            created: Vec::new(),
            seq: 0,
            owned,
            next_owned: 0,
            continuation: None,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: plenty for picking objects and ranges.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn run(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            let more = match self.plan.mode {
                Mode::Put => {
                    self.put_new();
                    true
                }
                Mode::Get => {
                    let i = (self.random() % self.plan.objects as u64) as usize;
                    self.get(i);
                    true
                }
                Mode::Stat => {
                    let i = (self.random() % self.plan.objects as u64) as usize;
                    self.stat(i);
                    true
                }
                Mode::List => {
                    self.list_page();
                    true
                }
                Mode::Delete => self.delete_next(),
                Mode::Mixed => {
                    self.mixed();
                    true
                }
                Mode::Multipart => {
                    self.multipart();
                    true
                }
            };
            if !more {
                break;
            }
        }
    }

    fn record(
        &mut self,
        kind: OpKind,
        started: Instant,
        result: Result<Reply, String>,
        check: impl Fn(&Reply) -> Result<u64, String>,
    ) -> bool {
        let latency = started.elapsed();
        let stats = self.stats.entry(kind).or_default();
        match result.and_then(|r| if r.ok() { Ok(r) } else { Err(r.error_text()) }) {
            Ok(r) => match check(&r) {
                Ok(bytes) => {
                    let ttfb = (kind == OpKind::Get).then_some(r.ttfb);
                    stats.success(latency, ttfb, bytes);
                    true
                }
                Err(e) => {
                    stats.error(e);
                    false
                }
            },
            Err(e) => {
                stats.error(e);
                false
            }
        }
    }

    fn put_new(&mut self) {
        self.seq += 1;
        let key = format!("{}put-w{}-{}", self.plan.prefix, self.id, self.seq);
        let started = Instant::now();
        let result = put(&mut self.client, self.plan, &key, &self.data[..self.plan.obj_size as usize]);
        let size = self.plan.obj_size;
        if self.record(OpKind::Put, started, result, |_| Ok(size)) {
            self.created.push(key);
        }
    }

    fn get(&mut self, i: usize) {
        let key = self.plan.prepared_key(i);
        let size = self.plan.obj_size;
        let range = (self.plan.range && size > 0).then(|| {
            let start = self.random() % size;
            let len = 1 + self.random() % (size - start);
            (start, start + len - 1)
        });
        let header = range.map(|(a, b)| format!("bytes={a}-{b}"));
        let headers: Vec<(&str, &str)> = header.iter().map(|h| ("Range", h.as_str())).collect();
        let started = Instant::now();
        let path = object_path(&self.plan.bucket, &key);
        let result = self.client.request("GET", &path, "", &headers, Body::None, false).map_err(|e| e.to_string());
        let expected = range.map_or(size, |(a, b)| b - a + 1);
        self.record(OpKind::Get, started, result, |r| {
            if r.body_bytes == expected {
                Ok(r.body_bytes)
            } else {
                Err(format!("GET {key}: {} bytes, expected {expected}", r.body_bytes))
            }
        });
    }

    fn stat(&mut self, i: usize) {
        let path = object_path(&self.plan.bucket, &self.plan.prepared_key(i));
        let started = Instant::now();
        let result = self.client.request("HEAD", &path, "", &[], Body::None, false).map_err(|e| e.to_string());
        self.record(OpKind::Stat, started, result, |_| Ok(0));
    }

    fn delete_key(&mut self, key: &str) -> bool {
        let path = object_path(&self.plan.bucket, key);
        let started = Instant::now();
        let result = self.client.request("DELETE", &path, "", &[], Body::None, false).map_err(|e| e.to_string());
        self.record(OpKind::Delete, started, result, |_| Ok(0))
    }

    /// Deletes this worker's next object; false when none is left.
    fn delete_next(&mut self) -> bool {
        let Some(&(i, _)) = self.owned.get(self.next_owned) else { return false };
        self.next_owned += 1;
        let key = self.plan.prepared_key(i);
        if self.delete_key(&key) {
            self.owned[self.next_owned - 1].1 = false;
        }
        true
    }

    fn list_page(&mut self) {
        let mut query = format!(
            "list-type=2&max-keys={LIST_PAGE_KEYS}&prefix={}",
            crate::auth::sigv4::uri_encode(&self.plan.prefix, false)
        );
        if let Some(token) = &self.continuation {
            query.push_str(&format!("&continuation-token={}", crate::auth::sigv4::uri_encode(token, false)));
        }
        let path = format!("/{}", self.plan.bucket);
        let started = Instant::now();
        let result = self.client.request("GET", &path, &query, &[], Body::None, true).map_err(|e| e.to_string());
        let mut next = None;
        let mut keys = 0;
        if let Ok(r) = &result {
            let doc = String::from_utf8_lossy(&r.body);
            keys = doc.matches("<Key>").count() as u64;
            if client::xml_text(&doc, "IsTruncated").as_deref() == Some("true") {
                next = client::xml_text(&doc, "NextContinuationToken");
            }
        }
        if self.record(OpKind::List, started, result, |_| Ok(0)) {
            self.stats.entry(OpKind::List).or_default().objects += keys;
        }
        self.continuation = next;
    }

    fn mixed(&mut self) {
        let roll = self.random() % 100;
        let mut acc = 0;
        let mut kind = OpKind::Get;
        for (k, w) in MIXED_WEIGHTS {
            acc += w;
            if roll < acc {
                kind = k;
                break;
            }
        }
        let present: Vec<usize> = (0..self.owned.len()).filter(|&j| self.owned[j].1).collect();
        if present.is_empty() && kind != OpKind::Put {
            kind = OpKind::Put;
        }
        let pick = |w: &mut Self, from: &[usize]| from[(w.random() % from.len() as u64) as usize];
        match kind {
            OpKind::Get => {
                let j = pick(self, &present);
                self.get(self.owned[j].0);
            }
            OpKind::Stat => {
                let j = pick(self, &present);
                self.stat(self.owned[j].0);
            }
            OpKind::Delete => {
                let j = pick(self, &present);
                let key = self.plan.prepared_key(self.owned[j].0);
                if self.delete_key(&key) {
                    self.owned[j].1 = false;
                }
            }
            _ => {
                let absent: Vec<usize> = (0..self.owned.len()).filter(|&j| !self.owned[j].1).collect();
                let j = if absent.is_empty() { pick(self, &present) } else { pick(self, &absent) };
                let key = self.plan.prepared_key(self.owned[j].0);
                let started = Instant::now();
                let result = put(&mut self.client, self.plan, &key, &self.data[..self.plan.obj_size as usize]);
                let size = self.plan.obj_size;
                if self.record(OpKind::Put, started, result, |_| Ok(size)) {
                    self.owned[j].1 = true;
                }
            }
        }
    }

    fn multipart(&mut self) {
        self.seq += 1;
        let key = format!("{}mp-w{}-{}", self.plan.prefix, self.id, self.seq);
        let started = Instant::now();
        let result = self.multipart_upload(&key);
        let size = self.plan.obj_size;
        if self.record(OpKind::Multipart, started, result, |_| Ok(size)) {
            self.created.push(key);
        }
    }

    fn multipart_upload(&mut self, key: &str) -> Result<Reply, String> {
        let path = object_path(&self.plan.bucket, key);
        let created =
            self.client.request("POST", &path, "uploads", &[], Body::None, true).map_err(|e| e.to_string())?;
        if !created.ok() {
            return Ok(created);
        }
        let upload_id = client::xml_text(&String::from_utf8_lossy(&created.body), "UploadId")
            .ok_or("CreateMultipartUpload answered no UploadId")?;
        let id = crate::auth::sigv4::uri_encode(&upload_id, false);
        let mut etags = Vec::new();
        let (size, part) = (self.plan.obj_size, self.plan.part_size);
        let parts = size.div_ceil(part);
        for n in 1..=parts {
            let len = part.min(size - (n - 1) * part) as usize;
            let started = Instant::now();
            let query = format!("partNumber={n}&uploadId={id}");
            let result = self
                .client
                .request("PUT", &path, &query, &[], Body::Payload(&self.data[..len]), false)
                .map_err(|e| e.to_string());
            let etag = result.as_ref().ok().and_then(|r| r.etag.clone());
            if !self.record(OpKind::Part, started, result, |_| Ok(0)) {
                let _ = self.client.request("DELETE", &path, &format!("uploadId={id}"), &[], Body::None, false);
                return Err(format!("part {n} of {key} failed"));
            }
            etags.push(etag.unwrap_or_default());
        }
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1, xml_escape(etag)));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let done = self
            .client
            .request("POST", &path, &format!("uploadId={id}"), &[], Body::Bytes(xml.as_bytes()), true)
            .map_err(|e| e.to_string())?;
        // CompleteMultipartUpload can fail inside a 200 answer.
        if done.ok() && String::from_utf8_lossy(&done.body).contains("<Error>") {
            return Err(format!("CompleteMultipartUpload of {key}: {}", String::from_utf8_lossy(&done.body)));
        }
        Ok(done)
    }
}

fn put(c: &mut Client, plan: &Plan, key: &str, body: &[u8]) -> Result<Reply, String> {
    let path = object_path(&plan.bucket, key);
    let r = c.request("PUT", &path, "", &[], Body::Payload(body), false).map_err(|e| e.to_string())?;
    if r.ok() { Ok(r) } else { Err(r.error_text()) }
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32) | 1
}

/// Bytes that do not compress (xorshift), generated once per run.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `4KiB`, `1MiB`, `64MiB`, `1GiB`, `4KB` (powers of 1000), `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("{s:?} is not a size like 4KiB or 64MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "ki" | "k" => 1 << 10,
        "mib" | "mi" | "m" => 1 << 20,
        "gib" | "gi" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("{s:?}: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)")),
    };
    let bytes = num * mult as f64;
    if !(0.0..=(u64::MAX as f64)).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(format!("{s:?} is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// `30s`, `2m`, `1m30s`, `500ms`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 30s, 2m or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    if total.is_zero() { Err(bad()) } else { Ok(total) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(default_objects(Mode::Get, 64 << 20, 4), 16);
        assert_eq!(default_objects(Mode::Get, 4096, 32), 1000);
        assert_eq!(default_objects(Mode::Put, 4096, 32), 0);
        let a = random_bytes(1000, 1);
        assert_eq!(a.len(), 1000);
        assert_ne!(a, random_bytes(1000, 2));
    }
}
