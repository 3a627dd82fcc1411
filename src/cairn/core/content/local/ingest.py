"""The data of one local ingest: an append-only file plus its running hash.

Python's hashlib cannot serialise a hash state under OpenSSL 3 (the ``rehash``
package that once could supports only OpenSSL 1.x), so the running hasher is
kept in memory in a :class:`HasherCache` when a writer closes: a resume inside
the same process costs O(1). After a restart the data is re-hashed once
(about 1.6 GB/s on this machine kind). DECISIONS.md content-api 6.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable

from cairn.core.content.local.files import fsync_dir, translate_os_error, write_all
from cairn.core.digest import Digest, Hasher, new_hasher
from cairn.core.errors import CairnError

__all__ = ["BlobPath", "HasherCache", "LocalIngestData"]

BlobPath = Callable[[Digest], str]

#: The CPUs the process may use, as seen when cairn started.
_PROCESS_CPUS = frozenset(os.sched_getaffinity(0))

_CHUNK = 1 << 20
#: Chunks an ingest may have queued for its writer thread (memory bound: depth x message size).
_PIPELINE_DEPTH = 4


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
    """An :class:`~cairn.core.content.backend.IngestData` in ``<root>/ingest/<key>/data``.

    Appends are pipelined: from the second chunk on, :meth:`append` queues the
    bytes (at most ``_PIPELINE_DEPTH`` chunks) and returns, and one worker
    thread writes and hashes them, so receiving the next chunk overlaps with
    storing this one (docs/benchmarks.md: ``ctr content ingest`` went from
    1.57x to 2.08x of containerd). The first chunk is stored inline, so a
    one-message blob starts no thread. Anything that needs the bytes (digest,
    truncate, publish, close) drains the queue first. A failed write truncates the file back to
    the last chunk written whole, so file and hash stay in step, and is raised
    by the next call.
    """

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
        self._written = self._size  # bytes on disk and in the hash; owned by the worker while it runs
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPELINE_DEPTH)
        self._worker: threading.Thread | None = None
        self._error: CairnError | None = None
        self._appended = False
        # Nothing to make durable until this writer changes the file: whatever an earlier
        # writer stored was fsynced before that writer acknowledged it (close or publish).
        self._synced = True

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self._error is not None:
            self._drain()
        self._synced = False
        if self._worker is None and not self._appended:
            # The first chunk is stored inline: a blob of one message needs no thread.
            self._appended = True
            self._store(data)
            self._size = self._written
            if self._error is not None:
                self._drain()
            return
        if self._worker is None:
            self._worker = threading.Thread(target=self._store_chunks, name=f"ingest-{self._key[:8]}", daemon=True)
            self._worker.start()
        self._queue.put(bytes(data) if isinstance(data, memoryview) else data)
        self._size += len(data)

    def _store_chunks(self) -> None:
        # Started from whatever thread received the chunk (a server may keep its
        # network threads on few CPUs); storing and hashing may use them all.
        os.sched_setaffinity(0, _PROCESS_CPUS)
        while (chunk := self._queue.get()) is not None:
            try:
                if self._error is None:
                    self._store(chunk)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _store(self, chunk: bytes | memoryview) -> None:
        try:
            write_all(self._fd, chunk, f"ingest {self._key}")
        except (OSError, CairnError) as exc:
            # Drop whatever part of the chunk landed. If even that fails, the file is
            # longer than the hash: a resume notices the size and re-hashes the file.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._written)
            self._error = translate_os_error(exc, f"ingest {self._key}") if isinstance(exc, OSError) else exc
            return
        self._hasher.update(chunk)
        self._written += len(chunk)

    def _drain(self) -> None:
        """Wait until every queued chunk is stored; raise the first failure, if any."""
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            self._size = self._written
            raise error

    def truncate(self) -> None:
        self._drain()
        self._synced = False
        os.ftruncate(self._fd, 0)
        self._size = self._written = 0
        self._hasher = new_hasher(self._hasher.name)

    def digest(self, algorithm: str) -> Digest:
        self._drain()
        if algorithm != self._hasher.name:
            self._hasher = _hash_file(self._path, algorithm, self._size)
        return Digest.from_hasher(self._hasher)

    def publish(self, digest: Digest) -> None:
        self._drain()
        target = self._blob_path_of(digest)
        try:
            os.fsync(self._fd)
            self._synced = True
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
            self._stop_worker()
            if not self._synced:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
            self._cache.put(self._key, self._written, self._hasher)

    def _stop_worker(self) -> None:
        if self._worker is None:
            return
        self._queue.put(None)
        self._worker.join()
        self._worker = None
        self._error = None  # a failed chunk was already cut off the file; the ingest resumes at _written
