"""Checking a blob's digest while it is read out, so corrupt bytes are never served whole.

A face that sends a whole blob feeds each piece to a :class:`WholeBlobCheck`
before sending it, and calls :meth:`WholeBlobCheck.verify` before the final
piece goes out: a corrupt blob's reader gets a short body or an error, never
a complete wrong one. :class:`SequentialReads` does the same across calls, for
clients that read a blob front to back in many ranged requests (``ctr content
get`` sends one gRPC Read per 32 KiB): the hash state waits between calls,
keyed by where the next call must start. A read that does not continue one
(a random access, or a state evicted from the bounded table) is simply not
verified; verification never refuses a read that is right.

A mismatch is logged as an error naming the blob and suggesting
``cairn fsck --repair`` (which quarantines it and re-fetches it from a peer),
and raised as DataLossError. Hashing runs where the caller runs it: the
caller keeps large hashes off an event loop.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict

from cairn.core.digest import Digest, Hasher, new_hasher
from cairn.core.errors import DataLossError

__all__ = ["SequentialReads", "WholeBlobCheck", "corrupt_read"]

log = logging.getLogger(__name__)

#: Bytes hashed at a time by :meth:`WholeBlobCheck.hash_file`.
PIECE = 1 << 20


def corrupt_read(digest: Digest, got: Digest, size: int, where: str) -> DataLossError:
    """Log a corrupt blob found while serving it; the error to end the read with."""
    log.error(
        "blob %s is corrupt: its %d bytes hash to %s; the %s was cut short. "
        "Run `cairn fsck --repair` to quarantine it (and re-fetch it with --peer)",
        digest, size, got, where, extra={"digest": str(digest)},
    )
    return DataLossError(f"blob {digest} is corrupt in this store (its bytes hash to {got}); read cut short")


class WholeBlobCheck:
    """The running hash of one blob read from its first byte. Not thread-safe: one reader."""

    def __init__(self, digest: Digest, hasher: Hasher | None = None, hashed: int = 0) -> None:
        self.digest = digest
        self.hashed = hashed
        self._hasher = hasher if hasher is not None else new_hasher(digest.algorithm)

    def update(self, data: bytes | memoryview) -> None:
        self._hasher.update(data)
        self.hashed += len(data)

    def matches(self) -> bool:
        return Digest.from_hasher(self._hasher) == self.digest

    def verify(self, where: str) -> None:
        """DataLossError (logged) unless the bytes so far hash to the digest."""
        got = Digest.from_hasher(self._hasher)
        if got != self.digest:
            raise corrupt_read(self.digest, got, self.hashed, where)

    def hash_file(self, path: str, size: int) -> bool:
        """Hash the first ``size`` bytes of ``path`` (blocking; run it in a thread); whether they match."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            offset = 0
            while offset < size:
                data = os.pread(fd, min(PIECE, size - offset), offset)
                if not data:
                    break
                self.update(data)
                offset += len(data)
        finally:
            os.close(fd)
        return offset == size and self.matches()

    def hasher(self) -> Hasher:
        return self._hasher


class SequentialReads:
    """Hash states of blobs read front to back in ranged calls, at most ``limit`` of them (LRU). Thread-safe.

    Only blobs of at most ``max_bytes`` are checked.
    """

    def __init__(self, max_bytes: int, limit: int = 1024) -> None:
        self.max_bytes = max_bytes
        self._limit = limit
        self._lock = threading.Lock()
        self._states: OrderedDict[tuple[str, Digest, int], tuple[Hasher, int]] = OrderedDict()

    def resume(self, namespace: str, digest: Digest, offset: int) -> WholeBlobCheck | None:
        """The check of a read of ``digest`` that continues at ``offset`` (a new one at 0); None if none waits."""
        if offset == 0:
            return WholeBlobCheck(digest)
        with self._lock:
            state = self._states.pop((namespace, digest, offset), None)
        return None if state is None else WholeBlobCheck(digest, state[0], state[1])

    def suspend(self, namespace: str, check: WholeBlobCheck) -> None:
        """Keep ``check`` for the call that continues where it stopped."""
        key = (namespace, check.digest, check.hashed)
        with self._lock:
            self._states[key] = (check.hasher(), check.hashed)
            self._states.move_to_end(key)
            while len(self._states) > self._limit:
                self._states.popitem(last=False)
