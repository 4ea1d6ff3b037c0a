"""Shared fixtures: a real `basalt server` process on a free loopback port with
temporary drive directories, and clients configured for it. Every server's
directory is removed when its test ends (its logs kept in
tests/artifacts/logs/ if the test failed), so a run needs the disk of one
test, not of all of them."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("BASALT_BIN", os.path.join(ROOT, "target", "debug", "basalt"))
ACCESS_KEY = "testadmin"
SECRET_KEY = "testsecret123"
# Where a failed test's server logs are kept (ignored by git).
FAILED_LOGS = os.path.join(ROOT, "tests", "artifacts", "logs")
# The most of each log kept for a failed test: its end, where the failure is.
KEPT_LOG_BYTES = 1 << 20

# Every Server made by the running test, for `remove_servers` to clean up.
_made = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, drives=4, cores=2, extra_args=(), output=None):
        self.extra_args = list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="basalt-test-")
        self.drives = [os.path.join(self.dir, f"d{i}") for i in range(1, drives + 1)]
        self.cores = cores
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = os.path.join(self.dir, "server.log")
        # Where the server's stdout and stderr go (default: the log above).
        self.output = output or self.log
        _made.append(self)

    def start(self):
        env = dict(os.environ, BASALT_ROOT_USER=ACCESS_KEY, BASALT_ROOT_PASSWORD=SECRET_KEY)
        args = [BINARY, "server", "--address", f"127.0.0.1:{self.port}", "--cores", str(self.cores)]
        args += [*self.extra_args, *self.drives]
        self.proc = subprocess.Popen(args, env=env, stdout=open(self.output, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {open(self.log).read()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/minio/health/live", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become live")

    def stop(self):
        """SIGTERM, and the server must exit 0."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(timeout=30)
            assert code == 0, f"server exited {code}: {open(self.log).read()}"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def keep_logs(directory, test_name):
    """Copies the end of every *.log under `directory` to FAILED_LOGS/<test>/."""
    into = os.path.join(FAILED_LOGS, re.sub(r"[^A-Za-z0-9_.-]", "_", test_name))
    for dirpath, _, files in os.walk(directory):
        for name in files:
            if not name.endswith(".log"):
                continue
            os.makedirs(into, exist_ok=True)
            with open(os.path.join(dirpath, name), "rb") as f:
                f.seek(max(0, os.path.getsize(f.name) - KEPT_LOG_BYTES))
                tail = f.read()
            with open(os.path.join(into, name), "wb") as out:
                out.write(tail)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Marks a test that failed in any phase, for `remove_servers`."""
    report = (yield).get_result()
    if report.failed:
        item.basalt_failed = True


@pytest.fixture(autouse=True)
def remove_servers(request):
    """After each test: kills its servers still running and removes their
    directories (drives and logs), keeping the logs of a failed test. Every
    server is the test's own: a fixture of wider scope that made one would
    lose it after its first test."""
    first = len(_made)
    yield
    for s in _made[first:]:
        s.kill()
        if getattr(request.node, "basalt_failed", False):
            keep_logs(s.dir, request.node.name)
        shutil.rmtree(s.dir, ignore_errors=True)
    del _made[first:]


@pytest.fixture
def server():
    s = Server().start()
    yield s
    s.stop()


def client_for(endpoint, **config):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


@pytest.fixture
def s3(server):
    return client_for(server.endpoint)


def aws_env(server):
    return dict(
        os.environ,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )


def aws(server, *args, check=True):
    """Runs the aws cli against the server; returns its stdout."""
    cmd = ["aws", "--endpoint-url", server.endpoint, "--no-progress" if args[0] == "s3" and args[1] in ("cp", "sync", "mv") else None, *args]
    cmd = [c for c in cmd if c is not None]
    # --no-progress belongs after the subcommand
    if "--no-progress" in cmd:
        cmd.remove("--no-progress")
        cmd.insert(cmd.index(args[1]) + 1, "--no-progress")
    started = time.time()
    r = subprocess.run(cmd, env=aws_env(server), capture_output=True, text=True, timeout=300)
    print(f"{time.time() - started:6.2f}s {' '.join(args)}")
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
    return r
