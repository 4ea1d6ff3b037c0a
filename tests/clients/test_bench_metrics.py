"""`basalt bench` against a real server (JSON figures, cleanup, compare) and the
metrics endpoints (authentication, counters that move by exactly the requests
made, bearer tokens, public mode)."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCESS_KEY, BINARY, SECRET_KEY, Server, client_for


def bench(server, mode, tmp_path, *args, name=None, endpoint=None):
    out = tmp_path / f"{name or mode}.json"
    cmd = [BINARY, "bench", mode, "--endpoint", endpoint or server.endpoint, "--access-key", ACCESS_KEY,
           "--secret-key", SECRET_KEY, "--duration", "2s", "--concurrent", "4", "--json", str(out), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(out.read_text()), r.stdout, out


def keys(s3, bucket):
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]


@pytest.mark.parametrize("mode,args,ops", [
    ("put", ["--obj.size", "4KiB"], ["PUT"]),
    ("put", ["--obj.size", "300KiB", "--payload", "streaming", "--chunk.size", "64KiB"], ["PUT"]),
    ("get", ["--obj.size", "200KiB", "--objects", "20", "--range"], ["GET"]),
    ("mixed", ["--obj.size", "4KiB", "--objects", "40"], ["GET", "STAT", "PUT", "DELETE"]),
    ("multipart", ["--obj.size", "11MiB", "--part.size", "5MiB"], ["MULTIPART", "PART"]),
])
def test_bench_runs_and_cleans_up(server, s3, tmp_path, mode, args, ops):
    s3.create_bucket(Bucket="bench")
    report, text, _ = bench(server, mode, tmp_path, "--bucket", "bench", *args)
    assert report["mode"] == mode
    for op in ops:
        s = report["ops"][op]
        assert s["ops"] > 0 and s["errors"] == 0, (op, s)
        assert s["latency_ms"]["p50"] > 0 and s["latency_ms"]["max"] >= s["latency_ms"]["p99"]
    assert report["client"]["cpu_s"] > 0
    assert report["cleanup_failures"] == 0
    if "GET" in ops:
        assert report["ops"]["GET"]["ttfb_ms"]["p50"] > 0
        assert "time to first byte" in text
    # Everything the run created or prepared is gone; the bucket it did not create stays.
    assert keys(s3, "bench") == []
    s3.head_bucket(Bucket="bench")


def test_bench_creates_and_removes_its_bucket_and_splits_endpoints(server, s3, tmp_path):
    second = server.endpoint.replace("127.0.0.1", "localhost")
    report, text, _ = bench(server, "stat", tmp_path, "--objects", "10", "--obj.size", "1KiB",
                            endpoint=f"{server.endpoint},{second}")
    assert len(report["per_endpoint"]) == 2
    assert all(e["STAT"]["ops"] > 0 for e in report["per_endpoint"])
    assert sum(e["STAT"]["ops"] for e in report["per_endpoint"]) == report["ops"]["STAT"]["ops"]
    assert second in text
    assert "basalt-bench" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_bench_reports_errors_and_server_cpu(server, tmp_path):
    out = tmp_path / "bad.json"
    r = subprocess.run([BINARY, "bench", "put", "--endpoint", server.endpoint, "--access-key", ACCESS_KEY,
                        "--secret-key", "wrong-secret-key", "--duration", "1s", "--json", str(out)],
                       capture_output=True, text=True, timeout=60)
    # The bucket cannot even be created with a wrong key: a clear message, exit 2.
    assert r.returncode == 2 and "SignatureDoesNotMatch" in r.stderr, r.stderr
    report, text, _ = bench(server, "put", tmp_path, "--obj.size", "1MiB", "--server-pid", str(server.proc.pid))
    assert report["server"]["cpu_s"] > 0 and report["server"]["peak_rss_bytes"] > 0
    assert "bench CPU / server CPU" in text


def test_bench_compare(server, tmp_path):
    _, _, a = bench(server, "put", tmp_path, "--obj.size", "4KiB", name="a")
    _, _, b = bench(server, "put", tmp_path, "--obj.size", "4KiB", name="b")
    r = subprocess.run([BINARY, "bench", "compare", str(a), str(b)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(l.startswith("PUT") and "ops/s" in l and "%" in l for l in lines), r.stdout
    assert any("p99 ms" in l for l in lines)
    (tmp_path / "junk.json").write_text("{}")
    r = subprocess.run([BINARY, "bench", "compare", str(a), str(tmp_path / "junk.json")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "not a basalt bench report" in r.stderr


# ---- metrics ------------------------------------------------------------------

METRICS_PATHS = ["/minio/v2/metrics/cluster", "/minio/v2/metrics/node", "/metrics"]


def scrape(server, path="/minio/v2/metrics/cluster", sign=True, token=None):
    url = server.endpoint + path
    headers = {}
    if sign:
        req = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
        headers = dict(req.headers.items())
    if token:
        headers = {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    full = f"{name}{{{want}}}" if want else name
    for line in text.splitlines():
        if line.startswith(full + " "):
            return float(line.split()[-1])
    return 0.0


def jwt(access, secret, exp, alg="HS512"):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    claims = b64(json.dumps({"exp": exp, "sub": access, "iss": "prometheus"}).encode())
    sig = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha512).digest()
    return f"{header}.{claims}.{b64(sig)}"


def test_metrics_need_authentication(server):
    for path in METRICS_PATHS:
        status, body = scrape(server, path, sign=False)
        assert status == 403, (path, status, body)
        assert "AccessDenied" in body
        status, body = scrape(server, path)
        assert status == 200, (path, status, body)
        assert "# TYPE minio_s3_requests_total counter" in body


def test_counters_move_by_exactly_the_requests_made(server, s3):
    s3.create_bucket(Bucket="counted")
    s3.put_object(Bucket="counted", Key="warm", Body=b"x")
    _, before = scrape(server)
    for i in range(3):
        s3.put_object(Bucket="counted", Key=f"k{i}", Body=b"y" * 1000)
    s3.get_object(Bucket="counted", Key="k0")["Body"].read()
    with pytest.raises(Exception):
        s3.get_object(Bucket="counted", Key="missing")
    # A request is counted once its answer is sent: allow the last one a moment.
    deadline = time.time() + 5
    while True:
        _, after = scrape(server)
        delta = lambda name, **l: sample(after, name, **l) - sample(before, name, **l)
        if delta("minio_s3_requests_total", api="GetObject") >= 2 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert delta("minio_s3_requests_total", api="PutObject") == 3
    assert delta("basalt_s3_requests_by_status_total", api="PutObject", status="200") == 3
    assert delta("basalt_s3_request_duration_seconds_count", api="PutObject") == 3
    assert delta("minio_s3_requests_total", api="GetObject") == 2
    assert delta("minio_s3_requests_4xx_errors_total", api="GetObject") == 1
    assert delta("minio_s3_traffic_received_bytes") >= 3000
    # Small bodies are hashed for their ETags too, alone.
    assert delta("basalt_etag_md5_bytes_total") == 3000
    assert delta("basalt_etag_md5_lanes_shared_bytes_total") == 0
    assert delta("minio_s3_traffic_sent_bytes") >= 1000
    assert sample(after, "minio_cluster_drive_online_total") == 4
    assert sample(after, "basalt_cores") == 2
    _, node = scrape(server, "/minio/v2/metrics/node")
    drive = server.drives[0]
    assert sample(node, "basalt_node_drive_online", drive=drive, index=1) == 1
    assert sample(node, "minio_node_drive_free_bytes", drive=drive, index=1) > 0


def test_offline_drive_and_heal_show(server, s3):
    s3.create_bucket(Bucket="heal")
    s3.put_object(Bucket="heal", Key="big", Body=os.urandom(3 << 20))
    # Damage one drive's copy: a GET reconstructs and queues a heal.
    import shutil
    shutil.rmtree(os.path.join(server.drives[1], "heal", "big"))
    s3.get_object(Bucket="heal", Key="big")["Body"].read()
    deadline = time.time() + 10
    while time.time() < deadline:
        _, text = scrape(server)
        if sample(text, "minio_heal_objects_heal_total") >= 1:
            break
        time.sleep(0.1)
    assert sample(text, "minio_heal_objects_heal_total") >= 1
    os.rename(server.drives[3], server.drives[3] + ".gone")
    try:
        _, text = scrape(server, "/metrics")
        assert sample(text, "minio_cluster_drive_offline_total") == 1
        assert sample(text, "basalt_node_drive_online", drive=server.drives[3], index=4) == 0
    finally:
        os.rename(server.drives[3] + ".gone", server.drives[3])


def test_bearer_token(server):
    good = jwt(ACCESS_KEY, SECRET_KEY, int(time.time()) + 3600)
    status, body = scrape(server, sign=False, token=good)
    assert status == 200 and "minio_s3_requests_total" in body
    for bad in [jwt(ACCESS_KEY, "not-the-secret", int(time.time()) + 3600),
                jwt(ACCESS_KEY, SECRET_KEY, int(time.time()) - 10),
                jwt("someone", SECRET_KEY, int(time.time()) + 3600),
                jwt(ACCESS_KEY, SECRET_KEY, int(time.time()) + 3600, alg="HS256"),
                "not.a.token"]:
        status, body = scrape(server, sign=False, token=bad)
        assert status == 403, (bad, body)


def test_public_metrics(monkeypatch):
    monkeypatch.setenv("BASALT_PROMETHEUS_AUTH_TYPE", "public")
    s = Server().start()
    try:
        for path in METRICS_PATHS:
            status, body = scrape(s, path, sign=False)
            assert status == 200 and "basalt_cores 2" in body, (path, body)
        # Only the metrics are public.
        assert client_for(s.endpoint).list_buckets()["Buckets"] == []
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(s.endpoint + "/", timeout=5)
    finally:
        s.stop()
    monkeypatch.setenv("BASALT_PROMETHEUS_AUTH_TYPE", "everyone")
    bad = Server()
    with pytest.raises(RuntimeError, match="BASALT_PROMETHEUS_AUTH_TYPE"):
        bad.start()
