"""``/v2/<name>/blobs/<digest>``: GET and HEAD (with Range) and DELETE.

GET hands the blob's file to aiohttp's ``FileResponse``, which sends it with
``sendfile`` (zero-copy) and implements RFC 9110 ranges exactly as the spec's
table wants (206 with clamped ends, 416 with ``Content-Range: bytes */size``).
A backend without local files (S3, later) streams 1 MiB reads instead.
"""

from __future__ import annotations

from aiohttp import web

from cairn.api.http.registry.context import Face
from cairn.api.http.registry.paths import Route
from cairn.core.digest import Digest
from cairn.oci.errors import RangeNotSatisfiableError
from cairn.oci.registry import check_repository, parse_digest

__all__ = ["delete_blob", "get_blob"]

_STREAM_PIECE = 1 << 20


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
        wanted = request.http_range
    except ValueError:
        raise RangeNotSatisfiableError(f"invalid Range {request.headers.get('Range')!r}") from None
    start, stop = wanted.start, wanted.stop
    status = 200
    if start is not None or stop is not None:
        if start is None:  # suffix range: the last -stop bytes
            start, stop = max(size + (stop or 0), 0), size
        stop = size if stop is None else min(stop, size)
        if start >= size or start >= stop:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        status = 206
    else:
        start, stop = 0, size
    stream = web.StreamResponse(status=status, headers=headers)
    stream.content_length = stop - start
    await stream.prepare(request)
    if request.method == "HEAD":
        return stream
    reader = await face.run(face.registry.blobs.open, name, digest)
    try:
        offset = start
        while offset < stop:
            data = await face.run(reader.read_at, offset, min(_STREAM_PIECE, stop - offset))
            if not data:
                break
            await stream.write(data)
            offset += len(data)
    finally:
        await face.run(reader.close)
    await stream.write_eof()
    return stream


async def delete_blob(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    digest = parse_digest(route.arg)
    await face.require(request, name, "delete")
    await face.run(face.registry.blobs.delete, name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})
