"""HTTP/1.1 behaviour over raw sockets: pipelining, keep-alive, chunked request
bodies, Expect: 100-continue, HEAD semantics, ranges, standard headers, and
NotImplemented for unsupported sub-resources."""

import socket

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from conftest import ACCESS_KEY, SECRET_KEY

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
