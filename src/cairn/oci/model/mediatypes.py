"""Media type constants of the OCI image spec and Docker image manifest v2 schema 2.

This module names the types cairn understands and classifies manifest types; it
is not for content negotiation (Accept parsing belongs to the HTTP face) and it
does not validate media type syntax.
"""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1_MANIFEST",
    "DOCKER_SCHEMA1_SIGNED_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE",
    "OCI_LAYER_NONDISTRIBUTABLE_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "base",
    "is_docker",
    "is_index",
    "is_manifest",
    "is_manifest_or_index",
]

# OCI image spec v1.1
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
#: The empty descriptor's type: the two bytes ``{}``, used as an artifact's config.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# Docker image manifest v2, schema 2
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# Docker schema 1: named so faces can recognise and refuse it; cairn does not parse it.
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Media types parsed as :class:`~cairn.oci.model.manifest.ImageManifest`.
MANIFEST_TYPES: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Media types parsed as :class:`~cairn.oci.model.manifest.ImageIndex`.
INDEX_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})


def base(media_type: str) -> str:
    """``media_type`` without parameters or surrounding space, lowercased (for comparison)."""
    return media_type.split(";", 1)[0].strip().lower()


def is_manifest(media_type: str) -> bool:
    """True for an OCI image manifest or Docker schema 2 manifest type (parameters ignored)."""
    return base(media_type) in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    """True for an OCI image index or Docker manifest list type (parameters ignored)."""
    return base(media_type) in INDEX_TYPES


def is_manifest_or_index(media_type: str) -> bool:
    """True for any type :func:`~cairn.oci.model.manifest.parse_manifest` accepts."""
    return is_manifest(media_type) or is_index(media_type)


def is_docker(media_type: str) -> bool:
    """True for the Docker schema 2 manifest and manifest list types."""
    return base(media_type) in {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}
