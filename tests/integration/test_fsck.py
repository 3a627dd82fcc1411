"""``cairn fsck`` and read verification against a real ``cairn serve`` and real clients.

fsck runs as a separate process beside the running server, as an operator would
run it. Tests that damage blob files on disk or compare quarantined files are
``embedded_only``; the rest run on both backends. Pushes use skopeo (an image
from an OCI layout) or plain ``/v2`` uploads; reads use requests and ``ctr``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cairn.core.catalog import open_catalog
from tests.conftest import Backend, CairnServer, cairn_command, require_binary, running
from tests.integration.registry.conftest import (
    ContainerTools,
    OciLayout,
    build_oci_layout,
    push_blob,
    registry_url,
    sha256,
)

REPOSITORY = "fsck/app"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> OciLayout:
    return build_oci_layout(tmp_path_factory.mktemp("fsck-layout") / "src")


@pytest.fixture
def tools(short_tmp: Path) -> ContainerTools:
    return ContainerTools(short_tmp / "tools")


@pytest.fixture
def server(short_tmp: Path, cairn_backend: Backend) -> Iterator[CairnServer]:
    with running(cairn_backend.server(short_tmp / "data")) as started:
        yield started


def push_image(tools: ContainerTools, layout: OciLayout, server: CairnServer) -> None:
    tools.skopeo("copy", "--dest-tls-verify=false", layout.ref("v1"),
                 f"docker://{registry_url(server)}/{REPOSITORY}:v1")


def catalog_url(server: CairnServer) -> str:
    return server.catalog_url or f"sqlite://{(server.data_dir / 'cairn.db').resolve()}"


def fsck(server: CairnServer, *args: str, timeout: float = 120) -> tuple[int, dict[str, Any]]:
    """``cairn fsck -o json`` on ``server``'s store: (exit code, report)."""
    result = subprocess.run(
        [*cairn_command(), "fsck", "-o", "json", *store_args(server), *args],
        check=False, capture_output=True, timeout=timeout, env=fsck_env(server),
    )
    assert result.returncode in (0, 1), result.stderr.decode()
    return result.returncode, json.loads(result.stdout)


def store_args(server: CairnServer) -> list[str]:
    args = ["--data-dir", str(server.data_dir)]
    if server.catalog_url:
        args += ["--catalog", server.catalog_url]
    if server.content_url:
        args += ["--content", server.content_url]
    return args


def fsck_env(server: CairnServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "AWS_"))}
    return {**env, **server.extra_env}


def blob_file(server: CairnServer, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":")
    return server.data_dir / "content" / "blobs" / algorithm / hex_digest


def flip_byte(path: Path, offset: int) -> None:
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def kinds(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p["kind"], p["subject"]) for p in report["problems"]}


# -- clean ---------------------------------------------------------------------------------------
def test_store_after_pushes_is_clean(server: CairnServer, tools: ContainerTools, layout: OciLayout) -> None:
    push_image(tools, layout, server)
    code, report = fsck(server)
    assert (code, report["clean"], report["problems"]) == (0, True, [])
    pushed = {b.digest for b in layout.image.blobs()}
    assert report["blobs_checked"] == len(pushed)
    assert report["bytes_checked"] == sum(b.size for b in layout.image.blobs())


# -- corruption, read verification and repair ----------------------------------------------------
@pytest.mark.embedded_only("flips a byte in a blob file")
def test_flipped_byte_is_found_and_reads_are_cut_short(
    server: CairnServer, tools: ContainerTools, layout: OciLayout
) -> None:
    push_image(tools, layout, server)
    big = max(layout.image.blobs(), key=lambda b: b.size)
    flip_byte(blob_file(server, big.digest), big.size // 2)

    code, report = fsck(server)
    assert code == 1 and report["clean"] is False
    corrupt = [p for p in report["problems"] if p["kind"] == "corrupt-blob"]
    assert [(p["subject"], p["repaired"]) for p in corrupt] == [(big.digest, False)]
    assert report["blobs_checked"] == len(layout.image.blobs())

    # HTTP: the whole-blob GET ends early; the client never gets all the bytes.
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        with requests.get(f"{server.http_url}/v2/{REPOSITORY}/blobs/{big.digest}", stream=True, timeout=30) as r:
            assert r.status_code == 200
            for chunk in r.iter_content(1 << 16):
                received += chunk
    assert 0 < len(received) < big.size
    # A range read is served as stored (it cannot be verified), so clients that resume still can.
    ranged = requests.get(f"{server.http_url}/v2/{REPOSITORY}/blobs/{big.digest}",
                          headers={"Range": "bytes=0-99"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == big.data[:100]

    # gRPC: ctr reads 32 KiB per call; the call that would complete the blob fails with DATA_LOSS.
    got = subprocess.run([require_binary("ctr"), "--address", str(server.socket), "-n", "registry",
                          "content", "get", big.digest], check=False, capture_output=True, timeout=60)
    assert got.returncode != 0
    assert b"DataLoss" in got.stderr and big.digest.encode() in got.stderr
    assert len(got.stdout) < big.size
    assert "cairn fsck --repair" in server.log()


@pytest.mark.embedded_only("flips a byte in a blob file and reads the quarantine")
def test_repair_refetches_from_peer(
    short_tmp: Path, server: CairnServer, tools: ContainerTools, layout: OciLayout
) -> None:
    with running(CairnServer(short_tmp / "peer")) as peer:
        push_image(tools, layout, peer)
        push_image(tools, layout, server)
        big = max(layout.image.blobs(), key=lambda b: b.size)
        path = blob_file(server, big.digest)
        flip_byte(path, 7)
        damaged = path.read_bytes()

        code, report = fsck(server, "--repair", "--peer", peer.http_url)
        assert code == 0 and report["clean"] is True
        assert [(p["kind"], p["subject"], p["repaired"]) for p in report["problems"]] == [
            ("corrupt-blob", big.digest, True)
        ]
        assert path.read_bytes() == big.data
        quarantined = Path(report["quarantined"][big.digest])
        assert quarantined.parent == server.data_dir / "content" / "quarantine" / "sha256"
        assert quarantined.read_bytes() == damaged

    code, report = fsck(server)
    assert (code, report["clean"], report["problems"], report["resumed"]) == (0, True, [], False)
    served = requests.get(f"{server.http_url}/v2/{REPOSITORY}/blobs/{big.digest}", timeout=30)
    assert served.content == big.data


@pytest.mark.embedded_only("deletes a blob file")
def test_deleted_blob_file_is_a_dangling_name(
    server: CairnServer, tools: ContainerTools, layout: OciLayout
) -> None:
    push_image(tools, layout, server)
    big = max(layout.image.blobs(), key=lambda b: b.size)
    blob_file(server, big.digest).unlink()

    code, report = fsck(server, "--repair")  # no peer: nothing can be fetched
    assert code == 1 and report["clean"] is False
    manifest = layout.image.manifest.digest
    assert kinds(report) == {("dangling-name", big.digest), ("dangling-manifest-ref", big.digest)}
    details = {p["kind"]: p["detail"] for p in report["problems"]}
    assert "namespace registry" in details["dangling-name"]
    assert f"{REPOSITORY}@{manifest}" in details["dangling-manifest-ref"]
    assert all(not p["repaired"] for p in report["problems"])


# -- resumability --------------------------------------------------------------------------------
def test_interrupted_fsck_resumes_where_it_stopped(server: CairnServer) -> None:
    host = registry_url(server)
    blobs = [os.urandom(256 << 10) for _ in range(12)]
    for data in blobs:
        assert push_blob(host, "fsck/blobs", data).status_code == 201

    # 3 MiB at 512 KiB/s take ~6 s: stop it half way, as kill -9 would.
    started = subprocess.Popen(
        [*cairn_command(), "fsck", "-o", "json", "--workers", "1", "--rate", "512K", "--restart",
         *store_args(server)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=fsck_env(server),
    )
    catalog = open_catalog(catalog_url(server))
    try:
        deadline = time.monotonic() + 30
        done = 0
        while done < 3 and time.monotonic() < deadline and started.poll() is None:
            time.sleep(0.1)
            run = catalog.integrity.get_run("blobs")
            done = run.blobs_checked if run is not None else 0
        started.send_signal(signal.SIGKILL)
        started.wait(10)
        run = catalog.integrity.get_run("blobs")
        assert run is not None and not run.finished and 3 <= run.blobs_checked < len(blobs)
        before = run.blobs_checked
    finally:
        catalog.close()

    code, report = fsck(server, "--resume")
    assert (code, report["clean"], report["resumed"]) == (0, True, True)
    assert report["blobs_skipped"] == before
    assert report["blobs_checked"] == len(blobs) - before

    code, report = fsck(server)  # the last run finished: the next one starts over
    assert (report["resumed"], report["blobs_checked"]) == (False, len(blobs))


# -- Warg ----------------------------------------------------------------------------------------
def wait_for_checkpoint(server: CairnServer) -> int:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{server.http_url}/v1/fetch/checkpoint", timeout=5) as r:
                return int(json.loads(r.read())["contents"]["logLength"])
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_altered_warg_checkpoint_is_a_mismatch(server: CairnServer) -> None:
    length = wait_for_checkpoint(server)  # the operator log's first records, published at start-up
    code, report = fsck(server)
    assert (code, report["problems"]) == (0, [])

    catalog = open_catalog(catalog_url(server))
    try:
        with catalog.db.transaction() as tx:
            tx.execute("UPDATE warg_checkpoints SET log_root = ? WHERE log_length = ?",
                       ("sha256:" + sha256(b"not the root").split(":")[1], length))
    finally:
        catalog.close()
    code, report = fsck(server)
    assert code == 1
    [problem] = report["problems"]
    assert (problem["kind"], problem["subject"]) == ("warg-checkpoint-mismatch", f"checkpoint {length}")
    assert "leaves give" in problem["detail"] and "stored log nodes give" in problem["detail"]
    if server.catalog_url is None:  # the embedded store keeps the operator key beside it
        assert "signature does not verify" in problem["detail"]
