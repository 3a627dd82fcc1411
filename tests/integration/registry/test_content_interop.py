"""One store, two faces: what the registry face writes, ``ctr`` reads, and the other way round.

The registry keeps its blobs and manifests in the containerd namespace ``registry`` of the
content store. A blob that only the content API knows is not part of any repository until an
anonymous mount (``POST /v2/<repo>/blobs/uploads/?mount=<digest>``) links it.
"""

from __future__ import annotations

import os
from pathlib import Path

import requests

from tests.conftest import CairnServer
from tests.integration.registry.conftest import (
    IMAGE_REF,
    OCI_MANIFEST,
    ContainerTools,
    OciLayout,
    assert_blobs_identical,
    error_codes,
    get_blob,
    layout_refs,
    push_blob,
    registry_url,
    sha256,
)
from tests.integration.test_ctr import ctr

NS = "registry"


def mount(host: str, repository: str, digest: str) -> requests.Response:
    return requests.post(f"http://{host}/v2/{repository}/blobs/uploads/", params={"mount": digest},
                         headers={"Content-Length": "0"}, timeout=30)


def test_blob_pushed_over_v2_is_read_by_ctr(cairn_server: CairnServer) -> None:
    host = registry_url(cairn_server)
    data = os.urandom(1_234_567)
    digest = sha256(data)
    pushed = push_blob(host, "interop/blob", data)
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Docker-Content-Digest"] == digest
    assert pushed.headers["Location"].endswith(f"/v2/interop/blob/blobs/{digest}")

    assert ctr(cairn_server, "content", "get", digest, ns=NS).stdout == data
    assert digest in ctr(cairn_server, "content", "ls", "-q", ns=NS).stdout.decode().split()
    # Other namespaces do not see the registry's content.
    assert ctr(cairn_server, "content", "get", digest, check=False).returncode != 0


def test_image_pushed_by_skopeo_is_read_by_ctr(cairn_server: CairnServer, tools: ContainerTools,
                                               oci_layout: OciLayout) -> None:
    host = registry_url(cairn_server)
    tools.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", oci_layout.ref(IMAGE_REF),
                 f"docker://{host}/interop/img:v1")
    listed = set(ctr(cairn_server, "content", "ls", "-q", ns=NS).stdout.decode().split())
    assert oci_layout.image.digests() <= listed
    for blob in oci_layout.image.blobs():
        assert ctr(cairn_server, "content", "get", blob.digest, ns=NS).stdout == blob.data, blob.media_type


def test_blob_ingested_by_ctr_is_mounted_and_served(cairn_server: CairnServer) -> None:
    host = registry_url(cairn_server)
    data = os.urandom(2 * 1024 * 1024 + 17)
    digest = sha256(data)
    ctr(cairn_server, "content", "ingest", "--expected-digest", digest, "from-ctr", stdin=data, ns=NS)

    unlinked = get_blob(host, "interop/mounted", digest)
    assert unlinked.status_code == 404
    assert error_codes(unlinked) == ["BLOB_UNKNOWN"]

    mounted = mount(host, "interop/mounted", digest)
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert mounted.headers["Location"].endswith(f"/v2/interop/mounted/blobs/{digest}")

    fetched = get_blob(host, "interop/mounted", digest)
    assert fetched.status_code == 200
    assert fetched.content == data
    assert fetched.headers["Docker-Content-Digest"] == digest
    assert fetched.headers["Content-Type"] == "application/octet-stream"
    head = requests.head(f"http://{host}/v2/interop/mounted/blobs/{digest}", timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    # The mount linked one repository, not all of them.
    assert get_blob(host, "interop/elsewhere", digest).status_code == 404


def test_image_assembled_from_ctr_content_is_pulled_by_skopeo(
    cairn_server: CairnServer, tools: ContainerTools, oci_layout: OciLayout, tmp_path: Path
) -> None:
    host = registry_url(cairn_server)
    image = oci_layout.image
    for i, blob in enumerate([image.config, *image.layers]):
        ctr(cairn_server, "content", "ingest", "--expected-digest", blob.digest, f"part-{i}",
            stdin=blob.data, ns=NS)
        assert mount(host, "interop/assembled", blob.digest).status_code == 201
    put = requests.put(f"http://{host}/v2/interop/assembled/manifests/v1", data=image.manifest.data,
                       headers={"Content-Type": OCI_MANIFEST}, timeout=30)
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == image.manifest.digest

    out = tmp_path / "out"
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false",
                 f"docker://{host}/interop/assembled:v1", f"oci:{out}:v1")
    assert_blobs_identical(oci_layout, out, image.digests())
    assert layout_refs(out)["v1"]["digest"] == image.manifest.digest
    # And the manifest the registry stored is content ctr can read too.
    assert ctr(cairn_server, "content", "get", image.manifest.digest, ns=NS).stdout == image.manifest.data
