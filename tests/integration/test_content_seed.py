"""The seed ``containerd.v1.Content`` service, driven by a Python gRPC client against ``cairn serve``."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Iterator

import grpc
import pytest

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as v1
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as v1_grpc
from cairn.api.grpc.gen.containerd.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.v1 import content_pb2_grpc as pb_grpc
from tests.conftest import CairnServer


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def channel(cairn_server: CairnServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(cairn_server.grpc_addr) as channel:
        yield channel


class Stream:
    """A seed Write stream fed one request at a time."""

    def __init__(self, stub: pb_grpc.ContentStub) -> None:
        self._requests: queue.Queue[pb.WriteRequest | None] = queue.Queue()
        self._responses = stub.Write(iter(self._requests.get, None))

    def send(self, **fields: object) -> pb.WriteResponse:
        self._requests.put(pb.WriteRequest(**fields))  # type: ignore[arg-type]
        return next(self._responses)  # type: ignore[no-any-return]

    def end(self) -> list[pb.WriteResponse]:
        self._requests.put(None)
        return list(self._responses)


def test_write_info_read_roundtrip(channel: grpc.Channel) -> None:
    stub = pb_grpc.ContentStub(channel)
    data = os.urandom(2 * 1024 * 1024 + 99)
    stream = Stream(stub)
    first = stream.send(action=pb.STAT, ref="seed-1", expected_size=len(data), expected_digest=sha256(data))
    assert (first.action, first.offset) == (pb.STAT, 0)
    assert first.started_at.seconds > 0
    offset = 0
    for start in range(0, len(data), 1 << 20):
        chunk = data[start : start + (1 << 20)]
        response = stream.send(action=pb.WRITE, offset=offset, data=chunk)
        offset += len(chunk)
        assert (response.action, response.offset) == (pb.WRITE, offset)
    final = stream.send(action=pb.COMMIT, offset=offset)
    assert (final.action, final.offset, final.digest) == (pb.COMMIT, len(data), sha256(data))
    assert stream.end() == []

    info = stub.Info(pb.InfoRequest(digest=sha256(data)))
    assert (info.digest, info.size) == (sha256(data), len(data))
    assert info.committed_at.seconds > 0

    whole = list(stub.Read(pb.ReadRequest(digest=sha256(data), size=0)))
    assert b"".join(r.data for r in whole) == data
    assert whole[1].offset == 1 << 20
    part = list(stub.Read(pb.ReadRequest(digest=sha256(data), offset=5, size=10)))
    assert b"".join(r.data for r in part) == data[5:15]
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.Read(pb.ReadRequest(digest=sha256(data), offset=len(data) + 1)))
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_one_message_commit_and_namespaces(channel: grpc.Channel) -> None:
    stub = pb_grpc.ContentStub(channel)
    data = b"one-shot seed write"
    responses = list(stub.Write(iter([pb.WriteRequest(action=pb.COMMIT, ref="once", data=data)])))
    assert [r.digest for r in responses] == [sha256(data)]
    # Without metadata the seed works in namespace "default": the modern service sees it there.
    modern = v1_grpc.ContentStub(channel)
    info = modern.Info(v1.InfoRequest(digest=sha256(data)), metadata=(("containerd-namespace", "default"),))
    assert info.info.size == len(data)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Info(pb.InfoRequest(digest=sha256(data)), metadata=(("containerd-namespace", "elsewhere"),))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_abort_action_frees_the_ref(channel: grpc.Channel) -> None:
    stub = pb_grpc.ContentStub(channel)
    stream = Stream(stub)
    stream.send(action=pb.WRITE, ref="doomed", offset=0, data=b"partial")
    aborted = stream.send(action=pb.ABORT)
    assert (aborted.action, aborted.digest) == (pb.ABORT, "")
    assert stream.end() == []
    fresh = list(stub.Write(iter([pb.WriteRequest(action=pb.STAT, ref="doomed")])))
    assert fresh[0].offset == 0


def test_status_watches_until_commit(channel: grpc.Channel) -> None:
    stub = pb_grpc.ContentStub(channel)
    writer = Stream(stub)
    writer.send(action=pb.WRITE, ref="watched", offset=0, data=b"a" * 100)
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def watch() -> None:
        for message in stub.Status(pb.StatusRequest(refs=["watched"]), timeout=30):
            seen.append((message.ref, message.offset))
        done.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    _wait(lambda: seen == [("watched", 100)])
    writer.send(action=pb.WRITE, offset=100, data=b"b" * 50)
    _wait(lambda: ("watched", 150) in seen)
    writer.send(action=pb.COMMIT, offset=150)
    writer.end()
    assert done.wait(10), "Status must end once every matched ingest is committed"
    watcher.join()
    assert seen == [("watched", 100), ("watched", 150)]

    # Nothing matching: the stream ends at once.
    assert list(stub.Status(pb.StatusRequest(prefix=["none-"]), timeout=10)) == []


def _wait(condition: object, timeout: float = 10) -> None:
    event = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():  # type: ignore[operator]
            return
        event.wait(0.05)
    raise AssertionError("condition not met in time")
