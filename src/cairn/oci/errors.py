"""The registry's failures in the domain's own words, narrower kinds of cairn's error vocabulary.

Each class is one OCI error code's meaning (distribution-spec section 5)
expressed as a subclass of a core error kind, so other faces still see a
NotFound or an InvalidArgument, and the ``/v2/`` face can tell BLOB_UNKNOWN from
MANIFEST_UNKNOWN without parsing messages. ``detail`` is JSON-ready data the face
may send along (for example the missing descriptors of a manifest).
"""

from __future__ import annotations

from typing import Any

from cairn.core.errors import (
    CairnError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
)

__all__ = [
    "BlobUnknownError",
    "DigestInvalidError",
    "ManifestBlobUnknownError",
    "ManifestInvalidError",
    "ManifestUnknownError",
    "NameInvalidError",
    "NameUnknownError",
    "RangeNotSatisfiableError",
    "RegistryDomainError",
    "SizeInvalidError",
    "TagInvalidError",
    "TooLargeError",
    "UploadBusyError",
    "UploadOutOfOrderError",
    "UploadUnknownError",
]


class RegistryDomainError(CairnError):
    """Mixin carrying optional JSON ``detail`` for the face."""

    detail: Any = None

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


class NameUnknownError(RegistryDomainError, NotFoundError):
    """The repository does not exist."""


class BlobUnknownError(RegistryDomainError, NotFoundError):
    """The blob is not linked to the repository."""


class ManifestUnknownError(RegistryDomainError, NotFoundError):
    """No manifest under that tag or digest in the repository."""


class UploadUnknownError(RegistryDomainError, NotFoundError):
    """The upload session does not exist (never did, completed, cancelled or expired)."""


class NameInvalidError(RegistryDomainError, InvalidArgumentError):
    """The repository name breaks the grammar."""


class TagInvalidError(RegistryDomainError, InvalidArgumentError):
    """The tag breaks the grammar."""


class DigestInvalidError(RegistryDomainError, InvalidArgumentError):
    """A digest is malformed, unsupported, or does not match the content."""


class SizeInvalidError(RegistryDomainError, InvalidArgumentError):
    """A length does not match the content."""


class ManifestInvalidError(RegistryDomainError, InvalidArgumentError):
    """The manifest bytes are not an acceptable manifest."""


class ManifestBlobUnknownError(RegistryDomainError, InvalidArgumentError):
    """The manifest references blobs or manifests the repository does not have."""


class UploadOutOfOrderError(RegistryDomainError, OutOfRangeError):
    """A chunk does not start where the upload ends (416; the session stays valid)."""


class RangeNotSatisfiableError(RegistryDomainError, OutOfRangeError):
    """A blob GET's Range lies outside the blob."""


class TooLargeError(RegistryDomainError, ResourceExhaustedError):
    """A manifest over the size limit (413)."""


class UploadBusyError(RegistryDomainError, OutOfRangeError):
    """Another request is writing the same upload session right now (416: ask for the status, resume)."""
