"""The HTTP half of the client: URLs, error shapes, answer shapes, content types, verified downloads.

A stdlib HTTP server on a loopback port plays the registry where real HTTP
matters (content types, streaming, digests); everything else is pure.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from cairn.core.errors import (
    CairnError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from cairn.warg.client import MalformedResponseError, VerificationError, WargApi, WargNotFoundError
from cairn.warg.client.download import save_content
from cairn.warg.client.errors import error_for
from cairn.warg.client.model import ContentSource, FetchLogsResult, RecordStatus, UploadTarget
from cairn.warg.client.urls import api_url, join, registry_url
from cairn.warg.hashes import AnyHash

JSON = "application/json"


# -- URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090/"),
        ("127.0.0.1:8090", "http://127.0.0.1:8090/"),
        ("localhost:9", "http://localhost:9/"),
        ("http://[::1]:8090/warg", "http://[::1]:8090/warg/"),
        ("https://Registry.Example/prefix/", "https://registry.example/prefix/"),
        ("registry.example", "https://registry.example/"),
    ],
)
def test_registry_urls_are_normalised(given: str, expected: str) -> None:
    assert registry_url(given) == expected


def test_plain_http_is_only_for_loopback_unless_insecure() -> None:
    with pytest.raises(InvalidArgumentError, match="plain http is allowed only to localhost"):
        registry_url("http://registry.example/")
    assert registry_url("http://registry.example/", insecure=True) == "http://registry.example/"
    assert registry_url("registry.example:80", insecure=True) == "http://registry.example:80/"
    for bad in ("", "ftp://127.0.0.1/", "http://127.0.0.1/?x=1"):
        with pytest.raises(InvalidArgumentError):
            registry_url(bad)


def test_api_paths_and_server_urls_join_under_the_registry() -> None:
    base = "http://127.0.0.1:8090/prefix/"
    assert (
        api_url(base, "package", "sha256:ab", "record")
        == "http://127.0.0.1:8090/prefix/v1/package/sha256:ab/record"
    )
    assert (
        join(base, "v1/package/x/record/y/content/z")
        == "http://127.0.0.1:8090/prefix/v1/package/x/record/y/content/z"
    )
    assert join(base, "http://127.0.0.1:9/abs") == "http://127.0.0.1:9/abs"


# -- error shapes -------------------------------------------------------------------------------
def _error(status: int, body: object, content_type: str | None = JSON) -> CairnError:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return error_for(status, data, content_type, "fetch logs", "http://127.0.0.1:1/")


def test_typed_not_found_keeps_type_and_id() -> None:
    error = _error(404, {"status": 404, "type": "log", "id": "sha256:ab"})
    assert isinstance(error, WargNotFoundError) and (error.type, error.id) == ("log", "sha256:ab")
    assert error.message == "fetch logs: package log sha256:ab is unknown (HTTP 404 from http://127.0.0.1:1/)"
    length = _error(404, {"status": 404, "type": "logLength", "id": 7})
    assert isinstance(length, WargNotFoundError) and length.id == 7 and "log length 7" in length.message


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (
            400,
            {"status": 400, "message": "invalid records limit value `0`"},
            InvalidArgumentError,
            "limit value",
        ),
        (401, {"status": 401, "message": "unknown key id `x`"}, UnauthenticatedError, "unknown key id"),
        (405, {"status": 405}, FailedPreconditionError, "no longer accepts content"),
        (409, {"status": 409, "type": "namespaceImport", "id": "ns"}, FailedPreconditionError, "imported"),
        (
            422,
            {"status": 422, "reason": "failure", "message": "leaf newer"},
            InvalidArgumentError,
            "leaf newer",
        ),
        (
            422,
            {"status": 422, "reason": "packageNotIncluded", "logId": "sha256:1"},
            InvalidArgumentError,
            "not included",
        ),
        (
            422,
            {"status": 422, "reason": "incorrectProof", "root": "r", "found": "f"},
            InvalidArgumentError,
            "root r, found f",
        ),
        (
            501,
            {"status": 501, "message": "specifying content sources is not supported"},
            UnimplementedError,
            "not supported",
        ),
        (500, {"status": 500, "message": "an error occurred"}, UnavailableError, "an error occurred"),
    ],
)
def test_error_shapes_map_to_kinds(status: int, body: object, kind: type[CairnError], text: str) -> None:
    error = _error(status, body)
    assert type(error) is kind and text in error.message and f"HTTP {status}" in error.message


def test_non_json_errors_are_quoted_not_parsed() -> None:
    error = _error(501, b"`Warg-Registry` header is not supported", "text/plain")
    assert isinstance(error, UnimplementedError)
    assert "`Warg-Registry` header is not supported [content-type text/plain]" in error.message
    html = _error(502, b"<html>bad gateway</html>", "text/html")
    assert "a non-JSON answer (content-type text/html)" in html.message
    assert isinstance(_error(404, b"nope", "text/plain"), NotFoundError)


# -- answer shapes ------------------------------------------------------------------------------
def test_record_status_shapes() -> None:
    sourcing = RecordStatus.from_json(
        {
            "recordId": "sha256:r",
            "state": "sourcing",
            "missingContent": {
                "sha256:c": {
                    "upload": [
                        {
                            "type": "http",
                            "method": "post",
                            "url": "v1/x",
                            "headers": {"authorization": "a", "x-evil": "b"},
                        }
                    ]
                }
            },
        },
        "publish",
    )
    assert sourcing.missing == {"sha256:c": [UploadTarget("POST", "v1/x", {"authorization": "a"})]}
    assert (
        RecordStatus.from_json(
            {"recordId": "r", "state": "published", "registryIndex": 4}, "x"
        ).registry_index
        == 4
    )
    assert RecordStatus.from_json({"recordId": "r", "state": "rejected", "reason": "no"}, "x").reason == "no"
    with pytest.raises(MalformedResponseError, match="unknown record state 'done'"):
        RecordStatus.from_json({"recordId": "r", "state": "done"}, "x")
    with pytest.raises(MalformedResponseError, match="'registryIndex' should be a int, is a bool"):
        RecordStatus.from_json({"recordId": "r", "state": "published", "registryIndex": True}, "x")


def test_fetch_logs_shape_allows_omitted_collections() -> None:
    result = FetchLogsResult.from_json({"more": False})
    assert result.operator == [] and result.packages == {} and not result.more
    with pytest.raises(MalformedResponseError, match="field 'more'"):
        FetchLogsResult.from_json({"operator": []})


def test_content_sources_keep_only_http_get() -> None:
    sources = ContentSource.list_from_json(
        {
            "contentSources": {
                "sha256:c": [
                    {"type": "ipfs", "cid": "x"},
                    {"type": "httpGet", "url": "http://127.0.0.1/c", "size": 3, "acceptRanges": True},
                ]
            }
        },
        "sha256:c",
    )
    assert sources == [ContentSource("http://127.0.0.1/c", 3, True)]


# -- over HTTP ------------------------------------------------------------------------------------
class _Registry(BaseHTTPRequestHandler):
    """Answers from ``routes`` (path -> status, content type, body); records request bodies."""

    routes: ClassVar[dict[str, tuple[int, str | None, bytes]]]
    received: ClassVar[dict[str, bytes]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received[self.path] = self.rfile.read(length) if length else b""
        status, content_type, body = self.routes.get(self.path, (404, JSON, b'{"status":404}'))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_registry() -> Iterator[tuple[str, dict[str, tuple[int, str | None, bytes]], dict[str, bytes]]]:
    routes: dict[str, tuple[int, str | None, bytes]] = {}
    received: dict[str, bytes] = {}
    handler = type("Handler", (_Registry,), {"routes": routes, "received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", routes, received
    finally:
        server.shutdown()
        server.server_close()


def test_json_answers_must_be_json(http_registry: tuple[str, dict, dict]) -> None:  # type: ignore[type-arg]
    url, routes, _ = http_registry
    api = WargApi(url, timeout=5)
    routes["/v1/fetch/checkpoint"] = (200, "text/html", b"<html>hello</html>")
    with pytest.raises(MalformedResponseError, match=r"expected an application/json answer .* got text/html"):
        api.fetch_checkpoint()
    routes["/v1/fetch/checkpoint"] = (200, JSON, b"{broken")
    with pytest.raises(MalformedResponseError, match="is not JSON"):
        api.fetch_checkpoint()
    routes["/v1/fetch/checkpoint"] = (200, "application/json; charset=utf-8", b'{"contents": 1}')
    with pytest.raises(
        MalformedResponseError, match="fetch checkpoint"
    ):  # lenient on the type, strict on shape
        api.fetch_checkpoint()


def test_requests_are_json_with_the_protocols_field_names(http_registry: tuple[str, dict, dict]) -> None:  # type: ignore[type-arg]
    url, routes, received = http_registry
    api = WargApi(url, timeout=5)
    routes["/v1/fetch/logs"] = (200, JSON, b'{"more":false,"packages":{"sha256:aa":[]}}')
    result = api.fetch_logs(3, None, {"sha256:aa": None})
    assert result.packages == {"sha256:aa": []}
    assert json.loads(received["/v1/fetch/logs"]) == {"logLength": 3, "packages": {"sha256:aa": None}}
    routes["/v1/proof/inclusion"] = (200, JSON, b'{"log":"AAE=","map":"Ag=="}')
    assert api.prove_inclusion(3, [0, 2]) == (b"\0\1", b"\2")
    assert json.loads(received["/v1/proof/inclusion"]) == {"logLength": 3, "leafs": [0, 2]}


def test_nothing_listening_is_unavailable() -> None:
    api = WargApi("http://127.0.0.1:9/", timeout=2)
    with pytest.raises(
        UnavailableError, match=r"no Warg registry answers at http://127.0.0.1:9/v1/fetch/checkpoint"
    ):
        api.fetch_checkpoint()


def test_upload_streams_the_file(http_registry: tuple[str, dict, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    url, routes, received = http_registry
    routes["/v1/up"] = (201, None, b"")
    path = tmp_path / "c"
    path.write_bytes(b"x" * 3_000_000)
    WargApi(url, timeout=5).upload_content(UploadTarget("POST", "v1/up", {}), path, "sha256:c")
    assert received["/v1/up"] == path.read_bytes()


def _content_routes(url: str, routes: dict, digest: AnyHash, body: bytes) -> None:  # type: ignore[type-arg]
    sources = {
        "contentSources": {
            str(digest): [
                {"type": "httpGet", "url": f"{url}missing"},
                {"type": "httpGet", "url": f"{url}blob", "size": len(body)},
            ]
        }
    }
    routes[f"/v1/content/{digest}"] = (200, JSON, json.dumps(sources).encode())
    routes["/blob"] = (200, "application/octet-stream", body)


def test_download_takes_the_first_source_that_answers_and_verifies(
    http_registry: tuple[str, dict, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    url, routes, _ = http_registry
    body = b"\0asm" + bytes(range(256)) * 4000
    digest = AnyHash.of(body)
    _content_routes(url, routes, digest, body)
    dest = tmp_path / "out.wasm"
    assert save_content(WargApi(url, timeout=5), digest, dest) == len(body)
    assert dest.read_bytes() == body


def test_download_with_other_bytes_is_refused_and_leaves_nothing(
    http_registry: tuple[str, dict, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    url, routes, _ = http_registry
    digest = AnyHash.of(b"the real thing")
    _content_routes(url, routes, digest, b"something else")
    dest = tmp_path / "out.wasm"
    with pytest.raises(
        VerificationError, match=r"hash to sha256:\w+, not to the digest the package log records"
    ):
        save_content(WargApi(url, timeout=5), digest, dest)
    assert list(tmp_path.iterdir()) == []


def test_download_over_plain_http_to_another_host_is_refused(
    http_registry: tuple[str, dict, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    url, routes, _ = http_registry
    digest = AnyHash.of(b"x")
    sources = {"contentSources": {str(digest): [{"type": "httpGet", "url": "http://registry.example/blob"}]}}
    routes[f"/v1/content/{digest}"] = (200, JSON, json.dumps(sources).encode())
    with pytest.raises(NotFoundError, match="plain http is allowed only to localhost"):
        save_content(WargApi(url, timeout=5), digest, tmp_path / "out")
