"""Blob bodies for HTTP faces: RFC 9110 single byte ranges streamed from a :class:`ReaderAt`.

A backend with local files answers with ``sendfile`` (aiohttp's FileResponse
does ranges itself); one without (the S3 store) is sent by :func:`send_blob`,
one piece at a time through a worker thread, answering ranges the way
FileResponse does, so the registry's and Warg's downloads behave alike
whatever the backend.

A whole-blob GET (no Range) with read verification on (the blob is at most
``verify_reads_max_bytes``) is hashed as it goes and its final piece is held back until
the digest matches; on a mismatch the connection is cut, so the client sees a
short body, never a complete wrong one. A local file still goes out with
``sendfile`` (:func:`send_verified_file`): a worker thread hashes it from the
page cache while the kernel sends all but its last piece, so the check costs
about as long as the hash, not a copy through Python.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cairn.core.content.store import ReaderAt
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError
from cairn.integrity.verified_reads import WholeBlobCheck

__all__ = ["is_whole_get", "requested_range", "send_blob", "send_verified_file"]

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


def is_whole_get(request: web.Request) -> bool:
    """Whether ``request`` is a GET of the whole body (no Range), the read that can be verified."""
    return request.method == "GET" and "Range" not in request.headers


def _read(reader: ReaderAt, offset: int, length: int, check: WholeBlobCheck | None) -> bytes:
    """One piece, hashed in the same worker thread when the read is verified."""
    data = reader.read_at(offset, length)
    if check is not None:
        check.update(data)
    return data


def _cut(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()  # the client must not wait for bytes that will not come


async def send_blob(
    request: web.Request, reader: ReaderAt, headers: dict[str, str], run: Run, verify: Digest | None = None
) -> web.StreamResponse:
    """Answer ``request`` (GET or HEAD) with ``reader``'s bytes: 200, 206 or 416; the caller closes ``reader``.

    The first piece is read before the status line goes out, so a store that cannot be
    read answers with its error (503 for an unreachable one), not a 200 that never ends.
    A failure after that can only cut the connection, which the client sees as a short body.
    With ``verify`` (the blob's digest) a whole-body GET is checked before its last piece.
    """
    size = reader.size
    wanted = requested_range(request, size)
    if wanted is None:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    start, stop, partial = wanted
    headers["Accept-Ranges"] = "bytes"
    if partial:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    check = WholeBlobCheck(verify) if verify is not None and not partial and request.method == "GET" else None
    data = b""
    if request.method != "HEAD" and stop > start:
        data = await run(_read, reader, start, min(PIECE, stop - start), check)
    stream = web.StreamResponse(status=206 if partial else 200, headers=headers)
    stream.content_length = stop - start
    await stream.prepare(request)
    if request.method == "HEAD":
        return stream
    offset = start
    try:
        while data:
            if check is not None and offset + len(data) >= stop:
                check.verify("HTTP GET")
            await stream.write(data)
            offset += len(data)
            if offset >= stop:
                break
            data = await run(_read, reader, offset, min(PIECE, stop - offset), check)
    except DataLossError:
        _cut(request)
        return stream
    except Exception:
        _cut(request)
        raise
    await stream.write_eof()
    return stream


async def send_verified_file(
    request: web.Request, path: str, size: int, digest: Digest, headers: dict[str, str], run: Run
) -> web.StreamResponse:
    """Send the local file ``path`` (blob ``digest``, ``size`` bytes) whole, with ``sendfile``, verified.

    A worker thread hashes the file while the kernel sends all but its last piece; the
    last piece follows only if the digest matched, else the connection is cut. The
    caller has checked it is a whole-body GET (:func:`is_whole_get`).
    """
    check = WholeBlobCheck(digest)
    hashing = asyncio.ensure_future(run(check.hash_file, path, size))
    headers["Accept-Ranges"] = "bytes"
    stream = web.StreamResponse(status=200, headers=headers)
    stream.content_length = size
    try:
        with await run(open, path, "rb") as body:
            await stream.prepare(request)
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            loop = asyncio.get_running_loop()
            held = min(PIECE, size)
            if size > held:
                await loop.sendfile(transport, body, 0, size - held)
            if not await hashing:
                check.verify("HTTP GET")  # raises: logs the blob and what its bytes hash to
            if held:
                await loop.sendfile(transport, body, size - held, held)
    except DataLossError:
        _cut(request)
        return stream
    except BaseException:
        _cut(request)
        raise
    finally:
        if not hashing.done():
            hashing.cancel()  # the thread finishes its file on its own; nobody waits for it
    await stream.write_eof()
    return stream
