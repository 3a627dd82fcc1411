"""Several ``cairn serve`` replicas on one PostgreSQL catalog and one S3 bucket.

Each replica is a real process with its own data directory and ports; they share
``--catalog``, ``--content`` and the Warg operator key, as docs/operations.md says to
deploy them. Clients are the real ones (``ctr``, HTTP for ``/v2/`` and Warg ``/v1/``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import requests

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from cairn.warg import merkle_log
from cairn.warg.ids import package_log_id
from tests.conftest import BACKENDS, Backend, CairnServer, open_backend, require_binary
from tests.integration.test_content_api_errors import NS, HeldStream
from tests.integration.test_warg_api import Api, init, release
from tests.s3 import PART_SIZE, S3Server

MIB = 1 << 20
pytestmark = pytest.mark.skipif("scaled" not in BACKENDS, reason="CAIRN_TEST_BACKENDS leaves out scaled")
#: The test servers' part size: what a killed replica keeps is a multiple of it.
PART = PART_SIZE


@pytest.fixture
def scaled(request: pytest.FixtureRequest) -> Iterator[Backend]:
    backend = open_backend(request, "scaled")
    yield backend
    backend.close()


class Replicas:
    """Replicas sharing the first one's catalog, bucket and Warg operator key."""

    def __init__(self, backend: Backend, root: Path, extra_args: list[str] | None = None) -> None:
        self.root = root
        self.extra_args = extra_args or []
        self.servers: list[CairnServer] = []
        first = backend.server(root / "r0", extra_args=list(self.extra_args))
        self._start(first)

    def _start(self, server: CairnServer) -> CairnServer:
        server.start()
        self.servers.append(server)
        return server

    def add(self) -> CairnServer:
        first = self.servers[0]
        key = first.data_dir / "warg-operator.key"
        return self._start(
            CairnServer(
                self.root / f"r{len(self.servers)}",
                catalog_url=first.catalog_url,
                content_url=first.content_url,
                extra_env=first.extra_env,
                extra_args=[*self.extra_args, "--warg-operator-key-file", str(key)],
            )
        )

    def close(self) -> None:
        for server in self.servers:
            try:
                server.stop()
            finally:
                server.kill()


@pytest.fixture
def replicas(scaled: Backend, short_tmp: Path) -> Iterator[Replicas]:
    group = Replicas(scaled, short_tmp, ["--warg-namespaces", "test"])
    group.add()
    yield group
    group.close()


def ctr(server: CairnServer, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [require_binary("ctr"), "-a", str(server.socket), *args], capture_output=True, timeout=300, check=False,
        **kwargs,
    )


def ingest_offset(server: CairnServer, ref: str) -> int | None:
    with grpc.insecure_channel(f"unix:{server.socket}") as channel:
        try:
            return int(pb_grpc.ContentStub(channel).Status(pb.StatusRequest(ref=ref), metadata=NS).status.offset)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their sha256 digest."""
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size // (64 * MIB)):
            chunk = os.urandom(64 * MIB)
            hasher.update(chunk)
            f.write(chunk)
    return "sha256:" + hasher.hexdigest()


def test_ingest_of_a_killed_replica_is_resumed_and_committed_on_another(
    replicas: Replicas, s3_server: S3Server, short_tmp: Path
) -> None:
    a, b = replicas.servers
    size = 1 << 30
    source = short_tmp / "big"
    digest = random_file(source, size)
    args = ["content", "ingest", "--expected-size", str(size), "--expected-digest", digest, "big-ingest"]
    with open(source, "rb") as stdin:
        first = subprocess.Popen(
            [require_binary("ctr"), "-a", str(a.socket), *args], stdin=stdin,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while (ingest_offset(b, "big-ingest") or 0) < 256 * MIB:  # B sees A's stored parts
            assert first.poll() is None, "ctr on A ended early"
            assert time.monotonic() < deadline, "the ingest on A did not get to 256 MiB"
            time.sleep(0.1)
        a.kill()
        first.wait(30)
    assert first.returncode != 0
    kept = ingest_offset(b, "big-ingest")
    assert kept is not None and kept >= 256 * MIB and kept % PART == 0  # whole parts only
    with open(source, "rb") as stdin:
        resumed = ctr(b, *args, stdin=stdin)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert ingest_offset(b, "big-ingest") is None  # committed: the ingest is gone
    with grpc.insecure_channel(f"unix:{a.socket if a.proc and a.proc.poll() is None else b.socket}") as channel:
        info = pb_grpc.ContentStub(channel).Info(pb.InfoRequest(digest=digest), metadata=NS).info
    assert info.size == size  # and the commit verified the digest ctr sent
    bucket = (a.content_url or "").split("/")[2]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert f"cairn/blobs/sha256/{digest[7:]}" in keys
    assert not [k for k in keys if k.startswith("cairn/ingests/")]  # no parts, tails or staging left


def test_second_writer_of_a_ref_on_another_replica_is_unavailable(replicas: Replicas, short_tmp: Path) -> None:
    a, b = replicas.servers
    with grpc.insecure_channel(f"unix:{a.socket}") as to_a, grpc.insecure_channel(f"unix:{b.socket}") as to_b:
        held = HeldStream(pb_grpc.ContentStub(to_a))
        assert held.send(action=pb.WRITE, ref="shared-ref", offset=0, data=b"first writer").offset == 12
        # (ctr itself would wait: containerd's client retries a locked ref until it is free.)
        second = pb_grpc.ContentStub(to_b).Write(
            iter([pb.WriteContentRequest(action=pb.WRITE, ref="shared-ref", offset=0, data=b"second")]), metadata=NS
        )
        with pytest.raises(grpc.RpcError) as refused:
            list(second)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert refused.value.details() == (
            "ref default/shared-ref locked: another writer holds it on another cairn replica"
        )
        held.send(action=pb.COMMIT, ref="shared-ref", offset=12, data=b"")
    other = short_tmp / "other"
    other.write_bytes(b"second writer")
    with open(other, "rb") as stdin:  # A let go: B may write the ref now
        assert ctr(b, "content", "ingest", "shared-ref", stdin=stdin).returncode == 0


def test_registry_push_through_one_replica_is_pulled_from_the_other(replicas: Replicas) -> None:
    a, b = replicas.servers
    http = requests.Session()
    blob = os.urandom(3 * MIB + 17)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    started = http.post(f"{a.http_url}/v2/demo/app/blobs/uploads/", timeout=30)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    path = location if location.startswith("/") else "/" + location.split("/", 3)[3]
    first = http.patch(
        a.http_url + path, data=blob[:MIB], timeout=30,
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{MIB - 1}"},
    )
    assert first.status_code == 202, first.text
    status = http.get(b.http_url + path, timeout=30)  # the session is in the shared catalog
    assert (status.status_code, status.headers["Range"]) == (204, f"0-{MIB - 1}")
    second = http.patch(
        b.http_url + path, data=blob[MIB:], timeout=30,
        headers={"Content-Type": "application/octet-stream", "Content-Range": f"{MIB}-{len(blob) - 1}"},
    )
    assert second.status_code == 202, second.text
    done = http.put(f"{b.http_url}{path}{'&' if '?' in path else '?'}digest={digest}", timeout=60)
    assert done.status_code == 201, done.text
    pulled = http.get(f"{a.http_url}/v2/demo/app/blobs/{digest}", timeout=60)
    assert (pulled.status_code, pulled.content) == (200, blob)

    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    put = http.post(f"{a.http_url}/v2/demo/app/blobs/uploads/?digest={config_digest}", data=config, timeout=30)
    assert put.status_code == 201, put.text
    manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        f'"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{len(config)}}},'
        f'"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{digest}","size":{len(blob)}}}]}}'
    ).encode()
    tagged = http.put(
        f"{a.http_url}/v2/demo/app/manifests/v1", data=manifest, timeout=30,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert tagged.status_code == 201, tagged.text
    fetched = http.get(
        f"{b.http_url}/v2/demo/app/manifests/v1", timeout=30,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert (fetched.status_code, fetched.content) == (200, manifest)
    assert fetched.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(manifest).hexdigest()
    tags = http.get(f"{b.http_url}/v2/demo/app/tags/list", timeout=30).json()
    assert tags == {"name": "demo/app", "tags": ["v1"]}


def test_concurrent_warg_publishes_on_both_replicas_make_one_verifiable_log(replicas: Replicas) -> None:
    apis = [Api(server.http_url) for server in replicas.servers]
    before = apis[0].checkpoint()["contents"]

    def publish(index: int) -> str:
        api = apis[index % 2]
        package = init(api, f"test:pkg{index}")
        for version in ("1.0.0", "1.1.0"):
            assert release(api, package, version, f"content {index} {version}".encode())["state"] == "published"
        return f"test:pkg{index}"

    with ThreadPoolExecutor(6) as pool:
        names = list(pool.map(publish, range(12)))

    deadline = time.monotonic() + 20
    while True:  # both replicas serve the latest checkpoint from the catalog
        latest = [api.checkpoint() for api in apis]
        if latest[0] == latest[1] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert latest[0] == latest[1]
    after = latest[0]["contents"]
    assert after["logLength"] == before["logLength"] + 12 * 3  # every record once, in one log

    for api in apis:
        leafs, heads = [], []
        for name in names:
            logs = api.post("fetch/logs", {"logLength": after["logLength"], "packages": {str(package_log_id(name)): None}})
            assert logs.status_code == 200, logs.text
            entries = logs.json()["packages"][str(package_log_id(name))]
            assert len(entries) == 3
            leafs += [entry["registryIndex"] for entry in entries]
            heads.append(entries[-1]["registryIndex"])
        assert sorted(leafs) == sorted(set(leafs))  # one registry index per record
        # every package's head is in the log and in the map of the latest checkpoint
        proof = api.post("proof/inclusion", {"logLength": after["logLength"], "leafs": sorted(heads)})
        assert proof.status_code == 200, proof.text
        consistency = api.post("proof/consistency", {"from": before["logLength"], "to": after["logLength"]})
        bundle = merkle_log.LogProofBundle.decode(base64.b64decode(consistency.json()["proof"]))
        old_root, new_root = merkle_log.evaluate_consistency(bundle)
        assert ("sha256:" + old_root.hex(), "sha256:" + new_root.hex()) == (before["logRoot"], after["logRoot"])


def test_a_replica_with_another_operator_key_refuses_to_start(scaled: Backend, short_tmp: Path) -> None:
    group = Replicas(scaled, short_tmp)
    try:
        first = group.servers[0]
        stranger = CairnServer(
            short_tmp / "stranger", catalog_url=first.catalog_url, content_url=first.content_url,
            extra_env=first.extra_env,
        )
        with pytest.raises(RuntimeError, match=r"(?s)exited.*operator key"):
            stranger.start()
        assert re.search("--warg-operator-key-file", stranger.log())
    finally:
        group.close()


def test_killed_replica_hands_the_warg_sequencer_over(replicas: Replicas) -> None:
    a, b = replicas.servers
    api_a, api_b = Api(a.http_url), Api(b.http_url)
    init(api_a, "test:before")
    init(api_b, "test:before-b")
    a.kill()  # whichever replica sequenced, B now must
    package = init(api_b, "test:after")
    assert release(api_b, package, "1.0.0", b"after the kill")["state"] == "published"
