"""Drives that fill up: writes fail with a clear error (507 XMinioStorageFull),
nothing acknowledged is lost or damaged, and writes work again once space is
freed. Each drive is a small tmpfs of its own (needs root to mount)."""

import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import Server, client_for

DRIVE_MIB = 24


def mount_small_drives(server):
    for d in server.drives:
        os.makedirs(d, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DRIVE_MIB}m", "tmpfs", d], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs per drive here: {r.stderr.strip()}")


def unmount(server):
    for d in server.drives:
        subprocess.run(["umount", "-l", d], capture_output=True)


def test_full_drives_refuse_writes_and_keep_data():
    server = Server(drives=4)
    mount_small_drives(server)
    try:
        server.start()
        s3 = client_for(server.endpoint)
        s3.create_bucket(Bucket="full")
        stored = {}
        # 2+2 coding: each 4 MiB object takes 2 MiB per drive; 24 MiB drives fill after ~10.
        error = None
        for i in range(40):
            body = os.urandom(4 * 1024 * 1024)
            try:
                s3.put_object(Bucket="full", Key=f"obj-{i}", Body=body)
                stored[f"obj-{i}"] = body
            except ClientError as e:
                error = e
                break
        assert error is not None, "the drives never filled"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 507
        assert error.response["Error"]["Code"] == "XMinioStorageFull"
        assert len(stored) >= 5
        # Small (inline) writes may still fit or may not; either way the answer is clean.
        try:
            s3.put_object(Bucket="full", Key="tiny", Body=b"tiny")
        except ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 507
        # Everything acknowledged reads back intact; the failed write left nothing.
        for key, body in stored.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == body, key
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="full").get("Contents", [])]
        assert set(keys) - {"tiny"} == set(stored)
        # Free space and write again.
        for key in list(stored)[:4]:
            s3.delete_object(Bucket="full", Key=key)
            del stored[key]
        body = os.urandom(4 * 1024 * 1024)
        s3.put_object(Bucket="full", Key="after", Body=body)
        assert s3.get_object(Bucket="full", Key="after")["Body"].read() == body
        server.stop()
    finally:
        server.kill()
        unmount(server)
