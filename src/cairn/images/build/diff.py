"""Snapshot a root filesystem's metadata, and diff it later into a layer tar with whiteouts.

This is umoci's mtree ``repack`` and kaniko's snapshotter, in the form a builder
without overlayfs needs: :func:`take_snapshot` records every path's type, mode,
owner, size, times, inode and link target; after a step changed the tree,
:func:`write_diff` walks it again and writes the changeset as an OCI layer:
new and changed paths as entries (numeric uid/gid, modes, mtimes, symlinks,
hard links within the layer, device nodes, ``security.capability`` and
``user.*`` xattrs), deleted paths as ``.wh.`` whiteouts placed before their
sibling entries, a directory that turned into something else as a whiteout
plus its replacement, and unchanged parent directories of changes included
before their children, as Docker's differ does. No library writes such
changesets: ``tarfile`` archives whole trees, and the container tools that
do it (Docker's ``archive.ExportChanges``, containers/storage) are Go.

Change detection relies on ``st_ctime``, which user space cannot set: any write,
chmod, chown, link or rename moves it. :func:`wait_past` makes sure the clock
has moved beyond every recorded ctime before the step runs, so coarse kernel
timestamps cannot hide a change made right after the snapshot. A directory
counts as changed when its mode, owner or mtime changed (its ctime also moves
when the builder temporarily adds and removes mount points in it).

The tar is written by hand (headers from :meth:`tarfile.TarInfo.tobuf`) so it
ends with exactly two zero blocks, as Go's ``archive/tar`` does; an empty
changeset is then Docker's well-known empty layer.
"""

from __future__ import annotations

import os
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cairn.core.errors import CancelledError
from cairn.images.build.ownership import Ownership

__all__ = ["Entry", "Snapshot", "TarSink", "take_snapshot", "wait_past", "write_diff"]

_BLOCK = 512
_CHUNK = 1 << 20
_XATTRS_KEPT = ("security.capability",)
_XATTR_PREFIXES_KEPT = ("user.",)
WHITEOUT_PREFIX = ".wh."


class TarSink(Protocol):
    """Where the layer tar goes (hashing, compressing): a binary ``write``."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One path's recorded metadata (``st_mode`` carries the type)."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    nlink: int
    rdev: int
    link: str | None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@dataclass(slots=True)
class Snapshot:
    """Every path under a root (relative, ``/``-separated) and the newest ctime seen."""

    entries: dict[str, Entry] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    max_ctime_ns: int = 0


def _entry(path: str, info: os.stat_result) -> Entry:
    link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
    return Entry(info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                 info.st_ino, info.st_dev, info.st_nlink, info.st_rdev, link)


def take_snapshot(root: Path, exclude: frozenset[str] = frozenset()) -> Snapshot:
    """Record the metadata of every path below ``root`` except ``exclude`` (relative paths) and their subtrees."""
    snapshot = Snapshot()
    _walk(str(root), "", snapshot, exclude)
    return snapshot


def _walk(root: str, relative: str, snapshot: Snapshot, exclude: frozenset[str]) -> None:
    directory = os.path.join(root, relative) if relative else root
    names: list[str] = []
    with os.scandir(directory) as entries:
        for item in entries:
            rel = f"{relative}/{item.name}" if relative else item.name
            if rel in exclude:
                continue
            info = item.stat(follow_symlinks=False)
            entry = _entry(item.path, info)
            snapshot.entries[rel] = entry
            snapshot.max_ctime_ns = max(snapshot.max_ctime_ns, info.st_ctime_ns)
            names.append(item.name)
    names.sort()
    snapshot.children[relative] = names
    for name in names:
        rel = f"{relative}/{name}" if relative else name
        if snapshot.entries[rel].is_dir:
            _walk(root, rel, snapshot, exclude)


def wait_past(snapshot: Snapshot, probe_dir: Path, timeout: float = 5.0) -> None:
    """Return once a file touched now gets a ctime newer than any in ``snapshot``."""
    probe = probe_dir / ".ctime-probe"
    deadline = time.monotonic() + timeout
    while True:
        with open(probe, "wb") as handle:
            handle.write(b"x")
        ctime = os.lstat(probe).st_ctime_ns
        if ctime > snapshot.max_ctime_ns or time.monotonic() > deadline:
            os.unlink(probe)
            return
        time.sleep(0.001)


def _changed(old: Entry, new: Entry) -> bool:
    if stat.S_IFMT(old.mode) != stat.S_IFMT(new.mode):
        return True
    if (old.mode, old.uid, old.gid) != (new.mode, new.uid, new.gid):
        return True
    if new.is_dir:
        return old.mtime_ns != new.mtime_ns
    return (old.ctime_ns, old.ino, old.mtime_ns, old.size, old.link, old.rdev) != (
        new.ctime_ns, new.ino, new.mtime_ns, new.size, new.link, new.rdev
    )


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _changes(before: Snapshot, after: Snapshot, directory: str) -> list[tuple[bool, str]]:
    """``(is_whiteout, path)`` in layer order for the subtree at ``directory``."""
    out: list[tuple[bool, str]] = []
    now = after.children.get(directory, [])
    present = set(now)
    for name in before.children.get(directory, []):
        rel = _join(directory, name)
        if name not in present:
            out.append((True, rel))
        elif before.entries[rel].is_dir and not after.entries[rel].is_dir:
            out.append((True, rel))  # a directory replaced by a file: hide its old children
    for name in now:
        rel = _join(directory, name)
        new = after.entries[rel]
        old = before.entries.get(rel)
        changed = old is None or _changed(old, new)
        if new.is_dir:
            below = _changes(before, after, rel) if old is not None and old.is_dir else _all(after, rel)
            if changed or below:
                out.append((False, rel))
                out.extend(below)
        elif changed:
            out.append((False, rel))
    return out


def _all(after: Snapshot, directory: str) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    for name in after.children.get(directory, []):
        rel = _join(directory, name)
        out.append((False, rel))
        if after.entries[rel].is_dir:
            out.extend(_all(after, rel))
    return out


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    headers: dict[str, str] = {}
    for name in sorted(names):
        if name in _XATTRS_KEPT or name.startswith(_XATTR_PREFIXES_KEPT):
            try:
                value = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
            headers[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return headers


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def write_diff(
    root: Path, before: Snapshot, sink: TarSink, *, exclude: frozenset[str] = frozenset(),
    ownership: Ownership | None = None, cancelled: Callable[[], bool] = lambda: False,
) -> Snapshot:
    """Write the changes of ``root`` since ``before`` to ``sink`` as a tar; returns the new snapshot.

    Owners and permission bits come from ``ownership`` (virtual ones in a non-root build).
    """
    ownership = ownership if ownership is not None else Ownership()
    after = take_snapshot(root, exclude)
    first_link: dict[tuple[int, int], str] = {}
    for is_whiteout, rel in _changes(before, after, ""):
        if cancelled():
            raise CancelledError("build cancelled while writing a layer")
        if is_whiteout:
            parent, _, name = rel.rpartition("/")
            info = tarfile.TarInfo(_join(parent, WHITEOUT_PREFIX + name))
            info.mode = 0o644
            sink.write(_header(info))
            continue
        _write_entry(root, rel, after.entries[rel], sink, first_link, ownership)
    sink.write(b"\0" * (2 * _BLOCK))
    return after


def _write_entry(
    root: Path, rel: str, entry: Entry, sink: TarSink, first_link: dict[tuple[int, int], str],
    ownership: Ownership,
) -> None:
    path = os.path.join(root, rel)
    info = tarfile.TarInfo(rel)
    info.uid, info.gid, info.mode = ownership.resolve(path, entry.uid, entry.gid, entry.mode)
    info.uname = info.gname = ""
    info.mtime = entry.mtime_ns // 1_000_000_000
    mode = entry.mode
    data = False
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        info.name = rel + "/"
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link or ""
    elif stat.S_ISREG(mode):
        key = (entry.dev, entry.ino)
        if entry.nlink > 1 and key in first_link:
            info.type = tarfile.LNKTYPE
            info.linkname = first_link[key]
        else:
            if entry.nlink > 1:
                first_link[key] = rel
            info.type = tarfile.REGTYPE
            info.size = entry.size
            data = True
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(entry.rdev), os.minor(entry.rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return  # sockets are not part of an image
    info.pax_headers = _xattrs(path)
    sink.write(_header(info))
    if data:
        _copy_data(path, entry.size, sink)


def _copy_data(path: str, size: int, sink: TarSink) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    remaining = size
    with os.fdopen(fd, "rb") as source:
        while remaining > 0:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                break
            sink.write(chunk)
            remaining -= len(chunk)
    if remaining > 0:  # the file shrank after the walk: pad to the size the header promised
        sink.write(b"\0" * remaining)
    tail = size % _BLOCK
    if tail:
        sink.write(b"\0" * (_BLOCK - tail))
