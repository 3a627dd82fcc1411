"""``/v2/<name>/tags/list`` and ``/v2/_catalog``: sorted names, ``n``/``last`` paging, ``Link``.

``last`` without ``n`` pages too (distribution ignores it and fails the
conformance suite). A page that stops before the end says so with
``Link: <...?last=<last>&n=<n>>; rel="next"``; ``n=0`` is an empty list without
``Link``.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from cairn.api.http.registry.context import Face
from cairn.api.http.registry.errors import RegistryError
from cairn.api.http.registry.paths import Route
from cairn.core.auth import Scope
from cairn.oci.registry import check_repository

__all__ = ["list_catalog", "list_tags", "next_link"]

#: Catalog entries per page without ``n`` (DECISIONS.md oci 10), and the most one page holds.
CATALOG_PAGE = 100
#: Tags per page without ``n`` (clients rarely page tags; distribution returns them all).
TAGS_PAGE = 10_000
MAX_PAGE = 10_000


def next_link(path: str, query: dict[str, str]) -> str:
    return f'<{path}?{urlencode(query)}>; rel="next"'


def _page_size(request: web.Request, default: int) -> int:
    text = request.query.get("n")
    if text is None or text == "":
        return default
    # isascii: str.isdigit() is also true for "²" and other digits int() refuses.
    if not (text.isascii() and text.isdigit()):
        raise RegistryError(400, "PAGINATION_NUMBER_INVALID", f"n={text!r} is not a number >= 0", {"n": text})
    # Past MAX_PAGE the value does not matter; int() would refuse more than 4300 digits.
    return MAX_PAGE if len(text) > len(str(MAX_PAGE)) else min(int(text), MAX_PAGE)


def _paged(request: web.Request, key: str, items: list[str], more: bool, n: int, extra: dict[str, object]) -> web.Response:
    response = web.Response(body=json.dumps({**extra, key: items}).encode(), content_type="application/json")
    if more and items:
        response.headers["Link"] = next_link(request.path, {"last": items[-1], "n": str(n)})
    return response


async def list_tags(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull")
    n = _page_size(request, TAGS_PAGE)
    page = await face.run(face.registry.tags, name, request.query.get("last") or None, n)
    return _paged(request, "tags", page.items, page.more, n, {"name": name})


async def list_catalog(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    await face.auth.require(request, [Scope("registry", "catalog", frozenset({"*"}))])
    n = _page_size(request, CATALOG_PAGE)
    page = await face.run(face.registry.repositories, request.query.get("last") or None, n)
    names = page.items
    if face.auth.enabled:
        names = [
            repo for repo in names if await face.auth.allowed(request, Scope("repository", repo, frozenset({"pull"})))
        ]
    response = _paged(request, "repositories", names, page.more, n, {})
    if page.more and not names and page.items:
        response.headers["Link"] = next_link(request.path, {"last": page.items[-1], "n": str(n)})
    return response
