"""The log's and the map's nodes as the algorithms read them: the catalog behind a cache.

Every node is immutable once written (a complete log node never changes; a map
node is addressed by its own hash), so a cache can never be stale, whichever
replica wrote the node. The sequencer adds a batch's nodes to the cache only
after its transaction has committed (until then the batch reads them from an
overlay of its own), so the cache holds nothing but committed nodes, even when
a batch is rolled back because another replica appended first. Readers only
ask for nodes of checkpointed lengths and roots, which are committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn.core.catalog.warg import WargCatalog
from cairn.warg.merkle_map import MapNode, decode_node

__all__ = ["CatalogLogNodes", "CatalogMapNodes"]

#: Cached entries kept before the cache is thinned.
_LOG_CACHE_LIMIT = 400_000
_MAP_CACHE_LIMIT = 400_000
#: Log nodes of at least this height survive thinning (there are few: n / 2^h).
_KEEP_HEIGHT = 5


def _height(node: int) -> int:
    return (~node & (node + 1)).bit_length() - 1


class CatalogLogNodes:
    """A :class:`~cairn.warg.merkle_log.NodeReader` over ``warg_log_nodes``."""

    def __init__(self, catalog: WargCatalog) -> None:
        self._catalog = catalog
        self._cache: dict[int, bytes] = {}

    def node(self, index: int) -> bytes:
        found = self._cache.get(index)
        if found is None:
            found = self._catalog.log_node(index)
            if found is None:
                raise KeyError(index)
            self._remember(index, found)
        return found

    def add(self, nodes: Iterable[tuple[int, bytes]]) -> None:
        for index, digest in nodes:
            self._remember(index, digest)

    def clear(self) -> None:
        self._cache.clear()

    def _remember(self, index: int, digest: bytes) -> None:
        if len(self._cache) >= _LOG_CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if _height(k) >= _KEEP_HEIGHT}
            if len(self._cache) >= _LOG_CACHE_LIMIT:
                self._cache.clear()
        self._cache[index] = digest


class CatalogMapNodes:
    """A :class:`~cairn.warg.merkle_map.MapNodeReader` over ``warg_map_nodes``."""

    def __init__(self, catalog: WargCatalog) -> None:
        self._catalog = catalog
        self._cache: dict[bytes, MapNode] = {}

    def map_node(self, digest: bytes) -> MapNode:
        found = self._cache.get(digest)
        if found is None:
            data = self._catalog.map_node(digest)
            if data is None:
                raise KeyError(digest.hex())
            found = decode_node(data)
            self._remember(digest, found)
        return found

    def add(self, nodes: Iterable[tuple[bytes, MapNode]]) -> None:
        for digest, node in nodes:
            self._remember(digest, node)

    def clear(self) -> None:
        self._cache.clear()

    def _remember(self, digest: bytes, node: MapNode) -> None:
        if len(self._cache) >= _MAP_CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = node
