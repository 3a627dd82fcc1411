"""A throwaway PostgreSQL server for tests, and the ``catalog_url`` fixture over both engines.

``postgres_server`` (session scope) runs Debian's ``initdb`` and ``postgres`` from
``/usr/lib/postgresql/<version>/bin`` as a child process in a temporary directory, on a
free loopback port, with trust authentication and durability switched off (a test server
holds nothing worth an fsync). PostgreSQL refuses to run as root, so under root both
binaries run as the ``postgres`` system user (``runuser``) and the directory is theirs.

:func:`engine_catalog_url` gives an empty catalog's URL for one engine (``sqlite`` or
``postgresql``); a test module parametrises its own fixture over :data:`ENGINES` with it,
so each test runs once per engine. ``tests/conftest.py`` registers this module as a plugin,
so ``postgres_server`` is a fixture of every test module (the ``scaled`` backend uses it
too); a module that imports it as well gets a server of its own.
A PostgreSQL catalog is a fresh database owned by an unprivileged role, as a production
catalog would be. Under CI a missing PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port

__all__ = ["ENGINES", "PostgresServer", "engine_catalog_url", "find_postgres_bin", "postgres_server"]

ENGINES = ("sqlite", "postgresql")
ROLE = "cairn"
STARTUP_TIMEOUT = 30.0
_databases = itertools.count()


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and postgres."""
    found = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            try:
                found.append((int(candidate.parent.name), candidate))
            except ValueError:
                continue
    return max(found)[1] if found else None


@dataclass
class PostgresServer:
    """A ``postgres`` child process on ``127.0.0.1:port`` with its cluster in ``root``."""

    bin_dir: Path
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        # initdb and postgres refuse to run as root.
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def start(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._as_owner([
                str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--no-sync",
                # A natural-language default collation (ICU "en": "a" < "B" < "b") makes the
                # tests prove that listings keep byte order whatever the database's collation.
                "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en",
            ]),
            check=True, capture_output=True,
        )
        self._launch()
        self.admin(f"CREATE ROLE {ROLE} LOGIN")

    def _launch(self) -> None:
        """Run ``postgres`` on the cluster and wait until it takes connections."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._as_owner([
                    str(self.bin_dir / "postgres"), "-D", str(self.data_dir),
                    "-h", "127.0.0.1", "-p", str(self.port), "-k", str(self.root),
                    "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
                ]),
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}:\n{self.log()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not become ready:\n{self.log()}")

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT): every connection dropped, no checkpoint, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            # The postmaster itself (runuser, when root, does not pass SIGQUIT on).
            postmaster = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGQUIT)
            self.proc.wait(30)

    def relaunch(self) -> None:
        """Start again on the same cluster and port after :meth:`crash` (crash recovery runs)."""
        self._launch()

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres", user="postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the superuser, outside a transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.url("postgres", user="postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def url(self, database: str, user: str = ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database owned by the unprivileged role; returns its URL."""
        name = f"cairn_{os.getpid()}_{next(_databases)}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database :meth:`create_database` made, closing any connection left to it."""
        self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; the test command must install it (Debian: postgresql)")
        pytest.skip("PostgreSQL is not installed (Debian: postgresql)")
    root = Path(tempfile.mkdtemp(prefix="cairn-pg-", dir="/tmp"))
    server = PostgresServer(bin_dir, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def engine_catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog's URL on the engine ``request.param`` names."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'cairn.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
