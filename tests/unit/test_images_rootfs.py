"""Root filesystems of a build: unpacking layers with whiteouts, diffing into layers, running RUN.

The diff is checked two ways: entry by entry (whiteouts before siblings, parents
included, numeric owners, modes, hard links) and by round trip (unpacking the
base and then the diff reproduces the changed tree, for random changes too).
The RUN cases use a busybox-static root filesystem and need root and unshare.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
import threading
from pathlib import Path
from typing import Any, Self

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.core.errors import CancelledError, FailedPreconditionError, InvalidArgumentError
from cairn.images.build import run as run_module
from cairn.images.build.diff import Snapshot, take_snapshot, wait_past, write_diff
from cairn.images.build.paths import resolve_in_root
from cairn.images.build.rootfs import open_layer_tar, unpack_layer
from cairn.images.build.run import RunRequest, run_isolated

MTIME = 1_600_000_000
BUSYBOX = Path("/bin/busybox")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not BUSYBOX.exists(),
    reason="RUN isolation needs root, util-linux unshare and /bin/busybox (busybox-static)",
)
needs_chown = pytest.mark.skipif(os.geteuid() != 0, reason="restoring numeric owners needs root")


def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def _layer(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _apply(root: Path, data: bytes, **kwargs: Any) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        unpack_layer(archive, root, "test layer", **kwargs)


def _tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Path -> (type, mode, uid, gid, content or link target, mtime for non-dirs)."""
    out: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = os.lstat(path)
        rel = path.relative_to(root).as_posix()
        if stat.S_ISDIR(info.st_mode):
            body: Any = None
        elif stat.S_ISLNK(info.st_mode):
            body = os.readlink(path)
        else:
            body = path.read_bytes()
        mtime = None if stat.S_ISDIR(info.st_mode) else int(info.st_mtime)
        out[rel] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, body, mtime)
    return out


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return archive.getmembers()


class _Sink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes, /) -> int:
        return self.buffer.write(data)


def _diff(root: Path, before: Snapshot) -> bytes:
    sink = _Sink()
    write_diff(root, before, sink)
    return sink.buffer.getvalue()


# -- unpack -------------------------------------------------------------------------------------

def test_whiteouts_delete_lower_files_and_directories(tmp_path: Path) -> None:
    _apply(tmp_path, _layer([
        _entry("etc", tarfile.DIRTYPE), _entry("etc/a", data=b"a"), _entry("etc/b", data=b"b"),
        _entry("var", tarfile.DIRTYPE), _entry("var/cache", tarfile.DIRTYPE), _entry("var/cache/x", data=b"x"),
    ]))
    _apply(tmp_path, _layer([_entry("etc/.wh.a"), _entry("var/.wh.cache"), _entry("etc/.wh.missing")]))
    assert set(_tree(tmp_path)) == {"etc", "etc/b", "var"}


def test_opaque_whiteout_hides_lower_children_whatever_the_order(tmp_path: Path) -> None:
    _apply(tmp_path, _layer([
        _entry("d", tarfile.DIRTYPE), _entry("d/old", data=b"o"), _entry("d/sub", tarfile.DIRTYPE),
        _entry("d/sub/old", data=b"o"),
    ]))
    # The new child comes before the opaque marker; it must survive it.
    _apply(tmp_path, _layer([
        _entry("d", tarfile.DIRTYPE), _entry("d/new", data=b"n"), _entry("d/sub", tarfile.DIRTYPE),
        _entry("d/sub/new2", data=b"n"), _entry("d/.wh..wh..opq"),
    ]))
    assert set(_tree(tmp_path)) == {"d", "d/new", "d/sub", "d/sub/new2"}


def test_a_whiteout_never_removes_what_its_own_layer_wrote(tmp_path: Path) -> None:
    _apply(tmp_path, _layer([_entry("f", data=b"lower")]))
    _apply(tmp_path, _layer([_entry("f", data=b"upper"), _entry(".wh.f")]))
    assert (tmp_path / "f").read_bytes() == b"upper"


@needs_chown
def test_unpack_keeps_owners_modes_mtimes_links_and_devices(tmp_path: Path) -> None:
    _apply(tmp_path, _layer([
        _entry("bin", tarfile.DIRTYPE, mode=0o711, uid=3, gid=4),
        _entry("bin/tool", data=b"#!", mode=0o4755, uid=10, gid=20),
        _entry("bin/alias", tarfile.SYMTYPE, linkname="tool"),
        _entry("bin/hard", tarfile.LNKTYPE, linkname="bin/tool"),
        _entry("dev-null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        _entry("implicit/parent/file", data=b"p"),
    ]))
    tool = os.lstat(tmp_path / "bin" / "tool")
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_gid, int(tool.st_mtime)) == (0o4755, 10, 20, MTIME)
    directory = os.lstat(tmp_path / "bin")
    assert (stat.S_IMODE(directory.st_mode), directory.st_uid, int(directory.st_mtime)) == (0o711, 3, MTIME)
    assert os.readlink(tmp_path / "bin" / "alias") == "tool"
    assert os.lstat(tmp_path / "bin" / "hard").st_ino == tool.st_ino
    assert stat.S_ISCHR(os.lstat(tmp_path / "dev-null").st_mode)
    assert (tmp_path / "implicit" / "parent" / "file").read_bytes() == b"p"


def test_symlinks_planted_by_a_layer_cannot_redirect_writes_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    _apply(root, _layer([
        _entry("etc", tarfile.SYMTYPE, linkname=str(outside)),
        _entry("up", tarfile.SYMTYPE, linkname="../../.."),
    ]))
    _apply(root, _layer([_entry("etc/passwd", data=b"pw"), _entry("up/x", data=b"x")]))
    assert list(outside.iterdir()) == []
    assert (root / str(outside).lstrip("/") / "passwd").read_bytes() == b"pw"
    assert (root / "x").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/abs"])
def test_unsafe_layer_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        _apply(tmp_path, _layer([_entry(name, data=b"x")]))


def test_add_archives_treat_whiteout_names_as_files_and_can_override_owners(tmp_path: Path) -> None:
    _apply(tmp_path, _layer([_entry(".wh.file", data=b"w", uid=5)]), whiteouts=False, owner=(0, 0))
    assert os.lstat(tmp_path / ".wh.file").st_uid == 0


def test_resolve_in_root_treats_the_root_as_slash(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    os.symlink("/a", tmp_path / "abs")
    os.symlink("../../../a", tmp_path / "rel")
    os.symlink("loop", tmp_path / "loop")
    assert resolve_in_root(tmp_path, "/abs/f") == tmp_path / "a" / "f"
    assert resolve_in_root(tmp_path, "rel/f") == tmp_path / "a" / "f"
    assert resolve_in_root(tmp_path, "../../abs") == tmp_path / "abs"
    assert resolve_in_root(tmp_path, "abs", follow_final=True) == tmp_path / "a"
    with pytest.raises(InvalidArgumentError, match="too many levels"):
        resolve_in_root(tmp_path, "loop/x")


# -- diff ---------------------------------------------------------------------------------------

def _make(root: Path, files: dict[str, bytes | None]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(data)


def _snapshot(root: Path) -> Snapshot:
    snapshot = take_snapshot(root)
    wait_past(snapshot, root.parent)
    return snapshot


def test_empty_diff_is_dockers_empty_layer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make(root, {"a": b"a", "d/b": b"b"})
    data = _diff(root, _snapshot(root))
    assert data == b"\0" * 1024
    assert hashlib.sha256(data).hexdigest() == "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"


def test_diff_entries_whiteouts_first_parents_included(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make(root, {"etc/a": b"a", "etc/b": b"b", "etc/z": b"z", "gone/x": b"x", "keep/sub/same": b"s",
                 "was_dir/child": b"c", "mode": b"m"})
    before = _snapshot(root)
    (root / "etc" / "b").unlink()
    (root / "etc" / "a").write_bytes(b"changed")
    (root / "etc" / "new").write_bytes(b"new")
    shutil.rmtree(root / "gone")
    (root / "keep" / "sub" / "added").write_bytes(b"+")
    shutil.rmtree(root / "was_dir")
    (root / "was_dir").write_bytes(b"now a file")
    os.chmod(root / "mode", 0o600)
    os.symlink("etc/a", root / "link")
    os.link(root / "etc" / "new", root / "hardlink")
    members = _members(_diff(root, before))
    names = [m.name for m in members]
    assert names == [
        ".wh.gone", ".wh.was_dir", "etc", "etc/.wh.b", "etc/a", "etc/new", "hardlink", "keep", "keep/sub",
        "keep/sub/added", "link", "mode", "was_dir",
    ]
    by_name = {m.name: m for m in members}
    assert by_name["etc/new"].isreg() and by_name["hardlink"].islnk()
    assert by_name["hardlink"].linkname == "etc/new"
    assert by_name["link"].issym() and by_name["link"].linkname == "etc/a"
    assert by_name["mode"].mode == 0o600
    assert by_name["etc"].isdir() and by_name["etc/.wh.b"].size == 0
    assert all(m.uname == "" and m.gname == "" for m in members)


def test_diff_round_trips_onto_a_copy_of_the_base(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make(root, {"a/b/c": b"c", "a/d": b"d", "x": b"x", "y/z": b"z"})
    base = _layer_of(root)
    before = _snapshot(root)
    shutil.rmtree(root / "a" / "b")
    (root / "a" / "b").mkdir()
    (root / "a" / "b" / "fresh").write_bytes(b"f")
    (root / "x").unlink()
    os.symlink("/y/z", root / "x")
    (root / "y" / "z").write_bytes(b"zz")
    os.utime(root / "y" / "z", (MTIME, MTIME))
    diff = _diff(root, before)
    replay = tmp_path / "replay"
    replay.mkdir()
    _apply(replay, base)
    _apply(replay, diff)
    assert _tree_without_dir_times(replay) == _tree_without_dir_times(root)


def _layer_of(root: Path) -> bytes:
    return _diff(root, Snapshot())


def _tree_without_dir_times(root: Path) -> dict[str, tuple[Any, ...]]:
    return _tree(root)


@needs_chown
def test_diff_keeps_numeric_owners(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _make(root, {"f": b"f"})
    before = _snapshot(root)
    os.chown(root / "f", 1234, 5678)
    (member,) = _members(_diff(root, before))
    assert (member.name, member.uid, member.gid) == ("f", 1234, 5678)


_NAMES = st.sampled_from(["a", "b", "c", "d/e", "d/f", "g/h/i", "g/j"])
_OPS = st.lists(st.tuples(st.sampled_from(["write", "delete", "mkdir", "chmod", "symlink"]), _NAMES),
                max_size=8)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.dictionaries(_NAMES, st.binary(max_size=8), max_size=5), ops=_OPS)
def test_diff_round_trip_property(tmp_path: Path, initial: dict[str, bytes], ops: list[tuple[str, str]]) -> None:
    work = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    root = work / "root"
    root.mkdir(parents=True)
    for name, data in initial.items():
        path = root / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
    base = _layer_of(root)
    before = _snapshot(root)
    for op, name in ops:
        path = root / name
        try:
            if op == "write":
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                path.write_bytes(b"w" + name.encode())
            elif op == "delete":
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    path.unlink()
            elif op == "mkdir":
                path.mkdir(parents=True, exist_ok=True)
            elif op == "chmod" and os.path.lexists(path) and not path.is_symlink():
                os.chmod(path, 0o700)
            elif op == "symlink" and not os.path.lexists(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink("target", path)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
    diff = _diff(root, before)
    names = [m.name.rstrip("/") for m in _members(diff)]
    assert len(names) == len(set(names)), "no duplicate entries in a layer"
    replay = work / "replay"
    replay.mkdir()
    _apply(replay, base)
    _apply(replay, diff)
    assert _tree(replay) == _tree(root)


# -- RUN ----------------------------------------------------------------------------------------

@pytest.fixture
def busybox_root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ["sh", "echo", "id", "cat", "ls", "hostname", "sleep", "touch", "pwd", "rm", "mkdir"]:
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    return root


def _run(root: Path, script: str, *, user: str = "", workdir: str = "/",
         cancelled: Any = lambda: False) -> tuple[int, list[str]]:
    lines: list[str] = []
    request = RunRequest(("/bin/sh", "-c", script), ("PATH=/bin", "GREETING=hi"), user, workdir, "c0ffee123456")
    code = run_isolated(root, request, scratch=root.parent / "scratch", output=lines.append, cancelled=cancelled)
    return code, lines


@needs_root
def test_run_is_isolated_and_leaves_no_mount_stubs(busybox_root: Path) -> None:
    before = take_snapshot(busybox_root)
    wait_past(before, busybox_root.parent)
    code, lines = _run(
        busybox_root,
        "echo $GREETING; hostname; echo pid=$$; ls /proc/self >/dev/null && echo proc; "
        "test -c /dev/null && echo dev; cat /etc/hosts | grep -c localhost; echo made > /made",
    )
    assert code == 0
    assert lines[:4] == ["hi\n", "c0ffee123456\n", "pid=1\n", "proc\n"]
    assert "dev\n" in lines
    diff = _diff(busybox_root, before)
    assert [m.name for m in _members(diff)] == ["made"]
    assert not (busybox_root / "proc").exists() and not (busybox_root / "dev").exists()
    assert not (busybox_root / "etc" / "hosts").exists()


@needs_root
def test_run_exit_codes_user_and_workdir(busybox_root: Path) -> None:
    assert _run(busybox_root, "exit 3")[0] == 3
    code, lines = _run(busybox_root, "id; pwd", user="app", workdir="/work/dir")
    assert code == 0
    assert lines == ["uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n", "/work/dir\n"]
    assert (busybox_root / "work" / "dir").is_dir()
    with pytest.raises(FailedPreconditionError, match="unable to find user nobody"):
        _run(busybox_root, "true", user="nobody")


@needs_root
def test_background_processes_die_with_the_run(busybox_root: Path) -> None:
    code, _ = _run(busybox_root, "sleep 60 & echo started")
    assert code == 0  # returns at once: the PID namespace ends with its first process


@needs_root
def test_run_can_be_cancelled(busybox_root: Path) -> None:
    flag = threading.Event()
    timer = threading.Timer(0.5, flag.set)
    timer.start()
    with pytest.raises(CancelledError):
        _run(busybox_root, "sleep 60", cancelled=flag.is_set)


@needs_root
def test_missing_commands_exit_127(busybox_root: Path) -> None:
    lines: list[str] = []
    request = RunRequest(("no-such-tool",), ("PATH=/bin",), "", "/", "h")
    assert run_isolated(busybox_root, request, scratch=busybox_root.parent / "s", output=lines.append) == 127
    assert lines and "no-such-tool" in lines[0]


def test_run_without_root_is_a_failed_precondition(busybox_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module.os, "geteuid", lambda: 1000)
    with pytest.raises(FailedPreconditionError, match="RUN cannot be isolated: cairn runs as uid 1000"):
        _run(busybox_root, "true")


def test_run_without_unshare_is_a_failed_precondition(busybox_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(run_module.shutil, "which", lambda *a, **k: None)
    with pytest.raises(FailedPreconditionError, match="'unshare' binary"):
        _run(busybox_root, "true")


@needs_root
def test_a_sandbox_that_fails_before_exec_is_a_failed_precondition(
    busybox_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken_sandbox.py"
    broken.write_text("import sys\nprint('mount: permission denied')\nsys.exit(1)\n")
    monkeypatch.setattr(run_module, "_SANDBOX", broken)
    with pytest.raises(FailedPreconditionError, match="RUN cannot be isolated: mount: permission denied"):
        _run(busybox_root, "true")
    assert not (busybox_root / "proc").exists()


class _Blob:
    """A content-store ReaderAt over bytes, without a local path (as a remote backend gives)."""

    path = None

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_layer_blobs_stream_in_every_compression(tmp_path: Path, codec: str) -> None:
    data = _layer([_entry("z", tarfile.DIRTYPE), _entry("z/file", data=b"layer")])
    if codec == "gzip":
        data = gzip.compress(data)
    elif codec == "zstd":
        zstandard = pytest.importorskip("zstandard")
        data = zstandard.ZstdCompressor().compress(data)
    with open_layer_tar(_Blob(data), "test layer") as archive:  # type: ignore[arg-type]
        unpack_layer(archive, tmp_path, "test layer")
    assert (tmp_path / "z" / "file").read_bytes() == b"layer"
