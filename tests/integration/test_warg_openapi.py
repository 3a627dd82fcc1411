"""Schema-driven fuzzing of the Warg API (``/v1/``) with schemathesis, from cairn's own OpenAPI document.

Every documented operation except the content upload (it needs a sourcing
record, and its body is raw bytes) gets generated requests, valid and invalid
(schemathesis' positive and negative modes), against a real ``cairn serve``.
Two properties are checked for every response:

- no 5xx (``not_a_server_error``): malformed JSON, a wrong content type, wrong
  shapes, out-of-range integers (negative, past u32, or floats such as ``61.0``)
  and hashes of unknown algorithms are the client's fault, never a crash;
- ``Content-Type`` is exactly ``application/json`` (the reference client
  compares it byte for byte, specs/warg.md §8.1), except the packed body of
  ``GET /ledger/records/{start}``.

Bounded: at most ``MAX_EXAMPLES`` generated cases per operation (plus
schemathesis' explicit and coverage cases), ``ITEM_TIMEOUT`` seconds per
operation (server start included) and ``BUDGET`` seconds for all operations
together (about 25 s measured on the development machine).

The document itself is served at ``/v1/openapi.json``, byte for byte the packaged file.
"""

from __future__ import annotations

import time
from importlib import resources

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext, not_a_server_error

from tests.conftest import CairnServer

OPENAPI = resources.files("cairn.api.http.warg") / "openapi.json"
UPLOAD = "uploadPackageRecordContent"
LEDGER_RECORDS = "/ledger/records/{start}"
LEDGER_PACKED = "application/vnd.warg.ledger.packed"
MAX_EXAMPLES = 30
ITEM_TIMEOUT = 60
BUDGET = 150.0
_started: list[float] = []


# Loaded eagerly: ``schemathesis.pytest.from_fixture`` (4.32) fails on pytest 9 (it sets the removed
# ``Node._nodeid``). Each operation becomes its own test item with its own ``cairn_server``.
schema = schemathesis.openapi.from_path(str(OPENAPI)).exclude(operation_id=UPLOAD)
schema.config.update(request_timeout=10)
schema.config.generation.update(max_examples=MAX_EXAMPLES)


def exact_content_type(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """``Content-Type`` is ``application/json`` exactly (no charset), or the ledger's packed type."""
    got = response.headers.get("content-type", [None])[0]
    packed = case.operation.path == LEDGER_RECORDS and 200 <= response.status_code < 300
    expected = LEDGER_PACKED if packed else "application/json"
    if got != expected:
        raise AssertionError(
            f"{case.operation.label} -> {response.status_code}: Content-Type {got!r}, expected {expected!r}"
        )
    return None


@pytest.mark.timeout(ITEM_TIMEOUT)
@schema.parametrize()
# One server per operation, shared by its generated cases: the Warg API has no per-case state to reset.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_warg_api_never_5xx_and_always_json(case: schemathesis.Case, cairn_server: CairnServer) -> None:
    if not _started:
        _started.append(time.monotonic())
    elapsed = time.monotonic() - _started[0]
    if elapsed > BUDGET:
        pytest.fail(f"the Warg fuzzing ran {elapsed:.0f} s, over its {BUDGET:.0f} s budget")
    # The document's only server is the relative "/v1": resolve it against this server.
    case.call_and_validate(
        base_url=f"{cairn_server.http_url}/v1", checks=[not_a_server_error, exact_content_type]
    )


def test_serves_the_packaged_document(cairn_server: CairnServer) -> None:
    answer = requests.get(f"{cairn_server.http_url}/v1/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.content == OPENAPI.read_bytes()
