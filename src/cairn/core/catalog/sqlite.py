"""The embedded catalog engine: SQLite in WAL mode, one connection per thread.

WAL lets readers run beside the one writer. A durable transaction returns only
after the WAL holding its commit is fsynced, so a committed row survives power
loss, which the content store's durability promise needs (the row is the moment
a blob becomes visible). The fsync runs after the write lock is released (group
commit: SQLite's ``synchronous=NORMAL`` plus an explicit WAL fsync, as durable
as ``synchronous=FULL`` but concurrent commits share fsyncs). Writers of other
processes wait up to ``busy_timeout`` for the write lock and then get
UnavailableError.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cairn.core.catalog.claims import Claims, LocalClaims
from cairn.core.catalog.database import Row
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    StorageFullError,
    UnavailableError,
)

__all__ = ["SqliteDatabase"]

_BUSY_TIMEOUT_MS = 10_000


def _translate(exc: sqlite3.Error, path: str) -> CairnError:
    text = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return AlreadyExistsError(f"catalog {path}: {text}")
    if "locked" in text or "busy" in text:
        return UnavailableError(f"catalog {path} is busy: {text}")
    if "full" in text:  # SQLITE_FULL: "database or disk is full"
        return StorageFullError(f"catalog {path}: {text} (no space left on device?)")
    return UnavailableError(f"catalog {path}: {text}")


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back, unless SQLite already did: after SQLITE_FULL (a full disk), IOERR or NOMEM it
    rolls the transaction back itself, and a second ROLLBACK would bury that error under
    "no transaction is active"."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()


class SqliteDatabase:
    """A :class:`~cairn.core.catalog.database.Database` over one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.url = f"sqlite://{Path(path).resolve()}"
        self.claims: Claims = LocalClaims()  # the data directory lock makes this process the only user
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn()  # fail early on an unusable path

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
                )
                conn.execute("PRAGMA journal_mode=WAL")
                # Commits are made durable by fsyncing the WAL after the write lock is
                # released (transaction()), so concurrent commits share fsyncs.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[_Tx]:
        # Writers of this process queue on a Python lock before SQLite's: a thread that
        # finds SQLite's write lock taken sleeps in the busy handler for 1-100 ms even if
        # the lock frees at once (measured: 28% of the server's time under 8 concurrent
        # registry pushes), while a threading.Lock wakes the next writer immediately.
        with self._writer:
            yield from self._transaction()
        if durable:
            # Group commit: the WAL is fsynced outside the write lock, so the next writer
            # commits while this fsync runs and one fsync often covers several commits.
            # Before it returns, this commit is as durable as with synchronous=FULL.
            self.sync()

    def _transaction(self) -> Iterator[_Tx]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        try:
            yield _Tx(conn)
        except BaseException as exc:
            _rollback(conn)
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, self.path) from exc
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            raise _translate(exc, self.path) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        # A dedicated connection, so a caller may write between rows.
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(256):
                yield from rows
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        finally:
            conn.close()

    def sync(self) -> None:
        # Non-durable commits sit in the WAL file's page cache (a checkpoint fsyncs the
        # WAL before it copies frames out, so nothing older can be unsynced elsewhere).
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        except OSError as exc:  # the commit is not known to be durable: not acknowledged either
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(f"catalog {self.path}: no space left on device syncing the WAL") from exc
            raise UnavailableError(f"catalog {self.path}: syncing the WAL failed: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def executescript(self, script: str) -> None:
        with self._writer:
            try:
                self._conn().executescript(f"BEGIN IMMEDIATE;\n{script};\nCOMMIT;")
            except sqlite3.Error as exc:
                if self._conn().in_transaction:
                    self._conn().execute("ROLLBACK")
                raise _translate(exc, self.path) from exc
        self.sync()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
