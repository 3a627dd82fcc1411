"""Blob bodies for HTTP faces: RFC 9110 single byte ranges streamed from a :class:`ReaderAt`.

A backend with local files answers with ``sendfile`` (aiohttp's FileResponse
does ranges itself); one without (the S3 store) is sent by :func:`send_blob`,
one piece at a time through a worker thread, answering ranges the way
FileResponse does, so the registry's and Warg's downloads behave alike
whatever the backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cairn.core.content.store import ReaderAt

__all__ = ["requested_range", "send_blob"]

#: Bytes read from the store per piece written to the client.
PIECE = 1 << 20

Run = Callable[..., Awaitable[Any]]


def requested_range(request: web.Request, size: int) -> tuple[int, int, bool] | None:
    """``(start, stop, partial)``: the bytes ``[start, stop)`` that ``request`` asks for from a
    body of ``size`` bytes, and whether it asked for a range at all (206) or not (200, the
    whole body); None when the range cannot be satisfied or is malformed (416, as
    FileResponse answers both)."""
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return 0, size, False
    if start is None:  # suffix range: the last -stop bytes
        start, stop = max(size + (stop or 0), 0), size
    elif start < 0:  # aiohttp's spelling of a suffix range: bytes=-N is slice(-N, None)
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        return None
    return start, stop, True


async def send_blob(request: web.Request, reader: ReaderAt, headers: dict[str, str], run: Run) -> web.StreamResponse:
    """Answer ``request`` (GET or HEAD) with ``reader``'s bytes: 200, 206 or 416; the caller closes ``reader``.

    The first piece is read before the status line goes out, so a store that cannot be
    read answers with its error (503 for an unreachable one), not a 200 that never ends.
    A failure after that can only cut the connection, which the client sees as a short body.
    """
    size = reader.size
    wanted = requested_range(request, size)
    if wanted is None:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    start, stop, partial = wanted
    headers["Accept-Ranges"] = "bytes"
    if partial:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    data = b""
    if request.method != "HEAD" and stop > start:
        data = await run(reader.read_at, start, min(PIECE, stop - start))
    stream = web.StreamResponse(status=206 if partial else 200, headers=headers)
    stream.content_length = stop - start
    await stream.prepare(request)
    if request.method == "HEAD":
        return stream
    offset = start
    try:
        while data:
            await stream.write(data)
            offset += len(data)
            if offset >= stop:
                break
            data = await run(reader.read_at, offset, min(PIECE, stop - offset))
    except Exception:
        if request.transport is not None:
            request.transport.close()  # the client must not wait for bytes that will not come
        raise
    await stream.write_eof()
    return stream
