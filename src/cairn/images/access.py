"""How pulls and pushes reach registries: plain HTTP or not, whose credentials, how many at once.

One :class:`RegistryAccess` holds the operator's choices (the settings): which
registries may be spoken to over plain HTTP (loopback always may, as Docker
treats ``127.0.0.0/8``; DECISIONS.md image-service 8), which credentials file
to consult when a request carries no ``auth``, the network timeout, and how
many layers move in parallel (Docker's default of 3 downloads). Its
:meth:`~RegistryAccess.client` opens a :class:`~cairn.oci.client.RegistryClient`
with all of that applied.

It also holds :func:`retrying`, the retry loop both transfers use for one
blob, with Docker's ``Retrying in N seconds`` countdown.

This module is not for the transfers themselves (:mod:`cairn.images.pull`,
:mod:`cairn.images.push`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from cairn.core.errors import CancelledError, UnavailableError
from cairn.images.credentials import Credentials, CredentialsFileCache
from cairn.images.progress import Progress, ProgressSink
from cairn.oci.client import RegistryClient

__all__ = ["RETRY_DELAYS", "RegistryAccess", "retrying"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds to wait before each retry of a blob transfer that failed without making progress.
RETRY_DELAYS: tuple[int, ...] = (1, 2, 4)

_CACHES: dict[Path, CredentialsFileCache] = {}
_CACHES_LOCK = threading.Lock()


def _cache_for(path: Path) -> CredentialsFileCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(path)
        if cache is None:
            cache = _CACHES[path] = CredentialsFileCache(path)
        return cache


@dataclass(frozen=True)
class RegistryAccess:
    """The operator's rules for reaching registries; immutable, shared by all pulls and pushes.

    ``insecure`` entries are ``host``, ``host:port`` or an IP network in CIDR
    form (``10.0.0.0/8``), as in Docker's ``insecure-registries``; those
    registries (and every loopback one) are spoken to over plain HTTP.
    ``credentials_file`` is a docker ``config.json`` or containers
    ``auth.json``, re-read when it changes. ``timeout`` bounds connecting and
    each wait for bytes; ``parallel`` is how many layers transfer at once.
    """

    insecure: frozenset[str] = frozenset()
    credentials_file: Path | None = None
    timeout: float = 30
    parallel: int = 6
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        networks = []
        for entry in self.insecure:
            if "/" in entry:
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    continue
        object.__setattr__(self, "_networks", tuple(networks))
        if self.parallel < 1:
            object.__setattr__(self, "parallel", 1)

    def is_insecure(self, registry: str) -> bool:
        """Whether ``registry`` (``host[:port]``) is listed as insecure, by name, name and port, or network."""
        if registry in self.insecure:
            return True
        host = urlsplit(f"//{registry}").hostname or registry
        if host in self.insecure:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def credentials_for(self, registry: str, repository: str | None = None) -> Credentials | None:
        """The credentials file's entry for ``registry`` (and ``repository``), or None.

        Raises FailedPreconditionError when the configured file is malformed.
        """
        if self.credentials_file is None:
            return None
        return _cache_for(self.credentials_file).current().lookup(registry, repository)

    def client(
        self, registry: str, credentials: Credentials | None, repository: str | None = None
    ) -> RegistryClient:
        """A client of ``registry`` (``docker.io`` reaches Docker Hub's API host).

        ``credentials`` from the request win; without them the credentials
        file is consulted (for ``repository`` when given). The caller closes
        the client. Raises InvalidArgumentError for a malformed registry name,
        FailedPreconditionError for a malformed credentials file; no request
        is sent here.
        """
        chosen = credentials if credentials is not None and not credentials.empty else None
        if chosen is None:
            chosen = self.credentials_for(registry, repository)
        username: str | None = None
        password: str | None = None
        identity_token: str | None = None
        registry_token: str | None = None
        if chosen is not None:
            if chosen.registry_token:
                registry_token = chosen.registry_token
            elif chosen.identity_token:
                identity_token = chosen.identity_token
            elif chosen.username or chosen.password:
                username, password = chosen.username, chosen.password
        return RegistryClient(
            registry,
            insecure=self.is_insecure(registry),
            username=username,
            password=password,
            registry_token=registry_token,
            identity_token=identity_token,
            timeout=self.timeout,
        )


def retrying(
    operation: Callable[[], T],
    *,
    id: str,
    sink: ProgressSink,
    stopped: Callable[[], bool],
    progressed: Callable[[], int] | None = None,
    delays: Sequence[int] = RETRY_DELAYS,
) -> T:
    """Run ``operation``; after an UnavailableError wait and run it again, as Docker does.

    Each wait counts down with ``Retrying in N second(s)`` messages for ``id``.
    A try that made progress (``progressed()`` grew) does not use up a delay.
    The last error is raised when the delays are used up; CancelledError when
    ``stopped()`` turns true while waiting.
    """
    used = 0
    while True:
        before = progressed() if progressed is not None else 0
        try:
            return operation()
        except UnavailableError as exc:
            if progressed is not None and progressed() > before:
                used = 0
            if used >= len(delays) or stopped():
                raise
            delay = delays[used]
            used += 1
            log.info("%s: %s; retrying in %ss", id, exc.message, delay)
        for remaining in range(delay, 0, -1):
            sink(Progress(id, f"Retrying in {remaining} second{'' if remaining == 1 else 's'}"))
            deadline = time.monotonic() + 1
            while (left := deadline - time.monotonic()) > 0:
                if stopped():
                    raise CancelledError(f"{id}: cancelled while waiting to retry")
                time.sleep(min(left, 0.1))
