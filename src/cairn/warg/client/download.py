"""Downloading a released version: find its digest in the verified log, fetch, re-hash, keep.

The digest comes from the package log this client validated, never from the
server's answer, so the only thing a download trusts the registry for is bytes,
and those are hashed as they stream to disk (never held in memory) and refused
on a mismatch. As the reference client (specs/warg.md §8.8 step 7): ask
``v1/content/{digest}`` for sources and take the first that answers 2xx.

A file is written under a temporary name beside its destination and renamed
into place only once verified, so a failed or interrupted download never leaves
a file that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from cairn.core.errors import CairnError, DataLossError, FailedPreconditionError, NotFoundError
from cairn.warg.client.errors import VerificationError
from cairn.warg.client.model import ContentSource
from cairn.warg.client.state import PackageTrack
from cairn.warg.hashes import AnyHash
from cairn.warg.semver import Version
from cairn.warg.validation import Release

__all__ = ["DownloadApi", "Downloaded", "fetch_content", "find_release", "save_content"]

CHUNK_SIZE = 1 << 20


class DownloadApi(Protocol):
    """The calls a download needs (``WargApi`` has them)."""

    registry: str

    def content_sources(self, digest: str) -> list[ContentSource]: ...

    def open_source(self, source: ContentSource, what: str) -> urllib3.BaseHTTPResponse: ...


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified download: which release, its digest and size, and where it went (None: a stream)."""

    name: str
    version: str
    digest: str
    size: int
    path: Path | None


def find_release(track: PackageTrack, version: str, *, allow_yanked: bool = False) -> Release:
    """The verified release ``version`` of the package; NotFoundError, or FailedPrecondition if yanked."""
    text = str(Version.parse(version))
    release = track.state.releases.get(text)
    if release is None:
        known = ", ".join(sorted(track.state.releases, key=lambda v: Version.parse(v).sort_key())) or "none"
        raise NotFoundError(f"package {track.name} has no release {text} (released: {known})")
    if release.yanked and not allow_yanked:
        raise FailedPreconditionError(
            f"version {text} of {track.name} was yanked by {release.yanked_by}; --allow-yanked downloads it anyway"
        )
    if release.content is None:
        raise NotFoundError(f"version {text} of {track.name} was yanked and its content digest is not known")
    return release


def fetch_content(
    api: DownloadApi, digest: AnyHash, out: BinaryIO, progress: Callable[[int], None] | None = None
) -> int:
    """Write the content ``digest`` to ``out`` from the first source that answers; returns its size.

    VerificationError if the bytes do not hash to ``digest``: then ``out``
    holds them anyway, and the caller must discard it (:func:`save_content` does).
    """
    what = f"download {digest}"
    sources = api.content_sources(str(digest))
    if not sources:
        raise NotFoundError(f"{what}: the registry offers no http source for it")
    failures: list[str] = []
    for source in sources:
        try:
            response = api.open_source(source, what)
        except CairnError as exc:
            failures.append(exc.message)
            continue
        return _stream(response, digest, out, source, what, progress)
    raise NotFoundError(f"{what}: no source answered ({'; '.join(failures)})")


def _stream(
    response: urllib3.BaseHTTPResponse,
    digest: AnyHash,
    out: BinaryIO,
    source: ContentSource,
    what: str,
    progress: Callable[[int], None] | None,
) -> int:
    hasher = hashlib.sha256()
    size = 0
    try:
        while True:
            chunk = response.read(CHUNK_SIZE)
            if not chunk:
                break
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
            if progress is not None:
                progress(size)
    except Urllib3Error as exc:
        raise DataLossError(
            f"{what}: the transfer from {source.url} broke off after {size} bytes ({exc})"
        ) from None
    finally:
        response.release_conn()
    got = hasher.digest()
    if got != digest.digest:
        raise VerificationError(
            f"{what}: the bytes from {source.url} hash to sha256:{got.hex()}, not to the digest the "
            f"package log records; refused"
        )
    if source.size is not None and source.size != size:
        raise VerificationError(f"{what}: {source.url} announced {source.size} bytes but sent {size}")
    return size


def save_content(
    api: DownloadApi, digest: AnyHash, path: Path, progress: Callable[[int], None] | None = None
) -> int:
    """Download ``digest`` into ``path``, which appears only once the bytes are verified."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        # os.open rather than mkstemp: the file gets the usual 0666 & ~umask, not 0600
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise CairnError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            size = fetch_content(api, digest, out, progress)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise CairnError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return size
