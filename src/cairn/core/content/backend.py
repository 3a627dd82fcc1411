"""What a content backend stores: blob bytes by digest and ingest data by key.

A backend knows nothing of namespaces, labels or refs; those belong to the
catalog and to :mod:`cairn.core.content.namespaced`, which composes a backend
with the catalog into a :class:`~cairn.core.content.store.ContentStore`. The
local-disk backend is :mod:`cairn.core.content.local`; the S3-compatible one,
:mod:`cairn.core.content.s3`, implements the same two protocols.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cairn.core.content.store import ReaderAt
from cairn.core.digest import Digest

__all__ = ["BlobBackend", "BlobStat", "IngestData", "MultipartUploads", "PendingUpload"]


@dataclass(frozen=True, slots=True)
class BlobStat:
    """A blob as the backend lists it: ``modified_at`` is when its bytes were last written (ns)."""

    digest: Digest
    size: int
    modified_at: int


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """A multipart upload an object store holds open: ``initiated_at`` in ns."""

    key: str
    upload_id: str
    initiated_at: int


@runtime_checkable
class MultipartUploads(Protocol):
    """Backends whose ingests are object-store multipart uploads (S3): list and abort them.

    Garbage collection aborts old uploads that no catalog row knows (left by a
    replica that died between starting an upload and recording it).
    """

    def pending_uploads(self) -> Iterator[PendingUpload]: ...

    def abort_upload(self, upload: PendingUpload) -> None: ...


class IngestData(Protocol):
    """The open data of one ingest. Not thread-safe: one writer holds it."""

    @property
    def size(self) -> int: ...

    def append(self, data: bytes | memoryview) -> None:
        """Add ``data`` at the end; DataLossError on a short write, ResourceExhaustedError when full."""
        ...

    def truncate(self) -> None:
        """Discard all data (offset 0)."""
        ...

    def digest(self, algorithm: str) -> Digest:
        """The digest of the data so far; re-hashes only if ``algorithm`` is not the running one."""
        ...

    def publish(self, digest: Digest) -> None:
        """Make the data durable and store it as blob ``digest`` (idempotent).

        The caller has verified ``digest``. After return the blob survives a crash.
        """
        ...

    def close(self) -> None:
        """Make the data durable and release the handle; the ingest stays resumable."""
        ...


class BlobBackend(Protocol):
    def blob_size(self, digest: Digest) -> int | None: ...

    def open_blob(self, digest: Digest, size: int | None = None) -> ReaderAt:
        """NotFoundError if the backend does not hold ``digest``.

        ``size`` is the blob's size when the caller knows it (the catalog does), which
        spares a remote backend a round trip.
        """
        ...

    def put_blobs(self, blobs: Sequence[tuple[Digest, bytes]]) -> None:
        """Store small, verified, in-memory blobs as one group; all are durable on return.

        One flush covers the whole group, which is what makes many small writes
        (Directory records, their manifests) cheap; blobs held already are skipped.
        """
        ...

    def remove_blob(self, digest: Digest) -> None: ...

    def quarantine_blob(self, digest: Digest) -> str | None:
        """Move blob ``digest``'s bytes out of the blobs into a quarantine area (``cairn fsck --repair``).

        Returns where they went (a path or object key, for the operator), or None if the
        backend does not hold the blob. Afterwards the backend no longer holds ``digest``,
        so verified bytes can be stored under it again.
        """
        ...

    def iter_blobs(self) -> Iterator[Digest]: ...

    def iter_blob_stats(self) -> Iterator[BlobStat]:
        """Every blob held, with its size and last-modified time (for garbage collection's grace period)."""
        ...

    def create_ingest(self, key: str, description: str) -> None:
        """Create empty, durable data for a new ingest ``key``."""
        ...

    def open_ingest(self, key: str, algorithm: str, expected: Digest | None = None) -> IngestData:
        """Open ingest ``key`` for appending, hashing with ``algorithm``.

        ``expected`` is the digest the client announced, if any (an object store
        uploads straight to that blob's key). Creates empty data if none exists
        (an ingest row whose data was lost).
        """
        ...

    def ingest_size(self, key: str) -> int: ...

    def ingest_updated_at(self, key: str) -> int | None: ...

    def remove_ingest(self, key: str) -> None: ...

    def ingest_keys(self) -> set[str]: ...

    def clear_temporaries(self) -> int:
        """Remove partial blob data a crash left outside any ingest (start-up only); returns the count."""
        ...

    def close(self) -> None: ...
