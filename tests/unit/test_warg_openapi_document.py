"""The OpenAPI document cairn serves for its Warg API (``cairn/api/http/warg/openapi.json``).

It is the upstream Warg document (the design input) with cairn's changes, each
marked ``x-cairn-note``; these tests hold it to OpenAPI 3.1 and to the
upstream's operations.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

#: Every operation of the upstream document (the seed).
UPSTREAM_OPERATIONS = {
    "fetchNames": ("post", "/fetch/names"),
    "fetchLogs": ("post", "/fetch/logs"),
    "getCheckpoint": ("get", "/fetch/checkpoint"),
    "publishPackageRecord": ("post", "/package/{logId}/record"),
    "getPackageRecord": ("get", "/package/{logId}/record/{recordId}"),
    "getContentSources": ("get", "/content/{digest}"),
    "proveConsistency": ("post", "/proof/consistency"),
    "proveInclusion": ("post", "/proof/inclusion"),
    "verifyCheckpoint": ("post", "/verify/checkpoint"),
    "getLedgerSources": ("get", "/ledger"),
}
#: The two routes the reference server has and the upstream document omits (specs/warg.md §8.2).
ADDED_OPERATIONS = {
    "uploadPackageRecordContent": ("post", "/package/{logId}/record/{recordId}/content/{digest}"),
    "getLedgerRecords": ("get", "/ledger/records/{start}"),
}
JSON_BODY_OPERATIONS = {"fetchNames", "fetchLogs", "publishPackageRecord", "proveConsistency", "proveInclusion",
                        "verifyCheckpoint"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    text = (resources.files("cairn.api.http.warg") / "openapi.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }


def test_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    errors = [str(e) for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    validate(document)  # the package's own entry point, which picks the version itself


def test_lists_every_upstream_operation_and_the_added_routes(document: dict[str, Any]) -> None:
    found = {op_id: (method, path) for op_id, (method, path, _) in operations(document).items()}
    assert found == {**UPSTREAM_OPERATIONS, **ADDED_OPERATIONS}


def test_single_relative_server(document: dict[str, Any]) -> None:
    assert [s["url"] for s in document["servers"]] == ["/v1"]


def test_json_body_operations_document_body_errors(document: dict[str, Any]) -> None:
    ops = operations(document)
    for op_id in JSON_BODY_OPERATIONS:
        _, _, op = ops[op_id]
        assert op["requestBody"]["required"] is True, op_id
        assert list(op["requestBody"]["content"]) == ["application/json"], op_id
        assert {"400", "415", "422"} <= set(op["responses"]), op_id


def test_every_response_body_is_json_but_the_ledger_records(document: dict[str, Any]) -> None:
    components = document["components"]["responses"]
    for op_id, (_, _, op) in operations(document).items():
        for status, entry in op["responses"].items():
            response = components[entry["$ref"].rsplit("/", 1)[1]] if "$ref" in entry else entry
            media = list(response.get("content", {}))
            if op_id == "getLedgerRecords" and status == "200":
                assert media == ["application/vnd.warg.ledger.packed"]
            elif op_id == "uploadPackageRecordContent" and status == "201":
                assert media == []
            else:
                assert media == ["application/json"], (op_id, status)
