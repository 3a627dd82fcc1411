"""Bearer tokens: short-lived signed JWTs carrying Docker-style access claims, and their key.

An access token is an HS256 JWT with ``iss``, ``sub`` (the user, ``""`` for
anonymous), ``aud`` (the service), ``iat``, ``nbf``, ``exp``, ``jti`` and
``access``: ``[{"type": "repository", "name": "a/b", "actions": ["pull"]}]``,
the claim shape of the Docker token specification. cairn both issues and
checks them, so a symmetric key is enough; it lives in one file created with
mode 0600 (:func:`load_or_create_key`). Deleting the file ends every token.

A password token is an access token with the extra claim ``"pwd": true``:
it may be sent as the password of HTTP Basic credentials (the form Directory
sync hands to other nodes, whose clients know only Basic and the token flow),
and grants exactly its ``access``, nothing a user's rules would.

A refresh token (what ``docker login`` keeps as its identity token) is a
long-lived JWT of the same key with audience ``<service>:refresh`` and a
``refresh`` claim holding a fingerprint of the user's password hash, so it is
never accepted as an access token and a password change ends it.

This module is not for deciding what to grant (:mod:`cairn.core.auth.access`).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from cairn.core.auth.access import Scope
from cairn.core.errors import InvalidArgumentError, UnauthenticatedError

__all__ = [
    "KEY_BYTES",
    "IssuedToken",
    "JWT_SHAPE",
    "TokenAuthority",
    "TokenClaims",
    "load_or_create_key",
]

#: Size of a new signing key; shorter existing keys are refused.
KEY_BYTES = 32

_ALGORITHM = "HS256"
#: Claim of a token that may be used as a Basic password.
_PASSWORD_CLAIM = "pwd"
_REQUIRED = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]


#: What a JWT looks like (three base64url parts, a JSON header): tells a token from a password.
JWT_SHAPE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token and what the token endpoint says about it."""

    token: str
    expires_in: int
    issued_at_rfc3339: str


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid access token says: who (None: anonymous) and what they may do."""

    subject: str | None
    access: tuple[Scope, ...]

    def granted(self, scope: Scope) -> frozenset[str]:
        """The subset of ``scope.actions`` this token grants (``*`` in the token grants all)."""
        held: set[str] = set()
        for entry in self.access:
            if entry.type == scope.type and entry.name == scope.name:
                held |= entry.actions
        return scope.actions if "*" in held else scope.actions & held


class TokenAuthority:
    """Issues and verifies this server's tokens for one ``service`` (the JWT audience).

    ``clock`` (seconds since the epoch) is used for issuing and for the time
    checks of :meth:`verify`, so tests can move time without sleeping.
    """

    def __init__(
        self,
        key: bytes,
        service: str,
        ttl_seconds: int,
        issuer: str = "cairn",
        *,
        refresh_ttl_seconds: int = 30 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < KEY_BYTES:
            raise InvalidArgumentError(f"token signing key has {len(key)} bytes; need at least {KEY_BYTES}")
        if ttl_seconds <= 0 or refresh_ttl_seconds <= 0:
            raise InvalidArgumentError("token lifetimes must be positive")
        self._key = key
        self.service = service
        self.ttl_seconds = ttl_seconds
        self.refresh_ttl_seconds = refresh_ttl_seconds
        self.issuer = issuer
        self._clock = clock

    def issue(
        self,
        subject: str | None,
        scopes: Sequence[Scope],
        *,
        ttl_seconds: int | None = None,
        password: bool = False,
    ) -> IssuedToken:
        """A signed access token for ``subject`` granting exactly ``scopes`` (no policy check here).

        ``ttl_seconds`` overrides the authority's lifetime; ``password`` marks the
        token as usable as a Basic password (:meth:`verify_password`).
        """
        ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
        if ttl <= 0:
            raise InvalidArgumentError("token lifetimes must be positive")
        extra: dict[str, Any] = {"access": [{"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in scopes]}
        if password:
            extra[_PASSWORD_CLAIM] = True
        now = int(self._clock())
        token = self._sign(subject, self.service, now, ttl, extra)
        issued_at = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return IssuedToken(token, ttl, issued_at)

    def verify_password(self, token: str) -> TokenClaims:
        """The claims of a valid password token (sent as a Basic password).

        Raises UnauthenticatedError as :meth:`verify` does, and for an access
        token that was not issued for use as a password.
        """
        claims = self._decode(token, self.service)
        if claims.get(_PASSWORD_CLAIM) is not True:
            raise UnauthenticatedError("token was not issued for use as a password")
        return self._access_claims(claims)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid access token.

        Raises UnauthenticatedError when the signature, issuer, audience or
        shape is wrong, or the token is expired or not yet valid.
        """
        claims = self._decode(token, self.service)
        if "refresh" in claims:
            raise UnauthenticatedError("token is a refresh token, not an access token")
        return self._access_claims(claims)

    @staticmethod
    def _access_claims(claims: dict[str, Any]) -> TokenClaims:
        raw_access = claims.get("access", [])
        try:
            access = tuple(
                Scope(str(e["type"]), str(e["name"]), frozenset(str(a) for a in e["actions"]))
                for e in raw_access
            )
        except (TypeError, KeyError):
            raise UnauthenticatedError("token has a malformed access claim") from None
        return TokenClaims(str(claims["sub"]) or None, access)

    def issue_refresh(self, subject: str, fingerprint: str) -> str:
        """A long-lived refresh token for ``subject``, tied to their password hash ``fingerprint``."""
        audience = self.service + ":refresh"
        return self._sign(
            subject, audience, int(self._clock()), self.refresh_ttl_seconds, {"refresh": fingerprint}
        )

    def verify_refresh(self, token: str) -> tuple[str, str]:
        """(subject, fingerprint) of a valid refresh token; UnauthenticatedError otherwise."""
        claims = self._decode(token, self.service + ":refresh")
        subject, fingerprint = claims["sub"], claims.get("refresh")
        if not isinstance(subject, str) or not subject or not isinstance(fingerprint, str):
            raise UnauthenticatedError("refresh token is malformed")
        return subject, fingerprint

    def _sign(self, subject: str | None, audience: str, now: int, ttl: int, extra: dict[str, Any]) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject or "",
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            **extra,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        # PyJWT checks signature, issuer and audience; the time claims are checked
        # against self._clock so that tests (and only tests) can move time.
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                audience=audience,
                issuer=self.issuer,
                options={"require": _REQUIRED, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"invalid token: {exc}") from None
        now = self._clock()
        exp, nbf = claims["exp"], claims["nbf"]
        if not isinstance(exp, int) or not isinstance(nbf, int):
            raise UnauthenticatedError("invalid token: exp and nbf must be integers")
        if now >= exp:
            raise UnauthenticatedError("invalid token: expired")
        if now < nbf:
            raise UnauthenticatedError("invalid token: not valid yet")
        return claims


def load_or_create_key(path: Path) -> bytes:
    """The signing key in ``path``, created (32 random bytes, mode 0600) if the file is absent.

    Creation is atomic: the key is written to a private temporary file and
    hard-linked into place, so two processes starting together agree on one
    key and nobody reads a half-written file. InvalidArgumentError when the
    file is unreadable or shorter than 32 bytes.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won the race; use its key
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InvalidArgumentError(f"token key file {path}: cannot read: {exc}") from None
    if len(key) < KEY_BYTES:
        raise InvalidArgumentError(
            f"token key file {path} holds {len(key)} bytes, need {KEY_BYTES}; delete it to make a new one"
        )
    return key
