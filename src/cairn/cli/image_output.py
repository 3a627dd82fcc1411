"""What ``cairn image`` commands print: Docker's table and units, and the JSON shapes.

Human output follows the docker CLI so that eyes (and habits) trained on
``docker images`` read it at once: rows per ``repository:tag`` (``<none>`` for
untagged), 12-hex image IDs, ``2 weeks ago``, decimal sizes like ``7.05MB``
(``go-units``' ``HumanSizeWithPrecision``). The JSON shapes are the proto's
messages with the proto's field names, every field present, integers as
numbers (not protobuf-JSON's int64 strings): an image summary is
``{id, repo_tags, repo_digests, created, size, virtual_size, containers, labels}``.

This module formats only; it does not talk to servers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.cli.output import Column
from cairn.core.errors import InvalidArgumentError
from cairn.images.progress import human_size

__all__ = [
    "NONE",
    "PUSH_RESULT",
    "ImageRow",
    "build_image_id",
    "created_since",
    "docker_size",
    "encode_filters",
    "human_duration",
    "image_rows",
    "info_record",
    "ls_columns",
    "short_id",
    "split_target",
    "summary_record",
]

NONE: Final = "<none>"
#: The last line of a successful push (spec §5.2).
PUSH_RESULT: Final = re.compile(r"(?P<tag>\S+): digest: (?P<digest>\S+) size: (?P<size>\d+)")


# -- units ------------------------------------------------------------------------------
def docker_size(size: int, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision``: ``7.05MB`` (precision 3, ``docker images``), ``1.234MB`` (4)."""
    return human_size(size, precision)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: ``Less than a second``, ``About a minute``, ``3 weeks``, ``2 years``."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go: d.Round(time.Hour).Hours()
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def created_since(created: int, now: float | None = None) -> str:
    """``docker images``' CREATED column for Unix seconds ``created``: ``<duration> ago``."""
    return human_duration((time.time() if now is None else now) - created) + " ago"


def short_id(image_id: str, no_trunc: bool = False) -> str:
    """docker's ``TruncateID``: the hex after ``sha256:``, 12 characters; the full ID with ``no_trunc``."""
    if no_trunc:
        return image_id
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


# -- ls ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImageRow:
    """One row of ``cairn image ls``: an image under one repository and tag (and digest)."""

    repository: str
    tag: str
    digest: str
    image: pb.ImageSummary


def _split_tagged(text: str) -> tuple[str, str]:
    name, colon, tag = text.rpartition(":")
    if not colon or "/" in tag:
        return text, NONE
    return name, tag


def image_rows(images: list[pb.ImageSummary], digests: bool) -> list[ImageRow]:
    """docker CLI's ``imageFormatTaggedAndDigest``: a row per tag (per digest too with ``digests``).

    Digests of a repository that also has tags do not get rows of their own;
    a repository with only digests gets one ``<none>`` row (one per digest
    with ``digests``); an image with neither is ``<none> <none>``. Order: the
    server's for images, first seen for repositories.
    """
    rows: list[ImageRow] = []
    for image in images:
        tags: dict[str, list[str]] = {}
        by_repo: dict[str, list[str]] = {}
        for text in image.repo_tags:
            repo, tag = _split_tagged(text)
            tags.setdefault(repo, []).append(tag)
        for text in image.repo_digests:
            repo, at, digest = text.partition("@")
            if at:
                by_repo.setdefault(repo, []).append(digest)
        if not tags and not by_repo:
            rows.append(ImageRow(NONE, NONE, NONE, image))
            continue
        for repo, repo_tags in tags.items():
            repo_digests = by_repo.pop(repo, [])  # no rows of their own
            if not digests:
                repo_digests = []
            for tag in repo_tags:
                rows.extend(ImageRow(repo, tag, d, image) for d in repo_digests or [NONE])
        for repo, repo_digests in by_repo.items():
            rows.extend(ImageRow(repo, NONE, d, image) for d in (repo_digests if digests else [""]))
    return rows


def ls_columns(digests: bool, no_trunc: bool) -> list[Column[ImageRow]]:
    """``docker images``' columns: REPOSITORY TAG [DIGEST] IMAGE ID CREATED SIZE."""
    columns: list[Column[ImageRow]] = [
        Column("REPOSITORY", lambda r: r.repository),
        Column("TAG", lambda r: r.tag),
    ]
    if digests:
        columns.append(Column("DIGEST", lambda r: r.digest))
    columns += [
        Column("IMAGE ID", lambda r: short_id(r.image.id, no_trunc)),
        Column("CREATED", lambda r: created_since(r.image.created)),
        Column("SIZE", lambda r: docker_size(r.image.size)),
    ]
    return columns


def encode_filters(filters: Iterable[str]) -> str:
    """``key=value`` items as the JSON ``map[string][]string`` List takes ("" for none).

    Values of one key keep their order; InvalidArgumentError for an item without ``=``.
    """
    grouped: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"{item!r} is not KEY=VALUE")
        grouped.setdefault(key, []).append(value)
    return json.dumps(grouped, separators=(",", ":")) if grouped else ""


# -- records -------------------------------------------------------------------------------
def summary_record(image: pb.ImageSummary) -> dict[str, Any]:
    return {
        "id": image.id,
        "repo_tags": list(image.repo_tags),
        "repo_digests": list(image.repo_digests),
        "created": int(image.created),
        "size": int(image.size),
        "virtual_size": int(image.virtual_size),
        "containers": int(image.containers),
        "labels": dict(sorted(image.labels.items())),
    }


def _config_record(config: pb.ImageConfig) -> dict[str, Any]:
    return {
        "hostname": config.hostname,
        "domainname": config.domainname,
        "user": config.user,
        "env": list(config.env),
        "cmd": list(config.cmd),
        "entrypoint": list(config.entrypoint),
        "working_dir": config.working_dir,
        "labels": dict(sorted(config.labels.items())),
        "exposed_ports": {port: {} for port in sorted(config.exposed_ports)},
        "volumes": {volume: {} for volume in sorted(config.volumes)},
    }


def info_record(info: pb.ImageInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "repo_tags": list(info.repo_tags),
        "repo_digests": list(info.repo_digests),
        "parent": info.parent,
        "comment": info.comment,
        "created": info.created,
        "author": info.author,
        "architecture": info.architecture,
        "os": info.os,
        "os_version": info.os_version,
        "size": int(info.size),
        "virtual_size": int(info.virtual_size),
        "config": _config_record(info.config) if info.HasField("config") else None,
        "root_fs": (
            {"type": info.root_fs.type, "layers": list(info.root_fs.layers)}
            if info.HasField("root_fs")
            else None
        ),
    }


def build_image_id(aux: str) -> str:
    """The image ID of a build's ``aux`` (``sha256:...``; Docker's ``{"ID": ...}`` is read too), or ""."""
    if aux.startswith("{"):
        try:
            return str(json.loads(aux).get("ID", ""))
        except (ValueError, AttributeError):
            return ""
    return aux


# -- tag -------------------------------------------------------------------------------------
def split_target(target: str) -> tuple[str, str]:
    """``repo[:tag]`` as TagImageRequest's ``(repo, tag)``; tag "" when absent (the server reads latest).

    A digest stays in ``repo`` (``repo@sha256:...``) for the server to refuse
    with its own message.
    """
    name, at, digest = target.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon] + at + digest, name[colon + 1 :]
    return target, ""
