"""The seed design's content service, ``containerd.v1.Content`` (Info, Read, Status, Write).

Served beside the modern service by the same store (DECISIONS.md content-api 1).
The seed predates namespaces: a call without ``containerd-namespace`` metadata
works in ``default``. ``committed_at`` is the blob's ``created_at``; Read past
the end is OUT_OF_RANGE like the modern service; ``ABORT`` (-1) aborts the ref
and ends the stream. Status is a watch: it sends the matching ingests, then a
message whenever one changes, and ends when every matched ingest is committed
or aborted, or when the client goes away.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from cairn.api.grpc.context import namespace_of, parse_digest
from cairn.api.grpc.convert import timestamp
from cairn.api.grpc.errors import handles_errors
from cairn.api.grpc.gen.containerd.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.v1 import content_pb2_grpc as pb_grpc
from cairn.api.grpc.reads import read_range
from cairn.api.grpc.write_session import WriteSession, WriteStep, drive_write_stream
from cairn.api.metrics import Metrics
from cairn.core.content import ContentStore, Status
from cairn.integrity.verified_reads import SequentialReads

__all__ = ["SeedContentServicer"]

DEFAULT_NAMESPACE = "default"


class SeedContentServicer(pb_grpc.ContentServicer):
    SERVICE = "containerd.v1.Content"

    def __init__(
        self,
        store: ContentStore,
        metrics: Metrics,
        stopping: threading.Event,
        read_chunk: int = 1 << 20,
        poll_interval: float = 0.1,
        *,
        verify_reads_max_bytes: int = 16 << 20,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._stopping = stopping
        self._read_chunk = read_chunk
        self._poll = poll_interval
        self._reads = SequentialReads(verify_reads_max_bytes) if verify_reads_max_bytes > 0 else None

    def _namespace(self, context: grpc.ServicerContext) -> str:
        return namespace_of(context, default=DEFAULT_NAMESPACE)

    @handles_errors
    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        info = self._store.info(self._namespace(context), parse_digest(request.digest))
        return pb.InfoResponse(
            digest=str(info.digest), size=info.size, committed_at=timestamp(info.created_at)
        )

    @handles_errors
    def Read(self, request: pb.ReadRequest, context: grpc.ServicerContext) -> Iterator[pb.ReadResponse]:
        digest = parse_digest(request.digest)
        for offset, data in read_range(
            self._store, self._namespace(context), digest, request.offset, request.size, self._read_chunk,
            self._reads,
        ):
            self._metrics.content_read_bytes.inc(len(data))
            yield pb.ReadResponse(offset=offset, data=data)

    @handles_errors
    def Status(
        self, request: pb.StatusRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StatusResponse]:
        namespace = self._namespace(context)
        refs, prefixes = set(request.refs), tuple(request.prefix)

        def matching() -> dict[str, Status]:
            return {
                s.ref: s
                for s in self._store.list_statuses(namespace)
                if (not refs and not prefixes) or s.ref in refs or s.ref.startswith(prefixes)
            }

        sent: dict[str, tuple[int, int]] = {}
        while context.is_active() and not self._stopping.is_set():
            current = matching()
            for ref, status in sorted(current.items()):
                state = (status.offset, status.updated_at)
                if sent.get(ref) != state:
                    sent[ref] = state
                    yield pb.StatusResponse(
                        ref=ref,
                        offset=status.offset,
                        started_at=timestamp(status.started_at),
                        updated_at=timestamp(status.updated_at),
                    )
            if not current:
                return  # every matched ingest was committed or aborted (or none matched)
            self._stopping.wait(self._poll)

    @handles_errors
    def Write(
        self, request_iterator: Iterator[pb.WriteRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.WriteResponse]:
        def step(session: WriteSession, r: pb.WriteRequest) -> tuple[WriteStep, int]:
            data = r.data  # each access copies the bytes out of the message: read it once
            return session.step(r.action, r.ref, r.expected_size, r.expected_digest, r.offset, data), len(data)

        def respond(request: pb.WriteRequest, step: WriteStep) -> pb.WriteResponse:
            response = pb.WriteResponse(action=request.action, offset=step.offset, digest=step.digest)
            if step.status is not None:
                response.started_at.CopyFrom(timestamp(step.status.started_at))
                response.updated_at.CopyFrom(timestamp(step.status.updated_at))
            return response

        namespace = self._namespace(context)
        yield from drive_write_stream(self._store, namespace, self._metrics, request_iterator, step, respond)
