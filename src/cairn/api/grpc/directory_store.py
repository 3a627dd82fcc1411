"""The Directory ``store.v1.StoreService`` face over :class:`cairn.directory.store.RecordStore`.

Streams keep the seed's contract (specs/directory.md §4): the N-th response
answers the N-th request, and the first error ends the stream with its gRPC
code; requests after it are not processed, answered ones stay done.

Pushes are written in groups: a reader thread takes requests off the stream as
they arrive, and the handler stores whatever a pipelining client has already
sent (up to :data:`GROUP_MAX`) with one flush and one catalog transaction, then
answers each in order. A client that waits for each answer still gets one
durable write per request; one that pipelines gets thousands a second. When a
request in a group is invalid, the ones before it are stored and answered,
then the stream ends with the error, exactly as one-at-a-time processing would.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.empty_pb2 import Empty
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct

from cairn.api.grpc.errors import handles_errors
from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.sign.v1 import signature_pb2
from cairn.api.grpc.gen.store.v1 import store_service_pb2 as pb
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as pb_grpc
from cairn.api.metrics import Metrics
from cairn.core.errors import CairnError, InvalidArgumentError
from cairn.directory.canonical import parse_json
from cairn.directory.records import Record, RecordMeta
from cairn.directory.signatures import Signature
from cairn.directory.store import PlannedPush, RecordStore

__all__ = ["GROUP_BYTES", "GROUP_MAX", "StoreServicer"]

#: Most pushes stored as one group (one flush, one transaction); also the read-ahead bound.
GROUP_MAX = 256
#: A group closes once its requests hold this many bytes (records are up to 4 MiB each).
GROUP_BYTES = 16 << 20

M = TypeVar("M", bound=Message)
_END = object()


def record_of(message: record_pb2.Record) -> Record:
    """The domain record of a wire record; InvalidArgumentError without data."""
    if not message.HasField("data"):
        raise InvalidArgumentError("record data is required")
    try:
        document = json_format.MessageToDict(message.data)
    except ValueError as exc:  # NaN or an infinity in a number_value: not JSON
        raise InvalidArgumentError(f"record data: {exc}") from None
    return Record.from_document(document)


def record_message(canonical: bytes) -> record_pb2.Record:
    document = parse_json(canonical)
    data = Struct()
    if isinstance(document, dict):
        data.update(document)
    return record_pb2.Record(data=data)


def signature_of(message: signature_pb2.Signature) -> Signature:
    return Signature(
        annotations=dict(message.annotations),
        signed_at=message.signed_at,
        algorithm=message.algorithm,
        signature=message.signature,
        certificate=message.certificate,
        content_type=message.content_type,
        content_bundle=message.content_bundle,
    )


def signature_message(signature: Signature) -> signature_pb2.Signature:
    return signature_pb2.Signature(
        annotations=signature.annotations,
        signed_at=signature.signed_at,
        algorithm=signature.algorithm,
        signature=signature.signature,
        certificate=signature.certificate,
        content_type=signature.content_type,
        content_bundle=signature.content_bundle,
    )


def meta_message(meta: RecordMeta) -> record_pb2.RecordMeta:
    return record_pb2.RecordMeta(
        cid=meta.cid,
        annotations=meta.annotations,
        schema_version=meta.schema_version,
        created_at=meta.created_at,
    )


def _size(item: object) -> int:
    return item.ByteSize() if isinstance(item, Message) else 0


class _Arrivals:
    """Requests taken off a stream by a reader thread, handed out in groups of what has arrived."""

    def __init__(self, requests: Iterator[Message], limit: int, max_bytes: int) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=limit)  # bounds the read-ahead
        self._limit = limit
        self._max_bytes = max_bytes
        self._thread = threading.Thread(target=self._read, args=(requests,), daemon=True, name="store-stream")
        self._thread.start()

    def _read(self, requests: Iterator[Message]) -> None:
        try:
            for request in requests:
                self._queue.put(request)
        except Exception as exc:  # noqa: BLE001 - the stream broke; the handler reports it
            self._queue.put(exc)
        self._queue.put(_END)

    def groups(self) -> Iterator[list[object]]:
        while True:
            first = self._queue.get()
            if first is _END:
                return
            group = [first]
            size = _size(first)
            while len(group) < self._limit and size < self._max_bytes:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(item)
                if item is _END:
                    break
                size += _size(item)
            ended = group[-1] is _END
            yield [item for item in group if item is not _END]
            if ended:
                return


class StoreServicer(pb_grpc.StoreServiceServicer):
    SERVICE = "store.v1.StoreService"

    def __init__(self, records: RecordStore, metrics: Metrics) -> None:
        self._records = records
        self._metrics = metrics

    def _push_groups(
        self, requests: Iterator[M], plan: Callable[[M], PlannedPush], answer: Callable[[str], object]
    ) -> Iterator[object]:
        for group in _Arrivals(requests, GROUP_MAX, GROUP_BYTES).groups():
            plans: list[PlannedPush] = []
            failure: Exception | None = None
            for request in group:
                if isinstance(request, Exception):
                    failure = request
                    break
                try:
                    plans.append(plan(request))  # type: ignore[arg-type]
                except CairnError as exc:
                    failure = exc
                    break
            for cid in self._records.commit(plans):
                yield answer(cid)
            if failure is not None:
                raise failure

    @handles_errors
    def Push(
        self, request_iterator: Iterator[record_pb2.Record], context: grpc.ServicerContext
    ) -> Iterator[record_pb2.RecordRef]:
        def plan(message: record_pb2.Record) -> PlannedPush:
            return self._records.plan(record_of(message))

        yield from self._push_groups(request_iterator, plan, lambda cid: record_pb2.RecordRef(cid=cid))  # type: ignore[misc]

    @handles_errors
    def PushWithOptions(
        self, request_iterator: Iterator[pb.PushWithOptionsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PushWithOptionsResponse]:
        def plan(request: pb.PushWithOptionsRequest) -> PlannedPush:
            signature = None
            if request.HasField("options") and request.options.HasField("signature"):
                signature = signature_of(request.options.signature)
            return self._records.plan(record_of(request.record), signature)

        def answer(cid: str) -> pb.PushWithOptionsResponse:
            return pb.PushWithOptionsResponse(record_ref=record_pb2.RecordRef(cid=cid))

        yield from self._push_groups(request_iterator, plan, answer)  # type: ignore[misc]

    @handles_errors
    def Pull(
        self, request_iterator: Iterator[record_pb2.RecordRef], context: grpc.ServicerContext
    ) -> Iterator[record_pb2.Record]:
        for ref in request_iterator:
            yield record_message(self._records.pull(ref.cid))

    @handles_errors
    def PullWithOptions(
        self, request_iterator: Iterator[pb.PullWithOptionsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PullWithOptionsResponse]:
        for request in request_iterator:
            cid = request.record_ref.cid
            response = pb.PullWithOptionsResponse(record=record_message(self._records.pull(cid)))
            if request.options.include_signature:
                signature = self._records.signature(cid)
                if signature is not None:
                    response.signature.CopyFrom(signature_message(signature))
            yield response

    @handles_errors
    def Lookup(
        self, request_iterator: Iterator[record_pb2.RecordRef], context: grpc.ServicerContext
    ) -> Iterator[record_pb2.RecordMeta]:
        for ref in request_iterator:
            yield meta_message(self._records.lookup(ref.cid))

    @handles_errors
    def Delete(
        self, request_iterator: Iterator[record_pb2.RecordRef], context: grpc.ServicerContext
    ) -> Empty:
        for ref in request_iterator:
            self._records.delete(ref.cid)
        return Empty()
