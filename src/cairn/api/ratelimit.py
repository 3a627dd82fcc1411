"""Per-client rate limits: one token bucket per client, in bounded memory.

Both faces share one :class:`RateLimiter` (``--rate-limit`` requests per second
per client, ``--rate-burst`` at once). A client is a string the face chooses:
``user:<name>`` when the caller is known cheaply (a valid Bearer token), else
``ip:<address>``. Each request takes one token; a client whose bucket is empty
is told how long until the next token (Retry-After, RESOURCE_EXHAUSTED).

Memory is bounded two ways: a bucket that has been full for a while is the same
as no bucket, so buckets idle longer than the time to refill are dropped; and at
most ``max_clients`` buckets are kept, the least recently used dropped first
(a dropped client starts again with a full bucket, which errs on the side of
letting requests through). Thread-safe: grpcio calls it from its worker threads,
aiohttp from the event loop (the critical section is a few dictionary operations).

This module is not for deciding who the client is (the faces do) or for
answering the client (429 on HTTP, RESOURCE_EXHAUSTED on gRPC).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_CLIENTS", "RateLimiter", "TokenBucket"]

#: Most clients tracked at once; beyond it the least recently seen are forgotten.
DEFAULT_MAX_CLIENTS = 10_000


@dataclass(slots=True)
class TokenBucket:
    """``tokens`` of at most ``burst``, refilled at ``rate`` per second since ``updated``."""

    tokens: float
    updated: float

    def take(self, rate: float, burst: float, now: float) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there will be one."""
        self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate


class RateLimiter:
    """``rate`` requests per second per client, up to ``burst`` at once.

    ``burst`` 0 means twice the rate (at least 1). ``clock`` is monotonic
    seconds, replaceable in tests so they need not sleep.
    """

    def __init__(
        self,
        rate: float,
        burst: int = 0,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive; use no limiter to turn limits off")
        if max_clients <= 0:
            raise ValueError("max_clients must be positive")
        self.rate = rate
        self.burst = float(burst) if burst > 0 else max(1.0, 2.0 * rate)
        self.max_clients = max_clients
        #: A bucket untouched this long is full again, so it can be forgotten.
        self.idle_seconds = self.burst / rate
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def __len__(self) -> int:
        """How many clients are tracked right now."""
        return len(self._buckets)

    def take(self, client: str) -> float:
        """Spend one of ``client``'s tokens: 0.0 if allowed, else seconds to wait before retrying."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = self._buckets[client] = TokenBucket(self.burst, now)
            else:
                self._buckets.move_to_end(client)
            wait = bucket.take(self.rate, self.burst, now)
            self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        """Drop buckets over the cap (oldest first) and, now and then, every idle one."""
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if now - self._last_sweep < self.idle_seconds:
            return
        self._last_sweep = now
        # Least recently used first: stop at the first bucket that is still refilling.
        while self._buckets:
            client, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self.idle_seconds:
                break
            del self._buckets[client]
