"""Catalog migrations and the SQLite engine's translation of errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cairn.core.catalog import IngestRow, open_catalog
from cairn.core.catalog.migrations import known_migrations
from cairn.core.errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError


def test_migrations_apply_once(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/c.db"
    open_catalog(url).close()
    open_catalog(url).close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert versions == [m.version for m in known_migrations()]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/c.db"
    open_catalog(url).close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    with pytest.raises(FailedPreconditionError, match="newer than this cairn"):
        open_catalog(url)


def test_unique_ingest_ref(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite://{tmp_path}/c.db")
    row = IngestRow("default", "r", "k1", 0, None, 1)
    catalog.content.create_ingest(row)
    with pytest.raises(AlreadyExistsError):
        catalog.content.create_ingest(IngestRow("default", "r", "k2", 0, None, 1))
    catalog.close()


def test_unsupported_url() -> None:
    with pytest.raises(InvalidArgumentError, match="unsupported scheme"):
        open_catalog("mysql://x")
