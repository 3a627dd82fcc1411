"""The OCI domain: image and artifact model now, registry and client later.

``cairn.oci.model`` holds the typed, I/O-free protocol model (descriptors,
manifests, indexes, media types, references). The registry over the core and the
``/v2/`` face's helpers join this package later; nothing here speaks HTTP.
"""

from __future__ import annotations

from cairn.oci.model import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    Reference,
    parse_manifest,
    validate_repository,
    validate_tag,
)

__all__ = [
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "Reference",
    "parse_manifest",
    "validate_repository",
    "validate_tag",
]
