"""cairn's gRPC server: grpcio's synchronous thread-pool server, on TCP and a unix socket.

Measured on this machine kind (specs/measurements.md), the thread-pool server
beat ``grpc.aio`` on the content API's hot paths (``ctr content get`` issues
one Read per 32 KiB; ingest is one long Write stream), so the faces here are
plain blocking code. ``SO_REUSEPORT`` is off so that a second server on the
same port fails loudly instead of sharing it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc

from cairn.api.grpc.content_seed import SeedContentServicer
from cairn.api.grpc.content_v1 import ContentServicer
from cairn.api.grpc.context import MAX_MESSAGE_BYTES
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as v1_grpc
from cairn.api.grpc.gen.containerd.v1 import content_pb2_grpc as seed_grpc
from cairn.api.metrics import Metrics
from cairn.api.tls import ServerTls
from cairn.core.catalog import LeaseCatalog
from cairn.core.content import ContentStore
from cairn.core.errors import UnavailableError

__all__ = ["MAX_MESSAGE_BYTES", "SOCKET_MODE", "GrpcFaces", "build_grpc_server"]

#: Mode of the unix socket file: the server's user and group may connect, nobody else.
SOCKET_MODE = 0o660



class GrpcFaces:
    """The running gRPC server and the event that tells long watches to end."""

    def __init__(self, server: grpc.Server, stopping: threading.Event) -> None:
        self.server = server
        self.stopping = stopping

    def stop(self, grace: float) -> None:
        self.stopping.set()
        self.server.stop(grace).wait()


def build_grpc_server(
    store: ContentStore,
    metrics: Metrics,
    *,
    tcp: str | None,
    unix_socket: str | None,
    workers: int,
    read_chunk: int,
    cpus: frozenset[int] | None = None,
    services: Sequence[Callable[[grpc.Server], None]] = (),
    verify_reads_max_bytes: int = 16 << 20,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    tls: ServerTls | None = None,
    leases: LeaseCatalog | None = None,
) -> GrpcFaces:
    """Create, bind and start the server; UnavailableError naming the address if a bind fails.

    With ``cpus``, grpcio's threads (its core threads, its polling thread and the
    worker pool they start) run only on those CPUs; the rest of the process keeps
    all of its CPUs. Threads inherit the affinity of the thread that starts them,
    so the caller's affinity is narrowed while the server starts, then restored.
    ``services`` add further servicers (the Directory faces) to the server;
    ``interceptors`` run before every call (token auth, rate limits). With
    ``tls`` the TCP port speaks TLS; the unix socket stays plaintext, its file
    mode :data:`SOCKET_MODE` (callers of it are trusted).
    """
    stopping = threading.Event()
    with _affinity(cpus):  # grpcio creates its threads while the server starts
        server = grpc.server(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
            interceptors=list(interceptors),
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        v1_grpc.add_ContentServicer_to_server(
            ContentServicer(store, metrics, read_chunk, verify_reads_max_bytes=verify_reads_max_bytes, leases=leases), server
        )
        seed_grpc.add_ContentServicer_to_server(
            SeedContentServicer(store, metrics, stopping, read_chunk, verify_reads_max_bytes=verify_reads_max_bytes), server
        )
        for add_service in services:
            add_service(server)
        if tcp:
            _listen(server, tcp, tls)
        if unix_socket:
            # Created 0660 from the start (umask), not opened up and narrowed later.
            umask = os.umask(0o777 & ~SOCKET_MODE)
            try:
                _listen(server, f"unix:{unix_socket}", None)
            finally:
                os.umask(umask)
            os.chmod(unix_socket, SOCKET_MODE)
        server.start()
    return GrpcFaces(server, stopping)


def _listen(server: grpc.Server, address: str, tls: ServerTls | None) -> None:
    try:
        if tls is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, tls.grpc_credentials())
    except RuntimeError as exc:
        raise UnavailableError(f"cannot listen for gRPC on {address}: {exc}") from None


@contextmanager
def _affinity(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the block on ``cpus`` only (None: unchanged), then restore the thread's affinity."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
