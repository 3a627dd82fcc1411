"""``/v2/<name>/blobs/<digest>``: GET and HEAD (with Range) and DELETE.

GET hands the blob's file to aiohttp's ``FileResponse``, which sends it with
``sendfile`` (zero-copy) and implements RFC 9110 ranges exactly as the spec's
table wants (206 with clamped ends, 416 with ``Content-Range: bytes */size``).
A backend without local files (S3, later) streams 1 MiB reads instead.
"""

from __future__ import annotations

from aiohttp import web

from cairn.api.http.ranges import NOT_SATISFIABLE, requested_range, stream_range
from cairn.api.http.registry.context import Face
from cairn.api.http.registry.paths import Route
from cairn.core.digest import Digest
from cairn.oci.registry import check_repository, parse_digest

__all__ = ["delete_blob", "get_blob"]

def _locate(face: Face, name: str, digest: Digest) -> tuple[int, str | None]:
    with face.registry.blobs.open(name, digest) as reader:
        return reader.size, reader.path


async def get_blob(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    digest = parse_digest(route.arg)
    await face.require(request, name, "pull")
    size, path = await face.run(_locate, face, name, digest)
    headers = {"Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream"}
    if path is not None:
        return web.FileResponse(path, headers=headers)
    return await _stream(face, request, name, digest, size, headers)


async def _stream(
    face: Face, request: web.Request, name: str, digest: Digest, size: int, headers: dict[str, str]
) -> web.StreamResponse:
    try:
        status, start, stop = requested_range(request, size)
    except ValueError:  # as aiohttp's FileResponse answers it on local disk
        status, start, stop = NOT_SATISFIABLE
    headers["Accept-Ranges"] = "bytes"
    headers["ETag"] = f'"{digest}"'
    if status == 416:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    reader = await face.run(face.registry.blobs.open, name, digest)
    try:
        return await stream_range(request, reader, headers, status, start, stop, face.run)
    finally:
        await face.run(reader.close)


async def delete_blob(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    digest = parse_digest(route.arg)
    await face.require(request, name, "delete")
    await face.run(face.registry.blobs.delete, name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
