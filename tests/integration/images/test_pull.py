"""ImageService.Pull from docker-registry (OCI, Docker schema 2, multi-arch, htpasswd) and from
cairn's own ``/v2/``: what gets recorded, platform selection, auth and every error code.

Inspect and List are compared field by field with ``skopeo inspect`` of the same image
(image-service.md 5.1, 5.3, 5.4; DECISIONS image-service 2, 5, 6, 7, 8).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as cpb_grpc
from tests.conftest import Backend, CairnServer, free_port
from tests.integration.images.conftest import (
    AUTH_PASSWORD,
    AUTH_USER,
    ImageSet,
    SourceRegistry,
    auth_string,
    code_and_details,
    content_size,
    image_stub,
    pull,
    rpc_error,
    skopeo_copy_in,
    skopeo_inspect,
    skopeo_raw,
)
from tests.integration.images.layouts import Image, host_arch, random_image, write_layout
from tests.integration.registry.conftest import ContainerTools, DockerRegistry, registry_url


def repo_of(reference: str) -> str:
    """``host/path`` of ``host/path:tag`` or ``host/path@digest``."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}"


def assert_pulled(messages: list[pb.PullProgress], reference: str, digest: str,
                  *, up_to_date: bool = False) -> None:
    """Docker's final lines: ``Digest: <top-level digest>`` then ``Status: ... for <ref>``."""
    statuses = [m.status for m in messages]
    assert len(messages) >= 2, statuses
    assert messages[-2].status == f"Digest: {digest}", statuses[-5:]
    word = "Image is up to date for" if up_to_date else "Downloaded newer image for"
    assert messages[-1].status == f"Status: {word} {reference}", statuses[-5:]
    assert messages[-1].id == ""


def assert_info_matches(info: pb.ImageInfo, image: Image) -> None:
    """Inspect maps the config as image-service.md 5.4 says."""
    config = image.config_json
    assert info.id == image.id
    assert info.parent == ""
    assert info.architecture == config["architecture"]
    assert info.os == "linux"
    assert info.author == config.get("author", "")
    assert datetime.fromisoformat(info.created) == datetime.fromisoformat(config["created"])
    assert info.size == image.size
    assert info.virtual_size == info.size
    assert info.root_fs.type == "layers"
    assert list(info.root_fs.layers) == image.diff_ids
    inner = config["config"]
    assert info.config.user == inner.get("User", "")
    assert list(info.config.env) == inner.get("Env", [])
    assert list(info.config.cmd) == inner.get("Cmd", [])
    assert list(info.config.entrypoint) == inner.get("Entrypoint", [])
    assert info.config.working_dir == inner.get("WorkingDir", "")
    assert dict(info.config.labels) == inner.get("Labels", {})
    assert sorted(info.config.exposed_ports) == sorted(inner.get("ExposedPorts", {}))
    assert sorted(info.config.volumes) == sorted(inner.get("Volumes", {}))


# -- what a pull records --------------------------------------------------------------------


def test_pull_records_the_image(images: pb_grpc.ImageServiceStub, content: cpb_grpc.ContentStub,
                                source_registry: SourceRegistry, image_set: ImageSet) -> None:
    busybox = image_set.busybox
    ref = source_registry.busybox
    messages = pull(images, ref)
    assert_pulled(messages, ref, busybox.manifest.digest)

    info = images.Inspect(pb.InspectImageRequest(id=ref))
    assert_info_matches(info, busybox)
    assert list(info.repo_tags) == [ref]
    assert list(info.repo_digests) == [f"{repo_of(ref)}@{busybox.manifest.digest}"]

    # Every blob is in the content store, namespace "images", byte-exact sizes.
    for blob in busybox.blobs():
        assert content_size(content, blob.digest) == blob.size, blob.digest

    exists = images.Exists(pb.ExistsImageRequest(reference=ref))
    assert (exists.exists, exists.id) == (True, busybox.id)


@pytest.mark.parametrize("variant", ["oci", "v2s2", "index-host", "index-other"])
def test_inspect_and_list_match_skopeo(variant: str, images: pb_grpc.ImageServiceStub,
                                       source_registry: SourceRegistry, image_set: ImageSet,
                                       ctools: ContainerTools) -> None:
    platform, override = "", []
    if variant == "oci":
        ref = source_registry.busybox
    elif variant == "v2s2":
        ref = source_registry.busybox_v2s2
    else:
        ref = source_registry.multi
        if variant == "index-other":
            platform = next(iter(image_set.others))
            _, arch, *rest = platform.split("/")
            override = ["--override-arch", arch] + (["--override-variant", rest[0]] if rest else [])
    pull(images, ref, platform=platform)

    expected = skopeo_inspect(ctools, ref, *override)
    config_bytes = skopeo_raw(ctools, ref, "--config", *override)
    config = json.loads(config_bytes)
    info = images.Inspect(pb.InspectImageRequest(id=ref))
    assert info.id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert list(info.repo_tags) == [ref]
    assert list(info.repo_digests) == [f"{repo_of(ref)}@{expected['Digest']}"]
    assert info.architecture == expected["Architecture"]
    assert info.os == expected["Os"]
    assert datetime.fromisoformat(info.created) == datetime.fromisoformat(expected["Created"])
    assert dict(info.config.labels) == (expected["Labels"] or {})
    assert list(info.config.env) == (expected["Env"] or [])
    assert list(info.root_fs.layers) == config["rootfs"]["diff_ids"]
    assert len(info.root_fs.layers) == len(expected["Layers"])

    listed = images.List(pb.ListImagesRequest()).images
    assert len(listed) == 1
    summary = listed[0]
    assert summary.id == info.id
    assert list(summary.repo_tags) == list(info.repo_tags)
    assert list(summary.repo_digests) == list(info.repo_digests)
    assert summary.created == int(datetime.fromisoformat(expected["Created"]).timestamp())
    assert dict(summary.labels) == (expected["Labels"] or {})
    assert summary.size == info.size
    assert summary.virtual_size == summary.size
    assert summary.containers == 0


def test_pull_docker_schema2_keeps_its_digest(images: pb_grpc.ImageServiceStub,
                                              source_registry: SourceRegistry,
                                              image_set: ImageSet) -> None:
    ref = source_registry.busybox_v2s2
    assert_pulled(pull(images, ref), ref, source_registry.v2s2_digest)
    info = images.Inspect(pb.InspectImageRequest(id=ref))
    # skopeo --format v2s2 keeps the config bytes: same image ID as the OCI original.
    assert_info_matches(info, image_set.busybox)
    assert list(info.repo_digests) == [f"{repo_of(ref)}@{source_registry.v2s2_digest}"]


def test_one_summary_per_image_id(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                                  image_set: ImageSet) -> None:
    pull(images, source_registry.busybox)
    pull(images, source_registry.busybox_v2s2)
    listed = images.List(pb.ListImagesRequest()).images
    assert [s.id for s in listed] == [image_set.busybox.id]
    assert sorted(listed[0].repo_tags) == sorted([source_registry.busybox, source_registry.busybox_v2s2])
    assert sorted(listed[0].repo_digests) == sorted([
        f"{repo_of(source_registry.busybox)}@{image_set.busybox.manifest.digest}",
        f"{repo_of(source_registry.busybox_v2s2)}@{source_registry.v2s2_digest}",
    ])


def test_pull_again_is_up_to_date(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                                  image_set: ImageSet) -> None:
    ref = source_registry.busybox
    pull(images, ref)
    again = pull(images, ref)
    assert_pulled(again, ref, image_set.busybox.manifest.digest, up_to_date=True)
    assert [s.id for s in images.List(pb.ListImagesRequest()).images] == [image_set.busybox.id]


def test_pull_without_tag_means_latest(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                                       image_set: ImageSet, ctools: ContainerTools) -> None:
    skopeo_copy_in(ctools, image_set.ref("busybox"), source_registry.host, "lib/latest-only:latest",
                   "--preserve-digests")
    name = source_registry.ref("lib/latest-only")
    assert_pulled(pull(images, name), f"{name}:latest", image_set.busybox.manifest.digest)
    assert list(images.Inspect(pb.InspectImageRequest(id=name)).repo_tags) == [f"{name}:latest"]


def test_pull_by_digest(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                        image_set: ImageSet) -> None:
    digest = image_set.busybox.manifest.digest
    ref = f"{repo_of(source_registry.busybox)}@{digest}"
    assert_pulled(pull(images, ref), ref, digest)
    info = images.Inspect(pb.InspectImageRequest(id=ref))
    assert info.id == image_set.busybox.id
    assert list(info.repo_tags) == []
    assert list(info.repo_digests) == [ref]


def test_pull_name_tag_and_digest_follows_the_digest(images: pb_grpc.ImageServiceStub,
                                                     source_registry: SourceRegistry,
                                                     image_set: ImageSet) -> None:
    # lib/multi:v1 is the index; the digest names one of its children, which wins.
    child = image_set.others[next(iter(image_set.others))]
    ref = f"{source_registry.multi}@{child.manifest.digest}"
    pull(images, ref)
    exists = images.Exists(pb.ExistsImageRequest(reference=f"{repo_of(ref)}@{child.manifest.digest}"))
    assert (exists.exists, exists.id) == (True, child.id)


# -- platform selection ---------------------------------------------------------------------


PLATFORMS = [
    # (requested, what it normalises to)
    ("", f"linux/{host_arch()}"),
    ("linux/arm64", "linux/arm64"),
    ("linux/aarch64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"),
    ("linux/arm/v7", "linux/arm/v7"),
    ("linux/arm", "linux/arm/v7"),
    ("linux/armhf", "linux/arm/v7"),
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
]


@pytest.mark.parametrize(("requested", "canonical"), PLATFORMS, ids=[p[0] or "default" for p in PLATFORMS])
def test_platform_selection(requested: str, canonical: str, images: pb_grpc.ImageServiceStub,
                            source_registry: SourceRegistry, image_set: ImageSet) -> None:
    by_platform = {f"linux/{host_arch()}": image_set.busybox, **image_set.others}
    if canonical not in by_platform:
        pytest.skip(f"the index has no {canonical} entry on this host")
    want = by_platform[canonical]
    ref = source_registry.multi
    messages = pull(images, ref, platform=requested)
    assert_pulled(messages, ref, image_set.index.digest)  # the RepoDigest is the index's
    info = images.Inspect(pb.InspectImageRequest(id=ref))
    assert info.id == want.id
    assert info.architecture == want.architecture
    assert list(info.repo_digests) == [f"{repo_of(ref)}@{image_set.index.digest}"]


def test_platform_without_a_match(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry) -> None:
    code, details = code_and_details(rpc_error(lambda: pull(images, source_registry.multi,
                                                            platform="linux/s390x")))
    assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION), (code, details)
    assert "no matching manifest for linux/s390x in the manifest list entries" in details
    assert images.Exists(pb.ExistsImageRequest(reference=source_registry.multi)).exists is False


@pytest.mark.parametrize("platform", ["linux/amd64/v2/extra", "linux/Not Arch!", "/"])
def test_invalid_platform(platform: str, shared_images: pb_grpc.ImageServiceStub,
                          source_registry: SourceRegistry) -> None:
    code, details = code_and_details(rpc_error(lambda: pull(shared_images, source_registry.multi,
                                                            platform=platform)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details


# -- cairn's own /v2 ------------------------------------------------------------------------


def test_pull_from_cairn_registry(cairn_server: CairnServer, images: pb_grpc.ImageServiceStub,
                                  image_set: ImageSet, ctools: ContainerTools) -> None:
    host = registry_url(cairn_server)
    skopeo_copy_in(ctools, image_set.ref("busybox"), host, "mirror/busybox:v1", "--preserve-digests")
    skopeo_copy_in(ctools, image_set.ref("multi"), host, "mirror/multi:v1", "--all", "--preserve-digests")

    ref = f"{host}/mirror/busybox:v1"
    assert_pulled(pull(images, ref), ref, image_set.busybox.manifest.digest)
    info = images.Inspect(pb.InspectImageRequest(id=ref))
    assert_info_matches(info, image_set.busybox)
    assert list(info.repo_digests) == [f"{host}/mirror/busybox@{image_set.busybox.manifest.digest}"]

    platform, other = next(iter(image_set.others.items()))
    multi = f"{host}/mirror/multi:v1"
    assert_pulled(pull(images, multi, platform=platform), multi, image_set.index.digest)
    assert images.Inspect(pb.InspectImageRequest(id=multi)).id == other.id


# -- auth -----------------------------------------------------------------------------------


AUTH_FORMS = {
    "urlsafe-unpadded": dict(urlsafe=True, padded=False),
    "urlsafe-padded": dict(urlsafe=True, padded=True),
    "standard-padded": dict(urlsafe=False, padded=True),
    "standard-unpadded": dict(urlsafe=False, padded=False),
}


@pytest.mark.parametrize("form", sorted(AUTH_FORMS))
def test_pull_with_auth(form: str, images: pb_grpc.ImageServiceStub, auth_registry: DockerRegistry,
                        image_set: ImageSet) -> None:
    ref = f"{auth_registry.host}/private/busybox:v1"
    auth = auth_string(server=auth_registry.host, **AUTH_FORMS[form])  # type: ignore[arg-type]
    assert_pulled(pull(images, ref, auth=auth), ref, image_set.busybox.manifest.digest)
    assert images.Inspect(pb.InspectImageRequest(id=ref)).id == image_set.busybox.id


@pytest.mark.parametrize("auth", ["", "wrong"], ids=["anonymous", "wrong-password"])
def test_pull_unauthenticated(auth: str, images: pb_grpc.ImageServiceStub,
                              auth_registry: DockerRegistry) -> None:
    ref = f"{auth_registry.host}/private/busybox:v1"
    text = auth_string(password="not-" + AUTH_PASSWORD) if auth else ""
    code, details = code_and_details(rpc_error(lambda: pull(images, ref, auth=text)))
    assert code == grpc.StatusCode.UNAUTHENTICATED, details
    assert images.Exists(pb.ExistsImageRequest(reference=ref)).exists is False


def test_pull_with_auth_file(make_server: Callable[..., CairnServer], auth_registry: DockerRegistry, image_set: ImageSet,
                             tmp_path: Path) -> None:
    """``--image-auth-file``: a docker config.json; a request without ``auth`` uses it."""
    config = tmp_path / "config.json"
    token = f"{AUTH_USER}:{AUTH_PASSWORD}".encode()
    config.write_text(json.dumps({"auths": {auth_registry.host: {"auth": base64.b64encode(token).decode()}}}))
    server = make_server("--image-auth-file", str(config))
    channel, stub = image_stub(server)
    with channel:
        ref = f"{auth_registry.host}/private/busybox:v1"
        assert_pulled(pull(stub, ref), ref, image_set.busybox.manifest.digest)


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "message"), [
    ("127.0.0.1:5000/Lib/BusyBox:v1", "invalid reference format: repository name must be lowercase"),
    ("busybox:bad tag", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("", "invalid reference format"),
])
def test_invalid_reference(reference: str, message: str, shared_images: pb_grpc.ImageServiceStub) -> None:
    call = shared_images.Pull(pb.PullImageRequest(reference=reference), timeout=30)
    received = []
    with pytest.raises(grpc.RpcError) as info:
        for m in call:
            received.append(m)
    code, details = code_and_details(info.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith(message), details
    assert received == [], "an invalid reference fails before any progress message"


@pytest.mark.parametrize("path", ["lib/busybox:no-such-tag", "lib/no-such-repo:v1"])
def test_manifest_unknown(path: str, shared_images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry) -> None:
    ref = source_registry.ref(path)
    code, details = code_and_details(rpc_error(lambda: pull(shared_images, ref)))
    assert code == grpc.StatusCode.NOT_FOUND, details
    assert "not found" in details or "unknown" in details, details


def test_registry_unreachable(shared_images: pb_grpc.ImageServiceStub) -> None:
    ref = f"127.0.0.1:{free_port()}/nobody/home:v1"
    code, details = code_and_details(rpc_error(lambda: pull(shared_images, ref)))
    assert code == grpc.StatusCode.UNAVAILABLE, details


@pytest.mark.parametrize("which", ["layer", "config", "manifest-by-digest"])
def test_digest_mismatch_is_data_loss(which: str, images: pb_grpc.ImageServiceStub,
                                      content: cpb_grpc.ContentStub, source_registry: SourceRegistry,
                                      ctools: ContainerTools, tmp_path: Path, cairn_backend: Backend) -> None:
    # Per backend: the source registry is shared by both runs, and this test corrupts it.
    image = random_image(200_000, f"corrupt-{which}-{cairn_backend.name}")
    layout = write_layout(tmp_path / "layout", {"img": image})
    repo = f"corrupt/{which}-{cairn_backend.name}"
    skopeo_copy_in(ctools, f"oci:{layout}:img", source_registry.host, f"{repo}:v1", "--preserve-digests")
    blob = {"layer": image.layers[0].blob, "config": image.config, "manifest-by-digest": image.manifest}[which]
    path = source_registry.blob_path(blob.digest)
    data = path.read_bytes()
    if which.startswith("manifest"):
        # still valid JSON (distribution parses manifests it serves): one hex digit changed
        at = data.index(image.config.digest.encode()) + len("sha256:")
    else:
        at = len(data) // 2
    changed = b"0" if data[at:at + 1] != b"0" else b"1"
    path.write_bytes(data[:at] + changed + data[at + 1:])  # same size, different bytes

    ref = source_registry.ref(f"{repo}@{image.manifest.digest}" if which.startswith("manifest")
                              else f"{repo}:v1")
    code, details = code_and_details(rpc_error(lambda: pull(images, ref)))
    assert code == grpc.StatusCode.DATA_LOSS, details
    assert images.Exists(pb.ExistsImageRequest(reference=ref)).exists is False
    with pytest.raises(grpc.RpcError) as info:
        content_size(content, blob.digest)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
