//! Shared harness: a node's runtime on temporary directories, and helpers that
//! run object-layer calls on a chosen core from the test thread.
#![allow(dead_code)]

use std::path::PathBuf;

use basalt::object::{BytesBody, ListOptions, ListResult, ObjectInfo, PutOptions, Range};
use basalt::runtime::{Runtime, RuntimeConfig};
use basalt::{Error, Result};

pub struct Node {
    pub rt: Option<Runtime>,
    pub drives: Vec<PathBuf>,
    pub cores: usize,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts a node with `drives` fresh drive directories and `cores` executors.
    pub fn start(drives: usize, cores: usize) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = (0..drives).map(|i| dir.path().join(format!("d{i}"))).collect();
        let rt = Runtime::start(RuntimeConfig { cores: Some(cores), drives: paths.clone(), parity: None })
            .expect("runtime starts");
        Node { rt: Some(rt), drives: paths, cores, _dir: dir }
    }

    pub fn rt(&self) -> &Runtime {
        self.rt.as_ref().expect("running")
    }

    /// Stops and starts again on the same drives (a process restart).
    pub fn restart(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown();
        }
        let rt = Runtime::start(RuntimeConfig { cores: Some(self.cores), drives: self.drives.clone(), parity: None })
            .expect("runtime restarts");
        self.rt = Some(rt);
    }

    pub fn make_bucket(&self, bucket: &str) -> Result<()> {
        let b = bucket.to_string();
        self.rt().run_on(0, move |ctx| async move { ctx.objects.make_bucket(&b).await })
    }

    pub fn put_on(&self, core: usize, bucket: &str, key: &str, data: &[u8]) -> Result<ObjectInfo> {
        self.put_with(core, bucket, key, data, false)
    }

    /// A PUT from core `core` whose body hands out 64 KiB chunks, as a socket
    /// would deliver them, or (`direct`) is also read straight into the object
    /// layer's block buffers, as an HTTP `Content-Length` body is.
    pub fn put_with(&self, core: usize, bucket: &str, key: &str, data: &[u8], direct: bool) -> Result<ObjectInfo> {
        let (b, k, d) = (bucket.to_string(), key.to_string(), data.to_vec());
        self.rt().run_on(core, move |ctx| async move {
            let size = d.len() as u64;
            let mut body = if direct { BytesBody::direct(d, 64 << 10) } else { BytesBody::new(d, 64 << 10) };
            ctx.objects.put_object(&b, &k, &mut body, PutOptions { size: Some(size), ..Default::default() }).await
        })
    }

    pub fn put(&self, bucket: &str, key: &str, data: &[u8]) -> Result<ObjectInfo> {
        self.put_on(0, bucket, key, data)
    }

    pub fn get_on(&self, core: usize, bucket: &str, key: &str, range: Option<Range>) -> Result<Vec<u8>> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.rt().run_on(core, move |ctx| async move {
            let mut reader = ctx.objects.get_object(&b, &k, range).await?;
            let mut out = Vec::new();
            while let Some(chunk) = reader.next_chunk().await? {
                out.extend_from_slice(&chunk);
            }
            Ok::<_, Error>(out)
        })
    }

    pub fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        self.get_on(0, bucket, key, None)
    }

    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.rt().run_on(0, move |ctx| async move { ctx.objects.head_object(&b, &k).await })
    }

    pub fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.rt().run_on(0, move |ctx| async move { ctx.objects.delete_object(&b, &k).await })
    }

    pub fn list(&self, bucket: &str, opts: ListOptions) -> Result<ListResult> {
        let b = bucket.to_string();
        self.rt().run_on(0, move |ctx| async move { ctx.objects.list_objects(&b, &opts).await })
    }

    pub fn heal(&self, bucket: &str, key: &str) -> Result<basalt::object::HealReport> {
        let (b, k) = (bucket.to_string(), key.to_string());
        self.rt().run_on(0, move |ctx| async move { ctx.objects.heal_object(&b, &k).await })
    }

    /// The directory holding `key`'s metadata and data on drive `d`.
    pub fn key_dir(&self, d: usize, bucket: &str, key: &str) -> PathBuf {
        self.drives[d].join(bucket).join(key.trim_end_matches('/'))
    }

    /// Paths of every shard file of `key` on drive `d` (empty for inline objects).
    pub fn shard_files(&self, d: usize, bucket: &str, key: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.key_dir(d, bucket, key)) else { return out };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".basalt.data.") {
                for f in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                    out.push(f.path());
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown();
        }
    }
}

/// Deterministic, incompressible-looking bytes, different per seed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;
