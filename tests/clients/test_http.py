"""HTTP/1.1 behaviour over raw sockets: pipelining, keep-alive, chunked request
bodies, Expect: 100-continue, HEAD semantics, ranges, standard headers, and
NotImplemented for unsupported sub-resources."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from conftest import ACCESS_KEY, BINARY, SECRET_KEY

CREDS = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)


def signed_head(server, method, path, headers=None, payload="UNSIGNED-PAYLOAD"):
    """A SigV4-signed request head (no body) for a raw socket."""
    headers = dict(headers or {})
    headers["X-Amz-Content-SHA256"] = payload
    req = botocore.awsrequest.AWSRequest(method=method, url=server.endpoint + path, headers=headers)
    botocore.auth.SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{k}: {v.decode() if isinstance(v, bytes) else v}" for k, v in req.prepare().headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock, buf=b"", is_head=False):
    """Reads one response (of a HEAD request: no body); returns (status, headers,
    body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response head"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = 0 if is_head else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def connect(server):
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(10)
    return s


def test_pipelining_keepalive_and_headers(server, s3):
    s3.create_bucket(Bucket="http")
    s3.put_object(Bucket="http", Key="a", Body=b"alpha")
    s3.put_object(Bucket="http", Key="b", Body=b"bravo!")
    with connect(server) as s:
        # Three requests in one write; three responses, in order, on one connection.
        s.sendall(
            signed_head(server, "GET", "/http/a")
            + signed_head(server, "HEAD", "/http/b")
            + signed_head(server, "GET", "/http/b", {"Range": "bytes=1-3"})
        )
        status, headers, body, rest = read_response(s)
        assert (status, body) == (200, b"alpha")
        assert headers["server"] == "basalt" and headers["x-amz-request-id"] and headers["date"]
        assert headers["etag"].startswith('"')
        # HEAD: the GET's headers, Content-Length included, but no body.
        status, headers, _, rest = read_response(s, rest, is_head=True)
        assert status == 200 and headers["content-length"] == "6"
        status, headers, body, rest = read_response(s, rest)
        assert (status, body) == (206, b"rav")
        assert headers["content-range"] == "bytes 1-3/6"


def test_chunked_request_body_and_expect_continue(server, s3):
    s3.create_bucket(Bucket="http")
    with connect(server) as s:
        head = signed_head(server, "PUT", "/http/chunked", {"Transfer-Encoding": "chunked", "Expect": "100-continue"})
        s.sendall(head)
        interim = s.recv(100)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        status, _, _, _ = read_response(s, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
        assert status == 200
    assert s3.get_object(Bucket="http", Key="chunked")["Body"].read() == b"hello, world"


def test_large_bodies_read_past_the_buffer_stop_at_their_end(server, s3):
    """Large bodies are received straight into the server's block buffers: a
    Content-Length body sent in uneven pieces, with the next request pipelined
    behind it, and a chunked body of chunks larger than a block. Both come back
    byte for byte, and the pipelined request is answered."""
    s3.create_bucket(Bucket="http")
    data = os.urandom(3 * 1024 * 1024 + 12345)
    with connect(server) as s:
        put = signed_head(server, "PUT", "/http/large", {"Content-Length": str(len(data))})
        get = signed_head(server, "GET", "/http/large", {"Range": "bytes=1048570-1048580"})
        s.sendall(put + data[:1000])
        for start, end in [(1000, 70_000), (70_000, 2_000_000), (2_000_000, len(data) - 10)]:
            s.sendall(data[start:end])
        # The body's last bytes and the next request in one write.
        s.sendall(data[len(data) - 10:] + get)
        status, _, _, rest = read_response(s)
        assert status == 200
        status, _, body, _ = read_response(s, rest)
        assert (status, body) == (206, data[1048570:1048581])
    assert s3.get_object(Bucket="http", Key="large")["Body"].read() == data
    with connect(server) as s:
        s.sendall(signed_head(server, "PUT", "/http/chunked-large", {"Transfer-Encoding": "chunked"}))
        for start in range(0, len(data), 1_500_000):
            piece = data[start:start + 1_500_000]
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        status, _, _, _ = read_response(s)
        assert status == 200
    assert s3.get_object(Bucket="http", Key="chunked-large")["Body"].read() == data


def test_a_slow_reader_gets_every_byte_then_the_next_response(server, s3):
    """A GET's pieces leave in as few sends as the socket takes, so a client that
    reads slowly through a small receive buffer makes the server stop mid-piece
    and resume many times. Whole object and a range across blocks come back byte
    for byte, and a pipelined request behind them is answered on the same
    connection."""
    s3.create_bucket(Bucket="http")
    data = os.urandom(5 * 1024 * 1024 + 777)
    s3.put_object(Bucket="http", Key="slow", Body=data)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    s.settimeout(10)
    with s:
        s.connect(("127.0.0.1", server.port))
        start, end = 1_048_000, 4_200_000
        s.sendall(
            signed_head(server, "GET", "/http/slow")
            + signed_head(server, "GET", "/http/slow", {"Range": f"bytes={start}-{end}"})
            + signed_head(server, "HEAD", "/http/slow")
        )
        buf = b""
        while len(buf) < 3 * 1024 * 1024:
            chunk = s.recv(8192)
            assert chunk, "connection closed mid-body"
            buf += chunk
            time.sleep(0.0005)
        status, _, body, rest = read_response(s, buf)
        assert status == 200 and len(body) == len(data)
        assert body == data
        status, headers, body, rest = read_response(s, rest)
        assert status == 206 and headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert body == data[start:end + 1]
        status, headers, _, _ = read_response(s, rest, is_head=True)
        assert status == 200 and headers["content-length"] == str(len(data))


def test_range_not_satisfiable_and_not_implemented(server, s3):
    s3.create_bucket(Bucket="http")
    s3.put_object(Bucket="http", Key="k", Body=b"0123456789")
    with connect(server) as s:
        s.sendall(signed_head(server, "GET", "/http/k", {"Range": "bytes=50-60"}))
        status, headers, body, _ = read_response(s)
        assert status == 416 and headers["content-range"] == "bytes */10"
        assert b"<Code>InvalidRange</Code>" in body
        s.sendall(signed_head(server, "GET", "/http?acl"))
        status, _, body, _ = read_response(s)
        assert status == 501 and b"<Code>NotImplemented</Code>" in body
        s.sendall(signed_head(server, "GET", "/http/k?tagging"))
        status, _, body, _ = read_response(s)
        assert status == 501


def test_payload_hash_is_verified(server, s3):
    s3.create_bucket(Bucket="http")
    wrong = "0" * 64
    with connect(server) as s:
        head = signed_head(server, "PUT", "/http/hashed", {"Content-Length": "5"}, payload=wrong)
        s.sendall(head + b"hello")
        status, _, body, _ = read_response(s)
        assert status == 400 and b"XAmzContentSHA256Mismatch" in body
    import botocore.exceptions
    import pytest

    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket="http", Key="hashed")


def _hmac(key, msg):
    import hmac

    return hmac.new(key, msg.encode(), "sha256").digest()


def _signed_trailer_put(server, path, data, crc_b64, tamper_trailer=False):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, built by hand from AWS's
    description: signed chunks, then a signed trailer with the CRC32."""
    import datetime
    import hashlib

    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/us-east-1/s3/aws4_request"
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "X-Amz-Date": amz_date,
    }
    req = botocore.awsrequest.AWSRequest(method="PUT", url=server.endpoint + path, headers=headers)
    botocore.auth.SigV4Auth(CREDS, "s3", "us-east-1").add_auth(req)
    prepared = dict(req.prepare().headers)
    seed = prepared["Authorization"].split("Signature=")[1]
    key = b"AWS4" + SECRET_KEY.encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = _hmac(key, part)
    empty = hashlib.sha256(b"").hexdigest()
    body, prev = b"", seed
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)] + [b""]
    for piece in pieces:
        sts = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{prev}\n{empty}\n{hashlib.sha256(piece).hexdigest()}"
        prev = _hmac(key, sts).hex()
        body += b"%x;chunk-signature=%s\r\n" % (len(piece), prev.encode())
        if piece:
            body += piece + b"\r\n"
    trailer = f"x-amz-checksum-crc32:{crc_b64}\n"
    sts = f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{prev}\n{hashlib.sha256(trailer.encode()).hexdigest()}"
    trailer_sig = _hmac(key, sts).hex()
    if tamper_trailer:
        trailer_sig = "0" * 64
    body += f"x-amz-checksum-crc32:{crc_b64}\r\nx-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()
    lines = [f"PUT {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v.decode() if isinstance(v, bytes) else v}" for k, v in prepared.items() if k.lower() != "content-length"]
    with connect(server) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status, _, text, _ = read_response(s)
    return status, text


def test_signed_chunks_with_signed_trailer(server, s3):
    import base64
    import os
    import zlib

    s3.create_bucket(Bucket="http")
    data = os.urandom(150_000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    status, text = _signed_trailer_put(server, "/http/signed-trailer", data, crc)
    assert status == 200, text
    assert s3.get_object(Bucket="http", Key="signed-trailer")["Body"].read() == data
    assert s3.head_object(Bucket="http", Key="signed-trailer", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc
    status, text = _signed_trailer_put(server, "/http/bad-trailer", data, crc, tamper_trailer=True)
    assert status == 403 and b"SignatureDoesNotMatch" in text


def test_trickling_body_is_cut_off(server, s3):
    """A client sending a body at a few bytes per second is cut off after the
    30 s grace period instead of holding the request open forever."""
    import time

    s3.create_bucket(Bucket="http")
    s3.put_object(Bucket="http", Key="slow", Body=b"previous")
    with connect(server) as s:
        s.sendall(signed_head(server, "PUT", "/http/slow", {"Content-Length": "1000000"}))
        started = time.time()
        response = b""
        s.settimeout(1)
        while time.time() - started < 45 and not response:
            try:
                s.sendall(b"x")
                response = s.recv(4096)
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.time() - started
    assert elapsed < 45, "the trickling request was never cut off"
    assert response == b"" or b"RequestTimeout" in response
    assert s3.get_object(Bucket="http", Key="slow")["Body"].read() == b"previous"


def test_a_second_server_on_a_taken_port_refuses_to_start(server, s3):
    """The listeners use SO_REUSEPORT; a second basalt on the same port must not
    silently take a share of the connections with drives of its own."""
    s3.create_bucket(Bucket="mine")
    s3.put_object(Bucket="mine", Key="k", Body=b"first server")
    other = tempfile.mkdtemp(prefix="basalt-test-second-")
    env = dict(os.environ, BASALT_ROOT_USER=ACCESS_KEY, BASALT_ROOT_PASSWORD=SECRET_KEY)
    args = [BINARY, "server", "--address", f"127.0.0.1:{server.port}", "--cores", "2"]
    args += [os.path.join(other, f"d{i}") for i in range(1, 5)]
    try:
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert f"cannot listen on 127.0.0.1:{server.port}" in done.stderr, done.stderr
        # Nothing was formatted, and every request still reaches the first server.
        assert not any(os.path.exists(os.path.join(other, f"d{i}")) for i in range(1, 5))
    finally:
        shutil.rmtree(other, ignore_errors=True)
    for _ in range(20):
        assert s3.get_object(Bucket="mine", Key="k")["Body"].read() == b"first server"


def test_connections_are_spread_evenly_over_cores(server):
    """The kernel spreads SO_REUSEPORT connections by a hash of the client's
    port, so four connections often land 3 + 1 on two cores; the server hands
    one over so that each core serves two. The core that answers is the top
    byte of the request id."""
    time.sleep(0.5)  # the start-up health checks' connections close
    socks = [connect(server) for _ in range(4)]
    cores = []
    try:
        for s in socks:
            s.sendall(b"GET /minio/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _, _ = read_response(s)
            assert status == 200
            cores.append(int(headers["x-amz-request-id"][:2], 16))
            # The same connection stays on its core.
            s.sendall(b"GET /minio/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            status, again, _, _ = read_response(s)
            assert status == 200 and int(again["x-amz-request-id"][:2], 16) == cores[-1]
    finally:
        for s in socks:
            s.close()
    assert sorted(cores) == [0, 0, 1, 1], f"cores serving the four connections: {cores}"
