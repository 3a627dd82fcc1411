"""cairn's one error vocabulary.

Every layer below the faces raises only these. Each face (gRPC, OCI HTTP, Warg
HTTP) owns one table that maps these kinds onto its protocol's error form, so a
kind added here is a kind every face must decide about.

Messages name the thing and the reason, for example
``blob sha256:ab12... not found in namespace default``; faces send them to
clients as they are.

This module is not for protocol-specific error codes (OCI ``BLOB_UNKNOWN`` and
friends): narrower classes subclass these kinds where a face needs to tell them
apart.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "CairnError",
    "CancelledError",
    "DataLossError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "StorageFullError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
]


class CairnError(Exception):
    """Base of every error cairn raises on purpose; the message is user-facing."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class NotFoundError(CairnError):
    """The named thing does not exist (or is not visible to the caller)."""


class AlreadyExistsError(CairnError):
    """The thing to create exists already."""


class InvalidArgumentError(CairnError):
    """The request is malformed: bad digest, bad filter, bad label, bad name."""


class FailedPreconditionError(CairnError):
    """The request is well-formed but the state does not allow it (size or digest mismatch)."""


class UnavailableError(CairnError):
    """Try again later: a lock is held, a backend is unreachable."""


class OutOfRangeError(CairnError):
    """An offset or range lies outside what exists."""


class UnauthenticatedError(CairnError):
    """No or wrong credentials."""


class PermissionDeniedError(CairnError):
    """Credentials are fine but do not allow this."""


class ResourceExhaustedError(CairnError):
    """A size or count limit was exceeded, or the disk is full."""


class StorageFullError(ResourceExhaustedError):
    """The disk (or bucket) under the store has no room left: nothing the client sent was wrong,
    and the same request succeeds once an operator makes room (HTTP faces answer 507)."""


class UnimplementedError(CairnError):
    """The operation is not offered by this server."""


class DataLossError(CairnError):
    """Bytes were lost on the way to disk (a short write)."""


class CancelledError(CairnError):
    """The caller went away or asked to stop (a pull whose client hung up)."""
