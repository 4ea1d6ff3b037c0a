//! What `basalt bench` measures and reports: per worker, per endpoint and per
//! kind of operation, an hdrhistogram of latencies (and of time to first byte),
//! counts of operations, bytes and errors. Workers record into their own
//! [`OpStats`] with no sharing; the figures are merged once the timed phase ends
//! and turned into a [`Report`], which prints as a table and serialises to JSON.

pub use crate::units::human_bytes;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant digits the histograms keep: 0.1% resolution on every percentile.
const HISTOGRAM_SIGFIG: u8 = 3;
/// Distinct error messages kept per operation for the report.
pub const MAX_FIRST_ERRORS: usize = 5;
/// Version of the JSON report; `bench compare` refuses others.
pub const REPORT_VERSION: u32 = 1;

/// The kinds of request a benchmark makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpKind {
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "STAT")]
    Stat,
    #[serde(rename = "LIST")]
    List,
    #[serde(rename = "DELETE")]
    Delete,
    /// A whole multipart upload: create, every part, complete.
    #[serde(rename = "MULTIPART")]
    Multipart,
    /// One part of a multipart upload.
    #[serde(rename = "PART")]
    Part,
}

impl OpKind {
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "PUT",
            OpKind::Get => "GET",
            OpKind::Stat => "STAT",
            OpKind::List => "LIST",
            OpKind::Delete => "DELETE",
            OpKind::Multipart => "MULTIPART",
            OpKind::Part => "PART",
        }
    }
}

/// One worker's figures for one kind of operation on one endpoint.
pub struct OpStats {
    pub ops: u64,
    /// Object bytes moved (PUT body, GET body); not headers.
    pub bytes: u64,
    /// Keys returned by listings.
    pub objects: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// Microseconds, successful operations only.
    pub latency_us: Histogram<u64>,
    pub ttfb_us: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            ops: 0,
            bytes: 0,
            objects: 0,
            errors: 0,
            first_errors: Vec::new(),
            latency_us: Histogram::new(HISTOGRAM_SIGFIG).expect("3 significant digits is valid"),
            ttfb_us: Histogram::new(HISTOGRAM_SIGFIG).expect("3 significant digits is valid"),
        }
    }
}

impl OpStats {
    pub fn success(&mut self, latency: Duration, ttfb: Option<Duration>, bytes: u64) {
        self.ops += 1;
        self.bytes += bytes;
        // Auto-resizing histograms take any value; a failure here is impossible.
        let _ = self.latency_us.record(latency.as_micros().max(1) as u64);
        if let Some(t) = ttfb {
            let _ = self.ttfb_us.record(t.as_micros().max(1) as u64);
        }
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_errors.len() < MAX_FIRST_ERRORS && !self.first_errors.contains(&what) {
            self.first_errors.push(what);
        }
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.objects += other.objects;
        self.errors += other.errors;
        for e in &other.first_errors {
            if self.first_errors.len() < MAX_FIRST_ERRORS && !self.first_errors.contains(e) {
                self.first_errors.push(e.clone());
            }
        }
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.ttfb_us.add(&other.ttfb_us);
    }

    pub fn summary(&self, elapsed: Duration) -> OpSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        OpSummary {
            ops: self.ops,
            ops_per_s: self.ops as f64 / secs,
            bytes: self.bytes,
            mib_per_s: self.bytes as f64 / secs / (1 << 20) as f64,
            objects: self.objects,
            errors: self.errors,
            first_errors: self.first_errors.clone(),
            latency_ms: Percentiles::of(&self.latency_us),
            ttfb_ms: (!self.ttfb_us.is_empty()).then(|| Percentiles::of(&self.ttfb_us)),
        }
    }
}

/// Statistics of one kind of operation, as reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpSummary {
    pub ops: u64,
    pub ops_per_s: f64,
    pub bytes: u64,
    pub mib_per_s: f64,
    /// Keys listed (LIST only).
    pub objects: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub latency_ms: Percentiles,
    /// Time to first byte (GET only).
    pub ttfb_ms: Option<Percentiles>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// CPU and memory of a process over the timed phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CpuFigures {
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// CPU seconds per GiB moved (when the benchmark moves bytes).
    pub cpu_s_per_gib: Option<f64>,
    /// CPU seconds per 1,000 operations.
    pub cpu_s_per_kop: Option<f64>,
    /// Largest resident set seen during the phase (server only).
    pub peak_rss_bytes: Option<u64>,
}

impl CpuFigures {
    pub fn new(cpu_s: f64, bytes: u64, ops: u64, peak_rss_bytes: Option<u64>) -> CpuFigures {
        let gib = bytes as f64 / (1u64 << 30) as f64;
        CpuFigures {
            cpu_s,
            cpu_s_per_gib: (bytes >= 1 << 20).then(|| cpu_s / gib),
            cpu_s_per_kop: (ops > 0).then(|| cpu_s / ops as f64 * 1000.0),
            peak_rss_bytes,
        }
    }
}

/// Everything one run measured; `--json` writes it, `bench compare` reads two.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub version: u32,
    pub mode: String,
    pub endpoints: Vec<String>,
    pub bucket: String,
    pub obj_size_bytes: u64,
    pub concurrent: usize,
    pub duration_s: f64,
    /// Wall time of the timed phase as it ran.
    pub elapsed_s: f64,
    /// `unsigned` or `streaming`.
    pub signing: String,
    pub objects_prepared: u64,
    /// Totals over every endpoint, by operation.
    pub ops: BTreeMap<OpKind, OpSummary>,
    /// By endpoint (in the order given), by operation; empty with one endpoint.
    pub per_endpoint: Vec<BTreeMap<OpKind, OpSummary>>,
    /// `basalt bench` itself.
    pub client: CpuFigures,
    /// The server processes named with `--server-pid`, summed.
    pub server: Option<CpuFigures>,
    /// Objects left behind by a failed cleanup (0 when cleanup ran and worked).
    pub cleanup_failures: u64,
}

impl Report {
    pub fn total_errors(&self) -> u64 {
        self.ops.values().map(|s| s.errors).sum::<u64>() + self.cleanup_failures
    }

    /// The table a person reads.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "basalt bench {}: {} objects, {} concurrent, {:.1} s, {} endpoint{}, {} payload\n",
            self.mode,
            human_bytes(self.obj_size_bytes),
            self.concurrent,
            self.elapsed_s,
            self.endpoints.len(),
            if self.endpoints.len() == 1 { "" } else { "s" },
            self.signing,
        ));
        render_table(&mut out, &self.ops);
        for (i, per) in self.per_endpoint.iter().enumerate() {
            out.push_str(&format!("\n{}:\n", self.endpoints.get(i).map_or("?", String::as_str)));
            render_table(&mut out, per);
        }
        for (kind, s) in &self.ops {
            if let Some(t) = &s.ttfb_ms {
                out.push_str(&format!(
                    "{} time to first byte (ms): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
                    kind.name(),
                    t.p50,
                    t.p90,
                    t.p99,
                    t.p999,
                    t.max
                ));
            }
            if s.objects > 0 {
                out.push_str(&format!(
                    "{} keys listed: {} ({:.0}/s)\n",
                    kind.name(),
                    s.objects,
                    s.objects as f64 / self.elapsed_s.max(1e-9)
                ));
            }
        }
        out.push_str(&format!("bench CPU: {}\n", describe_cpu(&self.client, self.elapsed_s)));
        if let Some(server) = &self.server {
            out.push_str(&format!("server CPU: {}\n", describe_cpu(server, self.elapsed_s)));
            if server.cpu_s > 0.0 {
                out.push_str(&format!(
                    "bench CPU / server CPU: {:.2} (the load generator must stay well below 1)\n",
                    self.client.cpu_s / server.cpu_s
                ));
            }
        }
        let errors: Vec<String> = self
            .ops
            .iter()
            .flat_map(|(k, s)| s.first_errors.iter().map(move |e| format!("  {}: {e}", k.name())))
            .collect();
        if !errors.is_empty() {
            out.push_str(&format!("{} errors; the first ones:\n{}\n", self.total_errors(), errors.join("\n")));
        }
        if self.cleanup_failures > 0 {
            out.push_str(&format!("cleanup: {} objects could not be deleted\n", self.cleanup_failures));
        }
        out
    }
}

fn render_table(out: &mut String, ops: &BTreeMap<OpKind, OpSummary>) {
    out.push_str(&format!(
        "{:<10} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}\n",
        "operation", "ops", "ops/s", "MiB/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    ));
    for (kind, s) in ops {
        let l = &s.latency_ms;
        out.push_str(&format!(
            "{:<10} {:>9} {:>10.1} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>7}\n",
            kind.name(),
            s.ops,
            s.ops_per_s,
            s.mib_per_s,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            s.errors
        ));
    }
}

fn describe_cpu(c: &CpuFigures, elapsed_s: f64) -> String {
    let mut parts = vec![format!("{:.2} s ({:.0}% of one core)", c.cpu_s, c.cpu_s / elapsed_s.max(1e-9) * 100.0)];
    if let Some(g) = c.cpu_s_per_gib {
        parts.push(format!("{g:.3} s per GiB"));
    }
    if let Some(k) = c.cpu_s_per_kop {
        parts.push(format!("{k:.3} s per 1,000 ops"));
    }
    if let Some(rss) = c.peak_rss_bytes {
        parts.push(format!("peak RSS {}", human_bytes(rss)));
    }
    parts.join(", ")
}

/// `bench compare`: the figures of `b` against those of `a`, operation by operation.
pub fn compare(a: &Report, b: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "A: {} {} x{} ({:.1} s)   B: {} {} x{} ({:.1} s)\n",
        a.mode,
        human_bytes(a.obj_size_bytes),
        a.concurrent,
        a.elapsed_s,
        b.mode,
        human_bytes(b.obj_size_bytes),
        b.concurrent,
        b.elapsed_s
    ));
    out.push_str(&format!("{:<10} {:<16} {:>12} {:>12} {:>9}\n", "operation", "figure", "A", "B", "change"));
    let row = |out: &mut String, op: &str, name: &str, x: f64, y: f64| {
        let change = if x == 0.0 { "-".to_string() } else { format!("{:+.1}%", (y - x) / x * 100.0) };
        out.push_str(&format!("{op:<10} {name:<16} {x:>12.3} {y:>12.3} {change:>9}\n"));
    };
    for (kind, sa) in &a.ops {
        let Some(sb) = b.ops.get(kind) else {
            out.push_str(&format!("{:<10} only in A\n", kind.name()));
            continue;
        };
        let op = kind.name();
        row(&mut out, op, "ops/s", sa.ops_per_s, sb.ops_per_s);
        row(&mut out, op, "MiB/s", sa.mib_per_s, sb.mib_per_s);
        row(&mut out, op, "p50 ms", sa.latency_ms.p50, sb.latency_ms.p50);
        row(&mut out, op, "p90 ms", sa.latency_ms.p90, sb.latency_ms.p90);
        row(&mut out, op, "p99 ms", sa.latency_ms.p99, sb.latency_ms.p99);
        row(&mut out, op, "p99.9 ms", sa.latency_ms.p999, sb.latency_ms.p999);
        row(&mut out, op, "max ms", sa.latency_ms.max, sb.latency_ms.max);
        if let (Some(ta), Some(tb)) = (&sa.ttfb_ms, &sb.ttfb_ms) {
            row(&mut out, op, "ttfb p50 ms", ta.p50, tb.p50);
            row(&mut out, op, "ttfb p99 ms", ta.p99, tb.p99);
        }
        row(&mut out, op, "errors", sa.errors as f64, sb.errors as f64);
    }
    for kind in b.ops.keys().filter(|k| !a.ops.contains_key(k)) {
        out.push_str(&format!("{:<10} only in B\n", kind.name()));
    }
    row(&mut out, "(bench)", "CPU s", a.client.cpu_s, b.client.cpu_s);
    if let (Some(sa), Some(sb)) = (&a.server, &b.server) {
        row(&mut out, "(server)", "CPU s", sa.cpu_s, sb.cpu_s);
        if let (Some(x), Some(y)) = (sa.cpu_s_per_gib, sb.cpu_s_per_gib) {
            row(&mut out, "(server)", "CPU s per GiB", x, y);
        }
        if let (Some(x), Some(y)) = (sa.cpu_s_per_kop, sb.cpu_s_per_kop) {
            row(&mut out, "(server)", "CPU s per 1k op", x, y);
        }
        if let (Some(x), Some(y)) = (sa.peak_rss_bytes, sb.peak_rss_bytes) {
            row(&mut out, "(server)", "peak RSS MiB", x as f64 / 1048576.0, y as f64 / 1048576.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_percentiles() {
        let mut a = OpStats::default();
        let mut b = OpStats::default();
        for ms in 1..=100u64 {
            a.success(Duration::from_millis(ms), Some(Duration::from_micros(ms * 10)), 10);
        }
        b.success(Duration::from_secs(2), None, 5);
        b.error("HTTP 500 InternalError".into());
        b.error("HTTP 500 InternalError".into());
        a.merge(&b);
        let s = a.summary(Duration::from_secs(1));
        assert_eq!((s.ops, s.bytes, s.errors, s.first_errors.len()), (101, 1005, 2, 1));
        assert!((s.latency_ms.p50 - 51.0).abs() < 0.1, "{:?}", s.latency_ms);
        assert!((s.latency_ms.max - 2000.0).abs() < 2.0, "{:?}", s.latency_ms);
        assert!(s.ttfb_ms.is_some());
    }
}
