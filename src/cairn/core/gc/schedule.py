"""Scheduled garbage collection: one thread, one run at a time across every replica.

Each round takes the claim ``gc`` (``cairn.core.catalog.claims``) so replicas
sharing a PostgreSQL catalog do not collect at the same moment; a replica that
finds the claim held skips the round. Collecting twice at once would be safe
(every removal is re-checked) but wasted work. ``cairn gc`` by hand does not
take the claim: an operator's explicit run goes ahead.
"""

from __future__ import annotations

import logging
import threading

from cairn.core.catalog.claims import Claims
from cairn.core.gc.collector import GarbageCollector

__all__ = ["CLAIM", "GcSchedule"]

log = logging.getLogger(__name__)

CLAIM = "gc"


class GcSchedule:
    """Runs ``collector`` every ``interval`` seconds (the first run one interval after start)."""

    def __init__(self, collector: GarbageCollector, claims: Claims, interval: float) -> None:
        self._collector = collector
        self._claims = claims
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="gc", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait for it (a run in progress finishes its current batch first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run_once(self) -> bool:
        """One claimed run; False when another process (or thread) holds the claim."""
        if not self._claims.try_claim(CLAIM):
            log.info("garbage collection skipped: another process is collecting")
            return False
        try:
            self._collector.run()
        finally:
            self._claims.release(CLAIM)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:  # a busy catalog or store must not end the schedule; try next round
                log.exception("garbage collection failed")
