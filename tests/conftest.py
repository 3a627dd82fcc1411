"""Shared fixtures: a real ``cairn serve`` process on free loopback ports.

``cairn_server`` starts one per test in a short temporary data directory
(unix socket paths must fit in 107 bytes), waits until ``/healthz`` answers
and the socket exists, and stops it afterwards. Tests may ``kill()`` it
(SIGKILL) and ``start()`` it again on the same data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from hypothesis import settings

STARTUP_TIMEOUT = 20.0

# Property tests judge behaviour, not speed: on a loaded 2-core CI machine a per-example
# deadline only produces flaky failures.
settings.register_profile("cairn", deadline=None)
settings.load_profile("cairn")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cairn_command() -> list[str]:
    return [sys.executable, "-m", "cairn"]


@dataclass
class CairnServer:
    """A ``cairn serve`` child process and where to reach it."""

    data_dir: Path
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def socket(self) -> Path:
        return self.data_dir / "cairn.sock"

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        """Environment for client commands (``cairn content ...``) to find this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_SERVER"] = str(self.socket)
        env["CAIRN_URL"] = self.http_url
        return env

    def start(self) -> None:
        self.log_path = self.data_dir.parent / f"serve-{int(time.time() * 1000)}.log"
        with open(self.log_path, "wb") as log:
            self.proc = self._spawn(log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cairn serve exited {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists() and self._healthy():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"cairn serve did not become ready:\n{self.log()}")

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *cairn_command(),
                "serve",
                "--data-dir", str(self.data_dir),
                "--grpc-addr", self.grpc_addr,
                "--http-addr", f"127.0.0.1:{self.http_port}",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (for unix sockets)."""
    path = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cairn_server(short_tmp: Path) -> Iterator[CairnServer]:
    server = CairnServer(short_tmp / "data")
    server.start()
    yield server
    try:
        server.stop()
    finally:
        server.kill()


def require_binary(name: str) -> str:
    """The path of ``name``; fails (does not skip) when CI is set, since CI must install it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; the test command must install it")
        pytest.skip(f"{name} is not installed")
    return path
