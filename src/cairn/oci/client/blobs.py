"""Reading one blob from a registry: streamed, resumable from an offset, verified when read whole.

Split out of :mod:`cairn.oci.client.registry`, which opens readers with
``RegistryClient.open_blob``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Self

import urllib3
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from cairn.core.digest import Digest, Hasher, new_hasher
from cairn.core.errors import DataLossError, OutOfRangeError
from cairn.oci.client.transport import CHUNK_SIZE, Transport

__all__ = ["BlobReader"]


class BlobReader:
    """A blob's bytes as they arrive, read with :meth:`read` or iterated in 1 MiB chunks.

    When the whole blob passes through the reader (``offset`` 0, or a registry
    that ignored the Range and sent everything), reaching the end checks the
    length and the digest and raises DataLossError on a mismatch; afterwards
    :attr:`verified` is True. A partial read (``offset`` > 0 answered with 206)
    cannot be verified here, nor is a reader opened with ``verify`` false (its
    caller checks the digest). A connection that breaks off raises DataLossError,
    a stalled one UnavailableError. Not thread-safe; ``close()`` is idempotent and
    gives the connection back (or drops it when unread bytes remain).
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse | None,
        transport: Transport,
        digest: Digest,
        *,
        offset: int,
        size: int | None,
        what: str,
        whole: bool,
        verify: bool = True,
    ) -> None:
        self.digest = digest
        #: Where the bytes this reader yields start in the blob.
        self.offset = offset
        #: The blob's whole size when the registry said, else None.
        self.size = size
        #: True once the whole blob went through and matched ``digest``.
        self.verified = False
        self._response = response
        self._transport = transport
        self._what = what
        self._hasher: Hasher | None = new_hasher(digest.algorithm) if whole and verify else None
        self._hashed = 0
        self._yielded = 0
        self._skip = offset if whole else 0  # a whole body sent despite a Range starts before offset
        if response is None:
            self._finish()

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that remain for -1); ``b""`` at the end, after verification."""
        if self._response is None:
            return b""
        if self._skip:
            self._discard()
        data = self._receive(None if size < 0 else size)
        self._yielded += len(data)
        if not data or size < 0 or self._at_end():
            self._finish()
        return data

    def _receive(self, amount: int | None) -> bytes:
        assert self._response is not None
        try:
            data = self._response.read(amount, decode_content=False)
        except (ProtocolError, Urllib3Timeout) as exc:
            self.close()
            raise self._transport.broken(exc, self._what) from None
        if data and self._hasher is not None:
            self._hasher.update(data)
            self._hashed += len(data)
        return data

    def _discard(self) -> None:
        """Hash and drop the bytes before ``offset`` of a registry that ignored the Range."""
        left, self._skip = self._skip, 0
        while left:
            data = self._receive(min(left, CHUNK_SIZE))
            if not data:
                self.close()
                raise OutOfRangeError(f"{self._what}: offset {self.offset} lies past its end")
            left -= len(data)

    def _at_end(self) -> bool:
        return self.size is not None and self.offset + self._yielded >= self.size

    def _finish(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.release_conn()
        hasher, self._hasher = self._hasher, None
        if hasher is None:
            return
        got = Digest.from_hasher(hasher)
        if (self.size is not None and self._hashed != self.size) or got != self.digest:
            raise DataLossError(
                f"{self._what}: received {self._hashed} bytes hashing to {got}, not {self.digest}"
            )
        self.verified = True

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The remaining bytes in pieces of at most ``size``; the last step verifies."""
        while True:
            data = self.read(size)
            if not data:
                return
            yield data

    def close(self) -> None:
        response, self._response = self._response, None
        self._hasher = None
        if response is not None:
            if not self._at_end():
                response.close()  # unread bytes: the connection cannot be reused
            response.release_conn()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
