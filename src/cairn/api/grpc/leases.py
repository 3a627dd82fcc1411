"""containerd's Leases service, ``containerd.services.leases.v1.Leases``, and the ``containerd-lease`` header.

A thin face over :class:`cairn.core.catalog.LeaseCatalog`: ``ctr leases
create/ls/rm`` drive it. A lease holds content and ingests of its namespace
against garbage collection (docs/gc.md) until it is deleted or its
``containerd.io/gc.expire`` label passes. As containerd: ids follow containerd's
identifier rule, an empty id on Create gets a random one, resource types are
``content`` (a digest), ``ingests`` (a ref) and ``snapshots/<snapshotter>``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping

import grpc
from google.protobuf.empty_pb2 import Empty

from cairn.api.grpc.context import namespace_of
from cairn.api.grpc.convert import timestamp
from cairn.api.grpc.errors import handles_errors
from cairn.api.grpc.gen.containerd.services.leases.v1 import leases_pb2 as pb
from cairn.api.grpc.gen.containerd.services.leases.v1 import leases_pb2_grpc as pb_grpc
from cairn.api.metrics import Metrics
from cairn.core.catalog import LeaseCatalog, LeaseResource, LeaseRow
from cairn.core.content import validate_labels
from cairn.core.content.filters import Fields, parse_filters
from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError

__all__ = ["LEASE_HEADER", "LeasesServicer", "lease_of"]

#: gRPC metadata naming the lease new ingests and blobs of a call join (containerd's header).
LEASE_HEADER = "containerd-lease"
# containerd's identifiers.Validate: alphanumerics separated by single '.', '_' or '-', at most 76.
_IDENTIFIER = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
_MAX_IDENTIFIER = 76


def lease_of(context: grpc.ServicerContext) -> str | None:
    """The lease id a call carries in ``containerd-lease`` metadata, or None."""
    for key, value in context.invocation_metadata():
        if key == LEASE_HEADER and value:
            return str(value)
    return None


def _check_id(lease: str) -> str:
    if len(lease) > _MAX_IDENTIFIER:
        raise InvalidArgumentError(f"identifier {lease!r}: greater than maximum length ({_MAX_IDENTIFIER} characters)")
    if not _IDENTIFIER.match(lease):
        raise InvalidArgumentError(f"identifier {lease!r}: must match {_IDENTIFIER.pattern}")
    return lease


def _resource(message: pb.Resource) -> LeaseResource:
    if message.type == "content":
        return LeaseResource("content", str(Digest.parse(message.id)))
    if message.type == "ingests" or message.type.startswith("snapshots/"):
        if not message.id:
            raise InvalidArgumentError(f"resource of type {message.type!r} needs an id")
        return LeaseResource(message.type, message.id)
    raise InvalidArgumentError(f"unsupported resource type {message.type!r}")


def _lease(row: LeaseRow) -> pb.Lease:
    return pb.Lease(id=row.id, created_at=timestamp(row.created_at), labels=dict(row.labels))


def _fields(row: LeaseRow) -> Fields:
    def lookup(path: tuple[str, ...]) -> str | None:
        if path and path[0] == "id":
            return row.id
        if path and path[0] == "labels":
            return row.labels.get(".".join(path[1:]))
        return None

    return lookup


class LeasesServicer(pb_grpc.LeasesServicer):
    SERVICE = "containerd.services.leases.v1.Leases"

    def __init__(self, leases: LeaseCatalog, metrics: Metrics) -> None:
        self._leases = leases
        self._metrics = metrics

    @handles_errors
    def Create(self, request: pb.CreateRequest, context: grpc.ServicerContext) -> pb.CreateResponse:
        namespace = namespace_of(context)
        lease = _check_id(request.id) if request.id else f"{time.time_ns()}-{secrets.token_hex(8)}"
        labels: Mapping[str, str] = validate_labels(dict(request.labels))
        row = self._leases.create(LeaseRow(namespace, lease, time.time_ns(), labels))
        return pb.CreateResponse(lease=_lease(row))

    @handles_errors
    def Delete(self, request: pb.DeleteRequest, context: grpc.ServicerContext) -> Empty:
        # ``sync`` asks containerd to collect before answering; cairn's collection runs on
        # its schedule (or ``cairn gc``), so both forms only delete the lease.
        self._leases.delete(namespace_of(context), request.id)
        return Empty()

    @handles_errors
    def List(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        selector = parse_filters(list(request.filters))
        rows = self._leases.list(namespace_of(context))
        return pb.ListResponse(leases=[_lease(row) for row in rows if selector.match(_fields(row))])

    @handles_errors
    def AddResource(self, request: pb.AddResourceRequest, context: grpc.ServicerContext) -> Empty:
        self._leases.add_resource(namespace_of(context), request.id, _resource(request.resource))
        return Empty()

    @handles_errors
    def DeleteResource(self, request: pb.DeleteResourceRequest, context: grpc.ServicerContext) -> Empty:
        self._leases.delete_resource(namespace_of(context), request.id, _resource(request.resource))
        return Empty()

    @handles_errors
    def ListResources(
        self, request: pb.ListResourcesRequest, context: grpc.ServicerContext
    ) -> pb.ListResourcesResponse:
        resources = self._leases.resources(namespace_of(context), request.id)
        return pb.ListResourcesResponse(resources=[pb.Resource(id=r.id, type=r.type) for r in resources])
