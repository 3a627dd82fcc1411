"""Dispatch of ``/v2/`` requests and the one place errors become OCI error JSON.

One catch-all aiohttp route takes every ``/v2/...`` path (repository names
contain ``/``); :func:`~cairn.api.http.registry.paths.route_of` says which
handler it is, and the method picks among the route's handlers (405 with
UNSUPPORTED for a method a route does not have).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from cairn.api.http.auth import HttpAuth
from cairn.api.http.registry import blobs, listing, manifests, uploads
from cairn.api.http.registry.context import API_VERSION, Face
from cairn.api.http.registry.errors import RegistryError, error_response, from_domain_error
from cairn.api.http.registry.paths import Route, route_of
from cairn.core.errors import CairnError
from cairn.oci.registry import Registry

__all__ = ["add_registry_routes"]

log = logging.getLogger(__name__)

Handler = Callable[[Face, web.Request, Route], Awaitable[web.StreamResponse]]


async def _base(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    await face.auth.require(request, [])
    return web.Response(body=b"{}", content_type="application/json")


async def _openapi(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    """The packaged OpenAPI document of this face; public, like the Warg face's ``/v1/openapi.json``."""
    return web.Response(body=_openapi_document(), headers={"Content-Type": "application/json"})


@functools.cache
def _openapi_document() -> bytes:
    """Read once: the document never changes while serving."""
    return resources.files("cairn.api.http.registry").joinpath("openapi.json").read_bytes()


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("base", "GET"): _base,
    ("base", "HEAD"): _base,
    ("openapi", "GET"): _openapi,
    ("catalog", "GET"): listing.list_catalog,
    ("tags", "GET"): listing.list_tags,
    ("blob", "GET"): blobs.get_blob,
    ("blob", "HEAD"): blobs.get_blob,
    ("blob", "DELETE"): blobs.delete_blob,
    ("upload", "POST"): uploads.start_upload,
    ("upload", "PATCH"): uploads.patch_upload,
    ("upload", "PUT"): uploads.finish_upload,
    ("upload", "GET"): uploads.upload_status,
    ("upload", "DELETE"): uploads.cancel_upload,
    ("manifest", "GET"): manifests.get_manifest,
    ("manifest", "HEAD"): manifests.get_manifest,
    ("manifest", "PUT"): manifests.put_manifest,
    ("manifest", "DELETE"): manifests.delete_manifest,
    ("referrers", "GET"): manifests.list_referrers,
}


def add_registry_routes(
    app: web.Application, registry: Registry, auth: HttpAuth, *, verify_reads_max_bytes: int = 16 << 20
) -> None:
    face = Face(registry, auth, verify_reads_max_bytes)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            response = await _dispatch(face, request)
        except RegistryError as exc:
            response = error_response(exc)
        except CairnError as exc:
            response = error_response(from_domain_error(exc))
        except ConnectionError as exc:
            # The client hung up mid-request; what it sent is kept (uploads resume from
            # their status). Nobody is there to read an answer.
            log.info("%s %s: client went away (%s)", request.method, request.path, exc)
            response = error_response(RegistryError(400, "CONNECTION_LOST", "client closed the connection"))
        except (asyncio.CancelledError, web.HTTPException):
            raise
        except Exception as exc:  # a bug: say so in the OCI form, keep the traceback in the log
            log.exception("%s %s failed", request.method, request.path)
            response = error_response(RegistryError(500, "UNKNOWN", f"internal error: {exc.__class__.__name__}"))
        if not response.prepared:
            response.headers[API_VERSION[0]] = API_VERSION[1]
        return response

    app.router.add_route("*", "/v2", handle)
    # [\s\S], not ".": a path with a (percent-encoded) newline must still get the OCI 404 body.
    app.router.add_route("*", r"/v2/{tail:[\s\S]*}", handle)


async def _dispatch(face: Face, request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "")
    route = route_of(tail)
    if route is None:
        raise RegistryError(404, "NOT_FOUND", f"no registry endpoint at {request.path}")
    if route.kind == "upload" and route.arg == "":
        method_handler = _HANDLERS.get(("upload", "POST")) if request.method == "POST" else None
    else:
        method_handler = _HANDLERS.get((route.kind, request.method))
    if method_handler is None or (route.kind == "upload" and route.arg and request.method == "POST"):
        raise RegistryError(
            405,
            "UNSUPPORTED",
            f"{request.method} is not supported on {request.path}",
            headers={"Allow": ", ".join(_allowed(route))},
        )
    return await method_handler(face, request, route)


def _allowed(route: Route) -> list[str]:
    """The methods of ``route``: ``.../uploads/`` takes only POST, a session URL everything but POST."""
    methods = sorted(m for (k, m) in _HANDLERS if k == route.kind)
    if route.kind == "upload":
        return [m for m in methods if (m == "POST") == (route.arg == "")]
    return methods
