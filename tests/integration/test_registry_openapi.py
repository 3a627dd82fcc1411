"""Schema-driven fuzzing of the OCI Distribution API (``/v2/``) with schemathesis, from cairn's own document.

Every documented operation gets generated requests, valid and invalid
(schemathesis' positive and negative modes), against a real ``cairn serve``
that holds one repository (``fuzz/repo``) with a tag, a manifest and its blobs,
so generated names and digests sometimes hit real content. Every response must
conform to the document (status code, headers, content type, body schema) and
none may be a 5xx other than the documented 503/507.

Bounded: at most ``MAX_EXAMPLES`` generated cases per operation (``CAIRN_SLOW=1``:
ten times as many), ``ITEM_TIMEOUT`` seconds per operation and ``BUDGET`` seconds for
all operations together. The document is served at ``/v2/openapi.json``, byte for
byte the packaged file. Cases are counted for docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import Backend, CairnServer, running

OPENAPI = resources.files("cairn.api.http.registry") / "openapi.json"
SLOW = bool(os.environ.get("CAIRN_SLOW"))
MAX_EXAMPLES = 300 if SLOW else int(os.environ.get("CAIRN_OPENAPI_EXAMPLES", "30"))
ITEM_TIMEOUT = 900 if SLOW else 90
BUDGET = 3600.0 if SLOW else 240.0
REPO = "fuzz/repo"
#: Operations whose schema-valid requests may still be refused with 400 by the OCI spec: the body's
#: digest, the blobs a manifest references or the session's offset are not expressible in a schema.
SEMANTIC_400 = {"putManifest", "startUpload", "uploadChunk", "finishUpload"}
_started: list[float] = []
CASES: dict[str, int] = {}

schema = schemathesis.openapi.from_path(str(OPENAPI))
schema.config.update(request_timeout=10)
schema.config.generation.update(max_examples=MAX_EXAMPLES)


def _push(url: str) -> None:
    """One repository with a config blob, a layer blob, a manifest tagged ``v1``."""
    config, layer = b"{}", b"layer bytes"
    descriptors = []
    for data, media_type in ((config, "application/vnd.oci.image.config.v1+json"),
                             (layer, "application/vnd.oci.image.layer.v1.tar")):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        answer = requests.post(f"{url}/v2/{REPO}/blobs/uploads/", params={"digest": digest}, data=data, timeout=10)
        assert answer.status_code == 201, answer.text
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": descriptors[0], "layers": descriptors[1:]}).encode()
    answer = requests.put(f"{url}/v2/{REPO}/manifests/v1", data=manifest,
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def registry_server(cairn_backend: Backend) -> Iterator[CairnServer]:
    """One server for the module: the API's state (the pushed repository) is part of what is fuzzed."""
    data = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))  # short: the unix socket lives there
    try:
        with running(cairn_backend.server(data / "data")) as server:
            _push(server.http_url)
            yield server
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many generated requests each operation got (the figure docs/reliability.md quotes)."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if CASES and capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\nschemathesis /v2 cases: {sum(CASES.values())} over {len(CASES)} operations")
        CASES.clear()


@pytest.mark.timeout(ITEM_TIMEOUT)
@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_registry_api_conforms_and_never_5xx(case: schemathesis.Case, registry_server: CairnServer) -> None:
    if not _started:
        _started.append(time.monotonic())
    elapsed = time.monotonic() - _started[0]
    if elapsed > BUDGET:
        pytest.fail(f"the /v2 fuzzing ran {elapsed:.0f} s, over its {BUDGET:.0f} s budget")
    CASES[case.operation.label] = CASES.get(case.operation.label, 0) + 1
    excluded = [positive_data_acceptance] if case.operation.definition.raw["operationId"] in SEMANTIC_400 else []
    case.call_and_validate(base_url=f"{registry_server.http_url}/v2", excluded_checks=excluded)


def test_serves_the_packaged_document(cairn_server: CairnServer) -> None:
    answer = requests.get(f"{cairn_server.http_url}/v2/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.content == OPENAPI.read_bytes()
    assert requests.post(f"{cairn_server.http_url}/v2/openapi.json", timeout=10).status_code == 405
