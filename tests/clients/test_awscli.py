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
