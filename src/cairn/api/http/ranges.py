"""Blob bodies for HTTP faces: RFC 9110 single byte ranges streamed from a :class:`ReaderAt`.

A backend with local files answers with ``sendfile`` (aiohttp's FileResponse
does ranges itself); one without (the S3 store) is streamed here, one piece at
a time through a worker thread, so the registry's and Warg's downloads honour
``Range`` alike whatever the backend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cairn.core.content.store import ReaderAt

__all__ = ["NOT_SATISFIABLE", "requested_range", "stream_range"]

#: Bytes read from the store per piece written to the client.
PIECE = 1 << 20
#: What :func:`requested_range` answers for a range outside the blob.
NOT_SATISFIABLE = (416, 0, 0)

Run = Callable[..., Awaitable[Any]]


def requested_range(request: web.Request, size: int) -> tuple[int, int, int]:
    """(status, start, stop) for ``request`` on a body of ``size`` bytes: 200, 206 or 416.

    ValueError for a malformed Range header (the face decides how to word it).
    """
    wanted = request.http_range
    start, stop = wanted.start, wanted.stop
    if start is None and stop is None:
        return 200, 0, size
    if start is None:  # suffix range: the last -stop bytes
        start, stop = max(size + (stop or 0), 0), size
    elif start < 0:  # aiohttp's spelling of a suffix range: bytes=-N is slice(-N, None)
        start, stop = max(size + start, 0), size
    stop = size if stop is None else min(stop, size)
    if start >= size or start >= stop:
        return NOT_SATISFIABLE
    return 206, start, stop


async def stream_range(
    request: web.Request,
    reader: ReaderAt,
    headers: dict[str, str],
    status: int,
    start: int,
    stop: int,
    run: Run,
) -> web.StreamResponse:
    """Send bytes ``[start, stop)`` of ``reader`` (``status`` 200 or 206); the caller closes ``reader``.

    The first piece is read before the status line goes out, so a store that cannot be
    read answers with its error (503 for an unreachable one), not a 200 that never ends.
    A failure after that can only cut the connection, which the client sees as a short body.
    """
    first = b""
    if request.method != "HEAD" and stop > start:
        first = await run(reader.read_at, start, min(PIECE, stop - start))
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{reader.size}"
    stream = web.StreamResponse(status=status, headers=headers)
    stream.content_length = stop - start
    await stream.prepare(request)
    if request.method == "HEAD":
        return stream
    offset = start
    data = first
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
