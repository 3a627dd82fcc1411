"""Catalog rows of the content store: which namespace names which blob, and open ingests.

The content store (``cairn.core.content``) is the only user. Ingest rows live
here, not only on disk, so that committing an ingest is one catalog
transaction (ingest row out, blob row in): a crash leaves either the resumable
ingest or the visible blob, never both and never neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from cairn.core.catalog.database import Database, Row, Transaction
from cairn.core.errors import UnavailableError

__all__ = ["BlobRow", "BytesSweptError", "ContentCatalog", "IngestRow", "check_bytes_in"]


class BytesSweptError(UnavailableError):
    """Garbage collection removed the bytes of ``digests`` while a commit naming them ran.

    The committer stores the bytes again and retries; nothing was named.
    """

    def __init__(self, digests: Sequence[str]) -> None:
        super().__init__(f"bytes of {', '.join(digests)} were collected during the commit; store them again")
        self.digests = list(digests)


def check_bytes_in(tx: Transaction, digests: Sequence[str], present: Callable[[str], bool]) -> None:
    """Inside a commit's transaction: BytesSweptError if GC swept one of ``digests`` and its bytes are gone.

    Garbage collection records a digest in ``content_sweeps`` before it removes the
    bytes, and removes them inside its own write transaction after checking that no
    namespace names the digest. Write transactions run one at a time, so a commit
    that stored (or found) the bytes before that and names them after it sees the row
    here; only then is the backend asked, so commits pay one indexed read.
    """
    unique = sorted(set(digests))
    if not unique:
        return
    marks = ", ".join("?" for _ in unique)
    swept = [row[0] for row in tx.query(f"SELECT digest FROM content_sweeps WHERE digest IN ({marks})", unique)]
    lost = [digest for digest in swept if not present(digest)]
    if lost:
        raise BytesSweptError(lost)


@dataclass(frozen=True, slots=True)
class BlobRow:
    namespace: str
    digest: str
    size: int
    created_at: int
    updated_at: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestRow:
    """An open ingest. ``key`` names its data in the content backend."""

    namespace: str
    ref: str
    key: str
    total: int
    expected: str | None
    started_at: int


_BLOB_COLUMNS = "namespace, digest, size, created_at, updated_at, labels"
_INGEST_COLUMNS = "namespace, ref, ingest_key, total, expected, started_at"


def _blob(row: Row) -> BlobRow:
    return BlobRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]))


def _ingest(row: Row) -> IngestRow:
    return IngestRow(row[0], row[1], row[2], row[3], row[4], row[5])


class ContentCatalog:
    """Queries over ``content_blobs`` and ``content_ingests``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- blobs ---------------------------------------------------------------
    def get_blob(self, namespace: str, digest: str) -> BlobRow | None:
        rows = self._db.query(
            f"SELECT {_BLOB_COLUMNS} FROM content_blobs WHERE namespace = ? AND digest = ?",
            (namespace, digest),
        )
        return _blob(rows[0]) if rows else None

    def blob_size(self, namespace: str, digest: str) -> int | None:
        """The size of a visible blob, or None; the cheapest visibility check."""
        rows = self._db.query(
            "SELECT size FROM content_blobs WHERE namespace = ? AND digest = ?", (namespace, digest)
        )
        return int(rows[0][0]) if rows else None

    def iter_blobs(self, namespace: str) -> Iterator[BlobRow]:
        for row in self._db.iterate(
            f"SELECT {_BLOB_COLUMNS} FROM content_blobs WHERE namespace = ? ORDER BY digest",
            (namespace,),
        ):
            yield _blob(row)

    def namespaces_naming(self, digest: str) -> list[str]:
        rows = self._db.query("SELECT namespace FROM content_blobs WHERE digest = ?", (digest,))
        return [row[0] for row in rows]

    def put_blob(self, blob: BlobRow) -> bool:
        """Insert ``blob``; False (and nothing changed) if the namespace names it already."""
        with self._db.transaction() as tx:
            return self._insert_blob(tx, blob)

    @staticmethod
    def _insert_blob(tx: Transaction, blob: BlobRow) -> bool:
        changed = tx.execute(
            f"INSERT INTO content_blobs ({_BLOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, digest) DO NOTHING",
            (
                blob.namespace,
                blob.digest,
                blob.size,
                blob.created_at,
                blob.updated_at,
                json.dumps(dict(blob.labels), sort_keys=True),
            ),
        )
        return bool(changed)

    def change_labels(
        self,
        namespace: str,
        digest: str,
        change: Callable[[dict[str, str]], dict[str, str]],
        updated_at: int,
    ) -> BlobRow | None:
        """Replace the labels by ``change(current)`` in one transaction; None if not named."""
        with self._db.transaction() as tx:
            rows = tx.query(
                f"SELECT {_BLOB_COLUMNS} FROM content_blobs WHERE namespace = ? AND digest = ?",
                (namespace, digest),
            )
            if not rows:
                return None
            labels = change(dict(_blob(rows[0]).labels))
            tx.execute(
                "UPDATE content_blobs SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
                (json.dumps(labels, sort_keys=True), updated_at, namespace, digest),
            )
            row = rows[0]
        return BlobRow(row[0], row[1], row[2], row[3], updated_at, labels)

    def delete_blob(self, namespace: str, digest: str) -> bool:
        with self._db.transaction() as tx:
            return bool(
                tx.execute(
                    "DELETE FROM content_blobs WHERE namespace = ? AND digest = ?", (namespace, digest)
                )
            )

    # -- ingests -------------------------------------------------------------
    def get_ingest(self, namespace: str, ref: str) -> IngestRow | None:
        rows = self._db.query(
            f"SELECT {_INGEST_COLUMNS} FROM content_ingests WHERE namespace = ? AND ref = ?",
            (namespace, ref),
        )
        return _ingest(rows[0]) if rows else None

    def list_ingests(self, namespace: str | None = None) -> list[IngestRow]:
        if namespace is None:
            rows = self._db.query(f"SELECT {_INGEST_COLUMNS} FROM content_ingests ORDER BY ref")
        else:
            rows = self._db.query(
                f"SELECT {_INGEST_COLUMNS} FROM content_ingests WHERE namespace = ? ORDER BY ref",
                (namespace,),
            )
        return [_ingest(row) for row in rows]

    def create_ingest(self, ingest: IngestRow) -> None:
        """Insert ``ingest``; AlreadyExistsError if (namespace, ref) is taken.

        Not fsynced on its own: an empty ingest a power loss forgets costs nothing
        (the client starts it again). A writer that stored data calls :meth:`sync`
        when it closes, before the data is acknowledged.
        """
        with self._db.transaction(durable=False) as tx:
            tx.execute(
                f"INSERT INTO content_ingests ({_INGEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    ingest.namespace,
                    ingest.ref,
                    ingest.key,
                    ingest.total,
                    ingest.expected,
                    ingest.started_at,
                ),
            )

    def sync(self) -> None:
        """Make ingest rows created without an fsync durable (before acknowledging their data)."""
        self._db.sync()

    def update_ingest(self, namespace: str, ref: str, *, total: int, expected: str | None) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE content_ingests SET total = ?, expected = ? WHERE namespace = ? AND ref = ?",
                (total, expected, namespace, ref),
            )

    def delete_ingest(self, namespace: str, ref: str) -> IngestRow | None:
        """Remove the ingest row; returns what was removed (None if there was none)."""
        with self._db.transaction() as tx:
            rows = tx.query(
                f"SELECT {_INGEST_COLUMNS} FROM content_ingests WHERE namespace = ? AND ref = ?",
                (namespace, ref),
            )
            if not rows:
                return None
            tx.execute("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?", (namespace, ref))
        return _ingest(rows[0])

    def put_blobs(
        self,
        blobs: Sequence[BlobRow],
        also: Callable[[Transaction], None] | None = None,
        present: Callable[[str], bool] | None = None,
    ) -> None:
        """Name ``blobs`` (existing names are kept) and run ``also``, in one transaction.

        With ``present`` (does the backend hold this digest's bytes?), raises
        BytesSweptError if garbage collection removed bytes of one of ``blobs``.
        """
        with self._db.transaction() as tx:
            if present is not None:
                check_bytes_in(tx, [blob.digest for blob in blobs], present)
            for blob in blobs:
                self._insert_blob(tx, blob)
            if also is not None:
                also(tx)

    def commit_ingest(
        self,
        namespace: str,
        ref: str,
        blob: BlobRow,
        also: Callable[[Transaction], None] | None = None,
        present: Callable[[str], bool] | None = None,
    ) -> bool:
        """Atomically drop the ingest row, name ``blob`` in the namespace, and run ``also``.

        Returns False when the namespace already named the blob (the ingest row
        is dropped and ``also`` runs all the same). With ``present``, raises
        BytesSweptError (nothing changed) if garbage collection removed the blob's bytes.
        """
        with self._db.transaction() as tx:
            if present is not None:
                check_bytes_in(tx, [blob.digest], present)
            tx.execute("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?", (namespace, ref))
            named = self._insert_blob(tx, blob)
            if also is not None:
                also(tx)
            return named

    def ingest_keys(self) -> set[str]:
        return {row[0] for row in self._db.query("SELECT ingest_key FROM content_ingests")}
