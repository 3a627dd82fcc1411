"""The OCI registry over cairn's core: repositories, blobs, uploads, manifests, tags, referrers.

Everything here blocks (disk, catalog) and speaks the domain's language; the
``/v2/`` face (:mod:`cairn.api.http.registry`) runs it off the event loop and
turns its errors (:mod:`cairn.oci.errors`) into OCI error JSON. Bytes live in the
content store under one containerd namespace (``registry`` by default), so a
layer pushed with skopeo is the blob ``ctr -n registry content get`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.catalog.registry import RegistryCatalog
from cairn.core.content.store import ContentStore
from cairn.oci.errors import NameUnknownError
from cairn.oci.registry.blobs import Blobs
from cairn.oci.registry.manifests import Artifact, Manifests, PushedManifest, StoredManifest
from cairn.oci.registry.names import check_repository, check_tag, is_digest, parse_digest
from cairn.oci.registry.uploads import OpenUpload, Uploads

__all__ = [
    "Artifact",
    "Blobs",
    "Manifests",
    "OpenUpload",
    "Page",
    "PushedManifest",
    "Registry",
    "StoredManifest",
    "Uploads",
    "check_repository",
    "check_tag",
    "is_digest",
    "parse_digest",
]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``more`` says whether names follow the last one."""

    items: list[str]
    more: bool


class Registry:
    """The registry's parts over one content store, one catalog and one namespace."""

    def __init__(
        self,
        store: ContentStore,
        catalog: RegistryCatalog,
        *,
        namespace: str = "registry",
        manifest_max_bytes: int = 4 << 20,
    ) -> None:
        self.namespace = namespace
        self._catalog = catalog
        self.blobs = Blobs(store, catalog, namespace)
        self.uploads = Uploads(store, namespace, self.blobs)
        self.manifests = Manifests(store, catalog, namespace, manifest_max_bytes)

    def repository_exists(self, name: str) -> bool:
        return self._catalog.repository_exists(name)

    def repositories(self, last: str | None, limit: int) -> Page:
        """Repository names after ``last``, in byte order; ``limit`` 0 gives an empty page."""
        if limit <= 0:
            return Page([], False)
        names = self._catalog.list_repositories(last, limit + 1)
        return Page(names[:limit], len(names) > limit)

    def tags(self, repository: str, last: str | None, limit: int) -> Page:
        """Tags after ``last`` in byte order; NameUnknownError for an unknown repository."""
        if not self._catalog.repository_exists(repository):
            raise NameUnknownError(f"repository {repository} is not known", {"Name": repository})
        if limit <= 0:
            return Page([], False)
        tags = self._catalog.list_tags(repository, last, limit + 1)
        return Page(tags[:limit], len(tags) > limit)
