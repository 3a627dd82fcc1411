"""Re-hash every blob the content backend holds: parallel, rate-limited, resumable.

Blobs are checked in digest order (the order both backends list them in), by a
pool of worker threads (hashlib releases the GIL, so they use every CPU);
results are taken in that same order, so "every blob up to digest D is done"
is a single watermark, saved in the catalog (``integrity_runs``) every
:data:`SAVE_SECONDS`. An interrupted run (Ctrl-C, ``kill -9``, a lost
connection) resumes after its watermark; blobs it had found corrupt are kept
as suspects and checked again, so the resumed run still reports them.

A blob that vanishes while it is checked (garbage collection) is not a
problem; one whose bytes cannot be read (an I/O error, a short object) is
reported as corrupt, like one whose bytes hash to something else. An
unreachable backend ends the run (UnavailableError) with its progress kept.
This module does not decide what to do about a corrupt blob (:mod:`.repair`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from cairn.core.catalog.integrity import IntegrityCatalog
from cairn.core.content.backend import BlobBackend
from cairn.core.digest import Digest, new_hasher
from cairn.core.errors import DataLossError, NotFoundError
from cairn.integrity.rate import RateLimit
from cairn.integrity.report import Problem, Report

__all__ = ["SCOPE", "BlobCheck"]

log = logging.getLogger(__name__)

#: The ``integrity_runs`` row of the blob check.
SCOPE = "blobs"
#: Bytes read and hashed at a time.
PIECE = 1 << 20
#: How often the watermark is saved while a run goes on.
SAVE_SECONDS = 0.25

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class _Checked:
    digest: Digest
    size: int
    problem: Problem | None


class BlobCheck:
    """Checks the blobs of ``backend``, keeping its progress in ``catalog``.

    ``progress`` is called with (blobs, bytes) checked so far by this run after
    every blob, from the calling thread.
    """

    def __init__(
        self,
        backend: BlobBackend,
        catalog: IntegrityCatalog,
        *,
        workers: int,
        rate: RateLimit,
        progress: Progress | None = None,
    ) -> None:
        self._backend = backend
        self._catalog = catalog
        self._workers = max(1, workers)
        self._rate = rate
        self._progress = progress

    def run(self, report: Report, *, resume: bool = True) -> None:
        """Check every blob (or those after an unfinished run's watermark), adding problems to ``report``."""
        earlier = self._catalog.get_run(SCOPE)
        if resume and earlier is not None and not earlier.finished:
            after = earlier.last_digest
            report.resumed, report.blobs_skipped = True, earlier.blobs_checked
            for text in self._catalog.suspects(SCOPE):
                if text <= after:  # later ones the scan reaches anyway
                    self._record(report, self._check(Digest.parse(text)), suspect=False)
            log.info("resuming the blob check after %s (%d blobs done)", after or "the start", earlier.blobs_checked)
            # The run's totals count each blob once: suspects checked again are not added twice.
            base = (earlier.blobs_checked - report.blobs_checked, earlier.bytes_checked - report.bytes_checked)
        else:
            self._catalog.start_run(SCOPE, time.time_ns())
            after, base = "", (0, 0)
        self._scan(report, after, base)
        self._catalog.finish_run(SCOPE, time.time_ns())

    def _scan(self, report: Report, after: str, base: tuple[int, int]) -> None:
        window: deque[tuple[Digest, Future[_Checked]]] = deque()
        watermark, saved_at = after, time.monotonic()
        pool = ThreadPoolExecutor(self._workers, thread_name_prefix="fsck")
        try:
            for digest in self._backend.iter_blobs():
                if str(digest) <= after:
                    continue
                window.append((digest, pool.submit(self._check, digest)))
                while len(window) >= 2 * self._workers:
                    watermark = self._collect(report, window.popleft()[1])
                    saved_at = self._maybe_save(watermark, base, report, saved_at)
            while window:
                watermark = self._collect(report, window.popleft()[1])
                saved_at = self._maybe_save(watermark, base, report, saved_at)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._save(watermark, base, report)

    def _collect(self, report: Report, future: Future[_Checked]) -> str:
        checked = future.result()
        self._record(report, checked, suspect=True)
        if self._progress is not None:
            self._progress(report.blobs_checked, report.bytes_checked)
        return str(checked.digest)

    def _record(self, report: Report, checked: _Checked, *, suspect: bool) -> None:
        if checked.size < 0:  # gone meanwhile
            return
        report.blobs_checked += 1
        report.bytes_checked += checked.size
        if checked.problem is not None:
            if suspect:
                self._catalog.add_suspect(SCOPE, str(checked.digest))
            report.add(checked.problem)

    def _maybe_save(self, watermark: str, base: tuple[int, int], report: Report, saved_at: float) -> float:
        now = time.monotonic()
        if now - saved_at < SAVE_SECONDS:
            return saved_at
        self._save(watermark, base, report)
        return now

    def _save(self, watermark: str, base: tuple[int, int], report: Report) -> None:
        """The run's totals so far: ``base`` (earlier invocations) plus this one's."""
        self._catalog.save_progress(
            SCOPE, watermark, base[0] + report.blobs_checked, base[1] + report.bytes_checked, time.time_ns()
        )

    def _check(self, digest: Digest) -> _Checked:
        """Hash one blob (in a worker thread); size -1 when the backend no longer holds it."""
        try:
            reader = self._backend.open_blob(digest)
        except NotFoundError:
            return _Checked(digest, -1, None)
        except DataLossError as exc:
            return _Checked(digest, 0, _corrupt(digest, f"cannot be read: {exc.message}"))
        hasher = new_hasher(digest.algorithm)
        offset = 0
        try:
            with reader:
                size = reader.size
                while offset < size:
                    wanted = min(PIECE, size - offset)
                    self._rate.take(wanted)
                    data = reader.read_at(offset, wanted)
                    if not data:
                        break
                    hasher.update(data)
                    offset += len(data)
        except NotFoundError:
            return _Checked(digest, -1, None)
        except DataLossError as exc:
            return _Checked(digest, offset, _corrupt(digest, f"cannot be read: {exc.message}"))
        except OSError as exc:
            return _Checked(digest, offset, _corrupt(digest, f"cannot be read at offset {offset}: {exc}"))
        got = Digest.from_hasher(hasher)
        if offset != size:
            return _Checked(digest, offset, _corrupt(digest, f"holds {offset} readable bytes of {size}"))
        if got != digest:
            return _Checked(digest, size, _corrupt(digest, f"its {size} bytes hash to {got}"))
        return _Checked(digest, size, None)


def _corrupt(digest: Digest, detail: str) -> Problem:
    log.error("blob %s is corrupt: %s", digest, detail, extra={"digest": str(digest)})
    return Problem("corrupt-blob", str(digest), detail, digest)
