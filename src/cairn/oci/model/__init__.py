"""The OCI image/distribution model: plain typed classes with explicit parse and serialise.

Parsers raise only :class:`~cairn.core.errors.InvalidArgumentError`; nothing here
does I/O. Manifests keep the bytes they were parsed from, so their digest is the
digest of what was received.
"""

from __future__ import annotations

from cairn.oci.model import mediatypes
from cairn.oci.model.descriptor import Descriptor, Platform
from cairn.oci.model.manifest import ImageIndex, ImageManifest, parse_manifest
from cairn.oci.model.reference import Reference, validate_repository, validate_tag

__all__ = [
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "Reference",
    "mediatypes",
    "parse_manifest",
    "validate_repository",
    "validate_tag",
]
