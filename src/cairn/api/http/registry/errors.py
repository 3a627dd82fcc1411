"""The OCI error vocabulary on the wire: one table from cairn's domain errors to status + code.

Every failure of the ``/v2/`` face leaves as ``{"errors":[{"code","message","detail"}]}``
with ``Content-Type: application/json`` (distribution-spec section 5). Handlers
raise :class:`RegistryError` when they know the OCI code themselves (a digest
that does not match is DIGEST_INVALID, not a generic 400); anything else from
the domain is translated by :func:`from_domain_error` from the narrower
kinds in :mod:`cairn.oci.errors` (BLOB_UNKNOWN vs MANIFEST_UNKNOWN, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from cairn.core import errors
from cairn.oci import errors as oci_errors

__all__ = ["RegistryError", "error_response", "from_domain_error"]


class RegistryError(Exception):
    """One OCI error response: HTTP status, error code, message, optional detail and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = dict(headers or {})


#: The OCI form of each domain error kind, most specific first (the first match wins).
_TABLE: tuple[tuple[type[errors.CairnError], int, str], ...] = (
    (oci_errors.NameUnknownError, 404, "NAME_UNKNOWN"),
    (oci_errors.BlobUnknownError, 404, "BLOB_UNKNOWN"),
    (oci_errors.ManifestUnknownError, 404, "MANIFEST_UNKNOWN"),
    (oci_errors.UploadUnknownError, 404, "BLOB_UPLOAD_UNKNOWN"),
    (oci_errors.NameInvalidError, 400, "NAME_INVALID"),
    (oci_errors.TagInvalidError, 400, "TAG_INVALID"),
    (oci_errors.DigestInvalidError, 400, "DIGEST_INVALID"),
    (oci_errors.SizeInvalidError, 400, "SIZE_INVALID"),
    (oci_errors.ManifestInvalidError, 400, "MANIFEST_INVALID"),
    (oci_errors.ManifestBlobUnknownError, 400, "MANIFEST_BLOB_UNKNOWN"),
    (oci_errors.UploadOutOfOrderError, 416, "BLOB_UPLOAD_INVALID"),
    (oci_errors.RangeNotSatisfiableError, 416, "BLOB_UNKNOWN"),
    (oci_errors.TooLargeError, 413, "SIZE_INVALID"),
    (errors.NotFoundError, 404, "NAME_UNKNOWN"),
    (errors.InvalidArgumentError, 400, "UNSUPPORTED"),
    (errors.AlreadyExistsError, 409, "UNSUPPORTED"),
    (errors.FailedPreconditionError, 400, "UNSUPPORTED"),
    (errors.OutOfRangeError, 416, "BLOB_UPLOAD_INVALID"),
    (errors.UnavailableError, 503, "UNAVAILABLE"),
    (errors.UnauthenticatedError, 401, "UNAUTHORIZED"),
    (errors.PermissionDeniedError, 403, "DENIED"),
    (errors.ResourceExhaustedError, 507, "UNKNOWN"),
    (errors.UnimplementedError, 405, "UNSUPPORTED"),
    (errors.DataLossError, 500, "UNKNOWN"),
    # The client went away: nobody reads this answer; 499 is what proxies log for it.
    (errors.CancelledError, 499, "UNKNOWN"),
)


def from_domain_error(exc: errors.CairnError) -> RegistryError:
    """The OCI error response for a domain error (500 UNKNOWN for anything unmapped)."""
    detail = exc.detail if isinstance(exc, oci_errors.RegistryDomainError) else None
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            return RegistryError(status, code, exc.message, detail)
    return RegistryError(500, "UNKNOWN", exc.message, detail)


def error_response(error: RegistryError) -> web.Response:
    """The JSON error body (aiohttp leaves it out for HEAD) with the error's extra headers."""
    entry: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.detail is not None:
        entry["detail"] = error.detail
    body = json.dumps({"errors": [entry]}).encode()
    response = web.Response(status=error.status, body=body, content_type="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
