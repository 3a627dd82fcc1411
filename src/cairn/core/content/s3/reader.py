"""Reads of one blob object: one ranged GET streamed for as long as the reads follow each other.

Every reader of cairn reads blobs front to back in pieces (the content API's
Read, a registry blob GET, Warg downloads, layer checks), so a request per piece
would pay the object store's latency per MiB. The reader instead opens
``GET`` with ``Range: bytes=<offset>-`` and keeps reading that one response
while each ``read_at`` starts where the last one ended; a jump opens a new
range. Nothing is buffered beyond the piece asked for.
"""

from __future__ import annotations

import threading
from typing import Any, Self

import botocore.exceptions
import urllib3.exceptions

from cairn.core.content.s3.client import S3Location, translate
from cairn.core.errors import DataLossError, OutOfRangeError

__all__ = ["MemoryReader", "S3Reader"]

_STREAM_ERRORS = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    urllib3.exceptions.HTTPError,
    OSError,
)


class S3Reader:
    """A :class:`~cairn.core.content.store.ReaderAt` over one immutable object."""

    def __init__(self, client: Any, location: S3Location, key: str, size: int, what: str) -> None:
        self._client = client
        self._location = location
        self._key = key
        self._size = size
        self._what = what
        self._mutex = threading.Lock()
        self._body: Any = None
        self._position = -1  # offset of the open response's next byte

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> None:
        return None

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset > self._size:
            raise OutOfRangeError(f"read past object length {self._size} bytes")
        length = min(length, self._size - offset)
        if length <= 0:
            return b""
        with self._mutex:
            if self._body is None or self._position != offset:
                self._open(offset)
            try:
                data = self._body.read(length)
            except _STREAM_ERRORS as exc:
                self._drop()
                raise translate(exc, self._location, self._what) from exc
            if len(data) != length:
                self._drop()
                raise DataLossError(
                    f"{self._what}: content store {self._location} sent {len(data)} of {length} bytes "
                    f"at offset {offset}"
                )
            self._position = offset + length
            return bytes(data)

    def _open(self, offset: int) -> None:
        self._drop()
        try:
            response = self._client.get_object(
                Bucket=self._location.bucket, Key=self._key, Range=f"bytes={offset}-"
            )
        except _STREAM_ERRORS as exc:
            raise translate(exc, self._location, self._what) from exc
        body = response["Body"]
        if offset and not response.get("ContentRange"):
            # A server that ignored the range sent the whole object: skip to the offset.
            remaining = offset
            while remaining:
                skipped = body.read(min(remaining, 1 << 20))
                if not skipped:
                    break
                remaining -= len(skipped)
        self._body = body
        self._position = offset

    def _drop(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except _STREAM_ERRORS:
                pass
            self._body = None
            self._position = -1

    def close(self) -> None:
        with self._mutex:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
