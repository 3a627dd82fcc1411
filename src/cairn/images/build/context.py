"""The build context: receive the client's tar stream into a private directory, safely.

The context arrives as chunks of a tar archive, plain or gzip, bzip2 or xz
compressed (``tarfile``'s stream mode detects which by magic bytes). It is
written entry by entry, never held in memory. The archive comes from a client
and the builder runs as root, so extraction is stricter than ``tarfile``'s
``data`` filter in the ways that matter here: absolute names and ``..`` are
refused, nothing is ever written through a symlink (a member under a symlinked
directory is refused), hard links must point at regular files already in the
context, and device nodes and FIFOs are refused. Ownership is not restored
(COPY sets its own); modes (through :class:`Ownership`) and modification
times are.

After extraction, :func:`apply_dockerignore` removes what ``.dockerignore``
excludes, the way Docker's client leaves it out of the tar.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cairn.core.errors import CancelledError, InvalidArgumentError
from cairn.images.build.ignore import IgnoreMatcher
from cairn.images.build.ownership import Ownership
from cairn.images.build.paths import clean_member_name, remove_path

__all__ = ["ChunkReader", "apply_dockerignore", "receive_context"]

log = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20
_NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)
_PATH_MAX = 4096  # bytes in a whole path (Linux PATH_MAX)
# tarfile reads a PAX or GNU long-name header into memory whole, at whatever size the archive
# claims; no name or link the host accepts needs more than a few KiB.
_MAX_EXTENDED_HEADER = 1 << 20
_EXTENDED_HEADER_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
     tarfile.GNUTYPE_LONGLINK}
)


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses extended headers over :data:`_MAX_EXTENDED_HEADER` before reading them."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _BoundedTarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _EXTENDED_HEADER_TYPES and info.size > _MAX_EXTENDED_HEADER:
            raise tarfile.ReadError(
                f"an extended header of {info.size} bytes (over {_MAX_EXTENDED_HEADER})"
            )
        return info


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterable of byte chunks (the gRPC BuildContext messages)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _refuse(name: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"build context: {name!r}: {reason}")


def _check_host_name(root: Path, relative: str, name: str, what: str) -> None:
    """Refuse what the host cannot name: NUL bytes, unencodable text, over-long components or paths.

    The kernel would refuse these too, but with an OSError or ValueError in the middle of
    extraction; a client's archive gets a clear InvalidArgumentError instead.
    """
    try:
        encoded = os.fsencode(relative)
    except UnicodeError:
        raise _refuse(name, f"{what} is not valid text") from None
    if b"\0" in encoded:
        raise _refuse(name, f"{what} contains a NUL byte")
    if any(len(part) > _NAME_MAX for part in encoded.split(b"/")):
        raise _refuse(name, f"{what} has a component longer than {_NAME_MAX} bytes")
    if len(os.fsencode(root)) + 1 + len(encoded) >= _PATH_MAX:
        raise _refuse(name, f"{what} is longer than the host allows ({_PATH_MAX} bytes)")


def _parent_is_safe(root: Path, relative: str, name: str) -> Path:
    """The host path of ``relative``, after checking no parent is a symlink; creates parents."""
    parts = relative.split("/")
    current = root
    for part in parts[:-1]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise _refuse(name, "is below a symbolic link (a symlink escape)")
        if not stat.S_ISDIR(info.st_mode):
            raise _refuse(name, f"parent {'/'.join(parts[:-1])!r} is not a directory")
    return root / relative


def receive_context(
    chunks: Iterable[bytes], dest: Path, *, ownership: Ownership | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Extract the context tar stream into the empty directory ``dest``.

    Modes go through ``ownership`` (so a non-root build can still read a
    ``0400`` file it must copy). Raises :class:`InvalidArgumentError` for a
    corrupt archive or an unsafe member (named), :class:`CancelledError` when
    ``cancelled()`` turns true.
    """
    ownership = ownership if ownership is not None else Ownership()
    reader = io.BufferedReader(ChunkReader(chunks), _COPY_CHUNK)
    if not reader.peek(1):
        return  # an empty context: nothing to extract
    directories: list[tuple[Path, float, int]] = []
    try:
        with tarfile.open(fileobj=reader, mode="r|*", tarinfo=_BoundedTarInfo) as archive:
            for member in archive:
                if cancelled():
                    raise CancelledError("build cancelled while receiving the context")
                _extract_member(archive, member, dest, directories, ownership)
    except tarfile.TarError as exc:
        raise InvalidArgumentError(f"build context is not a valid tar archive: {exc}") from None
    except EOFError as exc:
        raise InvalidArgumentError(f"build context: unexpected end of the archive: {exc}") from None
    for path, mtime, mode in reversed(directories):
        ownership.apply(path, 0, 0, mode)
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def _extract_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, directories: list[tuple[Path, float, int]],
    ownership: Ownership,
) -> None:
    name = member.name
    relative = clean_member_name(name, "build context")
    if not relative:
        return  # the archive's root entry
    mode = member.mode & 0o7777
    if member.isdev() or member.isfifo():
        raise _refuse(name, "device nodes and FIFOs are not allowed in a build context")
    _check_host_name(dest, relative, name, "the name")
    if member.issym() or member.islnk():
        if not member.linkname:
            raise _refuse(name, "is a link with an empty target")
        _check_host_name(dest, member.linkname.lstrip("/"), name, "the link target")
    path = _parent_is_safe(dest, relative, name)
    if member.isdir():
        try:
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                remove_path(path)
                os.mkdir(path, 0o755)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
        directories.append((path, member.mtime, mode))
        return
    remove_path(path)
    if member.issym():
        os.symlink(member.linkname, path)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        return
    if member.islnk():
        target_rel = clean_member_name(member.linkname, "build context")
        target = _parent_is_safe(dest, target_rel, member.linkname)
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            raise _refuse(name, f"hard link to {member.linkname!r}, which is not in the context") from None
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(name, f"hard link to {member.linkname!r}, which is not a regular file")
        os.link(target, path)
        return
    if not member.isreg():
        raise _refuse(name, f"unsupported entry type {member.type!r}")
    source = archive.extractfile(member)
    if source is None:  # pragma: no cover - isreg() members always have data
        raise _refuse(name, "has no data")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, _COPY_CHUNK)
    ownership.apply(path, 0, 0, mode)
    os.utime(path, (member.mtime, member.mtime))


def apply_dockerignore(root: Path, matcher: IgnoreMatcher) -> None:
    """Remove every path of the context under ``root`` that ``matcher`` excludes.

    A directory that is excluded is removed whole unless some ``!`` pattern
    could keep something below it; then only its excluded entries go, and the
    directory itself only if nothing is left in it.
    """
    if matcher.empty:
        return
    _prune(root, root, matcher)


def _prune(root: Path, directory: Path, matcher: IgnoreMatcher) -> None:
    with os.scandir(directory) as entries:
        children = sorted(entry.name for entry in entries)
    for child in children:
        path = directory / child
        relative = path.relative_to(root).as_posix()
        is_dir = path.is_dir() and not path.is_symlink()
        ignored = matcher.matches(relative)
        if is_dir:
            if ignored and not matcher.has_exclusions:
                shutil.rmtree(path)
                continue
            _prune(root, path, matcher)
            if ignored and not any(path.iterdir()):
                path.rmdir()
        elif ignored:
            os.unlink(path)
