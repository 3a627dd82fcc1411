"""Who may log in: an htpasswd-style file of bcrypt hashes, and password checks against it.

The file is what ``htpasswd -B`` writes: one ``user:$2y$10$...`` line per user
(``$2a$``, ``$2b$`` and ``$2y$`` are all bcrypt), ``#`` comments and blank
lines ignored. Any other hash kind (MD5 ``$apr1$``, SHA1 ``{SHA}``, crypt) is
refused at load, naming the file and line: a fast hash in a file that guards
push rights is a mistake worth stopping the server for.

This module is not for deciding what a user may do (:mod:`cairn.core.auth.access`)
or for tokens (:mod:`cairn.core.auth.tokens`). It blocks: a bcrypt check takes
~50-300 ms of CPU, so async callers run :meth:`Users.verify` in a thread.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import bcrypt

from cairn.core.errors import InvalidArgumentError

__all__ = ["ANONYMOUS", "MAX_PASSWORD_BYTES", "Users", "load_users"]

#: The name access rules use for callers without credentials; no user may be called this.
ANONYMOUS = "anonymous"

#: bcrypt reads only this many bytes of a password; longer ones are refused, as distribution does.
MAX_PASSWORD_BYTES = 72

_BCRYPT = re.compile(rb"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_USERNAME = re.compile(r"^[^\s:]+\Z")
_CACHE_SIZE = 1024


class Users:
    """A fixed table of users and their bcrypt hashes, with a cache of successful checks.

    Successful verifications are remembered (up to 1024, least recently used
    dropped) because registry clients send Basic credentials on every request
    and a bcrypt check per blob would dominate a push. The cache key is an HMAC
    under a per-process random key of (user, password, stored hash): a memory
    dump does not give an offline-guessable password digest, and a changed hash
    never hits an old entry. Failures are never cached, so a wrong guess always
    costs the full bcrypt time.
    """

    def __init__(self, hashes: Mapping[str, bytes], source: str = "<memory>") -> None:
        costs = [_check_entry(name, stored, source) for name, stored in hashes.items()]
        self._hashes = dict(hashes)
        self.source = source
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        # Unknown users are checked against this, so "no such user" takes as long as "wrong password".
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=max(costs, default=10)))

    def __contains__(self, username: object) -> bool:
        return username in self._hashes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._hashes))

    def __len__(self) -> int:
        return len(self._hashes)

    def fingerprint(self, username: str) -> str | None:
        """A short digest of the user's stored hash (None for an unknown user).

        Refresh tokens carry it, so changing a user's password ends their refresh tokens.
        """
        stored = self._hashes.get(username)
        return None if stored is None else hashlib.sha256(stored).hexdigest()[:16]

    def verify(self, username: str, password: str) -> bool:
        """Whether ``password`` is the user's password. Blocks for one bcrypt check unless cached.

        Unknown users and passwords longer than 72 bytes give False after the
        same bcrypt work as a wrong password.
        """
        secret = password.encode("utf-8", "surrogatepass")  # never raises; a lone surrogate just fails
        stored = self._hashes.get(username)
        if stored is None or len(secret) > MAX_PASSWORD_BYTES:
            bcrypt.checkpw(secret[:MAX_PASSWORD_BYTES], self._dummy)
            return False
        key = hmac.digest(
            self._cache_key,
            b"\0".join((username.encode("utf-8", "surrogatepass"), secret, stored)),
            hashlib.sha256,
        )
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        if not bcrypt.checkpw(secret, stored):
            return False
        with self._lock:
            self._cache[key] = None
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return True


def load_users(path: Path) -> Users:
    """Read an htpasswd file; InvalidArgumentError names the file and line of any bad entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgumentError(f"users file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"users file {path}: cannot read: {exc}") from None
    hashes: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"users file {path} line {number}"
        name, sep, stored = line.partition(":")
        if not sep:
            raise InvalidArgumentError(f"{where}: expected user:bcrypt-hash")
        if name in hashes:
            raise InvalidArgumentError(f"{where}: user {name!r} is listed twice")
        hashes[name] = stored.encode()
        _check_entry(name, hashes[name], where)  # here, to name the line
    return Users(hashes, source=str(path))


def _check_entry(name: str, stored: bytes, where: str) -> int:
    """Refuse a bad name or hash; return the hash's bcrypt cost."""
    if not _USERNAME.match(name):
        raise InvalidArgumentError(f"{where}: user name {name!r} is empty or has spaces or ':'")
    if name == ANONYMOUS:
        raise InvalidArgumentError(
            f"{where}: user name {ANONYMOUS!r} is reserved for callers without credentials"
        )
    match = _BCRYPT.match(stored)
    if match is None:
        raise InvalidArgumentError(
            f"{where}: user {name!r} has no bcrypt hash ($2y$/$2b$/$2a$); make one with htpasswd -B"
        )
    cost = int(match.group(1))
    if not 4 <= cost <= 31:
        raise InvalidArgumentError(f"{where}: user {name!r} has bcrypt cost {cost} (allowed 4-31)")
    return cost
