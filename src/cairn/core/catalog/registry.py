"""Catalog rows of the OCI registry: repositories, blob links, manifests, references, tags.

The registry (``cairn.oci.registry``) is the only user. Bytes are not here:
manifests and blobs are content-store blobs; these rows say which repository
names which digest, what a manifest is (media type, subject, artifact type) and
where tags point. Listings return at most ``limit`` names after ``last`` in byte
order (Go's ``sort.Strings``, which the distribution spec asks for; SQLite's
default collation is byte order).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cairn.core.catalog.database import Database, Row, Transaction
from cairn.core.errors import FailedPreconditionError

__all__ = ["ManifestRow", "ReferencesGoneError", "RegistryCatalog", "Requirements"]


@dataclass(frozen=True, slots=True)
class ManifestRow:
    repository: str
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    subject: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class Requirements:
    """What must still exist when a manifest is recorded, checked inside the recording transaction.

    The registry checks a manifest's references before it writes; garbage collection
    may remove an old, unreferenced link or name in between. Checking again inside
    the transaction (which serialises with GC's) makes the push either see them
    and keep them alive, or fail cleanly with the digests that went.
    """

    blobs: frozenset[str] = frozenset()  # linked as blobs of the repository
    manifests: frozenset[str] = frozenset()  # manifests of the repository
    content: tuple[str, str] | None = None  # (namespace, digest): the content name of the manifest's bytes


class ReferencesGoneError(FailedPreconditionError):
    """Required rows vanished between the registry's check and its write (garbage collected)."""

    def __init__(self, missing: set[str]) -> None:
        super().__init__(f"no longer stored: {', '.join(sorted(missing))}")
        self.missing = missing


_MANIFEST_COLUMNS = "repository, digest, media_type, size, artifact_type, subject, annotations, created_at"


def _manifest(row: Row) -> ManifestRow:
    return ManifestRow(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7])


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


class RegistryCatalog:
    """Queries over the ``registry_*`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- repositories ------------------------------------------------------------
    def repository_exists(self, name: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM registry_repositories WHERE name = ?", (name,)))

    def list_repositories(self, last: str | None, limit: int) -> list[str]:
        rows = self._db.query(
            "SELECT name FROM registry_repositories WHERE name > ? ORDER BY name LIMIT ?",
            (last or "", limit),
        )
        return [row[0] for row in rows]

    @staticmethod
    def _ensure_repository(tx: Transaction, name: str, now: int) -> None:
        tx.execute(
            "INSERT INTO registry_repositories (name, created_at) VALUES (?, ?) "
            "ON CONFLICT (name) DO NOTHING",
            (name, now),
        )

    # -- blob links --------------------------------------------------------------
    def link_blob(self, repository: str, digest: str, size: int, now: int) -> None:
        """Name ``digest`` in ``repository`` (creating the repository); idempotent."""
        with self._db.transaction() as tx:
            self.link_blob_in(tx, repository, digest, size, now)

    @classmethod
    def link_blob_in(cls, tx: Transaction, repository: str, digest: str, size: int, now: int) -> None:
        """:meth:`link_blob` inside a caller's transaction (the content store's commit)."""
        cls._ensure_repository(tx, repository, now)
        cls._link(tx, repository, digest, size, now)

    @staticmethod
    def _link(tx: Transaction, repository: str, digest: str, size: int, now: int) -> None:
        tx.execute(
            "INSERT INTO registry_blobs (repository, digest, size, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (repository, digest) DO NOTHING",
            (repository, digest, size, now),
        )

    def blob_size(self, repository: str, digest: str) -> int | None:
        rows = self._db.query(
            "SELECT size FROM registry_blobs WHERE repository = ? AND digest = ?", (repository, digest)
        )
        return int(rows[0][0]) if rows else None

    def unlink_blob(self, repository: str, digest: str) -> bool:
        with self._db.transaction() as tx:
            return bool(
                tx.execute(
                    "DELETE FROM registry_blobs WHERE repository = ? AND digest = ?", (repository, digest)
                )
            )

    def unlinked(self, repository: str, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that ``repository`` does not name as blobs."""
        return self._absent("registry_blobs", repository, digests)

    def missing_manifests(self, repository: str, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` that are not manifests of ``repository``."""
        return self._absent("registry_manifests", repository, digests)

    def _absent(self, table: str, repository: str, digests: Iterable[str]) -> set[str]:
        wanted = set(digests)
        if not wanted:
            return set()
        marks = ", ".join("?" for _ in wanted)
        rows = self._db.query(
            f"SELECT digest FROM {table} WHERE repository = ? AND digest IN ({marks})",
            (repository, *wanted),
        )
        return wanted - {row[0] for row in rows}

    # -- manifests ---------------------------------------------------------------
    def put_manifest(
        self,
        row: ManifestRow,
        references: Sequence[str],
        tags: Sequence[str],
        required: Requirements | None = None,
    ) -> None:
        """Record a manifest (idempotent for the same digest), what it references, and point ``tags`` at it.

        The manifest digest is also linked as a blob of the repository, as
        distribution does, so ``GET /v2/<name>/blobs/<manifest digest>`` works.
        ReferencesGoneError if something in ``required`` no longer exists.
        """
        with self._db.transaction() as tx:
            if required is not None:
                self.check_required(tx, row.repository, required)
            self.put_manifest_in(tx, row, references, tags)

    @classmethod
    def check_required(cls, tx: Transaction, repository: str, required: Requirements) -> None:
        """ReferencesGoneError naming what of ``required`` is gone, inside ``tx``."""
        missing = cls._absent_in(tx, "registry_blobs", repository, required.blobs)
        missing |= cls._absent_in(tx, "registry_manifests", repository, required.manifests)
        if required.content is not None:
            namespace, digest = required.content
            if not tx.query("SELECT 1 FROM content_blobs WHERE namespace = ? AND digest = ?", (namespace, digest)):
                missing.add(digest)
        if missing:
            raise ReferencesGoneError(missing)

    @staticmethod
    def _absent_in(tx: Transaction, table: str, repository: str, digests: frozenset[str]) -> set[str]:
        if not digests:
            return set()
        marks = ", ".join("?" for _ in digests)
        rows = tx.query(
            f"SELECT digest FROM {table} WHERE repository = ? AND digest IN ({marks})", (repository, *digests)
        )
        return set(digests) - {row[0] for row in rows}

    @classmethod
    def put_manifest_in(
        cls, tx: Transaction, row: ManifestRow, references: Sequence[str], tags: Sequence[str]
    ) -> None:
        """:meth:`put_manifest` inside the caller's transaction."""
        cls._ensure_repository(tx, row.repository, row.created_at)
        tx.execute(
            f"INSERT INTO registry_manifests ({_MANIFEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (repository, digest) DO NOTHING",
            (
                row.repository,
                row.digest,
                row.media_type,
                row.size,
                row.artifact_type,
                row.subject,
                json.dumps(dict(row.annotations), sort_keys=True),
                row.created_at,
            ),
        )
        for digest in set(references):
            tx.execute(
                "INSERT INTO registry_manifest_refs (repository, manifest, digest) VALUES (?, ?, ?) "
                "ON CONFLICT (repository, manifest, digest) DO NOTHING",
                (row.repository, row.digest, digest),
            )
        cls._link(tx, row.repository, row.digest, row.size, row.created_at)
        for tag in tags:
            tx.execute(
                "INSERT INTO registry_tags (repository, tag, digest, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, "
                "updated_at = excluded.updated_at",
                (row.repository, tag, row.digest, row.created_at),
            )

    def get_manifest(self, repository: str, digest: str) -> ManifestRow | None:
        rows = self._db.query(
            f"SELECT {_MANIFEST_COLUMNS} FROM registry_manifests WHERE repository = ? AND digest = ?",
            (repository, digest),
        )
        return _manifest(rows[0]) if rows else None

    def get_tagged_manifest(self, repository: str, tag: str) -> ManifestRow | None:
        rows = self._db.query(
            f"SELECT {_prefixed(_MANIFEST_COLUMNS, 'm')} FROM registry_tags t "
            "JOIN registry_manifests m ON m.repository = t.repository AND m.digest = t.digest "
            "WHERE t.repository = ? AND t.tag = ?",
            (repository, tag),
        )
        return _manifest(rows[0]) if rows else None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Remove the manifest, every tag pointing at it and its references; False if unknown."""
        with self._db.transaction() as tx:
            removed = tx.execute(
                "DELETE FROM registry_manifests WHERE repository = ? AND digest = ?", (repository, digest)
            )
            if not removed:
                return False
            tx.execute("DELETE FROM registry_tags WHERE repository = ? AND digest = ?", (repository, digest))
            tx.execute(
                "DELETE FROM registry_manifest_refs WHERE repository = ? AND manifest = ?",
                (repository, digest),
            )
            return True

    def referrers(
        self, repository: str, subject: str, artifact_type: str | None, last: str | None, limit: int
    ) -> list[ManifestRow]:
        sql = f"SELECT {_MANIFEST_COLUMNS} FROM registry_manifests WHERE repository = ? AND subject = ?"
        params: list[object] = [repository, subject]
        if artifact_type is not None:
            sql += " AND artifact_type = ?"
            params.append(artifact_type)
        sql += " AND digest > ? ORDER BY digest LIMIT ?"
        params += [last or "", limit]
        return [_manifest(row) for row in self._db.query(sql, params)]

    # -- tags --------------------------------------------------------------------
    def delete_tag(self, repository: str, tag: str) -> bool:
        with self._db.transaction() as tx:
            return bool(
                tx.execute("DELETE FROM registry_tags WHERE repository = ? AND tag = ?", (repository, tag))
            )

    def list_tags(self, repository: str, last: str | None, limit: int) -> list[str]:
        rows = self._db.query(
            "SELECT tag FROM registry_tags WHERE repository = ? AND tag > ? ORDER BY tag LIMIT ?",
            (repository, last or "", limit),
        )
        return [row[0] for row in rows]
