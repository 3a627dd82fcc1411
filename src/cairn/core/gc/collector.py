"""One garbage collection run: expire, mark, sweep names, sweep bytes.

Order matters. Expired leases go first (what they held may then be garbage);
abandoned ingests next; then the registry's unreachable manifests and blob links,
then each namespace's unreachable names, and last the bytes no namespace names
any more. Every removal is a small catalog transaction that re-checks its
subject (:mod:`cairn.core.catalog.gc`); bytes are removed inside such a
transaction after ``content_sweeps`` recorded them, so a commit that names the
same digest concurrently either keeps them or stores them again
(:func:`cairn.core.catalog.content.check_bytes_in`).

Not for deciding *when* to run: the server's schedule and ``cairn gc`` do that.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from cairn.core.catalog import Catalog
from cairn.core.catalog.database import Transaction
from cairn.core.catalog.gc import SWEEP_MEMORY_NS
from cairn.core.content.backend import MultipartUploads
from cairn.core.content.namespaced import NamespacedStore
from cairn.core.digest import Digest
from cairn.core.errors import NotFoundError
from cairn.core.gc.leases import lease_expired
from cairn.core.gc.marking import containerd_live, registry_live
from cairn.core.gc.policy import GcPolicy
from cairn.core.gc.result import GcResult

__all__ = ["GarbageCollector"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_NS = 1_000_000_000


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class GarbageCollector:
    """Collects garbage of one store (catalog + content); blocking, one run at a time per caller.

    Several collectors (replicas, ``cairn gc``) may run at once without harm:
    every removal is re-checked in its transaction. Callers that want one at a
    time take a claim (the server takes ``gc``).
    """

    def __init__(self, catalog: Catalog, store: NamespacedStore, policy: GcPolicy) -> None:
        self._catalog = catalog
        self._store = store
        self._policy = policy

    def run(self, *, dry_run: bool = False) -> GcResult:
        """Collect once; with ``dry_run`` change nothing and report what would go.

        Raises UnavailableError when the catalog or the content backend cannot be
        reached (what was removed until then stays removed).
        """
        started = time.monotonic()
        now = time.time_ns()
        result = GcResult(dry_run=dry_run)
        cutoff = now - self._policy.grace_seconds * _NS
        if not dry_run:
            self._catalog.gc.prune_sweeps(now - SWEEP_MEMORY_NS)
        self._expire_leases(now, result)
        self._expire_ingests(now, result)
        removed_names = self._sweep_registry(cutoff, result)
        removed_names += self._sweep_names(now, cutoff, result)
        self._sweep_bytes(now, cutoff, removed_names, result)
        self._abort_stray_uploads(now, result)
        result.seconds = round(time.monotonic() - started, 3)
        log.info(
            "garbage collection%s: %d names, %d manifests, %d blobs (%d bytes), %d ingests, %d leases in %.1fs",
            " (dry run)" if dry_run else "",
            result.names_removed,
            result.manifests_removed,
            result.blobs_deleted,
            result.bytes_freed,
            result.ingests_expired,
            result.leases_expired,
            result.seconds,
        )
        return result

    # -- expiry ----------------------------------------------------------------------
    def _expire_leases(self, now: int, result: GcResult) -> None:
        for lease in self._catalog.leases.list():
            if not lease_expired(lease.labels, now):
                continue
            if not result.dry_run:
                try:
                    self._catalog.leases.delete(lease.namespace, lease.id)
                except NotFoundError:
                    continue  # deleted meanwhile
            result.leases_expired += 1

    def _expire_ingests(self, now: int, result: GcResult) -> None:
        idle_before = now - self._policy.ingest_expiry_seconds * _NS
        held: dict[str, set[str]] = {}
        for row in self._catalog.content.list_ingests():
            if row.namespace == self._policy.registry_namespace:
                continue  # upload sessions: the registry expires them (upload_expiry_seconds)
            if row.namespace not in held:
                held[row.namespace] = self._catalog.leases.held(row.namespace, "ingests")
            if row.ref in held[row.namespace]:
                continue
            if result.dry_run:
                try:
                    idle = self._store.status(row.namespace, row.ref).updated_at < idle_before
                except NotFoundError:
                    idle = False
                result.ingests_expired += idle
            elif self._store.expire_ingest(row.namespace, row.ref, idle_before):
                log.info("expired idle ingest %r of namespace %s", row.ref, row.namespace)
                result.ingests_expired += 1

    # -- names -----------------------------------------------------------------------
    def _sweep_registry(self, cutoff: int, result: GcResult) -> list[tuple[str, str]]:
        """Remove unreachable registry manifests and links, then the registry namespace's
        unreachable names; returns the (namespace, digest) names removed (or that would be)."""
        policy = self._policy
        graph = self._catalog.gc.registry_graph()
        live = registry_live(graph, policy.directory_repository, cutoff)
        dead = sorted((set(graph.manifests) | set(graph.links)) - live)
        if result.dry_run:
            result.manifests_removed += sum(1 for pair in dead if pair in graph.manifests)
            result.repository_links_removed += sum(1 for pair in dead if pair in graph.links)
            result.tags_removed += sum(1 for pair in dead if pair in graph.tagged)
        else:
            for batch in _batches(dead, policy.batch_size):
                manifests, tags, links = self._catalog.gc.remove_registry_pairs(
                    batch, directory_repository=policy.directory_repository, cutoff=cutoff
                )
                result.manifests_removed += manifests
                result.tags_removed += tags
                result.repository_links_removed += links
        keep = {digest for _, digest in live} | self._catalog.gc.warg_contents()
        return self._sweep_namespace(
            policy.registry_namespace, keep, cutoff, lambda tx, d: not self._catalog.gc.registry_names_digest(tx, d),
            result,
        )

    def _sweep_names(self, now: int, cutoff: int, result: GcResult) -> list[tuple[str, str]]:
        removed: list[tuple[str, str]] = []
        gc = self._catalog.gc
        for namespace in gc.namespaces():
            if namespace == self._policy.registry_namespace:
                continue
            if namespace == self._policy.images_namespace:
                removed += self._sweep_namespace(
                    namespace, gc.image_blobs(), cutoff, lambda tx, d: not gc.image_holds(tx, d), result
                )
                continue
            leased = self._catalog.leases.held(namespace, "content")
            live = containerd_live(gc.names(namespace), leased, cutoff)
            removed += self._sweep_namespace(namespace, live, cutoff, self._containerd_check(namespace, now), result)
        return removed

    def _containerd_check(self, namespace: str, since: int) -> Callable[[Transaction, str], bool]:
        gc = self._catalog.gc

        def still_garbage(tx: Transaction, digest: str) -> bool:
            return not gc.containerd_holds(tx, namespace, digest, since)

        return still_garbage

    def _sweep_namespace(
        self,
        namespace: str,
        keep: set[str],
        cutoff: int,
        still_garbage: Callable[[Transaction, str], bool],
        result: GcResult,
    ) -> list[tuple[str, str]]:
        candidates = [
            name.digest
            for name in self._catalog.gc.names(namespace)
            if name.digest not in keep and name.touched_at < cutoff
        ]
        if result.dry_run:
            result.names_removed += len(candidates)
            return [(namespace, d) for d in candidates]
        removed: list[tuple[str, str]] = []
        for batch in _batches(candidates, self._policy.batch_size):
            gone = self._catalog.gc.remove_names(namespace, batch, still_garbage, cutoff)
            result.names_removed += len(gone)
            removed += [(namespace, d) for d in gone]
        if removed:
            log.info("removed %d unreferenced names in namespace %s", len(removed), namespace)
        return removed

    # -- bytes -----------------------------------------------------------------------
    def _sweep_bytes(self, now: int, cutoff: int, removed: list[tuple[str, str]], result: GcResult) -> None:
        backend = self._store.backend
        named = self._catalog.gc.name_counts()
        if result.dry_run:  # nothing was removed: discount the names that would have been
            for digest, count in Counter(d for _, d in removed).items():
                if named.get(digest, 0) <= count:
                    named.pop(digest, None)
        sizes = {
            str(stat.digest): stat.size
            for stat in backend.iter_blob_stats()
            if str(stat.digest) not in named and stat.modified_at < cutoff
        }
        candidates = sorted(sizes)
        if result.dry_run:
            result.blobs_deleted = len(candidates)
            result.bytes_freed = sum(sizes.values())
            result.deleted = candidates
            return
        for batch in _batches(candidates, self._policy.batch_size):
            self._catalog.gc.note_sweeps(batch, now)
            gone = self._catalog.gc.remove_unnamed(batch, lambda d: backend.remove_blob(Digest.parse(d)))
            result.blobs_deleted += len(gone)
            result.bytes_freed += sum(sizes[d] for d in gone)
            result.deleted += gone

    def _abort_stray_uploads(self, now: int, result: GcResult) -> None:
        backend = self._store.backend
        if not isinstance(backend, MultipartUploads):
            return
        before = now - self._policy.ingest_expiry_seconds * _NS
        known = self._catalog.gc.known_upload_ids()
        for upload in backend.pending_uploads():
            if upload.upload_id in known or upload.initiated_at >= before:
                continue
            if not result.dry_run:
                log.info("aborting stray multipart upload %s of %s", upload.upload_id, upload.key)
                backend.abort_upload(upload)
            result.uploads_aborted += 1
