"""Immutable bytes kept in memory: whole small blobs and 1 MiB blocks of large ones.

Manifests, Directory records and Warg content are read again and again, and
``ctr content get`` reads a large blob 32 KiB per call.

A blob's bytes never change (the key is their digest), so a cached copy is
never stale and needs no invalidation: whether a namespace may see the blob is
decided by the catalog before the backend is asked. One GET costs an object
store round trip (about a millisecond on loopback, tens across a network);
the cache turns repeated reads into none. Bounded by total
bytes, least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["ImmutableBytesCache"]


class ImmutableBytesCache:
    """An LRU of byte strings up to ``item_limit`` bytes each, ``budget`` bytes in all. Thread-safe."""

    def __init__(self, budget: int = 64 << 20, item_limit: int = 256 << 10) -> None:
        self.budget = budget
        self.item_limit = item_limit
        self._mutex = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> bytes | None:
        with self._mutex:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.item_limit:
            return
        with self._mutex:
            if key in self._items:
                self._items.move_to_end(key)
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.budget:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def drop(self, key: str) -> None:
        with self._mutex:
            data = self._items.pop(key, None)
            if data is not None:
                self._bytes -= len(data)
