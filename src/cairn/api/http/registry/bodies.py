"""Request bodies in and out of the registry: streamed, bounded, never whole blobs in memory.

Blob bytes go from aiohttp's stream into an upload in pieces of about 1 MiB:
the pieces are handed to a worker thread (the content store's writes block and
may wait on its own writer thread), so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from cairn.oci.errors import TooLargeError
from cairn.oci.registry import OpenUpload

__all__ = ["PIECE_BYTES", "has_body", "is_chunked", "pump_into", "read_limited"]

#: How many request bytes are gathered before one write to the upload.
PIECE_BYTES = 1 << 20


def is_chunked(request: web.Request) -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def has_body(request: web.Request) -> bool:
    """Whether the request announces a non-empty body (Content-Length > 0 or chunked)."""
    return is_chunked(request) or (request.content_length or 0) > 0


async def pump_into(request: web.Request, upload: OpenUpload) -> int:
    """Append the whole request body to ``upload``; returns how many bytes it had."""
    received = 0
    pieces: list[bytes] = []
    gathered = 0
    try:
        async for data in request.content.iter_any():
            pieces.append(data)
            gathered += len(data)
            if gathered >= PIECE_BYTES:
                # Taken off the pile before the write: when the store refuses it (a full disk),
                # the ``finally`` must not write it again and bury that error under an offset one.
                piece = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                pieces, gathered = [], 0
                await asyncio.to_thread(upload.write, piece)
                received += len(piece)
    finally:
        # Also when the client went away mid-body: what arrived is kept, the upload
        # status tells the client where to resume.
        if gathered:
            await asyncio.to_thread(upload.write, pieces[0] if len(pieces) == 1 else b"".join(pieces))
            received += gathered
    return received


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body if it is at most ``limit`` bytes; TooLargeError (413) otherwise."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError(f"manifest of {request.content_length} bytes is over the limit of {limit}")
    pieces: list[bytes] = []
    size = 0
    async for data in request.content.iter_any():
        size += len(data)
        if size > limit:
            raise TooLargeError(f"manifest is over the limit of {limit} bytes")
        pieces.append(data)
    return b"".join(pieces)
