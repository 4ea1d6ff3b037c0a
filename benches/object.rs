//! Object-layer PUT and GET throughput of 1 MiB and 64 MiB objects on one core and
//! four local drives (temporary directories, so the default 2+2 layout).
//!
//! This is the whole path below HTTP: on PUT, MD5 for the ETag, erasure coding,
//! bitrot hashing, shard files written and synced, the metadata commit (every PUT
//! overwrites one key, so it also pays for dropping the previous version's data);
//! on GET, reading and verifying shards and joining blocks. The four drives share
//! one disk and its page cache, so the numbers show the CPU and I/O cost of the
//! path on this machine, not what a server with four real drives sustains.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use basalt::object::{BytesBody, PutOptions};
use basalt::runtime::{Runtime, RuntimeConfig};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const DRIVES: usize = 4;
const BUCKET: &str = "bench";
const SIZES_BYTES: [usize; 2] = [1 << 20, 64 << 20];
/// Body chunk handed to PUT, about what one socket read delivers.
const BODY_CHUNK_BYTES: usize = 256 << 10;

fn object(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let drives: Vec<PathBuf> = (0..DRIVES).map(|i| dir.path().join(format!("d{i}"))).collect();
    let rt = Runtime::start(RuntimeConfig { cores: Some(1), drives, parity: None }).unwrap();
    rt.run_on(0, |ctx| async move { ctx.objects.make_bucket(BUCKET).await }).unwrap();

    let mut group = c.benchmark_group("object");
    // A 64 MiB PUT takes a good part of a second: few, equal-sized samples.
    group.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(5));
    for size in SIZES_BYTES {
        let data = Bytes::from((0..size).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
        let label = format!("{}MiB", size >> 20);
        group.throughput(Throughput::Bytes(size as u64));

        let key = format!("put-{label}");
        group.bench_function(BenchmarkId::new("put", &label), |b| {
            b.iter_custom(|iters| {
                let (key, data) = (key.clone(), data.clone());
                rt.run_on(0, move |ctx| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut body = BytesBody::new(data.clone(), BODY_CHUNK_BYTES);
                        let options = PutOptions { size: Some(size as u64), ..Default::default() };
                        ctx.objects.put_object(BUCKET, &key, &mut body, options).await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });

        let key = format!("get-{label}");
        let (put_key, put_data) = (key.clone(), data.clone());
        rt.run_on(0, move |ctx| async move {
            let mut body = BytesBody::new(put_data, BODY_CHUNK_BYTES);
            let options = PutOptions { size: Some(size as u64), ..Default::default() };
            ctx.objects.put_object(BUCKET, &put_key, &mut body, options).await.map(drop)
        })
        .unwrap();
        group.bench_function(BenchmarkId::new("get", &label), |b| {
            b.iter_custom(|iters| {
                let key = key.clone();
                rt.run_on(0, move |ctx| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut reader = ctx.objects.get_object(BUCKET, &key, None).await.unwrap();
                        let mut read_bytes = 0;
                        while let Some(chunk) = reader.next_chunk().await.unwrap() {
                            read_bytes += chunk.len();
                        }
                        assert_eq!(read_bytes, size, "GET returned a short object");
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    rt.shutdown();
}

criterion_group!(benches, object);
criterion_main!(benches);
