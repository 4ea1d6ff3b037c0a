"""rclone, s3cmd, the MinIO Python SDK and fog-aws against a real basalt."""

import filecmp
import io
import os
import subprocess

from conftest import ACCESS_KEY, SECRET_KEY


def make_tree(root, files=300):
    for i in range(files):
        d = root / f"dir{i % 7}" / f"sub{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file-{i}.bin").write_bytes(os.urandom((i * 997) % 200_000))


def run(cmd, env=None):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stdout}\n{r.stderr}"
    return r.stdout


def test_rclone_sync_up_and_back(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(
        RCLONE_CONFIG_B_TYPE="s3",
        RCLONE_CONFIG_B_PROVIDER="Minio",
        RCLONE_CONFIG_B_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_B_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_B_ENDPOINT=server.endpoint,
        RCLONE_CONFIG_B_REGION="us-east-1",
        RCLONE_CONFIG=str(tmp_path / "none.conf"),
    )
    src = tmp_path / "src"
    make_tree(src)
    (src / "big.bin").write_bytes(os.urandom(30 * 1024 * 1024))
    run(["rclone", "mkdir", "b:rclone"], env)
    run(["rclone", "sync", str(src), "b:rclone/tree"], env)
    run(["rclone", "check", str(src), "b:rclone/tree"], env)
    back = tmp_path / "back"
    run(["rclone", "sync", "b:rclone/tree", str(back)], env)
    cmp = filecmp.dircmp(src, back)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    for sub in cmp.subdirs.values():
        assert not sub.diff_files and not sub.left_only and not sub.right_only
    # A deletion locally is mirrored by the next sync.
    os.remove(src / "dir0" / "sub0" / "file-0.bin")
    run(["rclone", "sync", str(src), "b:rclone/tree"], env)
    listed = run(["rclone", "lsf", "-R", "--files-only", "b:rclone/tree"], env).split()
    assert "dir0/sub0/file-0.bin" not in listed and len(listed) == 300


def test_s3cmd(server, tmp_path):
    host = server.endpoint.removeprefix("http://")
    s3cmd = [
        "s3cmd", "--no-ssl", f"--host={host}", f"--host-bucket={host}", f"--access_key={ACCESS_KEY}",
        f"--secret_key={SECRET_KEY}", "--region=us-east-1", "-c", "/dev/null",
    ]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))
    run(s3cmd + ["mb", "s3://s3cmd"])
    run(s3cmd + ["put", str(big), "s3://s3cmd/big.bin"])
    run(s3cmd + ["put", __file__, "s3://s3cmd/dir/test.py"])
    listing = run(s3cmd + ["ls", "--recursive", "s3://s3cmd"])
    assert "s3://s3cmd/big.bin" in listing and "s3://s3cmd/dir/test.py" in listing
    back = tmp_path / "back.bin"
    run(s3cmd + ["get", "s3://s3cmd/big.bin", str(back)])
    assert filecmp.cmp(big, back, shallow=False)
    run(s3cmd + ["del", "s3://s3cmd/dir/test.py"])
    assert "test.py" not in run(s3cmd + ["ls", "--recursive", "s3://s3cmd"])


def test_minio_python_sdk(server):
    from minio import Minio

    client = Minio(server.endpoint.removeprefix("http://"), access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)
    client.make_bucket("miniosdk")
    assert client.bucket_exists("miniosdk")
    data = os.urandom(11 * 1024 * 1024 + 5)
    client.put_object("miniosdk", "multi/part.bin", io.BytesIO(data), len(data), part_size=5 * 1024 * 1024)
    assert client.get_object("miniosdk", "multi/part.bin").read() == data
    assert client.get_object("miniosdk", "multi/part.bin", offset=5, length=100).read() == data[5:105]
    stat = client.stat_object("miniosdk", "multi/part.bin")
    assert stat.size == len(data)
    assert [o.object_name for o in client.list_objects("miniosdk", recursive=True)] == ["multi/part.bin"]
    client.remove_object("miniosdk", "multi/part.bin")
    assert list(client.list_objects("miniosdk", recursive=True)) == []


def test_fog_aws_streaming_signature(server):
    script = os.path.join(os.path.dirname(__file__), "fog_roundtrip.rb")
    env = dict(os.environ, ENDPOINT=server.endpoint, KEY=ACCESS_KEY, SECRET=SECRET_KEY)
    out = run(["ruby", script], env)
    assert "FOG_OK" in out
