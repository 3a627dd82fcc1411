"""Catalog migrations and engine behaviour, on SQLite and on PostgreSQL.

Every test taking ``catalog_url`` runs once per engine: both must answer alike
(migrations, uniqueness, byte-ordered listings, rollback, serialised writers).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cairn.core.catalog import BlobRow, Catalog, IngestRow, ManifestRow, SyncRow, open_catalog
from cairn.core.catalog.migrations import known_migrations
from cairn.core.catalog.postgres import to_pyformat
from cairn.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    UnavailableError,
)
from tests.conftest import free_port
from tests.postgres import ENGINES, PostgresServer, engine_catalog_url


@pytest.fixture(params=ENGINES)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog, once per engine."""
    return engine_catalog_url(request, tmp_path)


def test_migrations_apply_once(catalog_url: str) -> None:
    open_catalog(catalog_url).close()
    catalog = open_catalog(catalog_url)
    versions = [row[0] for row in catalog.db.query("SELECT version FROM schema_migrations ORDER BY version")]
    catalog.close()
    assert versions == [m.version for m in known_migrations()]


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    open_catalog(f"sqlite://{tmp_path}/c.db").close()
    with sqlite3.connect(tmp_path / "c.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    with catalog.db.transaction() as tx:
        tx.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    catalog.close()
    with pytest.raises(FailedPreconditionError, match="newer than this cairn"):
        open_catalog(catalog_url)


def test_unique_ingest_ref(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    row = IngestRow("default", "r", "k1", 0, None, 1)
    catalog.content.create_ingest(row)
    with pytest.raises(AlreadyExistsError):
        catalog.content.create_ingest(IngestRow("default", "r", "k2", 0, None, 1))
    catalog.content.sync()
    assert catalog.content.list_ingests("default") == [row]
    catalog.close()


def test_failed_transaction_leaves_nothing(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    with pytest.raises(RuntimeError), catalog.db.transaction() as tx:
        tx.execute("INSERT INTO registry_repositories (name, created_at) VALUES (?, ?)", ("a", 1))
        raise RuntimeError("abort")
    assert not catalog.registry.repository_exists("a")
    with pytest.raises(AlreadyExistsError), catalog.db.transaction() as tx:
        tx.execute("INSERT INTO registry_repositories (name, created_at) VALUES (?, ?)", ("b", 1))
        tx.execute("INSERT INTO registry_repositories (name, created_at) VALUES (?, ?)", ("b", 2))
    assert not catalog.registry.repository_exists("b")
    catalog.close()


def test_listings_are_in_byte_order(catalog_url: str) -> None:
    # Go's sort.Strings order, whatever collation the database has by default.
    names = ["b", "B", "a", "_x", "a-b", "a/b", "a.b", "Z9", "é"]
    catalog = open_catalog(catalog_url)
    for name in names:
        catalog.registry.put_manifest(ManifestRow(name, "sha256:" + "0" * 64, "m", 1, None, None), [], [])
        catalog.registry.put_manifest(ManifestRow("repo", "sha256:" + "1" * 64, "m", 1, None, None), [], [name])
    want = sorted(names, key=lambda n: n.encode())
    assert catalog.registry.list_repositories(None, 100) == sorted([*want, "repo"], key=lambda n: n.encode())
    assert catalog.registry.list_tags("repo", None, 100) == want
    assert catalog.registry.list_tags("repo", "_x", 100) == [n for n in want if n.encode() > b"_x"]
    catalog.close()


def test_placeholders_percent_and_bytes(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    blob = BlobRow("n", "sha256:x", 3, 1, 1, {"label?": "100%"})
    catalog.content.put_blob(blob)
    assert catalog.content.get_blob("n", "sha256:x") == blob
    rows = catalog.db.query("SELECT 'what?', ? || '%', digest FROM content_blobs WHERE labels LIKE ?",
                            ("50", "%100%"))
    assert rows == [("what?", "50%", "sha256:x")]
    node = bytes(range(256))
    with catalog.db.transaction() as tx:
        catalog.warg.put_map_nodes_in(tx, [(b"\x00h", node)])
    assert catalog.warg.map_node(b"\x00h") == node
    catalog.close()


def test_iterate_allows_writes_between_rows(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    for i in range(600):
        catalog.content.put_blob(BlobRow("n", f"sha256:{i:04d}", i, 1, 1))
    seen = []
    for blob in catalog.content.iter_blobs("n"):
        seen.append(blob.digest)
        if len(seen) % 200 == 0:
            catalog.content.delete_blob("n", "sha256:0599")
    assert seen[:3] == ["sha256:0000", "sha256:0001", "sha256:0002"]
    assert len(seen) in (599, 600)
    # Abandoning an iteration midway gives its connection back.
    for _ in range(40):
        next(iter(catalog.content.iter_blobs("n")))
    catalog.close()


def test_writers_are_serialised(catalog_url: str) -> None:
    # Read-then-write transactions (change_labels) lose no update under concurrency.
    catalog = open_catalog(catalog_url)
    catalog.content.put_blob(BlobRow("n", "d", 1, 1, 1, {"count": "0"}))

    def bump() -> None:
        for _ in range(20):
            catalog.content.change_labels("n", "d", lambda ls: {"count": str(int(ls["count"]) + 1)}, 2)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blob = catalog.content.get_blob("n", "d")
    assert blob is not None and blob.labels == {"count": "80"}
    catalog.close()


def test_sync_listing_without_limit(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    for i in range(3):
        catalog.syncs.insert(SyncRow(f"s{i}", "url", "once", "PENDING", "", "", 0, i, i))
    assert [row.id for row in catalog.syncs.list_syncs()] == ["s0", "s1", "s2"]
    assert [row.id for row in catalog.syncs.list_syncs(1, 1)] == ["s1"]
    catalog.close()


def test_unreachable_postgres_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cairn.core.catalog.postgres.BUSY_TIMEOUT", 1.0)
    with pytest.raises(UnavailableError, match="cannot connect"):
        open_catalog(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/none?connect_timeout=1")


def test_unsupported_url() -> None:
    with pytest.raises(InvalidArgumentError, match="unsupported scheme"):
        open_catalog("mysql://x")


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ("SELECT ? , ?", "SELECT %s , %s"),
        ("SELECT 'a?''b?' , ?", "SELECT 'a?''b?' , %s"),
        ('SELECT "c?" FROM t WHERE x LIKE \'10%\' AND y = ?', 'SELECT "c?" FROM t WHERE x LIKE \'10%%\' AND y = %s'),
        ("SELECT E'\\'?' , ?", "SELECT E'\\'?' , %s"),
        ("SELECT ? -- why?\n, ? /* what? */", "SELECT %s -- why?\n, %s /* what? */"),
        ("SELECT $$a?$$, $f$?$f$, ?", "SELECT $$a?$$, $f$?$f$, %s"),
        ("SELECT 5 % 3", "SELECT 5 %% 3"),
    ],
)
def test_placeholder_translation(sql: str, want: str) -> None:
    assert to_pyformat(sql) == want


def test_replicas_opening_together_migrate_once(request: pytest.FixtureRequest) -> None:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    opened: list[Catalog] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(open_catalog(url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = opened[0].db.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in versions] == [m.version for m in known_migrations()]
    for catalog in opened:
        catalog.close()


def test_manifest_requirements_are_checked_inside_the_write(catalog_url: str) -> None:
    """A link or name removed (by GC) after the registry's first check fails the write, naming it."""
    from cairn.core.catalog.registry import ReferencesGoneError, Requirements

    catalog = open_catalog(catalog_url)
    layer, child, manifest = ("sha256:" + c * 64 for c in "abc")
    catalog.registry.link_blob("repo", layer, 3, 1)
    required = Requirements(blobs=frozenset({layer}), manifests=frozenset({child}), content=("registry", manifest))
    with pytest.raises(ReferencesGoneError) as caught:
        catalog.registry.put_manifest(ManifestRow("repo", manifest, "m", 1, None, None), [layer, child], ["t"], required)
    assert caught.value.missing == {child, manifest}
    assert catalog.registry.get_manifest("repo", manifest) is None  # nothing of the failed write stays
    catalog.content.put_blob(BlobRow("registry", manifest, 1, 1, 1, {}))
    catalog.registry.put_manifest(ManifestRow("repo", child, "m", 1, None, None), [], [])
    catalog.registry.put_manifest(ManifestRow("repo", manifest, "m", 1, None, None), [layer, child], ["t"], required)
    assert catalog.registry.get_manifest("repo", manifest) is not None
    catalog.close()
