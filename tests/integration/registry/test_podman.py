"""buildah 1.28 and podman 4.3 against cairn's ``/v2/``, their vfs store kept in a scratch directory.

Images in containers-storage hold uncompressed layers, so buildah and podman compress while
pushing (a PATCH without a known length); what stays fixed is the config, whose digest is the
image id, and the uncompressed layers, whose digests are the config's ``rootfs.diff_ids``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.registry.conftest import (
    IMAGE_REF,
    ContainerTools,
    OciLayout,
    get_blob,
    get_manifest,
    sha256,
)

BUILT = "localhost/cairn-test/built:v1"


@pytest.fixture
def podman(tools: ContainerTools) -> Iterator[ContainerTools]:
    """``tools``, and every image it holds removed by name afterwards."""
    yield tools
    names = tools.podman("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    names = [n.decode() for n in names if not n.endswith(b"<none>")]
    if names:
        tools.podman("rmi", "--force", *names, check=False)


def inspect(tools: ContainerTools, image: str) -> dict[str, Any]:
    [info] = json.loads(tools.podman("image", "inspect", image).stdout)
    return dict(info)


def read_digest(path: Path) -> str:
    return path.read_text().strip()


def assert_pushed_image(registry: str, repository: str, reference: str, digest: str,
                        config: bytes) -> dict[str, Any]:
    """The manifest at ``reference`` hashes to ``digest``, names ``config`` and blobs that
    decompress to the config's diff_ids."""
    response = get_manifest(registry, repository, reference)
    assert response.status_code == 200, response.text
    assert sha256(response.content) == digest
    assert response.headers["Docker-Content-Digest"] == digest
    manifest = response.json()
    assert manifest["config"]["digest"] == sha256(config)
    assert get_blob(registry, repository, manifest["config"]["digest"]).content == config
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert len(manifest["layers"]) == len(diff_ids)
    for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        blob = get_blob(registry, repository, layer["digest"])
        assert blob.status_code == 200
        assert sha256(blob.content) == layer["digest"]
        assert len(blob.content) == layer["size"]
        assert sha256(gzip.decompress(blob.content)) == diff_id
    return dict(manifest)


def test_buildah_push_podman_pull(podman: ContainerTools, registry: str, tmp_path: Path) -> None:
    content = tmp_path / "hello.txt"
    content.write_bytes(b"built by buildah for cairn\n")
    container = podman.buildah("from", "scratch").stdout.decode().strip()
    podman.buildah("copy", container, str(content), "/hello.txt")
    podman.buildah("config", "--cmd", "/hello.txt", "--arch", "amd64", "--os", "linux", container)
    image_id = podman.buildah("commit", "--format", "oci", "--rm", container, BUILT).stdout.decode().split()[-1]
    config = podman.buildah("inspect", "--type", "image", "--format", "{{.Config}}", BUILT).stdout.strip()
    assert sha256(config) == f"sha256:{image_id}"

    pushed = tmp_path / "pushed.digest"
    podman.buildah("push", "--tls-verify=false", "--digestfile", str(pushed), BUILT,
                   f"docker://{registry}/test/bh:v1")
    digest = read_digest(pushed)
    assert_pushed_image(registry, "test/bh", "v1", digest, config)

    podman.podman("rmi", BUILT)
    podman.podman("pull", "--tls-verify=false", f"{registry}/test/bh:v1")
    info = inspect(podman, f"{registry}/test/bh:v1")
    assert info["Id"] == image_id
    assert info["Digest"] == digest
    assert f"{registry}/test/bh@{digest}" in info["RepoDigests"]

    # podman retags and pushes under another name; pulling that back gives the same image.
    podman.podman("tag", f"{registry}/test/bh:v1", f"{registry}/pod/bh:v2")
    again = tmp_path / "again.digest"
    podman.podman("push", "--tls-verify=false", "--digestfile", str(again), f"{registry}/pod/bh:v2")
    assert_pushed_image(registry, "pod/bh", "v2", read_digest(again), config)
    listed = podman.podman("search", "--list-tags", "--tls-verify=false", f"{registry}/pod/bh").stdout.decode()
    assert listed.split() == ["NAME", "TAG", f"{registry}/pod/bh", "v2"]

    podman.podman("rmi", f"{registry}/test/bh:v1", f"{registry}/pod/bh:v2")
    podman.podman("pull", "--tls-verify=false", f"{registry}/pod/bh:v2")
    assert inspect(podman, f"{registry}/pod/bh:v2")["Id"] == image_id


def test_podman_pulls_and_pushes_a_skopeo_pushed_image(podman: ContainerTools, registry: str,
                                                        oci_layout: OciLayout, tmp_path: Path) -> None:
    image = oci_layout.image
    podman.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", oci_layout.ref(IMAGE_REF),
                  f"docker://{registry}/test/img:v1")

    podman.podman("pull", "--tls-verify=false", f"{registry}/test/img:v1")
    info = inspect(podman, f"{registry}/test/img:v1")
    assert f"sha256:{info['Id']}" == image.config.digest
    assert info["Digest"] == image.manifest.digest
    assert info["RootFS"]["Layers"] == list(image.diff_ids)
    assert info["Architecture"] == "amd64"

    podman.podman("tag", f"{registry}/test/img:v1", f"{registry}/pod/img:v1")
    pushed = tmp_path / "pushed.digest"
    podman.podman("push", "--tls-verify=false", "--digestfile", str(pushed), f"{registry}/pod/img:v1")
    assert_pushed_image(registry, "pod/img", "v1", read_digest(pushed), image.config.data)

    # The image can also leave podman into an OCI layout with its config intact.
    out = tmp_path / "out"
    podman.podman("push", f"{registry}/pod/img:v1", f"oci:{out}:v1")
    layout_index = json.loads((out / "index.json").read_bytes())
    manifest = json.loads((out / "blobs" / "sha256" /
                           layout_index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    assert manifest["config"]["digest"] == image.config.digest

    podman.podman("rmi", f"{registry}/test/img:v1", f"{registry}/pod/img:v1")
    assert podman.podman("images", "-q").stdout == b""
