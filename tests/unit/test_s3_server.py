"""The ``s3_server`` fixture (tests/s3.py) is a usable S3 endpoint for the ``scaled`` backend.

Checks with boto3 what the S3 content backend relies on: put/get, ranged get, multipart
upload, and that a killed server comes back on the same port with its objects.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.s3 import S3Server

MiB = 1024 * 1024


@pytest.fixture
def s3(s3_server: S3Server) -> tuple[Any, str]:
    """A boto3 client and a fresh bucket."""
    return s3_server.client(), s3_server.new_bucket()


def test_put_get_and_ranged_get(s3: tuple[Any, str]) -> None:
    client, bucket = s3
    data = os.urandom(3 * MiB + 17)
    client.put_object(Bucket=bucket, Key="cairn/blob", Body=data)
    assert client.get_object(Bucket=bucket, Key="cairn/blob")["Body"].read() == data
    assert client.head_object(Bucket=bucket, Key="cairn/blob")["ContentLength"] == len(data)
    # rclone answers 200 with a Content-Range rather than 206; boto3 does not mind.
    ranged = client.get_object(Bucket=bucket, Key="cairn/blob", Range="bytes=1000-2999")
    assert ranged["Body"].read() == data[1000:3000]
    assert ranged["ContentRange"] == f"bytes 1000-2999/{len(data)}"
    listed = client.list_objects_v2(Bucket=bucket, Prefix="cairn/")["Contents"]
    assert [o["Key"] for o in listed] == ["cairn/blob"]


def test_multipart_upload(s3: tuple[Any, str]) -> None:
    client, bucket = s3
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(123)]
    upload = client.create_multipart_upload(Bucket=bucket, Key="cairn/big")["UploadId"]
    etags = [
        client.upload_part(Bucket=bucket, Key="cairn/big", UploadId=upload, PartNumber=n, Body=part)["ETag"]
        for n, part in enumerate(parts, 1)
    ]
    client.complete_multipart_upload(
        Bucket=bucket, Key="cairn/big", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert client.get_object(Bucket=bucket, Key="cairn/big")["Body"].read() == b"".join(parts)


def test_killed_server_restarts_on_the_same_port_and_root(s3_server: S3Server,
                                                          s3: tuple[Any, str]) -> None:
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="cairn/kept", Body=b"still here")
    port = s3_server.port
    s3_server.kill()
    try:
        assert not s3_server.running
    finally:
        s3_server.start()
    assert s3_server.port == port
    assert client.get_object(Bucket=bucket, Key="cairn/kept")["Body"].read() == b"still here"


def test_content_url_and_env(s3_server: S3Server) -> None:
    url = s3_server.content_url("b")
    assert url == f"s3://b/cairn?endpoint=http://127.0.0.1:{s3_server.port}&region=us-east-1&part_size=5242880"
    env = s3_server.env()
    assert env["AWS_ACCESS_KEY_ID"] == s3_server.access_key
    assert env["AWS_SECRET_ACCESS_KEY"] == s3_server.secret_key
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
