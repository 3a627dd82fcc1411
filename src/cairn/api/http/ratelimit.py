"""The HTTP face's rate limit: an aiohttp middleware over the shared :class:`RateLimiter`.

A client is the subject of a valid Bearer token (checked here: an HMAC, no
bcrypt) or else the remote IP address. Basic credentials are not checked
before the limit on purpose: a client guessing passwords is limited by its
address before any bcrypt work is done. ``X-Forwarded-For`` is not trusted.

Over the limit the answer is 429 with ``Retry-After`` (whole seconds) and the
face's own error body: OCI ``TOOMANYREQUESTS`` on ``/v2/`` and ``/token``,
Warg ``{"status":429,"message":...}`` on ``/v1/``. ``/healthz`` and
``/metrics`` are never limited (probes and scrapers must keep working).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from cairn.api.http.registry.errors import RegistryError, error_response
from cairn.api.http.warg.errors import json_response
from cairn.api.ratelimit import RateLimiter
from cairn.core.auth import Auth
from cairn.core.errors import UnauthenticatedError

__all__ = ["EXEMPT_PATHS", "rate_limit_middleware"]

#: Paths no limit applies to.
EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rate_limit_middleware(limiter: RateLimiter, auth: Auth | None) -> Middleware:
    """The middleware: one token of the client's bucket per request, 429 when there is none."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        client = _client(request, auth)
        wait = limiter.take(client)
        if wait <= 0:
            return await handler(request)
        seconds = max(1, math.ceil(wait))
        message = (
            f"rate limit exceeded for {client} ({limiter.rate:g} requests/s, burst {limiter.burst:g}); "
            f"retry in {seconds}s"
        )
        if request.path.startswith("/v1/"):
            response = json_response({"status": 429, "message": message}, 429)
        else:
            response = error_response(RegistryError(429, "TOOMANYREQUESTS", message))
        response.headers["Retry-After"] = str(seconds)
        return response

    return limit


def _client(request: web.Request, auth: Auth | None) -> str:
    """``user:<name>`` for a valid Bearer token's subject, else ``ip:<remote address>``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if auth is not None and scheme.lower() == "bearer" and token.strip():
        try:
            subject = auth.tokens.verify(token.strip()).subject
        except UnauthenticatedError:
            subject = None
        if subject:
            return f"user:{subject}"
    return f"ip:{request.remote or 'unknown'}"
