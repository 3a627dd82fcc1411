"""Plain values of the content store: what a blob and an ingest look like from outside.

Times are integer nanoseconds since the Unix epoch (UTC): lossless for the
protobuf ``Timestamp`` and cheap to store. Validation of the names a client
chooses (namespaces, labels) lives here because every face must apply the same
rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError

__all__ = [
    "MAX_LABEL_BYTES",
    "Info",
    "Status",
    "validate_labels",
    "validate_namespace",
]

#: containerd's limit on len(key) + len(value) of one label, in bytes.
MAX_LABEL_BYTES = 4096
_NAMESPACE = re.compile(r"^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$")
_MAX_NAMESPACE = 76


@dataclass(frozen=True, slots=True)
class Info:
    """A committed blob as one namespace sees it."""

    digest: Digest
    size: int
    created_at: int
    updated_at: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Status:
    """An active (uncommitted) ingest.

    ``offset`` is how many bytes the ingest holds; ``total`` is the size the
    client announced (0 if none); ``expected`` is set when the ingest links a
    blob that another namespace already holds (no bytes are re-sent).
    """

    ref: str
    offset: int
    total: int
    started_at: int
    updated_at: int
    expected: Digest | None = None


@functools.lru_cache(maxsize=1024)
def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a valid containerd identifier, else raise InvalidArgumentError.

    Cached: every content call validates its namespace, and there are few of them.
    """
    if not namespace:
        raise InvalidArgumentError("namespace validation: identifier must not be empty")
    if len(namespace) > _MAX_NAMESPACE:
        raise InvalidArgumentError(
            f'namespace validation: identifier "{namespace}" greater than maximum length '
            f"({_MAX_NAMESPACE} characters)"
        )
    if not _NAMESPACE.fullmatch(namespace):  # fullmatch: "$" alone lets a trailing "\n" through
        raise InvalidArgumentError(
            f'namespace validation: identifier "{namespace}" must match {_NAMESPACE.pattern}'
        )
    return namespace


def validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Check label sizes and keys; return the labels to store (empty values dropped).

    An empty key is INVALID_ARGUMENT in cairn (containerd answers UNKNOWN, an
    upstream oddity; DECISIONS.md content-api 10).
    """
    kept: dict[str, str] = {}
    for key, value in labels.items():
        if not key:
            raise InvalidArgumentError(f'label key required (got ""="{value}")')
        if len(key.encode()) + len(value.encode()) > MAX_LABEL_BYTES:
            raise InvalidArgumentError(
                f"label key and value greater than maximum size ({MAX_LABEL_BYTES} bytes), "
                f"key: {key}"
            )
        if value:
            kept[key] = value
    return kept
