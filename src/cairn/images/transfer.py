"""What a pull and a push share: progress messages, cancellation, and parallel layer jobs.

Both move layers several at a time on a thread pool; the first layer that fails
stops the others (they end quietly with :class:`Aborted`, the first error is the
transfer's), and a client that goes away cancels everything between two
chunks. Keeping that in one place keeps the two transfers' failure behaviour
the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from cairn.core.errors import CancelledError
from cairn.images.progress import Progress, ProgressSink, render_bar

__all__ = ["Aborted", "Transfer"]

T = TypeVar("T")

#: Seconds between looks at the client while layer jobs run.
_POLL = 0.5


class Aborted(Exception):
    """Another layer failed: this one stops quietly (the other's error is the transfer's)."""


class Transfer:
    """Progress and cancellation of one pull or push; ``what`` names it in errors ("pull of x")."""

    def __init__(self, progress: ProgressSink, cancelled: Callable[[], bool], what: str) -> None:
        self.sink = progress
        self._cancelled = cancelled
        self._abort = threading.Event()
        self._what = what

    def say(self, id: str, status: str, current: int = 0, total: int = 0, bar: bool = False) -> None:
        self.sink(Progress(id, status, render_bar(current, total) if bar else "", current, total))

    def check(self) -> None:
        """Raise if another layer failed (Aborted) or the client went away (CancelledError)."""
        if self._abort.is_set():
            raise Aborted()
        if self._cancelled():
            raise CancelledError(f"{self._what} cancelled")

    def stopped(self) -> bool:
        return self._abort.is_set() or self._cancelled()

    def run_jobs(
        self,
        jobs: Sequence[Callable[[], T]],
        *,
        parallel: int,
        name: str,
        finished: Callable[[int, T], None] = lambda index, result: None,
        progressed: Callable[[], None] = lambda: None,
    ) -> None:
        """Run ``jobs`` ``parallel`` at a time; ``finished(index, result)`` as each succeeds.

        ``progressed()`` runs on this thread before the first wait and after
        each (the pull reports finished layers in order there). The first
        failure is raised after the other jobs were told to stop.
        """
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=name) as pool:
            futures: dict[Future[T], int] = {}
            try:
                for index, job in enumerate(jobs):
                    futures[pool.submit(job)] = index
                pending = set(futures)
                progressed()
                while pending:
                    done, pending = wait(pending, timeout=_POLL, return_when=FIRST_COMPLETED)
                    if self._cancelled():
                        raise CancelledError(f"{self._what} cancelled")
                    for future in done:
                        error = future.exception()
                        if error is not None and not isinstance(error, Aborted):
                            raise error
                        if error is None:
                            finished(futures[future], future.result())
                    progressed()
            except BaseException:
                self._abort.set()
                for future in futures:
                    future.cancel()
                raise
