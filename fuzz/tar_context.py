"""atheris harness: tar build contexts; extraction never writes outside its directory.

Each input is a tar stream (any compression ``tarfile`` detects). It is extracted
into ``<sandbox>/context`` next to ``<sandbox>/outside``; the contract checked is
that only InvalidArgumentError is raised and ``outside`` and the sandbox itself are
unchanged afterwards, whatever the archive held.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from _harness import main

# Instrumented for coverage by _harness.main() once loaded.
from cairn.core.errors import InvalidArgumentError
from cairn.images.build.context import receive_context
from cairn.images.build.ownership import Ownership

_SANDBOX = Path(tempfile.mkdtemp(prefix="cairn-atheris-"))
_OUTSIDE = _SANDBOX / "outside"


def _seed(entries: list[tuple[str, bytes, str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, link, data in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


SEEDS = [
    _seed([("d", tarfile.DIRTYPE, "", b""), ("d/f", tarfile.REGTYPE, "", b"hi"),
           ("s", tarfile.SYMTYPE, "d/f", b""), ("h", tarfile.LNKTYPE, "d/f", b"")]),
    _seed([("up", tarfile.SYMTYPE, "../outside", b""), ("up/x", tarfile.REGTYPE, "", b"x")]),
    _seed([("h", tarfile.LNKTYPE, "../outside/keep", b"")]),
    _seed([("é" * 10, tarfile.REGTYPE, "", b"x")]),
]


def _listing(root: Path) -> list[tuple[str, int, bytes | None]]:
    out = []
    for directory, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(directory, name)
            info = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            out.append((str(path), info.st_mode, data))
    return sorted(out)


def test_one_input(data: bytes) -> None:
    shutil.rmtree(_SANDBOX, ignore_errors=True)
    _OUTSIDE.mkdir(parents=True)
    (_OUTSIDE / "keep").write_bytes(b"keep")
    context = _SANDBOX / "context"
    context.mkdir()
    before = _listing(_OUTSIDE)
    try:
        receive_context([data], context, ownership=Ownership(virtual=True))
    except InvalidArgumentError:
        pass
    assert _listing(_OUTSIDE) == before, "a write escaped into the sibling directory"
    assert sorted(os.listdir(_SANDBOX)) == ["context", "outside"], "a write escaped into the parent"


if __name__ == "__main__":
    try:
        main(test_one_input, SEEDS, ("cairn", "tarfile"))
    finally:
        shutil.rmtree(_SANDBOX, ignore_errors=True)
    sys.exit(0)
