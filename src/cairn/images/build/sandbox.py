"""The process that becomes a RUN command: mounts, chroot, identity, then exec.

:mod:`cairn.images.build.run` starts this file as a script
(``unshare --mount --pid --uts --ipc --fork ... python -I -S sandbox.py spec.json``),
so it runs as PID 1 of fresh namespaces and may use the standard library only
(``-S``: no site-packages, and nothing of cairn is imported). It mounts
``/proc``, a small ``/dev`` (tmpfs with the host's null, zero, full, random,
urandom and tty nodes bound in), ``/sys`` read-only when the image has it, and
the generated ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``; sets
the hostname; chroots; changes to the working directory (created if missing,
as runc does); drops to the requested uid, gid and groups; and execs the
command. The mounts live in the private mount namespace only and vanish with
it, so nothing needs unmounting on the host.

Python has no ``mount(2)`` or ``sethostname(2)`` binding, hence ``ctypes``; the
``mount`` binary would need the image to contain it. Setup failures are
reported on the status descriptor and end with code 125; ``ready`` is written
there just before ``exec`` (the descriptor is close-on-exec), so the parent can
tell "could not isolate" from "the command failed".
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_STRICTATIME = 0x1000000

_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}

_libc = ctypes.CDLL(None, use_errno=True)


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """``mount(2)``; raises OSError naming the mount."""
    result = _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data))
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype or source} on {target}: {os.strerror(errno)}")


def _setup_dev(target: str) -> None:
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    for name in _DEVICES:
        if not os.path.exists(f"/dev/{name}"):
            continue  # a host without it (no /dev/tty in some containers): the build goes without
        node = os.path.join(target, name)
        os.close(os.open(node, os.O_WRONLY | os.O_CREAT, 0o666))
        mount(f"/dev/{name}", node, None, MS_BIND)
    for name, link in _DEV_LINKS.items():
        os.symlink(link, os.path.join(target, name))
    os.mkdir(os.path.join(target, "shm"), 0o1777)
    os.chmod(os.path.join(target, "shm"), 0o1777)
    pts = os.path.join(target, "pts")
    os.mkdir(pts, 0o755)
    try:
        mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    except OSError:
        pass  # no pseudo-terminals: builds rarely need them


def setup(spec: dict[str, Any]) -> None:
    """Everything between the fresh namespaces and ``exec``; raises OSError on failure."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for item in spec["mounts"]:
        kind, target = item["type"], item["target"]
        if kind == "proc":
            mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        elif kind == "sysfs":
            mount("sysfs", target, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        elif kind == "dev":
            _setup_dev(target)
        elif kind == "bind":
            mount(item["source"], target, None, MS_BIND)
        else:
            raise OSError(0, f"unknown mount type {kind!r}")
    hostname = spec["hostname"].encode()
    if _libc.sethostname(hostname, ctypes.c_size_t(len(hostname))) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sethostname: {os.strerror(errno)}")
    os.chroot(spec["rootfs"])
    os.chdir("/")
    os.umask(0o022)
    os.makedirs(spec["cwd"], mode=0o755, exist_ok=True)
    os.chdir(spec["cwd"])
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    status = int(spec["status_fd"])
    os.set_inheritable(status, False)
    try:
        setup(spec)
    except OSError as exc:
        os.write(status, f"{exc.strerror or exc}\n".encode())
        return 125
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in spec["env"])
    args: list[str] = spec["argv"]
    os.write(status, b"ready\n")
    try:
        os.execvpe(args[0], args, env)
    except OSError as exc:
        sys.stderr.write(f"exec {args[0]}: {exc.strerror}\n")
        sys.stderr.flush()
        return 127
    return 127  # pragma: no cover - execvpe does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv))
