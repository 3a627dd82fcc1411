"""A small blocking client of containerd's content API, as cairn serves it.

The ``cairn content`` commands use it, and so can benchmarks and scripts: one
method per RPC, plain protobuf messages back, and failures raised in cairn's
own error vocabulary (the inverse of :data:`cairn.api.grpc.errors.CODES`), so
callers never see a ``grpc.RpcError``.

It is not a second store: no retries, no caching, no local verification of
blobs (``cairn content get`` verifies what it streams; see ``content.py``).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import grpc

from cairn.api.grpc.context import MAX_MESSAGE_BYTES, NAMESPACE_HEADER
from cairn.api.grpc.errors import CODES
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from cairn.cli.connection import GrpcSecurity, open_channel
from cairn.core.errors import (
    CairnError,
    DataLossError,
    FailedPreconditionError,
    UnavailableError,
)

__all__ = ["MAX_MESSAGE_BYTES", "ByteSource", "ContentClient", "grpc_target"]


_ERRORS: dict[grpc.StatusCode, type[CairnError]] = {code: cls for cls, code in CODES.items()}
#: How grpc-core's own UNAVAILABLE messages start when nothing (or nothing alive) listens there.
#: A prefix, not a substring: a server's UNAVAILABLE may quote a refused connection of its own
#: (the image service's "no registry answers at ... (Connection refused)"), which is not ours.
_CONNECT_FAILURES = (
    "failed to connect to all addresses",
    "errors resolving",
    "dns resolution failed",
    "connection refused",
    "socket closed",
    "connection reset",
    "broken pipe",
)


class ByteSource(Protocol):
    """What :meth:`ContentClient.ingest` reads: any binary file object, a pipe, a socket file."""

    def read(self, size: int = -1, /) -> bytes: ...


@runtime_checkable
class _Seekable(Protocol):
    def seekable(self) -> bool: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...


def grpc_target(server: str) -> str:
    """The grpcio target for a user's ``--server``: a unix socket path, ``unix:PATH`` or HOST:PORT."""
    if server.startswith("unix:"):
        path = server[len("unix:") :]
        if path.startswith("//"):
            return server  # unix:///abs/path is already a grpc target
        return f"unix:{os.path.abspath(path)}"
    if "/" in server:
        return f"unix:{os.path.abspath(server)}"
    return server


class ContentClient:
    """A connection to one server's ``containerd.services.content.v1.Content`` in one namespace.

    Every method blocks until the server answers (or ``timeout`` seconds pass,
    per call; ``None`` waits as long as it takes) and raises only
    :class:`~cairn.core.errors.CairnError` subclasses. Thread-safe like a
    grpcio channel; ``close()`` is idempotent.
    """

    def __init__(
        self,
        server: str,
        namespace: str = "default",
        timeout: float | None = None,
        *,
        security: GrpcSecurity | None = None,
    ) -> None:
        self.server = server
        self.namespace = namespace
        self.timeout = timeout
        self._channel = open_channel(  # TLS and tokens: cli/connection.py
            grpc_target(server),
            [
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
            security,
            namespace,
        )
        self._stub: Any = pb_grpc.ContentStub(self._channel)
        self._metadata = ((NAMESPACE_HEADER, namespace),)
        self._closed = False

    # -- Manager -------------------------------------------------------------
    def info(self, digest: str) -> pb.Info:
        """The blob's Info; NotFoundError when the namespace has no such blob."""
        info: pb.Info = self._call("Info", pb.InfoRequest(digest=digest)).info
        return info

    def list(self, filters: Sequence[str] = ()) -> Iterator[pb.Info]:
        """Every blob of the namespace matching any of ``filters`` (containerd syntax), streamed."""
        for response in self._stream("List", pb.ListContentRequest(filters=list(filters))):
            yield from response.info

    def update_labels(
        self, digest: str, set_labels: Mapping[str, str], delete: Sequence[str] = ()
    ) -> pb.Info:
        """Set and delete single labels (mask paths ``labels.<key>``); returns the updated Info.

        Other labels stay as they are. With nothing to change this is :meth:`info`.
        A key both set and deleted is deleted.
        """
        removed = set(delete)
        labels = {k: v for k, v in set_labels.items() if k not in removed}
        paths = [f"labels.{key}" for key in labels] + [f"labels.{key}" for key in sorted(removed)]
        if not paths:
            return self.info(digest)
        request = pb.UpdateRequest(info=pb.Info(digest=digest, labels=labels))
        request.update_mask.paths.extend(paths)
        info: pb.Info = self._call("Update", request).info
        return info

    def delete(self, digest: str) -> None:
        """Remove the blob from the namespace; NotFoundError when it has no such blob."""
        self._call("Delete", pb.DeleteContentRequest(digest=digest))

    # -- Provider ------------------------------------------------------------
    def read(self, digest: str, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        """The bytes of ``[offset, offset+size)`` (``size`` 0: to the end) in one Read RPC, as chunks.

        Stopping early cancels the RPC. The bytes are not verified here.
        """
        request = pb.ReadContentRequest(digest=digest, offset=offset, size=size)
        for response in self._stream("Read", request):
            yield response.data

    # -- IngestManager -------------------------------------------------------
    def statuses(self, filters: Sequence[str] = ()) -> builtins.list[pb.Status]:
        """The active ingests of the namespace whose ref matches any of ``filters``."""
        return list(self._call("ListStatuses", pb.ListStatusesRequest(filters=list(filters))).statuses)

    def status(self, ref: str) -> pb.Status:
        """The active ingest ``ref``; NotFoundError when there is none."""
        status: pb.Status = self._call("Status", pb.StatusRequest(ref=ref)).status
        return status

    def abort(self, ref: str) -> None:
        """Drop the active ingest ``ref`` and its data; NotFoundError when there is none."""
        self._call("Abort", pb.AbortRequest(ref=ref))

    # -- calls ---------------------------------------------------------------
    def _call(self, method: str, request: Any) -> Any:
        """One unary call with the namespace and timeout; failures in cairn's vocabulary."""
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _stream(self, method: str, request: Any) -> Iterator[Any]:
        """The responses of one server-streaming call; stopping early cancels it."""
        call = getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    # -- Ingester ------------------------------------------------------------
    def ingest(
        self,
        ref: str,
        source: ByteSource,
        *,
        total: int = 0,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
        chunk_size: int = 4 << 20,
        progress: Callable[[int], None] | None = None,
    ) -> pb.WriteContentResponse:
        """Write ``source`` to the ingest ``ref`` and commit it, in one Write stream.

        The stream opens with STAT. If the ingest already holds bytes (an
        earlier stream ended without commit), the source is advanced past
        them, by seeking when it is seekable, otherwise by reading them (and
        checking they hash to what the server holds), and only the rest is
        sent. Then WRITE messages of ``chunk_size`` bytes, then COMMIT with
        ``total``, ``expected`` and ``labels``. The source is read on the
        calling thread, a few chunks ahead of the server's acknowledgements,
        so at most a few chunks are in memory. ``progress(bytes the ingest
        holds)`` is called after each chunk the server acknowledged.

        Returns the COMMIT response (``digest``, ``offset`` = size). Raises
        AlreadyExistsError when ``expected`` or the result already exists in
        the namespace, FailedPreconditionError on a size or digest mismatch
        or when the source does not start with what the ingest holds (the
        ingest stays, resumable), UnavailableError when another writer holds
        ``ref``. If reading ``source`` fails, the stream ends without commit
        (the ingest keeps what was sent) and that error is re-raised.
        """
        stream = _WriteStream(ref, total, expected, progress)
        stream.call = self._stub.Write(stream.requests(), timeout=self.timeout, metadata=self._metadata)
        try:
            return stream.run(source, chunk_size, labels or {})
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            stream.stop()

    # -- lifetime ------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- errors --------------------------------------------------------------
    def _error(self, exc: grpc.RpcError) -> CairnError:
        """The vocabulary error for a failed call (a grpc.Call carries code and details)."""
        call: Any = exc
        code: grpc.StatusCode = call.code()
        details: str = call.details() or code.name
        if code is grpc.StatusCode.UNAVAILABLE and details.lower().startswith(_CONNECT_FAILURES):
            reason = details.rsplit(": ", 1)[-1].strip(" []")
            return UnavailableError(
                f"no server answers at {self.server} ({reason}); start `cairn serve` "
                "or point --server/CAIRN_SERVER at a running one"
            )
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            return UnavailableError(f"no answer from {self.server} within {self.timeout}s (--timeout)")
        if code is grpc.StatusCode.CANCELLED:
            return UnavailableError(f"the call to {self.server} was cancelled: {details}")
        if code is grpc.StatusCode.UNIMPLEMENTED:
            details = f"{self.server} does not serve this call ({details})"
        cls = _ERRORS.get(code, CairnError)
        if cls is CairnError:
            return CairnError(f"server error ({code.name}): {details}")
        return cls(details)


class _WriteStream:
    """One Write stream: the caller's thread reads the source and the responses.

    grpcio sends requests from its own thread by iterating :meth:`requests`,
    which only takes ready messages from a one-slot queue; so the source is
    never read on a thread that could be left blocked in it (a blocked read
    of stdin in a daemon thread aborts the interpreter at exit). Up to
    :attr:`DEPTH` WRITEs are unacknowledged at a time: enough to keep the
    link busy, few enough to bound memory.
    """

    DEPTH = 2

    def __init__(self, ref: str, total: int, expected: str, progress: Callable[[int], None] | None) -> None:
        self._ref = ref
        self._total = total
        self._expected = expected
        self._progress = progress
        self._feed: queue.Queue[pb.WriteContentRequest | None] = queue.Queue(maxsize=1)
        self._stopped = threading.Event()
        self.call: Any = None

    def requests(self) -> Iterator[pb.WriteContentRequest]:
        yield pb.WriteContentRequest(
            action=pb.STAT, ref=self._ref, total=self._total, expected=self._expected
        )
        while not self._stopped.is_set():
            try:
                request = self._feed.get(timeout=0.1)
            except queue.Empty:
                continue
            if request is None:
                return  # half-close without COMMIT: the ingest stays resumable
            yield request

    def stop(self) -> None:
        """End the request side and the call (idempotent)."""
        self._stopped.set()
        if self.call is not None:
            self.call.cancel()

    def run(self, source: ByteSource, chunk_size: int, labels: Mapping[str, str]) -> pb.WriteContentResponse:
        opened = self._next()
        offset = opened.offset
        self._skip(source, offset, opened.digest, chunk_size)
        if offset and self._progress is not None:
            self._progress(offset)
        unacknowledged: deque[int] = deque()
        while True:
            try:
                data = source.read(chunk_size)
            except Exception:
                self._send(None)
                while unacknowledged:
                    self._acknowledged(unacknowledged.popleft())
                raise
            if not data:
                break
            offset += len(data)
            self._send(pb.WriteContentRequest(action=pb.WRITE, offset=offset - len(data), data=data))
            unacknowledged.append(offset)
            while len(unacknowledged) > self.DEPTH:
                self._acknowledged(unacknowledged.popleft())
        self._send(
            pb.WriteContentRequest(
                action=pb.COMMIT, offset=offset, total=self._total, expected=self._expected, labels=labels
            )
        )
        while unacknowledged:
            self._acknowledged(unacknowledged.popleft())
        committed: pb.WriteContentResponse = self._next()
        if committed.action != pb.COMMIT:
            raise DataLossError(f"ingest {self._ref!r}: the server answered the commit with {committed}")
        if self._total and committed.offset != self._total:
            raise DataLossError(
                f"ingest {self._ref!r}: committed {committed.offset} bytes, expected {self._total}"
            )
        if self._expected and committed.digest != self._expected:
            raise DataLossError(
                f"ingest {self._ref!r}: committed {committed.digest}, expected {self._expected}"
            )
        return committed

    def _send(self, request: pb.WriteContentRequest | None) -> None:
        """Queue a request; if the call ended meanwhile, raise how it ended."""
        while True:
            try:
                self._feed.put(request, timeout=0.1)
                return
            except queue.Full:
                if self.call.done():
                    for _ in self.call:  # raises the call's error, if it has one
                        pass
                    raise DataLossError(
                        f"the server ended the Write stream of ingest {self._ref!r} early"
                    ) from None

    def _next(self) -> pb.WriteContentResponse:
        response: pb.WriteContentResponse | None = next(self.call, None)
        if response is None:
            raise DataLossError(f"the server ended the Write stream of ingest {self._ref!r} early")
        return response

    def _acknowledged(self, end: int) -> None:
        response = self._next()
        if response.offset != end:
            raise DataLossError(
                f"ingest {self._ref!r}: the server holds {response.offset} bytes after a write "
                f"that should end at {end}"
            )
        if self._progress is not None:
            self._progress(response.offset)

    def _skip(self, source: ByteSource, offset: int, held_digest: str, chunk_size: int) -> None:
        """Advance the source past the ``offset`` bytes the ingest already holds."""
        if offset <= 0:
            return
        if isinstance(source, _Seekable) and source.seekable():
            here = source.tell()
            end = source.seek(0, io.SEEK_END)
            if end - here < offset:
                raise self._short_source(offset, end - here)
            source.seek(here + offset, io.SEEK_SET)
            return
        algorithm, _, _ = held_digest.partition(":")
        hasher = hashlib.new(algorithm) if algorithm in ("sha256", "sha512") else None
        left = offset
        while left:
            data = source.read(min(left, chunk_size))
            if not data:
                raise self._short_source(offset, offset - left)
            if hasher is not None:
                hasher.update(data)
            left -= len(data)
        if hasher is not None and f"{algorithm}:{hasher.hexdigest()}" != held_digest:
            raise FailedPreconditionError(
                f"ingest {self._ref!r} holds {offset} bytes that differ from the first {offset} "
                "bytes of the source"
            )

    def _short_source(self, offset: int, available: int) -> FailedPreconditionError:
        return FailedPreconditionError(
            f"ingest {self._ref!r} already holds {offset} bytes but the source has only {available}"
        )
