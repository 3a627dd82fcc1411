"""Typed HTTP calls for every endpoint of the Warg API (specs/warg.md §8.2), over urllib3.

One method per endpoint, typed values back (``model.py``), failures as cairn
error kinds (``errors.py``): callers never see urllib3 or raw JSON. Nothing is
verified here beyond the shape of the answers; ``update.py`` decides what to
believe.

urllib3 does the HTTP (pooling, timeouts, streaming); what is written here:
- every JSON answer must be ``application/json``. The reference client demands
  the exact header; this one also takes parameters after it, but a non-JSON
  answer is reported as such, with the start of its body, never parsed;
- request bodies that are files (content uploads) are streamed with an explicit
  ``Content-Length``, never read into memory; downloads are handed back as a
  streaming response for the caller to hash as it writes;
- only idempotent GETs are retried on a broken read; nothing is ever retried
  after a body was sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from cairn import __version__
from cairn.core.errors import CairnError, InvalidArgumentError, UnavailableError
from cairn.warg.checkpoint import SignedCheckpoint
from cairn.warg.client.errors import MalformedResponseError, error_for
from cairn.warg.client.model import ContentSource, FetchLogsResult, RecordStatus, UploadTarget, field_of
from cairn.warg.client.urls import api_url, check_scheme, join, registry_url
from cairn.warg.hashes import b64decode_strict
from cairn.warg.records import Envelope

__all__ = ["CHUNK_SIZE", "WargApi"]

log = logging.getLogger(__name__)

#: Uploads and downloads move in pieces of this size.
CHUNK_SIZE = 1 << 20
_ERROR_BODY_MAX = 64 << 10


class _FileBody:
    """Feeds urllib3 exactly ``size`` bytes of an open file, a chunk at a time.

    An iterable rather than the file: with the explicit Content-Length urllib3
    sends it as is (never chunked) and never rewinds it. A file that shrinks
    under us must not leave the server waiting for bytes that never come.
    """

    def __init__(self, file: BinaryIO, size: int, what: str) -> None:
        self._file = file
        self._size = size
        self._what = what

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < self._size:
            data = self._file.read(min(CHUNK_SIZE, self._size - sent))
            if not data:
                raise _BodyFailed(
                    InvalidArgumentError(f"{self._what}: the file ended after {sent} of {self._size} bytes")
                )
            sent += len(data)
            yield data


class _BodyFailed(Exception):
    """Carries a failure to read the request body out through urllib3 unchanged."""


class WargApi:
    """Blocking calls to one Warg registry; thread-safe (urllib3 pools are)."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        timeout: float = 30.0,
        token: str | None = None,
    ) -> None:
        self.registry = registry_url(registry, insecure)
        self.insecure = insecure
        self.timeout = timeout
        headers = {"User-Agent": f"cairn/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            blocksize=CHUNK_SIZE,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            headers=headers,
        )

    def close(self) -> None:
        self._http.clear()

    # -- fetch ---------------------------------------------------------------
    def fetch_checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint (GET ``v1/fetch/checkpoint``)."""
        what = "fetch checkpoint"
        document = self._call("GET", api_url(self.registry, "fetch", "checkpoint"), what)
        try:
            return SignedCheckpoint.from_json(document)
        except CairnError as exc:
            raise MalformedResponseError(f"{what}: {exc.message}") from None

    def fetch_logs(
        self,
        log_length: int,
        operator: str | None = None,
        packages: Mapping[str, str | None] | None = None,
        limit: int | None = None,
    ) -> FetchLogsResult:
        """One page of records up to ``log_length``, after each log's fetch token (``v1/fetch/logs``).

        A 404 ``log`` (a package the registry does not know) comes back as a
        :class:`~cairn.warg.client.errors.WargNotFoundError` with ``type`` "log".
        """
        body: dict[str, Any] = {"logLength": log_length}
        if limit is not None:
            body["limit"] = limit
        if operator is not None:
            body["operator"] = operator
        if packages:
            body["packages"] = dict(packages)
        document = self._call("POST", api_url(self.registry, "fetch", "logs"), "fetch logs", body)
        return FetchLogsResult.from_json(document)

    def fetch_names(self, log_ids: Sequence[str]) -> dict[str, str | None]:
        """The package name of each log id the registry knows (``v1/fetch/names``)."""
        what = "fetch names"
        document = self._call(
            "POST", api_url(self.registry, "fetch", "names"), what, {"packages": list(log_ids)}
        )
        names = field_of(_object(document, what), "packages", dict, what)
        return {str(k): v if isinstance(v, str) else None for k, v in names.items()}

    # -- publish ---------------------------------------------------------------
    def publish_record(self, log_id: str, package_name: str, envelope: Envelope) -> RecordStatus:
        """POST a signed record; the answer is ``processing`` or ``sourcing`` (202)."""
        what = f"publish to {package_name}"
        body = {"packageName": package_name, "record": envelope.to_json()}
        document = self._call(
            "POST", api_url(self.registry, "package", log_id, "record"), what, body, ok=(200, 201, 202)
        )
        return RecordStatus.from_json(document, what)

    def get_record(self, log_id: str, record_id: str) -> RecordStatus:
        """The state of one record of one package log."""
        what = f"record {record_id}"
        document = self._call("GET", api_url(self.registry, "package", log_id, "record", record_id), what)
        return RecordStatus.from_json(document, what)

    def upload_content(self, target: UploadTarget, path: Path, digest: str) -> None:
        """Stream the file at ``path`` to an upload target the registry handed out."""
        what = f"upload {digest}"
        url = join(self.registry, target.url)
        check_scheme(url, self.insecure, f"{what}: upload URL")
        if target.method not in ("POST", "PUT"):
            raise MalformedResponseError(f"{what}: upload method {target.method} is not supported")
        with path.open("rb") as file:
            size = path.stat().st_size
            headers = {"Content-Type": "application/octet-stream", **target.headers}
            headers["Content-Length"] = str(size)
            response = self._send(
                target.method, url, what, headers, _FileBody(file, size, what), stream=False
            )
        if not 200 <= response.status < 300:
            raise self._error(response, what)

    # -- content ------------------------------------------------------------------
    def content_sources(self, digest: str) -> list[ContentSource]:
        """Where content ``digest`` can be downloaded (GET ``v1/content/{digest}``)."""
        what = f"content {digest}"
        return ContentSource.list_from_json(
            self._call("GET", api_url(self.registry, "content", digest), what), digest
        )

    def open_source(self, source: ContentSource, what: str) -> urllib3.BaseHTTPResponse:
        """A streaming 2xx response for a content source; read it, then ``release_conn()``."""
        url = join(self.registry, source.url)
        check_scheme(url, self.insecure, f"{what}: content source")
        response = self._send("GET", url, what, {}, None, stream=True)
        if not 200 <= response.status < 300:
            raise self._error(response, what, stream=True)
        return response

    # -- proofs ------------------------------------------------------------------
    def prove_consistency(self, old_length: int, new_length: int) -> bytes:
        """The encoded LogProofBundle of one consistency proof ``old -> new``."""
        what = f"consistency proof {old_length} -> {new_length}"
        document = self._call(
            "POST",
            api_url(self.registry, "proof", "consistency"),
            what,
            {"from": old_length, "to": new_length},
        )
        return _b64(field_of(_object(document, what), "proof", str, what), what)

    def prove_inclusion(self, log_length: int, leafs: Sequence[int]) -> tuple[bytes, bytes]:
        """The encoded (LogProofBundle, MapProofBundle) for registry indices ``leafs`` at ``log_length``."""
        what = f"inclusion proof at log length {log_length}"
        document = _object(
            self._call(
                "POST",
                api_url(self.registry, "proof", "inclusion"),
                what,
                {"logLength": log_length, "leafs": list(leafs)},
            ),
            what,
        )
        return (
            _b64(field_of(document, "log", str, what), f"{what}: log"),
            _b64(field_of(document, "map", str, what), f"{what}: map"),
        )

    # -- monitor and ledger ------------------------------------------------------------
    def verify_checkpoint(self, checkpoint: SignedCheckpoint) -> dict[str, str]:
        """The registry's opinion of a checkpoint: ``checkpoint`` and ``signature`` verdicts."""
        what = "verify checkpoint"
        document = _object(
            self._call("POST", api_url(self.registry, "verify", "checkpoint"), what, checkpoint.to_json()),
            what,
        )
        return {
            "checkpoint": field_of(document, "checkpoint", str, what),
            "signature": field_of(document, "signature", str, what),
        }

    def ledger(self) -> dict[str, Any]:
        """The ledger's source list (GET ``v1/ledger``)."""
        return _object(self._call("GET", api_url(self.registry, "ledger"), "ledger"), "ledger")

    def ledger_records(self, start: int) -> bytes:
        """Packed ``logId || recordId`` pairs from registry index ``start`` (at most 1000)."""
        what = f"ledger records from {start}"
        response = self._send("GET", api_url(self.registry, "ledger", "records", str(start)), what, {}, None)
        if response.status != 200:
            raise self._error(response, what)
        return bytes(response.data)

    # -- plumbing ------------------------------------------------------------------
    def _call(
        self,
        method: str,
        url: str,
        what: str,
        body: Any = None,
        ok: Sequence[int] = (200,),
    ) -> Any:
        """One JSON request and its JSON answer; error answers raise their error kind."""
        headers: dict[str, str] = {"Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()
        response = self._send(method, url, what, headers, data)
        if response.status not in ok:
            raise self._error(response, what)
        content_type = response.headers.get("Content-Type")
        if (content_type or "").split(";")[0].strip() != "application/json":
            start = response.data[:120].decode("utf-8", "replace").strip()
            raise MalformedResponseError(
                f"{what}: expected an application/json answer from {self.registry}, got "
                f"{content_type or 'no content type'}" + (f": {start!r}" if start else "")
            )
        try:
            return json.loads(response.data)
        except (ValueError, RecursionError) as exc:
            raise MalformedResponseError(
                f"{what}: the answer of {self.registry} is not JSON ({exc})"
            ) from None

    def _send(
        self,
        method: str,
        url: str,
        what: str,
        headers: dict[str, str],
        body: bytes | _FileBody | None,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        retries = urllib3.Retry(
            total=3,
            connect=2,
            read=1 if method == "GET" else 0,
            status=0,
            other=0,
            redirect=5 if method == "GET" else 0,
            raise_on_redirect=False,
            raise_on_status=False,
        )
        try:
            response = self._http.request(
                method,
                url,
                body=body,
                headers=headers,
                retries=retries,
                redirect=method == "GET",
                preload_content=not stream,
                decode_content=True,
            )
        except _BodyFailed as exc:
            raise exc.args[0] from None
        except Urllib3Error as exc:
            reason = getattr(exc, "reason", None) or exc
            text = str(reason)
            for marker in ("Connection refused", "Name or service not known", "timed out"):
                if marker in text:
                    text = marker
                    break
            raise UnavailableError(f"{what}: no Warg registry answers at {url} ({text})") from None
        log.debug("%s %s -> %s", method, url, response.status)
        return response

    def _error(self, response: urllib3.BaseHTTPResponse, what: str, stream: bool = False) -> CairnError:
        try:
            body = response.read(_ERROR_BODY_MAX) if stream else response.data[:_ERROR_BODY_MAX]
        except Urllib3Error:
            body = b""
        finally:
            response.release_conn()
        return error_for(response.status, body, response.headers.get("Content-Type"), what, self.registry)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponseError(f"{what}: expected a JSON object")
    return value


def _b64(text: str, what: str) -> bytes:
    try:
        return b64decode_strict(text, what)
    except CairnError as exc:
        raise MalformedResponseError(exc.message) from None
