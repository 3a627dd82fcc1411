"""Group commit: concurrent callers' writes share one catalog transaction.

Many small writes from many threads (one per request) each paying for its own
transaction queue up on the engine's write lock. Here the first caller to find
no write in progress becomes the leader: it takes everything waiting (its own
item and those of callers who arrived meanwhile), writes them with one call,
and hands each caller its own result. Callers that arrived during that write
wait, then the next of them leads. No thread is dedicated to it and nothing is
delayed on purpose: a lone caller writes at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """``submit(item)`` from any thread; ``write(items) -> results`` runs for a group at a time."""

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], limit: int = 512) -> None:
        self._write = write
        self._limit = limit
        self._cond = threading.Condition()
        self._pending: list[tuple[T, Future[R]]] = []
        self._writing = False

    def submit(self, item: T) -> R:
        done: Future[R] = Future()
        with self._cond:
            self._pending.append((item, done))
            while self._writing and not done.done():
                self._cond.wait()
            if done.done():
                return done.result()
            self._writing = True
            group, self._pending = self._pending[: self._limit], self._pending[self._limit :]
        try:
            results = self._write([item for item, _ in group])
            for (_, future), result in zip(group, results, strict=True):
                future.set_result(result)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the group, re-raised there
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
        return done.result()
