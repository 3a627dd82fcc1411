"""oras-py 0.2.43 against cairn's ``/v2/``: artifacts, referrers with ``subject``, pulls.

oras-py's ``push`` builds the manifest itself: it can set ``subject`` (``oras.oci.Subject``),
manifest annotations and the config media type, but it has no ``artifactType`` parameter and
always pushes by tag. So one referrer is pushed wholly by ``push`` (its artifact type is then
its config media type, as the referrers API derives it), and the other, which needs a top-level
``artifactType`` and an ``application/vnd.oci.empty.v1+json`` config, has its blobs uploaded by
oras-py's ``upload_blob`` and its exact manifest bytes PUT by digest through oras-py's
``do_request``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.client
import oras.oci
import pytest
import requests

from tests.integration.registry.conftest import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    canonical_json,
    sha256,
)

SBOM_CONFIG_TYPE = "application/vnd.cairn.test.sbom.config.v1+json"
SIGNATURE_TYPE = "application/vnd.cairn.test.signature.v1"
REPO = "art/demo"


@pytest.fixture
def client(registry: str) -> Iterator[oras.client.OrasClient]:
    c = oras.client.OrasClient(hostname=registry, insecure=True)
    try:
        yield c
    finally:
        c.session.close()


def referrers(registry: str, digest: str, artifact_type: str | None = None) -> requests.Response:
    params = {"artifactType": artifact_type} if artifact_type else None
    return requests.get(f"http://{registry}/v2/{REPO}/referrers/{digest}", params=params, timeout=30)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_artifact_with_referrers(client: oras.client.OrasClient, registry: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = {"a.txt": b"artifact text\n", "b.bin": os.urandom(100_000)}
    paths = [str(write(src / name, data)) for name, data in files.items()]

    # 1. The subject: a plain oras push of two files.
    pushed = client.push(files=paths, target=f"{registry}/{REPO}:v1", disable_path_validation=True,
                         quiet=True)
    assert pushed.status_code == 201
    subject_bytes = bytes(pushed.request.body or b"")
    subject_digest = sha256(subject_bytes)
    assert pushed.headers["Docker-Content-Digest"] == subject_digest
    assert "OCI-Subject" not in pushed.headers
    raw = client.do_request(f"http://{registry}/v2/{REPO}/manifests/v1", "GET",
                            headers={"Accept": OCI_MANIFEST})
    assert raw.status_code == 200
    assert raw.content == subject_bytes
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_bytes))

    # 2. A referrer pushed wholly by oras: subject, annotations and a typed config.
    sbom = write(src / "sbom.spdx.json", b'{"spdxVersion":"SPDX-2.3","name":"demo"}')
    sbom_config = write(tmp_path / "sbom-config.json", b'{"tool":"cairn-test"}')
    sbom_annotations = {"org.opencontainers.image.description": "an sbom for v1"}
    pushed_sbom = client.push(files=[f"{sbom}:application/spdx+json"], target=f"{registry}/{REPO}:sbom",
                              manifest_config=f"{sbom_config}:{SBOM_CONFIG_TYPE}",
                              manifest_annotations=sbom_annotations, subject=subject,
                              disable_path_validation=True, quiet=True)
    assert pushed_sbom.status_code == 201
    assert pushed_sbom.headers["OCI-Subject"] == subject_digest
    sbom_bytes = bytes(pushed_sbom.request.body or b"")
    assert json.loads(sbom_bytes)["subject"] == {"mediaType": OCI_MANIFEST, "digest": subject_digest,
                                                  "size": len(subject_bytes)}
    assert pushed_sbom.headers["Docker-Content-Digest"] == sha256(sbom_bytes)

    # 3. A referrer with a top-level artifactType: blobs by oras, manifest bytes by hand.
    container = client.get_container(f"{registry}/{REPO}")
    signature = write(src / "v1.sig", b"not really a signature\n")
    layer = oras.oci.NewLayer(str(signature), media_type="application/octet-stream")
    assert client.upload_blob(str(signature), container, layer).status_code == 201
    empty = write(tmp_path / "empty.json", b"{}")
    empty_descriptor = {"mediaType": OCI_EMPTY, "digest": sha256(b"{}"), "size": 2}
    assert client.upload_blob(str(empty), container, empty_descriptor).status_code in (200, 201)
    signature_annotations = {"org.opencontainers.image.created": "2024-06-01T00:00:00Z"}
    signature_manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE_TYPE,
        "config": {**empty_descriptor, "data": base64.b64encode(b"{}").decode()},
        "layers": [layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_bytes)},
        "annotations": signature_annotations,
    }))
    put = client.do_request(f"http://{registry}/v2/{REPO}/manifests/{signature_manifest.digest}", "PUT",
                            data=signature_manifest.data, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    assert put.headers["OCI-Subject"] == subject_digest
    assert put.headers["Docker-Content-Digest"] == signature_manifest.digest
    fetched = client.do_request(f"http://{registry}/v2/{REPO}/manifests/{signature_manifest.digest}", "GET",
                                headers={"Accept": OCI_MANIFEST})
    assert fetched.content == signature_manifest.data

    # 4. The referrers API lists both, with the right artifact types and annotations.
    sbom_entry = {"mediaType": OCI_MANIFEST, "digest": sha256(sbom_bytes), "size": len(sbom_bytes),
                  "artifactType": SBOM_CONFIG_TYPE, "annotations": sbom_annotations}
    signature_entry = {**signature_manifest.descriptor(), "artifactType": SIGNATURE_TYPE,
                       "annotations": signature_annotations}
    listed = referrers(registry, subject_digest)
    assert listed.status_code == 200, listed.text
    assert listed.headers["Content-Type"] == OCI_INDEX
    index = listed.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    assert sorted(index["manifests"], key=by_digest) == sorted([sbom_entry, signature_entry], key=by_digest)
    assert "OCI-Filters-Applied" not in listed.headers

    for artifact_type, entries in ((SIGNATURE_TYPE, [signature_entry]), (SBOM_CONFIG_TYPE, [sbom_entry]),
                                   ("application/vnd.cairn.test.other", [])):
        filtered = referrers(registry, subject_digest, artifact_type)
        assert filtered.status_code == 200
        assert filtered.headers["Content-Type"] == OCI_INDEX
        assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
        assert filtered.json()["manifests"] == entries, artifact_type

    # The referrers of something nothing refers to: an empty index, not a 404.
    nobody = referrers(registry, sha256(b"nothing refers to this"))
    assert nobody.status_code == 200
    assert nobody.headers["Content-Type"] == OCI_INDEX
    assert nobody.json()["manifests"] == []

    # 5. oras pulls the files back unchanged.
    out = tmp_path / "out"
    pulled = client.pull(target=f"{registry}/{REPO}:v1", outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    pulled_sbom = client.pull(target=f"{registry}/{REPO}:sbom", outdir=str(tmp_path / "sbom"))
    assert [Path(p).read_bytes() for p in pulled_sbom] == [sbom.read_bytes()]
    assert client.get_tags(f"{registry}/{REPO}") == ["sbom", "v1"]


def by_digest(entry: dict[str, Any]) -> str:
    return str(entry["digest"])
