"""Garbage collection (cairn.core.gc) over a real catalog (SQLite and PostgreSQL) and local content.

Each root kind keeps its blob; what nothing names goes once older than the grace
period; a dry run changes nothing; a commit that links bytes GC is sweeping is
never left dangling; work is split into bounded batches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.core.catalog import Catalog, LeaseResource, LeaseRow, ManifestRow, open_catalog
from cairn.core.content.local.backend import LocalBackend
from cairn.core.content.namespaced import NamespacedStore
from cairn.core.digest import Digest
from cairn.core.gc import GarbageCollector, GcPolicy, lease_expired
from tests.postgres import ENGINES, engine_catalog_url

REG = "registry"


@pytest.fixture(params=ENGINES)
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    opened = open_catalog(engine_catalog_url(request, tmp_path))
    yield opened
    opened.close()


@pytest.fixture
def store(catalog: Catalog, tmp_path: Path) -> Iterator[NamespacedStore]:
    opened = NamespacedStore(LocalBackend(str(tmp_path / "content")), catalog.content, catalog.claims)
    yield opened
    opened.close()


def collect(catalog: Catalog, store: NamespacedStore, *, dry_run: bool = False, **policy: Any) -> Any:
    settings = {"grace_seconds": 0, **policy}
    return GarbageCollector(catalog, store, GcPolicy(**settings)).run(dry_run=dry_run)


def put(store: NamespacedStore, namespace: str, data: bytes, labels: dict[str, str] | None = None) -> str:
    digest = Digest.of(data)
    with store.writer(namespace, f"ref-{digest.hex[:12]}", len(data), digest) as writer:
        writer.write(data, 0)
        writer.commit(len(data), digest, labels)
    return str(digest)


def held(store: NamespacedStore, digest: str) -> bool:
    return store.backend.blob_size(Digest.parse(digest)) is not None


def named(catalog: Catalog, namespace: str, digest: str) -> bool:
    return catalog.content.blob_size(namespace, digest) is not None


def manifest(catalog: Catalog, repo: str, digest: str, refs: list[str], subject: str | None = None,
             tags: tuple[str, ...] = ()) -> None:
    row = ManifestRow(repo, digest, "application/vnd.oci.image.manifest.v1+json", 10, None, subject, {}, time.time_ns())
    catalog.registry.put_manifest(row, refs, list(tags))


def registry_blob(catalog: Catalog, store: NamespacedStore, repo: str, data: bytes) -> str:
    digest = put(store, REG, data)
    catalog.registry.link_blob(repo, digest, len(data), time.time_ns())
    return digest


def test_registry_roots_keep_their_blobs(catalog: Catalog, store: NamespacedStore) -> None:
    layer = registry_blob(catalog, store, "app", b"layer")
    config = registry_blob(catalog, store, "app", b"config")
    tagged = registry_blob(catalog, store, "app", b"tagged manifest")
    manifest(catalog, "app", tagged, [layer, config], tags=("v1",))
    referrer = registry_blob(catalog, store, "app", b"signature")
    manifest(catalog, "app", referrer, [], subject=tagged)
    orphan = registry_blob(catalog, store, "app", b"orphan layer")
    untagged_layer = registry_blob(catalog, store, "app", b"untagged layer")
    untagged = registry_blob(catalog, store, "app", b"untagged manifest")
    manifest(catalog, "app", untagged, [untagged_layer])
    record = registry_blob(catalog, store, "dir", b"directory record")
    manifest(catalog, "dir", record, [])
    warg = put(store, REG, b"warg content")
    with catalog.db.transaction() as tx:
        tx.execute("INSERT INTO warg_contents (digest, size, created_at) VALUES (?, ?, ?)", (warg, 12, 1))

    result = collect(catalog, store)

    for kept in (layer, config, tagged, referrer, record, warg):
        assert named(catalog, REG, kept) and held(store, kept), kept
    for gone in (orphan, untagged_layer, untagged):
        assert not named(catalog, REG, gone) and not held(store, gone), gone
    assert sorted(result.deleted) == sorted([orphan, untagged_layer, untagged])
    assert (result.names_removed, result.blobs_deleted, result.manifests_removed) == (3, 3, 1)
    assert result.repository_links_removed == 3
    assert catalog.registry.get_manifest("app", untagged) is None
    assert catalog.registry.blob_size("app", orphan) is None
    assert catalog.registry.blob_size("app", layer) == len(b"layer")


def test_young_things_survive_the_grace_period(catalog: Catalog, store: NamespacedStore) -> None:
    orphan = registry_blob(catalog, store, "app", b"just pushed")
    loose = put(store, "default", b"just ingested")
    result = collect(catalog, store, grace_seconds=3600)
    assert (result.names_removed, result.blobs_deleted) == (0, 0)
    assert held(store, orphan) and named(catalog, "default", loose)


def test_containerd_labels_and_leases_are_roots(catalog: Catalog, store: NamespacedStore) -> None:
    child = put(store, "default", b"child")
    grandchild = put(store, "default", b"grandchild")
    root = put(store, "default", b"root", {"containerd.io/gc.root": "1"})
    store.update("default", Digest.parse(root), {"containerd.io/gc.ref.content.l.0": child}, ["labels.containerd.io/gc.ref.content.l.0"])
    store.update("default", Digest.parse(child), {"containerd.io/gc.ref.content": grandchild}, ["labels.containerd.io/gc.ref.content"])
    leased = put(store, "default", b"leased")
    catalog.leases.create(LeaseRow("default", "hold", time.time_ns(), {}))
    catalog.leases.add_resource("default", "hold", LeaseResource("content", leased))
    loose = put(store, "default", b"loose")
    also_elsewhere = put(store, "other", b"loose")  # same bytes, kept by another namespace's root label
    store.update("other", Digest.parse(also_elsewhere), {"containerd.io/gc.root": "x"}, [])

    result = collect(catalog, store)

    for kept in (root, child, grandchild, leased):
        assert named(catalog, "default", kept), kept
    assert not named(catalog, "default", loose)
    assert held(store, loose)  # "other" still names the bytes
    assert (result.names_removed, result.blobs_deleted) == (1, 0)


def test_images_namespace_keeps_image_blobs(catalog: Catalog, store: NamespacedStore) -> None:
    kept = put(store, "images", b"image layer")
    gone = put(store, "images", b"removed image's layer")
    with catalog.db.transaction() as tx:
        tx.execute(
            "INSERT INTO images (id, manifest_digest, manifest_media_type, config_media_type, size, added_at) "
            "VALUES ('sha256:img', 'sha256:m', 'm', 'c', 1, 1)"
        )
        tx.execute("INSERT INTO image_blobs (image_id, digest) VALUES ('sha256:img', ?)", (kept,))
    collect(catalog, store)
    assert named(catalog, "images", kept) and held(store, kept)
    assert not named(catalog, "images", gone) and not held(store, gone)


def test_dry_run_changes_nothing_and_predicts_the_real_run(catalog: Catalog, store: NamespacedStore) -> None:
    orphan = registry_blob(catalog, store, "app", b"orphan")
    untagged = registry_blob(catalog, store, "app", b"untagged")
    manifest(catalog, "app", untagged, [orphan])
    loose = put(store, "default", b"loose")
    catalog.leases.create(LeaseRow("default", "old", 1, {"containerd.io/gc.expire": "2001-01-01T00:00:00.123456789Z"}))

    dry = collect(catalog, store, dry_run=True)
    assert dry.dry_run and (dry.names_removed, dry.blobs_deleted, dry.manifests_removed, dry.leases_expired) == (3, 3, 1, 1)
    assert named(catalog, "default", loose) and held(store, orphan)
    assert catalog.registry.get_manifest("app", untagged) is not None
    assert catalog.leases.get("default", "old") is not None

    real = collect(catalog, store)
    assert {k: v for k, v in real.to_json().items() if k not in ("dry_run", "seconds")} == {
        k: v for k, v in dry.to_json().items() if k not in ("dry_run", "seconds")
    }
    assert catalog.leases.get("default", "old") is None


def test_commit_linking_bytes_during_a_sweep_is_never_dangling(
    catalog: Catalog, store: NamespacedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"shared bytes"
    digest = put(store, "a", data)
    store.delete("a", Digest.parse(digest))  # bytes stay, unnamed: garbage
    commit = catalog.content.commit_ingest
    runs: list[Any] = []

    def gc_between_store_and_name(*args: Any, **kwargs: Any) -> bool:
        if not runs:  # GC sweeps after the writer found the bytes present, before it names them
            runs.append(collect(catalog, store))
        return commit(*args, **kwargs)

    monkeypatch.setattr(catalog.content, "commit_ingest", gc_between_store_and_name)
    assert put(store, "b", data) == digest
    assert runs[0].blobs_deleted == 1  # the sweep did remove them ...
    assert named(catalog, "b", digest) and held(store, digest)  # ... and the commit stored them again
    with store.reader_at("b", Digest.parse(digest)) as reader:
        assert reader.read_at(0, len(data)) == data


def test_small_blob_commit_during_a_sweep_is_never_dangling(
    catalog: Catalog, store: NamespacedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"small record"
    (digest,) = store.put_blobs("a", [data])
    store.delete("a", digest)
    put_rows = catalog.content.put_blobs
    runs: list[Any] = []

    def gc_first(*args: Any, **kwargs: Any) -> None:
        if not runs:
            runs.append(collect(catalog, store))
        put_rows(*args, **kwargs)

    monkeypatch.setattr(catalog.content, "put_blobs", gc_first)
    store.put_blobs("b", [data])
    assert runs[0].blobs_deleted == 1
    assert named(catalog, "b", str(digest)) and held(store, str(digest))


def test_names_and_bytes_go_in_bounded_batches(catalog: Catalog, store: NamespacedStore) -> None:
    digests = [put(store, "default", f"blob {i}".encode()) for i in range(7)]
    result = collect(catalog, store, batch_size=2)
    assert (result.names_removed, result.blobs_deleted) == (7, 7)
    assert result.bytes_freed == sum(len(f"blob {i}") for i in range(7))
    assert not any(held(store, d) for d in digests)


def test_expired_leases_and_idle_ingests(catalog: Catalog, store: NamespacedStore) -> None:
    catalog.leases.create(LeaseRow("default", "past", 1, {"containerd.io/gc.expire": "2000-01-01T00:00:00Z"}))
    catalog.leases.create(LeaseRow("default", "future", 1, {"containerd.io/gc.expire": "2999-01-01T00:00:00Z"}))
    catalog.leases.create(LeaseRow("default", "keeps-ingest", 1, {}))
    for namespace, ref in (("default", "idle"), ("default", "leased"), (REG, "registry-upload/app/1")):
        with store.writer(namespace, ref) as writer:
            writer.write(b"partial", 0)
    catalog.leases.add_resource("default", "keeps-ingest", LeaseResource("ingests", "leased"))

    result = collect(catalog, store, ingest_expiry_seconds=0)

    assert (result.leases_expired, result.ingests_expired) == (1, 1)
    assert [lease.id for lease in catalog.leases.list("default")] == ["future", "keeps-ingest"]
    assert [row.ref for row in catalog.content.list_ingests("default")] == ["leased"]
    assert [row.ref for row in catalog.content.list_ingests(REG)] == ["registry-upload/app/1"]


def test_lease_expiry_label() -> None:
    assert lease_expired({"containerd.io/gc.expire": "2000-01-01T00:00:00Z"}, time.time_ns())
    assert not lease_expired({"containerd.io/gc.expire": "2999-01-01T00:00:00.999999999+02:00"}, time.time_ns())
    assert not lease_expired({"containerd.io/gc.expire": "soon"}, time.time_ns())
    assert not lease_expired({}, time.time_ns())


def test_result_is_json(catalog: Catalog, store: NamespacedStore) -> None:
    assert json.loads(json.dumps(collect(catalog, store).to_json()))["blobs_deleted"] == 0


def test_schedule_runs_under_the_gc_claim(catalog: Catalog, store: NamespacedStore) -> None:
    from cairn.core.gc.schedule import CLAIM, GcSchedule

    put(store, "default", b"scheduled garbage")
    schedule = GcSchedule(GarbageCollector(catalog, store, GcPolicy(grace_seconds=0)), catalog.claims, 0.05)
    assert catalog.claims.try_claim(CLAIM)  # another collector is at work: the round is skipped
    assert not schedule.run_once()
    catalog.claims.release(CLAIM)
    schedule.start()
    try:
        deadline = time.monotonic() + 10
        while named(catalog, "default", str(Digest.of(b"scheduled garbage"))) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        schedule.stop()
    assert not named(catalog, "default", str(Digest.of(b"scheduled garbage")))
    assert not catalog.claims.holding(CLAIM)
