"""ImageService.Push to docker-registry and back: pulled bytes are kept (DECISIONS image-service 9),
``skopeo copy`` of what was pushed gives the same digests, auth, and error codes (5.2).
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from tests.integration.images.conftest import (
    ImageSet,
    SourceRegistry,
    auth_string,
    code_and_details,
    pull,
    push,
    rpc_error,
    skopeo_raw,
    tag,
)
from tests.integration.images.layouts import Image
from tests.integration.registry.conftest import (
    ContainerTools,
    DockerRegistry,
    assert_blobs_identical,
    layout_blobs,
    layout_refs,
    sha256,
)


def pushed_digest(messages: list[pb.PushProgress], tag_: str) -> tuple[str, int]:
    """(digest, size) from Docker's last push line ``<tag>: digest: sha256:... size: N``."""
    last = messages[-1].status
    prefix = f"{tag_}: digest: "
    assert last.startswith(prefix), [m.status for m in messages[-3:]]
    digest, size = last.removeprefix(prefix).split(" size: ")
    return digest, int(size)


def copy_out(tools: ContainerTools, reference: str, layout: Path, name: str = "out") -> None:
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{reference}",
                 f"oci:{layout}:{name}")


def pulled_image(image_set: ImageSet, source: SourceRegistry,
                 variant: str) -> tuple[str, str, Image, bytes]:
    """(reference to pull, platform, the image it gives, its manifest bytes) per kind of image."""
    if variant == "oci":
        return source.busybox, "", image_set.busybox, image_set.busybox.manifest.data
    if variant == "v2s2":
        return source.busybox_v2s2, "", image_set.busybox, source.v2s2_manifest
    platform, image = next(iter(image_set.others.items()))
    return source.multi, platform, image, image.manifest.data


@pytest.mark.parametrize("variant", ["oci", "v2s2", "index-child"])
def test_push_and_back(variant: str, images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                       fresh_registry: DockerRegistry, image_set: ImageSet, ctools: ContainerTools,
                       tmp_path: Path) -> None:
    source, platform, image, source_manifest = pulled_image(image_set, source_registry, variant)
    pull(images, source, platform=platform)

    target = f"{fresh_registry.host}/pushed/app:v2"
    tag(images, source, target)
    messages = push(images, target)
    digest, size = pushed_digest(messages, "v2")

    # The pulled manifest bytes are pushed as they are (for an index, the platform's manifest).
    served = skopeo_raw(ctools, target)
    assert served == source_manifest
    assert (digest, size) == (sha256(served), len(served))
    info = images.Inspect(pb.InspectImageRequest(id=target))
    assert f"{fresh_registry.host}/pushed/app@{digest}" in info.repo_digests

    # skopeo copies it out with identical digests, blob for blob.
    out = tmp_path / "out"
    copy_out(ctools, target, out)
    assert layout_refs(out)["out"]["digest"] == digest
    manifest = json.loads(served)
    digests = {digest, manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
    if variant == "v2s2":  # the manifest is skopeo's conversion; config and layers are ours
        copied, ours = layout_blobs(out), layout_blobs(image_set.layout)
        assert set(copied) == digests
        assert sha256(copied[digest].read_bytes()) == digest
        for blob in digests - {digest}:
            assert copied[blob].read_bytes() == ours[blob].read_bytes(), blob
    else:
        assert_blobs_identical(image_set.layout, out, digests)

    # ... and back: a removed image pulls again from where it was pushed, same ID and digest.
    images.Remove(pb.RemoveImageRequest(id=image.id, force=True))
    assert images.Exists(pb.ExistsImageRequest(reference=target)).exists is False
    pull(images, target)
    back = images.Inspect(pb.InspectImageRequest(id=target))
    assert back.id == image.id
    assert list(back.repo_digests) == [f"{fresh_registry.host}/pushed/app@{digest}"]


def test_second_push_finds_every_layer(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                                       fresh_registry: DockerRegistry, image_set: ImageSet) -> None:
    pull(images, source_registry.busybox)
    target = f"{fresh_registry.host}/again/busybox:v1"
    tag(images, source_registry.busybox, target)
    first = push(images, target)
    second = push(images, target)
    assert pushed_digest(first, "v1") == pushed_digest(second, "v1")
    layer_ids = {d.removeprefix("sha256:")[:12] for d in image_set.busybox.diff_ids}
    finals = {m.id: m.status for m in second if m.id in layer_ids}
    assert finals == dict.fromkeys(layer_ids, "Layer already exists")


def test_push_with_auth(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                        auth_registry: DockerRegistry, ctools: ContainerTools, image_set: ImageSet) -> None:
    pull(images, source_registry.busybox)
    target = f"{auth_registry.host}/private/pushed:v1"
    tag(images, source_registry.busybox, target)

    code, details = code_and_details(rpc_error(lambda: push(images, target)))
    assert code == grpc.StatusCode.UNAUTHENTICATED, details
    code, details = code_and_details(rpc_error(lambda: push(images, target, auth=auth_string(password="nope"))))
    assert code == grpc.StatusCode.UNAUTHENTICATED, details

    digest, _ = pushed_digest(push(images, target, auth=auth_string(server=auth_registry.host)), "v1")
    assert digest == image_set.busybox.manifest.digest
    served = ctools.skopeo("inspect", "--tls-verify=false", "--raw", "--creds", "cairn:s3cret",
                           f"docker://{target}").stdout
    assert sha256(served) == digest


def test_push_unknown_image(shared_images: pb_grpc.ImageServiceStub, fresh_registry: DockerRegistry) -> None:
    ref = f"{fresh_registry.host}/none/here:v1"
    code, details = code_and_details(rpc_error(lambda: push(shared_images, ref)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == f"No such image: {ref}"


def test_push_untagged_reference_means_latest(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                                              fresh_registry: DockerRegistry, ctools: ContainerTools) -> None:
    pull(images, source_registry.busybox)
    name = f"{fresh_registry.host}/implicit/latest"
    tag(images, source_registry.busybox, f"{name}:latest")
    digest, _ = pushed_digest(push(images, name), "latest")
    assert sha256(skopeo_raw(ctools, f"{name}:latest")) == digest


@pytest.mark.parametrize("reference", ["Upper/Case:v1", "bad tag:v1", ""])
def test_push_invalid_reference(reference: str, shared_images: pb_grpc.ImageServiceStub) -> None:
    code, details = code_and_details(rpc_error(lambda: push(shared_images, reference)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith("invalid reference format"), details
