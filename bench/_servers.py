"""The two servers under test, each a child process in its own session.

:class:`Containerd` is a private containerd 1.6 run as content-api.md
section 9 describes (short temp dir, GC held off so ``ctr content ingest``
blobs survive until the benchmark removes them). :class:`Cairn` is
``python -m cairn serve`` on free loopback ports with its gRPC unix socket in
its data directory. Both are stopped by their own PID (SIGTERM, then SIGKILL
of their process group) and never by name.

This module is for the benchmark only: it is not a test fixture.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "Cairn",
    "Containerd",
    "Server",
    "context_switches",
    "cpu_seconds",
    "free_port",
]

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_TICKS = os.sysconf("SC_CLK_TCK")

_CONTAINERD_CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
]
[grpc]
  address = "{d}/run/containerd.sock"
[ttrpc]
  address = "{d}/run/containerd.sock.ttrpc"
[debug]
  address = "{d}/run/debug.sock"
  level = "warn"
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "1h"
  mutation_threshold = 1000000
  deletion_threshold = 0
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def context_switches(pid: int) -> int:
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


class Server:
    """A server child process; ``socket`` is what ``ctr -a`` takes."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "server.log"

    @property
    def socket(self) -> Path:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    @property
    def blobs(self) -> Path:
        """The directory holding the server's sha256 blob files."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def drop_unreferenced(self, digests: list[str]) -> None:
        """Do GC's job for blobs the benchmark removed with ``ctr content rm``.

        Neither server deletes the bytes at ``rm`` (containerd's GC is held
        off; cairn's runs on a schedule the benchmarks turn off or leave
        far away). Left on disk, they would make the next
        ingest of the same bytes cheaper or dearer than a first one: containerd
        links them without receiving data when ``--expected-digest`` is given
        (content-api.md 4.10), and cairn's commit finds its target taken.
        Deleting the files nothing names keeps every ingest a first write.
        """
        for digest in digests:
            (self.blobs / digest.removeprefix("sha256:")).unlink(missing_ok=True)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def context_switches(self) -> int:
        """Voluntary + involuntary context switches of the live threads so far."""
        return context_switches(self.pid)

    def _spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches the bench, not the server
            )

    def _wait_until(self, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {STARTUP_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM to our own PID, then SIGKILL to its process group; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
            except ProcessLookupError:
                pass
            proc.wait(STOP_TIMEOUT)


class Containerd(Server):
    """A private containerd 1.6 with its root, state and sockets under ``directory``."""

    name = "containerd"

    @property
    def socket(self) -> Path:
        return self.directory / "run" / "containerd.sock"

    @property
    def blobs(self) -> Path:
        return self.directory / "root" / "io.containerd.content.v1.content" / "blobs" / "sha256"

    def start(self) -> None:
        for sub in ("root", "state", "run"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.toml"
        config.write_text(_CONTAINERD_CONFIG.format(d=self.directory))
        self._spawn(["containerd", "--config", str(config)])
        self._wait_until(self.socket.is_socket)


class Cairn(Server):
    """``python -m cairn serve`` on free loopback ports; optionally pinned, extra flags and env."""

    name = "cairn"

    def __init__(
        self, directory: Path, extra_args: str = "", cpus: str = "", env: dict[str, str] | None = None
    ) -> None:
        super().__init__(directory)
        self.extra_args = shlex.split(extra_args)
        self.cpus = cpus
        self.extra_env = env or {}
        self.grpc_port = free_port()
        self.http_port = free_port()

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket(self) -> Path:
        return self.data_dir / "cairn.sock"

    @property
    def blobs(self) -> Path:
        return self.data_dir / "content" / "blobs" / "sha256"  # the default --content-url

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "cairn",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--grpc-addr",
            f"127.0.0.1:{self.grpc_port}",
            "--http-addr",
            f"127.0.0.1:{self.http_port}",
            "--log-level",
            "warning",
            *self.extra_args,
        ]
        if self.cpus:
            command = ["taskset", "-c", self.cpus, *command]  # taskset execs: same PID
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")} | self.extra_env
        self._spawn(command, env)
        self._wait_until(self._healthy)

    def _healthy(self) -> bool:
        if not self.socket.is_socket():
            return False
        try:
            url = f"http://127.0.0.1:{self.http_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
