"""Claims across replicas: PostgreSQL session advisory locks on one connection of this process.

A session advisory lock is released by the server when the session ends, so a
replica that is killed, or loses its network, gives up all its claims at once
and another replica can take the work over (docs/operations.md). Pooled
connections cannot hold them (a lock would travel with the connection to
whichever thread borrows it next), hence a connection of its own, used under a
mutex; claiming is one short round trip.

A claim's name is hashed to the 64-bit key PostgreSQL locks take (BLAKE2b; a
collision would make two names exclude each other, never let two holders in).
If the connection breaks, every claim is lost with it: :meth:`holding` turns
False, callers that check it stop, and the next :meth:`try_claim` reconnects.
"""

from __future__ import annotations

import hashlib
import logging
import threading

import psycopg

from cairn.core.errors import UnavailableError

__all__ = ["SessionClaims", "claim_key"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10  # seconds
# Detect a dead server or network within about half a minute, not the kernel's two hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}


def claim_key(name: str) -> int:
    """The signed 64-bit advisory lock key of claim ``name``."""
    digest = hashlib.blake2b(b"cairn-claim\0" + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SessionClaims:
    """A :class:`~cairn.core.catalog.claims.Claims` over a PostgreSQL session."""

    shared = True

    def __init__(self, conninfo: str, display_url: str) -> None:
        self._conninfo = conninfo
        self._url = display_url
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._held: set[str] = set()
        self._closed = False

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            conninfo = psycopg.conninfo.make_conninfo(
                self._conninfo, connect_timeout=CONNECT_TIMEOUT, application_name="cairn-claims", **_KEEPALIVES
            )
            self._conn = psycopg.connect(conninfo, autocommit=True)
        return self._conn

    def _lost(self, exc: psycopg.Error) -> UnavailableError:
        """Forget every claim with the broken session; the server has released them."""
        if self._held:
            log.warning("catalog %s: claims lost with their connection (%s): %s", self._url, exc, sorted(self._held))
        self._held.clear()
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
        return UnavailableError(f"catalog {self._url}: {' '.join(str(exc).split())}")

    def try_claim(self, name: str) -> bool:
        with self._mutex:
            if name in self._held or self._closed:
                return False
            try:
                row = self._connection().execute("SELECT pg_try_advisory_lock(%s)", [claim_key(name)]).fetchone()
            except psycopg.Error as exc:
                raise self._lost(exc) from exc
            if row is None or not row[0]:
                return False
            self._held.add(name)
            return True

    def release(self, name: str) -> None:
        with self._mutex:
            if name not in self._held:
                return
            self._held.discard(name)
            if self._conn is None:
                return
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", [claim_key(name)])
            except psycopg.Error as exc:
                self._lost(exc)  # the session is gone, and with it the lock

    def holding(self, name: str) -> bool:
        with self._mutex:
            if name not in self._held or self._conn is None:
                return False
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error as exc:
                self._lost(exc)
                return False
            return True

    def close(self) -> None:
        """Give up every claim for good: a closed catalog claims nothing more."""
        with self._mutex:
            self._closed = True
            self._held.clear()
            if self._conn is not None:
                try:
                    self._conn.close()
                except psycopg.Error:
                    pass
                self._conn = None
