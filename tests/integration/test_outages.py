"""PostgreSQL or S3 going away under a scaled ``cairn serve``: clear errors, nothing corrupt after.

The session's real PostgreSQL is crashed (immediate shutdown: every connection dropped)
and its real ``rclone serve s3`` is SIGKILLed while the server holds sessions and
clients are mid-upload; then they come back on the same data and port. Requests in the
outage must answer UNAVAILABLE (gRPC) / 503 (HTTP) naming what is down; afterwards the
same server, not restarted, serves everything it had acknowledged, and every blob it
names reads back to its digest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import BACKENDS, Backend, CairnServer, open_backend, require_binary, running
from tests.postgres import PostgresServer
from tests.s3 import S3Server

MIB = 1 << 20
pytestmark = pytest.mark.skipif("scaled" not in BACKENDS, reason="CAIRN_TEST_BACKENDS leaves out scaled")


@pytest.fixture
def server(request: pytest.FixtureRequest, short_tmp: Path) -> Iterator[CairnServer]:
    backend: Backend = open_backend(request, "scaled")
    try:
        with running(backend.server(short_tmp / "data")) as started:
            yield started
    finally:
        backend.close()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(http: requests.Session, server: CairnServer, data: bytes) -> requests.Response:
    return http.post(f"{server.http_url}/v2/demo/app/blobs/uploads/?digest={digest_of(data)}", data=data, timeout=60)


def upload_path(response: requests.Response) -> str:
    location = response.headers["Location"]
    return location if location.startswith("/") else "/" + location.split("/", 3)[3]


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def ctr(server: CairnServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [require_binary("ctr"), "-a", str(server.socket), "-n", "registry", *args],
        capture_output=True, timeout=60, check=False,
    )


def assert_every_named_blob_reads_back(http: requests.Session, server: CairnServer) -> None:
    listed = ctr(server, "content", "ls", "-q")
    assert listed.returncode == 0, listed.stderr.decode()
    for digest in listed.stdout.decode().split():
        body = http.get(f"{server.http_url}/v2/demo/app/blobs/{digest}", timeout=60)
        assert body.status_code == 200 and digest_of(body.content) == digest, digest


def test_postgres_down_is_unavailable_and_nothing_is_lost(server: CairnServer, postgres_server: PostgresServer) -> None:
    http = requests.Session()
    kept = os.urandom(MIB)
    assert push(http, server, kept).status_code == 201
    started = http.post(f"{server.http_url}/v2/demo/app/blobs/uploads/", timeout=30)
    path = upload_path(started)
    resumed = os.urandom(3 * MIB)
    first = http.patch(server.http_url + path, data=resumed[:MIB], timeout=30,
                       headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{MIB - 1}"})
    assert first.status_code == 202, first.text

    postgres_server.crash()
    try:
        fresh = requests.Session()  # new connections: nothing cached on the client side
        during = fresh.get(f"{server.http_url}/v2/demo/app/blobs/{digest_of(kept)}", timeout=60)
        assert during.status_code == 503, during.text
        error = during.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and "catalog" in error["message"], error
        finish = fresh.put(f"{server.http_url}{path}{'&' if '?' in path else '?'}digest={digest_of(resumed)}",
                           timeout=60)
        assert finish.status_code == 503, finish.text
        listing = ctr(server, "content", "ls")
        assert listing.returncode != 0
        assert listing.stderr.decode().rstrip().endswith(": unavailable") and "catalog" in listing.stderr.decode()
    finally:
        postgres_server.relaunch()

    eventually(lambda: http.get(f"{server.http_url}/v2/demo/app/blobs/{digest_of(kept)}", timeout=60).status_code == 200,
               "the server did not reconnect to PostgreSQL")
    assert http.get(f"{server.http_url}/v2/demo/app/blobs/{digest_of(kept)}", timeout=60).content == kept
    status = http.get(server.http_url + path, timeout=30)  # the session survived with its bytes
    assert (status.status_code, status.headers["Range"]) == (204, f"0-{MIB - 1}")
    rest = http.patch(server.http_url + path, data=resumed[MIB:], timeout=30,
                      headers={"Content-Type": "application/octet-stream", "Content-Range": f"{MIB}-{3 * MIB - 1}"})
    assert rest.status_code == 202, rest.text
    done = http.put(f"{server.http_url}{path}{'&' if '?' in path else '?'}digest={digest_of(resumed)}", timeout=60)
    assert done.status_code == 201, done.text
    assert_every_named_blob_reads_back(http, server)


def test_s3_down_is_unavailable_and_nothing_is_lost(server: CairnServer, s3_server: S3Server) -> None:
    http = requests.Session()
    kept = os.urandom(2 * MIB)  # above the in-memory small-blob size: reads go to the store
    assert push(http, server, kept).status_code == 201
    started = http.post(f"{server.http_url}/v2/demo/app/blobs/uploads/", timeout=30)
    path = upload_path(started)
    chunk = os.urandom(MIB)
    first = http.patch(server.http_url + path, data=chunk, timeout=30,
                       headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{MIB - 1}"})
    assert first.status_code == 202, first.text

    s3_server.kill()
    try:
        during = http.get(f"{server.http_url}/v2/demo/app/blobs/{digest_of(kept)}", timeout=60)
        assert during.status_code == 503, during.text
        error = during.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and "content store" in error["message"], error
        lost = os.urandom(MIB)
        refused = push(http, server, lost)
        assert refused.status_code == 503, refused.text
        more = http.patch(server.http_url + path, data=os.urandom(MIB), timeout=30,
                          headers={"Content-Type": "application/octet-stream", "Content-Range": f"{MIB}-{2 * MIB - 1}"})
        assert more.status_code == 503, more.text
    finally:
        s3_server.start()

    assert http.get(f"{server.http_url}/v2/demo/app/blobs/{digest_of(lost)}", timeout=60).status_code == 404
    body = http.get(f"{server.http_url}/v2/demo/app/blobs/{digest_of(kept)}", timeout=60)
    assert (body.status_code, body.content) == (200, kept)
    status = http.get(server.http_url + path, timeout=30)  # the first chunk's tail object survived
    assert (status.status_code, status.headers["Range"]) == (204, f"0-{MIB - 1}")
    done = http.put(f"{server.http_url}{path}{'&' if '?' in path else '?'}digest={digest_of(chunk)}", timeout=60)
    assert done.status_code == 201, done.text
    assert push(http, server, lost).status_code == 201
    assert_every_named_blob_reads_back(http, server)
