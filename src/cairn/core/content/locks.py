"""One writer per (namespace, ref): a table of held refs that answers at once.

A second writer gets UnavailableError naming the ref and how long it has been
held; nobody waits on the server (DECISIONS.md content-api 5). Clients retry.
The table is per process; when replicas share the catalog, each ref is also
claimed there (:mod:`cairn.core.catalog.claims`), so a writer on another
replica is refused the same way, and a replica that dies lets go of its refs.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from cairn.core.catalog.claims import Claims
from cairn.core.errors import UnavailableError

__all__ = ["RefLockedError", "RefLocks"]


class RefLockedError(UnavailableError):
    """The ref is held by another writer (not: the catalog is unreachable, also UNAVAILABLE)."""


def _claim_name(namespace: str, ref: str) -> str:
    return f"content-ref:{namespace}\0{ref}"


class RefLocks:
    def __init__(self, claims: Claims | None = None) -> None:
        self._mutex = threading.Lock()
        self._held: dict[tuple[str, str], int] = {}
        self._claims = claims if claims is not None and claims.shared else None

    def acquire(self, namespace: str, ref: str) -> None:
        """Take the ref or raise UnavailableError at once."""
        key = (namespace, ref)
        now = time.time_ns()
        with self._mutex:
            since = self._held.get(key)
            if since is None:
                self._held[key] = now
        if since is None:
            self._claim(namespace, ref)
            return
        held_for = (now - since) / 1e9
        started = datetime.fromtimestamp(since / 1e9, tz=UTC).isoformat()
        raise RefLockedError(
            f"ref {namespace}/{ref} locked for {held_for:.3f}s (since {started}): "
            "another writer holds it"
        )

    def _claim(self, namespace: str, ref: str) -> None:
        if self._claims is None:
            return
        try:
            claimed = self._claims.try_claim(_claim_name(namespace, ref))
        except BaseException:
            self._forget(namespace, ref)
            raise
        if not claimed:
            self._forget(namespace, ref)
            raise RefLockedError(
                f"ref {namespace}/{ref} locked: another writer holds it on another cairn replica"
            )

    def _forget(self, namespace: str, ref: str) -> None:
        with self._mutex:
            self._held.pop((namespace, ref), None)

    def release(self, namespace: str, ref: str) -> None:
        if self._claims is not None:
            self._claims.release(_claim_name(namespace, ref))
        self._forget(namespace, ref)

    def held(self, namespace: str, ref: str) -> bool:
        with self._mutex:
            return (namespace, ref) in self._held
