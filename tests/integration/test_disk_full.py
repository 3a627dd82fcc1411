"""A full disk under ``cairn serve``: clear errors, the server keeps serving, nothing stored is harmed.

The data directory sits on a small tmpfs (we run as root in CI; elsewhere the
tests skip unless CI is set, like ``require_binary``). Each case pushes more
than fits and checks that the client is told the disk is full (OCI: HTTP 507
with the OCI error body; containerd content: RESOURCE_EXHAUSTED), that the
server still answers reads of what it stored, that ``cairn fsck`` is clean,
that the failed upload either resumes from the offset the server reports or is
gone, and that the same push succeeds once the operator makes room (a remount
with a larger size, or deleting a file that filled the disk). One case fills
the disk so that only the SQLite catalog's commit fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import grpc
import pytest
import requests

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from cairn.core.errors import StorageFullError
from cairn.warg.client import RecordRejectedError, WargClient, create_key, load_key
from tests.conftest import CairnServer, require_binary, running
from tests.faults import ReliabilityFigures, fsck, verify_store
from tests.integration.kill_workers import wait_for_warg

NS = (("containerd-namespace", "default"),)
MIB = 1 << 20
DISK_MIB = 40
REPO = "full/app"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
TIMEOUT = 60
FIGURES = ReliabilityFigures("disk_full")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class SmallDisk:
    """A tmpfs of a few MiB mounted for the test; :meth:`grow` is the operator adding space."""

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint

    def mount(self, mib: int) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0755", "tmpfs", str(self.mountpoint)],
            capture_output=True, check=False, timeout=30,
        )
        if result.returncode != 0:
            reason = f"cannot mount a tmpfs for the disk-full tests: {result.stderr.decode().strip()}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)

    def grow(self, mib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={mib}m", str(self.mountpoint)], check=True, timeout=30)

    def free(self) -> int:
        stat = os.statvfs(self.mountpoint)
        return stat.f_bavail * stat.f_frsize

    def fill(self, leave: int = 0) -> Path:
        """Write a file until only ``leave`` bytes are free; the file, to delete to make room again."""
        filler = self.mountpoint / "filler"
        with filler.open("wb") as f:
            while (room := self.free() - leave) > 0:
                try:
                    f.write(b"\0" * min(room, MIB))
                    f.flush()
                except OSError:
                    break
        return filler

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, timeout=30)


@pytest.fixture
def disk(short_tmp: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(short_tmp / "disk")
    small.mount(DISK_MIB)
    yield small
    small.unmount()


@pytest.fixture
def server(disk: SmallDisk) -> Iterator[CairnServer]:
    """``cairn serve`` with its whole data directory (catalog and content) on the small disk."""
    with running(CairnServer(disk.mountpoint / "data")) as started:
        yield started


def _disk_full_error(response: requests.Response) -> str:
    """The OCI error of a push that met a full disk: 507 naming the full disk."""
    assert response.status_code == 507, f"HTTP {response.status_code}: {response.text[:300]}"
    [error] = response.json()["errors"]
    assert "no space left on device (the disk is full)" in error["message"], error
    return str(error["message"])


def _push_blob(server: CairnServer, data: bytes) -> requests.Response:
    start = requests.post(f"{server.http_url}/v2/{REPO}/blobs/uploads/", timeout=TIMEOUT)
    assert start.status_code == 202
    location = urljoin(server.http_url, start.headers["Location"])
    return requests.put(location, params={"digest": sha256(data)}, data=data, timeout=TIMEOUT,
                        headers={"Content-Type": "application/octet-stream"})


def _alive_and_whole(server: CairnServer, stored: dict[str, bytes], *, fsck_too: bool = True) -> None:
    """The server still answers, its stored blobs read back whole, and the store is clean.

    ``fsck_too=False`` while the disk is completely full: fsck records its progress in the
    catalog, so it needs a little room itself.
    """
    assert server.proc is not None and server.proc.poll() is None, f"cairn serve died:\n{server.log()}"
    assert requests.get(f"{server.http_url}/healthz", timeout=TIMEOUT).status_code == 200
    for digest, data in stored.items():
        got = requests.get(f"{server.http_url}/v2/{REPO}/blobs/{digest}", timeout=TIMEOUT)
        assert got.status_code == 200 and got.content == data, digest
    if fsck_too:
        fsck(server.data_dir, "disk full")
    verify_store(server.data_dir)


def _store_some(server: CairnServer) -> dict[str, bytes]:
    stored = {}
    for _ in range(3):
        data = os.urandom(2 * MIB)
        assert _push_blob(server, data).status_code == 201
        stored[sha256(data)] = data
    return stored


@pytest.mark.embedded_only("the data directory is a local tmpfs")
def test_oci_monolithic_push_beyond_the_disk(server: CairnServer, disk: SmallDisk) -> None:
    stored = _store_some(server)
    big = os.urandom((DISK_MIB + 8) * MIB)
    message = _disk_full_error(_push_blob(server, big))
    FIGURES.details["oci_monolithic_error"] = f"507 {message}"
    FIGURES.add("oci_monolithic_full")
    _alive_and_whole(server, stored)
    assert requests.get(f"{server.http_url}/v2/{REPO}/blobs/{sha256(big)}", timeout=TIMEOUT).status_code == 404
    disk.grow(4 * DISK_MIB)
    assert _push_blob(server, big).status_code == 201
    got = requests.get(f"{server.http_url}/v2/{REPO}/blobs/{sha256(big)}", timeout=TIMEOUT)
    assert got.content == big
    _alive_and_whole(server, {**stored, sha256(big): big})
    FIGURES.save()


@pytest.mark.embedded_only("the data directory is a local tmpfs")
def test_oci_chunked_upload_resumes_after_room_is_made(server: CairnServer, disk: SmallDisk) -> None:
    stored = _store_some(server)
    big = os.urandom((DISK_MIB + 8) * MIB)
    start = requests.post(f"{server.http_url}/v2/{REPO}/blobs/uploads/", timeout=TIMEOUT)
    location = urljoin(server.http_url, start.headers["Location"])
    offset, piece, failure = 0, 4 * MIB, None
    while offset < len(big):
        chunk = big[offset : offset + piece]
        patch = requests.patch(location, data=chunk, timeout=TIMEOUT, headers={
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Type": "application/octet-stream"})
        if patch.status_code != 202:
            failure = patch
            break
        location = urljoin(server.http_url, patch.headers["Location"])
        offset += len(chunk)
    assert failure is not None, "the whole upload fit on the small disk"
    message = _disk_full_error(failure)
    FIGURES.details["oci_chunked_error"] = f"507 {message}"
    _alive_and_whole(server, stored)
    # the session keeps what it stored whole (all acknowledged chunks, maybe part of the refused
    # one): it reports that offset and resumes from it
    status = requests.get(location, timeout=TIMEOUT)
    assert status.status_code == 204, status.status_code
    resumed_at = int(status.headers["Range"].split("-")[1]) + 1
    assert offset <= resumed_at < offset + piece, (
        f"session reports {status.headers['Range']} after {offset} bytes acknowledged")
    disk.grow(4 * DISK_MIB)
    rest = big[resumed_at:]
    put = requests.put(location, params={"digest": sha256(big)}, data=rest, timeout=TIMEOUT, headers={
        "Content-Range": f"{resumed_at}-{len(big) - 1}", "Content-Type": "application/octet-stream"})
    assert put.status_code == 201, put.text
    assert requests.get(f"{server.http_url}/v2/{REPO}/blobs/{sha256(big)}", timeout=TIMEOUT).content == big
    _alive_and_whole(server, {**stored, sha256(big): big})
    FIGURES.add("oci_chunked_full_resumed")
    FIGURES.save()


@pytest.mark.embedded_only("the data directory is a local tmpfs")
def test_content_ingest_beyond_the_disk_resumes(server: CairnServer, disk: SmallDisk) -> None:
    stored = _store_some(server)
    data = os.urandom((DISK_MIB + 8) * MIB)
    digest = sha256(data)
    with grpc.insecure_channel(f"unix:{server.socket}") as channel:
        stub = pb_grpc.ContentStub(channel)
        requests_ = [pb.WriteContentRequest(action=pb.WRITE, ref="full", offset=o, data=data[o : o + MIB])
                     for o in range(0, len(data), MIB)]
        requests_.append(pb.WriteContentRequest(action=pb.COMMIT, ref="full", offset=len(data), total=len(data),
                                                expected=digest))
        with pytest.raises(grpc.RpcError) as failed:
            list(stub.Write(iter(requests_), metadata=NS))
        assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, failed.value
        assert "no space left on device (the disk is full)" in (failed.value.details() or ""), failed.value

        FIGURES.details["content_ingest_error"] = f"RESOURCE_EXHAUSTED {failed.value.details()}"
        _alive_and_whole(server, stored)
        [status] = stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses
        assert status.ref == "full" and 0 < status.offset < len(data)
        disk.grow(4 * DISK_MIB)
        resume = [pb.WriteContentRequest(action=pb.WRITE, ref="full", offset=o, data=data[o : o + MIB])
                  for o in range(status.offset, len(data), MIB)]
        resume.append(pb.WriteContentRequest(action=pb.COMMIT, ref="full", offset=len(data), total=len(data),
                                             expected=digest))
        assert list(stub.Write(iter(resume), metadata=NS))[-1].digest == digest
        read = b"".join(r.data for r in stub.Read(pb.ReadContentRequest(digest=digest), metadata=NS))
        assert read == data
    _alive_and_whole(server, stored)
    FIGURES.add("content_ingest_full_resumed")
    FIGURES.save()


@pytest.mark.embedded_only("the data directory is a local tmpfs")
def test_ctr_ingest_on_a_full_disk_says_so(server: CairnServer, disk: SmallDisk, tmp_path: Path) -> None:
    """The real containerd client shows the reason, and the same ingest succeeds once there is room."""
    ctr = require_binary("ctr")
    source = tmp_path / "big"
    source.write_bytes(os.urandom((DISK_MIB + 8) * MIB))
    command = [ctr, "--address", str(server.socket), "-n", "default", "--timeout", "60s",
               "content", "ingest", "--expected-digest", sha256(source.read_bytes()), "big"]
    with source.open("rb") as stdin:
        failed = subprocess.run(command, stdin=stdin, capture_output=True, check=False, timeout=120)
    assert failed.returncode != 0
    assert b"no space left on device (the disk is full)" in failed.stderr, failed.stderr
    FIGURES.details["ctr_ingest_error"] = failed.stderr.decode(errors="replace").strip()
    _alive_and_whole(server, {})
    disk.grow(4 * DISK_MIB)
    with source.open("rb") as stdin:
        subprocess.run(command, stdin=stdin, capture_output=True, check=True, timeout=120)
    got = subprocess.run([ctr, "--address", str(server.socket), "-n", "default", "content", "get",
                          sha256(source.read_bytes())], capture_output=True, check=True, timeout=120)
    assert got.stdout == source.read_bytes()
    _alive_and_whole(server, {})
    FIGURES.add("ctr_ingest_full_resumed")
    FIGURES.save()


@pytest.mark.embedded_only("the data directory is a local tmpfs")
def test_warg_release_upload_on_a_full_disk(server: CairnServer, disk: SmallDisk, tmp_path: Path) -> None:
    """The Warg client is told the registry's disk is full (507), and publishes once there is room."""
    wait_for_warg(server)
    create_key(tmp_path / "k.key")
    content = tmp_path / "big.wasm"
    content.write_bytes(b"\0asm\1\0\0\0" + os.urandom((DISK_MIB + 8) * MIB))
    with WargClient(server.http_url, tmp_path / "state", load_key(tmp_path / "k.key"), publish_timeout=30) as client:
        client.publish_init("cairn:full")
        with pytest.raises(StorageFullError, match=r"no space left on device \(the disk is full\)") as failed:
            client.publish_release("cairn:full", "1.0.0", content)
        FIGURES.details["warg_upload_error"] = str(failed.value)
        _alive_and_whole(server, {})
        disk.grow(4 * DISK_MIB)
        # The first record waits in ``sourcing`` for its content. Publishing again uploads the
        # content, which completes that first record; the second record, chained on the same
        # head, is then refused. The release is published either way, once.
        with pytest.raises(RecordRejectedError, match="previous record hash does not match"):
            client.publish_release("cairn:full", "1.0.0", content)
        client.update()
        assert list(client.package("cairn:full").state.releases) == ["1.0.0"]
        client.download("cairn:full", "1.0.0", tmp_path / "out.wasm")
    assert (tmp_path / "out.wasm").read_bytes() == content.read_bytes()
    _alive_and_whole(server, {})
    FIGURES.add("warg_upload_full_published")
    FIGURES.save()


@pytest.mark.embedded_only("the data directory is a local tmpfs")
def test_catalog_commit_on_a_full_disk(server: CairnServer, disk: SmallDisk) -> None:
    """Only catalog rows are written (new tags of a stored manifest): SQLite meets ENOSPC on commit."""
    stored = _store_some(server)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    assert _push_blob(server, config).status_code == 201
    layer_digest = next(iter(stored))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(stored[layer_digest])}],
    }).encode()

    def tag(name: str) -> requests.Response:
        return requests.put(f"{server.http_url}/v2/{REPO}/manifests/{name}", data=manifest, timeout=TIMEOUT,
                            headers={"Content-Type": MANIFEST_TYPE})

    assert tag("first").status_code == 201
    filler = disk.fill()
    failure, tagged = None, []
    for n in range(2000):  # the WAL takes a few commits in pages it already holds
        response = tag(f"t{n}")
        if response.status_code != 201:
            failure = response
            break
        tagged.append(f"t{n}")
    assert failure is not None, "2000 tags fit on a full disk"
    assert failure.status_code == 507, f"HTTP {failure.status_code}: {failure.text[:300]}\n{server.log()[-3000:]}"
    [error] = failure.json()["errors"]
    assert "database or disk is full" in error["message"], error
    FIGURES.details["catalog_commit_error"] = f"507 {error['message']}"
    _alive_and_whole(server, stored, fsck_too=False)
    for name in ["first", *tagged]:
        got = requests.get(f"{server.http_url}/v2/{REPO}/manifests/{name}", timeout=TIMEOUT,
                           headers={"Accept": MANIFEST_TYPE})
        assert got.status_code == 200 and got.content == manifest, name
    filler.unlink()
    fsck(server.data_dir, "after the catalog's failed commit")
    assert tag(f"t{len(tagged)}").status_code == 201
    listed = requests.get(f"{server.http_url}/v2/{REPO}/tags/list", timeout=TIMEOUT).json()["tags"]
    assert set(listed) == {"first", *tagged, f"t{len(tagged)}"}
    server.restart()  # the catalog opens cleanly after the failed commit
    _alive_and_whole(server, stored)
    FIGURES.add("catalog_commit_full")
    FIGURES.save()
