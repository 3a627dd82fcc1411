"""One ``cairn fsck`` run: blobs, then references, then the Warg log, then (optionally) repair.

Composes the checks over an open catalog and content backend; the CLI opens
those (:mod:`cairn.cli.store_access`) and prints the :class:`Report`. Safe to
run while servers serve the same store: the checks only read, and repair
changes the backend the way a commit does (verified bytes under their digest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cairn.core.catalog import Catalog
from cairn.core.content.backend import BlobBackend
from cairn.integrity.blobs import BlobCheck, Progress
from cairn.integrity.rate import RateLimit
from cairn.integrity.references import ReferenceCheck
from cairn.integrity.repair import Repairer
from cairn.integrity.report import Report
from cairn.integrity.warg import WargLogCheck
from cairn.warg.crypto import PublicKey

__all__ = ["FsckOptions", "default_workers", "run_fsck"]


@dataclass(frozen=True, slots=True)
class FsckOptions:
    #: threads hashing blobs (default: one per CPU this process may use)
    workers: int = 0
    #: bytes per second read from the content store; 0 = no limit
    rate: float = 0
    #: continue an interrupted blob check (False: start over)
    resume: bool = True
    repair: bool = False
    #: registry to re-fetch corrupt or missing blobs from (with ``repair``)
    peer: str | None = None
    #: the Warg operator key, to verify checkpoint signatures (None: not checked)
    operator_key: PublicKey | None = None


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def run_fsck(
    backend: BlobBackend, catalog: Catalog, options: FsckOptions, progress: Progress | None = None
) -> Report:
    """Check the store (and repair it if asked); blocks. UnavailableError ends it with progress kept."""
    report = Report()
    BlobCheck(
        backend,
        catalog.integrity,
        workers=options.workers or default_workers(),
        rate=RateLimit(options.rate),
        progress=progress,
    ).run(report, resume=options.resume)
    ReferenceCheck(backend, catalog.integrity).run(report)
    WargLogCheck(catalog.integrity, catalog.warg, options.operator_key).run(report)
    if options.repair:
        Repairer(backend, catalog.integrity, options.peer).run(report)
    return report
