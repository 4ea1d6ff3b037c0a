"""boto3 against a real basalt: buckets, objects, ranges, conditions, metadata,
copies, batch deletes, listings, multipart, presigned URLs and errors."""

import hashlib
import io
import os
import subprocess
import urllib.request

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from conftest import client_for


def code(exc):
    return exc.value.response["Error"]["Code"]


def test_buckets(s3):
    s3.create_bucket(Bucket="alpha")
    s3.create_bucket(Bucket="beta", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["alpha", "beta"]
    s3.head_bucket(Bucket="alpha")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="alpha")
    assert code(e) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="missing")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_object(Bucket="alpha", Key="x", Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket="alpha")
    assert code(e) == "BucketNotEmpty"
    s3.delete_object(Bucket="alpha", Key="x")
    s3.delete_bucket(Bucket="alpha")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["beta"]
    assert s3.get_bucket_location(Bucket="beta").get("LocationConstraint") in (None, "")
    assert "Status" not in s3.get_bucket_versioning(Bucket="beta")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="Bad_Name")
    assert code(e) == "InvalidBucketName"


def test_put_get_head_metadata(s3):
    s3.create_bucket(Bucket="bkt")
    body = os.urandom(3 * 1024 * 1024 + 17)
    put = s3.put_object(
        Bucket="bkt",
        Key="dir/obj.bin",
        Body=body,
        ContentType="application/x-test",
        Metadata={"color": "blue"},
        CacheControl="max-age=60",
    )
    assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    got = s3.get_object(Bucket="bkt", Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"color": "blue"}
    assert got["CacheControl"] == "max-age=60"
    head = s3.head_object(Bucket="bkt", Key="dir/obj.bin")
    assert head["ContentLength"] == len(body)
    # Ranges, including past the end and suffixes.
    r = s3.get_object(Bucket="bkt", Key="dir/obj.bin", Range="bytes=1048570-1048590")
    assert r["Body"].read() == body[1048570:1048591]
    assert r["ContentRange"] == f"bytes 1048570-1048590/{len(body)}"
    assert s3.get_object(Bucket="bkt", Key="dir/obj.bin", Range="bytes=-10")["Body"].read() == body[-10:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="dir/obj.bin", Range=f"bytes={len(body)}-")
    assert code(e) == "InvalidRange"
    # Conditional GETs.
    etag = put["ETag"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="dir/obj.bin", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="dir/obj.bin", IfMatch='"0000"')
    assert code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket="bkt", Key="dir/obj.bin", IfMatch=etag)["ContentLength"] == len(body)
    # Empty and small objects.
    s3.put_object(Bucket="bkt", Key="empty", Body=b"")
    assert s3.get_object(Bucket="bkt", Key="empty")["Body"].read() == b""
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="bkt", Key="missing")
    assert code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="nobucket", Key="k")
    assert code(e) == "NoSuchBucket"


def test_copy_and_delete_objects(s3):
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="src", Body=b"hello copy", Metadata={"a": "1"})
    s3.copy_object(Bucket="bkt", Key="dst", CopySource={"Bucket": "bkt", "Key": "src"})
    got = s3.get_object(Bucket="bkt", Key="dst")
    assert got["Body"].read() == b"hello copy" and got["Metadata"] == {"a": "1"}
    s3.copy_object(
        Bucket="bkt", Key="src", CopySource="bkt/src", Metadata={"a": "2"}, MetadataDirective="REPLACE"
    )
    assert s3.head_object(Bucket="bkt", Key="src")["Metadata"] == {"a": "2"}
    keys = [f"k{i}" for i in range(5)]
    for k in keys:
        s3.put_object(Bucket="bkt", Key=k, Body=k.encode())
    r = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in r["Deleted"]) == keys
    r = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "src"}], "Quiet": True})
    assert not r.get("Deleted")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="bkt").get("Contents", [])]
    assert left == ["dst"]


def test_listing_pagination(s3):
    s3.create_bucket(Bucket="bkt")
    keys = sorted([f"a/{i:03}" for i in range(25)] + [f"b/{i}/x" for i in range(5)] + ["top"])
    for k in keys:
        s3.put_object(Bucket="bkt", Key=k, Body=b"x")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bkt", PaginationConfig={"PageSize": 7})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    r = s3.list_objects_v2(Bucket="bkt", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in r["Contents"]] == ["top"]
    v1 = s3.get_paginator("list_objects").paginate(Bucket="bkt", PaginationConfig={"PageSize": 4})
    assert [o["Key"] for p in v1 for o in p.get("Contents", [])] == keys
    r = s3.list_object_versions(Bucket="bkt", Prefix="b/")
    assert [(v["Key"], v["VersionId"]) for v in r["Versions"]] == [(f"b/{i}/x", "null") for i in range(5)]


def test_multipart(s3):
    s3.create_bucket(Bucket="bkt")
    data = os.urandom(17 * 1024 * 1024 + 5)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(data), "bkt", "big", Config=cfg)
    head = s3.head_object(Bucket="bkt", Key="big")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-4"')
    out = io.BytesIO()
    s3.download_fileobj("bkt", "big", out, Config=cfg)
    assert out.getvalue() == data
    # The low-level calls, with an abort and a bad completion.
    up = s3.create_multipart_upload(Bucket="bkt", Key="parts")["UploadId"]
    p1 = s3.upload_part(Bucket="bkt", Key="parts", UploadId=up, PartNumber=1, Body=b"a" * 100)
    p2 = s3.upload_part(Bucket="bkt", Key="parts", UploadId=up, PartNumber=2, Body=b"b" * 100)
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="bkt", Key="parts", UploadId=up)["Parts"]] == [1, 2]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="bkt")["Uploads"]] == [up]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="bkt",
            Key="parts",
            UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]},
        )
    assert code(e) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket="bkt", Key="parts", UploadId=up)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket="bkt", Key="parts", UploadId=up)
    assert code(e) == "NoSuchUpload"


def test_presigned_urls(s3, server):
    s3 = client_for(server.endpoint, signature_version="s3v4")
    s3.create_bucket(Bucket="bkt")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": "bkt", "Key": "p"}, ExpiresIn=300)
    # curl, as a user would share these URLs.
    subprocess.run(["curl", "-sf", "-X", "PUT", "--data-binary", "presigned body", put_url], check=True, timeout=30)
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "p"}, ExpiresIn=300)
    got = subprocess.run(["curl", "-sf", get_url], check=True, capture_output=True, timeout=30).stdout
    assert got == b"presigned body"
    bad = get_url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad)
    assert e.value.code == 403


def test_wrong_credentials(server):
    bad = client_for(server.endpoint)
    bad._request_signer._credentials.secret_key = "wrong-secret"
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert code(e) == "SignatureDoesNotMatch"
    other = client_for(server.endpoint)
    other._request_signer._credentials.access_key = "nobody"
    with pytest.raises(ClientError) as e:
        other.list_buckets()
    assert code(e) == "InvalidAccessKeyId"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.endpoint + "/")
    assert e.value.code == 403


def test_flexible_checksums(s3):
    s3.create_bucket(Bucket="bkt")
    body = os.urandom(300_000)
    for algorithm in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
        key = f"sum-{algorithm}"
        s3.put_object(Bucket="bkt", Key=key, Body=body, ChecksumAlgorithm=algorithm)
        head = s3.head_object(Bucket="bkt", Key=key, ChecksumMode="ENABLED")
        assert head.get(f"Checksum{algorithm}"), f"{algorithm} not returned: {head}"
        got = s3.get_object(Bucket="bkt", Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == body
    # A wrong checksum is refused and nothing is stored.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="bkt", Key="bad-sum", Body=b"payload", ChecksumCRC32="AAAAAA==")
    assert code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="bkt", Key="bad-sum")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def _put_aws_chunked_with_trailer(server, key, data, crc_b64):
    """PUT as SDKs stream over HTTP: STREAMING-UNSIGNED-PAYLOAD-TRAILER, aws-chunked
    chunks, and the CRC32 in a trailer after the last chunk."""
    import http.client

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    from conftest import ACCESS_KEY, SECRET_KEY

    chunks = b""
    for i in range(0, len(data), 65536):
        piece = data[i : i + 65536]
        chunks += b"%x\r\n" % len(piece) + piece + b"\r\n"
    chunks += b"0\r\nx-amz-checksum-crc32:" + crc_b64.encode() + b"\r\n\r\n"
    url = f"{server.endpoint}/bkt/{key}"
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
    }
    req = botocore.awsrequest.AWSRequest(method="PUT", url=url, data=chunks, headers=headers)
    creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)
    # The generic signer keeps our X-Amz-Content-SHA256 (the S3 one would hash the body).
    botocore.auth.SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("PUT", f"/bkt/{key}", body=chunks, headers=dict(prepared.headers))
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    return resp.status, text


def test_aws_chunked_trailer_checksum(s3, server):
    import base64
    import zlib

    s3.create_bucket(Bucket="bkt")
    data = os.urandom(200_000)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    status, text = _put_aws_chunked_with_trailer(server, "trailed", data, crc)
    assert status == 200, text
    assert s3.get_object(Bucket="bkt", Key="trailed")["Body"].read() == data
    head = s3.head_object(Bucket="bkt", Key="trailed", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc
    status, text = _put_aws_chunked_with_trailer(server, "trailed-bad", data, "AAAAAA==")
    assert status == 400 and b"BadDigest" in text
    with pytest.raises(ClientError):
        s3.head_object(Bucket="bkt", Key="trailed-bad")


def test_signature_v2(server):
    """s3-benchmark and older presigners sign with AWS Signature Version 2."""
    v2 = client_for(server.endpoint, signature_version="s3")
    v2.create_bucket(Bucket="old")
    body = os.urandom(70_000)
    v2.put_object(Bucket="old", Key="dir/k v2", Body=body, ContentType="text/x-v2")
    assert v2.get_object(Bucket="old", Key="dir/k v2")["Body"].read() == body
    assert [o["Key"] for o in v2.list_objects(Bucket="old")["Contents"]] == ["dir/k v2"]
    url = v2.generate_presigned_url("get_object", Params={"Bucket": "old", "Key": "dir/k v2"}, ExpiresIn=60)
    assert "Signature=" in url and "AWSAccessKeyId=" in url
    with urllib.request.urlopen(url) as r:
        assert r.read() == body
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace("Expires=", "Expires=1"))
    assert e.value.code == 403
    v2.delete_object(Bucket="old", Key="dir/k v2")
    bad = client_for(server.endpoint, signature_version="s3")
    bad._request_signer._credentials.secret_key = "wrong-secret"
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert code(e) == "SignatureDoesNotMatch"


def test_part_copy_and_part_number_get(s3):
    s3.create_bucket(Bucket="bkt")
    src = os.urandom(12 * 1024 * 1024)
    s3.put_object(Bucket="bkt", Key="src", Body=src)
    up = s3.create_multipart_upload(Bucket="bkt", Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket="bkt", Key="assembled", UploadId=up, PartNumber=1, CopySource="bkt/src", CopySourceRange="bytes=0-5242879"
    )
    p2 = s3.upload_part_copy(
        Bucket="bkt", Key="assembled", UploadId=up, PartNumber=2, CopySource={"Bucket": "bkt", "Key": "src"}
    )
    parts = [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]},
    ]
    s3.complete_multipart_upload(Bucket="bkt", Key="assembled", UploadId=up, MultipartUpload={"Parts": parts})
    whole = src[:5242880] + src
    assert s3.get_object(Bucket="bkt", Key="assembled")["Body"].read() == whole
    part2 = s3.get_object(Bucket="bkt", Key="assembled", PartNumber=2)
    assert part2["PartsCount"] == 2
    assert part2["Body"].read() == src
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket="bkt", Key="assembled", UploadId="00000000-0000-0000-0000-000000000000", PartNumber=1, CopySource="bkt/src"
        )
    assert code(e) == "NoSuchUpload"


def test_virtual_host_style():
    """With --domain, bucket.DOMAIN hosts address buckets; path style still works."""
    import http.client

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    from conftest import ACCESS_KEY, SECRET_KEY, Server

    server = Server(extra_args=["--domain", "s3.example.test"]).start()
    try:
        creds = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)

        def send(method, host, path, body=b""):
            url = f"http://{host}:{server.port}{path}"
            req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
            botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            headers = dict(req.prepare().headers)
            headers["Host"] = f"{host}:{server.port}"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            return resp.status, data

        assert send("PUT", "vbucket.s3.example.test", "/")[0] == 200
        assert send("PUT", "vbucket.s3.example.test", "/dir/key.txt", b"virtual")[0] == 200
        assert send("GET", "vbucket.s3.example.test", "/dir/key.txt") == (200, b"virtual")
        assert send("GET", "s3.example.test", "/vbucket/dir/key.txt") == (200, b"virtual")
        status, listing = send("GET", "vbucket.s3.example.test", "/?list-type=2")
        assert status == 200 and b"<Key>dir/key.txt</Key>" in listing
    finally:
        server.stop()


def _post_form(url, fields, filename, data):
    import urllib3

    body, content_type = urllib3.encode_multipart_formdata(list(fields.items()) + [("file", (filename, data))])
    http = urllib3.PoolManager()
    return http.request("POST", url, body=body, headers={"Content-Type": content_type}, retries=False)


def test_post_object_form_upload(server):
    """A browser form upload with a signed policy (boto3's generate_presigned_post)."""
    s3 = client_for(server.endpoint, signature_version="s3v4")
    s3.create_bucket(Bucket="forms")
    data = os.urandom(2 * 1024 * 1024 + 11)
    post = s3.generate_presigned_post(
        "forms",
        "uploads/${filename}",
        Fields={"success_action_status": "201", "Content-Type": "image/png"},
        Conditions=[
            {"success_action_status": "201"},
            ["starts-with", "$key", "uploads/"],
            {"Content-Type": "image/png"},
            ["content-length-range", 1, 10 * 1024 * 1024],
        ],
        ExpiresIn=300,
    )
    r = _post_form(post["url"], post["fields"], "photo.png", data)
    assert r.status == 201, r.data
    assert b"<Key>uploads/photo.png</Key>" in r.data
    got = s3.get_object(Bucket="forms", Key="uploads/photo.png")
    assert got["Body"].read() == data and got["ContentType"] == "image/png"
    # A tampered policy, a field the policy does not allow, and a file too large are refused.
    bad = dict(post["fields"], key="elsewhere/x.png")
    r = _post_form(post["url"], bad, "x.png", b"data")
    assert r.status == 403, r.data
    extra = dict(post["fields"], **{"x-amz-meta-evil": "1"})
    r = _post_form(post["url"], extra, "x.png", b"data")
    assert r.status == 403 and b"extra input field" in r.data
    forged = dict(post["fields"], policy=post["fields"]["policy"][:-4] + "AAAA")
    r = _post_form(post["url"], forged, "x.png", b"data")
    assert r.status in (400, 403)
    r = _post_form(post["url"], post["fields"], "huge.png", os.urandom(11 * 1024 * 1024))
    assert r.status == 400 and b"EntityTooLarge" in r.data
    with pytest.raises(ClientError):
        s3.head_object(Bucket="forms", Key="uploads/huge.png")
