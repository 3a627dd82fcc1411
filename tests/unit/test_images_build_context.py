"""The build context: receiving the tar stream safely, and ``.dockerignore`` with Docker's rules.

Unsafe members (``..``, absolute names, writes through symlinks, hard links out
of the context, device nodes, FIFOs) are refused with InvalidArgumentError and
nothing lands outside the destination.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.core.errors import InvalidArgumentError
from cairn.images.build.context import apply_dockerignore, receive_context
from cairn.images.build.ignore import IgnoreMatcher, parse_dockerignore

MTIME = 1_700_000_000


def _tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o640, MTIME
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _info(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _chunks(data: bytes, size: int = 7) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _receive(tmp_path: Path, data: bytes) -> Path:
    dest = tmp_path / "ctx"
    dest.mkdir()
    receive_context(_chunks(data), dest)
    return dest


COMPRESSORS: list[Callable[[bytes], bytes]] = [lambda b: b, gzip.compress, bz2.compress, lzma.compress]


@pytest.mark.parametrize("compress", COMPRESSORS, ids=["tar", "gzip", "bzip2", "xz"])
def test_contexts_of_every_compression_extract(tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    data = _tar([
        _info("dir", tarfile.DIRTYPE, mode=0o750),
        ("dir/file.txt", b"hello"),
        ("./Dockerfile", b"FROM scratch\n"),
        _info("dir/link", tarfile.SYMTYPE, linkname="file.txt"),
        _info("dir/hard", tarfile.LNKTYPE, linkname="dir/file.txt"),
    ])
    dest = _receive(tmp_path, compress(data))
    assert (dest / "dir" / "file.txt").read_bytes() == b"hello"
    assert (dest / "Dockerfile").read_bytes() == b"FROM scratch\n"
    assert os.readlink(dest / "dir" / "link") == "file.txt"
    assert os.stat(dest / "dir" / "hard").st_ino == os.stat(dest / "dir" / "file.txt").st_ino
    assert stat.S_IMODE(os.stat(dest / "dir" / "file.txt").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(dest / "dir").st_mode) == 0o750
    assert os.stat(dest / "dir").st_mtime == MTIME
    assert os.stat(dest / "dir" / "file.txt").st_mtime == MTIME


def test_an_empty_stream_is_an_empty_context(tmp_path: Path) -> None:
    dest = tmp_path / "ctx"
    dest.mkdir()
    receive_context([], dest)
    assert list(dest.iterdir()) == []


def test_not_a_tar_is_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not a valid tar"):
        _receive(tmp_path, b"this is not a tar archive at all" * 40)


def test_truncated_tar_is_invalid_argument(tmp_path: Path) -> None:
    data = _tar([("big", b"x" * 5000)])
    with pytest.raises(InvalidArgumentError):
        _receive(tmp_path, data[:1500])


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escape.txt", b"x")], "escapes"),
        ([("a/../../escape.txt", b"x")], "escapes"),
        ([("/abs.txt", b"x")], "absolute"),
        ([_info("evil", tarfile.SYMTYPE, linkname=".."), ("evil/escape.txt", b"x")], "symlink"),
        ([_info("evil", tarfile.SYMTYPE, linkname="/tmp"), ("evil/escape.txt", b"x")], "symlink"),
        ([_info("hard", tarfile.LNKTYPE, linkname="../outside")], "escapes"),
        ([_info("hard", tarfile.LNKTYPE, linkname="missing")], "not in the context"),
        ([_info("l", tarfile.SYMTYPE, linkname="/etc/passwd"), _info("h", tarfile.LNKTYPE, linkname="l")],
         "not a regular file"),
        ([_info("null", tarfile.CHRTYPE, devmajor=1, devminor=3)], "device"),
        ([_info("fifo", tarfile.FIFOTYPE)], "FIFO"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        _receive(tmp_path, _tar(entries))
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "outside").exists()


def test_a_symlink_pointing_outside_is_kept_as_a_link_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    data = _tar([_info("link", tarfile.SYMTYPE, linkname=str(outside)), ("link", b"replaced")])
    dest = _receive(tmp_path, data)
    assert outside.read_text() == "host file"
    assert (dest / "link").read_bytes() == b"replaced" and not (dest / "link").is_symlink()


def test_later_members_replace_earlier_ones(tmp_path: Path) -> None:
    data = _tar([("x", b"file"), _info("x", tarfile.DIRTYPE, mode=0o755), ("x/y", b"inner")])
    dest = _receive(tmp_path, data)
    assert (dest / "x" / "y").read_bytes() == b"inner"


# -- .dockerignore -----------------------------------------------------------------------------

def test_dockerignore_lines_are_cleaned_like_docker() -> None:
    text = "\ufeff# comment\n\n  *.md  \n/abs/path\n! keep.md\ndir//sub/../x\n #not a comment\n"
    assert parse_dockerignore(text) == ["*.md", "abs/path", "!keep.md", "dir/x", "#not a comment"]


@pytest.mark.parametrize(
    ("patterns", "path", "ignored"),
    [
        (["*.md"], "README.md", True),
        (["*.md"], "docs/README.md", False),
        (["*/*.md"], "docs/README.md", True),
        (["**/*.md"], "README.md", True),
        (["**/*.md"], "a/b/c/README.md", True),
        (["**"], "anything/at/all", True),
        (["dir"], "dir/deep/file", True),
        (["dir/**"], "dir/deep/file", True),
        (["dir/**"], "dir", False),
        (["a/**/b"], "a/b", True),
        (["a/**/b"], "a/x/y/b", True),
        (["?.txt"], "a.txt", True),
        (["?.txt"], "ab.txt", False),
        (["[a-c].txt"], "b.txt", True),
        (["[!a-c].txt"], "b.txt", False),
        (["[^a-c].txt"], "d.txt", True),
        (["file.(x)"], "file.(x)", True),
        (["*", "!keep"], "keep", False),
        (["*", "!keep"], "other", True),
        (["dir", "!dir/keep"], "dir/keep", False),
        (["dir", "!dir/keep"], "dir/other", True),
        (["!x", "x"], "x", True),
        (["x", "!x", "x"], "x", True),
        (["Dockerfile"], "Dockerfile", True),
        (["tmp*"], "tmpdir/file", True),
    ],
)
def test_ignore_matching_vectors(patterns: list[str], path: str, ignored: bool) -> None:
    assert IgnoreMatcher(patterns).matches(path) is ignored


def test_a_lone_bang_is_invalid() -> None:
    with pytest.raises(InvalidArgumentError):
        IgnoreMatcher(["!"])


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_apply_dockerignore_removes_excluded_paths_and_keeps_exceptions(tmp_path: Path) -> None:
    for name in ["a.txt", "b.md", "docs/x.md", "docs/keep.md", "node_modules/m/index.js", "src/main.go"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    matcher = IgnoreMatcher(parse_dockerignore("*.md\ndocs\n!docs/keep.md\nnode_modules\n"))
    apply_dockerignore(tmp_path, matcher)
    assert _tree(tmp_path) == {"a.txt", "docs", "docs/keep.md", "src", "src/main.go"}


def test_apply_dockerignore_drops_whole_directories_without_exceptions(tmp_path: Path) -> None:
    (tmp_path / "build" / "deep").mkdir(parents=True)
    (tmp_path / "build" / "deep" / "x").write_text("x")
    (tmp_path / "keep").write_text("k")
    apply_dockerignore(tmp_path, IgnoreMatcher(["build"]))
    assert _tree(tmp_path) == {"keep"}
