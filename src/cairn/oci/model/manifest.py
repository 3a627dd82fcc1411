"""OCI image manifests and indexes (and their Docker schema 2 twins), parsed from exact bytes.

:func:`parse_manifest` turns received bytes into an :class:`ImageManifest` or an
:class:`ImageIndex` that keeps those bytes: :meth:`~ImageManifest.to_bytes`
returns them unchanged and :attr:`~ImageManifest.digest` is their digest, never
the digest of a re-encoding. Artifact manifests are image manifests with an
``artifactType`` and/or a ``subject``.

New manifests are built with ``from_parts``, which encodes them canonically:
compact JSON (``separators=(",", ":")``), UTF-8 without ASCII escaping, no
trailing newline, fields in image-spec order (``schemaVersion``, ``mediaType``,
``artifactType``, then the body, ``subject``, ``annotations``), unknown fields last
in their received order. Keys are not sorted.

This module is not for checking that referenced blobs exist (the registry does
that), nor for content negotiation; Docker schema 1 is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError
from cairn.oci.model import mediatypes
from cairn.oci.model.descriptor import Descriptor
from cairn.oci.model.fields import JSONObject, annotations_of, extra_of, invalid, str_of

__all__ = ["ImageIndex", "ImageManifest", "parse_manifest"]

_MANIFEST_KNOWN = frozenset(
    {"schemaVersion", "mediaType", "artifactType", "config", "layers", "subject", "annotations"}
)
_INDEX_KNOWN = frozenset(
    {"schemaVersion", "mediaType", "artifactType", "manifests", "subject", "annotations"}
)
# A JSON escape of a UTF-16 surrogate: in ASCII text, only where one occurs can a string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encode(obj: JSONObject) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _descriptors(obj: JSONObject, key: str, where: str, *, required: bool) -> tuple[Descriptor, ...]:
    value = obj.get(key)
    if value is None:
        if required:
            raise invalid(f"{where}.{key}", "is required")
        return ()
    if not isinstance(value, list):
        raise invalid(f"{where}.{key}", "must be a list of descriptors")
    return tuple(Descriptor.from_dict(item, f"{where}.{key}[{i}]") for i, item in enumerate(value))


def _subject(obj: JSONObject, where: str) -> Descriptor | None:
    value = obj.get("subject")
    return None if value is None else Descriptor.from_dict(value, f"{where}.subject")


def _document(
    media_type: str | None,
    artifact_type: str | None,
    body: JSONObject,
    subject: Descriptor | None,
    annotations: Mapping[str, str],
    extra: Mapping[str, Any],
) -> JSONObject:
    """A manifest or index as JSON, fields in image-spec order, unknown fields last."""
    out: JSONObject = {"schemaVersion": 2}
    if media_type is not None:
        out["mediaType"] = media_type
    if artifact_type is not None:
        out["artifactType"] = artifact_type
    out.update(body)
    if subject is not None:
        out["subject"] = subject.to_dict()
    if annotations:
        out["annotations"] = dict(annotations)
    out.update(extra)
    return out


@dataclass(frozen=True)
class _Base:
    """What manifests and indexes share: the received bytes and their digest."""

    raw: bytes = field(repr=False)

    @cached_property
    def digest(self) -> Digest:
        """sha256 of :attr:`raw`, the bytes as received (or as encoded by ``from_parts``)."""
        return Digest.of(self.raw)

    def digest_with(self, algorithm: str) -> Digest:
        """The digest of :attr:`raw` with ``algorithm``; InvalidArgumentError if unsupported."""
        return Digest.of(self.raw, algorithm)

    def to_bytes(self) -> bytes:
        """The exact bytes this value was parsed from (or encoded to)."""
        return self.raw

    @property
    def size(self) -> int:
        return len(self.raw)

    def to_dict(self) -> JSONObject:
        raise NotImplementedError

    def encode(self) -> bytes:
        """A canonical re-encoding of the model (not :attr:`raw`; its digest may differ)."""
        return _encode(self.to_dict())


@dataclass(frozen=True)
class ImageManifest(_Base):
    """An OCI image manifest, Docker schema 2 manifest or artifact manifest."""

    media_type: str | None = None
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_parts(
        cls,
        config: Descriptor,
        layers: Sequence[Descriptor] = (),
        *,
        media_type: str = mediatypes.OCI_MANIFEST,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageManifest:
        """Build a new manifest; its bytes are the canonical encoding (see the module doc)."""
        args = (media_type, config, tuple(layers), subject, artifact_type, dict(annotations or {}))
        return cls(_encode(cls(b"", *args).to_dict()), *args)

    def to_dict(self) -> JSONObject:
        """The JSON object form of the model, fields in image-spec order."""
        body: JSONObject = {} if self.config is None else {"config": self.config.to_dict()}
        body["layers"] = [layer.to_dict() for layer in self.layers]
        return _document(self.media_type, self.artifact_type, body, self.subject, self.annotations, self.extra)

    def references(self) -> tuple[Descriptor, ...]:
        """The blobs this manifest needs: config then layers (``subject`` is not included)."""
        return ((self.config,) if self.config is not None else ()) + self.layers

    def effective_artifact_type(self) -> str | None:
        """``artifactType``, else the config media type: what the referrers API reports."""
        if self.artifact_type is not None:
            return self.artifact_type
        return self.config.media_type if self.config is not None else None


@dataclass(frozen=True)
class ImageIndex(_Base):
    """An OCI image index or Docker manifest list."""

    media_type: str | None = None
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_parts(
        cls,
        manifests: Sequence[Descriptor],
        *,
        media_type: str = mediatypes.OCI_INDEX,
        subject: Descriptor | None = None,
        artifact_type: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> ImageIndex:
        """Build a new index; its bytes are the canonical encoding (see the module doc)."""
        args = (media_type, tuple(manifests), subject, artifact_type, dict(annotations or {}))
        return cls(_encode(cls(b"", *args).to_dict()), *args)

    def to_dict(self) -> JSONObject:
        """The JSON object form of the model, fields in image-spec order."""
        body: JSONObject = {"manifests": [child.to_dict() for child in self.manifests]}
        return _document(self.media_type, self.artifact_type, body, self.subject, self.annotations, self.extra)

    def references(self) -> tuple[Descriptor, ...]:
        """The child manifests and indexes this index lists (``subject`` is not included)."""
        return self.manifests


def parse_manifest(data: bytes, content_type: str | None = None) -> ImageManifest | ImageIndex:
    """Parse received manifest bytes, keeping them; raises only :class:`InvalidArgumentError`.

    The kind comes from the ``mediaType`` field, else from ``content_type`` (its
    parameters ignored), else from the shape (``manifests`` means an index). When
    both name a type they must agree; Docker schema 2 bodies must carry
    ``mediaType``. ``schemaVersion`` must be 2; descriptors must be valid. Pure
    computation; does not block beyond parsing.
    """
    raw = bytes(data)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"manifest: not valid JSON ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise InvalidArgumentError("manifest: must be a JSON object")
    # json.loads decodes bytes with "surrogatepass", so encoded surrogates get in as well as escaped ones.
    if (not raw.isascii() or _SURROGATE_ESCAPE.search(raw)) and _has_lone_surrogate(obj):
        # Not text: no catalog (SQLite, PostgreSQL) can store it, and no other registry would
        # read the same string (Go's decoder turns it into U+FFFD).
        raise InvalidArgumentError("manifest: a string holds a lone UTF-16 surrogate escape")
    where = "manifest"
    version = obj.get("schemaVersion")
    if isinstance(version, bool) or version != 2 or not isinstance(version, int):
        raise invalid(f"{where}.schemaVersion", f"must be 2, got {version!r}")
    field_type = str_of(obj, "mediaType", where)
    header_type = mediatypes.base(content_type) if content_type else None
    if field_type is not None and header_type is not None and field_type != header_type:
        raise invalid(f"{where}.mediaType", f"{field_type!r} differs from Content-Type {header_type!r}")
    if header_type is not None and mediatypes.is_docker(header_type) and field_type is None:
        raise invalid(f"{where}.mediaType", f"is required for {header_type}")
    kind = field_type or header_type
    if kind is None:
        kind = mediatypes.OCI_INDEX if "manifests" in obj else mediatypes.OCI_MANIFEST
    subject = _subject(obj, where)
    artifact_type = str_of(obj, "artifactType", where)
    annotations = annotations_of(obj, "annotations", where)
    if mediatypes.is_manifest(kind):
        config = obj.get("config")
        if config is None:
            raise invalid(f"{where}.config", "is required")
        return ImageManifest(
            raw,
            field_type,
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
            config=Descriptor.from_dict(config, f"{where}.config"),
            layers=_descriptors(obj, "layers", where, required=False),
            extra=extra_of(obj, _MANIFEST_KNOWN),
        )
    if mediatypes.is_index(kind):
        return ImageIndex(
            raw,
            field_type,
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
            manifests=_descriptors(obj, "manifests", where, required=True),
            extra=extra_of(obj, _INDEX_KNOWN),
        )
    raise invalid(f"{where}.mediaType", f"unsupported manifest media type {kind!r}")


def _has_lone_surrogate(obj: JSONObject) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
