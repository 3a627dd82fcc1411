"""Reads of one blob object in aligned blocks, kept in a shared cache.

Readers of cairn read blobs front to back in pieces of very different sizes:
``ctr content get`` makes one Read call per 32 KiB (each call opens a reader),
a registry GET reads 1 MiB at a time. A request per piece would pay the object
store's latency (and, for an unfinished open-ended range, a new connection) per
32 KiB. So the reader fetches whole aligned blocks (1 MiB) with exact ranged
GETs, which always finish and keep their connection, and puts them in a
bounded cache shared by every reader of the backend: blob bytes are immutable,
so a cached block is never stale, and the next 31 small reads of a block cost
no request at all.
"""

from __future__ import annotations

from typing import Any, Self

import botocore.exceptions
import urllib3.exceptions

from cairn.core.content.s3.cache import ImmutableBytesCache
from cairn.core.content.s3.client import S3Location, translate
from cairn.core.errors import DataLossError, OutOfRangeError

__all__ = ["BLOCK", "MemoryReader", "S3Reader"]

#: Bytes fetched per request, aligned (so blocks of concurrent readers coincide).
BLOCK = 1 << 20
_STREAM_ERRORS = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    urllib3.exceptions.HTTPError,
    OSError,
)


class S3Reader:
    """A :class:`~cairn.core.content.store.ReaderAt` over one immutable object. Thread-safe."""

    def __init__(
        self, client: Any, location: S3Location, key: str, size: int, what: str, blocks: ImmutableBytesCache
    ) -> None:
        self._client = client
        self._location = location
        self._key = key
        self._size = size
        self._what = what
        self._blocks = blocks

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> None:
        return None

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset > self._size:
            raise OutOfRangeError(f"read past object length {self._size} bytes")
        stop = min(offset + length, self._size)
        pieces = []
        position = offset
        while position < stop:
            index = position // BLOCK
            block = self._block(index)
            begin = position - index * BLOCK
            piece = block[begin : begin + (stop - position)]
            pieces.append(piece)
            position += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _block(self, index: int) -> bytes:
        name = f"{self._key}@{index}"
        cached = self._blocks.get(name)
        if cached is not None:
            return cached
        start = index * BLOCK
        stop = min(start + BLOCK, self._size)
        try:
            response = self._client.get_object(
                Bucket=self._location.bucket, Key=self._key, Range=f"bytes={start}-{stop - 1}"
            )
            body = response["Body"]
            if start and not response.get("ContentRange"):
                body.read(start)  # a server that ignored the range sent the whole object
            data: bytes = body.read(stop - start)
            body.close()
        except _STREAM_ERRORS as exc:
            raise translate(exc, self._location, self._what) from exc
        if len(data) != stop - start:
            raise DataLossError(
                f"{self._what}: content store {self._location} sent {len(data)} of {stop - start} bytes "
                f"at offset {start}"
            )
        self._blocks.put(name, data)
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class MemoryReader:
    """A :class:`~cairn.core.content.store.ReaderAt` over a blob already in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def path(self) -> None:
        return None

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset > len(self._data):
            raise OutOfRangeError(f"read past object length {len(self._data)} bytes")
        return self._data[offset : offset + length]

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
