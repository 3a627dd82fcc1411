"""A pull interrupted halfway resumes and transfers only the missing bytes.

The registry is docker-registry behind ``ByteCountingProxy``, which counts every byte sent back to
cairn; the image has one ~24 MiB layer of random bytes (gzip level 0). Three interruptions:
the server is SIGKILLed, the client cancels the RPC, the registry connection drops. In each case
the bytes served over both attempts stay under 1.5 x the layer, and the result is the right blob
(image-service.md 5.1 step 5, 7 "client went away"; the images namespace keeps partial ingests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as cpb
from tests.conftest import Backend, CairnServer
from tests.integration.images.conftest import (
    IMAGES_NS,
    RPC_TIMEOUT,
    ImageSet,
    SourceRegistry,
    content_digest,
    content_size,
    content_stub,
    image_stub,
    pull,
)
from tests.integration.images.proxy import ByteCountingProxy
from tests.s3 import PART_SIZE


class BackgroundPull:
    """A Pull RPC consumed in a thread; ``messages`` and the ending ``error`` are kept."""

    def __init__(self, stub: pb_grpc.ImageServiceStub, reference: str) -> None:
        self.call = stub.Pull(pb.PullImageRequest(reference=reference), timeout=RPC_TIMEOUT)
        self.messages: list[pb.PullProgress] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._consume, daemon=True)
        self.thread.start()

    def _consume(self) -> None:
        try:
            for message in self.call:
                self.messages.append(message)
        except grpc.RpcError as exc:
            self.error = exc

    def join(self, timeout: float = 30) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pull did not end"


def ingest_offset(server: CairnServer, total: int) -> int:
    """The offset of the partial ingest of ``total`` bytes in namespace ``images`` (0 if none)."""
    channel, stub = content_stub(server)
    with channel:
        statuses = stub.ListStatuses(cpb.ListStatusesRequest(), metadata=IMAGES_NS, timeout=10).statuses
    return max((s.offset for s in statuses if s.total in (0, total)), default=0)


def wait_settled(read: Callable[[], int], timeout: float = 15.0, quiet: float = 0.5) -> int:
    """Poll ``read`` until its value stops changing for ``quiet`` seconds; returns the value."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return value


def assert_resumed(proxy: ByteCountingProxy, size: int, first: int) -> None:
    total = proxy.served
    assert total < size * 1.5, (
        f"{total} bytes served for a {size}-byte layer ({first} in the first attempt): the second "
        f"attempt did not resume; requests: {proxy.request_lines()}"
    )


def assert_pulled_correctly(server: CairnServer, image_set: ImageSet, reference: str) -> None:
    image = image_set.resume
    layer = image.layers[0].blob
    channel, stub = image_stub(server)
    with channel:
        assert stub.Inspect(pb.InspectImageRequest(id=reference)).id == image.id
    channel, content = content_stub(server)
    with channel:
        assert content_size(content, layer.digest) == layer.size
        assert content_digest(content, layer.digest) == layer.digest


@pytest.fixture
def proxy(source_registry: SourceRegistry) -> Iterator[ByteCountingProxy]:
    with ByteCountingProxy(source_registry.registry.port) as p:
        yield p


def test_pull_killed_halfway_resumes(make_server: Callable[..., CairnServer], proxy: ByteCountingProxy,
                                     image_set: ImageSet, cairn_backend: Backend) -> None:
    server = make_server()
    size = image_set.resume.layers[0].blob.size
    reference = f"{proxy.host}/resume/big:v1"
    proxy.hold_at(size // 2)
    channel, stub = image_stub(server)
    background = BackgroundPull(stub, reference)
    proxy.wait_served(size // 2)
    offset = wait_settled(lambda: ingest_offset(server, size))
    server.kill()
    channel.close()
    background.join()
    assert background.error is not None
    first = proxy.served
    proxy.release()

    server.start()  # same data directory
    channel, stub = image_stub(server)
    with channel:
        pull(stub, reference)
    assert_resumed(proxy, size, first)
    assert offset > size // 4, f"the partial ingest was at {offset} of {size} bytes when killed"
    # SIGKILL keeps what was stored: the local file whole, S3 only whole multipart parts.
    lost = 256 * 1024 if cairn_backend.name == "embedded" else PART_SIZE
    assert proxy.served - first <= size - offset + lost, (
        f"second attempt moved {proxy.served - first} bytes; {size - offset} were missing")
    assert_pulled_correctly(server, image_set, reference)


def test_cancelled_pull_stops_and_resumes(make_server: Callable[..., CairnServer], proxy: ByteCountingProxy,
                                          image_set: ImageSet) -> None:
    server = make_server()
    size = image_set.resume.layers[0].blob.size
    reference = f"{proxy.host}/resume/big:v1"
    proxy.rate = size / 3.0  # about three seconds for the layer
    channel, stub = image_stub(server)
    with channel:
        background = BackgroundPull(stub, reference)
        proxy.wait_served(size // 2)
        background.call.cancel()
        background.join()
        assert background.error is not None and background.error.code() == grpc.StatusCode.CANCELLED
        first = wait_settled(lambda: proxy.served, quiet=0.6)
        assert first < size * 0.9, f"the server went on downloading after the client cancelled ({first}/{size})"
        assert stub.Exists(pb.ExistsImageRequest(reference=reference)).exists is False

        proxy.rate = None
        pull(stub, reference)
    assert_resumed(proxy, size, first)
    assert_pulled_correctly(server, image_set, reference)


def test_dropped_connection_resumes(make_server: Callable[..., CairnServer], proxy: ByteCountingProxy,
                                    image_set: ImageSet) -> None:
    """The registry connection breaks halfway: the pull retries with the rest (or fails UNAVAILABLE
    and the next pull does); either way only the missing bytes move again."""
    server = make_server()
    size = image_set.resume.layers[0].blob.size
    reference = f"{proxy.host}/resume/big:v1"
    proxy.drop_at(size // 2)
    channel, stub = image_stub(server)
    with channel:
        try:
            pull(stub, reference)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
            pull(stub, reference)
    assert_resumed(proxy, size, size // 2)
    assert_pulled_correctly(server, image_set, reference)
