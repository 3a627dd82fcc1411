"""The content store contract, run against every backend.

``local`` is the embedded default (SQLite + local disk); ``scaled`` is PostgreSQL + an
S3 bucket on a real ``rclone serve s3``, with the smallest part size S3 allows. Each
call of ``make_store`` opens another store on the same catalog and bucket, with a
connection of its own: a second replica, or the same one after a restart.
A new backend is one more entry in the ``make_store`` fixture's params; every case
here must then pass for it unchanged.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.core.catalog import Catalog, open_catalog
from cairn.core.content import NamespacedStore, open_content_store
from cairn.core.digest import Digest
from cairn.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
    UnavailableError,
)
from tests.postgres import PostgresServer
from tests.s3 import S3Server

StoreFactory = Callable[[], NamespacedStore]


def local_store(root: Path) -> NamespacedStore:
    catalog = open_catalog(f"sqlite://{root}/cairn.db")
    return open_content_store(f"file://{root}/content", catalog)


#: S3's smallest part, so multipart behaviour shows with small test data.
PART_SIZE = 5 << 20


def backend_urls(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(catalog URL, content URL) of a fresh, empty store of ``kind``."""
    if kind == "local":
        return f"sqlite://{tmp_path}/cairn.db", f"file://{tmp_path}/content"
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    s3: S3Server = request.getfixturevalue("s3_server")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    content = s3.content_url(s3.new_bucket())
    return postgres.create_database(), content


@pytest.fixture(params=["local", "scaled"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    catalog_url, content_url = backend_urls(request.param, request, tmp_path)
    opened: list[tuple[NamespacedStore, Catalog]] = []

    def factory() -> NamespacedStore:
        catalog = open_catalog(catalog_url)
        store = open_content_store(content_url, catalog)
        opened.append((store, catalog))
        return store

    yield factory
    for store, catalog in opened:
        store.close()
        catalog.close()


@pytest.fixture
def store(make_store: StoreFactory) -> NamespacedStore:
    return make_store()


def ingest(store: NamespacedStore, data: bytes, ns: str = "default", ref: str = "r", **labels: str) -> Digest:
    with store.writer(ns, ref) as w:
        w.write(data, 0)
        return w.commit(len(data), Digest.of(data), labels).digest


def read_all(store: NamespacedStore, ns: str, digest: Digest) -> bytes:
    with store.reader_at(ns, digest) as r:
        return r.read_at(0, r.size)


def test_write_commit_read(store: NamespacedStore) -> None:
    digest = ingest(store, b"hello", label="x")
    assert read_all(store, "default", digest) == b"hello"
    info = store.info("default", digest)
    assert (info.size, dict(info.labels)) == (5, {"label": "x"})
    assert info.created_at == info.updated_at > 0


def test_resume_after_close(store: NamespacedStore) -> None:
    with store.writer("default", "r", total=6) as w:
        w.write(b"abc", 0)
    assert store.status("default", "r").offset == 3
    with store.writer("default", "r") as w:
        assert w.status().offset == 3
        assert w.digest() == Digest.of(b"abc")
        w.write(b"def", 3)
        assert w.commit().digest == Digest.of(b"abcdef")
    with pytest.raises(NotFoundError):
        store.status("default", "r")


def test_resume_after_reopen_rehashes(make_store: StoreFactory) -> None:
    first = make_store()
    with first.writer("default", "r") as w:
        w.write(b"abc", 0)
    first.close()
    second = make_store()
    with second.writer("default", "r") as w:
        assert w.digest() == Digest.of(b"abc")
        w.write(b"d", 3)
        assert w.commit().digest == Digest.of(b"abcd")


def test_one_writer_per_ref(store: NamespacedStore) -> None:
    with store.writer("default", "r"), store.writer("other", "r"):  # another namespace, another ref
        with pytest.raises(UnavailableError, match="default/r locked"):
            store.writer("default", "r")
    with store.writer("default", "r"):
        pass


def test_commit_failures_keep_ingest_and_release_lock(store: NamespacedStore) -> None:
    with store.writer("default", "r") as w:
        w.write(b"abc", 0)
        with pytest.raises(FailedPreconditionError, match="3 != 4"):
            w.commit(4)
    with store.writer("default", "r") as w:
        with pytest.raises(FailedPreconditionError, match="unexpected commit digest"):
            w.commit(0, Digest.of(b"xyz"))
    assert store.status("default", "r").offset == 3


def test_commit_existing_is_already_exists(store: NamespacedStore) -> None:
    digest = ingest(store, b"same")
    with pytest.raises(AlreadyExistsError):
        store.writer("default", "again", expected=digest)
    with store.writer("default", "again") as w:
        w.write(b"same", 0)
        with pytest.raises(AlreadyExistsError):
            w.commit()
    assert store.list_statuses("default") == []


def test_bytes_shared_across_namespaces(store: NamespacedStore) -> None:
    digest = ingest(store, b"shared", ns="a")
    with pytest.raises(NotFoundError):
        store.info("b", digest)
    assert ingest(store, b"shared", ns="b") == digest
    store.delete("a", digest)
    assert read_all(store, "b", digest) == b"shared"
    assert list(store.backend.iter_blobs()) == [digest]


def test_offsets(store: NamespacedStore) -> None:
    with store.writer("default", "r") as w:
        w.write(b"abc", 0)
        with pytest.raises(OutOfRangeError):
            w.write(b"x", 5)
        w.write(b"Z", 0)  # offset 0 restarts
        assert w.status().offset == 1
    digest = ingest(store, b"0123456789", ref="other")
    with store.reader_at("default", digest) as r:
        assert r.read_at(8, 100) == b"89"
        with pytest.raises(OutOfRangeError):
            r.read_at(11, 1)


def test_labels_walk_update_delete(store: NamespacedStore) -> None:
    a = ingest(store, b"a", ref="1", kind="x")
    b = ingest(store, b"b", ref="2", kind="y")
    assert [i.digest for i in store.walk("default", ["labels.kind==y"])] == [b]
    assert {i.digest for i in store.walk("default")} == {a, b}
    info = store.update("default", a, {"new": "1"}, ["labels.new", "labels.kind"])
    assert dict(info.labels) == {"new": "1"}
    with pytest.raises(InvalidArgumentError):
        store.update("default", a, {}, ["size"])
    with pytest.raises(InvalidArgumentError):
        store.update("default", a, {"k": "v" * 4096}, [])
    store.delete("default", a)
    with pytest.raises(NotFoundError):
        store.delete("default", a)


def test_abort(store: NamespacedStore) -> None:
    with store.writer("default", "r") as w:
        w.write(b"abc", 0)
    store.abort("default", "r")
    with pytest.raises(NotFoundError):
        store.abort("default", "r")
    assert store.backend.ingest_keys() == set()


def test_namespace_validation(store: NamespacedStore) -> None:
    with pytest.raises(InvalidArgumentError, match="namespace validation"):
        store.walk("bad ns", []).__next__()
    with pytest.raises(InvalidArgumentError):
        store.writer("", "r")


def test_recover_removes_leftover_ingest_data(make_store: StoreFactory) -> None:
    store = make_store()
    store.backend.create_ingest("deadbeef", "default/ghost")
    store.close()
    store = make_store()
    assert store.backend.ingest_keys() == set()


def test_sha512(store: NamespacedStore) -> None:
    data = b"sha512 data"
    with store.writer("default", "r", expected=Digest.of(data, "sha512")) as w:
        w.write(data, 0)
        digest = w.commit().digest
    assert digest.algorithm == "sha512"
    assert read_all(store, "default", digest) == data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(max_size=5000),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=6),
    close_at=st.sets(st.integers(min_value=0, max_value=6)),
)
def test_any_chunking_and_resume_commits_to_the_digest(data: bytes, cuts: list[int], close_at: set[int]) -> None:
    """Any chunking, closing and resuming at any chunk boundary, commits to Digest.of(data)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = local_store(Path(tmp))
        bounds = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
        writer = store.writer("default", "prop")
        for index, (start, end) in enumerate(itertools.pairwise(bounds)):
            if index in close_at:
                writer.close()
                writer = store.writer("default", "prop")
                assert writer.status().offset == start
            writer.write(data[start:end], start)
        assert writer.commit(len(data)).digest == Digest.of(data)
        assert read_all(store, "default", Digest.of(data)) == data
        store.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, so the store meets a full disk for real."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_is_a_clear_error_and_keeps_what_was_stored(tmp_path: Path, tiny_disk: Path) -> None:
    catalog = open_catalog(f"sqlite://{tmp_path}/cairn.db")
    store = open_content_store(f"file://{tiny_disk}/content", catalog)
    chunk = os.urandom(512 * 1024)
    with store.writer("default", "full") as w:
        with pytest.raises(ResourceExhaustedError, match="no space left"):
            for offset in range(0, 8 * len(chunk), len(chunk)):
                w.write(chunk, offset)
            w.commit()
    # What was stored is intact, in whole chunks: the ingest resumes at its offset once space is back.
    stored = store.status("default", "full").offset
    assert 0 < stored < 8 * len(chunk) and stored % len(chunk) == 0
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_disk)], check=True)
    data = chunk * 8
    with store.writer("default", "full") as w:
        for offset in range(stored, len(data), len(chunk)):
            w.write(chunk, offset)
        assert w.commit(len(data), Digest.of(data)).digest == Digest.of(data)
    assert read_all(store, "default", Digest.of(data)) == data
    store.close()
    catalog.close()


def test_recover_removes_partial_small_blob_files(tmp_path: Path) -> None:
    """A small blob's file written but not yet renamed (kill -9) is cleared at start-up, never listed."""
    store = local_store(tmp_path)
    [digest] = store.put_blobs("default", [b"kept"])
    folder = tmp_path / "content" / "blobs" / "sha256"
    (folder / ".tmp-0123abcd").write_bytes(b"half")
    assert list(store.backend.iter_blobs()) == [digest]
    store.close()
    store = local_store(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [digest.hex]
    assert read_all(store, "default", digest) == b"kept"
    store.close()
