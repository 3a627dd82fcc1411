"""What only the shared (PostgreSQL + S3) content store must do: ingests move between replicas.

Each ``replica()`` is a store with its own catalog connection pool and claims session
on one PostgreSQL database and one bucket of a real ``rclone serve s3``, as two
``cairn serve`` processes would have. Closing a replica's catalog ends its session,
which is what the death of its process does to its claims.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.core.catalog import Catalog, open_catalog
from cairn.core.content import NamespacedStore, open_content_store
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, FailedPreconditionError, UnavailableError
from tests.contract.test_content_store import PART_SIZE, backend_urls
from tests.s3 import S3Server

MIB = 1 << 20
Replica = tuple[NamespacedStore, Catalog]


@pytest.fixture
def replica(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Replica]]:
    catalog_url, content_url = backend_urls("scaled", request, tmp_path)
    opened: list[Replica] = []

    def factory() -> Replica:
        catalog = open_catalog(catalog_url)
        opened.append((open_content_store(content_url, catalog), catalog))
        return opened[-1]

    yield factory
    for store, catalog in opened:
        store.close()
        catalog.close()


def write_chunks(writer: object, data: bytes, start: int = 0, chunk: int = MIB) -> None:
    for offset in range(start, len(data), chunk):
        writer.write(data[offset : offset + chunk], offset)  # type: ignore[attr-defined]


def wait_for_offset(store: NamespacedStore, ref: str, offset: int) -> None:
    deadline = time.monotonic() + 20
    while store.status("default", ref).offset != offset:
        assert time.monotonic() < deadline, f"offset stayed {store.status('default', ref).offset}"
        time.sleep(0.05)


def objects(s3: S3Server, store: NamespacedStore) -> list[str]:
    bucket = store.backend.location.bucket  # type: ignore[attr-defined]
    listing = s3.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_closed_ingest_resumes_on_another_replica(replica: Callable[[], Replica], s3_server: S3Server) -> None:
    data = os.urandom(2 * PART_SIZE + 3 * MIB + 12345)
    a, _ = replica()
    b, _ = replica()
    cut = 2 * PART_SIZE + MIB  # two parts uploaded, one MiB left as a tail at close
    with a.writer("default", "big") as w:
        write_chunks(w, data[:cut])
    assert b.status("default", "big").offset == cut
    with b.writer("default", "big") as w:
        assert w.status().offset == cut
        write_chunks(w, data, cut)
        info = w.commit(len(data), Digest.of(data))
    assert info.digest == Digest.of(data)
    with a.reader_at("default", info.digest) as reader:
        assert b"".join(reader.read_at(o, MIB) for o in range(0, len(data), MIB)) == data
    assert objects(s3_server, a) == [f"cairn/blobs/sha256/{info.digest.hex}"]  # no parts, tails or staging left
    assert a.backend.ingest_keys() == set()


def test_killed_replica_keeps_whole_parts_and_another_continues(replica: Callable[[], Replica]) -> None:
    data = os.urandom(3 * PART_SIZE)
    a, a_catalog = replica()
    b, _ = replica()
    writer = a.writer("default", "r")
    write_chunks(writer, data[: 2 * PART_SIZE + 2 * MIB])  # the last 2 MiB only in A's memory
    wait_for_offset(b, "r", 2 * PART_SIZE)
    with pytest.raises(UnavailableError, match="default/r locked: another writer holds it on another cairn replica"):
        b.writer("default", "r")
    a_catalog.db.claims.close()  # A dies: its session, and the ref with it, is gone
    with b.writer("default", "r") as w:
        assert w.status().offset == 2 * PART_SIZE
        assert w.digest() == Digest.of(data[: 2 * PART_SIZE])  # the hash state came from the catalog
        write_chunks(w, data, 2 * PART_SIZE)
        assert w.commit(len(data)).digest == Digest.of(data)


def test_unknown_digest_goes_through_staging(replica: Callable[[], Replica], s3_server: S3Server) -> None:
    data = os.urandom(PART_SIZE + 10)
    a, _ = replica()
    with a.writer("default", "r") as w:  # no expected digest: the upload targets a staging key
        write_chunks(w, data)
        digest = w.commit().digest
    assert digest == Digest.of(data)
    assert objects(s3_server, a) == [f"cairn/blobs/sha256/{digest.hex}"]


def test_other_algorithm_after_parts_is_refused(replica: Callable[[], Replica]) -> None:
    data = os.urandom(PART_SIZE + 10)
    a, _ = replica()
    with a.writer("default", "r") as w:
        write_chunks(w, data)
        with pytest.raises(FailedPreconditionError, match="hashed with sha256 as its parts were stored"):
            w.commit(expected=Digest.of(data, "sha512"))
    assert a.status("default", "r").offset == len(data)  # kept, as any failed commit


def test_s3_down_is_unavailable_and_a_lost_upload_starts_over(
    replica: Callable[[], Replica], s3_server: S3Server
) -> None:
    data = os.urandom(2 * PART_SIZE)
    a, _ = replica()
    small = Digest.of(b"kept")
    with a.writer("default", "small") as w:
        w.write(b"kept", 0)
        w.commit()
    with a.writer("default", "r") as w:
        write_chunks(w, data[: PART_SIZE + MIB])
    s3_server.stop()
    try:
        with pytest.raises(UnavailableError, match="unreachable"), a.reader_at("default", small) as reader:
            reader.read_at(0, 4)
        with pytest.raises(UnavailableError, match="unreachable"), a.writer("default", "r") as w:
            pass  # opening reads the tail back from the store
    finally:
        s3_server.start()  # rclone keeps objects on disk but forgets multipart uploads
    with a.reader_at("default", small) as reader:
        assert reader.read_at(0, 4) == b"kept"
    with a.writer("default", "r") as w:
        assert w.status().offset == PART_SIZE + MIB
        with pytest.raises(DataLossError, match=r"no longer has multipart upload .* starts over at offset 0"):
            write_chunks(w, data, PART_SIZE + MIB)
            w.commit()
    assert a.status("default", "r").offset == 0
    with a.writer("default", "r") as w:
        write_chunks(w, data)
        assert w.commit(len(data)).digest == Digest.of(data)


def test_a_lost_tail_object_resumes_before_it_and_the_catalog_agrees(
    replica: Callable[[], Replica], s3_server: S3Server
) -> None:
    data = os.urandom(3 * MIB)
    a, _ = replica()
    for start in (0, MIB, 2 * MIB):  # three writers, three tails
        with a.writer("default", "r") as w:
            w.write(data[start : start + MIB], start)
    assert a.status("default", "r").offset == 3 * MIB
    tails = [key for key in objects(s3_server, a) if "/tail-" in key]
    assert len(tails) == 3
    bucket = a.backend.location.bucket  # type: ignore[attr-defined]
    s3_server.client().delete_object(Bucket=bucket, Key=tails[1])  # the store lost the middle one
    with a.writer("default", "r") as w:
        assert w.status().offset == MIB  # what is still readable, from the start
    assert a.status("default", "r").offset == MIB  # and no more is counted once the writer is gone
    with a.writer("default", "r") as w:
        write_chunks(w, data, MIB)
        assert w.commit(len(data)).digest == Digest.of(data)
