"""The data of one local ingest: an append-only file plus its running hash.

Python's hashlib cannot serialise a hash state under OpenSSL 3 (the ``rehash``
package that once could supports only OpenSSL 1.x), so the running hasher is
kept in memory in a :class:`HasherCache` when a writer closes: a resume inside
the same process costs O(1). After a restart the data is re-hashed once
(about 1.6 GB/s on this machine kind). DECISIONS.md content-api 6.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from cairn.core.content.local.files import fsync_dir, translate_os_error, write_all
from cairn.core.digest import Digest, Hasher, new_hasher

__all__ = ["BlobPath", "HasherCache", "LocalIngestData"]

BlobPath = Callable[[Digest], str]

_CHUNK = 1 << 20


class HasherCache:
    """Running hashers of closed ingests, by ingest key, valid for one data size."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[int, Hasher]] = {}

    def put(self, key: str, size: int, hasher: Hasher) -> None:
        with self._lock:
            self._items[key] = (size, hasher)

    def take(self, key: str, size: int, algorithm: str) -> Hasher | None:
        with self._lock:
            item = self._items.pop(key, None)
        if item and item[0] == size and item[1].name == algorithm:
            return item[1]
        return None

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


def _hash_file(path: str, algorithm: str, size: int) -> Hasher:
    hasher = new_hasher(algorithm)
    with open(path, "rb", buffering=0) as f:
        remaining = size
        while remaining > 0:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
    return hasher


class LocalIngestData:
    """An :class:`~cairn.core.content.backend.IngestData` in ``<root>/ingest/<key>/data``."""

    def __init__(self, key: str, data_path: str, blob_path_of: BlobPath, cache: HasherCache, algorithm: str) -> None:
        self._key = key
        self._path = data_path
        self._blob_path_of = blob_path_of
        self._cache = cache
        try:
            self._fd = os.open(data_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise translate_os_error(exc, f"ingest {key}") from exc
        cached = cache.take(key, self._size, algorithm)
        self._hasher = cached if cached is not None else _hash_file(data_path, algorithm, self._size)

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes | memoryview) -> None:
        if not data:
            return
        try:
            write_all(self._fd, data, f"ingest {self._key}")
        except OSError as exc:
            # Keep file and hash in step: drop whatever part of ``data`` landed.
            os.ftruncate(self._fd, self._size)
            raise translate_os_error(exc, f"ingest {self._key}") from exc
        self._hasher.update(data)
        self._size += len(data)

    def truncate(self) -> None:
        os.ftruncate(self._fd, 0)
        self._size = 0
        self._hasher = new_hasher(self._hasher.name)

    def digest(self, algorithm: str) -> Digest:
        if algorithm != self._hasher.name:
            self._hasher = _hash_file(self._path, algorithm, self._size)
        return Digest.from_hasher(self._hasher)

    def publish(self, digest: Digest) -> None:
        target = self._blob_path_of(digest)
        try:
            os.fsync(self._fd)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(self._path, target)
            except FileExistsError:
                pass  # the same verified bytes, committed before (another namespace, or a crash)
            os.chmod(target, 0o444)
            fsync_dir(os.path.dirname(target))
        except OSError as exc:
            raise translate_os_error(exc, f"blob {digest}") from exc

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        self._cache.put(self._key, self._size, self._hasher)

