"""What a local image is: its record in the store, its layers, and what reading its config yields.

An image is a manifest, a config and layers, all content-store blobs; its id is
the config digest, as Docker's. The records here are plain values the store
hands out; the config is kept as the bytes that were pulled or built and read
into :class:`ImageConfig` only where a caller needs fields of it (inspect,
list, build).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, InvalidArgumentError
from cairn.oci.model import Reference

__all__ = [
    "ImageConfig",
    "ImageRecord",
    "LayerRecord",
    "NewImage",
    "chain_ids",
    "created_nanos",
    "created_seconds",
]


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """One layer: the compressed blob the manifest names and the uncompressed tar's identity."""

    digest: Digest
    media_type: str
    size: int
    diff_id: Digest
    uncompressed_size: int


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """A local image as the store knows it (no names: those are references)."""

    id: Digest
    manifest_digest: Digest
    manifest_media_type: str
    config_media_type: str
    created: str
    size: int
    parent: Digest | None
    layers: tuple[LayerRecord, ...]

    def short_id(self) -> str:
        """The first 12 hex characters of the id, as Docker prints it."""
        return self.id.hex[:12]

    def created_seconds(self) -> int:
        return created_seconds(self.created)


@dataclass(frozen=True, slots=True)
class NewImage:
    """What a pull or a build hands the store to record; every blob is already committed."""

    manifest: bytes
    manifest_media_type: str
    config: bytes
    config_media_type: str
    layers: Sequence[LayerRecord]
    index: bytes | None = None
    references: Sequence[Reference] = ()
    parent: Digest | None = None


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """The layer chain ids: ``chain(L1) = diff(L1)``, ``chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))``."""
    out: list[Digest] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            text = f"{out[-1]} {diff_id}".encode()
            out.append(Digest("sha256", hashlib.sha256(text).hexdigest()))
    return out


def created_nanos(created: str) -> int:
    """Unix nanoseconds of an RFC 3339 ``created`` (0 when absent or unreadable)."""
    if not created:
        return 0
    text = created.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    main, dot, rest = text.partition(".")
    fraction = 0
    if dot:  # Python's parser takes at most 6 fraction digits: keep all 9 ourselves
        n = len(rest) - len(rest.lstrip("0123456789"))
        fraction = int((rest[:n] + "000000000")[:9] or 0)
        text = main + rest[n:]
    try:
        return int(datetime.fromisoformat(text).timestamp()) * 1_000_000_000 + fraction
    except ValueError:
        return 0


def created_seconds(created: str) -> int:
    """Unix seconds of an RFC 3339 ``created`` (0 when absent or unreadable)."""
    return created_nanos(created) // 1_000_000_000


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _string_map(value: object) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {}


def _keys(value: object) -> tuple[str, ...]:
    return tuple(str(k) for k in value) if isinstance(value, dict) else ()


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The fields of an image config (OCI or Docker) that the image service reports.

    ``raw`` keeps the whole parsed document; unknown fields are not lost.
    """

    raw: Mapping[str, Any]
    architecture: str = ""
    os: str = ""
    os_version: str = ""
    variant: str = ""
    created: str = ""
    author: str = ""
    comment: str = ""
    hostname: str = ""
    domainname: str = ""
    user: str = ""
    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    diff_ids: tuple[Digest, ...] = ()

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "image config") -> ImageConfig:
        """Parse a stored config; a stored blob that is not a config JSON object is DataLossError."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise DataLossError(f"{what}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise DataLossError(f"{what}: not a JSON object")
        inner: dict[str, Any] = doc["config"] if isinstance(doc.get("config"), dict) else {}
        rootfs: dict[str, Any] = doc["rootfs"] if isinstance(doc.get("rootfs"), dict) else {}
        diff_ids: list[Digest] = []
        for text in _strings(rootfs.get("diff_ids")):
            try:
                diff_ids.append(Digest.parse(text))
            except InvalidArgumentError:
                raise DataLossError(f"{what}: rootfs.diff_ids holds {text!r}, not a digest") from None

        def text_of(obj: Mapping[str, Any], key: str) -> str:
            value = obj.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            raw=doc,
            architecture=text_of(doc, "architecture"),
            os=text_of(doc, "os"),
            os_version=text_of(doc, "os.version"),
            variant=text_of(doc, "variant"),
            created=text_of(doc, "created"),
            author=text_of(doc, "author"),
            comment=text_of(doc, "comment"),
            hostname=text_of(inner, "Hostname"),
            domainname=text_of(inner, "Domainname"),
            user=text_of(inner, "User"),
            env=_strings(inner.get("Env")),
            cmd=_strings(inner.get("Cmd")),
            entrypoint=_strings(inner.get("Entrypoint")),
            working_dir=text_of(inner, "WorkingDir"),
            labels=_string_map(inner.get("Labels")),
            exposed_ports=_keys(inner.get("ExposedPorts")),
            volumes=_keys(inner.get("Volumes")),
            diff_ids=tuple(diff_ids),
        )
