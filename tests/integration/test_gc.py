"""Garbage collection against a real ``cairn serve`` with real clients (skopeo, ctr, gRPC, Warg HTTP).

``cairn gc`` runs as its own process against the server's stores while the
server serves, as an operator would run it. One server per backend serves every
test here; each test uses its own repository or namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as content_pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as content_grpc
from cairn.api.grpc.gen.containerd.services.leases.v1 import leases_pb2 as leases_pb
from cairn.api.grpc.gen.containerd.services.leases.v1 import leases_pb2_grpc as leases_grpc
from tests.conftest import Backend, CairnServer, cairn_command
from tests.integration.registry.conftest import (
    OCI_INDEX,
    REF_NAME,
    ContainerTools,
    LayoutImage,
    _image,
    assert_blobs_identical,
    canonical_json,
    registry_url,
    sha256,
)
from tests.integration.test_ctr import ctr, listed_digests
from tests.integration.test_directory_store import push as push_records
from tests.integration.test_warg_api import Api, init, release


@pytest.fixture(scope="module")
def server(cairn_backend: Backend) -> Iterator[CairnServer]:
    root = Path(tempfile.mkdtemp(prefix="cairn-gc-", dir="/tmp"))
    # No scheduled collection: every test runs `cairn gc` itself.
    server = cairn_backend.server(root / "data", extra_args=["--gc-interval-seconds", "0", "--warg-namespaces", "test"])
    server.start()
    yield server
    try:
        server.stop()
    finally:
        server.kill()


def cairn_gc(server: CairnServer, *args: str, grace: int = 0) -> dict[str, Any]:
    """``cairn gc -o json`` on the server's stores; the result object."""
    stores = ["--data-dir", str(server.data_dir)]
    if server.catalog_url:
        stores += ["--catalog", server.catalog_url]
    if server.content_url:
        stores += ["--content", server.content_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "AWS_"))}
    done = subprocess.run(
        [*cairn_command(), "gc", "-o", "json", "--gc-grace-seconds", str(grace), *stores, *args],
        capture_output=True, timeout=120, check=False, env={**env, **server.extra_env},
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def write_layout(path: Path, images: dict[str, LayoutImage]) -> None:
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for image in images.values():
        for blob in image.blobs():
            (blobs / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    (path / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (path / "index.json").write_bytes(canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [image.manifest.descriptor(annotations={REF_NAME: name}) for name, image in images.items()],
    }))


def test_deleting_a_tag_collects_exactly_its_unshared_blobs(server: CairnServer, tmp_path: Path) -> None:
    base = {"etc/base.txt": b"shared base layer\n" * 100}
    one = _image([base, {"one.txt": os.urandom(64 << 10)}], "amd64", ["/one.txt"])
    two = _image([base, {"two.txt": os.urandom(64 << 10)}], "amd64", ["/two.txt"])
    layout = tmp_path / "layout"
    write_layout(layout, {"one": one, "two": two})
    tools = ContainerTools(tmp_path / "tools")
    host = registry_url(server)
    for tag in ("one", "two"):
        tools.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                     f"docker://{host}/gc/app:{tag}")
    assert requests.delete(f"{server.http_url}/v2/gc/app/manifests/one", timeout=10).status_code == 202

    dry = cairn_gc(server, "--dry-run")
    result = cairn_gc(server)

    unshared = one.digests() - two.digests()
    assert len(unshared) == 3  # manifest, config, the second layer
    assert set(dry["deleted"]) == set(result["deleted"]) == unshared
    assert result["blobs_deleted"] == 3 and result["manifests_removed"] == 1
    assert result["bytes_freed"] == sum(b.size for b in one.blobs() if b.digest in unshared)
    for digest in unshared:
        assert requests.head(f"{server.http_url}/v2/gc/app/blobs/{digest}", timeout=10).status_code == 404
    pulled = tmp_path / "pulled"
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{host}/gc/app:two",
                 f"oci:{pulled}:two")
    assert_blobs_identical(layout, pulled, two.digests())


def test_blobs_pushed_while_gc_runs_survive(server: CairnServer, tmp_path: Path) -> None:
    image = _image([{"during.txt": os.urandom(256 << 10)}], "amd64", ["/during.txt"])
    layout = tmp_path / "layout"
    write_layout(layout, {"during": image})
    tools = ContainerTools(tmp_path / "tools")
    stop = threading.Event()
    runs: list[dict[str, Any]] = []

    def collect() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            runs.append(cairn_gc(server, grace=30))  # the grace period covers blob -> manifest

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        tools.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layout}:during",
                     f"docker://{registry_url(server)}/gc/during:v1")
    finally:
        stop.set()
        collector.join()
    assert runs
    cairn_gc(server)  # now the image is tagged: nothing of it goes even without a grace period
    pulled = tmp_path / "pulled"
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false",
                 f"docker://{registry_url(server)}/gc/during:v1", f"oci:{pulled}:v1")
    assert_blobs_identical(layout, pulled, image.digests())


def test_ctr_leases_and_gc_root_label(server: CairnServer) -> None:
    ns = "gc-ctr"
    created = ctr(server, "leases", "create", "--id", "build-1", "purpose=test", ns=ns).stdout.decode()
    assert "build-1" in created
    table = ctr(server, "leases", "ls", ns=ns).stdout.decode().splitlines()
    assert table[0].split()[:3] == ["ID", "CREATED", "AT"] and table[1].split()[0] == "build-1"
    assert "purpose=test" in table[1]

    kept, dropped = b"rooted " + os.urandom(1000), b"loose " + os.urandom(1000)
    ctr(server, "content", "ingest", "kept", stdin=kept, ns=ns)
    ctr(server, "content", "ingest", "dropped", stdin=dropped, ns=ns)
    ctr(server, "content", "label", sha256(kept), "containerd.io/gc.root=yes", ns=ns)
    # Fresh ingests are protected by the grace period ...
    assert cairn_gc(server, grace=3600)["names_removed"] == 0
    assert sorted(listed_digests(server, ns)) == sorted([sha256(kept), sha256(dropped)])
    # ... and once it is over only the labelled one stays.
    cairn_gc(server)
    assert listed_digests(server, ns) == [sha256(kept)]
    assert ctr(server, "content", "get", sha256(kept), ns=ns).stdout == kept

    ctr(server, "leases", "rm", "build-1", ns=ns)
    assert ctr(server, "leases", "ls", "-q", ns=ns).stdout.decode().split() == []
    missing = ctr(server, "leases", "rm", "build-1", ns=ns, check=False)
    assert missing.returncode != 0 and b"not found" in missing.stderr


def test_content_written_under_a_lease_is_held_until_the_lease_goes(server: CairnServer) -> None:
    ns = "gc-lease"
    data = b"leased bytes " + os.urandom(4096)
    digest = sha256(data)
    with grpc.insecure_channel(f"unix:{server.socket}") as channel:
        leases = leases_grpc.LeasesStub(channel)
        content = content_grpc.ContentStub(channel)
        meta = [("containerd-namespace", ns)]
        leases.Create(leases_pb.CreateRequest(id="hold"), metadata=meta)
        for call, code in [
            (lambda: leases.Create(leases_pb.CreateRequest(id="hold"), metadata=meta), "ALREADY_EXISTS"),
            (lambda: leases.Create(leases_pb.CreateRequest(id="bad id"), metadata=meta), "INVALID_ARGUMENT"),
            (lambda: leases.AddResource(leases_pb.AddResourceRequest(
                id="hold", resource=leases_pb.Resource(id="x", type="images")), metadata=meta), "INVALID_ARGUMENT"),
            (lambda: leases.ListResources(leases_pb.ListResourcesRequest(id="nope"), metadata=meta), "NOT_FOUND"),
            (lambda: leases.List(leases_pb.ListRequest()), "FAILED_PRECONDITION"),  # no namespace
        ]:
            with pytest.raises(grpc.RpcError) as failed:
                call()
            assert failed.value.code().name == code
        generated = leases.Create(leases_pb.CreateRequest(labels={"k": "v"}), metadata=meta).lease
        listed = leases.List(leases_pb.ListRequest(filters=['labels.k==v']), metadata=meta).leases
        assert [lease.id for lease in listed] == [generated.id] and generated.created_at.seconds > 0

        def write() -> Iterator[content_pb.WriteContentRequest]:
            yield content_pb.WriteContentRequest(action=content_pb.WRITE, ref="leased", total=len(data),
                                                 expected=digest, offset=0, data=data)
            yield content_pb.WriteContentRequest(action=content_pb.COMMIT, ref="leased", total=len(data),
                                                 expected=digest, offset=len(data))

        list(content.Write(write(), metadata=[*meta, ("containerd-lease", "hold")]))
        held = leases.ListResources(leases_pb.ListResourcesRequest(id="hold"), metadata=meta)
        assert [(r.type, r.id) for r in held.resources] == [("content", digest)]
        with pytest.raises(grpc.RpcError) as unknown:
            list(content.Write(write(), metadata=[*meta, ("containerd-lease", "nope")]))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        cairn_gc(server)
        assert content.Info(content_pb.InfoRequest(digest=digest), metadata=meta).info.size == len(data)
        leases.Delete(leases_pb.DeleteRequest(id="hold"), metadata=meta)
        cairn_gc(server)
        with pytest.raises(grpc.RpcError) as gone:
            content.Info(content_pb.InfoRequest(digest=digest), metadata=meta)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_warg_content_and_directory_records_survive(server: CairnServer) -> None:
    from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as store_grpc

    api = Api(server.http_url)
    package = init(api, "test:gc")
    wasm = b"\0asm" + os.urandom(2048)
    assert release(api, package, "1.0.0", wasm)["state"] == "published"
    with grpc.insecure_channel(server.grpc_addr) as channel:
        [cid] = push_records(store_grpc.StoreServiceStub(channel), {"name": "gc-record", "version": "v1"})

    result = cairn_gc(server)
    assert sha256(wasm) not in result["deleted"]
    [source] = api.get(f"content/{sha256(wasm)}").json()["contentSources"][sha256(wasm)]
    assert requests.get(source["url"], timeout=10).content == wasm
    with grpc.insecure_channel(server.grpc_addr) as channel:
        from cairn.api.grpc.gen.core.v1 import record_pb2

        pulled = list(store_grpc.StoreServiceStub(channel).Pull(iter([record_pb2.RecordRef(cid=cid)])))
    assert len(pulled) == 1 and pulled[0].data["name"] == "gc-record"
