"""An open ingest: the one place where bytes become a blob.

The commit point (STYLE habit 10): the data is fsynced, its size and digest
checked, it is linked to its blob name in the backend (which fsyncs the
directory), and only then does one catalog transaction drop the ingest row and
name the blob in the namespace. Before that transaction a crash leaves a
resumable ingest; after it, a visible blob. Cleaning the ingest's data
afterwards is a secondary step: failures there are logged, not raised, and
startup recovery removes leftovers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Self

from cairn.core.catalog.content import BlobRow, BytesSweptError, ContentCatalog, IngestRow
from cairn.core.catalog.database import Transaction
from cairn.core.content.backend import BlobBackend, IngestData
from cairn.core.content.model import Info, Status, validate_labels
from cairn.core.digest import Digest
from cairn.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    OutOfRangeError,
)

__all__ = ["IngestWriter"]

log = logging.getLogger(__name__)

#: Times a commit stores its bytes again after garbage collection removed them mid-commit.
_SWEPT_RETRIES = 3


class IngestWriter:
    """A :class:`~cairn.core.content.store.Writer`; holds the ref lock until commit, abort or close."""

    def __init__(
        self,
        *,
        row: IngestRow,
        backend: BlobBackend,
        catalog: ContentCatalog,
        release: Callable[[], None],
    ) -> None:
        self._row = row
        self._backend = backend
        self._catalog = catalog
        self._release = release
        self._total = row.total
        self._expected = Digest.parse(row.expected) if row.expected else None
        self._algorithm = self._expected.algorithm if self._expected else "sha256"
        self._data: IngestData | None = backend.open_ingest(row.key, self._algorithm, self._expected)
        self._updated_at = max(backend.ingest_updated_at(row.key) or 0, row.started_at)
        self._done = False
        self._wrote = False

    @property
    def namespace(self) -> str:
        return self._row.namespace

    @property
    def ref(self) -> str:
        return self._row.ref

    @property
    def offset(self) -> int:
        return self._open_data().size

    @property
    def total(self) -> int:
        return self._total

    def _open_data(self) -> IngestData:
        if self._data is None:
            raise FailedPreconditionError(f"ingest {self.ref!r} is closed")
        return self._data

    def status(self) -> Status:
        return Status(
            ref=self.ref,
            offset=self.offset,
            total=self._total,
            started_at=self._row.started_at,
            updated_at=self._updated_at,
        )

    def digest(self) -> Digest:
        return self._open_data().digest(self._algorithm)

    def write(self, data: bytes | memoryview, offset: int) -> int:
        store = self._open_data()
        if offset == 0 and store.size > 0:
            store.truncate()
        elif offset != store.size:
            raise OutOfRangeError(
                f"ingest {self.ref!r}: write at offset {offset} must occur at current offset "
                f"{store.size}"
            )
        store.append(data)
        self._wrote = True
        self._updated_at = time.time_ns()
        return store.size

    def set_total(self, total: int) -> None:
        if total > 0 and total != self._total:
            self._total = total
            self._save()

    def set_expected(self, expected: Digest) -> None:
        if expected == self._expected:
            return
        if self._catalog.blob_size(self.namespace, str(expected)) is not None:
            self.abort()
            raise AlreadyExistsError(
                f"blob with expected digest {expected} exists in namespace {self.namespace}"
            )
        self._expected = expected
        self._algorithm = expected.algorithm
        self._save()

    def _save(self) -> None:
        self._catalog.update_ingest(
            self.namespace,
            self.ref,
            total=self._total,
            expected=str(self._expected) if self._expected else None,
        )

    def commit(
        self,
        size: int = 0,
        expected: Digest | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        also: Callable[[Transaction], None] | None = None,
    ) -> Info:
        try:
            kept_labels = validate_labels(labels or {})
            if expected is not None and expected != self._expected:
                self._expected = expected
                self._algorithm = expected.algorithm
            data = self._open_data()
            size = size if size > 0 else self._total
            if size > 0 and data.size != size:
                raise FailedPreconditionError(
                    f'"{self.ref}" failed size validation: {data.size} != {size}'
                )
            digest = data.digest(self._algorithm)
            if self._expected is not None and digest != self._expected:
                raise FailedPreconditionError(
                    f"unexpected commit digest {digest}, expected {self._expected}"
                )
            data.publish(digest)
            now = time.time_ns()
            blob = BlobRow(self.namespace, str(digest), data.size, now, now, kept_labels)
            named = self._name(data, blob, also)
            self._finish()
            if not named:
                raise AlreadyExistsError(
                    f"content {digest}: already exists in namespace {self.namespace}"
                )
            return Info(digest, blob.size, now, now, kept_labels)
        finally:
            self.close()

    def _name(self, data: IngestData, blob: BlobRow, also: Callable[[Transaction], None] | None) -> bool:
        """The catalog half of the commit; stores the bytes again if garbage collection took them meanwhile."""
        digest = Digest.parse(blob.digest)
        for _ in range(_SWEPT_RETRIES):
            try:
                return self._catalog.commit_ingest(self.namespace, self.ref, blob, also, self._present)
            except BytesSweptError:
                log.info("bytes of %s were collected during the commit; storing them again", digest)
                data.publish(digest)
        return self._catalog.commit_ingest(self.namespace, self.ref, blob, also, self._present)

    def _present(self, digest: str) -> bool:
        return self._backend.blob_size(Digest.parse(digest)) is not None

    def abort(self) -> None:
        """Drop the ingest and its data, and release the ref."""
        try:
            self._catalog.delete_ingest(self.namespace, self.ref)
            self._finish()
        finally:
            self.close()

    def _finish(self) -> None:
        data, self._data = self._data, None
        try:
            if data is not None:
                data.close()
            self._backend.remove_ingest(self._row.key)
        except Exception:  # secondary: the catalog already says the ingest is gone
            log.exception("could not remove data of ingest %s", self._row.key)

    def close(self) -> None:
        """Keep the ingest resumable and release the ref; idempotent."""
        if self._done:
            return
        self._done = True
        try:
            if self._data is not None:
                self._data.close()
                self._data = None
                if self._wrote:
                    self._catalog.sync()  # the ingest row may have been created without an fsync
        finally:
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
