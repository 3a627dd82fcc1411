"""Owners and modes of a build's root filesystem, virtual when cairn does not run as root.

Layers carry numeric owners (``root``, ``1000:1000``) and modes such as
``0555`` directories or ``0000`` shadow files. As root the builder simply
applies them (``lchown``/``chmod``) and reads them back when diffing. Without
root (where RUN is refused anyway) it cannot ``lchown``, and a ``0555``
directory or a ``0000`` file would lock the builder out of its own tree; so,
the way ``fakeroot`` does, the wanted owner and mode are remembered here by
path, the files on disk stay readable and writable by the builder, and the
diff asks :meth:`Ownership.resolve` for what the layer should say. Paths the
builder created without naming an owner (implicit parent directories) belong
to root, as they would in a root build.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["Ownership"]


class Ownership:
    """Applies owners and modes, on disk as root and virtually otherwise. One per build."""

    def __init__(self, virtual: bool | None = None) -> None:
        self.virtual = os.geteuid() != 0 if virtual is None else virtual
        self._wanted: dict[str, tuple[int, int, int]] = {}

    def apply(self, path: Path | str, uid: int, gid: int, mode: int | None) -> None:
        """Give ``path`` (never followed) owner ``uid:gid`` and, unless a symlink or None, ``mode``."""
        if not self.virtual:
            os.lchown(path, uid, gid)
            if mode is not None:
                os.chmod(path, mode)
            return
        info = os.lstat(path)
        wanted = stat.S_IMODE(info.st_mode) if mode is None else mode
        self._wanted[str(path)] = (uid, gid, wanted)
        if mode is not None and not stat.S_ISLNK(info.st_mode):
            usable = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
            os.chmod(path, (mode | usable) & ~(stat.S_ISUID | stat.S_ISGID))

    def resolve(self, path: str, uid: int, gid: int, mode: int) -> tuple[int, int, int]:
        """``(uid, gid, permission bits)`` a layer entry for ``path`` should carry, given what is on disk."""
        if not self.virtual:
            return uid, gid, stat.S_IMODE(mode)
        return self._wanted.get(path, (0, 0, stat.S_IMODE(mode)))

    def forget(self, path: Path | str) -> None:
        """Drop what was remembered for ``path`` and below it (it was removed)."""
        if not self.virtual or not self._wanted:
            return
        prefix = str(path)
        for key in [k for k in self._wanted if k == prefix or k.startswith(prefix + "/")]:
            del self._wanted[key]
