"""Registry credentials: the pull/push request's ``auth`` field and docker/containers auth files.

A Docker client sends registry credentials with a pull or push as base64 of a
JSON object (the ``X-Registry-Auth`` header; here ``PullImageRequest.auth``).
Docker writes that base64 URL-safe and padded, other clients standard and
sometimes unpadded, so :func:`decode_auth` accepts every spelling
(DECISIONS.md image-service 7). Field names compare case-insensitively, as Go's
JSON decoder does. An operator may also give cairn a credentials file in the
format ``docker login`` and ``podman login`` write
(``{"auths": {"host": {"auth": base64("user:pass")}}}``); :class:`CredentialsFile`
finds the entry for a registry, with Docker Hub's many names as one.

This module is not for talking to registries or answering challenges (that is
:mod:`cairn.oci.client.auth`), and it runs no credential helpers
(``credsStore``/``credHelpers`` entries are ignored).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import FailedPreconditionError, InvalidArgumentError

__all__ = ["Credentials", "CredentialsFile", "CredentialsFileCache", "decode_auth", "normalize_registry"]

log = logging.getLogger(__name__)

#: Every name Docker Hub goes by in auth files, mapped to the name references use.
_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_HUB = "docker.io"


@dataclass(frozen=True)
class Credentials:
    """What to authenticate a registry with; empty strings mean "not given".

    ``registry_token`` is a Bearer token sent as it is; ``identity_token`` is an
    OAuth2 refresh token exchanged at the registry's token service;
    ``username``/``password`` answer Basic challenges and authenticate at the
    token service. ``server_address`` is informational (the registry the
    client meant).
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    server_address: str = ""

    @property
    def empty(self) -> bool:
        """True when nothing usable is set (the same as anonymous)."""
        return not (self.username or self.password or self.identity_token or self.registry_token)


def _b64decode(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, with or without padding (whitespace ignored)."""
    compact = "".join(text.split()).translate(str.maketrans("-_", "+/")).rstrip("=")
    if len(compact) % 4 == 1:
        raise InvalidArgumentError(f"{what}: not valid base64")
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(f"{what}: not valid base64") from None


def _split_user_pass(encoded: str, what: str) -> tuple[str, str]:
    """``base64("user:pass")`` -> ``(user, pass)``; the password may itself hold ``:``."""
    try:
        text = _b64decode(encoded, what).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgumentError(f"{what}: not UTF-8 after base64 decoding") from None
    user, colon, password = text.partition(":")
    if not colon:
        raise InvalidArgumentError(f"{what}: expected base64 of user:password")
    return user, password.strip("\x00")


def _fields(document: dict[str, Any], what: str) -> Credentials:
    lowered: dict[str, str] = {}
    for key, value in document.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidArgumentError(f"{what}: field {key!r} must be a string")
        lowered.setdefault(str(key).lower(), value)
    username = lowered.get("username", "")
    password = lowered.get("password", "")
    if lowered.get("auth") and not (username or password):
        username, password = _split_user_pass(lowered["auth"], f"{what}: field 'auth'")
    return Credentials(
        username=username,
        password=password,
        identity_token=lowered.get("identitytoken", ""),
        registry_token=lowered.get("registrytoken", ""),
        server_address=lowered.get("serveraddress", ""),
    )


def decode_auth(text: str) -> Credentials | None:
    """The credentials in a request's ``auth`` field, or None for anonymous.

    ``text`` is base64 (standard or URL-safe, padded or not) of a JSON object
    with ``username``, ``password``, ``auth`` (base64 of ``user:pass``, used when
    username and password are absent), ``identitytoken``, ``registrytoken``,
    ``serveraddress`` (``email`` is ignored). An empty string, ``{}``
    (what the Docker CLI sends for anonymous pulls), ``null`` and an object
    without credentials all mean anonymous. Raises InvalidArgumentError for
    text that is not base64 of a JSON object. Pure computation.
    """
    if not text or not text.strip():
        return None
    what = "auth"
    raw = _b64decode(text, what)
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidArgumentError(f"{what}: not base64 of a JSON object") from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise InvalidArgumentError(f"{what}: not base64 of a JSON object")
    credentials = _fields(document, what)
    return None if credentials.empty else credentials


def normalize_registry(key: str) -> str:
    """An auth-file key or server address as a registry name: ``host[:port]`` (plus a path when scoped).

    Drops the scheme and trailing ``/``, and Docker's API version paths
    (``/v1``, ``/v2``); every Docker Hub alias, ``https://index.docker.io/v1/``
    included, becomes ``docker.io``. Host names are lowercased.
    """
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    host, slash, path = text.partition("/")
    host = host.lower()
    if host in _HUB_ALIASES:
        host = _HUB
    return f"{host}/{path}" if slash and path else host


class CredentialsFile:
    """A docker ``config.json`` or containers ``auth.json``, indexed by registry.

    Entries are ``{"auth": base64("user:pass")}``, optionally with
    ``identitytoken`` or ``registrytoken``, or with ``username``/``password``.
    Keys may be URLs or ``host[:port]``, and (containers) ``host/namespace``
    scoped to a repository prefix; the most specific key wins.
    """

    def __init__(self, entries: dict[str, Credentials], path: Path | None = None) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def load(cls, path: Path | str) -> CredentialsFile:
        """Read ``path``; a missing file is an empty one.

        Raises FailedPreconditionError naming the file when it cannot be read
        or is not a credentials file (JSON object whose ``auths`` is an object).
        """
        where = Path(path)
        try:
            data = where.read_bytes()
        except FileNotFoundError:
            log.debug("credentials file %s does not exist", where)
            return cls({}, where)
        except OSError as exc:
            raise FailedPreconditionError(f"credentials file {where}: cannot read ({exc.strerror})") from None
        return cls.parse(data, where)

    @classmethod
    def parse(cls, data: bytes, path: Path | None = None) -> CredentialsFile:
        """The entries of a credentials file's bytes; FailedPreconditionError when malformed."""
        what = f"credentials file {path}" if path else "credentials file"
        try:
            document = json.loads(data) if data.strip() else {}
        except (ValueError, RecursionError):
            raise FailedPreconditionError(f"{what}: not JSON") from None
        if not isinstance(document, dict):
            raise FailedPreconditionError(f"{what}: not a JSON object")
        auths = document.get("auths", {})
        if auths is None:
            auths = {}
        if not isinstance(auths, dict):
            raise FailedPreconditionError(f"{what}: 'auths' must be an object")
        entries: dict[str, Credentials] = {}
        for key, value in auths.items():
            if not isinstance(value, dict):
                raise FailedPreconditionError(f"{what}: entry {key!r} must be an object")
            try:
                credentials = _fields(value, f"{what}: entry {key!r}")
            except InvalidArgumentError as exc:
                raise FailedPreconditionError(exc.message) from None
            if not credentials.empty:
                entries.setdefault(normalize_registry(str(key)), credentials)
        return cls(entries, path)

    def lookup(self, registry: str, repository: str | None = None) -> Credentials | None:
        """The credentials for ``registry`` (``host[:port]``; Docker Hub by any alias), or None.

        With ``repository``, a key scoped to it or to one of its parent
        namespaces (``quay.io/org``) beats the registry-wide key.
        """
        host = normalize_registry(registry)
        if repository:
            parts = repository.split("/")
            for end in range(len(parts), 0, -1):
                found = self._entries.get(f"{host}/{'/'.join(parts[:end])}")
                if found is not None:
                    return found
        return self._entries.get(host)

    def __len__(self) -> int:
        return len(self._entries)


class CredentialsFileCache:
    """One credentials file, re-read only when its modification time or size changed; thread-safe.

    ``docker login`` rewrites the file while cairn runs; this picks the change up
    on the next pull without reading the file for every one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._file = CredentialsFile({}, path)

    def current(self) -> CredentialsFile:
        """The file's entries as they are now (FailedPreconditionError when it became malformed)."""
        try:
            stat = os.stat(self.path)
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._file = CredentialsFile.load(self.path) if stamp is not None else CredentialsFile({}, self.path)
                self._stamp = stamp
            return self._file
