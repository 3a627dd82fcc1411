"""Clients that write through every face while ``cairn serve`` may be killed, and check afterwards.

Each worker keeps a ledger of what the server *acknowledged* (a 201 for a
blob or manifest, a Write stream's commit response, a Push response's CID, a
Warg record reported published) and of what it only *attempted*. After the
server restarts, :meth:`check` proves the acknowledged writes are all there,
byte for byte, and that nothing attempted is half-visible: a blob is absent or
whole, a tag never points at a missing manifest, an interrupted upload session
or ingest either resumes from its stored offset to the right digest or is gone,
and the Warg log verifies (inclusion and consistency proofs) in a client that
remembers the checkpoints it verified before each kill.

Workers run in threads and stop at the first error once the test has said the
server is being killed; an error before that is a real failure and is raised
from :meth:`Worker.join`.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import requests
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as cpb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as cpb_grpc
from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as spb_grpc
from cairn.core.errors import CairnError, NotFoundError
from cairn.directory.canonical import canonical_json
from cairn.warg.client import WargClient, create_key, load_key
from cairn.warg.hashes import AnyHash
from tests.conftest import CairnServer
from tests.faults import ReliabilityFigures

__all__ = ["ContentWorker", "DirectoryWorker", "OciWorker", "WargWorker", "Worker", "wait_for_warg"]

NS = (("containerd-namespace", "default"),)
TIMEOUT = 30.0
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def wait_for_warg(server: CairnServer, timeout: float = 20.0) -> None:
    """The Warg face answers once its checkpoint exists (a restarted server may take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server.http_url}/v1/fetch/checkpoint", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the Warg face did not answer after a restart:\n{server.log()}")


class Worker:
    """One client thread writing until the server dies or ``stop`` is set; subclasses do one face."""

    kind = "worker"

    def __init__(self, server: CairnServer, rng: random.Random, figures: ReliabilityFigures) -> None:
        self.server = server
        self.rng = rng
        self.figures = figures
        self.killing = threading.Event()  # set by the test just before SIGKILL
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.checked: set[str] = set()
        self._first = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.killing.clear()
        self.stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, name=self.kind, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.open()
            while not self.stop.is_set() and not self.killing.is_set():
                self.write_one()
        except BaseException as exc:  # noqa: BLE001 - judged in join(): fine only if the kill caused it
            if not self.killing.is_set():
                self.error = exc
        finally:
            self.close()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(TIMEOUT * 2)
        assert not self._thread.is_alive(), f"{self.kind} worker did not stop after the kill"
        if self.error is not None:
            raise AssertionError(f"{self.kind} worker failed while the server was up: {self.error!r}") from self.error

    def open(self) -> None:
        """Per-run setup (channels, sessions)."""

    def close(self) -> None:
        """Per-run teardown."""

    def write_one(self) -> None:
        raise NotImplementedError

    def check(self, full: bool = False) -> None:
        """After a restart: every acknowledged write is there, nothing attempted is half-visible.

        Writes verified after an earlier kill are read again only when ``full`` (the last round),
        so a long run's checks grow with the round's writes, not with the store.
        """
        raise NotImplementedError

    def fresh(self, key: str, full: bool) -> bool:
        """Whether the write ``key`` still needs reading back (and mark it read); see :meth:`verified`."""
        self._first = key not in self.checked
        self.checked.add(key)
        return self._first or full

    def verified(self, figure: str) -> None:
        """Count a write read back, once per write however often it is re-read."""
        if self._first:
            self.figures.add(figure)

    def blob(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))


# -- OCI /v2 -----------------------------------------------------------------------------------
@dataclass
class OpenSession:
    """An upload session that was cut off: its URL, the bytes meant for it and the offset acknowledged."""

    url: str
    data: bytes
    acked: int


@dataclass
class OciLedger:
    blobs: dict[str, bytes] = field(default_factory=dict)  # acknowledged: digest -> bytes
    attempted: dict[str, bytes] = field(default_factory=dict)  # sent, not acknowledged
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tag -> (digest, bytes)
    sessions: list[OpenSession] = field(default_factory=list)


class OciWorker(Worker):
    """Pushes blobs (monolithic PUT, single POST, chunked PATCH) and tagged manifests over plain HTTP."""

    kind = "oci"
    repo = "kills/app"

    def __init__(self, server: CairnServer, rng: random.Random, figures: ReliabilityFigures) -> None:
        super().__init__(server, rng, figures)
        self.ledger = OciLedger()
        self.http = requests.Session()
        self.serial = 0

    @property
    def base(self) -> str:
        return f"{self.server.http_url}/v2/{self.repo}"

    def url(self, location: str) -> str:
        return urllib.parse.urljoin(self.server.http_url, location)

    def write_one(self) -> None:
        op = self.rng.choice([self.monolithic, self.single_post, self.chunked, self.manifest])
        op()

    def _expect(self, response: requests.Response, status: int, what: str) -> requests.Response:
        if response.status_code != status:
            raise AssertionError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        return response

    def _ack(self, data: bytes) -> str:
        digest = sha256(data)
        self.ledger.attempted.pop(digest, None)
        self.ledger.blobs[digest] = data
        self.figures.add("oci_blobs_acknowledged")
        return digest

    def monolithic(self, data: bytes | None = None) -> str:
        data = data if data is not None else self.blob(1, 2 << 20)
        self.ledger.attempted.setdefault(sha256(data), data)
        start = self._expect(self.http.post(f"{self.base}/blobs/uploads/", timeout=TIMEOUT), 202, "start upload")
        target = self.url(start.headers["Location"])
        put = self.http.put(target, params={"digest": sha256(data)}, data=data, timeout=TIMEOUT,
                            headers={"Content-Type": "application/octet-stream"})
        self._expect(put, 201, "monolithic PUT")
        return self._ack(data)

    def single_post(self) -> None:
        data = self.blob(1, 200 << 10)
        self.ledger.attempted.setdefault(sha256(data), data)
        post = self.http.post(f"{self.base}/blobs/uploads/", params={"digest": sha256(data)}, data=data,
                              timeout=TIMEOUT, headers={"Content-Type": "application/octet-stream"})
        self._expect(post, 201, "single POST")
        self._ack(data)

    def chunked(self) -> None:
        data = self.blob(1 << 20, 4 << 20)
        self.ledger.attempted.setdefault(sha256(data), data)
        start = self._expect(self.http.post(f"{self.base}/blobs/uploads/", timeout=TIMEOUT), 202, "start upload")
        session = OpenSession(self.url(start.headers["Location"]), data, 0)
        self.ledger.sessions.append(session)
        piece = self.rng.choice([64 << 10, 512 << 10, 1 << 20])
        for offset in range(0, len(data), piece):
            chunk = data[offset : offset + piece]
            patch = self.http.patch(
                session.url, data=chunk, timeout=TIMEOUT,
                headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                         "Content-Type": "application/octet-stream"},
            )
            self._expect(patch, 202, "PATCH chunk")
            session.url = self.url(patch.headers["Location"])
            session.acked = int(patch.headers["Range"].split("-")[1]) + 1
            assert session.acked == offset + len(chunk), f"PATCH acknowledged {patch.headers['Range']}"
        put = self.http.put(session.url, params={"digest": sha256(data)}, timeout=TIMEOUT)
        self._expect(put, 201, "closing PUT")
        self.ledger.sessions.remove(session)
        self._ack(data)

    def manifest(self) -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": self.rng.random()}).encode()
        layer = self.blob(1, 1 << 20)
        self.monolithic(config)
        self.monolithic(layer)
        body = json.dumps({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": sha256(layer), "size": len(layer)}],
        }).encode()
        self.serial += 1
        tag = f"t{self.rng.randrange(1 << 30):x}-{self.serial}"
        put = self.http.put(f"{self.base}/manifests/{tag}", data=body, timeout=TIMEOUT,
                            headers={"Content-Type": MANIFEST_TYPE})
        self._expect(put, 201, f"manifest PUT {tag}")
        assert put.headers["Docker-Content-Digest"] == sha256(body)
        self.ledger.manifests[tag] = (sha256(body), body)
        self.figures.add("oci_manifests_acknowledged")

    # -- after the restart
    def check(self, full: bool = False) -> None:
        http = requests.Session()
        for digest, data in self.ledger.blobs.items():
            if not self.fresh(digest, full):
                continue
            got = http.get(f"{self.base}/blobs/{digest}", timeout=TIMEOUT)
            assert got.status_code == 200 and got.content == data, f"acknowledged blob {digest}: {got.status_code}"
            self.verified("oci_blobs_verified")
        for digest, data in list(self.ledger.attempted.items()):
            got = http.get(f"{self.base}/blobs/{digest}", timeout=TIMEOUT)
            assert got.status_code in (200, 404), f"unacknowledged blob {digest}: HTTP {got.status_code}"
            if got.status_code == 200:
                assert got.content == data, f"unacknowledged blob {digest} is readable with other bytes"
                self.figures.add("oci_unacknowledged_blobs_complete")
            else:
                self.figures.add("oci_unacknowledged_blobs_absent")
        self.ledger.attempted.clear()
        for tag, (digest, body) in self.ledger.manifests.items():
            if not self.fresh(tag, full):
                continue
            for ref in (tag, digest):
                got = http.get(f"{self.base}/manifests/{ref}", headers={"Accept": MANIFEST_TYPE}, timeout=TIMEOUT)
                assert got.status_code == 200 and got.content == body, f"acknowledged manifest {ref}"
            self.verified("oci_manifests_verified")
        check_tags(http, self.server, self.repo)
        self._resume_sessions(http)

    def _resume_sessions(self, http: requests.Session) -> None:
        """An interrupted session reports an offset it really holds and finishes, or is gone (404)."""
        for session in self.ledger.sessions:
            status = http.get(session.url, timeout=TIMEOUT)
            if status.status_code == 404:
                self.figures.add("oci_sessions_gone")
                continue
            assert status.status_code == 204, f"upload session {session.url}: HTTP {status.status_code}"
            offset = int(status.headers["Range"].split("-")[1]) + 1 if status.headers["Range"] != "0-0" else 0
            assert session.acked <= offset <= len(session.data) or (session.acked == 1 and offset == 0), (
                f"session {session.url} reports offset {offset}, acknowledged {session.acked} of {len(session.data)}"
            )
            rest = session.data[offset:]
            put = http.put(
                self.url(status.headers["Location"]), params={"digest": sha256(session.data)}, data=rest,
                headers={"Content-Range": f"{offset}-{len(session.data) - 1}",
                         "Content-Type": "application/octet-stream"} if rest else {},
                timeout=TIMEOUT,
            )
            assert put.status_code == 201, f"resuming {session.url} at {offset}: {put.status_code} {put.text[:300]}"
            got = http.get(f"{self.base}/blobs/{sha256(session.data)}", timeout=TIMEOUT)
            assert got.content == session.data
            self.ledger.blobs[sha256(session.data)] = session.data
            self.figures.add("oci_sessions_resumed")
        self.ledger.sessions.clear()


def check_tags(http: requests.Session, server: CairnServer, repo: str) -> int:
    """Every tag of ``repo`` resolves to a manifest whose config and layers are readable and whole."""
    listed = http.get(f"{server.http_url}/v2/{repo}/tags/list", timeout=TIMEOUT)
    if listed.status_code == 404:
        return 0
    assert listed.status_code == 200, f"tags of {repo}: HTTP {listed.status_code}"
    tags = listed.json().get("tags") or []
    for tag in tags:
        got = http.get(f"{server.http_url}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPE},
                       timeout=TIMEOUT)
        assert got.status_code == 200, f"tag {repo}:{tag} points at a missing manifest ({got.status_code})"
        assert got.headers["Docker-Content-Digest"] == sha256(got.content)
        manifest = json.loads(got.content)
        for descriptor in [manifest["config"], *manifest.get("layers", [])]:
            blob = http.get(f"{server.http_url}/v2/{repo}/blobs/{descriptor['digest']}", timeout=TIMEOUT)
            assert blob.status_code == 200, f"{repo}:{tag} names {descriptor['digest']}, HTTP {blob.status_code}"
            assert len(blob.content) == descriptor["size"] and sha256(blob.content) == descriptor["digest"]
    return len(tags)


# -- containerd content ----------------------------------------------------------------------------
class ContentWorker(Worker):
    """containerd content ingests: Write streams (STAT, WRITE..., COMMIT) over the unix socket."""

    kind = "content"

    def __init__(self, server: CairnServer, rng: random.Random, figures: ReliabilityFigures) -> None:
        super().__init__(server, rng, figures)
        self.acked: dict[str, bytes] = {}
        self.attempted: dict[str, bytes] = {}  # ref -> bytes
        self.channel: grpc.Channel | None = None

    def open(self) -> None:
        self.channel = grpc.insecure_channel(f"unix:{self.server.socket}")

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def write_one(self) -> None:
        assert self.channel is not None
        data = self.blob(1, 4 << 20)
        ref = f"kill-{self.rng.randrange(1 << 40):x}"
        self.attempted[ref] = data
        requests_: queue.Queue[cpb.WriteContentRequest | None] = queue.Queue()
        responses = cpb_grpc.ContentStub(self.channel).Write(iter(requests_.get, None), metadata=NS)
        piece = 1 << 20
        try:
            requests_.put(cpb.WriteContentRequest(action=cpb.STAT, ref=ref, total=len(data)))
            next(responses)
            for offset in range(0, len(data), piece):
                requests_.put(cpb.WriteContentRequest(action=cpb.WRITE, ref=ref, offset=offset,
                                                      data=data[offset : offset + piece]))
                next(responses)
            requests_.put(cpb.WriteContentRequest(action=cpb.COMMIT, ref=ref, offset=len(data), total=len(data),
                                                  expected=sha256(data)))
            final = next(responses)
        finally:
            requests_.put(None)
        assert final.digest == sha256(data), f"commit of {ref} answered {final.digest}"
        del self.attempted[ref]
        self.acked[sha256(data)] = data
        self.figures.add("content_ingests_acknowledged")

    def check(self, full: bool = False) -> None:
        with grpc.insecure_channel(f"unix:{self.server.socket}") as channel:
            stub = cpb_grpc.ContentStub(channel)
            for digest, data in self.acked.items():
                if not self.fresh(digest, full):
                    continue
                assert read_content(stub, digest) == data, f"acknowledged content {digest}"
                self.verified("content_ingests_verified")
            statuses = {s.ref: s for s in stub.ListStatuses(cpb.ListStatusesRequest(), metadata=NS).statuses}
            for ref, data in self.attempted.items():
                self._settle(stub, ref, data, statuses.pop(ref, None))
            assert not statuses, f"ingests nobody started: {sorted(statuses)}"
        self.attempted.clear()

    def _settle(self, stub: cpb_grpc.ContentStub, ref: str, data: bytes, status: Any) -> None:
        """A cut-off ingest is committed whole, resumes from its offset to the right digest, or never began."""
        digest = sha256(data)
        try:
            info = stub.Info(cpb.InfoRequest(digest=digest), metadata=NS).info
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
            info = None
        if info is not None:
            assert status is None, f"ingest {ref} stays active after its blob was committed"
            assert info.size == len(data) and read_content(stub, digest) == data
            self.acked[digest] = data
            self.figures.add("content_unacknowledged_committed")
            return
        if status is None:
            self.figures.add("content_unacknowledged_absent")
            return
        assert 0 <= status.offset <= len(data), f"ingest {ref} at offset {status.offset} of {len(data)}"
        resume = [cpb.WriteContentRequest(action=cpb.STAT, ref=ref)]
        resume += [cpb.WriteContentRequest(action=cpb.WRITE, ref=ref, offset=o, data=data[o : o + (1 << 20)])
                   for o in range(status.offset, len(data), 1 << 20)]
        resume.append(cpb.WriteContentRequest(action=cpb.COMMIT, ref=ref, offset=len(data), total=len(data),
                                              expected=digest))
        final = list(stub.Write(iter(resume), metadata=NS))[-1]
        assert final.digest == digest and read_content(stub, digest) == data
        self.acked[digest] = data
        self.figures.add("content_ingests_resumed")


def read_content(stub: cpb_grpc.ContentStub, digest: str) -> bytes:
    return b"".join(r.data for r in stub.Read(cpb.ReadContentRequest(digest=digest), metadata=NS))


# -- Directory records -------------------------------------------------------------------------------
class DirectoryWorker(Worker):
    """store.v1 Push of one record per stream over gRPC TCP; a CID in the answer is the acknowledgement."""

    kind = "directory"

    def __init__(self, server: CairnServer, rng: random.Random, figures: ReliabilityFigures) -> None:
        super().__init__(server, rng, figures)
        self.acked: dict[str, bytes] = {}  # cid -> canonical JSON
        self.channel: grpc.Channel | None = None

    def open(self) -> None:
        self.channel = grpc.insecure_channel(self.server.grpc_addr)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def _document(self) -> dict[str, Any]:
        n = self.rng.randrange(1 << 40)
        return {
            "name": f"agent-{n:x}",
            "version": f"v1.{self.rng.randrange(100)}.0",
            "schema_version": "0.7.0",
            "created_at": "2026-11-22T00:00:00Z",
            "description": self.rng.randbytes(self.rng.randint(1, 2000)).hex(),
            "annotations": {"kill": str(n)},
        }

    def write_one(self) -> None:
        assert self.channel is not None
        document = self._document()
        data = Struct()
        data.update(document)
        [answer] = list(spb_grpc.StoreServiceStub(self.channel).Push(iter([record_pb2.Record(data=data)]),
                                                                      timeout=TIMEOUT))
        self.acked[answer.cid] = canonical_json(document)
        self.figures.add("directory_records_acknowledged")

    def check(self, full: bool = False) -> None:
        with grpc.insecure_channel(self.server.grpc_addr) as channel:
            stub = spb_grpc.StoreServiceStub(channel)
            for cid, canonical in self.acked.items():
                if not self.fresh(cid, full):
                    continue
                [pulled] = stub.Pull(iter([record_pb2.RecordRef(cid=cid)]), timeout=TIMEOUT)
                assert canonical_json(json_format.MessageToDict(pulled.data)) == canonical, f"record {cid}"
                self.verified("directory_records_verified")
        check_tags(requests.Session(), self.server, "dir")


# -- Warg publishes ------------------------------------------------------------------------------------
class WargWorker(Worker):
    """Publishes releases with content through the cairn Warg client, one fresh package per round.

    A separate monitor state (kept across every kill) re-verifies the whole log
    after each restart: its update proves the new checkpoint consistent with
    the one it verified before the kill, and every package record included.
    """

    kind = "warg"

    def __init__(self, server: CairnServer, rng: random.Random, figures: ReliabilityFigures, state: Path) -> None:
        super().__init__(server, rng, figures)
        self.state = state
        self.key_file = state / "publisher.key"
        create_key(self.key_file)
        self.releases: dict[str, dict[str, bytes]] = {}  # package -> version -> content (acknowledged)
        self.round = 0
        self.client: WargClient | None = None
        self.package = ""
        self.next_version = 0

    def open(self) -> None:
        self.round += 1
        self.package = f"cairn:kill-r{self.round}"
        self.next_version = 0
        wait_for_warg(self.server)
        self.client = WargClient(self.server.http_url, self.state / "publisher", load_key(self.key_file),
                                 timeout=TIMEOUT, publish_timeout=TIMEOUT)
        self.client.publish_init(self.package)
        self.releases[self.package] = {}
        self.figures.add("warg_packages_initialised")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def write_one(self) -> None:
        assert self.client is not None
        self.next_version += 1
        version = f"1.0.{self.next_version}"
        content = b"\0asm\1\0\0\0" + self.blob(1, 1 << 20)
        path = self.state / "release.wasm"
        path.write_bytes(content)
        self.client.publish_release(self.package, version, path)
        self.releases[self.package][version] = content
        self.figures.add("warg_releases_acknowledged")

    def check(self, full: bool = False) -> None:
        wait_for_warg(self.server)
        with WargClient(self.server.http_url, self.state / "monitor", timeout=TIMEOUT) as monitor:
            monitor.update(list(self.releases))  # consistency with the last verified checkpoint + inclusion
            self.figures.add("warg_log_verifications")
            for package, versions in self.releases.items():
                if not self.fresh(package, full):
                    continue
                track = monitor.package(package)
                for version, content in versions.items():
                    release = track.state.releases.get(version)
                    assert release is not None, f"acknowledged release {package}@{version} is not in the log"
                    assert release.content == AnyHash.of(content), f"{package}@{version} content"
                    self.verified("warg_releases_verified")
                for version in track.state.releases:
                    if version not in versions:  # published, though its publish was cut off
                        self.verified("warg_unacknowledged_published")
                    downloaded = self.state / "download.wasm"
                    try:
                        monitor.download(package, version, downloaded)
                    except NotFoundError as exc:
                        raise AssertionError(f"published {package}@{version} has no content: {exc}") from exc
                    if version in versions:
                        assert downloaded.read_bytes() == versions[version]
                    self.verified("warg_contents_verified")
        if full:
            self.verify_fresh()

    def verify_fresh(self) -> None:
        """A client with no state verifies the whole log from scratch (the monitor did it step by step)."""
        try:
            with WargClient(self.server.http_url, self.state / f"fresh-{self.round}", timeout=TIMEOUT) as fresh:
                fresh.update(list(self.releases))
        except CairnError as exc:
            raise AssertionError(f"a fresh Warg client cannot verify the log: {exc}") from exc
