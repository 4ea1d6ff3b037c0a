//! This machine's limits, for `benches/e2e.sh` to hold the server against:
//! per-core CPU cost of MD5 (one body alone, with the md-5 crate and with
//! basalt's own, and two bodies side by side in lanes, as a core hashes two
//! PUTs at once), SHA-256, the bitrot hash (XXH3-64), Reed-Solomon
//! encode (with the bitrot hash of every shard, as a PUT pays it), decode of a
//! block that lost min(k, m) data shards, and memcpy;
//! O_DIRECT sequential write and read bandwidth and 4 KiB write + fdatasync
//! latency (one writer, and the rate with many) in the drives' filesystem;
//! the rate of small-object commits done with plain syscalls (what a small PUT
//! asks of the filesystem, without a server around it); loopback TCP
//! throughput and its CPU cost.
//!
//! CPU costs are CPU seconds of the measuring thread (getrusage RUSAGE_THREAD)
//! per GiB, not wall time, so a busy neighbour on a shared machine slows the
//! measurement down without changing its result much.
//!
//! Run: `cargo run --release --example limits -- --dir /mnt/disk1 [--data 2 --parity 2] [--json FILE]`;
//! `--small-writes-only` measures just the fdatasync rate and the small-object
//! commits (what `benches/e2e.sh` measures again right before its small PUTs),
//! and leaves the commits' files in DIR.

use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basalt::erasure::{BLOCK_SIZE_BYTES, Erasure, bitrot_hash};
use md5::{Digest, Md5};

#[path = "aligned.rs"]
mod aligned;
use aligned::Aligned;

/// Each CPU measurement runs at least this long.
const CPU_RUN: Duration = Duration::from_millis(1500);
/// Bytes of the O_DIRECT sequential test file.
const SEQ_FILE_BYTES: usize = 512 << 20;
/// O_DIRECT request size (a multiple of `aligned::ALIGN`).
const SEQ_IO_BYTES: usize = 1 << 20;
/// 4 KiB write + fdatasync rounds for the latency figure.
const SYNC_ROUNDS: usize = 300;
/// Writers for the fdatasync rate under concurrency (the 4 KiB benchmark's).
const SYNC_WRITERS: usize = 32;
const SYNC_RATE_RUN: Duration = Duration::from_secs(3);
/// Drives the small-object commit test spreads over (as `benches/e2e.sh` runs basalt).
const COMMIT_DRIVES: usize = 4;
/// Bytes of a small object's metadata file: a 4 KiB object inline, plus its metadata.
const COMMIT_FILE_BYTES: usize = 4096 + 512;
/// Loopback transfer length and write size.
const LOOPBACK_RUN: Duration = Duration::from_secs(2);
const LOOPBACK_WRITE_BYTES: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

const USAGE: &str = "--dir DIR [--data K --parity M] [--json FILE] [--small-writes-only]";

fn thread_cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    s(u.user_time()) + s(u.system_time())
}

fn process_cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    s(u.user_time()) + s(u.system_time())
}

/// CPU seconds per GiB of `bytes_per_call` processed by `f`.
fn cpu_per_gib(bytes_per_call: usize, mut f: impl FnMut() -> u64) -> f64 {
    let mut sink = 0u64;
    for _ in 0..3 {
        sink ^= f();
    }
    let (wall, cpu) = (Instant::now(), thread_cpu_secs());
    let mut bytes = 0usize;
    while wall.elapsed() < CPU_RUN {
        sink ^= f();
        bytes += bytes_per_call;
    }
    std::hint::black_box(sink);
    (thread_cpu_secs() - cpu) / (bytes as f64 / GIB)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn disk(dir: &Path) -> serde_json::Value {
    std::fs::create_dir_all(dir).expect("create the test directory");
    let path = dir.join(".basalt-limits.tmp");
    let direct = libc_o_direct();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .custom_flags(direct)
        .open(&path)
        .expect("O_DIRECT open (tmpfs cannot do O_DIRECT)");
    let mut buf = Aligned::new(SEQ_IO_BYTES);
    buf.bytes().iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7 % 251) as u8);
    let gib = SEQ_FILE_BYTES as f64 / GIB;
    let (t, cpu) = (Instant::now(), thread_cpu_secs());
    for off in (0..SEQ_FILE_BYTES).step_by(SEQ_IO_BYTES) {
        file.write_all_at(buf.bytes(), off as u64).expect("O_DIRECT write");
    }
    file.sync_data().expect("fdatasync");
    let write_mib_s = SEQ_FILE_BYTES as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    let write_cpu = (thread_cpu_secs() - cpu) / gib;
    let (t, cpu) = (Instant::now(), thread_cpu_secs());
    for off in (0..SEQ_FILE_BYTES).step_by(SEQ_IO_BYTES) {
        file.read_exact_at(buf.bytes(), off as u64).expect("O_DIRECT read");
    }
    let read_mib_s = SEQ_FILE_BYTES as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64();
    let read_cpu = (thread_cpu_secs() - cpu) / gib;
    drop(file);
    let _ = std::fs::remove_file(&path);

    // 4 KiB appended and fdatasynced, one writer: the latency a small PUT waits for.
    let file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path).expect("open");
    let block = [0x5au8; 4096];
    let mut lat_ms = Vec::with_capacity(SYNC_ROUNDS);
    for i in 0..SYNC_ROUNDS {
        let t = Instant::now();
        file.write_all_at(&block, (i * 4096) as u64).expect("write");
        file.sync_data().expect("fdatasync");
        lat_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    lat_ms.sort_by(f64::total_cmp);

    serde_json::json!({
        "odirect_write_mib_s": write_mib_s,
        "odirect_read_mib_s": read_mib_s,
        "odirect_write_cpu_s_per_gib": write_cpu,
        "odirect_read_cpu_s_per_gib": read_cpu,
        "fsync_4k_p50_ms": percentile(&lat_ms, 0.5),
        "fsync_4k_p99_ms": percentile(&lat_ms, 0.99),
    })
}

/// What small PUTs are held against: the rate of 4 KiB write + fdatasync with
/// `SYNC_WRITERS` writers at once, and the rate of small-object commits done
/// with plain syscalls. Both depend on the filesystem's state as well as the
/// disk (a journal-less ext4 scans the inodes deleted in the last minutes on
/// every create), so `benches/e2e.sh` measures them again right before its
/// small PUTs, in the state those find; with `keep`, the commits' files are
/// left for the caller to remove, so that deleting them does not slow down
/// whatever creates files next.
fn small_writes(dir: &Path, keep: bool) -> serde_json::Value {
    std::fs::create_dir_all(dir).expect("create the test directory");
    let block = [0x5au8; 4096];
    // Many writers at once: what the filesystem sustains when concurrent PUTs'
    // syncs overlap (journal commits group them).
    let stop = Instant::now() + SYNC_RATE_RUN;
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SYNC_WRITERS)
            .map(|w| {
                let p = dir.join(format!(".basalt-limits-{w}.tmp"));
                let block = &block;
                s.spawn(move || {
                    let f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&p).expect("open");
                    let mut n = 0;
                    while Instant::now() < stop {
                        f.write_all_at(block, (n * 4096) as u64).expect("write");
                        f.sync_data().expect("fdatasync");
                        n += 1;
                    }
                    drop(f);
                    let _ = std::fs::remove_file(&p);
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let (commits_per_s, commit_cpu_ms) = small_commits(dir, keep);
    serde_json::json!({
        "small_commits_per_s": commits_per_s,
        "small_commit_cpu_ms": commit_cpu_ms,
        "small_commit_drives": COMMIT_DRIVES,
        "fsync_4k_parallel_per_s": total as f64 / SYNC_RATE_RUN.as_secs_f64(),
        "fsync_parallel_writers": SYNC_WRITERS,
    })
}

/// What one drive's share of a small PUT asks of the filesystem, done with
/// plain syscalls by `SYNC_WRITERS` writers on each of `COMMIT_DRIVES` drive
/// directories at once: make the key's directory, write the metadata file to a
/// temp name beside it, fdatasync, rename it into place, fsync the key's
/// directory and its parent (the durable commit of `src/drive/durable.rs`).
/// Returns commits per second (all drives together) and CPU milliseconds per
/// commit (the whole process, kernel included).
fn small_commits(dir: &Path, keep: bool) -> (f64, f64) {
    let root = dir.join(".basalt-limits-commits");
    let data = vec![0x3cu8; COMMIT_FILE_BYTES];
    let cpu = process_cpu_secs();
    let stop = Instant::now() + SYNC_RATE_RUN;
    let start = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..COMMIT_DRIVES * SYNC_WRITERS)
            .map(|w| {
                let drive = root.join(format!("d{}", w % COMMIT_DRIVES));
                let parent = drive.join("bucket");
                let data = &data;
                s.spawn(move || {
                    std::fs::create_dir_all(&parent).expect("commit test directory");
                    let mut n = 0;
                    while Instant::now() < stop {
                        let key = parent.join(format!("w{w}-{n}"));
                        let t = key.join("meta.tmp");
                        std::fs::create_dir(&key).expect("mkdir");
                        let mut f = std::fs::File::create(&t).expect("create");
                        f.write_all(data).expect("write");
                        f.sync_data().expect("fdatasync");
                        std::fs::rename(&t, key.join("meta")).expect("rename");
                        std::fs::File::open(&key).and_then(|d| d.sync_all()).expect("fsync");
                        std::fs::File::open(&parent).and_then(|d| d.sync_all()).expect("fsync");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    let cpu_ms = (process_cpu_secs() - cpu) * 1000.0 / total.max(1) as f64;
    if !keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    (total as f64 / secs, cpu_ms)
}

fn libc_o_direct() -> i32 {
    nix::fcntl::OFlag::O_DIRECT.bits()
}

fn loopback() -> serde_json::Value {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let cpu0 = process_cpu_secs();
    let t = Instant::now();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    });
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let chunk = vec![0xa5u8; LOOPBACK_WRITE_BYTES];
    while t.elapsed() < LOOPBACK_RUN {
        s.write_all(&chunk).expect("write");
    }
    drop(s);
    let bytes = reader.join().expect("reader");
    let secs = t.elapsed().as_secs_f64();
    serde_json::json!({
        "loopback_mib_s": bytes as f64 / (1 << 20) as f64 / secs,
        "loopback_cpu_s_per_gib": (process_cpu_secs() - cpu0) / (bytes as f64 / GIB),
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut json, mut data, mut parity) = (None::<PathBuf>, None::<PathBuf>, 2usize, 2usize);
    let mut small_writes_only = false;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = Some(value().into()),
            "--json" => json = Some(value().into()),
            "--data" => data = value().parse().expect("--data N"),
            "--parity" => parity = value().parse().expect("--parity N"),
            "--small-writes-only" => small_writes_only = true,
            other => panic!("unknown argument {other}; use {USAGE}"),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: limits {USAGE}");
        std::process::exit(2);
    };
    if small_writes_only {
        return write_json(&small_writes(&dir, true), json.as_deref());
    }
    let block: Vec<u8> = (0..BLOCK_SIZE_BYTES).map(|i| (i * 31 % 251) as u8).collect();
    let erasure = Erasure::new(data, parity, BLOCK_SIZE_BYTES).expect("layout");
    let mut copy_target = vec![0u8; BLOCK_SIZE_BYTES];
    // A block whose first `min(k, m)` data shards are lost: what a degraded GET
    // decodes for every block when that many drives holding data are gone.
    let coded: Vec<bytes::Bytes> = erasure.encode(&block).expect("encode");
    let lost = data.min(parity);
    let shard_len = erasure.shard_size(BLOCK_SIZE_BYTES);
    let mut out = serde_json::json!({
        "layout": format!("{data}+{parity}"),
        "md5_crate_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || Md5::digest(&block)[0] as u64),
        "md5_basalt_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || basalt::etag::Md5::digest(&block)[0] as u64),
        // Per GiB of body: two blocks hashed in one pass.
        "md5_two_lanes_cpu_s_per_gib": cpu_per_gib(2 * BLOCK_SIZE_BYTES, || {
            let mut state = [[0u32; 4]; 2];
            basalt::etag::compress(&mut state, &[&block, &block]);
            state[1][0] as u64
        }),
        "sha256_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || {
            ring::digest::digest(&ring::digest::SHA256, &block).as_ref()[0] as u64
        }),
        "bitrot_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || bitrot_hash(&block)),
        "rs_encode_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || erasure.encode(&block).expect("encode").len() as u64),
        "encode_bitrot_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || {
            erasure.encode(&block).expect("encode").iter().fold(0, |a, s| a ^ bitrot_hash(s))
        }),
        "rs_decode_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || {
            let mut shards: Vec<Option<bytes::Bytes>> =
                coded.iter().enumerate().map(|(i, s)| (i >= lost).then(|| s.clone())).collect();
            erasure.reconstruct_data(&mut shards, shard_len).expect("decode");
            shards[0].as_ref().map_or(0, |s| s[0] as u64)
        }),
        "rs_decode_lost_shards": lost,
        "memcpy_cpu_s_per_gib": cpu_per_gib(BLOCK_SIZE_BYTES, || {
            copy_target.copy_from_slice(&block);
            copy_target[7] as u64
        }),
    });
    let merge = |out: &mut serde_json::Value, more: serde_json::Value| {
        if let (Some(o), serde_json::Value::Object(m)) = (out.as_object_mut(), more) {
            o.extend(m);
        }
    };
    merge(&mut out, disk(&dir));
    merge(&mut out, small_writes(&dir, false));
    merge(&mut out, loopback());
    let get = |k: &str| out[k].as_f64().unwrap_or(0.0);
    // One body's MD5 at the best speed this machine has for it.
    let md5 = get("md5_crate_cpu_s_per_gib").min(get("md5_basalt_cpu_s_per_gib"));
    // What a PUT cannot avoid per GiB: the ETag's MD5, coding, and the bitrot
    // hash of every shard; a GET: the bitrot hash of the data shards it reads.
    // The second PUT floor hashes two bodies at once, as a core does with two
    // PUTs: the stricter of the two.
    let put_floor = md5 + get("encode_bitrot_cpu_s_per_gib");
    let put_floor_lanes = get("md5_two_lanes_cpu_s_per_gib") + get("encode_bitrot_cpu_s_per_gib");
    let get_verify = get("bitrot_cpu_s_per_gib");
    merge(
        &mut out,
        serde_json::json!({
            "md5_cpu_s_per_gib": md5,
            "put_unavoidable_cpu_s_per_gib": put_floor,
            "put_unavoidable_two_lanes_cpu_s_per_gib": put_floor_lanes,
            "get_bitrot_verify_cpu_s_per_gib": get_verify,
        }),
    );
    write_json(&out, json.as_deref());
}

/// Prints `out`, and writes it to `path` when given.
fn write_json(out: &serde_json::Value, path: Option<&Path>) {
    let text = serde_json::to_string_pretty(out).expect("json");
    println!("{text}");
    if let Some(path) = path {
        std::fs::write(path, text + "\n").unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}
