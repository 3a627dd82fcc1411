"""Pull and push progress in Docker's words: the message value, the bar, and throttled byte counts.

Docker clients print pull and push output from ``id``/``status``/``progress``
triples, and scripts match on the status words, so cairn uses Docker v24's
vocabulary and its rendered bar (``jsonmessage.JSONProgress.String`` with the
daemon's 200-column width: ``[=====>      ]  1.2MB/3.4MB``). :class:`Meter`
keeps a 64 MiB layer from producing one message per chunk: at most one
``Downloading``/``Pushing`` message per interval, the first and the last
always, and ``current`` never above ``total``.

This module is not for transport: a :data:`ProgressSink` is any callable; the
gRPC face turns :class:`Progress` values into ``PullProgress``/``PushProgress``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Meter",
    "Progress",
    "ProgressSink",
    "human_size",
    "render_bar",
]

#: Docker's default progress bar is 50 characters wide (the daemon renders at width 200).
_BAR_WIDTH = 50
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


@dataclass(frozen=True, slots=True)
class Progress:
    """One ``PullProgress``/``PushProgress`` message."""

    #: 12-hex short digest of the layer, or the tag/digest for the first line, "" for final lines.
    id: str = ""
    #: Docker v24 vocabulary: ``Pulling fs layer``, ``Downloading``, ``Pushed``, ...
    status: str = ""
    #: The rendered bar (``[==>   ]  1.2MB/3.4MB``), "" when none.
    progress: str = ""
    current: int = 0
    total: int = 0


#: Receives every message; called from any thread, so it must be cheap and thread-safe.
ProgressSink = Callable[[Progress], None]


def human_size(size: float, precision: int = 4) -> str:
    """go-units ``HumanSizeWithPrecision``: decimal units, ``precision`` significant digits.

    4 is ``HumanSize`` (``1.235MB``, ``999B``, ``1kB``: progress bars); ``docker images``
    shows 3 (``7.05MB``).
    """
    value = float(size)
    unit = 0
    while value >= 1000.0 and unit < len(_UNITS) - 1:
        value /= 1000.0
        unit += 1
    return f"{value:.{precision}g}{_UNITS[unit]}"


def render_bar(current: int, total: int) -> str:
    """Docker's progress string for ``current`` of ``total`` bytes (``jsonmessage.JSONProgress``).

    ``""`` when both are <= 0; only the size when the total is unknown; the
    counts without the total when ``current`` exceeds it (as Docker does).
    """
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, _BAR_WIDTH)
    percentage = max(percentage, 0)
    bar = f"[{'=' * percentage}>{' ' * (_BAR_WIDTH - percentage)}] "
    if current > total:
        return f"{bar}{human_size(current):>8}"
    return f"{bar}{human_size(current):>8}/{human_size(total)}"


class Meter:
    """Byte progress of one layer as throttled messages with one status (``Downloading``, ``Pushing``).

    :meth:`update` sends a message when at least ``interval`` seconds passed
    since the last one (the first update always sends); :meth:`finish` sends
    the final count unless it was the last one sent. ``current`` is clamped to
    ``total`` when the total is known. Thread-safe.
    """

    def __init__(
        self,
        sink: ProgressSink,
        id: str,
        status: str,
        total: int,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._id = id
        self._status = status
        self.total = total
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_time: float | None = None
        self._last_sent = -1
        self.current = 0

    def _clamp(self, current: int) -> int:
        return min(current, self.total) if self.total > 0 else current

    def update(self, current: int) -> None:
        """Record ``current`` bytes done; sends a message when one is due."""
        with self._lock:
            self.current = self._clamp(current)
            now = self._clock()
            if self._last_time is not None and now - self._last_time < self._interval:
                return
            self._last_time = now
            self._send()

    def reset(self, current: int = 0) -> None:
        """Start counting again from ``current`` (a re-sent upload); sends nothing."""
        with self._lock:
            self.current = self._clamp(current)

    def finish(self, current: int | None = None) -> None:
        """Send the final count (``total`` unless given) if it was not the last message sent."""
        with self._lock:
            self.current = self._clamp(self.total if current is None else current)
            if self._last_sent != self.current:
                self._last_time = self._clock()
                self._send()

    def _send(self) -> None:
        self._last_sent = self.current
        self._sink(
            Progress(
                id=self._id,
                status=self._status,
                progress=render_bar(self.current, self.total),
                current=self.current,
                total=self.total,
            )
        )
