//! Prometheus text exposition (format 0.0.4) of merged metrics. Names follow
//! MinIO's v2 metrics where one exists (`minio_s3_requests_total{api=...}`), so
//! its Grafana dashboards work; what MinIO does not have is `basalt_`.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::{DriveState, Op, STATUS_SLOTS, Scope, Snapshot, status_label};

/// Bucket bounds of the latency histograms, in seconds.
const LATENCY_BUCKETS_SECS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Quantiles of the latency summaries.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Operations that have seen at least one request, in a fixed order.
fn seen(s: &Snapshot) -> Vec<Op> {
    Op::ALL.iter().copied().filter(|op| s.requests_of(*op) > 0).collect()
}

pub fn render(s: &Snapshot, drives: &[DriveState], scope: Scope) -> String {
    let mut o = Out(String::with_capacity(32 << 10));
    requests(&mut o, s);
    if scope != Scope::Cluster {
        node_drives(&mut o, drives);
    }
    if scope != Scope::Node {
        cluster(&mut o, drives);
    }
    heal(&mut o, s);
    etag(&mut o, s);
    o.family("basalt_cores", "gauge", "Executors (cores) whose figures this scrape merged.");
    o.sample("basalt_cores", "", s.cores);
    o.0
}

fn requests(o: &mut Out, s: &Snapshot) {
    let ops = seen(s);
    let count = |op: Op, f: &dyn Fn(u16) -> bool| -> u64 {
        (0..STATUS_SLOTS)
            .map(|slot| {
                let code = status_label(slot);
                let class = code.as_bytes()[0] - b'0';
                let status = code.parse::<u16>().unwrap_or(class as u16 * 100);
                if f(status) { s.requests[op as usize][slot] } else { 0 }
            })
            .sum()
    };
    o.family("minio_s3_requests_total", "counter", "Total number of S3 requests.");
    for &op in &ops {
        o.sample("minio_s3_requests_total", &format!("api=\"{}\"", op.name()), s.requests_of(op));
    }
    o.family("minio_s3_requests_errors_total", "counter", "Total number of S3 requests with (4xx and 5xx) errors.");
    for &op in &ops {
        o.sample("minio_s3_requests_errors_total", &format!("api=\"{}\"", op.name()), count(op, &|c| c >= 400));
    }
    o.family("minio_s3_requests_4xx_errors_total", "counter", "Total number of S3 requests with 4xx errors.");
    for &op in &ops {
        let n = count(op, &|c| (400..500).contains(&c));
        o.sample("minio_s3_requests_4xx_errors_total", &format!("api=\"{}\"", op.name()), n);
    }
    o.family("minio_s3_requests_5xx_errors_total", "counter", "Total number of S3 requests with 5xx errors.");
    for &op in &ops {
        let n = count(op, &|c| c >= 500);
        o.sample("minio_s3_requests_5xx_errors_total", &format!("api=\"{}\"", op.name()), n);
    }
    o.family("basalt_s3_requests_by_status_total", "counter", "S3 requests by operation and HTTP status.");
    for &op in &ops {
        for slot in 0..STATUS_SLOTS {
            let n = s.requests[op as usize][slot];
            if n > 0 {
                let labels = format!("api=\"{}\",status=\"{}\"", op.name(), status_label(slot));
                o.sample("basalt_s3_requests_by_status_total", &labels, n);
            }
        }
    }
    o.family("minio_s3_traffic_received_bytes", "counter", "Total number of bytes received from S3 clients.");
    o.sample("minio_s3_traffic_received_bytes", "", s.received_bytes);
    o.family("minio_s3_traffic_sent_bytes", "counter", "Total number of bytes sent to S3 clients.");
    o.sample("minio_s3_traffic_sent_bytes", "", s.sent_bytes);
    histogram(
        o,
        "basalt_s3_request_duration_seconds",
        "Time from a request's head to the last byte of its response.",
        &ops,
        &s.latency_us,
    );
    summary(
        o,
        "basalt_s3_request_latency_seconds",
        "Quantiles of the time from a request's head to the last byte of its response.",
        &ops,
        &s.latency_us,
    );
    // MinIO's time-to-first-byte distribution: cumulative counts by bound.
    let name = "minio_s3_requests_ttfb_seconds_distribution";
    o.family(name, "counter", "Distribution of the time to first byte across API calls.");
    for &op in &ops {
        let h = &s.ttfb_us[op as usize];
        for le in LATENCY_BUCKETS_SECS {
            let labels = format!("api=\"{}\",le=\"{le}\"", op.name());
            o.sample(name, &labels, h.count_between(0, (le * 1e6) as u64));
        }
        o.sample(name, &format!("api=\"{}\",le=\"+Inf\"", op.name()), h.len());
    }
}

fn histogram(o: &mut Out, name: &str, help: &str, ops: &[Op], hs: &[Histogram<u64>]) {
    o.family(name, "histogram", help);
    for &op in ops {
        let h = &hs[op as usize];
        let api = op.name();
        for le in LATENCY_BUCKETS_SECS {
            o.sample(
                &format!("{name}_bucket"),
                &format!("api=\"{api}\",le=\"{le}\""),
                h.count_between(0, (le * 1e6) as u64),
            );
        }
        o.sample(&format!("{name}_bucket"), &format!("api=\"{api}\",le=\"+Inf\""), h.len());
        // hdrhistogram keeps no exact sum: the mean times the count is within its 1%.
        o.sample(&format!("{name}_sum"), &format!("api=\"{api}\""), h.mean() * h.len() as f64 / 1e6);
        o.sample(&format!("{name}_count"), &format!("api=\"{api}\""), h.len());
    }
}

fn summary(o: &mut Out, name: &str, help: &str, ops: &[Op], hs: &[Histogram<u64>]) {
    o.family(name, "summary", help);
    for &op in ops {
        let h = &hs[op as usize];
        let api = op.name();
        for q in QUANTILES {
            let v = h.value_at_quantile(q) as f64 / 1e6;
            o.sample(name, &format!("api=\"{api}\",quantile=\"{q}\""), v);
        }
        o.sample(&format!("{name}_sum"), &format!("api=\"{api}\""), h.mean() * h.len() as f64 / 1e6);
        o.sample(&format!("{name}_count"), &format!("api=\"{api}\""), h.len());
    }
}

fn node_drives(o: &mut Out, drives: &[DriveState]) {
    let labels = |d: &DriveState| format!("drive=\"{}\",index=\"{}\"", label(&d.path), d.index + 1);
    o.family("basalt_node_drive_online", "gauge", "1 when the drive answers, 0 when it is offline.");
    for d in drives {
        o.sample("basalt_node_drive_online", &labels(d), u8::from(d.info.is_some()));
    }
    o.family("minio_node_drive_total_bytes", "gauge", "Total storage on a drive.");
    for d in drives.iter().filter(|d| d.info.is_some()) {
        o.sample("minio_node_drive_total_bytes", &labels(d), d.info.map_or(0, |i| i.total_bytes));
    }
    o.family("minio_node_drive_free_bytes", "gauge", "Storage available on a drive.");
    for d in drives.iter().filter(|d| d.info.is_some()) {
        o.sample("minio_node_drive_free_bytes", &labels(d), d.info.map_or(0, |i| i.free_bytes));
    }
    o.family("minio_node_drive_used_bytes", "gauge", "Storage used on a drive.");
    for d in drives.iter().filter(|d| d.info.is_some()) {
        let used = d.info.map_or(0, |i| i.total_bytes.saturating_sub(i.free_bytes));
        o.sample("minio_node_drive_used_bytes", &labels(d), used);
    }
    o.family("basalt_node_drive_io_errors_total", "counter", "I/O errors a drive returned since start.");
    for d in drives {
        o.sample("basalt_node_drive_io_errors_total", &labels(d), d.io_errors);
    }
}

fn cluster(o: &mut Out, drives: &[DriveState]) {
    let online = drives.iter().filter(|d| d.info.is_some()).count();
    o.family("minio_cluster_nodes_online_total", "gauge", "Total number of MinIO nodes online.");
    o.sample("minio_cluster_nodes_online_total", "", 1);
    o.family("minio_cluster_nodes_offline_total", "gauge", "Total number of MinIO nodes offline.");
    o.sample("minio_cluster_nodes_offline_total", "", 0);
    o.family("minio_cluster_drive_online_total", "gauge", "Total drives online.");
    o.sample("minio_cluster_drive_online_total", "", online);
    o.family("minio_cluster_drive_offline_total", "gauge", "Total drives offline.");
    o.sample("minio_cluster_drive_offline_total", "", drives.len() - online);
    o.family("minio_cluster_drive_total", "gauge", "Total drives.");
    o.sample("minio_cluster_drive_total", "", drives.len());
    let total: u64 = drives.iter().filter_map(|d| d.info).map(|i| i.total_bytes).sum();
    let free: u64 = drives.iter().filter_map(|d| d.info).map(|i| i.free_bytes).sum();
    o.family("minio_cluster_capacity_raw_total_bytes", "gauge", "Total capacity online in the cluster.");
    o.sample("minio_cluster_capacity_raw_total_bytes", "", total);
    o.family("minio_cluster_capacity_raw_free_bytes", "gauge", "Total free capacity online in the cluster.");
    o.sample("minio_cluster_capacity_raw_free_bytes", "", free);
}

fn heal(o: &mut Out, s: &Snapshot) {
    o.family("minio_heal_objects_heal_total", "counter", "Objects healed since start.");
    o.sample("minio_heal_objects_heal_total", "", s.heal_objects);
    o.family(
        "basalt_heal_drives_total",
        "counter",
        "Drives rewritten by heals since start (one per object per drive).",
    );
    o.sample("basalt_heal_drives_total", "", s.heal_drives);
    o.family("minio_heal_objects_errors_total", "counter", "Drives a heal could not rewrite since start.");
    o.sample("minio_heal_objects_errors_total", "", s.heal_failed_drives);
}

fn etag(o: &mut Out, s: &Snapshot) {
    o.family("basalt_etag_md5_bytes_total", "counter", "Object body bytes hashed for ETags (MD5) since start.");
    o.sample("basalt_etag_md5_bytes_total", "", s.md5_bytes);
    o.family(
        "basalt_etag_md5_lanes_shared_bytes_total",
        "counter",
        "Of those, bytes hashed side by side with other bodies in one pass (cheaper per byte).",
    );
    o.sample("basalt_etag_md5_lanes_shared_bytes_total", "", s.md5_shared_bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::DiskInfo;
    use std::time::Duration;

    #[test]
    fn text_format() {
        let s = std::thread::spawn(|| {
            super::super::init_core(2);
            for ms in [1, 2, 3, 200] {
                super::super::record_request(Op::GetObject, 200, Duration::from_millis(ms), Duration::from_millis(1));
            }
            super::super::record_request(Op::GetObject, 404, Duration::from_millis(1), Duration::from_millis(1));
            super::super::drive_io_error(1);
            super::super::snapshot()
        })
        .join()
        .unwrap();
        let drives = vec![
            DriveState {
                index: 0,
                path: "/mnt/d\"1".into(),
                info: Some(DiskInfo { total_bytes: 100, free_bytes: 40 }),
                io_errors: 0,
            },
            DriveState { index: 1, path: "/mnt/d2".into(), info: None, io_errors: 1 },
        ];
        let text = render(&s, &drives, Scope::All);
        for line in [
            "# TYPE minio_s3_requests_total counter",
            "minio_s3_requests_total{api=\"GetObject\"} 5",
            "minio_s3_requests_4xx_errors_total{api=\"GetObject\"} 1",
            "minio_s3_requests_5xx_errors_total{api=\"GetObject\"} 0",
            "basalt_s3_requests_by_status_total{api=\"GetObject\",status=\"404\"} 1",
            "basalt_s3_request_duration_seconds_bucket{api=\"GetObject\",le=\"0.005\"} 4",
            "basalt_s3_request_duration_seconds_bucket{api=\"GetObject\",le=\"+Inf\"} 5",
            "basalt_s3_request_duration_seconds_count{api=\"GetObject\"} 5",
            "basalt_node_drive_online{drive=\"/mnt/d\\\"1\",index=\"1\"} 1",
            "basalt_node_drive_online{drive=\"/mnt/d2\",index=\"2\"} 0",
            "minio_node_drive_used_bytes{drive=\"/mnt/d\\\"1\",index=\"1\"} 60",
            "basalt_node_drive_io_errors_total{drive=\"/mnt/d2\",index=\"2\"} 1",
            "minio_cluster_drive_offline_total 1",
            "minio_cluster_capacity_raw_free_bytes 40",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Operations never requested are left out; every sample has a TYPE above it.
        assert!(!text.contains("PutObject"));
        let mut typed = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
                assert!(typed.contains(name) || typed.contains(base), "{name} has no TYPE");
            }
        }
        let node = render(&s, &drives, Scope::Node);
        assert!(node.contains("minio_node_drive_free_bytes") && !node.contains("minio_cluster_drive_total"));
    }
}
