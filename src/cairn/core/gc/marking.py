"""The mark: which names are live, computed from catalog snapshots (pure functions, no I/O).

The sweep re-checks every removal in its transaction (``cairn.core.catalog.gc``),
so a snapshot that is stale by the time of the sweep errs only towards keeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from cairn.core.catalog.gc import ContentName, RegistryGraph

__all__ = ["GC_REF_PREFIX", "GC_ROOT_LABEL", "containerd_live", "registry_live"]

GC_ROOT_LABEL = "containerd.io/gc.root"
#: ``containerd.io/gc.ref.content`` and ``containerd.io/gc.ref.content.<anything>``
GC_REF_PREFIX = "containerd.io/gc.ref.content"


def registry_live(graph: RegistryGraph, directory_repository: str, cutoff: int) -> set[tuple[str, str]]:
    """The live (repository, digest) pairs of the registry.

    Roots: tag targets, everything in the Directory repository, manifests and blob
    links created at or after ``cutoff``. A live manifest keeps what it references
    (config, layers, child manifests) and its referrers (manifests whose subject it is).
    """
    referrers: dict[tuple[str, str], list[str]] = {}
    for (repo, digest), (subject, _) in graph.manifests.items():
        if subject:
            referrers.setdefault((repo, subject), []).append(digest)
    roots: set[tuple[str, str]] = set(graph.tagged)
    roots.update(p for p, (_, created) in graph.manifests.items() if created >= cutoff or p[0] == directory_repository)
    roots.update(p for p, created in graph.links.items() if created >= cutoff or p[0] == directory_repository)
    live: set[tuple[str, str]] = set()
    todo = deque(roots)
    while todo:
        pair = todo.popleft()
        if pair in live:
            continue
        live.add(pair)
        repo = pair[0]
        todo.extend((repo, child) for child in graph.refs.get(pair, ()))
        todo.extend((repo, child) for child in referrers.get(pair, ()))
    return live


def containerd_live(names: Iterable[ContentName], leased: AbstractSet[str], cutoff: int) -> set[str]:
    """The live digests of one containerd namespace.

    Roots: names labelled ``containerd.io/gc.root``, names held by a lease, names
    created or changed at or after ``cutoff``. A live name keeps the digests its
    ``containerd.io/gc.ref.content*`` labels point at.
    """
    refs: dict[str, list[str]] = {}
    todo: deque[str] = deque()
    for name in names:
        refs[name.digest] = [v for k, v in name.labels.items() if k.startswith(GC_REF_PREFIX)]
        if GC_ROOT_LABEL in name.labels or name.digest in leased or name.touched_at >= cutoff:
            todo.append(name.digest)
    live: set[str] = set()
    while todo:
        digest = todo.popleft()
        if digest in live or digest not in refs:
            continue
        live.add(digest)
        todo.extend(refs[digest])
    return live
