"""Catalog rows of ingests whose data lives in an object store (the S3 content backend).

An object store cannot append to an object, so an ingest there is a multipart
upload plus, between writers, a few short "tail" objects (parts must be at
least 5 MiB except the last, and a writer may close with less). The bytes are
in the object store; what they are (which upload, which parts with which
ETags, where each tail starts, the hash state after each part) is here, so any
replica can continue the ingest where the last writer stopped. The pieces of
an ingest are contiguous from offset 0: parts first, then tails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.core.catalog.database import Database

__all__ = ["IngestUpload", "IngestUploadCatalog", "UploadPiece"]


@dataclass(frozen=True, slots=True)
class UploadPiece:
    """``size`` bytes from ``start``: a part of the upload (``part_number`` set) or a tail object."""

    start: int
    size: int
    part_number: int | None = None
    etag: str | None = None
    hash_state: bytes | None = None

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True, slots=True)
class IngestUpload:
    key: str
    algorithm: str
    upload_id: str | None
    target: str | None
    updated_at: int
    pieces: list[UploadPiece] = field(default_factory=list)

    @property
    def parts(self) -> list[UploadPiece]:
        return [p for p in self.pieces if p.part_number is not None]

    @property
    def tails(self) -> list[UploadPiece]:
        return [p for p in self.pieces if p.part_number is None]

    @property
    def size(self) -> int:
        return self.pieces[-1].end if self.pieces else 0


class IngestUploadCatalog:
    """Queries over ``ingest_uploads`` and ``ingest_pieces``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> IngestUpload | None:
        rows = self._db.query(
            "SELECT algorithm, upload_id, target, updated_at FROM ingest_uploads WHERE ingest_key = ?", (key,)
        )
        if not rows:
            return None
        pieces = [
            UploadPiece(r[0], r[1], r[2], r[3], bytes(r[4]) if r[4] is not None else None)
            for r in self._db.query(
                "SELECT start, size, part_number, etag, hash_state FROM ingest_pieces"
                " WHERE ingest_key = ? ORDER BY start",
                (key,),
            )
        ]
        algorithm, upload_id, target, updated_at = rows[0]
        return IngestUpload(key, algorithm, upload_id, target, updated_at, pieces)

    def size(self, key: str) -> tuple[int, int | None]:
        """(bytes stored, last change in ns or None) of ingest ``key``; (0, None) if it has no rows."""
        rows = self._db.query(
            "SELECT u.updated_at, (SELECT MAX(start + size) FROM ingest_pieces p WHERE p.ingest_key = u.ingest_key)"
            " FROM ingest_uploads u WHERE u.ingest_key = ?",
            (key,),
        )
        if not rows:
            return 0, None
        return int(rows[0][1] or 0), int(rows[0][0])

    def keys(self) -> set[str]:
        return {row[0] for row in self._db.query("SELECT ingest_key FROM ingest_uploads")}

    def reset(self, key: str, algorithm: str, now: int) -> None:
        """Start ``key`` over: no upload, no pieces (the caller removed their objects or will)."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ingest_pieces WHERE ingest_key = ?", (key,))
            if not tx.execute(
                "UPDATE ingest_uploads SET algorithm = ?, upload_id = NULL, target = NULL, updated_at = ?"
                " WHERE ingest_key = ?",
                (algorithm, now, key),
            ):
                tx.execute(
                    "INSERT INTO ingest_uploads (ingest_key, algorithm, updated_at) VALUES (?, ?, ?)",
                    (key, algorithm, now),
                )

    def set_upload(self, key: str, upload_id: str, target: str, now: int) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE ingest_uploads SET upload_id = ?, target = ?, updated_at = ? WHERE ingest_key = ?",
                (upload_id, target, now, key),
            )

    def add_part(self, key: str, part: UploadPiece, now: int) -> None:
        """Record an uploaded part; the tails it absorbed (below its end) are dropped with it."""
        with self._db.transaction() as tx:
            tx.execute(
                "DELETE FROM ingest_pieces WHERE ingest_key = ? AND part_number IS NULL AND start < ?",
                (key, part.end),
            )
            tx.execute(
                "INSERT INTO ingest_pieces (ingest_key, start, size, part_number, etag, hash_state)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key, part.start, part.size, part.part_number, part.etag, part.hash_state),
            )
            tx.execute("UPDATE ingest_uploads SET updated_at = ? WHERE ingest_key = ?", (now, key))

    def add_tail(self, key: str, tail: UploadPiece, now: int) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO ingest_pieces (ingest_key, start, size) VALUES (?, ?, ?)",
                (key, tail.start, tail.size),
            )
            tx.execute("UPDATE ingest_uploads SET updated_at = ? WHERE ingest_key = ?", (now, key))

    def cut(self, key: str, offset: int, now: int) -> None:
        """Forget the pieces from ``offset`` on (tails the object store no longer has)."""
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ingest_pieces WHERE ingest_key = ? AND start >= ?", (key, offset))
            tx.execute("UPDATE ingest_uploads SET updated_at = ? WHERE ingest_key = ?", (now, key))

    def delete(self, key: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM ingest_pieces WHERE ingest_key = ?", (key,))
            tx.execute("DELETE FROM ingest_uploads WHERE ingest_key = ?", (key,))
