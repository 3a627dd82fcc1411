"""A bounded load test: many concurrent clients on loopback for a fixed time, no 5xx, bounded memory.

``CLIENTS`` threads share one ``cairn serve`` for ``DURATION`` seconds (``CAIRN_SLOW=1``:
``SLOW_DURATION``), each looping over a mix of what real clients do: OCI blob pushes
(single POST) and pulls, manifest puts and gets, tag lists, Warg checkpoint and log
fetches, and gRPC content reads of the pushed blobs. Every request must get its
expected answer (no 5xx, no gRPC INTERNAL or UNKNOWN, and no other failure); the
requests are counted. A sampler reads the server's ``VmRSS`` from
``/proc/<pid>/status`` twice a second: it must stay under ``RSS_LIMIT`` and must not
grow from the middle of the run to the end by more than ``RSS_GROWTH`` (memory is
bounded, not leaking per request).

Every loop is bounded in time (the deadline) and count (``MAX_REQUESTS_PER_CLIENT``);
pushes reuse a fixed pool of ``BLOBS`` blobs and ``TAGS`` tags so the store stays small.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import requests
from requests.adapters import HTTPAdapter

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.conftest import CairnServer

SLOW = bool(os.environ.get("CAIRN_SLOW"))
CLIENTS = 64
DURATION = 20.0
SLOW_DURATION = 180.0
MAX_REQUESTS_PER_CLIENT = 200_000
BLOBS = 64
TAGS = 16
REPOSITORIES = 8
RSS_LIMIT = 512 << 20
RSS_GROWTH = 64 << 20
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: Figures of the last run, for docs/reliability.md (printed by the test).
FIGURES: dict[str, object] = {}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class Tally:
    """Requests per kind and every unexpected answer, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def record(self, kind: str, ok: bool, what: str) -> None:
        with self.lock:
            self.done[kind] += 1
            if not ok and len(self.failures) < 50:
                self.failures.append(f"{kind}: {what}")


@dataclass
class Pool:
    """The fixed set of blobs, manifests and repositories the clients push and read."""

    blobs: list[bytes]
    config: bytes = b"{}"

    def manifest(self, index: int) -> bytes:
        layer = self.blobs[index % len(self.blobs)]
        return json.dumps({
            "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(self.config),
                       "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                        "size": len(layer)}],
        }).encode()


def _session() -> requests.Session:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0))
    return session


def _seed(base: str, pool: Pool) -> None:
    """Every repository holds the config and every blob, so manifest puts always find their blobs."""
    http = _session()
    for r in range(REPOSITORIES):
        for data in [pool.config, *pool.blobs]:
            answer = http.post(f"{base}/v2/load/r{r}/blobs/uploads/", params={"digest": _digest(data)}, data=data,
                               timeout=30)
            assert answer.status_code == 201, answer.text
        answer = http.put(f"{base}/v2/load/r{r}/manifests/t0", data=pool.manifest(0),
                          headers={"Content-Type": MEDIA_MANIFEST}, timeout=30)
        assert answer.status_code == 201, answer.text


def _client(seed: int, base: str, grpc_addr: str, pool: Pool, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    http = _session()
    with grpc.insecure_channel(grpc_addr) as channel:
        content = pb_grpc.ContentStub(channel)
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            repo = f"load/r{rng.randrange(REPOSITORIES)}"
            index = rng.randrange(BLOBS)
            blob = pool.blobs[index]
            kind = rng.choice(["blob-push", "blob-pull", "blob-pull", "manifest-put", "manifest-get",
                               "manifest-get", "tags-list", "warg-checkpoint", "warg-logs", "grpc-read"])
            try:
                _one(kind, http, content, base, repo, index, blob, pool, tally)
            except (requests.RequestException, grpc.RpcError) as exc:
                tally.record(kind, False, f"{exc.__class__.__name__}: {exc}"[:300])


def _one(kind: str, http: requests.Session, content: pb_grpc.ContentStub, base: str, repo: str, index: int,
         blob: bytes, pool: Pool, tally: Tally) -> None:
    v2 = f"{base}/v2/{repo}"
    if kind == "blob-push":
        answer = http.post(f"{v2}/blobs/uploads/", params={"digest": _digest(blob)}, data=blob, timeout=30)
        tally.record(kind, answer.status_code == 201, f"{answer.status_code} {answer.text[:200]}")
    elif kind == "blob-pull":
        answer = http.get(f"{v2}/blobs/{_digest(blob)}", timeout=30)
        tally.record(kind, answer.status_code == 200 and answer.content == blob, f"{answer.status_code}")
    elif kind == "manifest-put":
        answer = http.put(f"{v2}/manifests/t{index % TAGS}", data=pool.manifest(index),
                          headers={"Content-Type": MEDIA_MANIFEST}, timeout=30)
        tally.record(kind, answer.status_code == 201, f"{answer.status_code} {answer.text[:200]}")
    elif kind == "manifest-get":
        answer = http.get(f"{v2}/manifests/t0", timeout=30)
        tally.record(kind, answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}")
    elif kind == "tags-list":
        answer = http.get(f"{v2}/tags/list", params={"n": "10"}, timeout=30)
        tally.record(kind, answer.status_code == 200 and "t0" in answer.json()["tags"], f"{answer.status_code}")
    elif kind == "warg-checkpoint":
        answer = http.get(f"{base}/v1/fetch/checkpoint", timeout=30)
        tally.record(kind, answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}")
    elif kind == "warg-logs":
        answer = http.post(f"{base}/v1/fetch/logs", json={"logLength": 1, "operator": None, "packages": {}},
                           timeout=30)
        tally.record(kind, answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}")
    else:
        chunks = content.Read(pb.ReadContentRequest(digest=_digest(blob)), timeout=30,
                              metadata=[("containerd-namespace", "registry")])
        data = b"".join(c.data for c in chunks)
        tally.record(kind, data == blob, f"read {len(data)} of {len(blob)} bytes")


def test_concurrent_clients_get_no_5xx_and_memory_stays_bounded(
    cairn_server: CairnServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cairn_server.proc is not None
    pid = cairn_server.proc.pid
    rng = random.Random(8)
    pool = Pool([rng.randbytes(rng.choice([512, 4096, 65536, 262144])) for _ in range(BLOBS)])
    _seed(cairn_server.http_url, pool)
    duration = SLOW_DURATION if SLOW else DURATION
    tally = Tally()
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    deadline = start + duration
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.monotonic() - start, _rss(pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [
        threading.Thread(target=_client, args=(i, cairn_server.http_url, cairn_server.grpc_addr, pool, deadline,
                                               tally), daemon=True)
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 120)
    stop.set()
    sampler.join(timeout=5)
    assert not any(t.is_alive() for t in threads), "a client did not finish within its deadline"
    elapsed = time.monotonic() - start
    assert cairn_server.proc.poll() is None, f"cairn serve died:\n{cairn_server.log()[-4000:]}"

    total = sum(tally.done.values())
    rss = [value for _, value in samples]
    middle = [value for t, value in samples if t <= duration / 2]
    second_half = [value for t, value in samples if t > duration / 2]
    FIGURES.update(requests=total, seconds=round(elapsed, 1), per_second=round(total / elapsed),
                   kinds=dict(tally.done), rss_peak_mib=max(rss) >> 20, rss_mid_mib=middle[-1] >> 20,
                   rss_end_mib=rss[-1] >> 20, clients=CLIENTS)
    with capsys.disabled():
        print(f"\nload test: {json.dumps(FIGURES)}")
    assert tally.failures == [], f"{len(tally.failures)} failed requests, e.g.:\n" + "\n".join(tally.failures[:10])
    assert set(tally.done) == {"blob-push", "blob-pull", "manifest-put", "manifest-get", "tags-list",
                               "warg-checkpoint", "warg-logs", "grpc-read"}
    assert total >= CLIENTS * 5, f"only {total} requests in {elapsed:.0f} s"
    assert max(rss) < RSS_LIMIT, f"server RSS peaked at {max(rss) >> 20} MiB"
    assert max(second_half) - middle[-1] < RSS_GROWTH, (
        f"server RSS grew from {middle[-1] >> 20} MiB mid-run to {max(second_half) >> 20} MiB"
    )


pytestmark = pytest.mark.timeout(SLOW_DURATION + 300 if SLOW else DURATION + 240)
