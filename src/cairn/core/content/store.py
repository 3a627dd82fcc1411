"""The content store contract: four small roles composed into one store.

Modelled on containerd's ``content`` package: a reader asks for a
:class:`Provider` and cannot write; the gRPC face asks for the whole
:class:`ContentStore`. Every method takes the namespace first: blobs are stored
once, visibility and labels are per namespace.

Error contract (cairn.core.errors): unknown digest or ref -> NotFoundError;
malformed digest, namespace, label or filter -> InvalidArgumentError; a ref held
by another writer -> UnavailableError; size or digest mismatch at commit ->
FailedPreconditionError (the ingest is kept); result already committed in the
namespace -> AlreadyExistsError; offsets outside the data -> OutOfRangeError.

All methods block (disk, catalog); async callers run them in a thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, Self

from cairn.core.catalog.database import Transaction
from cairn.core.content.model import Info, Status
from cairn.core.digest import Digest

__all__ = [
    "ContentStore",
    "IngestManager",
    "Ingester",
    "Manager",
    "Provider",
    "ReaderAt",
    "SmallBlobs",
    "Writer",
]


class ReaderAt(Protocol):
    """Random access to one committed blob; a context manager."""

    @property
    def size(self) -> int: ...

    @property
    def path(self) -> str | None:
        """A local file holding exactly the blob's bytes (for sendfile), or None."""
        ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; short only at the end of the blob."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Writer(Protocol):
    """One open ingest, held exclusively until commit or close.

    ``close()`` leaves the ingest resumable; ``commit()`` releases the ref lock
    whether it succeeds or not.
    """

    @property
    def ref(self) -> str: ...

    def status(self) -> Status: ...

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        ...

    def write(self, data: bytes | memoryview, offset: int) -> int:
        """Append ``data`` at ``offset``; returns the new offset.

        ``offset`` must equal the current offset (OutOfRangeError otherwise);
        offset 0 on a non-empty ingest truncates it first.
        """
        ...

    def set_total(self, total: int) -> None: ...

    def set_expected(self, expected: Digest) -> None:
        """Expect ``expected`` at commit; AlreadyExistsError (ingest aborted) if it is committed now."""
        ...

    def commit(
        self,
        size: int = 0,
        expected: Digest | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        also: Callable[[Transaction], None] | None = None,
    ) -> Info:
        """Verify and publish the ingest as a blob of this namespace.

        ``size`` <= 0 and ``expected`` None skip those checks. Visible to readers
        only after the bytes are on disk and the catalog row is written.
        ``also`` runs inside that same catalog transaction (also when the
        namespace already had the blob), so a caller's own rows naming the blob
        appear atomically with it: the registry links the blob into a repository
        this way, one transaction (one fsync) instead of two.
        """
        ...

    def abort(self) -> None:
        """Drop the ingest and its data, and release the ref."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class Provider(Protocol):
    def reader_at(self, namespace: str, digest: Digest) -> ReaderAt: ...


class Ingester(Protocol):
    def writer(
        self,
        namespace: str,
        ref: str,
        total: int = 0,
        expected: Digest | None = None,
        *,
        create: bool = True,
    ) -> Writer:
        """Open or resume the ingest ``ref``; UnavailableError if another writer holds it.

        AlreadyExistsError if ``expected`` is already committed in ``namespace``;
        NotFoundError if ``create`` is false and there is no such ingest.
        """
        ...


class SmallBlobs(Protocol):
    def put_blobs(
        self,
        namespace: str,
        blobs: Sequence[bytes],
        also: Callable[[Transaction], None] | None = None,
    ) -> list[Digest]:
        """Store in-memory blobs (sha256) as one durable group and name them in ``namespace``.

        For many small blobs at once (a Directory record and its manifest): one
        flush and one catalog transaction for the group instead of one per blob.
        ``also`` runs in that transaction, as in :meth:`Writer.commit`. Returns
        the digests in order.
        """
        ...


class IngestManager(Protocol):
    def status(self, namespace: str, ref: str) -> Status: ...

    def list_statuses(self, namespace: str, filters: Sequence[str] = ()) -> list[Status]: ...

    def abort(self, namespace: str, ref: str) -> None: ...


class Manager(Protocol):
    def info(self, namespace: str, digest: Digest) -> Info: ...

    def update(
        self, namespace: str, digest: Digest, labels: Mapping[str, str], paths: Sequence[str]
    ) -> Info:
        """Change labels: ``paths`` are ``labels`` or ``labels.<key>``; empty means all labels."""
        ...

    def walk(self, namespace: str, filters: Sequence[str] = ()) -> Iterator[Info]: ...

    def delete(self, namespace: str, digest: Digest) -> None:
        """Remove the namespace's name for the blob; the bytes go when nothing names them."""
        ...


class ContentStore(Provider, Ingester, SmallBlobs, IngestManager, Manager, Protocol):
    """Everything a content face needs."""

    def close(self) -> None: ...
