"""Authentication on the ``/v2/`` face: who is calling, may they, and the ``/token`` endpoint.

With no users configured (``HttpAuth(None)``) every request is anonymous and
allowed: cairn then listens on loopback only (``Settings.check_binding``).
With users, a request carries HTTP Basic credentials, a Bearer token from
``/token``, or nothing; :meth:`HttpAuth.require` answers, as Docker's token
specification and distribution do:

- bad credentials, or none and the policy does not let anonymous callers do it:
  401 ``UNAUTHORIZED`` with ``WWW-Authenticate: Bearer realm="<scheme>://<Host>/token",
  service="cairn",scope="repository:<name>:pull,push"``;
- a Bearer token without the scope for a user the policy *would* allow:
  the same 401 plus ``error="insufficient_scope"``, so the client fetches a wider token;
- an authenticated user the policy does not allow: 403 ``DENIED``.

Basic credentials whose password is a password token (what Directory sync
hands to other nodes: ``cairn-sync-token`` / a JWT from the token authority)
identify a caller of kind ``token`` who may do exactly what the token grants:
anything more is 403 ``DENIED``, and ``/token`` gives them at most the token's
scopes.

The realm is built from the request's Host header, so the challenge points at
whatever address and port the client used. This module is not for the policy
itself (:mod:`cairn.core.auth.access`); bcrypt checks cross into a thread here.
"""

from __future__ import annotations

import asyncio
import binascii
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from cairn.api.http.registry.errors import RegistryError
from cairn.core.auth import Auth, Scope, TokenClaims, parse_scopes
from cairn.core.errors import InvalidArgumentError, UnauthenticatedError

__all__ = ["Caller", "HttpAuth", "add_token_routes"]

#: Lifetime advertised for the opaque tokens ``/token`` hands out when authentication is off.
DISABLED_TOKEN_TTL_SECONDS = 3600

#: The realm of the Basic challenge ``/token`` answers bad credentials with.
BASIC_REALM = "cairn"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: ``kind`` is anonymous, basic, bearer, token (a password token in Basic
    credentials) or invalid (``reason`` says why)."""

    kind: str
    user: str | None = None
    claims: TokenClaims | None = None
    reason: str = ""


_IDENTITY = web.RequestKey("cairn.auth.identity", Caller)


class HttpAuth:
    """The face's gate: identifies callers once per request and checks scopes against the policy."""

    def __init__(self, auth: Auth | None, *, token_path: str = "/token") -> None:
        self.auth = auth
        self.token_path = token_path

    @property
    def enabled(self) -> bool:
        """Whether users are configured; when not, everything is allowed anonymously."""
        return self.auth is not None

    async def require(self, request: web.Request, scopes: Sequence[Scope]) -> str | None:
        """The caller's user name (None: anonymous) if they may do every action of ``scopes``.

        An empty ``scopes`` asks for authentication only (the ``/v2/`` ping):
        anonymous callers get 401 when authentication is on, so clients learn
        the challenge. Raises RegistryError 401 UNAUTHORIZED or 403 DENIED as
        the module docstring describes.
        """
        if self.auth is None:
            return None
        identity = await self.identify(request)
        if identity.kind == "invalid":
            raise self._unauthorized(request, scopes, identity.reason)
        if not scopes and identity.kind == "anonymous":
            raise self._unauthorized(request, scopes, "authentication required")
        missing = [
            m for m in (s.with_actions(s.actions - self._held(identity, s)) for s in scopes) if m.actions
        ]
        if not missing:
            return identity.user
        wanted = ", ".join(map(str, missing))
        if identity.kind == "token":
            raise RegistryError(
                403, "DENIED", f"the token of {identity.user!r} does not grant {wanted}", _detail(missing)
            )
        if identity.kind == "anonymous":
            raise self._unauthorized(request, scopes, f"authentication required for {wanted}")
        denied = [m for m in missing if self.auth.policy.granted(identity.user, m) != m.actions]
        if identity.kind == "bearer" and not denied:
            raise self._unauthorized(
                request, scopes, f"token does not grant {wanted}; get a new one", insufficient_scope=True
            )
        if identity.user is None:
            raise self._unauthorized(request, scopes, f"authentication required for {wanted}")
        what = "; ".join(f"{' and '.join(sorted(m.actions))} {m.type} {m.name}" for m in denied)
        raise RegistryError(403, "DENIED", f"user {identity.user!r} may not {what}", _detail(denied))

    async def allowed(self, request: web.Request, scope: Scope) -> bool:
        """Whether the caller's user may do every action of ``scope`` by the policy; never raises.

        For a Bearer token this asks about the token's subject, not the token's
        access list: ``_catalog`` is called with a ``registry:catalog:*`` token
        and filters each repository by what its caller could pull.
        """
        if self.auth is None:
            return True
        identity = await self.identify(request)
        if identity.kind == "invalid":
            return False
        if identity.kind == "token" and identity.claims is not None:
            return identity.claims.granted(scope) == scope.actions
        return self.auth.policy.granted(identity.user, scope) == scope.actions

    async def identify(self, request: web.Request) -> Caller:
        """Who sent ``request`` (checked once per request, then remembered on it)."""
        identity = request.get(_IDENTITY)
        if identity is None:
            identity = await self._identify(request)
            request[_IDENTITY] = identity
        return identity

    async def _identify(self, request: web.Request) -> Caller:
        if self.auth is None:
            return Caller("anonymous")
        header = request.headers.get("Authorization")
        if header is None:
            return Caller("anonymous")
        scheme, _, value = header.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "basic":
            return await self.basic_caller(value)
        if scheme == "bearer":
            try:
                claims = self.auth.tokens.verify(value)
            except UnauthenticatedError as exc:
                return Caller("invalid", reason=exc.message)
            return Caller("bearer", claims.subject, claims)
        return Caller("invalid", reason=f"unsupported authorization scheme {scheme!r}")

    async def basic_caller(self, value: str) -> Caller:
        """Who a Basic credential (the part after ``Basic``) names: a user whose password is right,
        the holder of a valid password token, or an invalid caller."""
        assert self.auth is not None
        credentials = _decode_basic(value)
        if credentials is None:
            return Caller("invalid", reason="invalid username or password")
        user, password = credentials
        if self.auth.is_token(password):
            try:
                claims = self.auth.verify_password_token(password)
            except UnauthenticatedError as exc:
                return Caller("invalid", reason=exc.message)
            return Caller("token", claims.subject, claims)
        # bcrypt takes ~100 ms of CPU: keep it off the event loop.
        if await asyncio.to_thread(self.auth.users.verify, user, password):
            return Caller("basic", user)
        return Caller("invalid", reason="invalid username or password")

    async def check_basic(self, value: str) -> str | None:
        """The user named by a Basic credential if the password is right (tokens are not users)."""
        caller = await self.basic_caller(value)
        return caller.user if caller.kind == "basic" else None

    def challenge(
        self, request: web.Request, scopes: Sequence[Scope], *, insufficient_scope: bool = False
    ) -> str:
        """The ``WWW-Authenticate: Bearer ...`` value pointing clients at this server's ``/token``."""
        service = self.auth.service if self.auth is not None else "cairn"
        params = [("realm", f"{request.scheme}://{request.host}{self.token_path}"), ("service", service)]
        if scopes:
            params.append(("scope", " ".join(map(str, scopes))))
        if insufficient_scope:
            params.append(("error", "insufficient_scope"))
        return "Bearer " + ",".join(f'{name}="{_quote(value)}"' for name, value in params)

    def _held(self, identity: Caller, scope: Scope) -> frozenset[str]:
        assert self.auth is not None
        if identity.claims is not None:
            return identity.claims.granted(scope)
        return self.auth.policy.granted(identity.user, scope)

    def _unauthorized(
        self, request: web.Request, scopes: Sequence[Scope], message: str, *, insufficient_scope: bool = False
    ) -> RegistryError:
        header = self.challenge(request, scopes, insufficient_scope=insufficient_scope)
        return RegistryError(401, "UNAUTHORIZED", message, _detail(scopes), {"WWW-Authenticate": header})

    # -- the token endpoint ------------------------------------------------------------------

    async def token_get(self, request: web.Request) -> web.Response:
        """``GET /token?service=&scope=...``: Docker's token flow, Basic credentials optional.

        Anonymous callers get a token with what the policy lets anonymous
        callers do (possibly nothing). ``offline_token=true`` with credentials
        adds a ``refresh_token``. ``account`` and ``client_id`` are accepted and
        ignored; so is an unknown ``service``.
        """
        try:
            scopes = parse_scopes(request.query.getall("scope", []))
            offline = request.query.get("offline_token", "").lower() == "true"
            user, limit = None, None
            header = request.headers.get("Authorization")
            if header is not None and self.auth is not None:
                scheme, _, value = header.strip().partition(" ")
                caller = await self.basic_caller(value.strip()) if scheme.lower() == "basic" else Caller("invalid")
                if caller.kind == "invalid":
                    raise UnauthenticatedError(caller.reason or "invalid username or password")
                user, limit = caller.user, caller.claims
            body, _ = self._token_body(user, scopes, offline, limit)
            return web.json_response(body)
        except InvalidArgumentError as exc:
            return _token_error(400, "UNSUPPORTED", exc.message)
        except UnauthenticatedError as exc:
            return _token_error(401, "UNAUTHORIZED", exc.message)

    async def token_post(self, request: web.Request) -> web.Response:
        """``POST /token``: the OAuth2 form (``grant_type=password`` or ``refresh_token``).

        Answers ``access_token`` (and ``token``), ``scope``, ``expires_in``,
        ``issued_at``, and a ``refresh_token`` when ``access_type=offline``.
        Errors carry both the OAuth2 ``error`` field and the registry ``errors`` list.
        """
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        grant_type = fields.get("grant_type", "")
        try:
            scopes = parse_scopes(v for k, v in form.items() if k == "scope" and isinstance(v, str))
            offline = fields.get("access_type", "") == "offline"
            limit: TokenClaims | None = None
            if grant_type == "password":
                user, limit = await self._password_grant(fields.get("username", ""), fields.get("password", ""))
            elif grant_type == "refresh_token":
                token = fields.get("refresh_token", "")
                user = self.auth.redeem_refresh(token) if self.auth is not None else None
            else:
                return _token_error(
                    400, "UNSUPPORTED", f"unsupported grant_type {grant_type!r}", "unsupported_grant_type"
                )
            body, granted = self._token_body(user, scopes, offline, limit)
            body["scope"] = " ".join(map(str, granted))
            return web.json_response(body)
        except InvalidArgumentError as exc:
            return _token_error(400, "UNSUPPORTED", exc.message, "invalid_request")
        except UnauthenticatedError as exc:
            return _token_error(401, "UNAUTHORIZED", exc.message, "invalid_grant")

    async def _password_grant(self, user: str, password: str) -> tuple[str | None, TokenClaims | None]:
        """The user (or a password token's subject and claims) the OAuth2 password grant names."""
        if self.auth is None:
            return None, None
        if user and self.auth.is_token(password):
            claims = self.auth.verify_password_token(password)
            return claims.subject, claims
        if not user or not await asyncio.to_thread(self.auth.users.verify, user, password):
            raise UnauthenticatedError("invalid username or password")
        return user, None

    def _token_body(
        self, user: str | None, scopes: Sequence[Scope], offline: bool, limit: TokenClaims | None = None
    ) -> tuple[dict[str, Any], Sequence[Scope]]:
        """The 200 JSON for a caller already authenticated as ``user``, and the scopes granted.

        With ``limit`` (the caller holds a password token) the grant is what that
        token grants, never more, and no refresh token is given.
        """
        if self.auth is None:
            # Nothing checks tokens when authentication is off; an opaque one keeps token-first clients going.
            now = int(time.time())
            token, expires_in = secrets.token_urlsafe(32), DISABLED_TOKEN_TTL_SECONDS
            issued_at = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            granted: Sequence[Scope] = scopes
            refresh = secrets.token_urlsafe(32) if offline else None
        else:
            if limit is None:
                granted = self.auth.grant(user, scopes)
            else:
                held = limit
                granted = tuple(g for g in (s.with_actions(held.granted(s)) for s in scopes) if g.actions)
            issued = self.auth.tokens.issue(user, granted)
            token, expires_in, issued_at = issued.token, issued.expires_in, issued.issued_at_rfc3339
            refresh = self.auth.issue_refresh(user) if offline and user is not None and limit is None else None
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": issued_at,
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return body, granted


def add_token_routes(app: web.Application, http_auth: HttpAuth) -> None:
    """Serve ``GET`` and ``POST`` on ``http_auth.token_path`` (``/token``)."""
    app.router.add_get(http_auth.token_path, http_auth.token_get)
    app.router.add_post(http_auth.token_path, http_auth.token_post)


def _decode_basic(value: str) -> tuple[str, str] | None:
    """(user, password) from base64 ``user:password``; None when malformed."""
    try:
        text = binascii.a2b_base64(value.encode("ascii"), strict_mode=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep and user else None


def _detail(scopes: Sequence[Scope]) -> list[dict[str, str]]:
    """distribution's error detail: one ``{"Type","Name","Action"}`` per action."""
    return [{"Type": s.type, "Name": s.name, "Action": a} for s in scopes for a in sorted(s.actions)]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _token_error(status: int, code: str, message: str, oauth_error: str | None = None) -> web.Response:
    """A token endpoint failure: the registry ``errors`` list, plus OAuth2's ``error`` for the POST form.

    401 carries a Basic challenge: the token endpoint takes passwords, not tokens.
    """
    body: dict[str, Any] = {"errors": [{"code": code, "message": message}]}
    if oauth_error is not None:
        body.update(error=oauth_error, error_description=message)
    headers = {"WWW-Authenticate": f'Basic realm="{BASIC_REALM}"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)
