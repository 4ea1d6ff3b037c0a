#!/usr/bin/env bash
# The end-to-end performance run. In one run, on this machine:
#   1. measures its limits (benches/limits.rs): MD5, SHA-256, the bitrot hash,
#      RS encode per core, memcpy, O_DIRECT bandwidth and 4 KiB fdatasync
#      latency in the drives' filesystem, loopback TCP;
#   2. starts basalt on 4 drives and drives it with `basalt bench`: PUT and GET
#      of 64 MiB (concurrency 4), 1 MiB (16), 4 KiB (32), mixed, 64 concurrent
#      64 MiB PUTs (memory); large GETs of the same objects from a minimal file
#      server (benches/baseline_server.rs), from basalt right after it, and from
#      basalt with 2 drives missing (degraded): each held against its neighbour;
#      the fdatasync rate and the plain-syscall small commits are measured again
#      right before and after the 4 KiB PUTs, in the filesystem state they find;
#   3. prints a table: throughput, p50/p99, server CPU per GiB or per 1,000
#      operations (the server process alone, from /proc), peak RSS, and the
#      ratios to the limits and targets.
#
# Not part of CI. Usage: benches/e2e.sh [DURATION]   (default 10s per case)
# Environment: WORK (directory for the drives, on the filesystem to measure; not
# tmpfs, which has no O_DIRECT), PORT (default 9400), CORES (server executors,
# default all), KEEP=1 to keep WORK afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-${DURATION:-10s}}
PORT=${PORT:-9400}
BASELINE_PORT=$((PORT + 1))
WORK=${WORK:-$(mktemp -d /var/tmp/basalt-e2e.XXXXXX)}
OUT="$WORK/results"
# Syncs on each drive for a new small (inline) object: one write of the
# drive's metadata journal with O_DSYNC (src/drive/journal.rs), shared by every
# commit that arrives while the previous write is in flight. (Without the
# journal, BASALT_METADATA_JOURNAL=off, it is three: the metadata temp file, the
# key's directory after the rename, and that directory's parent.)
SYNCS_PER_SMALL_PUT=1
DRIVES=4
export BASALT_ROOT_USER=e2eadmin BASALT_ROOT_PASSWORD=e2e-secret-key
mkdir -p "$OUT"

echo "== building (release)"
cargo build --release --quiet --bin basalt --example limits --example baseline_server
BIN=target/release/basalt
EXAMPLES=target/release/examples

SERVER_PID=
BASELINE_PID=
cleanup() {
  [ -n "$BASELINE_PID" ] && kill "$BASELINE_PID" 2>/dev/null && wait "$BASELINE_PID" 2>/dev/null
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  for d in 3 4; do [ -d "$WORK/d$d.off" ] && mv "$WORK/d$d.off" "$WORK/d$d"; done
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

wait_live() {
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$1/minio/health/live" >/dev/null 2>&1 && return 0
    # The baseline server answers 404 to anything: up is enough.
    curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && [ "$2" = any ] && return 0
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  exit 1
}

echo "== 1. limits of this machine (drives' filesystem: $WORK)"
"$EXAMPLES/limits" --dir "$WORK/limits" --data 2 --parity 2 --json "$OUT/limits.json" >/dev/null
rm -rf "$WORK/limits"

start_server() {
  local cores=()
  [ -n "${CORES:-}" ] && cores=(--cores "$CORES")
  "$BIN" server --address "127.0.0.1:$PORT" "${cores[@]}" "$WORK"/d{1...4} >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  wait_live "$PORT" live
}

bench() {
  local name=$1
  shift
  echo "-- $name"
  "$BIN" bench "$@" --endpoint "http://127.0.0.1:$PORT" --server-pid "$SERVER_PID" \
    --json "$OUT/$name.json" >"$OUT/$name.txt" 2>"$OUT/$name.err" || {
    echo "   (exit $?: see $OUT/$name.txt and .err)"
  }
  # The results go with WORK at exit: show why requests failed here.
  sed -n '/errors; the first ones:/,$p' "$OUT/$name.txt" | sed 's/^/   /'
  grep -E '^(PUT|GET|STAT|DELETE) ' "$OUT/$name.txt" | sed 's/^/   /' || true
}

echo "== 2. basalt on $DRIVES drives, $DURATION per case"
start_server
LARGE=(--obj.size 64MiB --concurrent 4 --duration "$DURATION")
bench put-64MiB put "${LARGE[@]}"
bench get-64MiB get "${LARGE[@]}" --prefix e2e-large/ --no-clean
bench put-1MiB put --obj.size 1MiB --concurrent 16 --duration "$DURATION"
bench get-1MiB get --obj.size 1MiB --concurrent 16 --duration "$DURATION"
# Creating files on a journal-less ext4 slows down for minutes after many were
# deleted (it scans the recently deleted inodes on every create), and the cases
# before this one deleted theirs: measure what small PUTs are held against
# again, right before and right after them, in the state they find (limits
# leaves its files, deleted with WORK), and hold them against the mean.
"$EXAMPLES/limits" --small-writes-only --dir "$WORK/small-writes" --json "$OUT/small-writes-before.json" >/dev/null
bench put-4KiB put --obj.size 4KiB --concurrent 32 --duration "$DURATION"
"$EXAMPLES/limits" --small-writes-only --dir "$WORK/small-writes-after" --json "$OUT/small-writes-after.json" >/dev/null
bench get-4KiB get --obj.size 4KiB --concurrent 32 --duration "$DURATION"
bench mixed-1MiB mixed --obj.size 1MiB --concurrent 16 --duration "$DURATION"
OBJECTS=$(python3 -c "import json; print(json.load(open('$OUT/get-64MiB.json'))['objects_prepared'])")

# The disk's speed and the machine's load drift over a run, so large GETs are
# held against neighbours: the minimal file server on the same shards (basalt
# stays up, idle), then basalt's healthy GETs of the same objects, in
# GET_PAIRS alternating pairs (the ratio is the pairs' median); then the
# degraded GETs, held against the last healthy ones.
GET_PAIRS=3
for pair in $(seq 1 "$GET_PAIRS"); do
  echo "== pair $pair: the same shards served by benches/baseline_server.rs, then by basalt"
  "$EXAMPLES/baseline_server" --listen "127.0.0.1:$BASELINE_PORT" "$WORK"/d{1..4} >"$OUT/baseline.log" 2>&1 &
  BASELINE_PID=$!
  wait_live "$BASELINE_PORT" any
  SAVED=("$PORT" "$SERVER_PID")
  PORT=$BASELINE_PORT SERVER_PID=$BASELINE_PID
  bench "baseline-get-64MiB-$pair" get "${LARGE[@]}" --bucket basalt-bench --prefix e2e-large/ --no-prepare --no-clean --objects "$OBJECTS"
  PORT=${SAVED[0]} SERVER_PID=${SAVED[1]}
  kill "$BASELINE_PID"
  wait "$BASELINE_PID" 2>/dev/null || true
  BASELINE_PID=
  bench "get-64MiB-healthy-$pair" get "${LARGE[@]}" --prefix e2e-large/ --no-prepare --no-clean --objects "$OBJECTS"
done
echo "== degraded: drives 3 and 4 removed (m = 2): objects whose data shards lived there are rebuilt from parity"
mv "$WORK/d3" "$WORK/d3.off"
mv "$WORK/d4" "$WORK/d4.off"
bench get-64MiB-degraded get "${LARGE[@]}" --prefix e2e-large/ --no-prepare --no-clean --objects "$OBJECTS"
mv "$WORK/d3.off" "$WORK/d3"
mv "$WORK/d4.off" "$WORK/d4"
kill "$SERVER_PID"
wait "$SERVER_PID" || true

echo "== memory: 64 concurrent 64 MiB PUTs on a freshly started server"
# The large GETs' objects are done with: give their space to this case, which
# stores twice what it PUTs (2+2) and may fill a small disk. The lowest free
# space seen during it is printed, so that failed PUTs can be told apart.
rm -rf "$WORK"/d{1..4}/basalt-bench/e2e-large
free_mib() { df --output=avail -BM "$WORK" | tail -1 | tr -dc '0-9'; }
echo "   free on the drives' filesystem before: $(free_mib) MiB"
start_server
( lowest=$(free_mib); while kill -0 "$SERVER_PID" 2>/dev/null; do
    now=$(free_mib); [ "$now" -lt "$lowest" ] && lowest=$now && echo "$lowest" >"$OUT/lowest-free"
    sleep 0.2
  done ) &
WATCH_PID=$!
bench memory-64x64MiB put --obj.size 64MiB --concurrent 64 --duration "$DURATION"
kill "$SERVER_PID"
wait "$SERVER_PID" || true
wait "$WATCH_PID" 2>/dev/null || true
echo "   lowest free during the case: $(cat "$OUT/lowest-free" 2>/dev/null || free_mib) MiB"

echo "== 3. results"
python3 - "$OUT" "$SYNCS_PER_SMALL_PUT" "$DRIVES" "$(nproc)" "$GET_PAIRS" <<'PY' | tee "$OUT/table.txt"
import json, os, sys
out, syncs, drives, cpus, pairs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
lim = json.load(open(os.path.join(out, "limits.json")))
def load(name):
    p = os.path.join(out, name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
def main_op(r):
    ops = r["ops"]
    for k in ("PUT", "GET", "MULTIPART", "STAT", "LIST", "DELETE"):
        if k in ops:
            return k, ops[k]
    return None, None

print(f"machine: {cpus} CPUs; layout {lim['layout']} on {drives} drives sharing one filesystem")
print(f"limits per core (CPU s/GiB): MD5 {lim['md5_cpu_s_per_gib']:.3f} (md-5 crate {lim['md5_crate_cpu_s_per_gib']:.3f}, "
      f"basalt {lim['md5_basalt_cpu_s_per_gib']:.3f}, two bodies in lanes {lim['md5_two_lanes_cpu_s_per_gib']:.3f})  SHA-256 {lim['sha256_cpu_s_per_gib']:.3f}  "
      f"bitrot {lim['bitrot_cpu_s_per_gib']:.3f}  RS encode {lim['rs_encode_cpu_s_per_gib']:.3f}  "
      f"RS encode+bitrot {lim['encode_bitrot_cpu_s_per_gib']:.3f}  RS decode {lim['rs_decode_cpu_s_per_gib']:.3f}  "
      f"memcpy {lim['memcpy_cpu_s_per_gib']:.3f}")
print(f"disk: O_DIRECT write {lim['odirect_write_mib_s']:.0f} MiB/s, read {lim['odirect_read_mib_s']:.0f} MiB/s; "
      f"4 KiB write+fdatasync p50 {lim['fsync_4k_p50_ms']:.2f} ms p99 {lim['fsync_4k_p99_ms']:.2f} ms, "
      f"{lim['fsync_4k_parallel_per_s']:.0f}/s with {lim['fsync_parallel_writers']} writers")
print(f"loopback TCP: {lim['loopback_mib_s']:.0f} MiB/s, {lim['loopback_cpu_s_per_gib']:.3f} CPU s/GiB (both ends)")
print(f"O_DIRECT CPU: write {lim['odirect_write_cpu_s_per_gib']:.3f} s/GiB, read {lim['odirect_read_cpu_s_per_gib']:.3f} s/GiB; "
      f"small-object commits by plain syscalls: {lim['small_commits_per_s']:.0f}/s over {lim['small_commit_drives']} drives, "
      f"{lim['small_commit_cpu_ms']:.3f} CPU ms each")
for when in ("before", "after"):
    w = load(f"small-writes-{when}")
    if w:
        print(f"again right {when} the 4 KiB PUTs: 4 KiB write+fdatasync {w['fsync_4k_parallel_per_s']:.0f}/s; "
              f"small-object commits {w['small_commits_per_s']:.0f}/s, {w['small_commit_cpu_ms']:.3f} CPU ms each")
print()
hdr = f"{'case':<20} {'op':<6} {'MiB/s':>8} {'obj/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'srv CPU':>14} {'peak RSS':>9} {'bench/srv':>9} {'errors':>6}"
print(hdr)
print("-" * len(hdr))
cases = ["put-64MiB", "get-64MiB", "put-1MiB", "get-1MiB", "put-4KiB", "get-4KiB", "mixed-1MiB"]
for p in range(1, pairs + 1):
    cases += [f"baseline-get-64MiB-{p}", f"get-64MiB-healthy-{p}"]
cases += ["get-64MiB-degraded", "memory-64x64MiB"]
res = {}
for c in cases:
    r = load(c)
    if r is None:
        print(f"{c:<20} (no result)")
        continue
    res[c] = r
    srv = r.get("server") or {}
    for k, s in r["ops"].items():
        cpu = "-"
        if srv.get("cpu_s_per_gib") is not None and r["obj_size_bytes"] >= (1 << 20):
            cpu = f"{srv['cpu_s_per_gib']:.3f} s/GiB"
        elif srv.get("cpu_s_per_kop") is not None:
            cpu = f"{srv['cpu_s_per_kop']:.3f} s/kop"
        rss = f"{srv['peak_rss_bytes'] / 1048576:.0f} MiB" if srv.get("peak_rss_bytes") else "-"
        ratio = f"{r['client']['cpu_s'] / srv['cpu_s']:.2f}" if srv.get("cpu_s") else "-"
        print(f"{c:<20} {k:<6} {s['mib_per_s']:>8.1f} {s['ops_per_s']:>8.1f} {s['latency_ms']['p50']:>8.2f} "
              f"{s['latency_ms']['p99']:>8.2f} {cpu:>14} {rss:>9} {ratio:>9} {s['errors']:>6}")
print()
print("targets (ratios measured side by side in this run):")
def verdict(ok):
    # None: a figure that explains a target (what bounds it), not a target.
    return "info" if ok is None else ("met" if ok else "NOT met")
def row(name, value, target, ok, detail):
    print(f"  {name:<44} {value:>8} (target {target:<8}) {verdict(ok):<8} {detail}")
r = res.get("put-64MiB")
if r and r.get("server"):
    k, m = (int(v) for v in lim["layout"].split("+"))
    # Beyond the compute: writing (k+m)/k GiB with O_DIRECT and receiving the GiB
    # from loopback (about half of loopback's two-ended cost).
    io = lim["odirect_write_cpu_s_per_gib"] * (k + m) / k + lim["loopback_cpu_s_per_gib"] / 2
    floor = lim["put_unavoidable_cpu_s_per_gib"]
    x = r["server"]["cpu_s_per_gib"] / (floor + io)
    row("large PUT: server CPU/GiB / (compute + I/O)", f"{x:.2f}", "(bound)", None,
        f"{r['server']['cpu_s_per_gib']:.3f} vs {floor:.3f} + {io:.3f} s/GiB (O_DIRECT write, socket receive)")
    x = r["server"]["cpu_s_per_gib"] / floor
    row("large PUT: server CPU/GiB / (MD5+RS+bitrot)", f"{x:.2f}", "<= 1.3", x <= 1.3,
        f"{r['server']['cpu_s_per_gib']:.3f} vs {floor:.3f} s/GiB")
    # The server hashes the bodies a core receives at once side by side; with
    # 4 PUTs on 2 cores that is two at a time at best: the stricter floor.
    lanes = lim["put_unavoidable_two_lanes_cpu_s_per_gib"]
    x = r["server"]["cpu_s_per_gib"] / lanes
    row("  same, MD5 of two bodies at once in lanes", f"{x:.2f}", "(bound)", None,
        f"{r['server']['cpu_s_per_gib']:.3f} vs {lanes:.3f} s/GiB")
# Each pair: the baseline, then basalt's healthy GETs of the same objects.
ratios = []
for p in range(1, pairs + 1):
    r, b = res.get(f"get-64MiB-healthy-{p}"), res.get(f"baseline-get-64MiB-{p}")
    if r and b and r.get("server") and b.get("server") and r["server"]["cpu_s_per_gib"] and b["server"]["cpu_s_per_gib"]:
        floor = b["server"]["cpu_s_per_gib"] + lim["get_bitrot_verify_cpu_s_per_gib"]
        ratios.append((r["server"]["cpu_s_per_gib"] / floor, r["server"]["cpu_s_per_gib"], b["server"]["cpu_s_per_gib"]))
if ratios:
    x, rc, bc = sorted(ratios)[len(ratios) // 2]
    row("large GET: server CPU/GiB / (baseline+verify)", f"{x:.2f}", "<= 1.5", x <= 1.5,
        f"median of {len(ratios)} pairs ({', '.join(f'{q[0]:.2f}' for q in ratios)}); "
        f"its pair: {rc:.3f} vs {bc:.3f} + {lim['get_bitrot_verify_cpu_s_per_gib']:.3f} s/GiB")
r = res.get("get-4KiB")
if r:
    l = r["ops"]["GET"]["latency_ms"]
    x = l["p99"] / l["p50"] if l["p50"] else float("inf")
    row("4 KiB GET at 32: p99 / p50", f"{x:.2f}", "<= 3", x <= 3, f"p50 {l['p50']:.2f} ms, p99 {l['p99']:.2f} ms")
# Measured right before and after the 4 KiB PUTs, in the filesystem state they found.
around = [w for w in (load("small-writes-before"), load("small-writes-after")) if w]
keys = ("fsync_4k_parallel_per_s", "small_commits_per_s", "small_commit_cpu_ms")
sw = {k: sum(w[k] for w in around) / len(around) for k in keys} if around else lim
r = res.get("put-4KiB")
if r:
    bound = sw["fsync_4k_parallel_per_s"] / (syncs * drives)
    x = r["ops"]["PUT"]["ops_per_s"] / bound
    row("4 KiB PUT at 32: obj/s / fdatasync bound", f"{x:.2f}", ">= 0.8", x >= 0.8,
        f"{r['ops']['PUT']['ops_per_s']:.0f}/s vs {bound:.0f}/s ({sw['fsync_4k_parallel_per_s']:.0f} syncs/s / "
        f"({syncs} syncs x {drives} drives on one filesystem))")
r = res.get("put-4KiB")
if r:
    # Per-drive commits made durable without a journal (mkdir, write,
    # fdatasync, rename, fsync x2) by a program with nothing else to do: what
    # the filesystem allows that way (the mean of the runs before and after).
    plain = sw["small_commits_per_s"] / drives
    x = r["ops"]["PUT"]["ops_per_s"] / plain
    cpu = (r.get("server") or {}).get("cpu_s_per_kop")
    per_obj = sw["small_commit_cpu_ms"] * drives
    detail = f"{r['ops']['PUT']['ops_per_s']:.0f}/s vs {plain:.0f}/s"
    if cpu is not None:
        detail += f"; CPU {cpu:.2f} ms/object vs {per_obj:.2f} ms for the syscalls alone"
    row("4 KiB PUT: obj/s / journal-less syscall commits", f"{x:.2f}", "(bound)", None, detail)
r = res.get("memory-64x64MiB")
if r and r.get("server"):
    rss = r["server"]["peak_rss_bytes"] / 1048576
    row("64 concurrent 64 MiB PUTs: peak RSS MiB", f"{rss:.0f}", "<= 256", rss <= 256, "")
r, d = res.get(f"get-64MiB-healthy-{pairs}") or res.get("get-64MiB"), res.get("get-64MiB-degraded")
if r and d:
    x = d["ops"]["GET"]["mib_per_s"] / r["ops"]["GET"]["mib_per_s"]
    row("degraded GET (2 of 4 drives gone) / healthy", f"{x:.2f}", ">= 0.7", x >= 0.7,
        f"{d['ops']['GET']['mib_per_s']:.0f} vs {r['ops']['GET']['mib_per_s']:.0f} MiB/s (healthy right before)")
    if r.get("server") and d.get("server"):
        # Decoding every block (for the objects whose data shards were on the lost
        # drives) is compute a healthy GET never does.
        extra = d["server"]["cpu_s_per_gib"] - r["server"]["cpu_s_per_gib"]
        row("degraded GET: extra CPU/GiB / RS decode", f"{extra / lim['rs_decode_cpu_s_per_gib']:.2f}", "(bound)", None,
            f"{extra:.3f} more s/GiB than healthy; decode of {lim['rs_decode_lost_shards']} lost shards "
            f"{lim['rs_decode_cpu_s_per_gib']:.3f} s/GiB")
print()
print("throughput against the hardware (one disk under all four drives):")
k, m = (int(v) for v in lim["layout"].split("+"))
r = res.get("put-64MiB")
if r:
    ceiling = lim["odirect_write_mib_s"] * k / (k + m)
    print(f"  large PUT {r['ops']['PUT']['mib_per_s']:.0f} MiB/s = {r['ops']['PUT']['mib_per_s'] / ceiling:.2f} x "
          f"the disk's O_DIRECT write ({lim['odirect_write_mib_s']:.0f} MiB/s) x {k}/{k + m}")
r = res.get("get-64MiB")
if r:
    ceiling = min(lim["odirect_read_mib_s"], lim["loopback_mib_s"])
    print(f"  large GET {r['ops']['GET']['mib_per_s']:.0f} MiB/s = {r['ops']['GET']['mib_per_s'] / ceiling:.2f} x "
          f"min(O_DIRECT read, loopback) ({ceiling:.0f} MiB/s)")
PY
echo "results in $OUT (removed at exit unless KEEP=1)"
