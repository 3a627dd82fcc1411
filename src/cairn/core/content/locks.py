"""One writer per (namespace, ref): a table of held refs that answers at once.

A second writer gets UnavailableError naming the ref and how long it has been
held; nobody waits on the server (DECISIONS.md content-api 5). Clients retry.
The table is per process; replicas sharing a catalog add a catalog lease.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from cairn.core.errors import UnavailableError

__all__ = ["RefLocks"]


class RefLocks:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[tuple[str, str], int] = {}

    def acquire(self, namespace: str, ref: str) -> None:
        """Take the ref or raise UnavailableError at once."""
        key = (namespace, ref)
        now = time.time_ns()
        with self._mutex:
            since = self._held.get(key)
            if since is None:
                self._held[key] = now
                return
        held_for = (now - since) / 1e9
        started = datetime.fromtimestamp(since / 1e9, tz=UTC).isoformat()
        raise UnavailableError(
            f"ref {namespace}/{ref} locked for {held_for:.3f}s (since {started}): "
            "another writer holds it"
        )

    def release(self, namespace: str, ref: str) -> None:
        with self._mutex:
            self._held.pop((namespace, ref), None)

    def held(self, namespace: str, ref: str) -> bool:
        with self._mutex:
            return (namespace, ref) in self._held
