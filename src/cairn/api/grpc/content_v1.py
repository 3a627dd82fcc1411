"""The modern containerd content service, ``containerd.services.content.v1.Content``.

A thin face: each RPC parses its message, calls the content store and maps
the result back. ``ctr`` drives it; behaviour and codes follow content-api.md
section 4 with the choices of DECISIONS.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from google.protobuf.empty_pb2 import Empty

from cairn.api.grpc.context import namespace_of, parse_digest
from cairn.api.grpc.convert import info_v1, status_v1, timestamp
from cairn.api.grpc.errors import handles_errors
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from cairn.api.grpc.leases import lease_of
from cairn.api.grpc.reads import read_range
from cairn.api.grpc.write_session import LeaseHold, WriteSession, WriteStep, drive_write_stream
from cairn.api.metrics import Metrics
from cairn.core.catalog import LeaseCatalog
from cairn.core.content import ContentStore
from cairn.integrity.verified_reads import SequentialReads

__all__ = ["ContentServicer"]

_LIST_PAGE = 100  # Info messages per List response, as containerd


class ContentServicer(pb_grpc.ContentServicer):
    SERVICE = "containerd.services.content.v1.Content"

    def __init__(
        self,
        store: ContentStore,
        metrics: Metrics,
        read_chunk: int = 1 << 20,
        *,
        verify_reads_max_bytes: int = 16 << 20,
        leases: LeaseCatalog | None = None,
    ) -> None:
        self._store = store
        self._leases = leases  # for the containerd-lease header on Write
        self._metrics = metrics
        self._read_chunk = read_chunk
        self._reads = SequentialReads(verify_reads_max_bytes) if verify_reads_max_bytes > 0 else None

    @handles_errors
    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        info = self._store.info(namespace_of(context), parse_digest(request.digest))
        return pb.InfoResponse(info=info_v1(info))

    @handles_errors
    def Update(self, request: pb.UpdateRequest, context: grpc.ServicerContext) -> pb.UpdateResponse:
        namespace = namespace_of(context)
        info = self._store.update(
            namespace,
            parse_digest(request.info.digest),
            dict(request.info.labels),
            list(request.update_mask.paths),
        )
        return pb.UpdateResponse(info=info_v1(info))

    @handles_errors
    def List(
        self, request: pb.ListContentRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ListContentResponse]:
        page: list[pb.Info] = []
        for info in self._store.walk(namespace_of(context), list(request.filters)):
            page.append(info_v1(info))
            if len(page) == _LIST_PAGE:
                yield pb.ListContentResponse(info=page)
                page = []
        if page:
            yield pb.ListContentResponse(info=page)

    @handles_errors
    def Delete(self, request: pb.DeleteContentRequest, context: grpc.ServicerContext) -> Empty:
        self._store.delete(namespace_of(context), parse_digest(request.digest))
        return Empty()

    @handles_errors
    def Read(
        self, request: pb.ReadContentRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ReadContentResponse]:
        digest = parse_digest(request.digest)
        namespace = namespace_of(context)
        for offset, data in read_range(
            self._store, namespace, digest, request.offset, request.size, self._read_chunk, self._reads
        ):
            self._metrics.content_read_bytes.inc(len(data))
            yield pb.ReadContentResponse(offset=offset, data=data)

    @handles_errors
    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        status = self._store.status(namespace_of(context), request.ref)
        return pb.StatusResponse(status=status_v1(status))

    @handles_errors
    def ListStatuses(
        self, request: pb.ListStatusesRequest, context: grpc.ServicerContext
    ) -> pb.ListStatusesResponse:
        statuses = self._store.list_statuses(namespace_of(context), list(request.filters))
        return pb.ListStatusesResponse(statuses=[status_v1(s) for s in statuses])

    @handles_errors
    def Write(
        self, request_iterator: Iterator[pb.WriteContentRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.WriteContentResponse]:
        def step(session: WriteSession, r: pb.WriteContentRequest) -> tuple[WriteStep, int]:
            data = r.data  # each access copies the bytes out of the message: read it once
            return session.step(r.action, r.ref, r.total, r.expected, r.offset, data, r.labels), len(data)

        def respond(request: pb.WriteContentRequest, step: WriteStep) -> pb.WriteContentResponse:
            response = pb.WriteContentResponse(action=request.action, offset=step.offset, digest=step.digest)
            if step.status is not None:
                response.started_at.CopyFrom(timestamp(step.status.started_at))
                response.updated_at.CopyFrom(timestamp(step.status.updated_at))
                response.total = step.status.total
            return response

        namespace = namespace_of(context)
        lease = lease_of(context)
        hold = LeaseHold(self._leases, namespace, lease) if lease and self._leases is not None else None
        yield from drive_write_stream(self._store, namespace, self._metrics, request_iterator, step, respond, hold)

    @handles_errors
    def Abort(self, request: pb.AbortRequest, context: grpc.ServicerContext) -> Empty:
        self._store.abort(namespace_of(context), request.ref)
        return Empty()
