"""The JSON bodies of the Warg HTTP API (specs/warg.md §8.2) as typed values.

Each ``from_json`` checks the shape the protocol prescribes and raises
:class:`MalformedResponseError` naming the field otherwise, so the code that
verifies never handles a half-parsed answer. Nothing here verifies anything:
that is ``update.py``'s job; this module only says "the server sent a record
envelope at registry index 12", not whether it is true.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cairn.core.errors import CairnError
from cairn.warg.client.errors import MalformedResponseError
from cairn.warg.records import Envelope

__all__ = [
    "ContentSource",
    "FetchLogsResult",
    "PublishedRecord",
    "UPLOAD_HEADERS",
    "RecordStatus",
    "UploadTarget",
    "field_of",
    "optional_field",
]

T = TypeVar("T")

#: Upload headers the client passes on (the reference accepts only these two; §8.2).
UPLOAD_HEADERS = frozenset({"authorization", "content-type"})


def field_of(document: Mapping[str, Any], key: str, kind: type[T], what: str) -> T:
    """``document[key]`` checked to be a ``kind`` (a bool is not an int here)."""
    value = document.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise MalformedResponseError(f"{what}: field {key!r} should be a {kind.__name__}, is {got}")
    return value


def optional_field(document: Mapping[str, Any], key: str, kind: type[T], what: str) -> T | None:
    """Like :func:`field_of`, but absent or null is None (empty collections are omitted; §8.1)."""
    if document.get(key) is None:
        return None
    return field_of(document, key, kind, what)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponseError(f"{what}: expected a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class PublishedRecord:
    """A record as ``fetch/logs`` lists it: its envelope, registry index and fetch token."""

    envelope: Envelope
    registry_index: int
    fetch_token: str

    @classmethod
    def from_json(cls, value: Any, what: str) -> PublishedRecord:
        document = _object(value, what)
        try:
            envelope = Envelope.from_json(document)
        except CairnError as exc:
            raise MalformedResponseError(f"{what}: {exc.message}") from None
        index = field_of(document, "registryIndex", int, what)
        if index < 0:
            raise MalformedResponseError(f"{what}: negative registryIndex {index}")
        return cls(envelope, index, field_of(document, "fetchToken", str, what))


@dataclass(frozen=True, slots=True)
class FetchLogsResult:
    """One page of ``fetch/logs``: records per log and whether more pages follow."""

    more: bool
    operator: list[PublishedRecord]
    packages: dict[str, list[PublishedRecord]]
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, value: Any) -> FetchLogsResult:
        what = "fetch/logs"
        document = _object(value, what)
        more = field_of(document, "more", bool, what)
        operator = [
            PublishedRecord.from_json(item, f"{what}: operator record {i}")
            for i, item in enumerate(optional_field(document, "operator", list, what) or [])
        ]
        packages: dict[str, list[PublishedRecord]] = {}
        for log_id, items in (optional_field(document, "packages", dict, what) or {}).items():
            if not isinstance(items, list):
                raise MalformedResponseError(f"{what}: packages[{log_id}] should be a list")
            packages[log_id] = [
                PublishedRecord.from_json(item, f"{what}: record {i} of log {log_id}")
                for i, item in enumerate(items)
            ]
        warnings = [
            str(w.get("message")) if isinstance(w, dict) else str(w)
            for w in optional_field(document, "warnings", list, what) or []
        ]
        return cls(more, operator, packages, warnings)


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where to send one missing content: method, URL (relative to the registry) and headers."""

    method: str
    url: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class RecordStatus:
    """A published record's state: ``sourcing``, ``processing``, ``published`` or ``rejected``."""

    record_id: str
    state: str
    missing: dict[str, list[UploadTarget]] = field(default_factory=dict)
    reason: str | None = None
    registry_index: int | None = None

    @classmethod
    def from_json(cls, value: Any, what: str) -> RecordStatus:
        document = _object(value, what)
        record_id = field_of(document, "recordId", str, what)
        state = field_of(document, "state", str, what)
        if state not in ("sourcing", "processing", "published", "rejected"):
            raise MalformedResponseError(f"{what}: unknown record state {state!r}")
        missing: dict[str, list[UploadTarget]] = {}
        if state == "sourcing":
            for digest, entry in field_of(document, "missingContent", dict, what).items():
                uploads = field_of(_object(entry, what), "upload", list, f"{what}: {digest}")
                missing[digest] = [_upload_target(item, f"{what}: upload of {digest}") for item in uploads]
        reason = field_of(document, "reason", str, what) if state == "rejected" else None
        index = field_of(document, "registryIndex", int, what) if state == "published" else None
        return cls(record_id, state, missing, reason, index)


def _upload_target(value: Any, what: str) -> UploadTarget:
    document = _object(value, what)
    headers = optional_field(document, "headers", dict, what) or {}
    return UploadTarget(
        method=field_of(document, "method", str, what).upper(),
        url=field_of(document, "url", str, what),
        headers={str(k): str(v) for k, v in headers.items() if str(k).lower() in UPLOAD_HEADERS},
    )


@dataclass(frozen=True, slots=True)
class ContentSource:
    """One place a content can be fetched from (``httpGet``), with its size when known."""

    url: str
    size: int | None = None
    accept_ranges: bool = False

    @classmethod
    def list_from_json(cls, value: Any, digest: str) -> list[ContentSource]:
        """The ``httpGet`` sources for ``digest`` of a ``v1/content/{digest}`` answer, in order."""
        what = f"content sources of {digest}"
        sources = field_of(_object(value, what), "contentSources", dict, what)
        items = sources.get(digest)
        if not isinstance(items, list):
            raise MalformedResponseError(f"{what}: no list of sources for the digest asked about")
        found: list[ContentSource] = []
        for item in items:
            document = _object(item, what)
            if document.get("type") != "httpGet":
                continue  # a source type this client does not know: skip it, as the reference does
            found.append(
                cls(
                    url=field_of(document, "url", str, what),
                    size=optional_field(document, "size", int, what),
                    accept_ranges=bool(document.get("acceptRanges", False)),
                )
            )
        return found
