"""Tar build contexts from untrusted clients: extraction never writes outside its directory.

Archives are generated from hostile pieces (``..``, absolute names, symlinks to
outside and to each other, hard links to outside or through symlinks, device
nodes, FIFOs, huge PAX headers, NUL bytes, over-long names) and also made by
mutating the bytes of a valid archive, then fed in random chunk sizes. After
each run, whether it succeeded or failed: the only exception is
InvalidArgumentError, and nothing outside the context directory was created,
changed or removed (a sentinel directory beside it, the target of every escape
attempt, keeps its exact contents).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from cairn.core.errors import InvalidArgumentError
from cairn.images.build.context import receive_context
from cairn.images.build.ownership import Ownership
from tests.fuzz.budget import budget, tried

#: Replaced by the sandbox's own absolute path to the sentinel directory when an archive is built.
OUTSIDE = "@OUTSIDE@"
_NAME_PIECES = ["a", "b", "..", ".", "", "/", OUTSIDE, "x" * 300, "\x00", "é", "link", "dir", "../outside"]
names = st.lists(st.sampled_from(_NAME_PIECES), min_size=1, max_size=5).map("/".join)
_KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
          tarfile.CHRTYPE, tarfile.CONTTYPE, b"Z"]
members = st.lists(
    st.tuples(names, st.sampled_from(_KINDS), names, st.binary(max_size=20), st.integers(0, 0o7777)),
    max_size=8,
)
# Escapes tried on purpose, so every run covers them whatever hypothesis draws; all are refused.
ESCAPES: list[list[tuple[str, bytes, str, bytes, int]]] = [
    [("../evil", tarfile.REGTYPE, "", b"x", 0o644)],
    [(f"{OUTSIDE}/evil", tarfile.REGTYPE, "", b"x", 0o644)],
    [("link", tarfile.SYMTYPE, OUTSIDE, b"", 0o777), ("link/evil", tarfile.REGTYPE, "", b"x", 0o644)],
    [("link", tarfile.SYMTYPE, "../outside", b"", 0o777), ("link/evil", tarfile.REGTYPE, "", b"x", 0o644)],
    [("hard", tarfile.LNKTYPE, f"{OUTSIDE}/keep", b"", 0o644)],
    [("hard", tarfile.LNKTYPE, "../outside/keep", b"", 0o644)],
    [("link", tarfile.SYMTYPE, "../outside", b"", 0o777), ("hard", tarfile.LNKTYPE, "link/keep", b"", 0o644)],
    [("f", tarfile.SYMTYPE, f"{OUTSIDE}/keep", b"", 0o777), ("g", tarfile.LNKTYPE, "f", b"", 0o644)],
    [("a\x00b", tarfile.REGTYPE, "", b"x", 0o644)],
    [("s", tarfile.SYMTYPE, "a\x00b", b"", 0o777)],
    [("x" * 5000, tarfile.REGTYPE, "", b"x", 0o644)],
    [("/".join(["d"] * 3000), tarfile.REGTYPE, "", b"x", 0o644)],
    [("dev", tarfile.CHRTYPE, "", b"", 0o666)],
    [("fifo", tarfile.FIFOTYPE, "", b"", 0o666)],
]
# Entries that replace an escaping symlink in place: allowed, and the write lands inside.
REPLACEMENTS: list[list[tuple[str, bytes, str, bytes, int]]] = [
    [("f", tarfile.SYMTYPE, f"{OUTSIDE}/keep", b"", 0o777), ("f", tarfile.REGTYPE, "", b"over", 0o644)],
    [("d", tarfile.SYMTYPE, OUTSIDE, b"", 0o777), ("d", tarfile.DIRTYPE, "", b"", 0o755)],
]


def _archive(entries: list[tuple[str, bytes, str, bytes, int]], outside: Path, fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for name, kind, link, data, mode in entries:
            info = tarfile.TarInfo(name.replace(OUTSIDE, str(outside)))
            info.type = kind
            info.linkname = link.replace(OUTSIDE, str(outside))
            info.mode = mode
            info.mtime = 1_700_000_000
            payload = data if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else b""
            info.size = len(payload)
            if fmt == tarfile.PAX_FORMAT:  # carry NULs too: ustar fields would end the name there
                info.pax_headers = {"path": info.name, "linkpath": info.linkname}
            try:
                archive.addfile(info, io.BytesIO(payload))
            except (ValueError, UnicodeError):
                continue  # the writer cannot express it (GNU/USTAR limits); PAX carries the rest
    return out.getvalue()


def _chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    offset = 0
    for size in sizes:
        if offset >= len(data):
            return
        yield data[offset: offset + size]
        offset += size
    if offset < len(data):
        yield data[offset:]


def _snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root`` with what it is (symlinks not followed)."""
    seen: dict[str, Any] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory, name)
            info = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            seen[str(path.relative_to(root))] = (info.st_mode, info.st_nlink, content)
    return seen


def _extract_in_sandbox(archive: bytes, sizes: list[int], *,
                        entries: list[tuple[str, bytes, str, bytes, int]] | None = None,
                        fmt: int = tarfile.PAX_FORMAT) -> bool:
    """Extract into a fresh sandbox, check nothing escaped; True if the archive was refused."""
    with tempfile.TemporaryDirectory(prefix="cairn-fuzz-") as tmp:
        sandbox = Path(tmp)
        outside = sandbox / "outside"
        outside.mkdir()
        (outside / "keep").write_bytes(b"keep")
        (outside / "sub").mkdir()
        context = sandbox / "context"
        context.mkdir()
        if entries is not None:
            archive = _archive(entries, outside, fmt)
        before = _snapshot(outside)
        before_top = sorted(os.listdir(sandbox))
        refused = False
        try:
            receive_context(_chunks(archive, sizes), context, ownership=Ownership(virtual=True))
        except InvalidArgumentError:
            refused = True
        assert _snapshot(outside) == before, "a write escaped the context into its sibling"
        assert sorted(os.listdir(sandbox)) == before_top, "a write escaped the context into its parent"
        for path in context.rglob("*"):
            if not path.is_symlink():
                assert path.resolve().is_relative_to(context.resolve()), path
        return refused


chunk_sizes = st.lists(st.integers(1, 4096), max_size=6)


@budget(150)
@given(members, st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]), chunk_sizes)
def test_generated_archives_stay_inside(entries: Any, fmt: int, sizes: list[int]) -> None:
    tried("tar-context")
    _extract_in_sandbox(b"", sizes, entries=entries, fmt=fmt)


@budget(40)
@given(st.sampled_from(ESCAPES), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]), chunk_sizes)
def test_known_escapes_are_refused(entries: Any, fmt: int, sizes: list[int]) -> None:
    tried("tar-context")
    if any("\x00" in name + link for name, _, link, _, _ in entries):
        fmt = tarfile.PAX_FORMAT  # only PAX carries a NUL; the other headers end the name there
    assert _extract_in_sandbox(b"", sizes, entries=entries, fmt=fmt), entries


@budget(10)
@given(st.sampled_from(REPLACEMENTS), chunk_sizes)
def test_replacing_an_escaping_symlink_writes_inside(entries: Any, sizes: list[int]) -> None:
    tried("tar-context")
    assert not _extract_in_sandbox(b"", sizes, entries=entries)


def _valid_archive() -> bytes:
    return _archive([("dir", tarfile.DIRTYPE, "", b"", 0o755), ("dir/f", tarfile.REGTYPE, "", b"hello", 0o644),
                     ("s", tarfile.SYMTYPE, "dir/f", b"", 0o777), ("h", tarfile.LNKTYPE, "dir/f", b"", 0o644)],
                    Path("/nonexistent"), tarfile.PAX_FORMAT)


VALID = _valid_archive()


@budget(150)
@given(st.one_of(
    st.binary(max_size=1200),
    st.tuples(st.integers(0, len(VALID)), st.integers(0, 64), st.binary(max_size=64)).map(
        lambda m: VALID[: m[0]] + m[2] + VALID[m[0] + m[1]:]),
), chunk_sizes)
# A PAX header that claims a huge size: refused without reading gigabytes.
@example(VALID[:124] + b"77777777777\x00" + VALID[136:], [])
def test_mutated_bytes_stay_inside(archive: bytes, sizes: list[int]) -> None:
    tried("tar-context")
    _extract_in_sandbox(archive, sizes)


def test_a_huge_extended_header_is_refused_before_it_is_read() -> None:
    """A PAX header claiming 8 GiB: refused from its 512-byte header block, not after reading it."""
    tried("tar-context")
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = 8 << 30
    block = header.tobuf(tarfile.GNU_FORMAT)  # base-256 size field: USTAR stops at 8 GiB - 1
    with tempfile.TemporaryDirectory(prefix="cairn-fuzz-") as tmp:
        try:
            receive_context(iter([block, b"\0" * 4096]), Path(tmp))
        except InvalidArgumentError as exc:
            assert "extended header of 8589934592 bytes" in exc.message
            return
    raise AssertionError("the 8 GiB header was accepted")
