"""The aws cli against a real basalt: s3 mb/cp/ls/sync/rm with a 100 MiB
multipart upload, and s3api calls."""

import filecmp
import json
import os

from conftest import aws


def test_s3_commands(server, tmp_path):
    aws(server, "s3", "mb", "s3://cli")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1024 * 1024))
    aws(server, "s3", "cp", str(big), "s3://cli/big.bin")
    back = tmp_path / "big.back"
    aws(server, "s3", "cp", "s3://cli/big.bin", str(back))
    assert filecmp.cmp(big, back, shallow=False)
    tree = tmp_path / "tree"
    for i in range(30):
        d = tree / f"d{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_bytes(os.urandom(i * 1000))
    aws(server, "s3", "sync", str(tree), "s3://cli/tree")
    listing = aws(server, "s3", "ls", "--recursive", "s3://cli/tree/").stdout
    assert len(listing.strip().splitlines()) == 30
    down = tmp_path / "down"
    aws(server, "s3", "sync", "s3://cli/tree", str(down))
    for i in range(30):
        rel = f"d{i % 4}/f{i}.txt"
        assert filecmp.cmp(tree / rel, down / rel, shallow=False), rel
    aws(server, "s3", "rm", "--recursive", "s3://cli/tree")
    assert aws(server, "s3", "ls", "s3://cli/tree/", check=False).stdout.strip() == ""
    aws(server, "s3", "rm", "s3://cli/big.bin")
    aws(server, "s3", "rb", "s3://cli")


def test_s3api_calls(server):
    aws(server, "s3api", "create-bucket", "--bucket", "api")
    aws(server, "s3api", "put-object", "--bucket", "api", "--key", "k", "--body", __file__)
    head = json.loads(aws(server, "s3api", "head-object", "--bucket", "api", "--key", "k").stdout)
    assert head["ContentLength"] == os.path.getsize(__file__)
    lst = json.loads(aws(server, "s3api", "list-objects-v2", "--bucket", "api").stdout)
    assert [o["Key"] for o in lst["Contents"]] == ["k"]
    missing = aws(server, "s3api", "get-object", "--bucket", "api", "--key", "nope", "/dev/null", check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    aws(server, "s3api", "delete-object", "--bucket", "api", "--key", "k")
    aws(server, "s3api", "delete-bucket", "--bucket", "api")


def s3api(server, *args):
    out = aws(server, "s3api", *args).stdout
    return json.loads(out) if out.strip() else {}


def test_s3api_every_operation(server, tmp_path):
    """One aws cli s3api call per S3 operation basalt implements."""
    s3api(server, "create-bucket", "--bucket", "ops")
    s3api(server, "head-bucket", "--bucket", "ops")
    assert "ops" in [b["Name"] for b in s3api(server, "list-buckets")["Buckets"]]
    assert s3api(server, "get-bucket-location", "--bucket", "ops").get("LocationConstraint") in (None, "")
    assert "Status" not in s3api(server, "get-bucket-versioning", "--bucket", "ops")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(6 * 1024 * 1024))
    put = s3api(server, "put-object", "--bucket", "ops", "--key", "src", "--body", str(src), "--metadata", "k=v")
    assert put["ETag"]
    out = tmp_path / "range.bin"
    got = s3api(server, "get-object", "--bucket", "ops", "--key", "src", "--range", "bytes=10-19", str(out))
    assert got["ContentRange"].startswith("bytes 10-19/") and out.read_bytes() == src.read_bytes()[10:20]
    assert s3api(server, "head-object", "--bucket", "ops", "--key", "src")["Metadata"] == {"k": "v"}
    s3api(server, "copy-object", "--bucket", "ops", "--key", "copy", "--copy-source", "ops/src")
    assert [o["Key"] for o in s3api(server, "list-objects", "--bucket", "ops")["Contents"]] == ["copy", "src"]
    versions = s3api(server, "list-object-versions", "--bucket", "ops")["Versions"]
    assert {v["VersionId"] for v in versions} == {"null"}
    up = s3api(server, "create-multipart-upload", "--bucket", "ops", "--key", "mp")["UploadId"]
    assert [u["UploadId"] for u in s3api(server, "list-multipart-uploads", "--bucket", "ops")["Uploads"]] == [up]
    p1 = s3api(server, "upload-part", "--bucket", "ops", "--key", "mp", "--upload-id", up, "--part-number", "1",
               "--body", str(src))["ETag"]
    p2 = s3api(server, "upload-part-copy", "--bucket", "ops", "--key", "mp", "--upload-id", up, "--part-number", "2",
               "--copy-source", "ops/src", "--copy-source-range", "bytes=0-99")["CopyPartResult"]["ETag"]
    parts = s3api(server, "list-parts", "--bucket", "ops", "--key", "mp", "--upload-id", up)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 2]
    layout = json.dumps({"Parts": [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]})
    done = s3api(server, "complete-multipart-upload", "--bucket", "ops", "--key", "mp", "--upload-id", up,
                 "--multipart-upload", layout)
    assert done["ETag"].endswith('-2"')
    assert s3api(server, "head-object", "--bucket", "ops", "--key", "mp")["ContentLength"] == 6 * 1024 * 1024 + 100
    up2 = s3api(server, "create-multipart-upload", "--bucket", "ops", "--key", "gone")["UploadId"]
    s3api(server, "abort-multipart-upload", "--bucket", "ops", "--key", "gone", "--upload-id", up2)
    deleted = s3api(server, "delete-objects", "--bucket", "ops", "--delete",
                    json.dumps({"Objects": [{"Key": "copy"}, {"Key": "mp"}]}))
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy", "mp"]
    s3api(server, "delete-object", "--bucket", "ops", "--key", "src")
    assert "Contents" not in s3api(server, "list-objects-v2", "--bucket", "ops")
    s3api(server, "delete-bucket", "--bucket", "ops")
