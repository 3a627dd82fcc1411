"""The one place Warg errors become HTTP: cairn's error kinds -> the Warg error JSON shapes.

Every JSON answer, errors included, carries ``content-type: application/json``
exactly: the reference client compares the header byte for byte and refuses
``application/json; charset=utf-8`` (specs/warg.md §8.1), which is what
aiohttp's ``json_response`` would send.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from cairn.core.errors import (
    CairnError,
    InvalidArgumentError,
    ResourceExhaustedError,
    StorageFullError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from cairn.warg.registry import (
    BundleFailureError,
    ContentRejectedError,
    IncorrectProofError,
    NamespaceImportedError,
    NotSourcingError,
    PackageNotIncludedError,
    WargNotFoundError,
)

__all__ = ["BodyError", "error_json", "json_response"]

log = logging.getLogger(__name__)

INTERNAL = "an error occurred while processing the request"


class BodyError(Exception):
    """A request body the API refuses before the domain sees it: 400, 413, 415 or 422."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(body: Any, status: int = 200) -> web.Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return web.Response(status=status, body=data, headers={"Content-Type": "application/json"})


def _message(status: int, message: str) -> web.Response:
    return json_response({"status": status, "message": message}, status)


def error_json(exc: BaseException) -> web.Response:
    """The Warg error answer for ``exc`` (a CairnError or BodyError; anything else is a 500)."""
    if isinstance(exc, BodyError):
        return _message(exc.status, exc.message)
    if isinstance(exc, WargNotFoundError):
        return json_response({"status": 404, "type": exc.kind, "id": exc.ident}, 404)
    if isinstance(exc, NamespaceImportedError):
        return json_response({"status": 409, "type": "namespaceImport", "id": exc.namespace}, 409)
    if isinstance(exc, NotSourcingError):
        return json_response({"status": 405}, 405)
    if isinstance(exc, BundleFailureError):
        return json_response({"status": 422, "reason": "failure", "message": exc.message}, 422)
    if isinstance(exc, PackageNotIncludedError):
        return json_response({"status": 422, "reason": "packageNotIncluded", "logId": exc.log_id}, 422)
    if isinstance(exc, IncorrectProofError):
        return json_response({"status": 422, "reason": "incorrectProof", "root": exc.root, "found": exc.found}, 422)
    if isinstance(exc, ContentRejectedError):
        return _message(422, exc.message)
    if isinstance(exc, UnauthenticatedError):
        return _message(401, exc.message)
    if isinstance(exc, UnimplementedError):
        return _message(501, exc.message)
    if isinstance(exc, StorageFullError):  # the server's disk, not the request's size
        return _message(507, exc.message)
    if isinstance(exc, ResourceExhaustedError):
        return _message(413, exc.message)
    if isinstance(exc, InvalidArgumentError):
        return _message(400, exc.message)
    if isinstance(exc, UnavailableError):
        log.warning("warg request failed: %s", exc.message)
        return _message(503, exc.message)
    if isinstance(exc, CairnError):
        log.error("warg request failed: %s", exc.message)
        return _message(500, INTERNAL)
    log.error("warg request failed", exc_info=exc)
    return _message(500, INTERNAL)
