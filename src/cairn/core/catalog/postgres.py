"""The shared catalog engine: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

Several cairn replicas open the same database, so this engine must give the same
answers as SQLite does to one process, not merely similar ones:

* **One writer at a time.** SQLite runs write transactions one after another
  (``BEGIN IMMEDIATE``); the catalog's read-then-write transactions (label changes,
  ingest removal, ``put_image``'s existence check) rely on that. Each transaction here
  first takes one transaction-level advisory lock (``pg_advisory_xact_lock``), so
  write transactions of every replica are serialised the same way, under READ
  COMMITTED, with no serialization failures for callers to retry. A writer that waits
  longer than the busy timeout gets UnavailableError, as with SQLite's busy timeout.
  Reads take no lock.
* **Group commit.** Transactions commit with ``synchronous_commit = off``, which
  releases the writer lock without waiting for the WAL flush; a durable transaction
  then calls :meth:`PostgresDatabase.sync` outside the lock, as the SQLite engine
  fsyncs its WAL outside its write lock. ``sync`` commits a transaction that writes
  one WAL record (a transactional logical message; it writes no table and needs no
  privilege) with the server's ``synchronous_commit``: flushing the WAL up to that
  commit flushes every earlier commit too, and concurrent syncs share one flush.
  ``durable=False`` simply skips that step. A server configured with
  ``synchronous_commit = off`` makes nothing durable; that is its operator's choice.
* **Placeholders.** Catalog SQL uses ``?``. :func:`to_pyformat` rewrites it to psycopg's
  ``%s`` outside string literals, quoted identifiers, dollar quotes and comments, and
  doubles every ``%`` (psycopg reads ``%`` everywhere in a query that has parameters).
* **Names the portable SQL needs.** The migrations use SQLite's spelling of two things
  PostgreSQL lacks: type ``BLOB`` and collation ``"binary"`` (byte order, which the
  listings promise: the OCI distribution spec asks for Go's ``sort.Strings`` order, and
  a database's default collation is usually a natural-language one). Before migrating,
  the engine creates them as a domain over ``bytea`` and a copy of collation ``"C"``.
* **Migrations** run under a session advisory lock (:meth:`PostgresDatabase.migrating`),
  so replicas starting together apply each migration once.

psycopg_pool's ConnectionPool (rather than a connection per thread, as for SQLite)
because a server's threads outnumber the connections a PostgreSQL server should hold:
the pool bounds them, checks broken ones out of service and reconnects after a server
restart. Connections run in autocommit mode, so a read is one round trip and a
transaction is exactly the statements between our ``BEGIN`` and ``COMMIT``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool, PoolTimeout

from cairn.core.catalog.claims import Claims
from cairn.core.catalog.database import Row
from cairn.core.catalog.postgres_claims import SessionClaims
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    ResourceExhaustedError,
    StorageFullError,
    UnavailableError,
)

__all__ = ["PostgresDatabase", "to_pyformat"]

BUSY_TIMEOUT = 10.0  # seconds, as the SQLite engine's busy timeout
# Advisory lock keys (one 64-bit key space per database): "cairn-wr" and "cairn-mi".
_WRITER_LOCK = int.from_bytes(b"cairn-wr", "big", signed=True)
_MIGRATION_LOCK = int.from_bytes(b"cairn-mi", "big", signed=True)

_BEGIN = (
    f"BEGIN; SET LOCAL lock_timeout = '{int(BUSY_TIMEOUT * 1000)}ms';"
    f" SET LOCAL synchronous_commit = off; SELECT pg_advisory_xact_lock({_WRITER_LOCK})"
)
_SYNC = "BEGIN; SELECT pg_logical_emit_message(true, 'cairn.sync', ''); COMMIT"
_PORTABLE_NAMES = """
CREATE COLLATION IF NOT EXISTS "binary" FROM "C";
DO $$ BEGIN
    CREATE DOMAIN blob AS bytea;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
"""

# Tokens that may hold a "?" which is not a placeholder, then the two characters we rewrite.
_TOKENS = re.compile(
    r"""
      [Ee]'(?:[^'\\]|\\.|'')*'          # escape string  E'it\'s'
    | '(?:[^']|'')*'                    # string literal 'it''s'
    | "(?:[^"]|"")*"                    # quoted identifier
    | --[^\n]*                          # line comment
    | /\*.*?\*/                         # block comment
    | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$   # dollar quote $$...$$, $fn$...$fn$
    | [?%]
    """,
    re.VERBOSE | re.DOTALL,
)


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``sql`` with each ``?`` placeholder as ``%s`` and each ``%`` as ``%%``."""

    def replace(match: re.Match[str]) -> str:
        token = match[0]
        if token == "?":
            return "%s"
        return token.replace("%", "%%")

    return _TOKENS.sub(replace, sql)


def _redacted(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter), for messages."""
    parts = urlsplit(url)
    if parts.query:
        query = "&".join(
            f"{key}=***" if key.lower() == "password" else item
            for item in parts.query.split("&")
            for key in [item.partition("=")[0]]
        )
        parts = parts._replace(query=query)
    if parts.password is None:
        return urlunsplit(parts)
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _translate(exc: psycopg.Error, url: str) -> CairnError:
    text = " ".join(str(exc).split())
    if isinstance(exc, PoolTimeout):
        return UnavailableError(f"catalog {url}: no database connection within {BUSY_TIMEOUT:g}s: {text}")
    if isinstance(exc, psycopg.IntegrityError):  # as the SQLite engine: every constraint violation
        return AlreadyExistsError(f"catalog {url}: {text}")
    if isinstance(exc, (pgerrors.LockNotAvailable, pgerrors.SerializationFailure, pgerrors.DeadlockDetected)):
        return UnavailableError(f"catalog {url} is busy: {text}")
    if isinstance(exc, pgerrors.DiskFull):
        return StorageFullError(f"catalog {url}: {text} (the database server's disk is full)")
    if isinstance(exc, pgerrors.OutOfMemory):
        return ResourceExhaustedError(f"catalog {url}: {text}")
    return UnavailableError(f"catalog {url}: {text}")


def _params(params: Sequence[Any]) -> list[Any]:
    return list(params)


class _Tx:
    def __init__(self, conn: psycopg.Connection[Row], url: str) -> None:
        self._conn = conn
        self._url = url

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn.execute(to_pyformat(sql), _params(params)).rowcount
        except psycopg.Error as exc:
            raise _translate(exc, self._url) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._conn.execute(to_pyformat(sql), _params(params)).fetchall()
        except psycopg.Error as exc:
            raise _translate(exc, self._url) from exc


class PostgresDatabase:
    """A :class:`~cairn.core.catalog.database.Database` over one PostgreSQL database.

    ``url`` is a libpq URL (``postgresql://user:password@host:port/dbname?sslmode=...``).
    Raises UnavailableError when the server cannot be reached within the busy timeout.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16) -> None:
        self.url = _redacted(url)
        self.claims: Claims = SessionClaims(url, self.url)
        self._pool: ConnectionPool[psycopg.Connection[Row]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            timeout=BUSY_TIMEOUT,
            name="cairn-catalog",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=BUSY_TIMEOUT)
        except PoolTimeout as exc:
            self._pool.close()
            raise UnavailableError(f"catalog {self.url}: cannot connect within {BUSY_TIMEOUT:g}s") from exc

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:  # PoolTimeout, or a connection lost while returning it
            raise _translate(exc, self.url) from exc

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[_Tx]:
        with self._connection() as conn:
            self._begin(conn)
            try:
                yield _Tx(conn, self.url)
            except BaseException:
                self._rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._rollback(conn)
                raise _translate(exc, self.url) from exc
        if durable:
            self.sync()

    def _begin(self, conn: psycopg.Connection[Row]) -> None:
        try:
            conn.execute(_BEGIN)
        except psycopg.Error as exc:
            self._rollback(conn)
            raise _translate(exc, self.url) from exc

    @staticmethod
    def _rollback(conn: psycopg.Connection[Row]) -> None:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the connection is gone; the server rolled back, the pool discards it

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._connection() as conn:
            try:
                cursor = conn.execute(to_pyformat(sql), _params(params))
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                raise _translate(exc, self.url) from exc

    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        # A server-side cursor in its own read transaction on a connection of its own,
        # so a caller may write between rows; 256 rows a round trip.
        with self._connection() as conn:
            try:
                with conn.transaction(), conn.cursor(name="cairn_iterate") as cursor:
                    cursor.itersize = 256
                    cursor.execute(to_pyformat(sql), _params(params))
                    yield from cursor
            except psycopg.Error as exc:
                raise _translate(exc, self.url) from exc

    def sync(self) -> None:
        with self._connection() as conn:
            try:
                conn.execute(_SYNC)
            except psycopg.Error as exc:
                self._rollback(conn)
                raise _translate(exc, self.url) from exc

    def executescript(self, script: str) -> None:
        # No parameters: psycopg sends the script as one simple query, several statements.
        with self.transaction() as tx:
            try:
                tx._conn.execute(script)
            except psycopg.Error as exc:
                raise _translate(exc, self.url) from exc

    @contextmanager
    def migrating(self) -> Iterator[None]:
        """Hold the migration lock (replicas migrate one at a time) with the portable names created."""
        with self._connection() as conn:
            try:
                conn.execute(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
                conn.execute(_PORTABLE_NAMES)
            except psycopg.Error as exc:
                raise _translate(exc, self.url) from exc
            try:
                yield
            finally:
                try:
                    conn.execute(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                except psycopg.Error:
                    pass  # a lost connection released the lock with it

    def close(self) -> None:
        self.claims.close()
        self._pool.close()
