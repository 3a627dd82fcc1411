"""The registry's refusals, as kinds of cairn's error vocabulary that carry the Warg error fields.

The Warg HTTP face turns each into its exact JSON body (specs/warg.md §8.1):
a 404 names the kind of thing not found and its id, a 409 the conflicting
namespace, a 422 from the proof endpoints says why no bundle could be made.
"""

from __future__ import annotations

from cairn.core.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
    UnimplementedError,
)

__all__ = [
    "BundleFailureError",
    "ContentRejectedError",
    "ContentSourcesUnsupportedError",
    "IncorrectProofError",
    "NamespaceImportedError",
    "NotSourcingError",
    "PackageNotIncludedError",
    "UnauthorizedRecordError",
    "WargNotFoundError",
]


class WargNotFoundError(NotFoundError):
    """``kind`` is one of log, record, namespace, fetchToken, logLength, leaf, contentDigest."""

    def __init__(self, kind: str, ident: str | int) -> None:
        super().__init__(f"{kind} `{ident}` was not found")
        self.kind = kind
        self.ident = ident


class NamespaceImportedError(AlreadyExistsError):
    """The package's namespace is imported from another registry: publish there."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"namespace `{namespace}` is imported from another registry")
        self.namespace = namespace


class UnauthorizedRecordError(UnauthenticatedError):
    """The record's key is unknown, its signature does not verify, or a key policy refuses it (401)."""


class ContentSourcesUnsupportedError(UnimplementedError):
    """The client offered its own content sources; content must be uploaded here (501)."""


class NotSourcingError(FailedPreconditionError):
    """Content was uploaded for a record that no longer accepts content (405)."""


class ContentRejectedError(InvalidArgumentError):
    """The content policy refused uploaded content; the record is rejected (422)."""


class BundleFailureError(InvalidArgumentError):
    """No proof bundle can be made for the request (422 ``failure``)."""


class PackageNotIncludedError(InvalidArgumentError):
    """A requested leaf's log is not in the map at that length (422 ``packageNotIncluded``)."""

    def __init__(self, log_id: str) -> None:
        super().__init__(f"log `{log_id}` is not included in the map")
        self.log_id = log_id


class IncorrectProofError(InvalidArgumentError):
    """A map proof does not evaluate to the checkpoint's root: the leaf is not its log's head (422)."""

    def __init__(self, root: str, found: str) -> None:
        super().__init__(f"the proof evaluates to `{found}`, not to the root `{root}`")
        self.root = root
        self.found = found
