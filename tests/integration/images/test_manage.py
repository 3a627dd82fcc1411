"""Tag, lookup (Inspect, Exists), List with filters, and Remove with Docker's semantics
(image-service.md 3, 5.3-5.7; DECISIONS image-service 3, 10, 11, 12, 16).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from tests.integration.images.conftest import (
    BuildParams,
    ImageSet,
    SourceRegistry,
    build,
    code_and_details,
    pull,
    rpc_error,
    tag,
)
from tests.integration.images.layouts import Image


def repo_digest(source: SourceRegistry, path: str, image: Image) -> str:
    return f"{source.ref(path)}@{image.manifest.digest}"


def exists(stub: pb_grpc.ImageServiceStub, reference: str) -> tuple[bool, str]:
    response = stub.Exists(pb.ExistsImageRequest(reference=reference), timeout=30)
    return response.exists, response.id


def listed(stub: pb_grpc.ImageServiceStub, filters: Any = None, *, all_: bool = False) -> list[str]:
    text = filters if isinstance(filters, str) else json.dumps(filters) if filters is not None else ""
    return [s.id for s in stub.List(pb.ListImagesRequest(filters=text, all=all_), timeout=30).images]


def conflict(image: Image | str, reason: str, forceable: bool = True) -> str:
    short = (image.short_id if isinstance(image, Image) else image.removeprefix("sha256:")[:12])
    return (f"conflict: unable to delete {short} ({'must be forced' if forceable else 'cannot be forced'})"
            f" - {reason}")


@pytest.fixture
def busybox(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry, image_set: ImageSet) -> Image:
    """busybox pulled into the server: tagged ``<host>/lib/busybox:v1``, with its RepoDigest."""
    pull(images, source_registry.busybox)
    return image_set.busybox


# -- tag and lookup -------------------------------------------------------------------------


def test_tag_and_every_lookup_form(images: pb_grpc.ImageServiceStub, busybox: Image,
                                   source_registry: SourceRegistry) -> None:
    tag(images, source_registry.busybox, "local/app:one")
    images.Tag(pb.TagImageRequest(source=busybox.id, repo="local/app", tag=""))  # empty tag: latest
    images.Tag(pb.TagImageRequest(source=busybox.short_id, repo="busybox"))
    info = images.Inspect(pb.InspectImageRequest(id="local/app:one"))
    assert sorted(info.repo_tags) == sorted([source_registry.busybox, "local/app:one", "local/app:latest",
                                             "busybox:latest"])
    assert list(info.repo_digests) == [repo_digest(source_registry, "lib/busybox", busybox)]

    hex_ = busybox.id.removeprefix("sha256:")
    forms = [
        busybox.id, hex_, hex_[:12], hex_[:7],                                      # IDs and prefixes
        "local/app:one", "local/app", "docker.io/local/app:latest", "index.docker.io/local/app:one",
        "busybox", "library/busybox", "docker.io/library/busybox:latest",          # normalised names
        repo_digest(source_registry, "lib/busybox", busybox),                      # name@digest
    ]
    for form in forms:
        assert images.Inspect(pb.InspectImageRequest(id=form)).id == busybox.id, form
        assert exists(images, form) == (True, busybox.id), form


def test_tag_moves_and_leaves_the_old_image_dangling(images: pb_grpc.ImageServiceStub, busybox: Image,
                                                     source_registry: SourceRegistry, image_set: ImageSet) -> None:
    old = image_set.dated[2021]
    pull(images, source_registry.dated(2021))
    tag(images, source_registry.dated(2021), "local/moving:v1")
    tag(images, source_registry.busybox, "local/moving:v1")  # moves the tag
    assert images.Inspect(pb.InspectImageRequest(id="local/moving:v1")).id == busybox.id
    assert sorted(images.Inspect(pb.InspectImageRequest(id=old.id)).repo_tags) == [source_registry.dated(2021)]

    tag(images, source_registry.busybox, source_registry.dated(2021))  # its last tag moves too
    info = images.Inspect(pb.InspectImageRequest(id=old.id))  # dangling, not deleted
    assert list(info.repo_tags) == []
    assert list(info.repo_digests) == [repo_digest(source_registry, "lib/dated", old)]
    assert listed(images, {"dangling": ["true"]}) == [old.id]
    assert listed(images, {"dangling": ["false"]}) == [busybox.id]


@pytest.mark.parametrize(("repo", "tag_", "message"), [
    ("Local/App", "v1", "invalid reference format"),
    ("local/app", "bad tag", "invalid"),
    ("local/app@sha256:" + "a" * 64, "", "cannot import digest reference"),
    ("sha256", "v1", "refusing to create an ambiguous tag using digest algorithm as name"),
])
def test_tag_invalid(repo: str, tag_: str, message: str, shared_images: pb_grpc.ImageServiceStub,
                     source_registry: SourceRegistry, image_set: ImageSet) -> None:
    pull(shared_images, source_registry.busybox)
    source = image_set.busybox.id
    code, details = code_and_details(rpc_error(
        lambda: shared_images.Tag(pb.TagImageRequest(source=source, repo=repo, tag=tag_))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert message in details, details


def test_missing_images(images: pb_grpc.ImageServiceStub, busybox: Image) -> None:
    for text in ["nothing:here", "sha256:" + "0" * 64, "0" * 64, "fff000"]:
        code, details = code_and_details(rpc_error(
            functools.partial(images.Inspect, pb.InspectImageRequest(id=text))))
        assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"No such image: {text}")
        assert exists(images, text) == (False, "")
    code, details = code_and_details(rpc_error(
        lambda: images.Tag(pb.TagImageRequest(source="nope:v1", repo="local/app", tag="x"))))
    assert (code, details) == (grpc.StatusCode.NOT_FOUND, "No such image: nope:v1")


@pytest.mark.parametrize("reference", ["Bad/Ref", "busybox:bad tag", "busybox@sha256:short"])
def test_exists_invalid_reference(reference: str, shared_images: pb_grpc.ImageServiceStub) -> None:
    code, details = code_and_details(rpc_error(lambda: exists(shared_images, reference)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details


# -- list -----------------------------------------------------------------------------------


@pytest.fixture
def dated(images: pb_grpc.ImageServiceStub, busybox: Image, source_registry: SourceRegistry,
          image_set: ImageSet) -> dict[int, Image]:
    """busybox (2023) plus the dated images 2021, 2022 (tier b) and 2024, all pulled."""
    for year in image_set.dated:
        pull(images, source_registry.dated(year))
    return {**image_set.dated, 2023: busybox}


def test_list_newest_first_with_fields(images: pb_grpc.ImageServiceStub, dated: dict[int, Image],
                                       source_registry: SourceRegistry) -> None:
    summaries = images.List(pb.ListImagesRequest(digests=False)).images
    assert [s.id for s in summaries] == [dated[y].id for y in (2024, 2023, 2022, 2021)]
    by_id = {s.id: s for s in summaries}
    for year in (2021, 2022, 2024):
        image, s = dated[year], by_id[dated[year].id]
        assert list(s.repo_tags) == [source_registry.dated(year)]
        assert list(s.repo_digests) == [repo_digest(source_registry, "lib/dated", image)]  # even digests=false
        assert dict(s.labels) == image.config_json["config"]["Labels"]
        assert (s.size, s.virtual_size, s.containers) == (image.size, image.size, 0)


def test_list_filters(images: pb_grpc.ImageServiceStub, dated: dict[int, Image],
                      source_registry: SourceRegistry) -> None:
    ids = {year: image.id for year, image in dated.items()}
    host = source_registry.host
    cases: list[tuple[Any, list[int]]] = [
        ({"reference": [f"{host}/lib/dated:*"]}, [2024, 2022, 2021]),
        ({"reference": [f"{host}/lib/dated:2021", f"{host}/lib/busy*"]}, [2023, 2021]),
        ({"reference": [f"{host}/*/busybox"]}, [2023]),
        ({"label": ["org.cairn.year"]}, [2024, 2022, 2021]),
        ({"label": ["org.cairn.tier=a"]}, [2024, 2021]),
        ({"label": ["org.cairn.tier=a", "org.cairn.year=2024"]}, [2024]),
        ({"before": [source_registry.dated(2024)]}, [2023, 2022, 2021]),
        ({"since": [source_registry.dated(2021)]}, [2024, 2023, 2022]),
        ({"since": [dated[2021].id], "before": [source_registry.busybox]}, [2022]),
        ({"since": [source_registry.dated(2021)], "label": ["org.cairn.tier=a"]}, [2024]),
        ({"dangling": ["false"]}, [2024, 2023, 2022, 2021]),
        ({"dangling": ["true"]}, []),
        ({"dangling": {"true": True}}, []),                    # Docker's legacy map form
        ({"label": {"org.cairn.tier=b": True}}, [2022]),
        ({}, [2024, 2023, 2022, 2021]),
    ]
    for filters, years in cases:
        assert listed(images, filters) == [ids[y] for y in years], filters


@pytest.mark.parametrize(("filters", "message"), [
    ('{"bogus": ["x"]}', "invalid filter 'bogus'"),
    ('{"dangling": ["maybe"]}', ""),
    ("{not json", ""),
])
def test_list_invalid_filters(filters: str, message: str, shared_images: pb_grpc.ImageServiceStub) -> None:
    code, details = code_and_details(rpc_error(lambda: listed(shared_images, filters)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert message in details, details


# -- remove ---------------------------------------------------------------------------------


def test_remove_one_of_two_tags(images: pb_grpc.ImageServiceStub, busybox: Image,
                                source_registry: SourceRegistry) -> None:
    tag(images, source_registry.busybox, "local/app:a")
    tag(images, source_registry.busybox, "local/app:b")
    response = images.Remove(pb.RemoveImageRequest(id="local/app:a"))
    assert (list(response.untagged), list(response.deleted)) == (["local/app:a"], [])
    assert exists(images, "local/app:a") == (False, "")
    assert exists(images, "local/app:b") == (True, busybox.id)
    info = images.Inspect(pb.InspectImageRequest(id=busybox.id))
    assert sorted(info.repo_tags) == sorted([source_registry.busybox, "local/app:b"])


def test_remove_last_tag_deletes_image_and_layers(images: pb_grpc.ImageServiceStub, busybox: Image,
                                                  source_registry: SourceRegistry) -> None:
    response = images.Remove(pb.RemoveImageRequest(id=source_registry.busybox))
    # The tag, then (no other tag of that repository left) its digest reference.
    assert list(response.untagged) == [source_registry.busybox,
                                       repo_digest(source_registry, "lib/busybox", busybox)]
    assert response.deleted[0] == busybox.id
    assert sorted(response.deleted[1:]) == sorted(busybox.chain_ids())
    assert exists(images, busybox.id) == (False, "")
    assert listed(images, all_=True) == []


def test_remove_digest_reference_only_untags(images: pb_grpc.ImageServiceStub, busybox: Image,
                                             source_registry: SourceRegistry) -> None:
    ref = repo_digest(source_registry, "lib/busybox", busybox)
    response = images.Remove(pb.RemoveImageRequest(id=ref))
    assert (list(response.untagged), list(response.deleted)) == ([ref], [])
    assert exists(images, source_registry.busybox) == (True, busybox.id)
    assert list(images.Inspect(pb.InspectImageRequest(id=busybox.id)).repo_digests) == []


def test_remove_by_id_with_one_tag(images: pb_grpc.ImageServiceStub, busybox: Image,
                                   source_registry: SourceRegistry) -> None:
    response = images.Remove(pb.RemoveImageRequest(id=busybox.short_id))
    assert sorted(response.untagged) == sorted([source_registry.busybox,
                                                repo_digest(source_registry, "lib/busybox", busybox)])
    assert response.deleted[0] == busybox.id
    assert exists(images, source_registry.busybox) == (False, "")


@pytest.mark.parametrize("second", ["local/other:v1", "same-repo"])
def test_remove_by_id_with_several_tags(second: str, images: pb_grpc.ImageServiceStub, busybox: Image,
                                        source_registry: SourceRegistry) -> None:
    other = source_registry.ref("lib/busybox:v2") if second == "same-repo" else second
    tag(images, source_registry.busybox, other)
    for form in (busybox.id, busybox.short_id):
        code, details = code_and_details(rpc_error(
            functools.partial(images.Remove, pb.RemoveImageRequest(id=form))))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert details == conflict(busybox, "image is referenced in multiple repositories")
    assert exists(images, other) == (True, busybox.id)  # nothing was untagged

    response = images.Remove(pb.RemoveImageRequest(id=busybox.short_id, force=True))
    assert sorted(response.untagged) == sorted([source_registry.busybox, other,
                                                repo_digest(source_registry, "lib/busybox", busybox)])
    assert response.deleted[0] == busybox.id
    assert sorted(response.deleted[1:]) == sorted(busybox.chain_ids())
    for reference in (source_registry.busybox, other, busybox.id):
        assert exists(images, reference) == (False, "")


def test_remove_missing(images: pb_grpc.ImageServiceStub) -> None:
    for text in ("nope:v1", "sha256:" + "1" * 64):
        code, details = code_and_details(rpc_error(
            functools.partial(images.Remove, pb.RemoveImageRequest(id=text))))
        assert (code, details) == (grpc.StatusCode.NOT_FOUND, f"No such image: {text}")


# -- parents (locally built chains) and prune_parents -----------------------------------------

CHAIN_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
LABEL org.cairn.chain=yes
COPY one.txt /chain/one.txt
ENV CHAIN=1
COPY two.txt /chain/two.txt
"""


def built_chain(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry, tag_: str) -> list[str]:
    """Build the chain image (no RUN); returns its ID and its parents' IDs, newest first, base last."""
    messages = build(images, {"Dockerfile": CHAIN_DOCKERFILE, "one.txt": "1\n", "two.txt": "2\n"},
                     BuildParams(tags=[tag_], build_args={"BASE": source_registry.busybox}))
    image_id = messages[-1].aux
    chain = [image_id]
    while parent := images.Inspect(pb.InspectImageRequest(id=chain[-1])).parent:
        chain.append(parent)
    return chain


def test_intermediate_images_and_prune_parents(images: pb_grpc.ImageServiceStub, busybox: Image,
                                               source_registry: SourceRegistry) -> None:
    chain = built_chain(images, source_registry, "local/chain:v1")
    # One image per instruction after FROM (4), whose parents lead to the base.
    assert len(chain) == 5 and chain[-1] == busybox.id, chain
    intermediates = chain[1:-1]
    assert sorted(listed(images)) == sorted([chain[0], busybox.id])  # all=false hides intermediates
    assert sorted(listed(images, all_=True)) == sorted(chain)

    # A parent with a child cannot be deleted, even forced.
    code, details = code_and_details(rpc_error(
        lambda: images.Remove(pb.RemoveImageRequest(id=intermediates[0], force=True))))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == conflict(intermediates[0], "image has dependent child images", forceable=False)

    response = images.Remove(pb.RemoveImageRequest(id="local/chain:v1", prune_parents=True))
    assert list(response.untagged) == ["local/chain:v1"]
    assert [d for d in response.deleted if d in chain] == chain[:-1]  # newest first, base kept
    assert exists(images, source_registry.busybox) == (True, busybox.id)  # tagged parent is kept
    assert sorted(listed(images, all_=True)) == [busybox.id]
    # The busybox layers are still used: none of their chain IDs were reported deleted.
    assert not set(response.deleted) & set(busybox.chain_ids())


def test_remove_without_prune_keeps_parents(images: pb_grpc.ImageServiceStub, busybox: Image,
                                            source_registry: SourceRegistry) -> None:
    chain = built_chain(images, source_registry, "local/chain:v1")
    response = images.Remove(pb.RemoveImageRequest(id="local/chain:v1"))  # prune_parents=false
    assert list(response.untagged) == ["local/chain:v1"]
    assert [d for d in response.deleted if d in chain] == [chain[0]]
    assert sorted(listed(images, all_=True)) == sorted(chain[1:])
    # The newest remaining intermediate is now a dangling top-level image: listed with all=false.
    assert chain[1] in listed(images, {"dangling": ["true"]})


def test_untagging_a_base_with_children_keeps_it(images: pb_grpc.ImageServiceStub, busybox: Image,
                                                 source_registry: SourceRegistry) -> None:
    built_chain(images, source_registry, "local/chain:v1")
    response = images.Remove(pb.RemoveImageRequest(id=source_registry.busybox))
    assert list(response.deleted) == []  # Docker: quietly kept, it has dependent child images
    assert source_registry.busybox in response.untagged
    assert exists(images, busybox.id) == (True, busybox.id)
