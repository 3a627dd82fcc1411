"""Authentication and authorization, without HTTP: users, access rules, signed tokens.

The server opens one :class:`Auth` with :func:`open_auth` when a users file is
configured; the registry face asks it who a caller is (password or token) and
what they may do (policy). Everything here blocks (bcrypt, file reads): async
callers cross into a thread for :meth:`Users.verify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn.core.auth.access import (
    ACTIONS,
    AccessPolicy,
    AccessRule,
    Scope,
    load_policy,
    parse_scope,
    parse_scopes,
)
from cairn.core.auth.tokens import (
    JWT_SHAPE,
    KEY_BYTES,
    IssuedToken,
    TokenAuthority,
    TokenClaims,
    load_or_create_key,
)
from cairn.core.auth.users import ANONYMOUS, MAX_PASSWORD_BYTES, Users, load_users
from cairn.core.errors import UnauthenticatedError

#: The Basic user name sent with a password token (any name is accepted with one).
TOKEN_USERNAME = "cairn-sync-token"

__all__ = [
    "ACTIONS",
    "ANONYMOUS",
    "KEY_BYTES",
    "MAX_PASSWORD_BYTES",
    "TOKEN_USERNAME",
    "AccessPolicy",
    "AccessRule",
    "Auth",
    "IssuedToken",
    "Scope",
    "TokenAuthority",
    "TokenClaims",
    "Users",
    "load_or_create_key",
    "load_policy",
    "load_users",
    "open_auth",
    "parse_scope",
    "parse_scopes",
]


@dataclass(frozen=True, slots=True)
class Auth:
    """The users, the access policy and the token authority of one server."""

    users: Users
    policy: AccessPolicy
    tokens: TokenAuthority

    @property
    def service(self) -> str:
        """The service name clients put in ``/token?service=`` and tokens carry as audience."""
        return self.tokens.service

    def grant(self, user: str | None, scopes: Sequence[Scope]) -> tuple[Scope, ...]:
        """The requested scopes cut down to what the policy allows ``user``; empty ones dropped."""
        granted = (scope.with_actions(self.policy.granted(user, scope)) for scope in scopes)
        return tuple(scope for scope in granted if scope.actions)

    def issue_password_token(self, subject: str, scopes: Sequence[Scope], ttl_seconds: int) -> IssuedToken:
        """A token to send as a Basic password, granting exactly ``scopes`` for ``ttl_seconds``.

        For principals that are not users (other nodes); ``subject`` should not
        be a possible user name (user names have no ``:``).
        """
        return self.tokens.issue(subject, scopes, ttl_seconds=ttl_seconds, password=True)

    @staticmethod
    def is_token(password: str) -> bool:
        """Whether a Basic password is a token rather than a user's password."""
        return JWT_SHAPE.match(password) is not None

    def verify_password_token(self, password: str) -> TokenClaims:
        """The claims of a password token; UnauthenticatedError if it is not a valid one."""
        return self.tokens.verify_password(password)

    def issue_refresh(self, user: str) -> str:
        """A refresh token for a known user (UnauthenticatedError for an unknown one)."""
        fingerprint = self.users.fingerprint(user)
        if fingerprint is None:
            raise UnauthenticatedError(f"unknown user {user!r}")
        return self.tokens.issue_refresh(user, fingerprint)

    def redeem_refresh(self, token: str) -> str:
        """The user a refresh token stands for, if it is valid and their password is unchanged.

        Raises UnauthenticatedError otherwise (bad or expired token, user removed,
        password changed).
        """
        user, fingerprint = self.tokens.verify_refresh(token)
        if self.users.fingerprint(user) != fingerprint:
            raise UnauthenticatedError(f"refresh token for {user!r} is no longer valid; log in again")
        return user


def open_auth(
    users_file: Path,
    access_file: Path | None,
    key_path: Path,
    ttl_seconds: int,
    service: str = "cairn",
) -> Auth:
    """Load users and policy and the signing key (created 0600 if absent).

    Raises InvalidArgumentError naming the file and line of any bad entry, so
    a typo stops the server at start-up rather than locking users out later.
    """
    return Auth(
        users=load_users(users_file),
        policy=load_policy(access_file),
        tokens=TokenAuthority(load_or_create_key(key_path), service, ttl_seconds),
    )
