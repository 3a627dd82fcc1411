"""COPY and ADD: find the sources, hash them for the cache, and copy them into the root filesystem.

The rules are Docker's classic builder's (``builder/dockerfile/copy.go``):
sources are relative to their root (the context, another stage's filesystem or
an image's) and cannot leave it; wildcards (``*``, ``?``, ``[...]``, never
crossing ``/``) may match files and directories; a directory source copies its
*contents*; several sources need a destination ending in ``/``; a file lands
*in* a destination that ends in ``/`` or is an existing directory, else *at*
it; missing destination directories are created (owned by the ``--chown``
identity, else root); copied entries keep their permission bits and mtimes but
belong to root unless ``--chown``; ``--chmod`` replaces the permission bits.
ADD also extracts local tar archives (plain, gzip, bzip2, xz) keeping their
ownership, and downloads ``http(s)`` URLs.

``shutil.copytree`` follows or copies symlinks in ways that are unsafe when the
destination tree itself may contain symlinks planted by a base image, and it
cannot set ownership, so the copy is written out here with every destination
resolved inside the root (:func:`resolve_in_root`).
"""

from __future__ import annotations

import email.utils
import fnmatch
import hashlib
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn.core.errors import InvalidArgumentError, NotFoundError, UnavailableError
from cairn.images.build.ownership import Ownership
from cairn.images.build.paths import in_root_relative, resolve_in_root
from cairn.images.build.rootfs import unpack_layer

__all__ = [
    "Source",
    "copy_sources",
    "download",
    "find_sources",
    "hash_sources",
    "is_url",
    "parse_chmod",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MAGIC = re.compile(r"[*?\[]")
_CHMOD = re.compile(r"^[0-7]{3,4}$")
_DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Source:
    """One matched source: its root, its path there (``a/b``; ``""`` for the root) and the host path.

    ``remote`` marks a downloaded URL, which ADD never extracts.
    """

    root: Path
    relative: str
    host: Path
    remote: bool = False


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def parse_chmod(text: str) -> int:
    """``--chmod=0755`` as an int; only octal modes are supported."""
    if not _CHMOD.match(text):
        raise InvalidArgumentError(f"invalid --chmod value {text!r}: only octal modes like 0755 are supported")
    return int(text, 8)


def _glob(root: Path, base: str, parts: list[str]) -> list[str]:
    if not parts:
        return [base]
    part, rest = parts[0], parts[1:]
    directory = resolve_in_root(root, base, follow_final=True)
    if not _MAGIC.search(part):
        child = posixpath.join(base, part) if base else part
        return _glob(root, child, rest) if os.path.lexists(resolve_in_root(root, child)) else []
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    pattern = part.replace("[^", "[!")
    out: list[str] = []
    for name in names:
        if fnmatch.fnmatchcase(name, pattern):
            child = posixpath.join(base, name) if base else name
            out.extend(_glob(root, child, rest))
    return out


def find_sources(root: Path, patterns: list[str], instruction: str) -> list[Source]:
    """The sources ``patterns`` name under ``root``, in order.

    Raises :class:`NotFoundError` (``COPY failed: file not found in build
    context: <path>``) for a missing plain path, and when wildcards match nothing.
    """
    found: list[Source] = []
    for pattern in patterns:
        relative = in_root_relative(pattern)
        if _MAGIC.search(relative):
            matches = _glob(root, "", relative.split("/"))
            if not matches:
                raise NotFoundError(f"{instruction} failed: no source files were specified (no match for "
                                    f"{pattern!r} in the build context)")
        else:
            matches = [relative]
        for match in matches:
            host = resolve_in_root(root, match, follow_final=True)
            if not os.path.lexists(host):
                raise NotFoundError(f"{instruction} failed: file not found in build context: {pattern}")
            found.append(Source(root, match, host))
    return found


def _hash_tree(hasher: hashlib._Hash, path: Path, name: str) -> None:
    info = os.lstat(path)
    hasher.update(f"{name}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0".encode())
    if stat.S_ISLNK(info.st_mode):
        hasher.update(os.readlink(path).encode("utf-8", "surrogateescape"))
    elif stat.S_ISREG(info.st_mode):
        hasher.update(str(info.st_size).encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
    elif stat.S_ISDIR(info.st_mode):
        for child in sorted(os.listdir(path)):
            _hash_tree(hasher, path / child, f"{name}/{child}")
    hasher.update(b"\n")


def hash_sources(sources: list[Source]) -> str:
    """A content hash of the sources (names, types, permission bits, bytes, link targets), for the cache."""
    hasher = hashlib.sha256()
    for source in sources:
        _hash_tree(hasher, source.host, source.relative or ".")
    return hasher.hexdigest()


def download(url: str, scratch: Path) -> Source:
    """Fetch ``url`` into ``scratch`` (mtime from Last-Modified); the source is named after the URL's path."""
    name = posixpath.basename(urllib.parse.urlsplit(url).path) or "download"
    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / f"download-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
            modified = response.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        raise NotFoundError(f"ADD failed: {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UnavailableError(f"ADD failed: cannot download {url}: {exc}") from None
    os.chmod(target, 0o600)
    if modified:
        parsed = email.utils.parsedate_to_datetime(modified)
        os.utime(target, (parsed.timestamp(), parsed.timestamp()))
    else:
        now = time.time()
        os.utime(target, (now, now))
    return Source(scratch, name, target, remote=True)


class _Copier:
    def __init__(
        self, rootfs: Path, owner: tuple[int, int] | None, chmod: int | None, ownership: Ownership
    ) -> None:
        self.rootfs = rootfs
        self.owner = owner
        self.chmod = chmod
        self.ownership = ownership

    def ensure_dir(self, path: Path) -> bool:
        """Create ``path`` and missing parents (resolved already); returns whether it was created."""
        if path.is_dir() and not path.is_symlink():
            return False
        missing: list[Path] = []
        probe = path
        while probe != self.rootfs and not os.path.lexists(probe):
            missing.append(probe)
            probe = probe.parent
        if not (probe.is_dir() and not probe.is_symlink()):
            raise InvalidArgumentError(f"cannot copy to {path.relative_to(self.rootfs)}: "
                                       f"{probe.relative_to(self.rootfs)} is not a directory")
        uid, gid = self.owner or (0, 0)
        for directory in reversed(missing):
            os.mkdir(directory, 0o755)
            self.ownership.apply(directory, uid, gid, 0o755)
        return True

    def _replace(self, target: Path, keep_dir: bool) -> None:
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            if keep_dir:
                return
            shutil.rmtree(target)
        else:
            os.unlink(target)
        self.ownership.forget(target)

    def _finish(self, target: Path, info: os.stat_result, mode: int) -> None:
        uid, gid = self.owner or (0, 0)
        keep = None if stat.S_ISLNK(info.st_mode) else (self.chmod if self.chmod is not None else mode)
        self.ownership.apply(target, uid, gid, keep)
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)

    def _mode(self, source: Path, info: os.stat_result) -> int:
        """The source's permission bits (virtual ones when it is in a non-root build's tree)."""
        return self.ownership.resolve(str(source), info.st_uid, info.st_gid, info.st_mode)[2]

    def copy_entry(self, source: Path, target: Path) -> None:
        """Copy ``source`` to ``target`` (whose parent is a real directory); directories recursively."""
        info = os.lstat(source)
        if stat.S_ISDIR(info.st_mode):
            self._replace(target, keep_dir=True)
            if not os.path.lexists(target):
                os.mkdir(target, 0o755)
            self.copy_children(source, target)
            self._finish(target, info, self._mode(source, info))
            return
        self._replace(target, keep_dir=False)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(info.st_mode):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) or stat.S_ISFIFO(info.st_mode):
            try:
                os.mknod(target, info.st_mode, info.st_rdev)
            except PermissionError:
                log.warning("cannot create device node %s without root; skipped", target)
                return
        else:
            return  # sockets are not copied
        self._finish(target, info, self._mode(source, info))

    def copy_children(self, source: Path, target: Path) -> None:
        for name in sorted(os.listdir(source)):
            self.copy_entry(source / name, target / name)


def _is_archive(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def copy_sources(
    sources: list[Source], dest: str, rootfs: Path, *, owner: tuple[int, int] | None, chmod: int | None,
    extract: bool, instruction: str, ownership: Ownership | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Copy ``sources`` to ``dest`` (absolute in the image; a trailing ``/`` means "into") in ``rootfs``."""
    into = dest.endswith("/")
    if len(sources) > 1 and not into:
        raise InvalidArgumentError(f"When using {instruction} with more than one source file, the "
                                   "destination must be a directory and end with a /")
    ownership = ownership if ownership is not None else Ownership()
    copier = _Copier(rootfs, owner, chmod, ownership)
    dest_host = resolve_in_root(rootfs, dest, follow_final=True)
    for source in sources:
        if source.host.is_dir():
            copier.ensure_dir(dest_host)
            copier.copy_children(source.host, dest_host)
        elif extract and not source.remote and _is_archive(source.host):
            copier.ensure_dir(dest_host)
            with tarfile.open(source.host, mode="r:*") as archive:
                unpack_layer(archive, dest_host, f"{instruction} archive {source.relative}",
                             whiteouts=False, owner=owner, ownership=ownership, cancelled=cancelled)
        else:
            if into or (dest_host.is_dir() and not dest_host.is_symlink()):
                copier.ensure_dir(dest_host)
                target = dest_host / posixpath.basename(source.relative or source.host.name)
            else:
                copier.ensure_dir(dest_host.parent)
                target = dest_host
            copier.copy_entry(source.host, target)
