"""The two OCI registries under test, each a child process in its own session.

:class:`Distribution` is Debian's ``docker-registry`` (CNCF distribution 2.8.2)
configured as oci-distribution.md section 9.1 says: filesystem storage in its
own directory, deletion enabled, in-memory blob descriptor cache, no access
log, listening on a free loopback port. :class:`CairnRegistry` is
``python -m cairn serve`` (the :class:`_servers.Cairn` helper) whose HTTP
address serves ``/v2/``. Both are stopped by their own PID, never by name
(:meth:`_servers.Server.stop`).

This module is for the benchmark only: it is not a test fixture.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from _servers import Cairn, Server, free_port

__all__ = [
    "CairnRegistry",
    "Distribution",
    "RegistryServer",
    "distribution_version",
    "v2_ready",
]

_DISTRIBUTION_CONFIG = """\
version: 0.1
log: {{level: warn, accesslog: {{disabled: true}}}}
storage:
  filesystem: {{rootdirectory: {root}}}
  delete: {{enabled: true}}
  cache: {{blobdescriptor: inmemory}}
http:
  addr: 127.0.0.1:{port}
  headers: {{X-Content-Type-Options: [nosniff]}}
"""


def v2_ready(base: str, timeout: float = 1.0) -> bool:
    """``GET <base>/v2/`` answers 200: the registry face is up."""
    try:
        with urllib.request.urlopen(f"{base}/v2/", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def distribution_version() -> str:
    if shutil.which("docker-registry") is None:
        return "?"
    out = subprocess.run(
        ["docker-registry", "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    words = out.stdout.split()
    return words[2] if len(words) >= 3 else (words[-1] if words else "?")


class RegistryServer(Server):
    """A server with an HTTP base URL (``http://127.0.0.1:PORT``) serving ``/v2/``."""

    @property
    def base(self) -> str:
        raise NotImplementedError

    @property
    def data_dir(self) -> Path:
        """Where the server keeps everything it stores (removed between runs)."""
        raise NotImplementedError


class Distribution(RegistryServer):
    """``docker-registry serve config.yml`` with its storage under ``directory``."""

    name = "distribution"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port = free_port()

    @property
    def socket(self) -> Path:  # not a unix-socket server; kept for Server's interface
        return self.directory / "no-socket"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "reg"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yml"
        config.write_text(_DISTRIBUTION_CONFIG.format(root=self.data_dir, port=self.port))
        self._spawn(["docker-registry", "serve", str(config)])
        self._wait_until(lambda: v2_ready(self.base))


class CairnRegistry(Cairn, RegistryServer):
    """``cairn serve`` on fresh data; ready once ``/healthz`` answers (``/v2/`` is checked apart).

    On a loopback address ``cairn serve`` needs no authentication flag.
    """

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def v2_ready(self) -> bool:
        return v2_ready(self.base, timeout=2.0)
