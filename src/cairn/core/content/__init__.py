"""The content store: blobs by digest, ingests by ref, names per namespace.

Open one with :func:`open_content_store` from a backend URL
(``file:///var/lib/cairn/content``) and a catalog.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cairn.core.catalog import Catalog
from cairn.core.content.backend import BlobBackend, IngestData
from cairn.core.content.local import LocalBackend
from cairn.core.content.locks import RefLockedError
from cairn.core.content.model import (
    MAX_LABEL_BYTES,
    Info,
    Status,
    validate_labels,
    validate_namespace,
)
from cairn.core.content.namespaced import NamespacedStore
from cairn.core.content.store import (
    ContentStore,
    Ingester,
    IngestManager,
    Manager,
    Provider,
    ReaderAt,
    Writer,
)
from cairn.core.errors import InvalidArgumentError

__all__ = [
    "MAX_LABEL_BYTES",
    "BlobBackend",
    "ContentStore",
    "Info",
    "IngestData",
    "IngestManager",
    "Ingester",
    "LocalBackend",
    "Manager",
    "NamespacedStore",
    "Provider",
    "ReaderAt",
    "RefLockedError",
    "Status",
    "Writer",
    "open_backend",
    "open_content_store",
    "validate_labels",
    "validate_namespace",
]


def open_backend(url: str, catalog: Catalog) -> BlobBackend:
    """The backend at ``url``: ``file:///path`` or ``s3://bucket/prefix?endpoint=...``.

    An S3 backend keeps its ingests' state in ``catalog`` (any replica resumes them).
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not parts.path:
            raise InvalidArgumentError(f"content URL {url!r} names no directory")
        return LocalBackend(parts.path)
    if parts.scheme == "s3":
        # Imported here: boto3 costs ~200 ms at start-up, and the embedded default never needs it.
        from cairn.core.content.s3 import S3Backend, S3Location

        return S3Backend(S3Location.parse(url), catalog.ingest_uploads)
    raise InvalidArgumentError(
        f"content URL {url!r}: unsupported scheme {parts.scheme!r} (use file:///path or s3://bucket/prefix)"
    )


def open_content_store(url: str, catalog: Catalog) -> NamespacedStore:
    """Open the store, removing ingest leftovers of a crash."""
    store = NamespacedStore(open_backend(url, catalog), catalog.content, catalog.claims)
    store.recover()
    return store
