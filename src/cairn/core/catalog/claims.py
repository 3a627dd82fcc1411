"""Claims: named, exclusive, process-lifetime holds that replicas sharing a catalog agree on.

Some work must be done by one process at a time across every replica of a
store: writing one content ref (DECISIONS.md content-api 5), appending to the
Warg log, running one Directory sync. Each such piece of work has a name
(``content-ref:<namespace>/<ref>``, ``warg-sequencer``, ``warg-initialise``,
``directory-sync:<id>``);
a process that wants to do it tries to claim the name and either gets it at
once or learns that another process holds it. Nobody waits: callers answer
UNAVAILABLE or try again later.

A claim lasts until it is released or the process that holds it dies, so a
replica killed mid-operation never leaves work stranded. The catalog engine
decides how: the embedded SQLite catalog belongs to one process (the data
directory lock), so :class:`LocalClaims` is an in-process table; the
PostgreSQL engine holds session advisory locks on one connection of its own,
which the server drops the moment that process or its connection goes away
(:class:`cairn.core.catalog.postgres_claims.SessionClaims`).
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["Claims", "LocalClaims"]


class Claims(Protocol):
    """Named exclusive claims of this process."""

    #: whether other processes claim from the same table (several replicas)
    shared: bool

    def try_claim(self, name: str) -> bool:
        """Take ``name`` if nobody holds it; False at once if another process (or this one) does.

        UnavailableError when the catalog cannot be reached.
        """
        ...

    def release(self, name: str) -> None:
        """Give ``name`` up (no-op if not held)."""
        ...

    def holding(self, name: str) -> bool:
        """Whether this process still holds ``name`` (False once a lost connection dropped it)."""
        ...

    def close(self) -> None: ...


class LocalClaims:
    """Claims of the one process that owns an embedded catalog."""

    shared = False

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: set[str] = set()

    def try_claim(self, name: str) -> bool:
        with self._mutex:
            if name in self._held:
                return False
            self._held.add(name)
            return True

    def release(self, name: str) -> None:
        with self._mutex:
            self._held.discard(name)

    def holding(self, name: str) -> bool:
        with self._mutex:
            return name in self._held

    def close(self) -> None:
        with self._mutex:
            self._held.clear()
