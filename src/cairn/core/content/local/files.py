"""Small filesystem helpers for the local backend: durable renames and error translation."""

from __future__ import annotations

import errno
import os

from cairn.core.errors import CairnError, DataLossError, StorageFullError, UnavailableError

__all__ = ["fsync_dir", "translate_os_error", "write_all"]


def fsync_dir(path: str) -> None:
    """fsync a directory so a rename or link inside it survives power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def translate_os_error(exc: OSError, what: str) -> CairnError:
    """Map an OSError met while touching ``what`` onto the error vocabulary."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"no space left on device (the disk is full) while writing {what}")
    return UnavailableError(f"storage error on {what}: {exc.strerror or exc}")


def write_all(fd: int, data: bytes | memoryview, what: str) -> None:
    """Write every byte of ``data`` to ``fd``; DataLossError if the OS stops taking bytes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise DataLossError(f"wrote {len(data) - len(view)} of {len(data)} bytes to {what}")
        view = view[written:]
