"""Distributed basalt: four real processes on loopback pooling their drives.
Data written through one node reads back identically through every other;
nodes are killed with SIGKILL mid-flight and what was acknowledged stays
readable; nodes that return are healed; strangers cannot join."""

import http.client
import os
import threading
import time

import botocore.exceptions
import pytest

from cluster_harness import ACCESS_KEY, BINARY, SECRET_KEY, sha

MiB = 1 << 20
SIZES = [0, 1, 1000, 128 * 1024 + 1, 3 * MiB + 17, 64 * MiB]


def body(size, seed):
    """Bytes that differ per seed and per 4 KiB block (cheaper than urandom for 64 MiB)."""
    blocks = [sha(f"{seed}/{i}".encode()).encode() * 64 for i in range(size // 4096 + 1)]
    return b"".join(blocks)[:size]


def put_all(s3, bucket, sizes=SIZES, prefix="obj"):
    written = {}
    for i, size in enumerate(sizes):
        data = os.urandom(size) if size <= 4 * MiB else body(size, f"{prefix}{i}")
        key = f"{prefix}/{i}-{size}"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        written[key] = sha(data)
    return written


def check_all(s3, bucket, written):
    for key, digest in written.items():
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert sha(got) == digest, f"{key} differs"


def listing(s3, bucket):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [(o["Key"], o["Size"], o["ETag"]) for o in page.get("Contents", [])]
    return keys


def multipart(s3, bucket, key, parts=3, part_size=5 * MiB):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    datas = [os.urandom(part_size) for _ in range(parts - 1)] + [os.urandom(1234)]
    done = []
    for i, d in enumerate(datas, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=i, Body=d)
        done.append({"PartNumber": i, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": done})
    return sha(b"".join(datas))


@pytest.mark.parametrize("drives,layout", [(1, "2 data + 2 parity"), (2, "4 data + 4 parity"), (4, "12 data + 4 parity")])
def test_written_through_one_node_reads_back_through_every_node(cluster_factory, drives, layout):
    c = cluster_factory(4, drives).start()
    assert layout in c.log(0)
    s3 = [c.s3(n) for n in range(4)]
    s3[0].create_bucket(Bucket="pool")
    written = put_all(s3[0], "pool")
    written["mp/big"] = multipart(s3[1], "pool", "mp/big")
    for n in range(4):
        check_all(s3[n], "pool", written)
    lists = [listing(s3[n], "pool") for n in range(4)]
    assert [k for k, _, _ in lists[0]] == sorted(written)
    assert all(lst == lists[0] for lst in lists)
    assert all(sorted(b["Name"] for b in s3[n].list_buckets()["Buckets"]) == ["pool"] for n in range(4))
    # Shards are spread: every node holds a piece of the big object.
    for n in range(4):
        assert c.shard_files(n, "pool", "obj/5-67108864"), f"node {n + 1} holds no shard"
    info = c.admin(2, "info")
    assert info.returncode == 0, info.stdout + info.stderr
    assert "Nodes: 4 of 4 online" in info.stdout
    assert "Quorum: read yes, write yes" in info.stdout


def committed(c, n, bucket, key):
    """Whether node n holds `key`'s metadata, renamed into place."""
    return any(f.endswith(".basalt.meta") for f in c.shard_files(n, bucket, key))


@pytest.mark.parametrize("drives", [1, 2])
def test_two_nodes_down_reads_go_on_writes_fail_cleanly_then_heal(cluster_factory, drives):
    c = cluster_factory(4, drives).start()
    s3 = [c.s3(n) for n in range(4)]
    s3[0].create_bucket(Bucket="dur")
    written = put_all(s3[0], "dur", sizes=[10, 200 * 1024, 5 * MiB])

    c.kill(3)
    # One node down: reads and writes go on through the others.
    w = os.urandom(2 * MiB)
    s3[1].put_object(Bucket="dur", Key="while-one-down", Body=w)
    written["while-one-down"] = sha(w)
    small = os.urandom(100)
    s3[2].put_object(Bucket="dur", Key="small-while-one-down", Body=small)
    written["small-while-one-down"] = sha(small)
    for n in range(3):
        check_all(s3[n], "dur", written)
    assert c.health(0) == 200

    c.kill(2)
    # Two down: parity covers two nodes' drives, so every read goes on...
    for n in range(2):
        check_all(s3[n], "dur", written)
    assert len(listing(s3[0], "dur")) == len(written)
    # ...and writes fail with a quorum error, leaving no trace.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3[0].put_object(Bucket="dur", Key="refused", Body=os.urandom(3 * MiB))
    assert e.value.response["Error"]["Code"] in ("XMinioWriteQuorum", "XMinioReadQuorum"), e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "refused" not in [k for k, _, _ in listing(s3[1], "dur")]
    assert not any(c.shard_files(n, "dur", "refused") for n in range(4))
    assert c.health(0) == 503, "a node without write quorum must leave the load balancer"
    assert c.health(0, "/minio/health/live") == 200

    # Both come back: what was written meanwhile is healed onto them.
    c.start(2, 3)
    deadline = time.time() + 60
    while time.time() < deadline:
        # Healed means committed: the metadata renamed into place, not just a
        # heal's shard written or its metadata's temp file.
        if all(committed(c, n, "dur", "while-one-down") for n in (2, 3)) and committed(c, 3, "dur", "small-while-one-down"):
            break
        time.sleep(0.5)
    meta = [f for f in c.shard_files(3, "dur", "while-one-down") if f.endswith(".basalt.meta")]
    parts = [f for f in c.shard_files(3, "dur", "while-one-down") if "part." in f]
    assert meta and parts, f"node 4 was not healed: {c.shard_files(3, 'dur', 'while-one-down')}"
    # Node 1 redials the returned nodes with backoff (at most 2 s between tries).
    deadline = time.time() + 15
    while c.health(0) != 200 and time.time() < deadline:
        time.sleep(0.2)
    assert c.health(0) == 200
    # Now lose two *other* nodes: everything is still readable.
    c.kill(0)
    c.kill(1)
    for n in (2, 3):
        check_all(s3[n], "dur", written)


def test_twelve_plus_four_two_nodes_down_fails_fast(cluster_factory):
    c = cluster_factory(4, 4).start()
    s3 = [c.s3(n, connect_timeout=5, read_timeout=20) for n in range(4)]
    s3[0].create_bucket(Bucket="wide")
    written = put_all(s3[0], "wide", sizes=[5, 300 * 1024, 4 * MiB])
    c.kill(3)
    check_all(s3[1], "wide", written)
    extra = os.urandom(MiB)
    s3[2].put_object(Bucket="wide", Key="after-one", Body=extra)
    written["after-one"] = sha(extra)
    c.kill(2)
    # 8 of 16 drives left, 12 needed: a clear quorum error, never a hang or wrong data.
    for key in written:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s3[0].get_object(Bucket="wide", Key=key)["Body"].read()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.value.response
        assert "Quorum" in e.value.response["Error"]["Code"]
    info = c.admin(0, "info")
    assert info.returncode == 1 and "Nodes: 2 of 4 online" in info.stdout, info.stdout + info.stderr
    c.start(2, 3)
    check_all(s3[3], "wide", written)


def raw_put(endpoint, bucket, key, chunks, size):
    """A PUT whose body trickles out chunk by chunk (unsigned payload over a signed head)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class UnsignedPayload(S3SigV4Auth):
        # botocore signs the (empty) body of a plain-HTTP request unless told otherwise.
        def payload(self, request):
            return "UNSIGNED-PAYLOAD"

    url = f"{endpoint}/{bucket}/{key}"
    host = endpoint.removeprefix("http://")
    req = AWSRequest(method="PUT", url=url, headers={"Host": host, "Content-Length": str(size)})
    UnsignedPayload(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.putrequest("PUT", f"/{bucket}/{key}", skip_accept_encoding=True, skip_host=True)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    for chunk in chunks:
        conn.send(chunk)
    return conn.getresponse()


def assert_absent_or_whole(s3, bucket, key, data):
    """After a failed upload the key is absent or holds all of `data`, never a part."""
    try:
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e.response
        return
    assert sha(got) == sha(data), f"{key} holds {len(got)} bytes that are not the upload"


def test_node_killed_mid_upload_and_mid_download(cluster_factory):
    c = cluster_factory(4, 1).start()
    s3 = [c.s3(n) for n in range(4)]
    s3[0].create_bucket(Bucket="mid")
    size = 48 * MiB
    data = body(size, "mid")

    # The node serving an upload dies: the client gets an error, and the key
    # is either absent or complete, never truncated.
    def chunks(kill_at):
        for off in range(0, size, MiB):
            if off == kill_at:
                c.kill(0)
            yield data[off:off + MiB]

    try:
        status = raw_put(c.endpoints[0], "mid", "upload-killed", chunks(16 * MiB), size).status
    except (OSError, http.client.HTTPException):
        status = None
    assert c.procs[0] is None, "the upload ended before its node was killed: the test proves nothing"
    assert status != 200, "the upload succeeded although its node died before the body was sent"
    assert_absent_or_whole(s3[1], "mid", "upload-killed", data)
    c.start(0)

    # Another node dies during an upload through node 1: the upload completes
    # (quorum remains) or fails, and what is stored is whole.
    def chunks_killing_other():
        for off in range(0, size, MiB):
            if off == 16 * MiB:
                c.kill(2)
            yield data[off:off + MiB]

    try:
        status = raw_put(c.endpoints[0], "mid", "other-killed", chunks_killing_other(), size).status
    except (OSError, http.client.HTTPException):
        status = None
    assert c.procs[2] is None, "the upload ended before node 3 was killed: the test proves nothing"
    if status == 200:
        assert sha(s3[1].get_object(Bucket="mid", Key="other-killed")["Body"].read()) == sha(data)
    else:
        assert_absent_or_whole(s3[1], "mid", "other-killed", data)
    c.start(2)

    # Downloads: a node holding shards dies mid-stream; the client gets the whole
    # object (rebuilt from parity) or an error, never silently fewer bytes.
    s3[0].put_object(Bucket="mid", Key="down", Body=data)
    for victim, via in ((2, 1), (1, 1)):
        conn = http.client.HTTPConnection(c.endpoints[via].removeprefix("http://"), timeout=30)
        url = s3[via].generate_presigned_url("get_object", Params={"Bucket": "mid", "Key": "down"})
        conn.request("GET", url.split(c.endpoints[via])[1])
        r = conn.getresponse()
        assert r.status == 200
        length = int(r.getheader("Content-Length"))
        assert length == size
        got = bytearray(r.read(8 * MiB))
        c.kill(victim)
        try:
            while len(got) < length:
                b = r.read(MiB)
                if not b:
                    break
                got += b
        except (http.client.IncompleteRead, ConnectionError, OSError):
            pass
        # Fewer bytes than Content-Length promised is an error every client sees;
        # a read that claims completeness must be the object, byte for byte.
        if len(got) == length:
            assert sha(bytes(got)) == sha(data), "a complete read must be correct"
        else:
            assert victim == via, "a node holding shards died: parity must have served the rest"
        c.start(victim)


def test_concurrent_writers_through_different_nodes_agree(cluster_factory):
    c = cluster_factory(4, 1).start()
    s3 = [c.s3(n) for n in range(4)]
    s3[0].create_bucket(Bucket="race")
    keys = [f"k{i}" for i in range(4)]
    errors = []

    def writer(n):
        client = c.s3(n)
        for round_ in range(6):
            for k in keys:
                payload = f"writer {n} round {round_} ".encode() * (1000 + 3000 * (k == "k0"))
                try:
                    client.put_object(Bucket="race", Key=k, Body=payload + sha(payload).encode())
                except botocore.exceptions.ClientError as e:
                    if e.response["Error"]["Code"] != "SlowDown":
                        errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in keys:
        bodies = {s3[n].get_object(Bucket="race", Key=k)["Body"].read() for n in range(4)}
        assert len(bodies) == 1, f"nodes disagree on {k}"
        b = bodies.pop()
        payload, digest = b[:-64], b[-64:]
        assert sha(payload).encode() == digest, "a read returned a mix of versions"


def test_strangers_cannot_join(cluster_factory):
    c = cluster_factory(4, 1).start()
    s3 = c.s3(0)
    s3.create_bucket(Bucket="club")
    s3.put_object(Bucket="club", Key="a", Body=b"members only")
    # Node 4's place taken by a process with another secret key.
    c.kill(3)
    c.log_start[3] = os.path.getsize(c.logs[3])
    impostor = c.spawn(3, secret="not-the-cluster-secret")
    # A fifth process with another endpoint list (the four plus itself).
    port = c.ports[0] + 1000 if c.ports[0] < 64000 else c.ports[0] - 1000
    fifth_args = c.args + [f"http://127.0.0.1:{port}{c.dir}/n5/d1"]
    stranger = c.spawn(4, args=fifth_args, port=port)
    try:
        time.sleep(4)
        for p in (impostor, stranger):
            assert p.poll() is None or p.returncode != 0
        assert "Ready in" not in c.log(3)[c.log_start[3]:], "the impostor must never serve"
        with open(os.path.join(c.dir, f"extra{port}.log"), errors="replace") as f:
            assert "Ready in" not in f.read(), "a process with another endpoint list must never serve"
        logs = "".join(c.log(n) for n in range(3))
        assert "other root credentials" in logs, logs[-3000:]
        assert "other drive arguments" in logs, logs[-3000:]
        # The cluster keeps serving.
        for n in range(3):
            assert c.s3(n).get_object(Bucket="club", Key="a")["Body"].read() == b"members only"
        c.s3(1).put_object(Bucket="club", Key="b", Body=b"still writable")
    finally:
        for p in (impostor, stranger):
            p.kill()
            p.wait()


def test_refused_topologies_say_what_to_fix(tmp_path):
    import subprocess

    cases = [
        (["http://127.0.0.1:9001/a", str(tmp_path / "b")], "mix URLs and plain paths"),
        (["http://127.0.0.1:9001/a", "http://127.0.0.1:9001/b", "http://127.0.0.1:9002/c"], "different numbers of drives"),
        (["http://127.0.0.1:9001/a", "http://127.0.0.1:9001/a"], "given twice"),
        (["http://127.0.0.1:9001/a", "http://127.0.0.1:9002/a"], "same directory on the same machine"),
        (["http://127.0.0.1:900{1...2}/a{1...2}", "http://127.0.0.1:900{3...4}/a{1...2}"], "server pools"),
        (["http://127.0.0.1:9002/x", "http://127.0.0.1:9003/y"], "none of the endpoints is this node"),
    ]
    for args, message in cases:
        r = subprocess.run([BINARY, "server", "--address", "127.0.0.1:9001", *args], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)


def test_admin_heal_rebuilds_deleted_shards(cluster_factory):
    c = cluster_factory(4, 1).start()
    s3 = c.s3(0)
    s3.create_bucket(Bucket="fix")
    data = os.urandom(3 * MiB)
    s3.put_object(Bucket="fix", Key="x", Body=data)
    victims = c.shard_files(2, "fix", "x")
    assert victims
    for f in victims:
        os.remove(f)
    r = c.admin(1, "heal")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 healed" in r.stdout, r.stdout
    assert sorted(c.shard_files(2, "fix", "x")) and all(os.path.getsize(f) > 0 for f in c.shard_files(2, "fix", "x"))
    assert sha(c.s3(3).get_object(Bucket="fix", Key="x")["Body"].read()) == sha(data)


def test_formatted_cluster_restarts_with_a_node_missing(cluster_factory):
    c = cluster_factory(4, 1).start()
    s3 = c.s3(0)
    s3.create_bucket(Bucket="again")
    written = put_all(s3, "again", sizes=[7, 2 * MiB])
    # A clean stop of every node: each exits 0.
    for n in range(4):
        c.procs[n].terminate()
    for n in range(4):
        assert c.procs[n].wait(timeout=30) == 0, c.log(n)
        c.procs[n] = None
    # Three come back; the fourth stays away. They serve without it.
    c.start(0, 1, 2)
    for n in range(3):
        check_all(c.s3(n), "again", written)
    c.s3(2).put_object(Bucket="again", Key="without-4", Body=b"x" * 10)
    # The fourth returns later and catches up.
    c.start(3)
    deadline = time.time() + 30
    while time.time() < deadline and not committed(c, 3, "again", "without-4"):
        time.sleep(0.5)
    assert committed(c, 3, "again", "without-4")
    check_all(c.s3(3), "again", written)
