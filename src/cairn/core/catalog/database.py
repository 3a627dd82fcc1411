"""The seam between catalog queries and a database engine.

Catalog modules (``content.py`` and the ones later faces add) write their SQL
once, in the portable subset SQLite and PostgreSQL share, with ``?``
placeholders, and run it through a :class:`Database`. An engine
(``sqlite.py``, later ``postgres.py``) owns connections, transactions,
placeholder style and the translation of its exceptions into cairn's error
vocabulary. Nothing above this module knows which engine is in use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from cairn.core.catalog.claims import Claims

__all__ = ["Database", "Row", "Transaction"]

Row = tuple[Any, ...]


class Transaction(Protocol):
    """Statements inside one atomic unit; committed when the ``with`` block exits cleanly."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Database(Protocol):
    """An engine: a pool of connections and the means to run SQL on them.

    Raises AlreadyExistsError on a uniqueness violation, UnavailableError when
    the engine is busy or unreachable.
    """

    url: str
    #: exclusive holds this process takes on work that replicas must not do twice
    claims: Claims

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Transaction]:
        """One atomic unit. ``durable=False`` may return before the commit is on disk.

        For rows a power loss may forget without harm because nothing was promised
        on them yet (a new, empty ingest: the client re-creates it). Ordering holds:
        a later durable commit makes every earlier one durable too.
        """
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read-only statement in its own transaction."""
        ...

    def iterate(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Like :meth:`query` but yields rows as they come (for long listings)."""
        ...

    def sync(self) -> None:
        """Make every commit so far durable (those of ``durable=False`` transactions too)."""
        ...

    def executescript(self, script: str) -> None:
        """Run several statements (migrations) in one transaction."""
        ...

    def close(self) -> None: ...
