"""Blobs of a repository: which digests a repository names, and reading them.

A blob is readable through ``/v2/<name>/blobs/<digest>`` only when ``<name>``
links it (distribution-spec 4.2: a blob in the store but not linked to the
repository is 404), even though the bytes are stored once for every repository
and every face.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cairn.core.catalog.database import Transaction
from cairn.core.catalog.registry import RegistryCatalog
from cairn.core.content.store import ContentStore, ReaderAt
from cairn.core.digest import Digest
from cairn.core.errors import NotFoundError
from cairn.oci.errors import BlobUnknownError

__all__ = ["Blobs"]


class Blobs:
    def __init__(self, store: ContentStore, catalog: RegistryCatalog, namespace: str) -> None:
        self._store = store
        self._catalog = catalog
        self._namespace = namespace

    def size(self, repository: str, digest: Digest) -> int:
        """The size of a blob the repository links; BlobUnknownError otherwise."""
        size = self._catalog.blob_size(repository, str(digest))
        if size is None:
            raise self._unknown(repository, digest)
        return size

    def open(self, repository: str, digest: Digest) -> ReaderAt:
        """A reader of a linked blob (its ``path`` allows sendfile on local disk)."""
        self.size(repository, digest)
        try:
            return self._store.reader_at(self._namespace, digest)
        except NotFoundError:
            raise self._unknown(repository, digest) from None

    def delete(self, repository: str, digest: Digest) -> None:
        """Unlink the blob from the repository; the bytes stay while anything else names them."""
        if not self._catalog.unlink_blob(repository, str(digest)):
            raise self._unknown(repository, digest)

    def link(self, repository: str, digest: Digest, size: int) -> None:
        self._catalog.link_blob(repository, str(digest), size, time.time_ns())

    def linker(self, repository: str, digest: Digest, size: int) -> Callable[[Transaction], None]:
        """A step linking the blob, for the content store to run in the transaction that publishes it."""
        now = time.time_ns()
        return lambda tx: RegistryCatalog.link_blob_in(tx, repository, str(digest), size, now)

    def mount(self, repository: str, digest: Digest, source: str | None) -> bool:
        """Link a blob into ``repository`` without sending bytes; False if it cannot be found.

        With ``source`` the blob must be linked there (the caller checked it may
        pull from it). Without (an anonymous mount) any blob of the registry's
        content namespace will do, including ones ingested through the content API.
        """
        if source is not None:
            size = self._catalog.blob_size(source, str(digest))
        else:
            try:
                size = self._store.info(self._namespace, digest).size
            except NotFoundError:
                size = None
        if size is None:
            return False
        self.link(repository, digest, size)
        return True

    @staticmethod
    def _unknown(repository: str, digest: Digest) -> BlobUnknownError:
        return BlobUnknownError(
            f"blob {digest} is not known to repository {repository}", {"Digest": str(digest)}
        )
