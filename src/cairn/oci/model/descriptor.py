"""OCI content descriptors and platforms.

A :class:`Descriptor` points at content by media type, digest and size. It is
parsed from and serialised to the JSON object form of the image spec; fields the
model does not name are kept in ``extra`` and written back, so a descriptor
survives a round trip through cairn unchanged.

This module is not for fetching what a descriptor points at, nor for checking
that the content exists: it has no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError
from cairn.oci.model.fields import (
    JSONObject,
    annotations_of,
    extra_of,
    invalid,
    object_of,
    str_list_of,
    str_of,
)

__all__ = ["Descriptor", "Platform"]

@dataclass(frozen=True)
class Platform:
    """The platform an index entry's image runs on (image-spec ``platform``)."""

    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    variant: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"architecture", "os", "os.version", "os.features", "variant"})

    @classmethod
    def from_dict(cls, value: object, where: str = "platform") -> Platform:
        """Parse the JSON object form; raises :class:`InvalidArgumentError` naming the field."""
        obj = object_of(value, where)
        return cls(
            architecture=str_of(obj, "architecture", where, required=True) or "",
            os=str_of(obj, "os", where, required=True) or "",
            os_version=str_of(obj, "os.version", where),
            os_features=str_list_of(obj, "os.features", where),
            variant=str_of(obj, "variant", where),
            extra=extra_of(obj, cls._KNOWN),
        )

    def to_dict(self) -> JSONObject:
        """The JSON object form; unknown fields come last, in their received order."""
        out: JSONObject = {"architecture": self.architecture, "os": self.os}
        if self.os_version is not None:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant is not None:
            out["variant"] = self.variant
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Descriptor:
    """A typed pointer to content: media type, digest and size, plus optional metadata.

    ``extra`` keeps fields the model does not name (``data``, vendor fields) so
    :meth:`to_dict` writes them back. Construction validates ``size`` (an int >= 0).
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType"})

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise InvalidArgumentError(f"descriptor {self.digest}: size must be an integer >= 0")
        if not isinstance(self.digest, Digest):
            raise InvalidArgumentError("descriptor: digest must be a Digest")

    @classmethod
    def from_dict(cls, value: object, where: str = "descriptor") -> Descriptor:
        """Parse the JSON object form; raises :class:`InvalidArgumentError` naming the field.

        ``where`` prefixes messages (``layers[2].digest: ...``) so callers can say
        which descriptor of a manifest was wrong.
        """
        obj = object_of(value, where)
        media_type = str_of(obj, "mediaType", where, required=True) or ""
        digest_text = str_of(obj, "digest", where, required=True) or ""
        try:
            digest = Digest.parse(digest_text)
        except InvalidArgumentError as exc:
            raise invalid(f"{where}.digest", exc.message) from exc
        size = obj.get("size")
        if size is None:
            raise invalid(f"{where}.size", "is required")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise invalid(f"{where}.size", "must be an integer >= 0")
        platform = obj.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=str_list_of(obj, "urls", where),
            annotations=annotations_of(obj, "annotations", where),
            platform=None if platform is None else Platform.from_dict(platform, f"{where}.platform"),
            artifact_type=str_of(obj, "artifactType", where),
            extra=extra_of(obj, cls._KNOWN),
        )

    def to_dict(self) -> JSONObject:
        """The JSON object form, fields in image-spec order, unknown fields last."""
        out: JSONObject = {"mediaType": self.media_type}
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        out["digest"] = str(self.digest)
        out["size"] = self.size
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        out.update(self.extra)
        return out
