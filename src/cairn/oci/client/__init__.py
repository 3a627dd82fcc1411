"""A client of OCI Distribution registries: pull from and push to any ``/v2/`` registry, with auth.

:class:`RegistryClient` speaks to one registry (cairn's own ``/v2/`` face,
distribution, or a public registry) in blocking, typed calls: manifests come
back as :class:`FetchedManifest` with verified digests, blobs as a streaming
:class:`BlobReader` that checks the digest at the end, and failures as cairn's
error kinds (a 404 is a NotFoundError that names the registry's code).
The image service's pull and push and the ``cairn`` registry commands build on it.

This package is not for serving the API (that is the HTTP face) and has no
notion of images beyond single manifests and blobs.
"""

from __future__ import annotations

from cairn.oci.client.auth import Challenge, parse_challenges
from cairn.oci.client.blobs import BlobReader
from cairn.oci.client.links import next_link, parse_links
from cairn.oci.client.registry import (
    ALL_MANIFEST_TYPES,
    MAX_MANIFEST_BYTES,
    FetchedManifest,
    RegistryClient,
)
from cairn.oci.client.transport import (
    ByteSource,
    UnreachableError,
    base_url,
    is_loopback,
)

__all__ = [
    "ALL_MANIFEST_TYPES",
    "MAX_MANIFEST_BYTES",
    "BlobReader",
    "ByteSource",
    "Challenge",
    "FetchedManifest",
    "RegistryClient",
    "UnreachableError",
    "base_url",
    "is_loopback",
    "next_link",
    "parse_challenges",
    "parse_links",
]
