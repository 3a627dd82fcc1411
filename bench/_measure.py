"""Test files, ``ctr`` against a server, and timing an action together with the CPU it cost.

:func:`timed` reports wall time, the server's CPU time, the client's CPU time
(``ctr`` children plus this process) and "other" CPU time: what the rest of
the machine used meanwhile. The machine is shared, so other engineers' work
lands there, and so do kernel threads working for us (writeback, interrupts).
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from _servers import Server

__all__ = [
    "CHUNK",
    "NAMESPACE",
    "Blob",
    "Ctr",
    "Timed",
    "hash_file",
    "make_small_blobs",
    "mbps",
    "timed",
    "write_fsync",
    "write_random_file",
]

NAMESPACE = "bench"
CHUNK = 1 << 20
SMALL_SIZE = 4096
_TICKS = os.sysconf("SC_CLK_TCK")


# -- files --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blob:
    path: Path
    digest: str
    size: int


def write_random_file(path: Path, size: int) -> Blob:
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        remaining = size
        while remaining > 0:
            chunk = os.urandom(min(CHUNK, remaining))
            f.write(chunk)
            hasher.update(chunk)
            remaining -= len(chunk)
    return Blob(path, f"sha256:{hasher.hexdigest()}", size)


def make_small_blobs(directory: Path, count: int) -> list[Blob]:
    """``count`` files of 4 KiB, each with its own random content."""
    directory.mkdir(parents=True, exist_ok=True)
    return [write_random_file(directory / f"{i:05d}", SMALL_SIZE) for i in range(count)]


def hash_file(path: Path) -> str:
    """sha256 of a file read in 1 MiB pieces into one reused buffer (the hashing limit)."""
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def write_fsync(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` in 1 MiB writes, then fsync (the write limit)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(source, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                os.write(fd, view[:n])
        os.fsync(fd)
    finally:
        os.close(fd)


# -- ctr ----------------------------------------------------------------------------------------
class Ctr:
    """``ctr -a <socket> -n bench ...``, each command bounded by ``timeout`` seconds."""

    def __init__(self, server: Server, timeout: float) -> None:
        self.server = server
        self.timeout = timeout

    def _command(self, *args: str) -> list[str]:
        return [
            "ctr",
            "-a",
            str(self.server.socket),
            "-n",
            NAMESPACE,
            "--timeout",
            f"{int(self.timeout)}s",
            *args,
        ]

    def run(
        self,
        *args: str,
        stdin: BinaryIO | None = None,
        stdout: Any = subprocess.DEVNULL,
    ) -> None:
        result = subprocess.run(
            self._command(*args),
            stdin=stdin or subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=self.timeout + 10,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{self.server.name}: ctr {' '.join(args)} exited "
                f"{result.returncode}: {result.stderr.decode(errors='replace').strip()}"
            )

    def ingest(self, ref: str, blob: Blob, expected: bool = False) -> None:
        flags = ["--expected-size", str(blob.size), "--expected-digest", blob.digest] if expected else []
        with open(blob.path, "rb") as f:
            self.run("content", "ingest", *flags, ref, stdin=f)

    def get(self, digest: str) -> None:
        self.run("content", "get", digest)

    def read_digest(self, digest: str) -> str:
        """The sha256 of what ``ctr content get`` prints, streamed through a pipe (not timed)."""
        hasher = hashlib.sha256()
        with subprocess.Popen(
            self._command("content", "get", digest),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as proc:
            assert proc.stdout is not None
            deadline = time.monotonic() + self.timeout
            while chunk := proc.stdout.read(CHUNK):
                hasher.update(chunk)
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"{self.server.name}: reading {digest} timed out")
        return f"sha256:{hasher.hexdigest()}"

    def rm(self, digests: list[str]) -> None:
        """Remove blobs (200 per command), then their files, which nothing names any more."""
        for start in range(0, len(digests), 200):
            self.run("content", "rm", *digests[start : start + 200])
        self.server.drop_unreferenced(digests)


# -- timing -------------------------------------------------------------------------------------
def _system_busy() -> float:
    """CPU seconds this machine's CPUs spent busy since boot (steal excluded)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / _TICKS


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: ctr, not servers
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class Timed:
    seconds: float
    server_cpu: float
    client_cpu: float
    other_cpu: float
    server_switches: int

    @property
    def load(self) -> float:
        """Other CPU per wall second: 0 on a quiet machine, up to the CPU count."""
        return self.other_cpu / self.seconds if self.seconds > 0 else 0.0


def timed(server: Server, action: Callable[[], object]) -> Timed:
    """Run ``action`` once and measure it."""
    switches0 = server.context_switches()
    busy0, server0, own0 = _system_busy(), server.cpu(), _own_cpu()
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    busy1, server1, own1 = _system_busy(), server.cpu(), _own_cpu()
    switches = server.context_switches() - switches0
    client = own1 - own0
    other = max(0.0, (busy1 - busy0) - (server1 - server0) - client)
    return Timed(seconds, server1 - server0, client, other, switches)


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6
