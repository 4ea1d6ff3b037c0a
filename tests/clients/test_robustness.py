"""Robustness of a real basalt server against bad input, crashes, lost drives
and shutdown.

* Bad input over raw sockets: a garbage request line, a 1 MiB request head, a
  correctly signed PUT whose body stops short, a wrong signature, an expired
  presigned URL, a request dated 20 minutes off, keys that try to leave the
  bucket and invalid bucket names. After each one the server must still serve
  (buckets list, an object stored before reads back byte for byte).
* Ambiguous body framing (two Content-Lengths, Content-Length with chunked,
  "+" signs): a request hidden behind such a body must never be answered.
* Durability on 4 drives (2 data + 2 parity): kill -9 while uploads of an
  existing and of a new key are in flight, restart on the same drives, and
  only acknowledged objects, with their acknowledged contents, are there;
  delete two of the four drive directories under a running server and every
  object still downloads intact.
* SIGTERM while a large download or stalled uploads are in flight: the server
  exits 0 within the 15 s the shutdown grace period allows, and a cut upload
  stores nothing.

Clients never retry, so a first attempt that fails is a failure. Every socket
has a 10 s timeout and every wait has a deadline, so a hung server fails a
test instead of hanging it.
"""

import copy
import datetime
import glob
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, SECRET_KEY, Server

REGION = "us-east-1"
UNSIGNED = "UNSIGNED-PAYLOAD"
MiB = 1024 * 1024
SOCKET_TIMEOUT = 10


# ---------------------------------------------------------------------------
# Helpers


def strict_client(server, **config):
    """A boto3 client that never retries, so a failed first attempt (a 5xx, a
    reset) fails the test instead of being hidden by a retry that succeeds."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, **config),
    )


def error_code(exc):
    return exc.value.response["Error"]["Code"]


def http_status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def connect(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT)
    sock.settimeout(SOCKET_TIMEOUT)
    return sock


def exchange(server, data, half_close=False):
    """Sends `data` on a fresh connection and reads until the server closes it
    (or resets it, or the timeout passes). Returns the bytes received; b"" when
    the server closed without answering. A send that fails because the server
    already gave up on the request is not an error: its answer, if any, is
    still read."""
    sock = connect(server)
    received = b""
    try:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if response_complete(received):
                    break
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    return received


def response_complete(data):
    """Whether `data` holds a whole response (head and Content-Length body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse_response(data):
    """(status, lower-cased headers, body) of one raw HTTP response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    return status, headers, body


def build_request(method, target, headers, body=b""):
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request(server, method, target, headers, body=b""):
    """One request over a raw socket; returns (status, headers, body)."""
    raw = exchange(server, build_request(method, target, headers, body))
    assert raw, f"{method} {target}: the server closed the connection without answering"
    return parse_response(raw)


def botocore_signed_headers(server, method, path, headers, secret=SECRET_KEY):
    """Headers for `method path` signed by botocore's SigV4Auth. Host and every
    header given are signed; what is signed is exactly what gets sent."""
    host = f"127.0.0.1:{server.port}"
    req = AWSRequest(method=method, url=server.endpoint + path, headers={"Host": host, **headers})
    SigV4Auth(Credentials(ACCESS_KEY, secret), "s3", REGION).add_auth(req)
    return dict(req.headers.items())


def hand_signed_headers(server, method, path, when):
    """SigV4 headers computed here with hmac/hashlib, for a request dated `when`
    (botocore always signs with the current time), with no query string.
    `path` is sent as given, already encoded; the canonical URI is the path decoded and
    encoded again the AWS way (unreserved characters such as "." in clear), as
    a server must compute it whatever encoding the client chose."""
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = when.strftime("%Y%m%d")
    headers = {
        "host": f"127.0.0.1:{server.port}",
        "x-amz-content-sha256": UNSIGNED,
        "x-amz-date": amz_date,
    }
    signed = sorted(headers)
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(urllib.parse.unquote(path), safe="/~"),
            "",
            "".join(f"{k}:{headers[k]}\n" for k in signed),
            ";".join(signed),
            UNSIGNED,
        ]
    )
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers


def xml_code(body):
    """The <Code> of an S3 XML error body."""
    text = body.decode(errors="replace")
    start, end = text.find("<Code>"), text.find("</Code>")
    assert start >= 0 and end > start, f"no S3 error code in {text!r}"
    return text[start + len("<Code>") : end]


def still_serves(server, bucket, key, body):
    """The server answers a fresh client, and an object stored before reads back."""
    s3 = strict_client(server)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def files_under(top):
    out = set()
    for root, _, files in os.walk(top):
        out.update(os.path.join(root, f) for f in files)
    return out


def restarted(old):
    """A new server process on the same drives and port as `old`."""
    new = copy.copy(old)
    new.proc = None
    deadline = time.time() + 20
    while True:
        try:
            return new.start()
        except RuntimeError:
            # The port can take a moment to be free again after a kill.
            new.kill()
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def patterned(size, seed):
    """`size` bytes that differ by seed and position, cheap to make."""
    block = hashlib.sha256(seed.encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


class StreamingPut(threading.Thread):
    """A signed PUT of `size` bytes over a raw socket, sent 1 MiB at a time,
    counting what was sent. It ends when everything is sent or the connection
    fails (as it does when the server is killed)."""

    def __init__(self, server, path, size):
        super().__init__(daemon=True)
        self.server, self.path, self.size = server, path, size
        self.sent = 0
        self.error = None

    def run(self):
        headers = botocore_signed_headers(
            self.server, "PUT", self.path, {"Content-Length": str(self.size), "X-Amz-Content-SHA256": UNSIGNED}
        )
        chunk = patterned(MiB, self.path)
        try:
            with connect(self.server) as sock:
                sock.sendall(build_request("PUT", self.path, headers))
                while self.sent < self.size:
                    n = min(MiB, self.size - self.sent)
                    sock.sendall(chunk[:n])
                    self.sent += n
        except OSError as e:
            self.error = e


@pytest.fixture
def own_server():
    """A 4-drive server, stopped cleanly after the test (conftest's
    `remove_servers` removes its directory). Tests may replace it (restart)
    through the list."""
    servers = [Server().start()]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture
def stocked(server):
    """The `server` fixture with bucket "bkt" holding "keep" (64 KiB random)."""
    s3 = strict_client(server)
    s3.create_bucket(Bucket="bkt")
    body = os.urandom(64 * 1024)
    s3.put_object(Bucket="bkt", Key="keep", Body=body)
    return server, s3, body


# ---------------------------------------------------------------------------
# Bad input


def test_garbage_request_line(stocked):
    """Binary garbage instead of a request line gets 400 or a closed connection,
    and the server goes on serving."""
    server, _, keep = stocked
    raw = exchange(server, b"\x00\x01\x02 garbage\r\n\r\n")
    if raw:
        status, _, _ = parse_response(raw)
        assert status == 400
    still_serves(server, "bkt", "keep", keep)


def test_huge_request_head(stocked):
    """A 1 MiB request head (one enormous header) gets 400
    RequestHeaderSectionTooLarge or a closed connection, and the server goes
    on serving."""
    server, _, keep = stocked
    head = f"GET /bkt/keep HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Big: ".encode()
    raw = exchange(server, head + b"a" * MiB + b"\r\n\r\n")
    if raw:
        status, _, body = parse_response(raw)
        assert status == 400
        assert xml_code(body) == "RequestHeaderSectionTooLarge"
    still_serves(server, "bkt", "keep", keep)


def test_truncated_put_body(stocked):
    """A correctly signed PUT announcing 1,000,000 bytes that sends 1,000 and
    closes stores nothing: a new key stays absent, and an existing key keeps
    its previous contents."""
    server, s3, keep = stocked
    old = os.urandom(300 * 1024)
    s3.put_object(Bucket="bkt", Key="existing", Body=old)
    # Control: the same signing, with the whole body, is accepted.
    headers = botocore_signed_headers(
        server, "PUT", "/bkt/control", {"Content-Length": "10", "X-Amz-Content-SHA256": UNSIGNED}
    )
    status, _, body = request(server, "PUT", "/bkt/control", headers, b"0123456789")
    assert status == 200, body
    assert s3.get_object(Bucket="bkt", Key="control")["Body"].read() == b"0123456789"
    s3.delete_object(Bucket="bkt", Key="control")
    for key in ("fresh", "existing"):
        path = f"/bkt/{key}"
        headers = botocore_signed_headers(
            server, "PUT", path, {"Content-Length": "1000000", "X-Amz-Content-SHA256": UNSIGNED}
        )
        # Half-close after the short body and wait for the server's answer or
        # close, so the checks below run after it has dealt with the request.
        exchange(server, build_request("PUT", path, headers, os.urandom(1000)), half_close=True)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt", Key="fresh")
    assert http_status(e) == 404
    assert s3.get_object(Bucket="bkt", Key="existing")["Body"].read() == old
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]}
    assert listed == {"keep": len(keep), "existing": len(old)}
    still_serves(server, "bkt", "keep", keep)


def test_wrong_signature(stocked):
    """A request whose signature is off by one character gets 403
    SignatureDoesNotMatch; the same request correctly signed gets 200."""
    server, _, keep = stocked
    headers = botocore_signed_headers(server, "GET", "/bkt/keep", {"X-Amz-Content-SHA256": UNSIGNED})
    status, _, body = request(server, "GET", "/bkt/keep", headers)
    assert (status, body) == (200, keep)
    auth = headers["Authorization"]
    headers["Authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    status, _, body = request(server, "GET", "/bkt/keep", headers)
    assert status == 403
    assert xml_code(body) == "SignatureDoesNotMatch"
    # Signed with another secret.
    headers = botocore_signed_headers(server, "GET", "/bkt/keep", {"X-Amz-Content-SHA256": UNSIGNED}, secret="nope")
    status, _, body = request(server, "GET", "/bkt/keep", headers)
    assert (status, xml_code(body)) == (403, "SignatureDoesNotMatch")
    still_serves(server, "bkt", "keep", keep)


def test_expired_presigned_url(stocked):
    """A presigned GET with ExpiresIn=1 works at once and gets 403
    AccessDenied two seconds later."""
    server, _, keep = stocked
    s3v4 = strict_client(server, signature_version="s3v4")
    url = s3v4.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "keep"}, ExpiresIn=1)
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    host = {"Host": parts.netloc}
    status, _, body = request(server, "GET", target, host)
    assert (status, body) == (200, keep)
    time.sleep(2)
    status, _, body = request(server, "GET", target, host)
    assert status == 403
    assert xml_code(body) == "AccessDenied"
    still_serves(server, "bkt", "keep", keep)


@pytest.mark.parametrize("minutes", [-20, 20], ids=["past", "future"])
def test_request_time_skewed(stocked, minutes):
    """A correctly signed GET / dated 20 minutes off gets 403
    RequestTimeTooSkewed; signed the same way with the current time it gets 200."""
    server, _, keep = stocked
    now = datetime.datetime.now(datetime.timezone.utc)
    status, _, body = request(server, "GET", "/", hand_signed_headers(server, "GET", "/", now))
    assert status == 200, body
    assert b"<Name>bkt</Name>" in body
    skewed = now + datetime.timedelta(minutes=minutes)
    status, _, body = request(server, "GET", "/", hand_signed_headers(server, "GET", "/", skewed))
    assert status == 403
    assert xml_code(body) == "RequestTimeTooSkewed"
    still_serves(server, "bkt", "keep", keep)


def test_key_traversal(stocked):
    """Keys with "..", "." or empty segments are refused with 400, whether sent
    by boto3 or percent-encoded by hand, and no file appears anywhere in the
    server's directory outside <drive>/<bucket>/ and <drive>/.basalt.sys/."""
    server, s3, keep = stocked
    before = files_under(server.dir)
    for key in ("../../etc/passwd", "a/../../b", "a//b", "./x", "../bkt2"):
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="bkt", Key=key, Body=b"escaped")
        assert http_status(e) == 400, key
    now = datetime.datetime.now(datetime.timezone.utc)
    # Control: a hand-signed PUT with a percent-encoded but harmless key works.
    headers = hand_signed_headers(server, "PUT", "/bkt/plain%2Ename", now)
    headers["content-length"] = "2"
    status, _, body = request(server, "PUT", "/bkt/plain%2Ename", headers, b"ok")
    assert status == 200, body
    assert s3.get_object(Bucket="bkt", Key="plain.name")["Body"].read() == b"ok"
    s3.delete_object(Bucket="bkt", Key="plain.name")
    for path in ("/bkt/%2E%2E/%2E%2E/etc/passwd", "/bkt/..%2F..%2Fescaped", "/bkt/a/%2e%2e/%2e%2e/%2e%2e/escaped"):
        headers = hand_signed_headers(server, "PUT", path, now)
        headers["content-length"] = "7"
        status, _, body = request(server, "PUT", path, headers, b"escaped")
        assert status == 400, (path, body)
    allowed = [os.path.join(d, sub) + os.sep for d in server.drives for sub in ("bkt", ".basalt.sys")]
    new = files_under(server.dir) - before - {server.log}
    outside = [f for f in new if not any(f.startswith(a) for a in allowed)]
    assert outside == []
    # Nothing with the payload was stored inside the bucket either.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bkt")["Contents"]] == ["keep"]
    still_serves(server, "bkt", "keep", keep)


def test_invalid_bucket_names(stocked):
    """Creating buckets named "ab", "UPPER" or "bad_name" gets 400
    InvalidBucketName and creates nothing."""
    server, s3, keep = stocked
    for name in ("ab", "UPPER", "bad_name"):
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=name)
        assert (http_status(e), error_code(e)) == (400, "InvalidBucketName"), name
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["bkt"]
    for d in server.drives:
        assert sorted(os.listdir(d)) == [".basalt.sys", "bkt"]
    still_serves(server, "bkt", "keep", keep)


# ---------------------------------------------------------------------------
# Ambiguous body framing


def split_responses(data):
    """Splits raw bytes into (status, body) of each whole response in them."""
    out = []
    while response_complete(data):
        head, _, rest = data.partition(b"\r\n\r\n")
        status, headers, _ = parse_response(head + b"\r\n\r\n")
        n = int(headers["content-length"])
        out.append((status, rest[:n]))
        data = rest[n:]
    return out


def pipeline(server, data, quiet=1.5):
    """Sends `data` on one connection and collects responses until the server
    closes it, or until it has been silent for `quiet` seconds. Returns
    (responses, closed)."""
    sock = connect(server)
    received, closed = b"", False
    try:
        sock.sendall(data)
        sock.settimeout(quiet)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    finally:
        sock.close()
    return split_responses(received), closed


def signed_head(server, method, path, extra):
    """A hand-signed request head with `extra` header lines (not signed, as S3
    allows) appended as given, duplicates included."""
    now = datetime.datetime.now(datetime.timezone.utc)
    headers = hand_signed_headers(server, method, path, now)
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()] + extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "case",
    [
        "two-content-lengths",
        "content-length-and-chunked",
        "chunked-not-last",
        "content-length-plus-sign",
        "chunk-size-plus-sign",
        "content-length-letters",
        "chunk-size-letters",
    ],
)
def test_ambiguous_body_framing(stocked, case):
    """A signed PUT whose body length can be read two ways is followed, on the
    same connection, by a signed GET hidden where one reading puts body bytes.
    RFC 9112 (sections 6.1 and 6.3) requires a 400 and a closed connection for
    an invalid Content-Length (two different values, a "+" sign) or a request
    whose last transfer coding is not chunked, and a closed connection after a
    request with both Content-Length and Transfer-Encoding. Either way the
    hidden GET must never be answered, and nothing may be stored from a
    request answered 400."""
    server, s3, keep = stocked
    hidden = signed_head(server, "GET", "/bkt/keep", [])
    path = "/bkt/framed"
    heads = {
        # A front end using the last value sees the GET as this PUT's body.
        "two-content-lengths": (["Content-Length: 0", f"Content-Length: {len(hidden)}"], b""),
        # A front end using Content-Length sees the GET as body.
        "content-length-and-chunked": (
            [f"Content-Length: {5 + len(hidden)}", "Transfer-Encoding: chunked"],
            b"0\r\n\r\n",
        ),
        # Combined, the codings are "chunked, gzip": the body is not chunked-framed.
        "chunked-not-last": (["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"], b"0\r\n\r\n"),
        "content-length-plus-sign": (["Content-Length: +5"], b"hello"),
        "chunk-size-plus-sign": (["Transfer-Encoding: chunked"], b"+5\r\nhello\r\n0\r\n\r\n"),
        # Plainly invalid framing.
        "content-length-letters": (["Content-Length: 5x"], b"hello"),
        "chunk-size-letters": (["Transfer-Encoding: chunked"], b"5x\r\nhello\r\n0\r\n\r\n"),
    }
    extra, body = heads[case]
    answers, closed = pipeline(server, signed_head(server, "PUT", path, extra) + body + hidden)
    statuses = [status for status, _ in answers]
    assert not any(b == keep for _, b in answers), f"the hidden GET was answered: responses {statuses}"
    assert len(answers) == 1 and closed, f"responses {statuses}, connection {'closed' if closed else 'left open'}"
    allowed = (200, 400) if case == "content-length-and-chunked" else (400,)
    assert statuses[0] in allowed
    if statuses[0] == 400:
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket="bkt", Key="framed")
        assert http_status(e) == 404
    still_serves(server, "bkt", "keep", keep)


# ---------------------------------------------------------------------------
# Durability


def test_kill_during_upload_keeps_acknowledged_state(own_server):
    """kill -9 while a 200 MiB overwrite of "k" (20 MiB) and a 200 MiB upload
    of a new key are in flight; after a restart on the same drives "k" reads
    back as the acknowledged 20 MiB, the new key does not exist, and the
    listing shows exactly the acknowledged keys and sizes."""
    server = own_server[0]
    s3 = strict_client(server)
    s3.create_bucket(Bucket="dur")
    k = os.urandom(20 * MiB)
    small = os.urandom(1000)
    s3.put_object(Bucket="dur", Key="k", Body=k)
    s3.put_object(Bucket="dur", Key="small", Body=small)
    uploads = [StreamingPut(server, "/dur/k", 200 * MiB), StreamingPut(server, "/dur/new", 200 * MiB)]
    for u in uploads:
        u.start()
    deadline = time.time() + 60
    while min(u.sent for u in uploads) < 40 * MiB:
        assert time.time() < deadline, f"uploads stalled at {[u.sent for u in uploads]} bytes"
        assert all(u.is_alive() for u in uploads), [u.error for u in uploads]
        time.sleep(0.05)
    server.kill()
    for u in uploads:
        u.join(timeout=SOCKET_TIMEOUT + 5)
        assert not u.is_alive()
        assert u.sent < u.size, "an upload finished before the kill; the test proves nothing"
    server = restarted(server)
    own_server.append(server)
    s3 = strict_client(server)
    got = s3.get_object(Bucket="dur", Key="k")
    assert got["ContentLength"] == len(k)
    assert got["Body"].read() == k
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="dur", Key="new")
    assert http_status(e) == 404
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="dur")["Contents"]}
    assert listed == {"k": len(k), "small": len(small)}
    assert s3.list_multipart_uploads(Bucket="dur").get("Uploads", []) == []
    # The interrupted uploads leave no space behind: with 2 data + 2 parity the
    # drives hold about twice what was acknowledged (the uploads had sent about
    # 2 x 40 MiB, which would be 160 MiB more on the drives). The metadata
    # journal's two files per drive are a fixed reserve, not data: not counted.
    on_drives = sum(
        os.path.getsize(f)
        for d in server.drives
        for f in files_under(d)
        if os.path.basename(f) not in ("journal.0", "journal.1")
    )
    assert on_drives < 2.5 * (len(k) + len(small)), f"{on_drives} bytes on the drives"
    # And the restarted server takes writes again.
    s3.put_object(Bucket="dur", Key="new", Body=b"after")
    assert s3.get_object(Bucket="dur", Key="new")["Body"].read() == b"after"


def holds_data_shard(drive, bucket, key):
    """Whether a drive holds one of the object's data shards, from its metadata file: an
    8-byte magic, the version, the JSON record's length, the inline data's
    length, a reserved word, a hash (32 bytes in all), then the record."""
    raw = open(os.path.join(drive, bucket, key, ".basalt.meta"), "rb").read()
    assert raw[:8] == b"BSLTMETA"
    (json_len,) = struct.unpack_from("<I", raw, 12)
    erasure = json.loads(raw[32 : 32 + json_len])["erasure"]
    return erasure["index"] < erasure["data"]


def test_a_full_log_disk_loses_log_lines_not_requests():
    """The server's output on a full disk (/dev/full): log lines are lost, the
    server is not. A PUT, a GET that finds a shard missing, the heal it starts
    (which logs) and a clean stop all work. With the log subscriber's default,
    a failed log write was reported by a print that panicked inside the task
    that was logging: PUTs failed for want of write quorum."""
    server = Server(output="/dev/full").start()
    try:
        s3 = strict_client(server)
        s3.create_bucket(Bucket="logs")
        body = os.urandom(3 * MiB)
        s3.put_object(Bucket="logs", Key="obj", Body=body)
        # The first drive holding a data shard (a GET reads those first, so it
        # notices one missing).
        drive = next(d for d in server.drives if holds_data_shard(d, "logs", "obj"))
        shards = glob.glob(os.path.join(drive, "logs", "obj", ".basalt.data.*", "part.1"))
        assert len(shards) == 1, shards
        os.remove(shards[0])
        assert s3.get_object(Bucket="logs", Key="obj")["Body"].read() == body
        deadline = time.time() + 20
        while not os.path.exists(shards[0]) and time.time() < deadline:
            time.sleep(0.1)
        assert os.path.exists(shards[0]), "the missing shard was not healed"
        assert s3.get_object(Bucket="logs", Key="obj")["Body"].read() == body
        server.stop()
    finally:
        server.kill()


def test_two_drives_lost_while_running(own_server):
    """With 2 data + 2 parity, deleting two of the four drive directories under
    a running server loses nothing: objects of 0, 100 KiB, 5 MiB and 20 MiB
    all download byte for byte."""
    server = own_server[0]
    s3 = strict_client(server)
    s3.create_bucket(Bucket="lost")
    objects = {
        "empty": b"",
        "small": os.urandom(100 * 1024),
        "medium": os.urandom(5 * MiB),
        "dir/large": os.urandom(20 * MiB),
    }
    for key, body in objects.items():
        s3.put_object(Bucket="lost", Key=key, Body=body)
    for d in server.drives[:2]:
        shutil.rmtree(d)
        assert not os.path.exists(d)
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="lost")["Contents"]}
    assert listed == {key: len(body) for key, body in objects.items()}
    for key, body in objects.items():
        got = s3.get_object(Bucket="lost", Key=key)["Body"].read()
        assert len(got) == len(body), key
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), key


# ---------------------------------------------------------------------------
# Shutdown


class StalledDownload(threading.Thread):
    """A signed GET over a raw socket that reads the head and the first MiB,
    reports `started`, then stops reading until `resume` is set, then drains."""

    def __init__(self, server, path):
        super().__init__(daemon=True)
        self.server, self.path = server, path
        self.started, self.resume = threading.Event(), threading.Event()
        self.status, self.length, self.body = None, None, b""
        self.error = None

    def run(self):
        headers = botocore_signed_headers(self.server, "GET", self.path, {"X-Amz-Content-SHA256": UNSIGNED})
        data = b""
        try:
            with connect(self.server) as sock:
                sock.sendall(build_request("GET", self.path, headers))
                while b"\r\n\r\n" not in data or len(data) < MiB:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.started.set()
                self.resume.wait(timeout=30)
                while True:
                    chunk = sock.recv(MiB)
                    if not chunk:
                        break
                    data += chunk
        except OSError as e:
            self.error = e
        finally:
            self.started.set()
            if b"\r\n\r\n" in data:
                self.status, headers, self.body = parse_response(data)
                self.length = int(headers["content-length"])


@pytest.mark.parametrize("reader", ["stalled", "draining"])
def test_sigterm_during_download(own_server, reader):
    """SIGTERM while a 64 MiB download is in flight: the server exits 0 within
    15 s, whether the client stalls (the server must cut it after its grace
    period) or keeps reading. What the client got is a correct prefix of the
    object (all of it if the download completed)."""
    server = own_server[0]
    s3 = strict_client(server)
    s3.create_bucket(Bucket="big")
    body = os.urandom(64 * MiB)
    s3.put_object(Bucket="big", Key="obj", Body=body)
    download = StalledDownload(server, "/big/obj")
    download.start()
    assert download.started.wait(timeout=30)
    assert download.error is None, download.error
    if reader == "draining":
        download.resume.set()
    started = time.time()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError("the server did not exit within 15 s of SIGTERM")
    took = time.time() - started
    download.resume.set()
    download.join(timeout=SOCKET_TIMEOUT + 5)
    assert not download.is_alive()
    assert code == 0, open(server.log).read()[-2000:]
    assert took < 15
    assert download.status == 200
    assert download.length == len(body)
    assert 0 < len(download.body) <= len(body)
    assert download.body == body[: len(download.body)]
    print(f"{reader}: exited 0 after {took:.2f}s, client got {len(download.body)} of {len(body)} bytes")


def test_sigterm_during_stalled_upload(own_server):
    """SIGTERM while two signed PUTs (an overwrite of "k" and a new key) have
    sent 1,000 of 1,000,000 bytes and stalled: the server exits 0 within 15 s,
    and after a restart "k" still holds its previous contents and the new key
    does not exist."""
    server = own_server[0]
    s3 = strict_client(server)
    s3.create_bucket(Bucket="upl")
    old = os.urandom(MiB)
    s3.put_object(Bucket="upl", Key="k", Body=old)
    stalled = []
    try:
        for key in ("k", "new"):
            headers = botocore_signed_headers(
                server, "PUT", f"/upl/{key}", {"Content-Length": "1000000", "X-Amz-Content-SHA256": UNSIGNED}
            )
            sock = connect(server)
            stalled.append(sock)
            sock.sendall(build_request("PUT", f"/upl/{key}", headers, os.urandom(1000)))
        time.sleep(0.5)  # let the server start on both bodies
        started = time.time()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError("the server did not exit within 15 s of SIGTERM")
        assert code == 0, open(server.log).read()[-2000:]
        assert time.time() - started < 15
    finally:
        for sock in stalled:
            sock.close()
    server = restarted(server)
    own_server.append(server)
    s3 = strict_client(server)
    assert s3.get_object(Bucket="upl", Key="k")["Body"].read() == old
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="upl", Key="new")
    assert http_status(e) == 404
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="upl")["Contents"]] == ["k"]
