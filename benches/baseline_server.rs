//! The least a file server must do to serve basalt's objects: for `GET
//! /bucket/key`, read the data shard files with O_DIRECT and write their
//! bytes to the socket, block after block, skipping the bitrot hashes without
//! checking them. No signature check, no quorum, no metadata vote, no copies
//! into a joined block: `benches/e2e.sh` compares the server's CPU per GiB on
//! large GETs with this program's (plus the bitrot verify it skips).
//!
//! One thread per connection, blocking I/O, HTTP/1.1 keep-alive.
//! Run: `cargo run --release --example baseline_server -- --listen 127.0.0.1:9100 DRIVE...`

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use basalt::drive::meta::{self, ObjectMeta};
use basalt::drive::{META_FILE, SYS_VOLUME};
use basalt::erasure::{BITROT_HASH_BYTES, Erasure};

#[path = "aligned.rs"]
mod aligned;
use aligned::{ALIGN, Aligned};

/// Blocks read from every data shard file per round (one writev sends them).
const BLOCKS_PER_READ: usize = 4;
/// Longest request head accepted.
const MAX_HEAD_BYTES: usize = 16 << 10;

/// Data shard files of an object in shard order, and its layout.
struct Located {
    meta: ObjectMeta,
    shards: Vec<PathBuf>,
}

fn locate(drives: &[PathBuf], bucket: &str, key: &str) -> Option<Located> {
    let mut found: Vec<(usize, ObjectMeta, PathBuf)> = Vec::new();
    for d in drives {
        let dir = d.join(bucket).join(key);
        let Ok(raw) = std::fs::read(dir.join(META_FILE)) else { continue };
        let Ok((m, _)) = meta::decode(&bytes::Bytes::from(raw)) else { continue };
        let data_dir = m.data_dir.clone()?;
        found.push((m.erasure.index, m, dir.join(data_dir).join("part.1")));
    }
    let (_, first, _) = found.first()?;
    let meta = first.clone();
    if meta.parts.len() != 1 {
        return None;
    }
    let shards = (0..meta.erasure.data)
        .map(|i| found.iter().find(|(idx, m, _)| *idx == i && m.same_version(&meta)).map(|(_, _, p)| p.clone()))
        .collect::<Option<Vec<_>>>()?;
    Some(Located { meta, shards })
}

fn serve(mut s: TcpStream, drives: &[PathBuf]) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut have = 0;
    loop {
        let (len, path) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf[..have]) {
                break (n, req.path.unwrap_or("/").to_string());
            }
            if have == buf.len() {
                return Ok(());
            }
            let n = s.read(&mut buf[have..])?;
            if n == 0 {
                return Ok(());
            }
            have += n;
        };
        buf.copy_within(len..have, 0);
        have -= len;
        let path = path.split('?').next().unwrap_or("/").trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        if bucket == SYS_VOLUME || key.split('/').any(|p| p == ".." || p.is_empty()) {
            s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let Some(obj) = locate(drives, bucket, key) else {
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        send_object(&mut s, &obj)?;
    }
}

fn send_object(s: &mut TcpStream, obj: &Located) -> std::io::Result<()> {
    let e = &obj.meta.erasure;
    let size = obj.meta.size;
    let erasure = Erasure::new(e.data, e.parity, e.block_size).map_err(|x| std::io::Error::other(x.to_string()))?;
    let frame = BITROT_HASH_BYTES + erasure.shard_size(e.block_size);
    let files: Vec<std::fs::File> = obj
        .shards
        .iter()
        .map(|p| std::fs::OpenOptions::new().read(true).custom_flags(nix::fcntl::OFlag::O_DIRECT.bits()).open(p))
        .collect::<std::io::Result<_>>()?;
    s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes())?;
    let blocks = size.div_ceil(e.block_size as u64);
    let span = (BLOCKS_PER_READ * frame).div_ceil(ALIGN) * ALIGN + ALIGN;
    let mut bufs: Vec<Aligned> = files.iter().map(|_| Aligned::new(span)).collect();
    let mut block = 0u64;
    while block < blocks {
        let n = (blocks - block).min(BLOCKS_PER_READ as u64);
        let start = block * frame as u64;
        let aligned = start / ALIGN as u64 * ALIGN as u64;
        let skip = (start - aligned) as usize;
        for (f, b) in files.iter().zip(bufs.iter_mut()) {
            let want = (skip + n as usize * frame).div_ceil(ALIGN) * ALIGN;
            let mut got = 0;
            while got < want {
                let k = f.read_at(&mut b.bytes()[got..want], aligned + got as u64)?;
                if k == 0 {
                    break;
                }
                got += k;
            }
        }
        let views: Vec<&[u8]> = bufs.iter_mut().map(|b| &*b.bytes()).collect();
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(n as usize * files.len());
        for i in 0..n as usize {
            let block_start = (block + i as u64) * e.block_size as u64;
            let mut left = (size - block_start).min(e.block_size as u64) as usize;
            let this_shard = erasure.shard_size(left);
            for v in &views {
                let at = skip + i * frame + BITROT_HASH_BYTES;
                let take = this_shard.min(left);
                slices.push(IoSlice::new(&v[at..at + take]));
                left -= take;
            }
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let k = s.write_vectored(rest)?;
            if k == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, k);
        }
        block += n;
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:9100".to_string();
    let mut drives: Vec<PathBuf> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            d => drives.push(d.into()),
        }
    }
    if drives.is_empty() {
        eprintln!("usage: baseline_server [--listen ADDR] DRIVE...");
        std::process::exit(2);
    }
    let listener = TcpListener::bind(&listen).unwrap_or_else(|e| panic!("cannot listen on {listen}: {e}"));
    println!("baseline server on {listen}, {} drives", drives.len());
    let drives = std::sync::Arc::new(drives);
    for stream in listener.incoming().flatten() {
        let drives = drives.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &drives);
        });
    }
}
