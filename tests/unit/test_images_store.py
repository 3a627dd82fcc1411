"""The local image store and Docker's remove/tag/list semantics, on a real catalog and content store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.core.catalog import open_catalog
from cairn.core.content import open_content_store
from cairn.core.digest import Digest
from cairn.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from cairn.images import ImageStore, LayerRecord, NewImage, chain_ids
from cairn.images.filters import glob_matches, parse_filters
from cairn.images.remove import remove_image
from cairn.oci.model import Reference
from tests.postgres import ENGINES, engine_catalog_url


@pytest.fixture(params=ENGINES)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog, once per engine."""
    return engine_catalog_url(request, tmp_path)


@pytest.fixture
def store(tmp_path: Path, catalog_url: str) -> Iterator[ImageStore]:
    catalog = open_catalog(catalog_url)
    content = open_content_store(f"file://{tmp_path / 'content'}", catalog)
    yield ImageStore(content, catalog.images)
    content.close()
    catalog.close()


def _layer(store: ImageStore, files: dict[str, bytes]) -> LayerRecord:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    compressed = gzip.compress(raw, mtime=0)
    [digest] = store.put_small([compressed])
    return LayerRecord(digest, "application/vnd.oci.image.layer.v1.tar+gzip", len(compressed),
                       Digest.of(raw), len(raw))


def _image(store: ImageStore, name: str, refs: list[str], *, created: str = "2024-01-01T00:00:00Z",
           parent: Digest | None = None, layers: list[LayerRecord] | None = None,
           labels: dict[str, str] | None = None) -> Digest:
    layers = layers if layers is not None else [_layer(store, {name: name.encode()})]
    config = json.dumps({
        "created": created, "architecture": "amd64", "os": "linux",
        "config": {"Labels": labels or {}, "Env": [f"NAME={name}"]},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in layers]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": str(Digest.of(config)), "size": len(config)},
        "layers": [{"mediaType": layer.media_type, "digest": str(layer.digest), "size": layer.size}
                   for layer in layers],
    }).encode()
    image = store.add_image(NewImage(
        manifest, "application/vnd.oci.image.manifest.v1+json", config,
        "application/vnd.oci.image.config.v1+json", layers,
        references=[Reference.parse(r) for r in refs], parent=parent,
    ))
    return image.id


def test_an_image_id_is_its_config_digest_and_lookup_follows_dockers_order(store: ImageStore) -> None:
    image_id = _image(store, "a", ["busybox:1", f"busybox@sha256:{'0' * 64}"])
    record = store.lookup("busybox:1")
    assert record.id == image_id == Digest.of(store.config_bytes(record))
    assert store.lookup(str(image_id)).id == image_id
    assert store.lookup(image_id.hex).id == image_id
    assert store.lookup(image_id.hex[:5]).id == image_id
    assert store.lookup(f"docker.io/library/busybox@sha256:{'0' * 64}").id == image_id
    with pytest.raises(NotFoundError, match=r"^No such image: busybox$"):
        store.lookup("busybox")  # latest is not a tag of it
    with pytest.raises(InvalidArgumentError, match="must be lowercase"):
        store.lookup("BusyBox")
    assert [str(r) for r in store.references(image_id)] == [
        "docker.io/library/busybox:1", f"docker.io/library/busybox@sha256:{'0' * 64}"]


def test_size_is_the_sum_of_uncompressed_layers_and_chain_ids_follow_the_spec(store: ImageStore) -> None:
    layers = [_layer(store, {"x": b"1" * 1000}), _layer(store, {"y": b"2" * 10})]
    image_id = _image(store, "b", ["b"], layers=layers)
    record = store.get(image_id)
    assert record is not None and record.size == sum(layer.uncompressed_size for layer in layers)
    chains = chain_ids([layer.diff_id for layer in layers])
    assert chains[0] == layers[0].diff_id
    assert chains[1].hex == hashlib.sha256(f"{layers[0].diff_id} {layers[1].diff_id}".encode()).hexdigest()


def test_untag_one_of_two_tags_keeps_the_image(store: ImageStore) -> None:
    image_id = _image(store, "c", ["app:1", "app:2"])
    result = remove_image(store, "app:1", force=False, prune_parents=False)
    assert (result.untagged, result.deleted) == (["app:1"], [])
    assert store.lookup("app:2").id == image_id


def test_removing_the_last_tag_drops_the_repositorys_digest_references_and_the_image(store: ImageStore) -> None:
    layer = _layer(store, {"d": b"d"})
    image_id = _image(store, "d", ["app:1", f"app@sha256:{'1' * 64}"], layers=[layer])
    result = remove_image(store, "app:1", force=False, prune_parents=False)
    assert result.untagged == ["app:1", f"app@sha256:{'1' * 64}"]
    assert result.deleted == [str(image_id), str(layer.diff_id)]
    assert store.get(image_id) is None


def test_remove_by_id_with_tags_in_two_repositories_needs_force(store: ImageStore) -> None:
    image_id = _image(store, "e", ["one:1", "two:1"])
    with pytest.raises(FailedPreconditionError) as info:
        remove_image(store, image_id.hex[:12], force=False, prune_parents=False)
    assert str(info.value) == (f"conflict: unable to delete {image_id.hex[:12]} (must be forced)"
                               " - image is referenced in multiple repositories")
    result = remove_image(store, image_id.hex[:12], force=True, prune_parents=False)
    assert result.untagged == ["one:1", "two:1"]
    assert result.deleted[0] == str(image_id)


def test_a_parent_with_children_cannot_be_deleted_and_prune_parents_takes_untagged_parents(
    store: ImageStore,
) -> None:
    base = _layer(store, {"base": b"base"})
    parent = _image(store, "p", [], layers=[base])
    child = _image(store, "q", ["child:1"], layers=[base, _layer(store, {"q": b"q"})], parent=parent)
    with pytest.raises(FailedPreconditionError, match=r"\(cannot be forced\) - image has dependent child images"):
        remove_image(store, str(parent), force=True, prune_parents=False)
    result = remove_image(store, "child:1", force=False, prune_parents=True)
    assert result.untagged == ["child:1"]
    assert result.deleted[0] == str(child)
    assert str(parent) in result.deleted and str(base.diff_id) in result.deleted
    assert store.get(parent) is None


def test_without_prune_parents_the_parent_stays(store: ImageStore) -> None:
    parent = _image(store, "p2", [])
    _image(store, "c2", ["c2:1"], parent=parent)
    remove_image(store, "c2:1", force=False, prune_parents=False)
    assert store.get(parent) is not None


def test_filters_parse_both_forms_and_refuse_unknown_keys() -> None:
    assert parse_filters('{"dangling":["true"]}').dangling is True
    assert parse_filters('{"dangling":{"false":true}}').dangling is False
    with pytest.raises(InvalidArgumentError, match=r"^invalid filter 'color'$"):
        parse_filters('{"color":["red"]}')
    assert glob_matches("busybox:*", "busybox:1")
    assert not glob_matches("*", "library/busybox")
    assert glob_matches("*/app", "user/app")
