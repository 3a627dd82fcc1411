"""skopeo 1.9 against cairn's ``/v2/``: copies in and out of OCI layouts, registry to registry
through distribution and back, tag listing, inspection and deletion.

Plain HTTP needs ``--*-tls-verify=false``; skopeo then probes with a TLS ClientHello first.
``--preserve-digests`` makes skopeo fail rather than rewrite a manifest, so an equal digest is
checked by skopeo as well as here.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.registry.conftest import (
    IMAGE_REF,
    INDEX_REF,
    OCI_INDEX,
    OCI_MANIFEST,
    ContainerTools,
    DockerRegistry,
    OciLayout,
    assert_blobs_identical,
    error_codes,
    get_blob,
    get_manifest,
    layout_refs,
    sha256,
)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def push(tools: ContainerTools, source: str, registry: str, target: str, *extra: str) -> None:
    tools.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", *extra,
                 source, f"docker://{registry}/{target}")


def pull(tools: ContainerTools, registry: str, source: str, dest: str, *extra: str) -> None:
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false", *extra,
                 f"docker://{registry}/{source}", dest)


def assert_manifest_served(registry: str, repository: str, reference: str,
                           data: bytes, media_type: str) -> None:
    response = get_manifest(registry, repository, reference)
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["Content-Type"] == media_type
    assert response.headers["Docker-Content-Digest"] == sha256(data)
    assert response.headers["Content-Length"] == str(len(data))


def test_copy_image_in_and_out(tools: ContainerTools, registry: str, oci_layout: OciLayout,
                               tmp_path: Path) -> None:
    image = oci_layout.image
    push(tools, oci_layout.ref(IMAGE_REF), registry, "test/img:v1")

    assert_manifest_served(registry, "test/img", "v1", image.manifest.data, OCI_MANIFEST)
    assert_manifest_served(registry, "test/img", image.manifest.digest, image.manifest.data, OCI_MANIFEST)
    for blob in [image.config, *image.layers]:
        response = get_blob(registry, "test/img", blob.digest)
        assert response.status_code == 200
        assert response.content == blob.data
        assert response.headers["Docker-Content-Digest"] == blob.digest

    out = tmp_path / "pulled"
    pull(tools, registry, "test/img:v1", f"oci:{out}:copy")
    assert_blobs_identical(oci_layout, out, image.digests())
    assert layout_refs(out)["copy"]["digest"] == image.manifest.digest

    # A dir: copy as well, which writes the manifest as a file of its own.
    dir_out = tmp_path / "dir"
    pull(tools, registry, f"test/img@{image.manifest.digest}", f"dir:{dir_out}")
    assert (dir_out / "manifest.json").read_bytes() == image.manifest.data
    for blob in [image.config, *image.layers]:
        assert (dir_out / blob.digest.split(":")[1]).read_bytes() == blob.data


def test_copy_multi_arch_index_in_and_out(tools: ContainerTools, registry: str, oci_layout: OciLayout,
                                          tmp_path: Path) -> None:
    push(tools, oci_layout.ref(INDEX_REF), registry, "test/multi:1", "--all")

    assert_manifest_served(registry, "test/multi", "1", oci_layout.index.data, OCI_INDEX)
    for image in oci_layout.platforms.values():
        assert_manifest_served(registry, "test/multi", image.manifest.digest, image.manifest.data,
                               OCI_MANIFEST)

    out = tmp_path / "all"
    pull(tools, registry, "test/multi:1", f"oci:{out}:{INDEX_REF}", "--all")
    assert_blobs_identical(oci_layout, out, oci_layout.index_digests())
    assert layout_refs(out)[INDEX_REF]["digest"] == oci_layout.index.digest

    # Without --all, skopeo picks one platform from the index.
    arm = tmp_path / "arm"
    tools.skopeo("--override-arch", "arm64", "--override-os", "linux", "copy", "--src-tls-verify=false",
                 f"docker://{registry}/test/multi:1", f"oci:{arm}:arm")
    arm64 = oci_layout.platforms["arm64"]
    assert_blobs_identical(oci_layout, arm, arm64.digests())
    assert layout_refs(arm)["arm"]["digest"] == arm64.manifest.digest


def test_copy_to_distribution_and_back(tools: ContainerTools, registry: str, oci_layout: OciLayout,
                                       docker_registry: DockerRegistry) -> None:
    push(tools, oci_layout.ref(IMAGE_REF), registry, "test/img:v1")
    push(tools, oci_layout.ref(INDEX_REF), registry, "test/multi:1", "--all")
    peer = docker_registry.host
    both = ["--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests"]

    for source, extra in (("test/img:v1", []), ("test/multi:1", ["--all"])):
        tools.skopeo("copy", *both, *extra, f"docker://{registry}/{source}", f"docker://{peer}/peer/{source}")
        tools.skopeo("copy", *both, *extra, f"docker://{peer}/peer/{source}",
                     f"docker://{registry}/back/{source}")

    image = oci_layout.image
    peer_manifest = get_manifest(peer, "peer/test/img", "v1")
    assert peer_manifest.headers["Docker-Content-Digest"] == image.manifest.digest
    assert_manifest_served(registry, "back/test/img", "v1", image.manifest.data, OCI_MANIFEST)
    for blob in [image.config, *image.layers]:
        assert get_blob(registry, "back/test/img", blob.digest).content == blob.data

    assert get_manifest(peer, "peer/test/multi", "1").content == oci_layout.index.data
    assert_manifest_served(registry, "back/test/multi", "1", oci_layout.index.data, OCI_INDEX)
    for platform in oci_layout.platforms.values():
        assert_manifest_served(registry, "back/test/multi", platform.manifest.digest,
                               platform.manifest.data, OCI_MANIFEST)
        for blob in [platform.config, *platform.layers]:
            assert get_blob(registry, "back/test/multi", blob.digest).content == blob.data


def test_list_tags_and_inspect(tools: ContainerTools, registry: str, oci_layout: OciLayout) -> None:
    image = oci_layout.image
    for tag in ("v1", "1.0", "latest"):
        push(tools, oci_layout.ref(IMAGE_REF), registry, f"test/img:{tag}")

    listed = json.loads(tools.skopeo("list-tags", "--tls-verify=false",
                                     f"docker://{registry}/test/img").stdout)
    assert listed == {"Repository": f"{registry}/test/img", "Tags": ["1.0", "latest", "v1"]}

    inspected = json.loads(tools.skopeo("inspect", "--tls-verify=false",
                                        f"docker://{registry}/test/img:v1").stdout)
    assert inspected["Name"] == f"{registry}/test/img"
    assert inspected["Digest"] == image.manifest.digest
    assert inspected["RepoTags"] == ["1.0", "latest", "v1"]
    assert inspected["Architecture"] == "amd64"
    assert inspected["Os"] == "linux"
    assert inspected["Layers"] == [layer.digest for layer in image.layers]

    raw = tools.skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry}/test/img:v1")
    assert raw.stdout == image.manifest.data
    config = tools.skopeo("inspect", "--tls-verify=false", "--config", "--raw",
                          f"docker://{registry}/test/img:v1")
    assert config.stdout == image.config.data

    push(tools, oci_layout.ref(INDEX_REF), registry, "test/multi:1", "--all")
    raw_index = tools.skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry}/test/multi:1")
    assert raw_index.stdout == oci_layout.index.data


def test_delete_removes_the_manifest_and_its_tags(tools: ContainerTools, registry: str,
                                                  oci_layout: OciLayout) -> None:
    image = oci_layout.image
    for tag in ("v1", "also"):
        push(tools, oci_layout.ref(IMAGE_REF), registry, f"test/img:{tag}")
    push(tools, oci_layout.ref(INDEX_REF), registry, "test/img:other", "--all")

    tools.skopeo("delete", "--tls-verify=false", f"docker://{registry}/test/img:v1")

    gone = tools.skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry}/test/img:v1",
                        check=False)
    assert gone.returncode != 0
    assert b"manifest unknown" in gone.stderr
    for reference in ("v1", "also", image.manifest.digest):
        response = get_manifest(registry, "test/img", reference)
        assert response.status_code == 404, reference
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]

    listed = json.loads(tools.skopeo("list-tags", "--tls-verify=false",
                                     f"docker://{registry}/test/img").stdout)
    assert listed["Tags"] == ["other"]
    assert get_manifest(registry, "test/img", "other").content == oci_layout.index.data


def test_copy_converted_to_docker_schema2(tools: ContainerTools, registry: str, oci_layout: OciLayout,
                                         tmp_path: Path) -> None:
    """skopeo rewrites the manifest as Docker schema 2; blobs keep their bytes, the type is served."""
    image = oci_layout.image
    tools.skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", oci_layout.ref(IMAGE_REF),
                 f"docker://{registry}/test/v2s2:v1")

    response = get_manifest(registry, "test/v2s2", "v1")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == sha256(response.content)
    manifest = response.json()
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["digest"] == image.config.digest
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.digest for layer in image.layers]
    raw = tools.skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry}/test/v2s2:v1")
    assert raw.stdout == response.content

    out = tmp_path / "v2s2"
    pull(tools, registry, "test/v2s2:v1", f"dir:{out}")
    assert (out / "manifest.json").read_bytes() == response.content
    for blob in [image.config, *image.layers]:
        assert (out / blob.digest.split(":")[1]).read_bytes() == blob.data
