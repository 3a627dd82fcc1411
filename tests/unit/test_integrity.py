"""cairn.integrity without a server: blob check and resume, references, Warg roots, read checks.

Tests that touch the catalog take ``catalog_url`` and run on SQLite and PostgreSQL.
The content backend is the local one in a temporary directory.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from cairn.core.catalog import BlobRow, Catalog, open_catalog
from cairn.core.catalog.warg import CheckpointRow
from cairn.core.content.local import LocalBackend
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, InvalidArgumentError
from cairn.integrity import (
    BlobCheck,
    LeafFolder,
    RateLimit,
    ReferenceCheck,
    Report,
    SequentialReads,
    WargLogCheck,
    WholeBlobCheck,
    parse_rate,
)
from cairn.warg import merkle_log
from cairn.warg.hashes import AnyHash
from tests.postgres import ENGINES, engine_catalog_url


@pytest.fixture(params=ENGINES)
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    opened = open_catalog(engine_catalog_url(request, tmp_path))
    request.addfinalizer(opened.close)
    return opened


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(str(tmp_path / "content"))


def store(backend: LocalBackend, data: bytes) -> Digest:
    digest = Digest.of(data)
    backend.put_blobs([(digest, data)])
    return digest


def corrupt(backend: LocalBackend, digest: Digest) -> None:
    path = Path(backend.blob_path(digest))
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


# -- parsing and pacing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "rate"),
    [("0", 0), ("1048576", 1 << 20), ("50M", 50 << 20), ("1.5G", 1.5 * (1 << 30)), ("200KiB/s", 200 << 10),
     ("10mb", 10 << 20)],
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "-5M", "5X", "M"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="bytes per second"):
        parse_rate(text)


def test_rate_limit_paces_bytes() -> None:
    limit = RateLimit(1 << 20)  # 1 MiB/s: 4 x 128 KiB after the first take is ~0.5 s
    started = time.monotonic()
    for _ in range(5):
        limit.take(128 << 10)
    assert 0.45 <= time.monotonic() - started < 1.5
    unlimited = RateLimit(0)
    started = time.monotonic()
    unlimited.take(1 << 40)
    assert time.monotonic() - started < 0.1


# -- blob check ----------------------------------------------------------------------------------
def test_blob_check_finds_exactly_the_corrupt_blob(catalog: Catalog, backend: LocalBackend) -> None:
    digests = [store(backend, os.urandom(3000 + i)) for i in range(6)]
    bad = digests[3]
    corrupt(backend, bad)
    report = Report()
    BlobCheck(backend, catalog.integrity, workers=3, rate=RateLimit(0)).run(report)
    assert (report.blobs_checked, report.bytes_checked) == (6, sum(3000 + i for i in range(6)))
    assert [(p.kind, p.subject, p.digest) for p in report.problems] == [("corrupt-blob", str(bad), bad)]
    run = catalog.integrity.get_run("blobs")
    assert run is not None and run.finished and run.last_digest == str(max(digests))


def test_blob_check_resumes_after_its_watermark(catalog: Catalog, backend: LocalBackend) -> None:
    digests = sorted(store(backend, os.urandom(100 + i)) for i in range(8))
    corrupt(backend, digests[1])
    integrity = catalog.integrity
    # An interrupted run: the first three were done, and the second was corrupt.
    integrity.start_run("blobs", 1)
    integrity.add_suspect("blobs", str(digests[1]))
    integrity.save_progress("blobs", str(digests[2]), 3, 303, 2)

    report = Report()
    BlobCheck(backend, integrity, workers=2, rate=RateLimit(0)).run(report, resume=True)
    assert (report.resumed, report.blobs_skipped) == (True, 3)
    # the five after the watermark, plus the suspect checked again so the report still names it
    assert report.blobs_checked == 5 + 1
    assert [p.subject for p in report.problems] == [str(digests[1])]
    run = integrity.get_run("blobs")
    assert run is not None and run.finished and run.blobs_checked == 8

    again = Report()
    BlobCheck(backend, integrity, workers=2, rate=RateLimit(0)).run(again, resume=True)
    assert (again.resumed, again.blobs_checked) == (False, 8)  # a finished run is not resumed


def test_restart_forgets_the_interrupted_run(catalog: Catalog, backend: LocalBackend) -> None:
    for i in range(4):
        store(backend, bytes([i]) * 10)
    catalog.integrity.start_run("blobs", 1)
    catalog.integrity.save_progress("blobs", "sha256:" + "f" * 64, 4, 40, 2)
    report = Report()
    BlobCheck(backend, catalog.integrity, workers=1, rate=RateLimit(0)).run(report, resume=False)
    assert (report.resumed, report.blobs_checked) == (False, 4)


# -- references ----------------------------------------------------------------------------------
def test_references_to_missing_bytes(catalog: Catalog, backend: LocalBackend) -> None:
    held = store(backend, b"held")
    gone = Digest.of(b"gone")
    orphan_tag_target = Digest.of(b"never pushed")
    now = 1
    catalog.content.put_blob(BlobRow("registry", str(held), 4, now, now, {}))
    catalog.content.put_blob(BlobRow("registry", str(gone), 4, now, now, {}))
    db = catalog.db
    with db.transaction() as tx:
        tx.execute("INSERT INTO registry_blobs VALUES (?, ?, ?, ?)", ("app", str(gone), 4, now))
        tx.execute("INSERT INTO registry_manifests (repository, digest, media_type, size, created_at) "
                   "VALUES (?, ?, ?, ?, ?)", ("app", str(held), "application/vnd.oci.image.manifest.v1+json", 4, now))
        tx.execute("INSERT INTO registry_manifest_refs VALUES (?, ?, ?)", ("app", str(held), str(gone)))
        # a non-distributable layer: referenced, never linked, never held; not a problem
        tx.execute("INSERT INTO registry_manifest_refs VALUES (?, ?, ?)",
                   ("app", str(held), str(Digest.of(b"foreign"))))
        tx.execute("INSERT INTO registry_tags VALUES (?, ?, ?, ?)", ("app", "v1", str(held), now))
        tx.execute("INSERT INTO registry_tags VALUES (?, ?, ?, ?)", ("app", "old", str(orphan_tag_target), now))
        tx.execute("INSERT INTO warg_contents VALUES (?, ?, ?)", (str(gone), 4, now))
        tx.execute("INSERT INTO images (id, manifest_digest, manifest_media_type, config_media_type, size, "
                   "added_at) VALUES (?, ?, ?, ?, ?, ?)", ("sha256:" + "1" * 64, str(held), "m", "c", 0, now))
        tx.execute("INSERT INTO image_blobs VALUES (?, ?)", ("sha256:" + "1" * 64, str(gone)))

    report = Report()
    ReferenceCheck(backend, catalog.integrity).run(report)
    found = sorted((p.kind, p.subject) for p in report.problems)
    assert found == sorted([
        ("dangling-name", str(gone)),
        ("dangling-tag", "app:old"),
        ("dangling-manifest-ref", str(gone)),
        ("missing-blob", str(gone)),  # warg content
        ("missing-blob", str(gone)),  # image blob
    ])
    assert report.digests_to_fetch() == [gone]
    report.mark_repaired(gone)
    assert [p.subject for p in report.problems if not p.repaired] == ["app:old"]
    assert not report.clean


def test_bytes_without_a_name_are_not_a_problem(catalog: Catalog, backend: LocalBackend) -> None:
    store(backend, b"unnamed, for garbage collection")
    report = Report()
    ReferenceCheck(backend, catalog.integrity).run(report)
    assert report.problems == [] and report.clean


# -- Warg ----------------------------------------------------------------------------------------
def test_leaf_folder_agrees_with_the_merkle_log() -> None:
    memory, folder = merkle_log.MemoryLog(), LeafFolder()
    for i in range(37):
        leaf = hashlib.sha256(i.to_bytes(4, "big")).digest()
        memory.append(leaf)
        folder.push(leaf)
        assert folder.root() == memory.root(), i + 1
    assert LeafFolder().root() == merkle_log.EMPTY_ROOT


def _hash(n: int) -> str:
    return str(AnyHash("sha256", hashlib.sha256(n.to_bytes(4, "big")).digest()))


def test_warg_checkpoints_recomputed(catalog: Catalog) -> None:
    memory = merkle_log.MemoryLog()
    nodes: list[tuple[int, bytes]] = []
    checkpoints = []
    with catalog.db.transaction() as tx:
        for index in range(5):
            log_id, record_id = _hash(1000), _hash(index)
            tx.execute(
                "INSERT INTO warg_records (log_id, record_id, content_bytes, key_id, signature, status, "
                "registry_index, created_at) VALUES (?, ?, ?, ?, ?, 'accepted', ?, 0)",
                (log_id, record_id, b"", "k", "s", index),
            )
            leaf = merkle_log.leaf_hash(AnyHash.parse32(log_id), AnyHash.parse32(record_id))
            nodes += merkle_log.appended_nodes(index, leaf, memory)
            memory.append(leaf)
            if index in (1, 4):
                checkpoints.append(CheckpointRow(index + 1, str(AnyHash("sha256", memory.root())), _hash(7), 1, "k", "s"))
        catalog.warg.put_log_nodes_in(tx, nodes)
        for row in checkpoints:
            catalog.warg.put_checkpoint_in(tx, row)

    report = Report()
    WargLogCheck(catalog.integrity, catalog.warg, None).run(report)
    assert report.problems == []

    with catalog.db.transaction() as tx:
        tx.execute("UPDATE warg_checkpoints SET log_root = ? WHERE log_length = 2", (_hash(99),))
    report = Report()
    WargLogCheck(catalog.integrity, catalog.warg, None).run(report)
    [problem] = report.problems
    assert (problem.kind, problem.subject) == ("warg-checkpoint-mismatch", "checkpoint 2")
    assert problem.digest is None  # bytes from a peer cannot fix a log


# -- read verification ---------------------------------------------------------------------------
def test_whole_blob_check_verifies_and_names_the_blob(caplog: pytest.LogCaptureFixture) -> None:
    data = os.urandom(5000)
    check = WholeBlobCheck(Digest.of(data))
    check.update(data)
    check.verify("test")
    wrong = WholeBlobCheck(Digest.of(data))
    wrong.update(data[:-1] + b"x")
    with pytest.raises(DataLossError, match=f"blob {Digest.of(data)} is corrupt"):
        wrong.verify("HTTP GET")
    assert "cairn fsck --repair" in caplog.text


def test_sequential_reads_continue_only_where_a_read_stopped() -> None:
    data = os.urandom(100)
    digest = Digest.of(data)
    reads = SequentialReads(1 << 20, limit=2)
    first = reads.resume("ns", digest, 0)
    assert first is not None
    first.update(data[:40])
    reads.suspend("ns", first)
    assert reads.resume("ns", digest, 30) is None  # a random access: not verified
    assert reads.resume("other", digest, 40) is None  # another namespace's reader
    second = reads.resume("ns", digest, 40)
    assert second is not None and second.hashed == 40
    second.update(data[40:])
    assert second.matches()
    for n in range(3):  # bounded: the oldest state goes first
        check = WholeBlobCheck(Digest.of(bytes([n])))
        check.update(b"ab")
        reads.suspend("ns", check)
    assert reads.resume("ns", Digest.of(bytes([0])), 2) is None
    assert reads.resume("ns", Digest.of(bytes([2])), 2) is not None
