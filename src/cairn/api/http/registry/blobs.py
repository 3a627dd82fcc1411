"""``/v2/<name>/blobs/<digest>``: GET and HEAD (with Range) and DELETE.

GET hands the blob's file to aiohttp's ``FileResponse``, which sends it with
``sendfile`` (zero-copy) and implements RFC 9110 ranges exactly as the spec's
table wants (206 with clamped ends, 416 with ``Content-Range: bytes */size``).
A backend without local files (S3) is sent by :func:`cairn.api.http.ranges.send_blob`.
With read verification on, a whole-blob GET is checked against its digest as it is
sent (:func:`cairn.api.http.ranges.send_verified_file`, still ``sendfile``).
"""

from __future__ import annotations

from aiohttp import web

from cairn.api.http.ranges import is_whole_get, send_blob, send_verified_file
from cairn.api.http.registry.context import Face
from cairn.api.http.registry.paths import Route
from cairn.oci.registry import check_repository, parse_digest

__all__ = ["delete_blob", "get_blob"]

async def get_blob(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    digest = parse_digest(route.arg)
    await face.require(request, name, "pull")
    reader = await face.run(face.registry.blobs.open, name, digest)
    headers = {"Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream"}
    verify = digest if reader.size <= face.verify_reads_max_bytes else None
    try:
        if reader.path is not None:
            if verify is not None and is_whole_get(request):
                return await send_verified_file(request, reader.path, reader.size, digest, headers, face.run)
            return web.FileResponse(reader.path, headers=headers)
        headers["ETag"] = f'"{digest}"'
        return await send_blob(request, reader, headers, face.run, verify)
    finally:
        reader.close()  # no I/O: a local reader opens its file only to read, which sendfile does itself


async def delete_blob(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    digest = parse_digest(route.arg)
    await face.require(request, name, "delete")
    await face.run(face.registry.blobs.delete, name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
