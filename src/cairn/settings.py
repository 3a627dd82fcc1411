"""Every knob of ``cairn serve``, resolved once: defaults < config file < ``CAIRN_*`` < flags.

The config file is TOML with the same names as the flags (``data_dir``,
``http_addr``, ``grpc_addr``, ``socket``, ...); the environment twin of a
setting is ``CAIRN_`` plus its upper-cased name. Nothing else in cairn reads
``os.environ``: the server hands parts of the frozen :class:`Settings` down.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cairn.core.content.model import validate_namespace
from cairn.core.errors import InvalidArgumentError
from cairn.oci.registry.names import check_repository

__all__ = ["Address", "Settings", "parse_address", "parse_cpus"]

ENV_PREFIX = "CAIRN_"


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, what: str) -> Address:
    """``HOST:PORT`` or ``[IPv6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidArgumentError(f"{what} {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Address(host, int(port))


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidArgumentError(f"setting {name}: {value!r} is not a boolean")


def _as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"setting {name}: {value!r} is not an integer") from None


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one server process."""

    data_dir: Path = Path(".cairn")
    http_addr: Address = Address("127.0.0.1", 8090)
    grpc_addr: Address = Address("127.0.0.1", 8888)
    #: unix socket for gRPC (what ``ctr --address`` takes); default ``<data_dir>/cairn.sock``
    socket: Path | None = None
    #: content backend URL; default ``file://<data_dir>/content``
    content_url: str = ""
    #: catalog URL; default ``sqlite://<data_dir>/cairn.db``
    catalog_url: str = ""
    insecure_allow_anonymous: bool = False
    grpc_workers: int = 32
    read_chunk_bytes: int = 1 << 20
    #: CPUs for grpcio's threads: ``auto`` (one CPU), ``all``, or a list like ``0`` or ``0-1,4``
    grpc_cpus: str = "auto"
    log_level: str = "info"
    #: containerd namespace the registry's blobs and manifests live in (``ctr -n registry ...``)
    registry_namespace: str = "registry"
    #: largest manifest the registry accepts, in bytes (at least 4 MiB)
    manifest_max_bytes: int = 4 << 20
    #: seconds an idle upload session lives before it is expired
    upload_expiry_seconds: int = 24 * 3600
    #: htpasswd-style file of users with bcrypt hashes; setting it turns authentication on
    users_file: Path | None = None
    #: TOML file of per-repository access rules; default: every user may do everything
    access_file: Path | None = None
    #: lifetime of tokens issued by ``/token``, in seconds
    token_ttl_seconds: int = 300
    #: the key that signs ``/token`` tokens; default ``<data_dir>/token.key``, created on first start
    token_key_file: Path | None = None
    #: registry repository the Directory store keeps records in
    directory_repository: str = "dir"
    #: this node's id, sent to remote nodes when asking for registry credentials
    node_id: str = ""
    #: node ids (comma-separated; ``*`` for any) given read-only registry credentials for sync
    sync_allowed_nodes: str = ""
    #: seconds between polls of a remote registry by a continuous sync
    sync_poll_seconds: float = 30.0
    #: URL of this node's registry as remote nodes should reach it; default ``http://<http_addr>``
    advertise_url: str = ""
    #: Warg namespaces the operator log defines (comma-separated); new ones are added at start-up
    warg_namespaces: str = "cairn"
    #: Warg namespaces imported from other registries, ``ns=registry`` (comma-separated)
    warg_import_namespaces: str = ""
    #: the Warg operator key file; default ``<data_dir>/warg-operator.key``, created on first start
    warg_operator_key_file: Path | None = None
    #: longest a Warg sequencer batch runs before it is committed and checkpointed, in seconds
    warg_checkpoint_interval: float = 0.1
    #: largest Warg content upload, in bytes
    warg_upload_max_bytes: int = 1 << 30
    #: keys allowed to publish per Warg namespace, ``ns=keyid`` (comma-separated); unlisted: any key
    warg_authorized_keys: str = ""
    #: refuse Warg content that is not WebAssembly
    warg_wasm_only: bool = False
    #: containerd namespace the image service keeps image blobs in (``ctr -n images ...``)
    images_namespace: str = "images"
    #: registries the image service reaches over plain HTTP (comma-separated ``host[:port]``;
    #: loopback registries always are)
    image_insecure_registries: str = ""
    #: docker config.json / containers auth.json with registry credentials for pull, push and FROM
    image_auth_file: Path | None = None
    #: layers an image pull or push transfers at once
    image_parallel_transfers: int = 6
    #: OCI registry (e.g. another cairn) that ``cairn fsck --repair`` re-fetches corrupt or missing blobs from
    repair_peer: str = ""
    #: whole-blob reads of blobs up to this size are hashed as they are served and cut short if the
    #: digest does not match (0: never; hashing a large blob costs about a core for as long as it streams)
    verify_reads_max_bytes: int = 16 << 20
    #: PEM certificate chain for TLS on the HTTP and gRPC TCP listeners (with ``tls_key``)
    tls_cert: Path | None = None
    #: PEM private key of ``tls_cert``
    tls_key: Path | None = None
    #: requests per second each client may make (0: no limit); the unix socket is exempt
    rate_limit: float = 0.0
    #: requests a client may make at once above ``rate_limit`` (0: twice the rate, at least 1)
    rate_burst: int = 0
    #: seconds between scheduled garbage collections (0: none; ``cairn gc`` runs one by hand)
    gc_interval_seconds: int = 3600
    #: anything named, stored or changed more recently than this many seconds is kept by GC
    gc_grace_seconds: int = 3600
    #: containerd-namespace ingests idle longer than this (and held by no lease) are aborted by GC
    ingest_expiry_seconds: int = 86400
    config: Path | None = None

    @property
    def registry_url(self) -> str:
        """Where remote nodes reach this node's OCI registry (handed out for sync)."""
        return self.advertise_url or f"{'https' if self.tls_enabled else 'http'}://{self.http_addr}"

    @property
    def tls_enabled(self) -> bool:
        """Whether the TCP listeners speak TLS (``tls_cert`` and ``tls_key`` are set)."""
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def token_key_path(self) -> Path:
        return self.token_key_file or self.data_dir / "token.key"

    @property
    def warg_key_path(self) -> Path:
        return self.warg_operator_key_file or self.data_dir / "warg-operator.key"

    @property
    def warg_namespace_list(self) -> list[str]:
        return [ns.strip().lower() for ns in self.warg_namespaces.split(",") if ns.strip()]

    @property
    def warg_imports(self) -> list[tuple[str, str]]:
        """(namespace, registry) pairs of ``warg_import_namespaces``."""
        return _pairs(self.warg_import_namespaces, "warg_import_namespaces", "ns=registry")

    @property
    def warg_key_policy(self) -> dict[str, frozenset[str]]:
        """namespace -> key ids of ``warg_authorized_keys``."""
        policy: dict[str, set[str]] = {}
        for namespace, key_id in _pairs(self.warg_authorized_keys, "warg_authorized_keys", "ns=sha256:..."):
            policy.setdefault(namespace, set()).add(key_id)
        return {ns: frozenset(ids) for ns, ids in policy.items()}

    @property
    def image_insecure_list(self) -> frozenset[str]:
        return frozenset(h.strip() for h in self.image_insecure_registries.split(",") if h.strip())

    @property
    def directory_node_id(self) -> str:
        return self.node_id or f"cairn://{socket.gethostname()}/{self.grpc_addr}"

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else self.data_dir / "cairn.sock"

    @property
    def content(self) -> str:
        return self.content_url or f"file://{(self.data_dir / 'content').resolve()}"

    @property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite://{(self.data_dir / 'cairn.db').resolve()}"

    @property
    def auth_configured(self) -> bool:
        """Whether authentication is set up (a users file is configured)."""
        return self.users_file is not None

    def check_binding(self) -> None:
        """Refuse non-loopback listeners without authentication unless explicitly allowed.

        Users (``users_file``) authenticate both faces: HTTP with Basic or Bearer
        credentials, gRPC over TCP with ``authorization: Bearer`` tokens from
        ``/token``. Without users, any non-loopback listener needs the flag.
        Also refuses half a TLS configuration (a certificate without a key or
        the other way round).
        """
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("--tls-cert", "--tls-key") if self.tls_cert is not None else ("--tls-key", "--tls-cert")
            raise InvalidArgumentError(f"{given} needs {missing} too: TLS takes a certificate and its key")
        if self.auth_configured:
            return
        unprotected = [str(a) for a in (self.http_addr, self.grpc_addr) if not a.is_loopback]
        if unprotected and not self.insecure_allow_anonymous:
            raise InvalidArgumentError(
                f"refusing to listen on {', '.join(unprotected)} without authentication: "
                "anyone on the network could read and write. Bind to 127.0.0.1/::1, configure "
                "users (--users-file; HTTP and gRPC then need credentials), or pass "
                "--insecure-allow-anonymous if that is really what you want"
            )

    @classmethod
    def load(
        cls, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Resolve settings from ``flags`` (None values are unset) and ``environ`` (default: os.environ)."""
        environ = os.environ if environ is None else environ
        flags = {k: v for k, v in (flags or {}).items() if v is not None}
        names = {f.name for f in fields(cls)}
        unknown = set(flags) - names
        if unknown:
            raise InvalidArgumentError(f"unknown settings: {', '.join(sorted(unknown))}")

        config_path = flags.get("config") or environ.get(ENV_PREFIX + "CONFIG")
        raw: dict[str, Any] = {}
        if config_path:
            raw.update(_read_config(Path(config_path), names))
            raw["config"] = config_path
        for name in names:
            env = environ.get(ENV_PREFIX + name.upper())
            if env is not None and env != "":
                raw[name] = env
        raw.update(flags)
        return cls._from_raw(raw)

    @classmethod
    def _from_raw(cls, raw: Mapping[str, Any]) -> Settings:
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name in ("data_dir",):
                values[name] = Path(value)
            elif name in ("socket", "config", "users_file", "access_file", "warg_operator_key_file",
                          "image_auth_file", "token_key_file", "tls_cert", "tls_key"):
                values[name] = Path(value) if value else None
            elif name == "http_addr":
                values[name] = value if isinstance(value, Address) else parse_address(str(value), "--http-addr")
            elif name == "grpc_addr":
                values[name] = value if isinstance(value, Address) else parse_address(str(value), "--grpc-addr")
            elif name in ("insecure_allow_anonymous", "warg_wasm_only"):
                values[name] = _as_bool(value, name)
            elif name in (
                "grpc_workers",
                "read_chunk_bytes",
                "manifest_max_bytes",
                "upload_expiry_seconds",
                "token_ttl_seconds",
                "warg_upload_max_bytes",
                "image_parallel_transfers",
            ):
                values[name] = _as_int(value, name)
                if values[name] <= 0:
                    raise InvalidArgumentError(f"setting {name} must be positive, not {value}")
                if name == "manifest_max_bytes" and values[name] < (4 << 20):
                    raise InvalidArgumentError(f"setting {name} must be at least 4194304 (4 MiB), not {value}")
            elif name == "grpc_cpus":
                values[name] = str(value).strip() or "auto"
                parse_cpus(values[name])  # refuse a bad list at start-up
            elif name == "warg_checkpoint_interval":
                try:
                    values[name] = float(value)
                except (TypeError, ValueError):
                    raise InvalidArgumentError(f"setting {name}: {value!r} is not a number") from None
                if not 0 < values[name] <= 60:
                    raise InvalidArgumentError(f"setting {name} must be in (0, 60] seconds, not {value}")
            elif name == "sync_poll_seconds":
                try:
                    values[name] = float(value)
                except (TypeError, ValueError):
                    raise InvalidArgumentError(f"setting {name}: {value!r} is not a number") from None
                if not 0 < values[name] <= 86400:
                    raise InvalidArgumentError(f"setting {name} must be in (0, 86400], not {value}")
            elif name in ("rate_limit", "rate_burst"):
                values[name] = _as_rate(value, name)
            elif name in ("gc_interval_seconds", "gc_grace_seconds", "ingest_expiry_seconds", "verify_reads_max_bytes"):
                values[name] = _as_int(value, name)
                if values[name] < 0:
                    raise InvalidArgumentError(f"setting {name} must be 0 or positive, not {value}")
            elif name == "directory_repository":
                values[name] = check_repository(str(value))
            elif name == "registry_namespace":
                values[name] = validate_namespace(str(value))
            elif name == "log_level":
                level = str(value).lower()
                if level not in ("debug", "info", "warning", "error"):
                    raise InvalidArgumentError(f"setting log_level: {value!r} is not a log level")
                values[name] = level
            else:
                values[name] = str(value)
        return cls(**values)


def _as_rate(value: Any, name: str) -> float | int:
    """``rate_limit`` (a float) or ``rate_burst`` (an int), never negative; 0 turns limiting off."""
    try:
        number: float | int = int(value) if name == "rate_burst" else float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"setting {name}: {value!r} is not a number") from None
    if not 0 <= number < float("inf"):
        raise InvalidArgumentError(f"setting {name} must be 0 (off) or positive, not {value}")
    return number


def _pairs(text: str, name: str, form: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidArgumentError(f"setting {name}: {item!r} is not of the form {form}")
        pairs.append((key.strip().lower(), value.strip()))
    return pairs


def parse_cpus(text: str) -> frozenset[int] | None:
    """The CPU set for grpcio's threads: ``auto``, ``all`` (None: no restriction) or a taskset list.

    ``auto`` is the first CPU the process may use. One CPU is the measured best for
    grpcio's call handoffs (docs/benchmarks.md: ``ctr content get`` 0.53x -> 0.84x of
    containerd), and Python handler code runs under the GIL on one CPU at a time
    anyway; hashing and disk writes of ingests run on threads that use every CPU.
    """
    name = "grpc_cpus"
    available = os.sched_getaffinity(0)
    if text == "all":
        return None
    if text == "auto":
        return frozenset({min(available)})
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise InvalidArgumentError(
            f"setting {name}: {text!r} is not auto, all, or a CPU list like 0 or 0-1,4"
        ) from None
    if not cpus or not cpus <= available:
        raise InvalidArgumentError(
            f"setting {name}: CPUs {sorted(cpus)} are not all available (this process may use "
            f"{sorted(available)})"
        )
    return frozenset(cpus)


def _read_config(path: Path, names: set[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidArgumentError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"config file {path}: {exc}") from None
    flat = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = set(flat) - names
    if unknown:
        raise InvalidArgumentError(f"config file {path}: unknown settings {', '.join(sorted(unknown))}")
    return flat
