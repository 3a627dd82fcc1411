"""Random-access reads of one blob file with ``pread`` (no shared file position, thread-safe)."""

from __future__ import annotations

import os
from typing import Self

from cairn.core.errors import OutOfRangeError

__all__ = ["FileReader"]


class FileReader:
    """A :class:`~cairn.core.content.store.ReaderAt` over an immutable local file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> str:
        return self._path

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset > self._size:
            raise OutOfRangeError(f"read past object length {self._size} bytes")
        return os.pread(self._fd, min(length, self._size - offset), offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
