"""The Directory ``store.v1.SyncService`` face over :class:`cairn.directory.sync.Syncs`, and the
gRPC client half of sync: asking a remote node for access to its registry.

CreateSync takes the sync mode from the request metadata ``cairn-sync-mode``
(``continuous``, the default, or ``once``): the seed's request has only the URL.
Times are RFC 3339 in UTC. ``RequestRegistryCredentials`` never fails with a
status for a refused node: it answers ``success=false`` with the reason, as
upstream does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import grpc

from cairn.api.grpc.errors import handles_errors
from cairn.api.grpc.gen.store.v1 import sync_service_pb2 as pb
from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as pb_grpc
from cairn.api.metrics import Metrics
from cairn.core.errors import InvalidArgumentError, PermissionDeniedError, UnavailableError
from cairn.directory.credentials import SyncCredentials
from cairn.directory.replication import RegistryAccess
from cairn.directory.sync import (
    MODE_CONTINUOUS,
    MODES,
    Sync,
    Syncs,
    SyncStatus,
    parse_remote_url,
    registry_access,
)

__all__ = ["NEGOTIATE_TIMEOUT", "REASON_HEADER", "SYNC_MODE_HEADER", "SyncServicer", "grpc_negotiator"]

#: Request metadata choosing the sync mode of CreateSync: ``continuous`` (default) or ``once``.
SYNC_MODE_HEADER = "cairn-sync-mode"
#: Trailing metadata of GetSync with the reason of a FAILED sync (beside cairn's status_message field).
REASON_HEADER = "cairn-sync-reason"
#: Seconds a remote node gets to answer RequestRegistryCredentials.
NEGOTIATE_TIMEOUT = 10.0

_STATUS = {
    SyncStatus.PENDING: pb.SYNC_STATUS_PENDING,
    SyncStatus.IN_PROGRESS: pb.SYNC_STATUS_IN_PROGRESS,
    SyncStatus.COMPLETED: pb.SYNC_STATUS_COMPLETED,
    SyncStatus.FAILED: pb.SYNC_STATUS_FAILED,
    SyncStatus.DELETE_PENDING: pb.SYNC_STATUS_DELETE_PENDING,
    SyncStatus.DELETED: pb.SYNC_STATUS_DELETED,
}


def _printable(text: str) -> str:
    """``text`` as a metadata value may carry it: printable ASCII, at most 4 KiB."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:4096])


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _mode(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == SYNC_MODE_HEADER:
            mode = str(value).strip().lower() or MODE_CONTINUOUS
            if mode not in MODES:
                raise InvalidArgumentError(
                    f"metadata {SYNC_MODE_HEADER}: {value!r} is not one of {', '.join(MODES)}"
                )
            return mode
    return MODE_CONTINUOUS


class SyncServicer(pb_grpc.SyncServiceServicer):
    SERVICE = "store.v1.SyncService"

    def __init__(self, syncs: Syncs, credentials: SyncCredentials, metrics: Metrics) -> None:
        self._syncs = syncs
        self._credentials = credentials
        self._metrics = metrics

    @handles_errors
    def CreateSync(self, request: pb.CreateSyncRequest, context: grpc.ServicerContext) -> pb.CreateSyncResponse:
        sync = self._syncs.create(request.remote_directory_url, _mode(context))
        return pb.CreateSyncResponse(sync_id=sync.id)

    @handles_errors
    def ListSyncs(self, request: pb.ListSyncsRequest, context: grpc.ServicerContext) -> Iterator[pb.ListSyncsItem]:
        limit = request.limit if request.HasField("limit") and request.limit > 0 else None
        offset = request.offset if request.HasField("offset") else 0
        for sync in self._syncs.list_syncs(limit, offset):
            yield pb.ListSyncsItem(sync_id=sync.id, status=_STATUS[sync.status], remote_directory_url=sync.remote_url)

    @handles_errors
    def GetSync(self, request: pb.GetSyncRequest, context: grpc.ServicerContext) -> pb.GetSyncResponse:
        sync: Sync = self._syncs.get(request.sync_id)
        if sync.reason:
            # Also as trailing metadata, for clients built from the seed's proto (no field 6).
            context.set_trailing_metadata(((REASON_HEADER, _printable(sync.reason)),))
        return pb.GetSyncResponse(
            sync_id=sync.id,
            status=_STATUS[sync.status],
            remote_directory_url=sync.remote_url,
            created_time=_rfc3339(sync.created_at),
            last_update_time=_rfc3339(sync.updated_at),
            status_message=sync.reason or "",
        )

    @handles_errors
    def DeleteSync(self, request: pb.DeleteSyncRequest, context: grpc.ServicerContext) -> pb.DeleteSyncResponse:
        self._syncs.delete(request.sync_id)
        return pb.DeleteSyncResponse()

    @handles_errors
    def RequestRegistryCredentials(
        self, request: pb.RequestRegistryCredentialsRequest, context: grpc.ServicerContext
    ) -> pb.RequestRegistryCredentialsResponse:
        grant = self._credentials.request(request.requesting_node_id)
        response = pb.RequestRegistryCredentialsResponse(
            success=grant.success, error_message=grant.error, remote_registry_url=grant.registry_url
        )
        if grant.username or grant.password:
            response.basic_auth.CopyFrom(pb.BasicAuthCredentials(username=grant.username, password=grant.password))
        return response


def grpc_negotiator(node_id: str, timeout: float = NEGOTIATE_TIMEOUT) -> Callable[[str], RegistryAccess]:
    """``negotiate`` for :class:`~cairn.directory.sync.Syncs`: call the remote's RequestRegistryCredentials.

    Raises UnavailableError when the remote cannot be reached or fails,
    PermissionDeniedError when it refuses this node.
    """

    def negotiate(remote_url: str) -> RegistryAccess:
        remote = parse_remote_url(remote_url)
        channel = (
            grpc.secure_channel(remote.address, grpc.ssl_channel_credentials())
            if remote.tls
            else grpc.insecure_channel(remote.address)
        )
        with channel:
            stub = pb_grpc.SyncServiceStub(channel)
            try:
                answer = stub.RequestRegistryCredentials(
                    pb.RequestRegistryCredentialsRequest(requesting_node_id=node_id), timeout=timeout
                )
            except grpc.RpcError as exc:
                code: grpc.StatusCode = exc.code()
                details: str = exc.details() or code.name
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise UnavailableError(f"remote {remote.address} unreachable: {details}") from None
                if code == grpc.StatusCode.UNIMPLEMENTED:
                    raise UnavailableError(
                        f"remote {remote.address} does not serve the Directory SyncService ({details})"
                    ) from None
                raise UnavailableError(
                    f"remote {remote.address}: RequestRegistryCredentials failed ({code.name}: {details})"
                ) from None
        if not answer.success:
            raise PermissionDeniedError(
                f"remote {remote.address} refused registry access to node {node_id!r}: "
                f"{answer.error_message or 'no reason given'}"
            )
        credentials = answer.basic_auth if answer.HasField("basic_auth") else None
        return registry_access(
            answer.remote_registry_url,
            credentials.username if credentials is not None else None,
            credentials.password if credentials is not None else None,
        )

    return negotiate
