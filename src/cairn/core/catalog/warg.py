"""Catalog rows of the Warg registry: logs, records, log and map nodes, checkpoints.

The Warg domain (``cairn.warg.registry``) is the only user; it owns what the
rows mean. Here they are plain rows: hash strings as text, node hashes as raw
bytes, states as JSON text. The sequencer writes one batch of accepted records,
their nodes and the checkpoint covering them in one transaction (``*_in``
methods take that transaction), so a crash leaves either the whole batch or
none of it; inside it, :meth:`WargCatalog.registry_length_in` and the
``status = 'queued'`` guards of ``accept_in``/``reject_in`` let it check that no
other replica's sequencer moved the log since the batch began. Times are nanoseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from cairn.core.catalog.database import Database, Row, Transaction

__all__ = ["CheckpointRow", "WargCatalog", "WargLogRow", "WargRecordRow"]


@dataclass(frozen=True, slots=True)
class WargRecordRow:
    log_id: str
    record_id: str
    content_bytes: bytes
    key_id: str
    signature: str
    status: str
    reason: str = ""
    missing: tuple[str, ...] = ()
    registry_index: int | None = None
    queued_seq: int | None = None
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class WargLogRow:
    log_id: str
    kind: str
    name: str | None
    state: str
    length: int


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    log_length: int
    log_root: str
    map_root: str
    timestamp: int
    key_id: str
    signature: str


_RECORD = (
    "log_id, record_id, content_bytes, key_id, signature, status, reason, missing, "
    "registry_index, queued_seq, created_at"
)
_CHECKPOINT = "log_length, log_root, map_root, timestamp, key_id, signature"
_LENGTH = "SELECT MAX(registry_index) FROM warg_records"


def _record(row: Row) -> WargRecordRow:
    return WargRecordRow(
        str(row[0]), str(row[1]), bytes(row[2]), str(row[3]), str(row[4]), str(row[5]), str(row[6]),
        tuple(str(row[7]).split()), None if row[8] is None else int(row[8]),
        None if row[9] is None else int(row[9]), int(row[10]),
    )


def _checkpoint(row: Row) -> CheckpointRow:
    return CheckpointRow(int(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]), str(row[5]))


class WargCatalog:
    """Queries over the ``warg_*`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def transaction(self) -> AbstractContextManager[Transaction]:
        return self._db.transaction()

    # -- logs ----------------------------------------------------------------------
    def get_log(self, log_id: str) -> WargLogRow | None:
        rows = self._db.query(
            "SELECT log_id, kind, name, state, length FROM warg_logs WHERE log_id = ?", (log_id,)
        )
        if not rows:
            return None
        row = rows[0]
        return WargLogRow(str(row[0]), str(row[1]), None if row[2] is None else str(row[2]), str(row[3]),
                          int(row[4]))

    def names(self, log_ids: Sequence[str]) -> dict[str, str | None]:
        """Names of the known logs among ``log_ids`` (None for the operator log); unknown ones are absent."""
        found: dict[str, str | None] = {}
        for start in range(0, len(log_ids), 500):
            chunk = list(log_ids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            for row in self._db.query(f"SELECT log_id, name FROM warg_logs WHERE log_id IN ({marks})", chunk):
                found[str(row[0])] = None if row[1] is None else str(row[1])
        return found

    @staticmethod
    def ensure_log_in(tx: Transaction, log_id: str, kind: str, name: str | None, now: int) -> None:
        tx.execute(
            "INSERT INTO warg_logs (log_id, kind, name, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (log_id) DO NOTHING",
            (log_id, kind, name, now),
        )

    @staticmethod
    def save_log_in(tx: Transaction, log_id: str, state: str, accepted: int) -> None:
        """Store a log's new validated state after ``accepted`` more of its records were accepted."""
        tx.execute(
            "UPDATE warg_logs SET state = ?, length = length + ? WHERE log_id = ?", (state, accepted, log_id)
        )

    def releases(self, log_id: str) -> dict[str, str]:
        rows = self._db.query("SELECT version, body FROM warg_releases WHERE log_id = ?", (log_id,))
        return {str(row[0]): str(row[1]) for row in rows}

    @staticmethod
    def put_releases_in(tx: Transaction, log_id: str, releases: Mapping[str, str]) -> None:
        for version, body in releases.items():
            tx.execute(
                "INSERT INTO warg_releases (log_id, version, body) VALUES (?, ?, ?) "
                "ON CONFLICT (log_id, version) DO UPDATE SET body = excluded.body",
                (log_id, version, body),
            )

    # -- records -------------------------------------------------------------------
    def submit(self, row: WargRecordRow, kind: str, name: str | None, *, durable: bool = True) -> WargRecordRow:
        """Store a new record (and its log row); an existing record with that id is returned as is."""
        return self.submit_many([(row, kind, name)], durable=durable)[0]

    def submit_many(
        self, records: Sequence[tuple[WargRecordRow, str, str | None]], *, durable: bool = True
    ) -> list[WargRecordRow]:
        """:meth:`submit` for several records in one transaction; the stored rows, in order.

        ``durable=False`` returns before the commit is flushed (it survives a crash of the
        process, not of the machine); the sequencer's durable commit flushes it later.
        """
        stored: list[WargRecordRow] = []
        with self._db.transaction(durable=durable) as tx:
            for row, kind, name in records:
                self.ensure_log_in(tx, row.log_id, kind, name, row.created_at)
                tx.execute(
                    f"INSERT INTO warg_records ({_RECORD}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (log_id, record_id) DO NOTHING",
                    (
                        row.log_id, row.record_id, row.content_bytes, row.key_id, row.signature, row.status,
                        row.reason, " ".join(row.missing), row.registry_index, row.queued_seq, row.created_at,
                    ),
                )
                found = tx.query(
                    f"SELECT {_RECORD} FROM warg_records WHERE log_id = ? AND record_id = ?",
                    (row.log_id, row.record_id),
                )
                stored.append(_record(found[0]))
        return stored

    def get_record(self, log_id: str, record_id: str) -> WargRecordRow | None:
        rows = self._db.query(
            f"SELECT {_RECORD} FROM warg_records WHERE log_id = ? AND record_id = ?", (log_id, record_id)
        )
        return _record(rows[0]) if rows else None

    @staticmethod
    def content_arrived_in(tx: Transaction, digest: str, size: int, now: int) -> list[WargRecordRow]:
        """Record stored content and strike it off every sourcing record missing it.

        Content is shared by digest, so one upload serves every record waiting for it.
        Records with nothing left to upload get queued; they are returned.
        """
        tx.execute(
            "INSERT INTO warg_contents (digest, size, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (digest) DO NOTHING",
            (digest, size, now),
        )
        queued: list[WargRecordRow] = []
        rows = tx.query(
            f"SELECT {_RECORD} FROM warg_records WHERE status = 'sourcing' AND missing LIKE ?",
            (f"%{digest}%",),
        )
        for offset, found in enumerate(map(_record, rows)):
            missing = tuple(d for d in found.missing if d != digest)
            if missing:
                tx.execute(
                    "UPDATE warg_records SET missing = ? WHERE log_id = ? AND record_id = ?",
                    (" ".join(missing), found.log_id, found.record_id),
                )
                continue
            tx.execute(
                "UPDATE warg_records SET missing = '', status = 'queued', queued_seq = ? "
                "WHERE log_id = ? AND record_id = ?",
                (now + offset, found.log_id, found.record_id),
            )
            queued.append(found)
        return queued

    def reject(self, log_id: str, record_id: str, reason: str, from_status: str) -> bool:
        """Mark a record rejected if it is still ``from_status``."""
        with self._db.transaction() as tx:
            changed = tx.execute(
                "UPDATE warg_records SET status = 'rejected', reason = ?, missing = '' "
                "WHERE log_id = ? AND record_id = ? AND status = ?",
                (reason, log_id, record_id, from_status),
            )
        return changed > 0

    def queued(self, limit: int) -> list[WargRecordRow]:
        """Records waiting for the sequencer, in the order they were queued."""
        rows = self._db.query(
            f"SELECT {_RECORD} FROM warg_records WHERE status = 'queued' "
            "ORDER BY queued_seq, record_id LIMIT ?",
            (limit,),
        )
        return [_record(row) for row in rows]

    def has_queued(self, log_id: str) -> bool:
        """Whether a record of ``log_id`` waits for the sequencer."""
        rows = self._db.query(
            "SELECT 1 FROM warg_records WHERE log_id = ? AND status = 'queued' LIMIT 1", (log_id,)
        )
        return bool(rows)

    @staticmethod
    def accept_in(tx: Transaction, log_id: str, record_id: str, registry_index: int) -> bool:
        """Accept a still queued record at ``registry_index``; False if it is no longer queued."""
        changed = tx.execute(
            "UPDATE warg_records SET status = 'accepted', registry_index = ? "
            "WHERE log_id = ? AND record_id = ? AND status = 'queued'",
            (registry_index, log_id, record_id),
        )
        return changed > 0

    @staticmethod
    def reject_in(tx: Transaction, log_id: str, record_id: str, reason: str) -> bool:
        """Reject a still queued record; False if it is no longer queued."""
        changed = tx.execute(
            "UPDATE warg_records SET status = 'rejected', reason = ? "
            "WHERE log_id = ? AND record_id = ? AND status = 'queued'",
            (reason, log_id, record_id),
        )
        return changed > 0

    def accepted_in_log(self, log_id: str, after_index: int, below: int, limit: int) -> list[WargRecordRow]:
        """Accepted records of a log with ``after_index < registry_index < below``, in log order."""
        rows = self._db.query(
            f"SELECT {_RECORD} FROM warg_records WHERE log_id = ? AND registry_index > ? "
            "AND registry_index < ? ORDER BY registry_index LIMIT ?",
            (log_id, after_index, below, limit),
        )
        return [_record(row) for row in rows]

    def leaves(self, start: int, stop: int) -> list[tuple[str, str]]:
        """(log id, record id) of registry indexes ``start <= i < stop``, in index order."""
        rows = self._db.query(
            "SELECT log_id, record_id FROM warg_records WHERE registry_index >= ? AND registry_index < ? "
            "ORDER BY registry_index",
            (start, stop),
        )
        return [(str(row[0]), str(row[1])) for row in rows]

    def registry_length(self) -> int:
        return self._length(self._db.query(_LENGTH))

    @staticmethod
    def registry_length_in(tx: Transaction) -> int:
        """The registry's length as the transaction sees it (the writer's view: no batch commits meanwhile)."""
        return WargCatalog._length(tx.query(_LENGTH))

    @staticmethod
    def _length(rows: list[Row]) -> int:
        return 0 if not rows or rows[0][0] is None else int(rows[0][0]) + 1

    def head(self) -> tuple[int, CheckpointRow | None]:
        """(registry length, latest checkpoint) read together under the writer lock.

        Another replica's sequencer may commit a batch (records and checkpoint) between
        two separate reads; in one write transaction both come from the same side of it.
        """
        with self._db.transaction(durable=False) as tx:
            rows = tx.query(f"SELECT {_CHECKPOINT} FROM warg_checkpoints ORDER BY log_length DESC LIMIT 1")
            return self.registry_length_in(tx), (_checkpoint(rows[0]) if rows else None)

    # -- content ---------------------------------------------------------------------
    def content_size(self, digest: str) -> int | None:
        rows = self._db.query("SELECT size FROM warg_contents WHERE digest = ?", (digest,))
        return int(rows[0][0]) if rows else None

    def known_contents(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        marks = ", ".join("?" for _ in digests)
        rows = self._db.query(f"SELECT digest FROM warg_contents WHERE digest IN ({marks})", tuple(digests))
        return {str(row[0]) for row in rows}

    # -- log and map nodes ---------------------------------------------------------
    def log_node(self, node: int) -> bytes | None:
        rows = self._db.query("SELECT hash FROM warg_log_nodes WHERE node = ?", (node,))
        return bytes(rows[0][0]) if rows else None

    def log_nodes_from(self, first: int) -> list[tuple[int, bytes]]:
        rows = self._db.query("SELECT node, hash FROM warg_log_nodes WHERE node >= ?", (first,))
        return [(int(row[0]), bytes(row[1])) for row in rows]

    @staticmethod
    def put_log_nodes_in(tx: Transaction, nodes: Iterable[tuple[int, bytes]]) -> None:
        for node, digest in nodes:
            tx.execute(
                "INSERT INTO warg_log_nodes (node, hash) VALUES (?, ?) ON CONFLICT (node) DO NOTHING",
                (node, digest),
            )

    def map_node(self, digest: bytes) -> bytes | None:
        rows = self._db.query("SELECT node FROM warg_map_nodes WHERE hash = ?", (digest,))
        return bytes(rows[0][0]) if rows else None

    @staticmethod
    def put_map_nodes_in(tx: Transaction, nodes: Iterable[tuple[bytes, bytes]]) -> None:
        for digest, node in nodes:
            tx.execute(
                "INSERT INTO warg_map_nodes (hash, node) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING",
                (digest, node),
            )

    # -- checkpoints ---------------------------------------------------------------
    def latest_checkpoint(self) -> CheckpointRow | None:
        rows = self._db.query(f"SELECT {_CHECKPOINT} FROM warg_checkpoints ORDER BY log_length DESC LIMIT 1")
        return _checkpoint(rows[0]) if rows else None

    def checkpoint(self, log_length: int) -> CheckpointRow | None:
        rows = self._db.query(f"SELECT {_CHECKPOINT} FROM warg_checkpoints WHERE log_length = ?", (log_length,))
        return _checkpoint(rows[0]) if rows else None

    @staticmethod
    def put_checkpoint_in(tx: Transaction, row: CheckpointRow) -> None:
        tx.execute(
            f"INSERT INTO warg_checkpoints ({_CHECKPOINT}) VALUES (?, ?, ?, ?, ?, ?)",
            (row.log_length, row.log_root, row.map_root, row.timestamp, row.key_id, row.signature),
        )
