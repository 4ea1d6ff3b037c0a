"""The seed deployment end to end: HAProxy from the Debian packages in front of
four nodes, round robin, health-checking /minio/health/live; the aws cli talks
only to the load balancer. A node that stops is taken out by the health check
while the client keeps working, and is put back when it returns."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from cluster_harness import ACCESS_KEY, SECRET_KEY, free_port, sha

HAPROXY_CFG = """
global
    stats socket {sock} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend s3
    bind 127.0.0.1:{port}
    default_backend basalt
backend basalt
    balance roundrobin
    option httpchk GET /minio/health/live
    http-check expect status 200
{servers}
"""


def stats(sock):
    """Per server: (status, sessions total) from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == "basalt" and row.get("svname", "").startswith("node"):
            out[row["svname"]] = (row["status"], int(row["stot"] or 0))
    return out


def wait_status(sock, server, want, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stats(sock)[server][0].startswith(want):
            return
        time.sleep(0.2)
    raise AssertionError(f"{server} never became {want}: {stats(sock)}")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is installed by tests/run.sh")
def test_haproxy_round_robin_takes_a_dead_node_out_and_back(cluster_factory):
    c = cluster_factory(4, 1).start()
    work = tempfile.mkdtemp(prefix="basalt-lb-")
    sock = os.path.join(work, "haproxy.sock")
    port = free_port()
    servers = "\n".join(
        f"    server node{n + 1} 127.0.0.1:{p} check inter 300ms fall 2 rise 2" for n, p in enumerate(c.ports)
    )
    cfg = os.path.join(work, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG.format(sock=sock, port=port, servers=servers))
    lb = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.pop("AWS_CA_BUNDLE", None)

    def aws(*args):
        r = subprocess.run(["aws", "--endpoint-url", endpoint, *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"aws {' '.join(args)}: {r.stderr}"
        return r.stdout

    try:
        deadline = time.time() + 15
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.1)
        for n in range(4):
            wait_status(sock, f"node{n + 1}", "UP")
        src = os.path.join(work, "src.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(9 * 1024 * 1024 + 5))
        aws("s3", "mb", "s3://lbt")
        aws("s3", "cp", "--no-progress", src, "s3://lbt/file")

        c.kill(1)
        wait_status(sock, "node2", "DOWN")
        before = stats(sock)["node2"][1]
        for i in range(6):
            aws("s3", "cp", "--no-progress", src, f"s3://lbt/while-down-{i}")
            out = os.path.join(work, f"out{i}")
            aws("s3", "cp", "--no-progress", "s3://lbt/file", out)
            assert sha(open(out, "rb").read()) == sha(open(src, "rb").read())
        assert "while-down-5" in aws("s3", "ls", "s3://lbt/")
        assert stats(sock)["node2"][1] == before, "no request may go to the node that is down"

        c.start(1)
        wait_status(sock, "node2", "UP")
        for i in range(8):
            aws("s3", "ls", "s3://lbt/")
        assert stats(sock)["node2"][1] > before, "the node that came back serves again"
    finally:
        lb.kill()
        lb.wait()
        shutil.rmtree(work, ignore_errors=True)
