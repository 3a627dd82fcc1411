"""``cairn serve``: compose backends, domain and faces from one Settings object, run until a signal.

One process hosts the gRPC server (its own thread pool) and the HTTP server
(an asyncio loop in the main thread). Start-up order: data directory lock,
catalog (migrated), content store (crash leftovers removed), faces. Shutdown on
SIGINT/SIGTERM runs in reverse: listeners stop taking work, in-flight calls get
a grace period, open ingests are closed (so they stay resumable), then the
store and catalog close.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import shutil
import signal
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from cairn import __version__
from cairn.api.grpc.auth import GrpcGate
from cairn.api.grpc.directory_store import StoreServicer
from cairn.api.grpc.directory_sync import SyncServicer, grpc_negotiator
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as image_grpc
from cairn.api.grpc.gen.containerd.services.leases.v1 import leases_pb2_grpc as leases_grpc
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as store_grpc
from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as sync_grpc
from cairn.api.grpc.images import ImageServicer
from cairn.api.grpc.leases import LeasesServicer
from cairn.api.grpc.scopes import ScopeMap
from cairn.api.grpc.server import build_grpc_server
from cairn.api.http.app import build_http_app
from cairn.api.http.auth import HttpAuth
from cairn.api.http.ratelimit import rate_limit_middleware
from cairn.api.metrics import Metrics
from cairn.api.ratelimit import RateLimiter
from cairn.api.tls import ServerTls, load_server_tls
from cairn.core.auth import open_auth
from cairn.core.catalog import Catalog, open_catalog
from cairn.core.content import ContentStore, open_content_store
from cairn.core.errors import UnavailableError
from cairn.core.gc import GarbageCollector, GcPolicy
from cairn.core.gc.schedule import GcSchedule
from cairn.directory.credentials import SyncCredentials
from cairn.directory.replication import Replicator
from cairn.directory.store import RecordStore
from cairn.directory.sync import Syncs
from cairn.images import ImageStore
from cairn.images.access import RegistryAccess
from cairn.images.service import ImageService
from cairn.oci.registry import Registry
from cairn.settings import Settings, parse_cpus
from cairn.warg.registry import PublishPolicy, WargRegistry, load_operator_key

__all__ = ["serve"]

log = logging.getLogger(__name__)

#: Seconds in-flight calls get to finish on shutdown before they are cancelled.
SHUTDOWN_GRACE = 5.0
#: Threads for blocking work of HTTP requests (catalog writes and fsyncs may wait on the disk).
HTTP_WORKER_THREADS = 32
#: How often idle upload sessions are looked for, in seconds.
UPLOAD_SWEEP_SECONDS = 600.0
#: Bytes aiohttp buffers per connection before it stops reading the socket.
HTTP_READ_BUFFER = 2 << 20


def _lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on the data directory for the life of the process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UnavailableError(
            f"data directory {data_dir} is in use by another cairn serve"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _claim_socket(path: Path) -> None:
    """Remove a stale unix socket; refuse one another process still answers on."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise UnavailableError(f"socket {path} is in use by another server")


def serve(settings: Settings) -> None:
    """Run the server until SIGINT or SIGTERM. Raises CairnError on a start-up problem."""
    settings.check_binding()
    tls = load_server_tls(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit > 0 else None
    with ExitStack() as stack:
        lock_fd = _lock_data_dir(settings.data_dir)
        stack.callback(os.close, lock_fd)
        catalog = open_catalog(settings.catalog)
        stack.callback(catalog.close)
        store = open_content_store(settings.content, catalog)
        stack.callback(store.close)
        metrics = Metrics()

        socket_path = settings.socket_path.absolute()
        _claim_socket(socket_path)
        registry = Registry(
            store,
            catalog.registry,
            namespace=settings.registry_namespace,
            manifest_max_bytes=settings.manifest_max_bytes,
        )
        records = RecordStore(registry, settings.directory_repository)
        core_auth = (
            open_auth(
                settings.users_file,
                settings.access_file,
                settings.token_key_path,
                settings.token_ttl_seconds,
            )
            if settings.users_file is not None
            else None
        )
        syncs = Syncs(
            catalog.syncs,
            Replicator(registry, settings.directory_repository),
            grpc_negotiator(settings.directory_node_id),
            poll_seconds=settings.sync_poll_seconds,
            claims=catalog.claims,
        )
        credentials = SyncCredentials(
            core_auth, settings.registry_url, settings.directory_repository, settings.sync_allowed_nodes
        )
        images = _open_images(settings, catalog, store)
        grpc_faces = build_grpc_server(
            store,
            metrics,
            tcp=str(settings.grpc_addr),
            unix_socket=str(socket_path),
            workers=settings.grpc_workers,
            read_chunk=settings.read_chunk_bytes,
            verify_reads_max_bytes=settings.verify_reads_max_bytes,
            cpus=parse_cpus(settings.grpc_cpus),
            services=[
                lambda server: store_grpc.add_StoreServiceServicer_to_server(StoreServicer(records, metrics), server),
                lambda server: sync_grpc.add_SyncServiceServicer_to_server(
                    SyncServicer(syncs, credentials, metrics), server
                ),
                lambda server: image_grpc.add_ImageServiceServicer_to_server(
                    ImageServicer(images, metrics), server
                ),
                lambda server: leases_grpc.add_LeasesServicer_to_server(
                    LeasesServicer(catalog.leases, metrics), server
                ),
            ],
            interceptors=[
                GrpcGate(
                    core_auth,
                    ScopeMap(settings.registry_namespace, settings.images_namespace, settings.directory_repository),
                    limiter,
                    token_url=f"{settings.registry_url.rstrip('/')}/token",
                )
            ],
            tls=tls,
            leases=catalog.leases,
        )
        stack.callback(grpc_faces.stop, SHUTDOWN_GRACE)
        syncs.start()  # resumes the syncs of the catalog; stopped before the catalog closes
        stack.callback(syncs.stop)
        warg = _open_warg(settings, catalog, store)
        warg.start()
        stack.callback(warg.stop)
        gc_schedule = GcSchedule(
            GarbageCollector(catalog, store, gc_policy(settings)), catalog.claims, settings.gc_interval_seconds
        )
        gc_schedule.start()  # stopped before the store and catalog close
        stack.callback(gc_schedule.stop)
        auth = HttpAuth(core_auth)
        middlewares = [rate_limit_middleware(limiter, core_auth)] if limiter is not None else []
        asyncio.run(_run_http(settings, metrics, socket_path, registry, auth, warg, tls=tls, middlewares=middlewares))
        log.info("shutting down: waiting up to %.0fs for in-flight calls", SHUTDOWN_GRACE)


def gc_policy(settings: Settings) -> GcPolicy:
    """Garbage collection's policy from the settings (``cairn gc`` uses it too)."""
    return GcPolicy(
        registry_namespace=settings.registry_namespace,
        directory_repository=settings.directory_repository,
        images_namespace=settings.images_namespace,
        grace_seconds=settings.gc_grace_seconds,
        ingest_expiry_seconds=settings.ingest_expiry_seconds,
    )


def _open_images(settings: Settings, catalog: Catalog, store: ContentStore) -> ImageService:
    """The image service: images in their content namespace, builds in ``<data_dir>/builds``."""
    access = RegistryAccess(
        insecure=settings.image_insecure_list,
        credentials_file=settings.image_auth_file,
        parallel=settings.image_parallel_transfers,
    )
    workdir = (settings.data_dir / "builds").absolute()
    _clear_build_leftovers(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return ImageService(ImageStore(store, catalog.images, settings.images_namespace), access, workdir)


def _clear_build_leftovers(workdir: Path) -> None:
    """Remove what builds that died with an earlier process left, unless something is mounted there.

    RUN mounts only inside its own mount namespace, so nothing should be; if a
    mount is found anyway the directory is left alone rather than deleting
    through it (a bind-mounted /dev, say).
    """
    if not workdir.exists():
        return
    prefix = str(workdir) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
        mounted = [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
    if mounted:
        log.warning("not clearing %s: %d mount(s) below it, e.g. %s", workdir, len(mounted), mounted[0])
        return
    for entry in workdir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _open_warg(settings: Settings, catalog: Catalog, store: ContentStore) -> WargRegistry:
    """The Warg registry, its operator log brought up to the configured namespaces."""
    warg = WargRegistry(
        catalog.warg,
        store,
        settings.registry_namespace,
        load_operator_key(settings.warg_key_path, create=settings.warg_operator_key_file is None),
        checkpoint_interval=settings.warg_checkpoint_interval,
        policy=PublishPolicy(
            authorized_keys=settings.warg_key_policy,
            wasm_only=settings.warg_wasm_only,
            upload_max_bytes=settings.warg_upload_max_bytes,
        ),
        claims=catalog.claims,
    )
    warg.initialise(settings.warg_namespace_list, settings.warg_imports)
    return warg


async def _run_http(
    settings: Settings,
    metrics: Metrics,
    socket_path: Path,
    registry: Registry,
    auth: HttpAuth,
    warg: WargRegistry,
    *,
    tls: ServerTls | None = None,
    middlewares: Sequence[Middleware] = (),
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(HTTP_WORKER_THREADS, thread_name_prefix="http-work"))
    runner = web.AppRunner(
        build_http_app(
            metrics, __version__, registry, auth, warg, settings.registry_url, middlewares=middlewares,
            verify_reads_max_bytes=settings.verify_reads_max_bytes,
        ),
        access_log=None,
        read_bufsize=HTTP_READ_BUFFER,
        auto_decompress=False,  # blob bytes must arrive exactly as sent
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.http_addr.host,
        settings.http_addr.port,
        reuse_port=False,
        ssl_context=tls.ssl_context() if tls is not None else None,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UnavailableError(f"cannot listen for HTTP on {settings.http_addr}: {exc.strerror}") from None

    stop = asyncio.Event()
    sweeper = asyncio.create_task(_expire_uploads(registry, settings.upload_expiry_seconds))
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    gc.freeze()  # start-up objects never die; keep the collector off them (measured: faster Reads)
    log.info(
        "cairn %s serving: grpc%s %s and unix:%s, http %s://%s (registry at /v2/, warg at /v1/, data in %s)",
        __version__,
        "+tls" if tls is not None else "",
        settings.grpc_addr,
        socket_path,
        "https" if tls is not None else "http",
        settings.http_addr,
        settings.data_dir,
    )
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        await runner.cleanup()


async def _expire_uploads(registry: Registry, idle_seconds: int) -> None:
    """Cancel upload sessions idle for longer than ``idle_seconds``, now and then."""
    while True:
        try:
            await asyncio.to_thread(registry.uploads.expire, idle_seconds)
        except Exception:  # a busy catalog must not end the sweeper; try again next round
            log.exception("could not expire idle upload sessions")
        await asyncio.sleep(min(UPLOAD_SWEEP_SECONDS, max(idle_seconds / 4, 1.0)))
