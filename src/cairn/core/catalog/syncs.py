"""Catalog rows of Directory syncs: one row per sync, its status and progress.

The Directory sync manager (``cairn.directory.sync``) is the only user. Status
changes are compare-and-set (:meth:`SyncCatalog.transition` names the states a
change may start from), so a DeleteSync racing a finishing pass never gets
overwritten by the pass's result. Times are nanoseconds since the epoch.
Statuses are plain strings here; their meaning lives in the domain.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cairn.core.catalog.database import Database, Row

__all__ = ["SyncCatalog", "SyncRow"]


@dataclass(frozen=True, slots=True)
class SyncRow:
    id: str
    remote_url: str
    mode: str
    status: str
    reason: str
    registry_url: str
    copied: int
    created_at: int
    updated_at: int


_COLUMNS = "id, remote_url, mode, status, reason, registry_url, copied, created_at, updated_at"


def _row(row: Row) -> SyncRow:
    return SyncRow(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]),
        int(row[6]), int(row[7]), int(row[8]),
    )


class SyncCatalog:
    """Queries over the ``directory_syncs`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, row: SyncRow) -> None:
        """Add a new sync; AlreadyExistsError if the id is taken."""
        with self._db.transaction() as tx:
            tx.execute(
                f"INSERT INTO directory_syncs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id, row.remote_url, row.mode, row.status, row.reason, row.registry_url,
                    row.copied, row.created_at, row.updated_at,
                ),
            )

    def get(self, sync_id: str) -> SyncRow | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM directory_syncs WHERE id = ?", (sync_id,))
        return _row(rows[0]) if rows else None

    def list_syncs(self, offset: int = 0, limit: int | None = None) -> list[SyncRow]:
        """Syncs oldest first, skipping ``offset``; at most ``limit`` (None: all)."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM directory_syncs ORDER BY created_at, id LIMIT ? OFFSET ?",
            # "No limit" as the largest BIGINT: SQLite takes LIMIT -1, PostgreSQL refuses it,
            # and SQLite refuses LIMIT NULL; this spelling both engines read the same way.
            ((1 << 63) - 1 if limit is None else limit, max(offset, 0)),
        )
        return [_row(row) for row in rows]

    def in_states(self, states: Collection[str]) -> list[SyncRow]:
        """Every sync whose status is one of ``states``, oldest first."""
        if not states:
            return []
        marks = ", ".join("?" for _ in states)
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM directory_syncs WHERE status IN ({marks}) ORDER BY created_at, id",
            tuple(states),
        )
        return [_row(row) for row in rows]

    def find(self, remote_url: str, mode: str, states: Collection[str]) -> SyncRow | None:
        """The oldest sync of ``remote_url`` in ``mode`` whose status is one of ``states``."""
        if not states:
            return None
        marks = ", ".join("?" for _ in states)
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM directory_syncs WHERE remote_url = ? AND mode = ? "
            f"AND status IN ({marks}) ORDER BY created_at, id LIMIT 1",
            (remote_url, mode, *states),
        )
        return _row(rows[0]) if rows else None

    def transition(
        self,
        sync_id: str,
        status: str,
        from_states: Collection[str],
        now: int,
        *,
        reason: str | None = None,
        registry_url: str | None = None,
        copied: int = 0,
    ) -> bool:
        """Set ``status`` (and ``reason``/``registry_url`` when given, add ``copied``) if the
        sync is in one of ``from_states``; False if it is not (or does not exist)."""
        if not from_states:
            return False
        sets = ["status = ?", "updated_at = ?", "copied = copied + ?"]
        params: list[object] = [status, now, copied]
        if reason is not None:
            sets.append("reason = ?")
            params.append(reason)
        if registry_url is not None:
            sets.append("registry_url = ?")
            params.append(registry_url)
        marks = ", ".join("?" for _ in from_states)
        params += [sync_id, *from_states]
        with self._db.transaction() as tx:
            changed = tx.execute(
                f"UPDATE directory_syncs SET {', '.join(sets)} WHERE id = ? AND status IN ({marks})",
                params,
            )
        return changed > 0

    def add_copied(self, sync_id: str, copied: int) -> None:
        """Count ``copied`` more manifests for the sync, whatever its status."""
        if copied:
            with self._db.transaction() as tx:
                tx.execute("UPDATE directory_syncs SET copied = copied + ? WHERE id = ?", (copied, sync_id))
