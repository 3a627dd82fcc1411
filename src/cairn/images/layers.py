"""Layer blobs: their compression, and the uncompressed tar's digest (diff_id) and size.

A manifest names layers by the digest of their compressed blobs, the config by
the sha256 of the uncompressed tars (``rootfs.diff_ids``), and Docker reports an
image's size as the sum of the uncompressed sizes. A pull therefore has to
decompress every layer once, as Docker's "Extracting" phase does: that is
:class:`DiffHasher`, fed chunk by chunk while the blob downloads or from the
committed blob (:func:`diff_of_blob`). gzip uses zlib (which releases the GIL,
so layers decompress in parallel threads); zstd needs the optional
``zstandard`` package and is otherwise UnimplementedError naming the media type.

This module is not for unpacking layers onto a filesystem nor for building
them: it only measures what a blob holds.
"""

from __future__ import annotations

import hashlib
import importlib
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any, Self

from cairn.core.content.store import ReaderAt
from cairn.core.digest import Digest
from cairn.core.errors import CancelledError, DataLossError, UnimplementedError

__all__ = [
    "GZIP",
    "NONE",
    "ZSTD",
    "BackgroundDiffHasher",
    "DeferredDiffHasher",
    "DiffHasher",
    "compression_of",
    "detect_compression",
    "diff_of_blob",
    "zstd_available",
]

GZIP = "gzip"
ZSTD = "zstd"
NONE = "none"

_CHUNK = 1 << 20
#: At most this much uncompressed output per decompression step (bounds memory on bombs).
_MAX_OUT = 8 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compression_of(media_type: str) -> str | None:
    """``gzip``, ``zstd`` or ``none`` for a layer media type; None when the type does not say.

    Covers the OCI layer types (``tar``, ``tar+gzip``, ``tar+zstd``, their
    non-distributable twins) and Docker's ``rootfs.diff.tar.gzip`` (foreign too).
    """
    base = media_type.split(";", 1)[0].strip().lower()
    if base.endswith(("+gzip", ".tar.gzip", ".tar.gz")):
        return GZIP
    if base.endswith("+zstd"):
        return ZSTD
    if base.endswith((".tar", "layer.v1.tar")):
        return NONE
    return None


def detect_compression(head: bytes) -> str:
    """The compression the first bytes of a blob show (gzip or zstd magic), else ``none``."""
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if head.startswith(_ZSTD_MAGIC):
        return ZSTD
    return NONE


def _zstandard() -> Any | None:
    try:
        return importlib.import_module("zstandard")
    except ImportError:
        return None


def zstd_available() -> bool:
    """Whether ``+zstd`` layers can be read here (the ``zstandard`` package is installed)."""
    return _zstandard() is not None


class DiffHasher:
    """Decompresses a layer blob fed in order and hashes the tar it yields.

    ``media_type`` decides the compression; a type that does not say is
    recognised from the first bytes. :meth:`update` raises DataLossError when
    the bytes are not valid in that compression, UnimplementedError for zstd
    without ``zstandard``; :meth:`finish` returns ``(diff_id, size)`` of the
    uncompressed tar, and DataLossError when the stream ended early. Not
    thread-safe; zlib and hashlib release the GIL, so several run in parallel.
    """

    def __init__(self, media_type: str, what: str = "layer") -> None:
        self.media_type = media_type
        self._what = what
        self._compression = compression_of(media_type)
        self._hash = hashlib.sha256()
        self.size = 0
        self._gzip: Any = None
        self._zstd: Any = None
        self._zstd_new: Any = None
        self._zstd_error: type[BaseException] = ValueError
        self._ended = False  # the current gzip member (or zstd frame run) reached its end
        self._started = False
        self._head = b""  # the first bytes, held until there are enough to recognise the compression

    # -- the decompressors ---------------------------------------------------
    def _start(self, head: bytes) -> None:
        self._started = True
        if self._compression is None:
            self._compression = detect_compression(head)
        if self._compression == GZIP:
            self._gzip = zlib.decompressobj(31)
        elif self._compression == ZSTD:
            module = _zstandard()
            if module is None:
                raise UnimplementedError(
                    f"{self._what}: media type {self.media_type} is zstd-compressed and this cairn "
                    "cannot decompress zstd (install the 'zstandard' package)"
                )
            self._zstd_error = module.ZstdError
            self._zstd_new = module.ZstdDecompressor().decompressobj
            self._zstd = self._zstd_new()

    def _out(self, data: bytes) -> None:
        if data:
            self._hash.update(data)
            self.size += len(data)

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next compressed bytes."""
        if not data:
            return
        if not self._started:
            if self._compression is None and len(self._head) + len(data) < len(_ZSTD_MAGIC):
                self._head += data  # too few bytes to recognise a magic number yet
                return
            if self._head:
                data, self._head = self._head + data, b""
            self._start(bytes(data[: len(_ZSTD_MAGIC)]))
        self._feed(data)

    def _feed(self, data: bytes | memoryview) -> None:
        if self._compression == GZIP:
            self._feed_gzip(data)
        elif self._compression == ZSTD:
            self._feed_zstd(data)
        else:
            self._out(data if isinstance(data, bytes) else bytes(data))

    def _feed_zstd(self, data: bytes | memoryview) -> None:
        """One decompressor per frame; frames may follow each other, as gzip members do."""
        pending = bytes(data)
        while pending:
            if self._zstd.eof:
                self._zstd = self._zstd_new()
            try:
                self._out(self._zstd.decompress(pending))
            except self._zstd_error as exc:
                raise DataLossError(f"{self._what}: not a valid zstd stream ({exc})") from None
            pending = self._zstd.unused_data if self._zstd.eof else b""

    def _feed_gzip(self, data: bytes | memoryview) -> None:
        pending: bytes | memoryview = data
        while pending:
            if self._ended:
                # A member ended: more members may follow (concatenated gzip); zero padding is ignored.
                if not bytes(pending).strip(b"\x00"):
                    return
                if not bytes(pending[:2]).startswith(_GZIP_MAGIC[: len(pending[:2])]):
                    raise DataLossError(f"{self._what}: trailing bytes after the gzip stream")
                self._gzip = zlib.decompressobj(31)
                self._ended = False
            try:
                self._out(self._gzip.decompress(pending, _MAX_OUT))
                while self._gzip.unconsumed_tail and not self._gzip.eof:
                    self._out(self._gzip.decompress(self._gzip.unconsumed_tail, _MAX_OUT))
            except zlib.error as exc:
                raise DataLossError(f"{self._what}: not a valid gzip stream ({exc})") from None
            if self._gzip.eof:
                self._ended = True
                pending = self._gzip.unused_data
            else:
                pending = b""

    def finish(self) -> tuple[Digest, int]:
        """``(diff_id, uncompressed size)``; DataLossError when the compressed stream is incomplete."""
        if self._head:
            head, self._head = self._head, b""
            self._start(head)
            self._feed(head)
        if self._compression == GZIP and self._started:
            try:
                while not self._gzip.eof and (tail := self._gzip.flush(_MAX_OUT)):
                    self._out(tail)
            except zlib.error as exc:
                raise DataLossError(f"{self._what}: not a valid gzip stream ({exc})") from None
            if not self._gzip.eof:
                raise DataLossError(f"{self._what}: the gzip stream ends early")
        elif self._compression == ZSTD and self._started:
            if not self._zstd.eof:
                raise DataLossError(f"{self._what}: the zstd stream ends early")
        elif not self._started and self._compression in (GZIP, ZSTD):
            raise DataLossError(f"{self._what}: empty blob for a compressed layer")
        return Digest("sha256", self._hash.hexdigest()), self.size


class DeferredDiffHasher:
    """A :class:`DiffHasher` fed while downloading, whose failure waits until the digest is checked.

    Bytes that do not decompress are usually bytes that do not match the
    digest either; the digest check at commit names that properly (and drops
    the ingest), so a decompression error is only raised by :meth:`finish`,
    once the blob is known to be the one the manifest names.
    """

    def __init__(self, hasher: DiffHasher) -> None:
        self._hasher: DiffHasher | None = hasher
        self._error: DataLossError | None = None

    def update(self, data: bytes) -> None:
        if self._hasher is not None:
            try:
                self._hasher.update(data)
            except DataLossError as exc:
                self._hasher, self._error = None, exc

    def finish(self) -> tuple[Digest, int]:
        if self._hasher is None:
            assert self._error is not None
            raise self._error
        return self._hasher.finish()


class BackgroundDiffHasher:
    """A :class:`DeferredDiffHasher` fed on its own thread, so receiving never waits for inflating.

    Measured on a big pull: the diff_id check (inflate + sha256) was 37% of the
    server's samples, done on the thread that receives the layer, while the two
    CPUs were half idle. Here :meth:`update` only queues the chunk (at most
    ``depth`` chunks wait, so memory stays bounded and a slow check slows the
    download rather than growing); the thread hashes them in order. Use it as a
    context manager: leaving the block stops the thread whatever happened.
    """

    def __init__(self, hasher: DiffHasher, depth: int = 8) -> None:
        self._inner = DeferredDiffHasher(hasher)
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._stopped = False
        self._failure: Exception | None = None  # anything but DataLossError (which is deferred)
        self._thread = threading.Thread(target=self._run, name="diff-id", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._stopped or self._failure is not None:
                continue  # keep draining, so update() never blocks on a dead consumer
            try:
                self._inner.update(data)
            except Exception as exc:  # noqa: BLE001 - re-raised by finish() on the caller's thread
                self._failure = exc

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def finish(self) -> tuple[Digest, int]:
        """Wait for the queued chunks; the result or the deferred DataLossError."""
        self.close()
        if self._failure is not None:
            raise self._failure
        return self._inner.finish()

    def close(self) -> None:
        """Stop the thread (queued chunks are still hashed unless :meth:`abandon` came first)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def abandon(self) -> None:
        """Stop without hashing what is still queued (the download failed)."""
        self._stopped = True
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abandon()
        else:
            self.close()


def diff_of_blob(
    reader: ReaderAt,
    media_type: str,
    what: str = "layer",
    *,
    cancelled: Callable[[], bool] = lambda: False,
    advanced: Callable[[int], None] | None = None,
) -> tuple[Digest, int]:
    """``(diff_id, uncompressed size)`` of a committed layer blob, read in 1 MiB chunks.

    ``advanced(offset)`` is called after each chunk (for an ``Extracting``
    bar). Raises as :class:`DiffHasher` does, and CancelledError when
    ``cancelled()`` turns true between chunks. Blocks (disk, CPU).
    """
    hasher = DiffHasher(media_type, what)
    offset = 0
    size = reader.size
    while offset < size:
        if cancelled():
            raise CancelledError(f"{what}: cancelled")
        data = reader.read_at(offset, min(_CHUNK, size - offset))
        if not data:
            raise DataLossError(f"{what}: the stored blob ends at {offset} of {size} bytes")
        hasher.update(data)
        offset += len(data)
        if advanced is not None:
            advanced(offset)
    return hasher.finish()
