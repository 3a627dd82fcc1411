"""The content store: one backend of bytes, seen through per-namespace names in the catalog.

This is containerd's ``metadata`` content store in cairn's shape. Bytes are
stored once by the backend; each namespace sees what was committed in it
(DECISIONS.md content-api 8). Committing bytes another namespace already has
verifies what the client sent and then only adds a name: nothing is stored
twice. Delete removes the namespace's name; bytes go when nothing names them,
at the next garbage collection (:mod:`cairn.core.gc`) after the grace period.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence

from cairn.core.catalog.claims import Claims
from cairn.core.catalog.content import BlobRow, BytesSweptError, ContentCatalog, IngestRow
from cairn.core.catalog.database import Transaction
from cairn.core.content.backend import BlobBackend
from cairn.core.content.filters import content_fields, ingest_fields, parse_filters
from cairn.core.content.locks import RefLocks
from cairn.core.content.model import Info, Status, validate_labels, validate_namespace
from cairn.core.content.store import ReaderAt
from cairn.core.content.writer import IngestWriter
from cairn.core.digest import Digest
from cairn.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

__all__ = ["NamespacedStore"]

log = logging.getLogger(__name__)

#: Times small blobs are stored again after garbage collection removed them mid-commit.
_SWEPT_RETRIES = 3


def _info(row: BlobRow) -> Info:
    return Info(Digest.parse(row.digest), row.size, row.created_at, row.updated_at, dict(row.labels))


class NamespacedStore:
    """A :class:`~cairn.core.content.store.ContentStore` over a backend and the catalog."""

    def __init__(self, backend: BlobBackend, catalog: ContentCatalog, claims: Claims | None = None) -> None:
        self.backend = backend
        self._catalog = catalog
        self._locks = RefLocks(claims)

    # -- lifecycle -----------------------------------------------------------
    def recover(self) -> int:
        """Remove what a crash left: ingest data no catalog row owns (a crash after commit)
        and partial small-blob files; returns the count."""
        owned = self._catalog.ingest_keys()
        stray = self.backend.ingest_keys() - owned
        for key in stray:
            log.info("removing leftover ingest data %s", key)
            self.backend.remove_ingest(key)
        temporaries = self.backend.clear_temporaries()
        if temporaries:
            log.info("removed %d partial blob file(s) left by a crash", temporaries)
        return len(stray) + temporaries

    def close(self) -> None:
        self.backend.close()

    # -- Provider --------------------------------------------------------------
    def reader_at(self, namespace: str, digest: Digest) -> ReaderAt:
        validate_namespace(namespace)
        size = self._catalog.blob_size(namespace, str(digest))
        if size is None:
            raise self._not_found(namespace, digest)
        return self.backend.open_blob(digest, size)

    # -- Manager ---------------------------------------------------------------
    def info(self, namespace: str, digest: Digest) -> Info:
        validate_namespace(namespace)
        row = self._catalog.get_blob(namespace, str(digest))
        if row is None:
            raise self._not_found(namespace, digest)
        return _info(row)

    def update(
        self, namespace: str, digest: Digest, labels: Mapping[str, str], paths: Sequence[str]
    ) -> Info:
        validate_namespace(namespace)
        for path in paths:
            if path != "labels" and not path.startswith("labels."):
                raise InvalidArgumentError(
                    f'cannot update "{path}" field on content info "{digest}": '
                    "only labels can change"
                )
        validate_labels(labels)

        def change(current: dict[str, str]) -> dict[str, str]:
            if not paths or "labels" in paths:
                return validate_labels(labels)
            for path in paths:
                key = path[len("labels.") :]
                value = labels.get(key, "")
                if value:
                    current[key] = value
                else:
                    current.pop(key, None)
            return validate_labels(current)

        row = self._catalog.change_labels(namespace, str(digest), change, time.time_ns())
        if row is None:
            raise self._not_found(namespace, digest)
        return _info(row)

    def walk(self, namespace: str, filters: Sequence[str] = ()) -> Iterator[Info]:
        validate_namespace(namespace)
        selector = parse_filters(filters)
        for row in self._catalog.iter_blobs(namespace):
            if selector.match(content_fields(row.digest, row.labels)):
                yield _info(row)

    def delete(self, namespace: str, digest: Digest) -> None:
        validate_namespace(namespace)
        if not self._catalog.delete_blob(namespace, str(digest)):
            raise self._not_found(namespace, digest)

    # -- IngestManager ---------------------------------------------------------
    def status(self, namespace: str, ref: str) -> Status:
        validate_namespace(namespace)
        row = self._catalog.get_ingest(namespace, ref)
        if row is None:
            raise self._ref_not_found(namespace, ref)
        return self._status(row)

    def list_statuses(self, namespace: str, filters: Sequence[str] = ()) -> list[Status]:
        validate_namespace(namespace)
        selector = parse_filters(filters)
        return [
            self._status(row)
            for row in self._catalog.list_ingests(namespace)
            if selector.match(ingest_fields(row.ref))
        ]

    def abort(self, namespace: str, ref: str) -> None:
        validate_namespace(namespace)
        self._locks.acquire(namespace, ref)
        try:
            row = self._catalog.delete_ingest(namespace, ref)
            if row is None:
                raise self._ref_not_found(namespace, ref)
            self.backend.remove_ingest(row.key)
        finally:
            self._locks.release(namespace, ref)

    def expire_ingest(self, namespace: str, ref: str, idle_before: int) -> bool:
        """Abort the ingest if no writer holds it and its data last changed before ``idle_before`` (ns).

        For garbage collection: returns whether it was aborted; an ingest being
        written (its ref is held) or written to since is left alone.
        """
        try:
            self._locks.acquire(namespace, ref)
        except UnavailableError:
            return False
        try:
            row = self._catalog.get_ingest(namespace, ref)
            if row is None or self._status(row).updated_at >= idle_before:
                return False
            if self._catalog.delete_ingest(namespace, ref) is None:
                return False
            self.backend.remove_ingest(row.key)
            return True
        finally:
            self._locks.release(namespace, ref)

    def _status(self, row: IngestRow) -> Status:
        updated = self.backend.ingest_updated_at(row.key) or row.started_at
        return Status(
            ref=row.ref,
            offset=self.backend.ingest_size(row.key),
            total=row.total,
            started_at=row.started_at,
            updated_at=max(updated, row.started_at),
        )

    # -- Ingester --------------------------------------------------------------
    def writer(
        self,
        namespace: str,
        ref: str,
        total: int = 0,
        expected: Digest | None = None,
        *,
        create: bool = True,
    ) -> IngestWriter:
        validate_namespace(namespace)
        if not ref:
            raise InvalidArgumentError("an ingest needs a non-empty ref")
        if expected is not None and self._catalog.blob_size(namespace, str(expected)) is not None:
            raise AlreadyExistsError(f"content {expected}: already exists in namespace {namespace}")
        self._locks.acquire(namespace, ref)
        try:
            row = self._open_row(namespace, ref, total, expected, create)
            return IngestWriter(
                row=row,
                backend=self.backend,
                catalog=self._catalog,
                release=lambda: self._locks.release(namespace, ref),
            )
        except BaseException:
            self._locks.release(namespace, ref)
            raise

    def _open_row(
        self, namespace: str, ref: str, total: int, expected: Digest | None, create: bool
    ) -> IngestRow:
        row = self._catalog.get_ingest(namespace, ref)
        if row is None and not create:
            raise self._ref_not_found(namespace, ref)
        if row is None:
            row = IngestRow(
                namespace=namespace,
                ref=ref,
                key=uuid.uuid4().hex,
                total=max(total, 0),
                expected=str(expected) if expected else None,
                started_at=time.time_ns(),
            )
            self.backend.create_ingest(row.key, f"{namespace}/{ref}")
            self._catalog.create_ingest(row)
            return row
        if total > 0 and row.total > 0 and total != row.total:
            raise FailedPreconditionError(
                f"ingest {ref!r} in namespace {namespace} was started with total {row.total}, "
                f"not {total}: resume with total {row.total} or abort it first"
            )
        new_expected = str(expected) if expected else row.expected
        new_total = total if total > 0 else row.total
        if (new_total, new_expected) != (row.total, row.expected):
            self._catalog.update_ingest(namespace, ref, total=new_total, expected=new_expected)
            row = IngestRow(namespace, ref, row.key, new_total, new_expected, row.started_at)
        return row

    # -- SmallBlobs ------------------------------------------------------------
    def put_blobs(
        self,
        namespace: str,
        blobs: Sequence[bytes],
        also: Callable[[Transaction], None] | None = None,
    ) -> list[Digest]:
        validate_namespace(namespace)
        digests = [Digest.of(data) for data in blobs]
        self.backend.put_blobs(list(zip(digests, blobs, strict=True)))
        now = time.time_ns()
        rows = {str(d): BlobRow(namespace, str(d), len(data), now, now, {}) for d, data in zip(digests, blobs, strict=True)}
        for _ in range(_SWEPT_RETRIES):
            try:
                self._catalog.put_blobs(list(rows.values()), also, self._present)
                return digests
            except BytesSweptError as exc:  # garbage collection took bytes meanwhile: store them again
                again = set(exc.digests)
                self.backend.put_blobs([(d, data) for d, data in zip(digests, blobs, strict=True) if str(d) in again])
        self._catalog.put_blobs(list(rows.values()), also, self._present)
        return digests

    def _present(self, digest: str) -> bool:
        return self.backend.blob_size(Digest.parse(digest)) is not None

    # -- messages --------------------------------------------------------------
    @staticmethod
    def _not_found(namespace: str, digest: Digest) -> NotFoundError:
        return NotFoundError(f"content digest {digest}: not found in namespace {namespace}")

    @staticmethod
    def _ref_not_found(namespace: str, ref: str) -> NotFoundError:
        return NotFoundError(f"ingest ref {ref!r}: not found in namespace {namespace}")
