"""Random-access reads of one blob file with ``pread`` (no shared file position, thread-safe).

The file is opened on the first read: the registry's blob GET only needs the
size and the path (aiohttp sends the file itself with ``sendfile``), so it never
opens the file twice.
"""

from __future__ import annotations

import os
import threading
from typing import Self

from cairn.core.errors import OutOfRangeError

__all__ = ["FileReader"]


class FileReader:
    """A :class:`~cairn.core.content.store.ReaderAt` over an immutable local file."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1
        self._opening = threading.Lock()
        self._size = os.stat(path).st_size  # FileNotFoundError here: the caller maps it

    @property
    def size(self) -> int:
        return self._size

    @property
    def path(self) -> str:
        return self._path

    def read_at(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset > self._size:
            raise OutOfRangeError(f"read past object length {self._size} bytes")
        if self._fd < 0:
            self._open()
        return os.pread(self._fd, min(length, self._size - offset), offset)

    def _open(self) -> None:
        with self._opening:
            if self._fd < 0:
                self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)

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
