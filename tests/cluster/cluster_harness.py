"""A cluster of real `basalt server` processes on loopback: one port per node,
drive directories in a temp dir, endpoints listed one by one (the way several
nodes share one machine), every node started with the same arguments."""

import hashlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import importlib.util

# The client suite's harness: the binary, the root keys, free ports and boto3
# clients, loaded under its own name (a second module named `conftest` would
# shadow the first when both suites run in one pytest).
_CLIENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients", "conftest.py")
_spec = importlib.util.spec_from_file_location("basalt_client_harness", _CLIENTS)
clients = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clients)

BINARY = clients.BINARY
ACCESS_KEY = clients.ACCESS_KEY
SECRET_KEY = clients.SECRET_KEY
free_port = clients.free_port
client_for = clients.client_for


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Cluster:
    def __init__(self, nodes=4, drives=1, cores=1, secret=SECRET_KEY):
        self.dir = tempfile.mkdtemp(prefix="basalt-cluster-")
        self.ports = [free_port() for _ in range(nodes)]
        self.drives_per_node = drives
        self.cores = cores
        self.secret = secret
        self.endpoints = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.args = [
            f"http://127.0.0.1:{self.ports[n]}{self.drive(n, d)}" for n in range(nodes) for d in range(drives)
        ]
        self.procs = [None] * nodes
        # Where each node's current run starts in its log (logs are appended to).
        self.log_start = [0] * nodes
        self.logs = [os.path.join(self.dir, f"node{n + 1}.log") for n in range(nodes)]

    def drive(self, n, d):
        return os.path.join(self.dir, f"n{n + 1}", f"d{d + 1}")

    def drives(self, n):
        return [self.drive(n, d) for d in range(self.drives_per_node)]

    def spawn(self, n, args=None, secret=None, port=None):
        env = dict(os.environ, BASALT_ROOT_USER=ACCESS_KEY, BASALT_ROOT_PASSWORD=secret or self.secret)
        port = port or self.ports[n]
        cmd = [BINARY, "server", "--address", f"127.0.0.1:{port}", "--cores", str(self.cores), *(args or self.args)]
        name = f"node{n + 1}.log" if n < len(self.ports) else f"extra{port}.log"
        log = open(os.path.join(self.dir, name), "ab")
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def start(self, *which):
        which = which or range(len(self.ports))
        for n in which:
            self.log_start[n] = os.path.getsize(self.logs[n]) if os.path.exists(self.logs[n]) else 0
            self.procs[n] = self.spawn(n)
        for n in which:
            self.wait_ready(n)
        return self

    def wait_ready(self, n, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.procs[n].poll() is not None:
                raise RuntimeError(f"node {n + 1} exited: {self.log(n)}")
            if "Ready in" in self.log(n)[self.log_start[n]:]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"node {n + 1} did not become ready: {self.log(n)}")

    def log(self, n):
        """Node n's log, all runs."""
        with open(self.logs[n], errors="replace") as f:
            return f.read()

    def kill(self, n):
        p = self.procs[n]
        if p and p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        self.procs[n] = None

    def stop_all(self):
        for n, p in enumerate(self.procs):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in enumerate(self.procs):
            if p:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()

    def s3(self, n, **config):
        return client_for(self.endpoints[n], **config)

    def health(self, n, path="/minio/health/cluster"):
        try:
            with urllib.request.urlopen(self.endpoints[n] + path, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def shard_files(self, n, bucket, key):
        """Files of `key` on node n's drives (metadata and shards)."""
        found = []
        for d in self.drives(n):
            root = os.path.join(d, bucket, key)
            for dirpath, _, files in os.walk(root):
                found += [os.path.join(dirpath, f) for f in files]
        return found

    def admin(self, n, *args):
        env = dict(os.environ, BASALT_ROOT_USER=ACCESS_KEY, BASALT_ROOT_PASSWORD=self.secret)
        return subprocess.run(
            [BINARY, "admin", *args, "--endpoint", self.endpoints[n]], env=env, capture_output=True, text=True, timeout=120
        )

