"""What every ``/v2/`` handler needs: the registry, the auth gate, and a way off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar
from urllib.parse import quote

from aiohttp import web

from cairn.api.http.auth import HttpAuth
from cairn.core.auth import Scope
from cairn.oci.registry import Registry

__all__ = ["API_VERSION", "Face", "blob_url", "manifest_url", "upload_url"]

#: Sent on every ``/v2/`` response; Docker-engine clients look for it on ``/v2/``.
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Face:
    registry: Registry
    auth: HttpAuth
    #: check whole-blob GETs of blobs up to this size against their digest as they are sent
    #: (setting ``verify_reads_max_bytes``; 0: never)
    verify_reads_max_bytes: int = 16 << 20

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking domain call in a worker thread (disk and catalog never block the loop)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def require(self, request: web.Request, name: str, *actions: str) -> str | None:
        """The caller (None: anonymous) if it may do ``actions`` on repository ``name``; else 401/403."""
        return await self.auth.require(request, [Scope("repository", name, frozenset(actions))])


def _path(name: str) -> str:
    return quote(name, safe="/")


def blob_url(name: str, digest: object) -> str:
    return f"/v2/{_path(name)}/blobs/{digest}"


def manifest_url(name: str, reference: object) -> str:
    return f"/v2/{_path(name)}/manifests/{reference}"


def upload_url(name: str, upload_id: str) -> str:
    """The session's ``Location``: relative, as DECISIONS.md oci 1 settles."""
    return f"/v2/{_path(name)}/blobs/uploads/{upload_id}"
