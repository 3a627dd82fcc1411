"""Unpack image layers into a directory, applying OCI whiteouts, as a RUN's root filesystem.

A layer is a tar changeset (image-spec ``layer.md``): ``dir/.wh.name`` deletes
``dir/name`` of the layers below, ``dir/.wh..wh..opq`` hides every lower child
of ``dir`` (applied before the same layer's new children whatever the order in
the tar), and a whiteout never touches what its own layer wrote. ``tarfile``'s
``extractall`` knows nothing of whiteouts, follows a symlink an earlier layer
planted (``etc -> /etc``) when writing below it, and restores ownership by name;
so entries are applied one by one here: parents resolved inside the root
(:func:`cairn.images.build.paths.resolve_in_root`), the final component never
followed, numeric uid/gid, modes, mtimes, symlinks, hard links, device nodes and
``SCHILY.xattr`` extended attributes kept.

Layers are read as streams from the content store (gzip, bzip2, xz, plain, and
zstd when ``zstandard`` is installed); nothing is held in memory whole. This
module does not snapshot or diff (that is :mod:`cairn.images.build.diff`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

from cairn.core.content.store import ReaderAt
from cairn.core.errors import CancelledError, InvalidArgumentError, UnimplementedError
from cairn.images import layers as layer_codecs
from cairn.images.build.ownership import Ownership
from cairn.images.build.paths import clean_member_name, remove_path, resolve_in_root
from cairn.images.model import LayerRecord

__all__ = ["ReaderAtFile", "open_layer_tar", "unpack_layer", "unpack_layers"]

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
_CHUNK = 1 << 20
_XATTR_PREFIX = "SCHILY.xattr."


class ReaderAtFile(io.RawIOBase):
    """A sequential read-only file over a content-store :class:`ReaderAt`."""

    def __init__(self, reader: ReaderAt) -> None:
        super().__init__()
        self._reader = reader
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._reader.read_at(self._offset, min(len(buffer), _CHUNK))
        buffer[: len(data)] = data
        self._offset += len(data)
        return len(data)


@contextlib.contextmanager
def open_layer_tar(reader: ReaderAt, what: str) -> Iterator[tarfile.TarFile]:
    """The layer blob behind ``reader`` as a streaming :class:`tarfile.TarFile`, decompressed.

    Raises :class:`UnimplementedError` for a zstd layer without ``zstandard``,
    :class:`InvalidArgumentError` when the blob is not a tar archive.
    """
    path = reader.path
    raw = open(path, "rb") if path else io.BufferedReader(ReaderAtFile(reader), _CHUNK)
    try:
        head = raw.peek(4)[:4]
        stream: IO[bytes] = raw
        if layer_codecs.detect_compression(head) == layer_codecs.ZSTD:
            if not layer_codecs.zstd_available():
                raise UnimplementedError(f"{what} is zstd-compressed and the zstandard package is missing")
            import zstandard  # type: ignore[import-not-found,unused-ignore]

            stream = zstandard.ZstdDecompressor().stream_reader(raw)
        try:
            with tarfile.open(fileobj=stream, mode="r|*", encoding="utf-8", errors="surrogateescape") as archive:
                yield archive
        except tarfile.TarError as exc:
            raise InvalidArgumentError(f"{what} is not a valid tar archive: {exc}") from None
    finally:
        raw.close()


def _remove(path: Path, ownership: Ownership) -> None:
    remove_path(path)
    ownership.forget(path)


def _apply_opaque(directory: Path, written: set[str], ownership: Ownership) -> None:
    """Remove every child of ``directory`` the current layer did not write."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        path = Path(entry.path)
        if str(path) not in written:
            _remove(path, ownership)
        elif entry.is_dir(follow_symlinks=False):
            _apply_opaque(path, written, ownership)


def _set_metadata(
    path: Path, member: tarfile.TarInfo, owner: tuple[int, int] | None, ownership: Ownership
) -> None:
    uid, gid = owner if owner is not None else (member.uid, member.gid)
    ownership.apply(path, uid, gid, None if member.issym() else member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            try:
                os.setxattr(path, key[len(_XATTR_PREFIX):], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError as exc:
                log.debug("cannot set xattr %s on %s: %s", key, path, exc)
    if not member.isdir():
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def unpack_layer(
    archive: tarfile.TarFile, root: Path, what: str, *, whiteouts: bool = True,
    owner: tuple[int, int] | None = None, ownership: Ownership | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Apply one layer's entries (from a streaming tar) onto ``root``.

    With ``whiteouts=False`` (ADD of a local archive) ``.wh.`` names are plain
    files; ``owner`` replaces the archive's uid/gid (``ADD --chown``). Raises :class:`InvalidArgumentError` naming ``what`` for unsafe names or a
    hard link to a missing file; :class:`CancelledError` when cancelled.
    """
    ownership = ownership if ownership is not None else Ownership()
    written: set[str] = set()
    directories: list[tuple[Path, tarfile.TarInfo]] = []
    for member in archive:
        if cancelled():
            raise CancelledError("build cancelled while unpacking layers")
        relative = clean_member_name(member.name, what)
        if not relative:
            continue
        parent_rel, _, base = relative.rpartition("/")
        parent = resolve_in_root(root, parent_rel, follow_final=True)
        if whiteouts and base == OPAQUE:
            _apply_opaque(parent, written, ownership)
            continue
        if whiteouts and base.startswith(WHITEOUT_PREFIX):
            target = parent / base[len(WHITEOUT_PREFIX):]
            if str(target) not in written:
                _remove(target, ownership)
            continue
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidArgumentError(f"{what}: {member.name!r}: a parent is not a directory") from None
        path = parent / base
        written.add(str(path))
        _apply_entry(archive, member, root, path, what, directories, owner, ownership)
    for path, member in reversed(directories):
        os.utime(path, (member.mtime, member.mtime))


def _apply_entry(
    archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, path: Path, what: str,
    directories: list[tuple[Path, tarfile.TarInfo]], owner: tuple[int, int] | None, ownership: Ownership,
) -> None:
    if member.isdir():
        if not (path.is_dir() and not path.is_symlink()):
            _remove(path, ownership)
            os.mkdir(path, 0o755)
        _set_metadata(path, member, owner, ownership)
        directories.append((path, member))
        return
    _remove(path, ownership)
    if member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        target_rel = clean_member_name(member.linkname, what)
        target_parent, _, target_base = target_rel.rpartition("/")
        target = resolve_in_root(root, target_parent, follow_final=True) / target_base
        try:
            os.link(target, path, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidArgumentError(f"{what}: hard link {member.name!r} to missing {member.linkname!r}") from None
        return  # a hard link shares its target's metadata
    elif member.isreg():
        source = archive.extractfile(member)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, _CHUNK)
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        try:
            os.mknod(path, kind | (member.mode & 0o7777), os.makedev(member.devmajor, member.devminor))
        except OSError as exc:
            log.warning("%s: cannot create device node %s: %s", what, member.name, exc)
            return
    else:
        log.warning("%s: skipping %s of unsupported tar type %r", what, member.name, member.type)
        return
    _set_metadata(path, member, owner, ownership)


def unpack_layers(
    open_blob: Callable[[LayerRecord], ReaderAt], layers: Sequence[LayerRecord], root: Path,
    *, ownership: Ownership | None = None, cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Unpack ``layers`` in order into ``root`` (created if missing)."""
    root.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        what = f"layer {layer.digest}"
        with open_blob(layer) as reader, open_layer_tar(reader, what) as archive:
            unpack_layer(archive, root, what, ownership=ownership, cancelled=cancelled)
