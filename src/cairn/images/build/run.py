"""RUN: execute a command in the build's root filesystem, isolated with namespaces and chroot.

cairn runs RUN itself (DECISIONS.md image-service 14): as root, util-linux
``unshare`` gives the command fresh mount, PID, UTS and IPC namespaces, and
:mod:`cairn.images.build.sandbox` (the namespace's PID 1) mounts ``/proc``,
``/dev`` and the ``/etc`` files, chroots and execs. There is no network
namespace: the command reaches what the host reaches (package mirrors, for
one). When the PID 1 exits every process the command left behind dies with the
namespace, and its mounts disappear.

Mount points the image lacks (``/proc``, ``/dev``, ``/etc/hosts``...) are
created as stubs before and removed after, and the mtimes of the directories
they were created in are put back, so none of this reaches the layer diff.

When the host cannot isolate (not root, no ``unshare``, namespaces refused),
:class:`FailedPreconditionError` says what is missing. This module does not
snapshot or diff; the builder does that around :func:`run_isolated`.
"""

from __future__ import annotations

import collections
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cairn.core.errors import CancelledError, FailedPreconditionError
from cairn.images.build.paths import resolve_in_root
from cairn.images.build.users import resolve_user

__all__ = ["RunRequest", "check_isolation", "run_isolated"]

_SANDBOX = Path(__file__).with_name("sandbox.py")
_TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_MAX_LINE = 64 << 10
_POLL = 0.2


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What to run: argv (already wrapped in SHELL for the shell form), env, user, cwd, hostname."""

    argv: tuple[str, ...]
    env: tuple[str, ...]
    user: str
    workdir: str
    hostname: str


@dataclass(slots=True)
class _Stubs:
    """Mount points created for one RUN, removed afterwards without leaving a trace."""

    created: list[Path] = field(default_factory=list)
    parents: dict[Path, tuple[int, int]] = field(default_factory=dict)
    after_create: dict[Path, int] = field(default_factory=dict)

    def _touch_parent(self, path: Path) -> None:
        parent = path.parent
        if parent not in self.parents and parent.exists():
            info = os.lstat(parent)
            self.parents[parent] = (info.st_atime_ns, info.st_mtime_ns)

    def ensure(self, root: Path, relative: str, *, directory: bool) -> Path:
        target = resolve_in_root(root, relative, follow_final=True)
        missing: list[Path] = []
        probe = target
        while probe != root and not os.path.lexists(probe):
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            self._touch_parent(path)
            if path == target and not directory:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            else:
                os.mkdir(path, 0o755)
            self.created.append(path)
        return target

    def settle(self) -> None:
        for parent in self.parents:
            self.after_create[parent] = os.lstat(parent).st_mtime_ns

    def remove(self) -> None:
        current = {p: os.lstat(p).st_mtime_ns for p in self.parents if p.exists()}
        for path in reversed(self.created):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except OSError:
                continue  # the command put something there: it belongs to the layer now
        for parent, (atime, mtime) in self.parents.items():
            if parent not in current or not parent.exists():
                continue
            untouched = current[parent] == self.after_create.get(parent)
            os.utime(parent, ns=(atime, mtime if untouched else current[parent]), follow_symlinks=False)


def check_isolation() -> str:
    """The ``unshare`` binary to use; raises FailedPreconditionError when RUN cannot be isolated here."""
    if os.geteuid() != 0:
        raise FailedPreconditionError(
            f"RUN cannot be isolated: cairn runs as uid {os.geteuid()}, and RUN needs root "
            "(mount/PID/UTS/IPC namespaces and chroot)"
        )
    unshare = shutil.which("unshare", path=_TOOL_PATH)
    if unshare is None:
        raise FailedPreconditionError("RUN cannot be isolated: the util-linux 'unshare' binary is not installed")
    return unshare


def _etc_files(scratch: Path, hostname: str) -> dict[str, Path]:
    hosts = scratch / "hosts"
    hosts.write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"127.0.1.1\t{hostname}\n"
    )
    resolv = scratch / "resolv.conf"
    try:
        shutil.copyfile("/etc/resolv.conf", resolv)
    except OSError:
        resolv.write_text("")
    name = scratch / "hostname"
    name.write_text(hostname + "\n")
    return {"etc/hosts": hosts, "etc/resolv.conf": resolv, "etc/hostname": name}


def _mounts(root: Path, scratch: Path, hostname: str, stubs: _Stubs) -> list[dict[str, str]]:
    mounts = [
        {"type": "proc", "target": str(stubs.ensure(root, "proc", directory=True))},
        {"type": "dev", "target": str(stubs.ensure(root, "dev", directory=True))},
    ]
    sys_dir = resolve_in_root(root, "sys", follow_final=True)
    if sys_dir.is_dir():
        mounts.append({"type": "sysfs", "target": str(sys_dir)})
    for relative, source in _etc_files(scratch, hostname).items():
        target = stubs.ensure(root, relative, directory=False)
        if not stat.S_ISREG(os.lstat(target).st_mode):
            continue  # a directory or device where the file should be: leave the image's own
        mounts.append({"type": "bind", "source": str(source), "target": str(target)})
    stubs.settle()
    return mounts


def run_isolated(
    root: Path,
    request: RunRequest,
    *,
    scratch: Path,
    output: Callable[[str], None],
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Run ``request`` inside ``root``; stream its output lines; return its exit code.

    Blocks until the command ends. Raises :class:`FailedPreconditionError` when
    the command cannot be isolated or its USER does not exist in the image, and
    :class:`CancelledError` (after killing it) when ``cancelled()`` turns true.
    """
    unshare = check_isolation()
    user = resolve_user(root, request.user)
    scratch.mkdir(parents=True, exist_ok=True)
    stubs = _Stubs()
    spec_path = scratch / "spec.json"
    read_status, write_status = os.pipe()
    try:
        env = list(request.env)
        if not any(item.startswith("HOME=") for item in env):
            env.append(f"HOME={user.home}")
        spec = {
            "rootfs": str(root), "mounts": _mounts(root, scratch, request.hostname, stubs),
            "hostname": request.hostname, "cwd": request.workdir or "/", "uid": user.uid, "gid": user.gid,
            "groups": list(user.groups), "argv": list(request.argv), "env": env, "status_fd": write_status,
        }
        spec_path.write_text(json.dumps(spec))
        command = [unshare, "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child",
                   "--propagation", "private", "--", sys.executable, "-I", "-S", str(_SANDBOX), str(spec_path)]
        tail = _execute(command, write_status, output, cancelled)
        os.close(write_status)
        write_status = -1
        status, code = tail
        return _outcome(status, code, read_status)
    finally:
        if write_status >= 0:
            os.close(write_status)
        os.close(read_status)
        stubs.remove()
        spec_path.unlink(missing_ok=True)


def _execute(
    command: Sequence[str], status_fd: int, output: Callable[[str], None], cancelled: Callable[[], bool]
) -> tuple[collections.deque[str], int]:
    """Start ``command``, relay its output lines, return the last lines and the exit code."""
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(status_fd,), start_new_session=True, env={"PATH": _TOOL_PATH, "LANG": "C.UTF-8"},
        )
    except OSError as exc:
        raise FailedPreconditionError(f"RUN cannot be isolated: cannot start unshare: {exc}") from None
    assert process.stdout is not None
    last: collections.deque[str] = collections.deque(maxlen=5)
    pending = b""
    fd = process.stdout.fileno()
    try:
        while True:
            if cancelled():
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise CancelledError("build cancelled while a RUN step was running")
            ready, _, _ = select.select([fd], [], [], _POLL)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending or len(pending) > _MAX_LINE:
                if b"\n" in pending:
                    line, _, pending = pending.partition(b"\n")
                else:
                    line, pending = pending[:_MAX_LINE], pending[_MAX_LINE:]
                text = line.decode("utf-8", "replace") + "\n"
                last.append(text)
                output(text)
        if pending:
            text = pending.decode("utf-8", "replace") + "\n"
            last.append(text)
            output(text)
        return last, process.wait()
    finally:
        process.stdout.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _outcome(last: collections.deque[str], code: int, read_status: int) -> int:
    chunks = []
    while chunk := os.read(read_status, 4096):
        chunks.append(chunk)
    status = b"".join(chunks).decode("utf-8", "replace")
    if "ready\n" not in status:
        reason = status.strip() or "".join(last).strip() or f"unshare exited with code {code}"
        raise FailedPreconditionError(f"RUN cannot be isolated: {reason}")
    return code if code >= 0 else 128 - code
