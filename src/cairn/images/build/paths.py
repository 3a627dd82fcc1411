"""Path names inside a root directory, resolved as if that directory were ``/``.

A build runs as root on the host and writes into directories whose contents
come from strangers: build contexts, base image layers, and whatever a RUN left
behind. A symlink there (``etc -> /etc``, ``x -> ../../..``) must never make a
write land outside the root. :func:`resolve_in_root` follows symlinks the way
the kernel would after ``chroot``: absolute targets restart at the root, ``..``
stops at the root, and only parents are followed unless asked otherwise.
``os.path.realpath`` cannot do this (it resolves against the host's ``/``), and
``openat2(RESOLVE_IN_ROOT)`` has no Python binding, hence this module.

This module does not open or create anything.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from pathlib import Path

from cairn.core.errors import InvalidArgumentError

__all__ = ["clean_member_name", "in_root_relative", "remove_path", "resolve_in_root"]

_MAX_LINKS = 40


def clean_member_name(name: str, what: str) -> str:
    """A tar member name as a clean relative path (``""`` for the root).

    Raises :class:`InvalidArgumentError` naming ``what`` for absolute names and
    ``..`` components, which no builder-produced archive needs.
    """
    if name.startswith("/"):
        raise InvalidArgumentError(f"{what}: absolute path {name!r} is not allowed")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArgumentError(f"{what}: path {name!r} escapes with '..'")
    return "/".join(parts)


def in_root_relative(path: str) -> str:
    """An in-image path (absolute or relative to ``/``) as a clean relative path; ``..`` stops at ``/``."""
    normalised = posixpath.normpath("/" + path)
    return normalised.lstrip("/")


def resolve_in_root(root: Path, path: str, *, follow_final: bool = False) -> Path:
    """The host path ``path`` names inside ``root``, symlinks followed within ``root``.

    Every parent of the result is a real directory under ``root`` or does not
    exist yet; the final component is followed only when ``follow_final``.
    Raises :class:`InvalidArgumentError` after too many symlinks (a loop).
    """
    pending = [part for part in in_root_relative(path).split("/") if part]
    pending.reverse()
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if part == ".":
            continue
        candidate = root.joinpath(*resolved, part)
        is_final = not pending
        try:
            info = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(info.st_mode) and (follow_final or not is_final):
            hops += 1
            if hops > _MAX_LINKS:
                raise InvalidArgumentError(f"too many levels of symbolic links resolving {path!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending.extend(reversed([p for p in target.split("/") if p]))
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def remove_path(path: Path) -> None:
    """Remove whatever is at ``path`` (a tree, a file, a symlink itself); nothing there is fine."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
