"""cairn's HTTP face (aiohttp): ``/healthz`` and Prometheus ``/metrics`` so far.

aiohttp serves files with ``sendfile`` (zero-copy, the lowest CPU per GiB in
specs/measurements.md), which the registry face needs for blob GETs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cairn.api.metrics import Metrics

__all__ = ["build_http_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_http_app(metrics: Metrics, version: str) -> web.Application:
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

    app = web.Application(middlewares=[count])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", scrape)
    return app
