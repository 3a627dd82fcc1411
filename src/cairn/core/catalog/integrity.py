"""Catalog rows and queries of integrity checks (``cairn fsck``, :mod:`cairn.integrity`).

Two jobs: the progress of a resumable blob check (``integrity_runs``,
``integrity_suspects``), and read-only listings across the other areas' tables
that the reference checks walk (names, tags, manifest references, image blobs,
Warg contents and checkpoints). The listings are plain rows; what counts as a
problem is decided in :mod:`cairn.integrity.references`. Times are nanoseconds
since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cairn.core.catalog.database import Database, Row
from cairn.core.catalog.warg import CheckpointRow

__all__ = ["IntegrityCatalog", "IntegrityRun", "ManifestRef", "PeerSource", "TagRow"]


@dataclass(frozen=True, slots=True)
class IntegrityRun:
    """Where the blob check of one scope stands."""

    scope: str
    started_at: int
    updated_at: int
    last_digest: str
    blobs_checked: int
    bytes_checked: int
    finished_at: int | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True, slots=True)
class TagRow:
    repository: str
    tag: str
    digest: str
    has_manifest: bool  # whether registry_manifests holds (repository, digest)


@dataclass(frozen=True, slots=True)
class ManifestRef:
    repository: str
    manifest: str
    digest: str
    linked: bool  # whether the repository links the digest (as a blob or a manifest)


@dataclass(frozen=True, slots=True)
class PeerSource:
    """A repository that names a digest, so a peer registry can be asked for it there."""

    repository: str
    media_type: str | None  # the manifest's media type; None for a plain blob


_RUN = "scope, started_at, updated_at, last_digest, blobs_checked, bytes_checked, finished_at"


def _run(row: Row) -> IntegrityRun:
    return IntegrityRun(
        str(row[0]), int(row[1]), int(row[2]), str(row[3]), int(row[4]), int(row[5]),
        None if row[6] is None else int(row[6]),
    )


class IntegrityCatalog:
    """Queries over ``integrity_*`` and read-only listings of the tables fsck checks."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- runs ----------------------------------------------------------------------
    def get_run(self, scope: str) -> IntegrityRun | None:
        rows = self._db.query(f"SELECT {_RUN} FROM integrity_runs WHERE scope = ?", (scope,))
        return _run(rows[0]) if rows else None

    def start_run(self, scope: str, now: int) -> IntegrityRun:
        """Begin a new run of ``scope`` from the first blob, forgetting any earlier one."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM integrity_suspects WHERE scope = ?", (scope,))
            tx.execute("DELETE FROM integrity_runs WHERE scope = ?", (scope,))
            tx.execute(
                "INSERT INTO integrity_runs (scope, started_at, updated_at) VALUES (?, ?, ?)", (scope, now, now)
            )
        return IntegrityRun(scope, now, now, "", 0, 0, None)

    def save_progress(self, scope: str, last_digest: str, blobs: int, size: int, now: int) -> None:
        """Every blob up to and including ``last_digest`` is checked (``blobs`` of them, ``size`` bytes).

        Not flushed to disk on its own: losing the last save to a power cut only means
        re-checking a few blobs.
        """
        with self._db.transaction(durable=False) as tx:
            tx.execute(
                "UPDATE integrity_runs SET last_digest = ?, blobs_checked = ?, bytes_checked = ?, "
                "updated_at = ? WHERE scope = ?",
                (last_digest, blobs, size, now, scope),
            )

    def finish_run(self, scope: str, now: int) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE integrity_runs SET finished_at = ?, updated_at = ? WHERE scope = ?", (now, now, scope))

    def add_suspect(self, scope: str, digest: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO integrity_suspects (scope, digest) VALUES (?, ?) ON CONFLICT (scope, digest) DO NOTHING",
                (scope, digest),
            )

    def suspects(self, scope: str) -> list[str]:
        rows = self._db.query("SELECT digest FROM integrity_suspects WHERE scope = ? ORDER BY digest", (scope,))
        return [str(row[0]) for row in rows]

    # -- what the reference checks walk ----------------------------------------------
    def names(self) -> Iterator[tuple[str, str]]:
        """(namespace, digest) of every content name, in digest order."""
        for row in self._db.iterate("SELECT namespace, digest FROM content_blobs ORDER BY digest, namespace"):
            yield str(row[0]), str(row[1])

    def name_exists(self, namespace: str, digest: str) -> bool:
        rows = self._db.query(
            "SELECT 1 FROM content_blobs WHERE namespace = ? AND digest = ?", (namespace, digest)
        )
        return bool(rows)

    def tags(self) -> Iterator[TagRow]:
        rows = self._db.iterate(
            "SELECT t.repository, t.tag, t.digest, m.digest FROM registry_tags t "
            "LEFT JOIN registry_manifests m ON m.repository = t.repository AND m.digest = t.digest "
            "ORDER BY t.repository, t.tag"
        )
        for row in rows:
            yield TagRow(str(row[0]), str(row[1]), str(row[2]), row[3] is not None)

    def manifest_refs(self) -> Iterator[ManifestRef]:
        rows = self._db.iterate(
            "SELECT r.repository, r.manifest, r.digest, "
            "(SELECT COUNT(*) FROM registry_blobs b WHERE b.repository = r.repository AND b.digest = r.digest) "
            "+ (SELECT COUNT(*) FROM registry_manifests m WHERE m.repository = r.repository AND m.digest = r.digest) "
            "FROM registry_manifest_refs r ORDER BY r.repository, r.manifest, r.digest"
        )
        for row in rows:
            yield ManifestRef(str(row[0]), str(row[1]), str(row[2]), int(row[3]) > 0)

    def image_blobs(self) -> Iterator[tuple[str, str]]:
        """(image id, digest) of every blob an image of the image store holds."""
        for row in self._db.iterate("SELECT image_id, digest FROM image_blobs ORDER BY image_id, digest"):
            yield str(row[0]), str(row[1])

    def warg_contents(self) -> Iterator[str]:
        for row in self._db.iterate("SELECT digest FROM warg_contents ORDER BY digest"):
            yield str(row[0])

    def checkpoints(self) -> list[CheckpointRow]:
        """Every Warg checkpoint, shortest log first."""
        rows = self._db.query(
            "SELECT log_length, log_root, map_root, timestamp, key_id, signature FROM warg_checkpoints "
            "ORDER BY log_length"
        )
        return [CheckpointRow(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5])) for r in rows]

    def peer_sources(self, digest: str) -> list[PeerSource]:
        """Repositories naming ``digest``: as a manifest (with its media type) first, then as a blob."""
        manifests = self._db.query(
            "SELECT repository, media_type FROM registry_manifests WHERE digest = ? ORDER BY repository", (digest,)
        )
        blobs = self._db.query(
            "SELECT repository FROM registry_blobs WHERE digest = ? ORDER BY repository", (digest,)
        )
        found = [PeerSource(str(r[0]), str(r[1])) for r in manifests]
        seen = {s.repository for s in found}
        found += [PeerSource(str(r[0]), None) for r in blobs if str(r[0]) not in seen]
        return found
