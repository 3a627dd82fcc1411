"""What goes wrong talking to a Warg registry, in cairn's error kinds.

Three families, because a user acts differently on each:

- the registry said no (an HTTP error): :func:`error_for` reads the Warg error
  JSON shapes of specs/warg.md §8.1 and picks the kind by status, with the
  server's own words in the message; a 404 with a ``type`` becomes a
  :class:`WargNotFoundError` that callers can test (``type == "log"`` means the
  package does not exist, which ``publish init`` relies on);
- the registry's answer is not what the protocol says (not JSON, a missing field):
  :class:`MalformedResponseError`;
- the answer is well formed but does not verify (a bad signature, a proof that
  does not reach the checkpoint's root, a rollback): :class:`VerificationError`,
  whose message names what did not match.

The last two are :class:`~cairn.core.errors.DataLossError`, as everywhere in cairn
where received bytes are not what they claim to be.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.core.errors import (
    CairnError,
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    StorageFullError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)

__all__ = [
    "MalformedResponseError",
    "RecordRejectedError",
    "VerificationError",
    "WargNotFoundError",
    "error_for",
]

_BY_STATUS: dict[int, type[CairnError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: FailedPreconditionError,
    409: FailedPreconditionError,
    413: ResourceExhaustedError,
    415: InvalidArgumentError,
    422: InvalidArgumentError,
    429: UnavailableError,
    501: UnimplementedError,
    507: StorageFullError,  # the registry's disk is full: retry once it has room
}

#: How each typed 404/409 names its ``id`` (specs/warg.md §8.1).
_TYPED: dict[str, str] = {
    "log": "package log {id} is unknown",
    "record": "record {id} is unknown",
    "namespace": "namespace {id} is not defined",
    "fetchToken": "fetch token {id} is unknown",
    "logLength": "no checkpoint has log length {id}",
    "leaf": "registry index {id} is not in the log",
    "contentDigest": "content {id} is unknown",
    "namespaceImport": "namespace {id} is imported from another registry",
}


class WargNotFoundError(NotFoundError):
    """A 404 naming what was not found: ``type`` (``log``, ``record``, ...) and its ``id``."""

    def __init__(self, message: str, type: str | None = None, id: str | int | None = None) -> None:
        super().__init__(message)
        self.type = type
        self.id = id


class MalformedResponseError(DataLossError):
    """The registry answered, but not in the shape the protocol prescribes."""


class VerificationError(DataLossError):
    """What the registry sent does not verify; nothing of it was kept."""


class RecordRejectedError(FailedPreconditionError):
    """The registry rejected a published record; ``reason`` is the server's text."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _detail(document: dict[str, Any]) -> str:
    """The server's words for an error body of any of the §8.1 shapes."""
    kind = document.get("type")
    if isinstance(kind, str):
        template = _TYPED.get(kind, kind + " {id}")
        return template.format(id=document.get("id"))
    reason = document.get("reason")
    if reason == "packageNotIncluded":
        return f"package log {document.get('logId')} is not included in the map"
    if reason == "incorrectProof":
        return f"incorrect proof: root {document.get('root')}, found {document.get('found')}"
    message = document.get("message")
    if isinstance(message, str) and message:
        return message
    if isinstance(reason, str):
        return reason
    if document.get("status") == 405:
        return "the record no longer accepts content"
    return json.dumps(document)[:200]


def error_for(status: int, body: bytes, content_type: str | None, what: str, registry: str) -> CairnError:
    """The error for an HTTP error answer about ``what`` from ``registry``.

    The kind follows the status (an unlisted 4xx is InvalidArgumentError, a 5xx
    UnavailableError); the message is ``<what>: <the server's words> (HTTP n from
    <registry>)``. A body that is not JSON is quoted (its start) rather than
    parsed, so a proxy's HTML page or a plain-text 501 still reads clearly.
    """
    kind = _BY_STATUS.get(status) or (UnavailableError if status >= 500 else InvalidArgumentError)
    document: Any = None
    if (content_type or "").split(";")[0].strip() == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
    suffix = f"(HTTP {status} from {registry})"
    if isinstance(document, dict):
        message = f"{what}: {_detail(document)} {suffix}"
        if status == 404:
            kind_name = document.get("type")
            ident = document.get("id")
            return WargNotFoundError(
                message,
                kind_name if isinstance(kind_name, str) else None,
                ident if isinstance(ident, str | int) and not isinstance(ident, bool) else None,
            )
        return kind(message)
    text = body[:200].decode("utf-8", "replace").strip()
    if text and not text.startswith("<"):
        detail = f"{text} [content-type {content_type or 'none'}]"
    else:
        detail = f"a non-JSON answer (content-type {content_type or 'none'})"
    if status == 404:
        return WargNotFoundError(f"{what}: {detail} {suffix}")
    return kind(f"{what}: {detail} {suffix}")
