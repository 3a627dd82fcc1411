"""Catalog queries of garbage collection: what names what (the mark) and checked removal (the sweep).

Garbage collection (``cairn.core.gc``) marks from snapshots these reads give,
then removes what it found unreachable in small batches. Every removal here
re-checks, inside its own write transaction, that the thing is still
unreferenced: write transactions of every engine run one at a time (see
``sqlite.py`` and ``postgres.py``), so a push, tag, label change, lease or commit
that lands while the collector works either happened before the re-check (and
keeps the thing) or after the removal (and sees it gone). The re-checks use only
rows that a new reference must write, so they stay cheap (indexed, per digest).

Times are nanoseconds since the epoch, as every catalog timestamp.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from cairn.core.catalog.database import Database, Transaction

__all__ = ["ContentName", "GcCatalog", "RegistryGraph", "SWEEP_MEMORY_NS"]

#: How long a content_sweeps row is kept: far longer than any commit takes from
#: storing its bytes to its catalog transaction.
SWEEP_MEMORY_NS = 3600 * 10**9


@dataclass(frozen=True, slots=True)
class ContentName:
    """One content_blobs row as the mark needs it."""

    digest: str
    size: int
    created_at: int
    updated_at: int
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def touched_at(self) -> int:
        return max(self.created_at, self.updated_at)


@dataclass(slots=True)
class RegistryGraph:
    """The registry's rows that decide reachability, per repository."""

    #: (repository, digest) -> (subject or None, created_at)
    manifests: dict[tuple[str, str], tuple[str | None, int]] = field(default_factory=dict)
    #: (repository, manifest) -> digests it references
    refs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: (repository, digest) of every tag's target
    tagged: set[tuple[str, str]] = field(default_factory=set)
    #: (repository, digest) -> created_at of the repository's blob link
    links: dict[tuple[str, str], int] = field(default_factory=dict)


# Is (repository, digest) reachable, walking up from it: to manifests that reference it and
# from a referrer to its subject, until a root (a tag, a manifest younger than the cutoff, a
# link younger than the cutoff, anything in the Directory repository)?
_REGISTRY_LIVE = """
WITH RECURSIVE up(repository, digest) AS (
    SELECT CAST(? AS TEXT) COLLATE "binary", CAST(? AS TEXT) COLLATE "binary"
    UNION
    SELECT e.repository, e.parent FROM (
        SELECT repository, digest AS child, manifest AS parent FROM registry_manifest_refs
        UNION ALL
        SELECT repository, digest AS child, subject AS parent FROM registry_manifests WHERE subject IS NOT NULL
    ) e JOIN up ON e.repository = up.repository AND e.child = up.digest
)
SELECT 1 FROM up WHERE up.repository = ?
    OR EXISTS (SELECT 1 FROM registry_tags t WHERE t.repository = up.repository AND t.digest = up.digest)
    OR EXISTS (SELECT 1 FROM registry_manifests m
               WHERE m.repository = up.repository AND m.digest = up.digest AND m.created_at >= ?)
    OR EXISTS (SELECT 1 FROM registry_blobs b
               WHERE b.repository = up.repository AND b.digest = up.digest AND b.created_at >= ?)
LIMIT 1
"""


def _marks(items: Sequence[object]) -> str:
    return ", ".join("?" for _ in items)


class GcCatalog:
    """Reads for the mark and re-checked removals for the sweep."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- mark: snapshots -----------------------------------------------------------
    def namespaces(self) -> list[str]:
        return [row[0] for row in self._db.query("SELECT DISTINCT namespace FROM content_blobs ORDER BY namespace")]

    def names(self, namespace: str) -> Iterator[ContentName]:
        for row in self._db.iterate(
            "SELECT digest, size, created_at, updated_at, labels FROM content_blobs WHERE namespace = ? "
            "ORDER BY digest",
            (namespace,),
        ):
            yield ContentName(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def name_counts(self) -> dict[str, int]:
        """Every digest some namespace names, with the number of namespaces that do."""
        return {
            row[0]: int(row[1])
            for row in self._db.iterate("SELECT digest, COUNT(*) FROM content_blobs GROUP BY digest")
        }

    def registry_graph(self) -> RegistryGraph:
        graph = RegistryGraph()
        for repo, digest, subject, created in self._db.iterate(
            "SELECT repository, digest, subject, created_at FROM registry_manifests"
        ):
            graph.manifests[(repo, digest)] = (subject, created)
        for repo, manifest, digest in self._db.iterate(
            "SELECT repository, manifest, digest FROM registry_manifest_refs"
        ):
            graph.refs.setdefault((repo, manifest), []).append(digest)
        for repo, digest in self._db.iterate("SELECT repository, digest FROM registry_tags"):
            graph.tagged.add((repo, digest))
        for repo, digest, created in self._db.iterate("SELECT repository, digest, created_at FROM registry_blobs"):
            graph.links[(repo, digest)] = created
        return graph

    def warg_contents(self) -> set[str]:
        return {row[0] for row in self._db.iterate("SELECT digest FROM warg_contents")}

    def image_blobs(self) -> set[str]:
        return {row[0] for row in self._db.iterate("SELECT DISTINCT digest FROM image_blobs")}

    def known_upload_ids(self) -> set[str]:
        """Multipart upload ids the S3 content store's ingests use."""
        return {row[0] for row in self._db.query("SELECT upload_id FROM ingest_uploads WHERE upload_id IS NOT NULL")}

    # -- sweep: registry -----------------------------------------------------------
    def remove_registry_pairs(
        self, pairs: Sequence[tuple[str, str]], *, directory_repository: str, cutoff: int
    ) -> tuple[int, int, int]:
        """Remove each (repository, digest) still unreachable: its manifest row, references, tags, link.

        Returns (manifests, tags, links) removed.
        """
        manifests = tags = links = 0
        with self._db.transaction() as tx:
            for repository, digest in pairs:
                if tx.query(_REGISTRY_LIVE, (repository, digest, directory_repository, cutoff, cutoff)):
                    continue
                removed = tx.execute(
                    "DELETE FROM registry_manifests WHERE repository = ? AND digest = ?", (repository, digest)
                )
                if removed:
                    manifests += removed
                    tx.execute(
                        "DELETE FROM registry_manifest_refs WHERE repository = ? AND manifest = ?",
                        (repository, digest),
                    )
                    tags += tx.execute(
                        "DELETE FROM registry_tags WHERE repository = ? AND digest = ?", (repository, digest)
                    )
                links += tx.execute(
                    "DELETE FROM registry_blobs WHERE repository = ? AND digest = ?", (repository, digest)
                )
        return manifests, tags, links

    # -- sweep: names --------------------------------------------------------------
    def remove_names(
        self, namespace: str, digests: Sequence[str], still_garbage: Callable[[Transaction, str], bool], cutoff: int
    ) -> list[str]:
        """Remove the namespace's names of ``digests`` that are older than ``cutoff`` and for which
        ``still_garbage(tx, digest)`` holds inside the transaction; returns the digests removed."""
        removed: list[str] = []
        with self._db.transaction() as tx:
            for digest in digests:
                rows = tx.query(
                    "SELECT created_at, updated_at FROM content_blobs WHERE namespace = ? AND digest = ?",
                    (namespace, digest),
                )
                if not rows or max(rows[0]) >= cutoff or not still_garbage(tx, digest):
                    continue
                tx.execute("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?", (namespace, digest))
                removed.append(digest)
        return removed

    @staticmethod
    def registry_names_digest(tx: Transaction, digest: str) -> bool:
        """Whether any registry row (link, manifest, reference) or Warg content names ``digest``."""
        return bool(
            tx.query(
                "SELECT 1 FROM registry_blobs WHERE digest = ? "
                "UNION ALL SELECT 1 FROM registry_manifest_refs WHERE digest = ? "
                "UNION ALL SELECT 1 FROM warg_contents WHERE digest = ? LIMIT 1",
                (digest, digest, digest),
            )
        )

    @staticmethod
    def image_holds(tx: Transaction, digest: str) -> bool:
        return bool(tx.query("SELECT 1 FROM image_blobs WHERE digest = ? LIMIT 1", (digest,)))

    @staticmethod
    def containerd_holds(tx: Transaction, namespace: str, digest: str, since: int) -> bool:
        """Whether a lease holds ``digest`` or a name changed since ``since`` mentions it in a label."""
        if tx.query(
            "SELECT 1 FROM lease_resources WHERE namespace = ? AND type = 'content' AND resource = ? LIMIT 1",
            (namespace, digest),
        ):
            return True
        return bool(
            tx.query(
                "SELECT 1 FROM content_blobs WHERE namespace = ? AND updated_at >= ? AND labels LIKE ? LIMIT 1",
                (namespace, since, f"%{digest}%"),
            )
        )

    # -- sweep: bytes --------------------------------------------------------------
    def note_sweeps(self, digests: Sequence[str], now: int) -> None:
        """Record, before the bytes go, that ``digests`` are being swept (commits then check their bytes)."""
        with self._db.transaction() as tx:
            for digest in digests:
                tx.execute(
                    "INSERT INTO content_sweeps (digest, swept_at) VALUES (?, ?) "
                    "ON CONFLICT (digest) DO UPDATE SET swept_at = excluded.swept_at",
                    (digest, now),
                )

    def remove_unnamed(self, digests: Sequence[str], remove: Callable[[str], None]) -> list[str]:
        """Call ``remove(digest)`` for those of ``digests`` no namespace names, inside one
        transaction (so no commit can name them meanwhile); returns those removed."""
        if not digests:
            return []
        with self._db.transaction() as tx:
            named = {
                row[0]
                for row in tx.query(
                    f"SELECT DISTINCT digest FROM content_blobs WHERE digest IN ({_marks(digests)})", list(digests)
                )
            }
            gone = [d for d in digests if d not in named]
            for digest in gone:
                remove(digest)
        return gone

    def prune_sweeps(self, before: int) -> int:
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM content_sweeps WHERE swept_at < ?", (before,))
