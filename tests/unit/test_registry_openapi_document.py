"""The OpenAPI document cairn serves for its OCI Distribution API (``cairn/api/http/registry/openapi.json``).

Held to OpenAPI 3.1 and to the face: every (method, route) the ``/v2/`` dispatcher
has is documented, nothing else is, and every operation documents the error
answers every route can give (401, 403, 405, 429, 503).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from cairn.api.http.registry import app

#: Where each route kind of :mod:`cairn.api.http.registry.paths` lives in the document.
PATHS = {
    "base": "/",
    "catalog": "/_catalog",
    "openapi": "/openapi.json",
    "tags": "/{name}/tags/list",
    "manifest": "/{name}/manifests/{reference}",
    "blob": "/{name}/blobs/{digest}",
    "referrers": "/{name}/referrers/{digest}",
}
METHODS = {"get", "head", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    text = (resources.files("cairn.api.http.registry") / "openapi.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in METHODS}


def _served() -> set[tuple[str, str]]:
    served = set()
    for kind, method in app._HANDLERS:
        if kind == "upload":
            path = "/{name}/blobs/uploads/" if method == "POST" else "/{name}/blobs/uploads/{reference}"
        else:
            path = PATHS[kind]
        served.add((method, path))
    return served


def test_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert [str(e) for e in OpenAPIV31SpecValidator(document).iter_errors()] == []
    validate(document)


def test_documents_exactly_the_routes_the_face_serves(document: dict[str, Any]) -> None:
    assert _documented(document) == _served()


def test_single_relative_server(document: dict[str, Any]) -> None:
    assert [s["url"] for s in document["servers"]] == ["/v2"]


def test_every_operation_documents_the_common_errors(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in METHODS or path == "/openapi.json":
                continue
            assert {"401", "403", "405", "429", "503"} <= set(op["responses"]), (method, path)
            assert not [s for s in op["responses"] if s.startswith("5") and s not in ("503", "507")], (method, path)


def test_error_codes_cover_the_face_table(document: dict[str, Any]) -> None:
    from cairn.api.http.registry.errors import _TABLE

    codes = set(document["components"]["schemas"]["ErrorBody"]["properties"]["errors"]["items"]["properties"]
                ["code"]["enum"])
    assert {code for _, _, code in _TABLE} <= codes
