"""A byte-rate limit shared by fsck's worker threads, and the ``50M``-style spelling of it.

fsck re-reads every blob; on a store that is also serving, the operator caps
how hard it reads (``--rate``). The limit paces: each piece read books its
time slot on one shared schedule, and the thread sleeps until its slot begins,
so N threads together stay at the rate without a background refill thread.
"""

from __future__ import annotations

import re
import threading
import time

from cairn.core.errors import InvalidArgumentError

__all__ = ["RateLimit", "parse_rate"]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?(?:/s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> float:
    """Bytes per second from ``50M``, ``1.5G``, ``200KiB/s`` or ``1048576`` (binary units); 0 = no limit."""
    match = _RATE.match(text)
    if not match:
        raise InvalidArgumentError(f"rate {text!r} is not a number of bytes per second like 50M or 1G")
    return float(match[1]) * _UNITS[match[2].upper()]


class RateLimit:
    """At most ``bytes_per_second`` across all threads calling :meth:`take`; 0 means unlimited."""

    def __init__(self, bytes_per_second: float) -> None:
        if bytes_per_second < 0:
            raise InvalidArgumentError(f"rate {bytes_per_second} must not be negative")
        self._rate = bytes_per_second
        self._lock = threading.Lock()
        self._next = 0.0  # monotonic time at which the schedule is free again

    def take(self, size: int) -> None:
        """Book ``size`` bytes and sleep until their slot; returns at once without a limit."""
        if self._rate <= 0 or size <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + size / self._rate
        if start > now:
            time.sleep(start - now)
