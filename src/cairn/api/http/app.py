"""cairn's HTTP face (aiohttp): the OCI registry ``/v2/`` and its ``/token``, the Warg API ``/v1/``,
``/healthz`` and ``/metrics``.

aiohttp serves files with ``sendfile`` (zero-copy, the lowest CPU per GiB in
specs/measurements.md), which the registry face needs for blob GETs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import http_exceptions, web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cairn.api.http.auth import HttpAuth, add_token_routes
from cairn.api.http.registry.app import add_registry_routes
from cairn.api.http.warg import add_warg_routes
from cairn.api.metrics import Metrics
from cairn.oci.registry import Registry
from cairn.warg.registry import WargRegistry

__all__ = ["build_http_app"]

log = logging.getLogger(__name__)


class _ProtocolNoise(logging.Filter):
    """One line, not a traceback, for requests that are not HTTP at all.

    skopeo and podman open every plain-HTTP registry with a TLS ClientHello;
    aiohttp answers 400 (as it should) and logs a full traceback for each.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, http_exceptions.HttpProcessingError):
            log.info("refused a malformed request: %s", exc.message or exc.__class__.__name__)
            return False
        return True


_quiet = _ProtocolNoise()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_http_app(
    metrics: Metrics,
    version: str,
    registry: Registry | None = None,
    auth: HttpAuth | None = None,
    warg: WargRegistry | None = None,
    base_url: str = "",
    middlewares: Sequence[Middleware] = (),
    verify_reads_max_bytes: int = 16 << 20,
) -> web.Application:
    """The app; ``middlewares`` run inside the request counter (so 429s are counted), e.g. rate limits."""

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.http_requests.labels(name, str(exc.status)).inc()
            raise
        metrics.http_requests.labels(name, str(response.status)).inc()
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": version})

    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    logging.getLogger("aiohttp.server").addFilter(_quiet)
    app = web.Application(middlewares=[count, *middlewares])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", scrape)
    if registry is not None:
        gate = auth or HttpAuth(None)
        add_registry_routes(app, registry, gate, verify_reads_max_bytes=verify_reads_max_bytes)
        add_token_routes(app, gate)
    if warg is not None:
        add_warg_routes(app, warg, base_url, verify_reads_max_bytes=verify_reads_max_bytes)
    return app
