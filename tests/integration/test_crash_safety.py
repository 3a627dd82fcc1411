"""``kill -9`` of ``cairn serve`` mid-ingest and mid-commit loses nothing and shows nothing half-done.

After every kill and restart: each blob file hashes to its name, each catalog
name points at a blob of the recorded size, and the interrupted ingest is
either committed to the right digest or still resumable (or abortable).
Randomised delays hit different points of the write and commit paths; the
count grows with CAIRN_SLOW=1.
"""

from __future__ import annotations

import hashlib
import os
import queue
import random
import threading
import time

import grpc
import pytest

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.conftest import CairnServer
from tests.faults import CHUNK, verify_store

NS = (("containerd-namespace", "default"),)
ROUNDS = 12 if os.environ.get("CAIRN_SLOW") else 3


class Feeder:
    """A Write stream the test feeds request by request, reading each response."""

    def __init__(self, stub: pb_grpc.ContentStub) -> None:
        self.requests: queue.Queue[pb.WriteContentRequest | None] = queue.Queue()
        self.responses = stub.Write(iter(self.requests.get, None), metadata=NS)

    def send(self, request: pb.WriteContentRequest) -> pb.WriteContentResponse:
        self.requests.put(request)
        return next(self.responses)  # type: ignore[no-any-return]


def _stream_in_background(server: CairnServer, ref: str, data: bytes, commit: bool) -> threading.Thread:
    def run() -> None:
        try:
            with grpc.insecure_channel(f"unix:{server.socket}") as channel:
                feeder = Feeder(pb_grpc.ContentStub(channel))
                feeder.send(pb.WriteContentRequest(action=pb.STAT, ref=ref, total=len(data)))
                for offset in range(0, len(data), CHUNK):
                    feeder.send(pb.WriteContentRequest(action=pb.WRITE, ref=ref, offset=offset,
                                                       data=data[offset : offset + CHUNK]))
                if commit:
                    feeder.send(pb.WriteContentRequest(action=pb.COMMIT, ref=ref, offset=len(data),
                                                       total=len(data)))
        except grpc.RpcError:
            pass  # the server was killed under us: expected

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _finish_or_find(server: CairnServer, ref: str, data: bytes) -> str:
    """After a restart: the blob is committed, or the ingest resumes to the right digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with grpc.insecure_channel(f"unix:{server.socket}") as channel:
        stub = pb_grpc.ContentStub(channel)
        statuses = {s.ref: s for s in stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses}
        try:
            info = stub.Info(pb.InfoRequest(digest=digest), metadata=NS).info
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            info = None
        if info is not None:
            assert ref not in statuses, "a committed ingest must not stay active"
            assert info.size == len(data)
            return "committed"
        if ref not in statuses:
            return "never-started"  # killed before the ingest was created
        offset = statuses[ref].offset
        assert 0 <= offset <= len(data)
        requests = [
            pb.WriteContentRequest(action=pb.STAT, ref=ref),
            *[
                pb.WriteContentRequest(action=pb.WRITE, ref=ref, offset=o, data=data[o : o + CHUNK])
                for o in range(offset, len(data), CHUNK)
            ],
            pb.WriteContentRequest(action=pb.COMMIT, ref=ref, offset=len(data), total=len(data),
                                   expected=digest),
        ]
        final = list(stub.Write(iter(requests), metadata=NS))[-1]
        assert final.digest == digest
        read = b"".join(r.data for r in stub.Read(pb.ReadContentRequest(digest=digest), metadata=NS))
        assert read == data
        return "resumed"


@pytest.mark.embedded_only
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_during_large_ingest(cairn_server: CairnServer, round_: int) -> None:
    data = random.randbytes(96 * CHUNK)
    thread = _stream_in_background(cairn_server, "big", data, commit=False)
    time.sleep(random.uniform(0.05, 0.5))
    cairn_server.kill()
    thread.join(30)
    verify_store(cairn_server.data_dir)
    cairn_server.start()
    verify_store(cairn_server.data_dir)
    assert _finish_or_find(cairn_server, "big", data) in ("resumed", "never-started")
    verify_store(cairn_server.data_dir)


@pytest.mark.embedded_only
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_kill_during_commit(cairn_server: CairnServer, round_: int) -> None:
    data = random.randbytes(48 * CHUNK)
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        feeder = Feeder(pb_grpc.ContentStub(channel))
        for offset in range(0, len(data), CHUNK):
            feeder.send(pb.WriteContentRequest(action=pb.WRITE, ref="c", offset=offset,
                                               data=data[offset : offset + CHUNK]))
        feeder.requests.put(pb.WriteContentRequest(action=pb.COMMIT, ref="c", offset=len(data)))
        time.sleep(random.uniform(0, 0.06))
        cairn_server.kill()
    verify_store(cairn_server.data_dir)
    cairn_server.start()
    assert _finish_or_find(cairn_server, "c", data) in ("committed", "resumed")
    verify_store(cairn_server.data_dir)


@pytest.mark.embedded_only
def test_killed_ingest_can_be_aborted(cairn_server: CairnServer) -> None:
    data = random.randbytes(32 * CHUNK)
    thread = _stream_in_background(cairn_server, "abandon", data, commit=False)
    deadline = time.monotonic() + 20
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        stub = pb_grpc.ContentStub(channel)
        while time.monotonic() < deadline:
            statuses = stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses
            if statuses and statuses[0].offset > 0:
                break
            time.sleep(0.01)
    cairn_server.kill()
    thread.join(30)
    cairn_server.start()
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        stub = pb_grpc.ContentStub(channel)
        stub.Abort(pb.AbortRequest(ref="abandon"), metadata=NS)
        assert stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses == []
    assert list((cairn_server.data_dir / "content" / "ingest").iterdir()) == []
    verify_store(cairn_server.data_dir)


def test_graceful_shutdown_keeps_open_ingest_resumable(cairn_server: CairnServer) -> None:
    data = random.randbytes(8 * CHUNK)
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        feeder = Feeder(pb_grpc.ContentStub(channel))
        for offset in range(0, 4 * CHUNK, CHUNK):
            feeder.send(pb.WriteContentRequest(action=pb.WRITE, ref="open", offset=offset,
                                               data=data[offset : offset + CHUNK]))
        started = time.monotonic()
        assert cairn_server.stop() == 0
        assert time.monotonic() - started < 10
        feeder.requests.put(None)
    cairn_server.start()
    assert _finish_or_find(cairn_server, "open", data) == "resumed"
