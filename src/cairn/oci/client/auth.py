"""Answering a registry's ``401``: Basic credentials or Bearer tokens, per scope.

A registry says how it wants to be authenticated in ``WWW-Authenticate``
(distribution-spec section 6): ``Basic realm="..."`` means "send your
credentials with every request"; ``Bearer realm=..,service=..,scope=..`` means
"fetch a token from ``realm`` for that scope and send it". :class:`Authenticator`
keeps that state for one registry: once a Basic challenge was seen it sends
Basic credentials up front, and it caches Bearer tokens per request scope until
their ``expires_in`` (60 s when absent) runs out. Two more credential forms come
from Docker's auth config: a *registry token* is sent as ``Bearer`` as it is,
and an *identity token* is an OAuth2 refresh token, exchanged at the token
service with ``POST grant_type=refresh_token`` (distribution's token spec,
"OAuth2 token"), instead of a GET with Basic credentials.

The challenge grammar (RFC 9110 section 11: several challenges per header,
``auth-param`` values that are tokens or quoted strings with ``\\`` escapes and
commas inside quotes, ``token68``) is parsed by hand here: urllib3 sends requests
and follows redirects but has no parser for it, and the stdlib's only one
(``urllib.request.AbstractBasicAuthHandler.rx``) is a regex for Basic realms.

This module is not for sending registry requests; the transport calls
:meth:`Authenticator.authorization` before a request and
:meth:`Authenticator.respond` after a 401, and hands it a ``fetch`` callable for
the token service, so no HTTP library is needed here.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from cairn.core.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "OAUTH_CLIENT_ID",
    "Authenticator",
    "Challenge",
    "TokenFetch",
    "TokenPost",
    "parse_challenges",
]

log = logging.getLogger(__name__)

#: Seconds a token lives when the token service does not say (the token spec's default).
DEFAULT_TOKEN_LIFETIME = 60
#: Tokens are dropped this long before they expire, so a request never races the expiry.
_EXPIRY_MARGIN = 5.0

#: ``fetch(url, headers) -> (status, body)``: one GET of the token service, given by the transport.
TokenFetch = Callable[[str, Mapping[str, str]], tuple[int, bytes]]
#: ``post(url, headers, form_body) -> (status, body)``: one form POST to the token service (OAuth2).
TokenPost = Callable[[str, Mapping[str, str], bytes], tuple[int, bytes]]
#: The ``client_id`` cairn names itself with at OAuth2 token services.
OAUTH_CLIENT_ID = "cairn"

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68_TAIL = frozenset("-._~+/")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``auth-scheme`` with its parameters, from a ``WWW-Authenticate`` header.

    ``scheme`` and parameter names are lowercased (both are case-insensitive);
    values keep their case. ``token68`` holds the bare credentials form some
    schemes use instead of parameters (``Negotiate YIIG...==``).
    """

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None


class _Scanner:
    """A cursor over one header value with the RFC 9110 token and quoted-string rules."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def skip_list_separators(self) -> None:
        while self.peek() in (" ", "\t", ",") and self.peek():
            self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def unquoted(self) -> str:
        """A bare value up to the next ``,`` or space: a token, or (leniently) a bare URL."""
        start = self.pos
        while self.peek() and self.peek() not in (",", " ", "\t", '"'):
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self, what: str) -> str:
        """A quoted-string starting at the cursor, unescaped; the cursor ends after it."""
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise InvalidArgumentError(f"{what}: unterminated quoted string in {self.text!r}")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                escaped = self.peek()
                if not escaped:
                    raise InvalidArgumentError(f"{what}: unterminated quoted string in {self.text!r}")
                self.pos += 1
                char = escaped
            out.append(char)

    def param_ahead(self) -> bool:
        """Whether ``token BWS "=" BWS value`` follows (a token68 may end in ``=``, ``==``)."""
        saved = self.pos
        try:
            if not self.token():
                return False
            self.skip_space()
            if self.peek() != "=":
                return False
            self.pos += 1
            self.skip_space()
            return self.peek() not in ("=", ",", "")
        finally:
            self.pos = saved


def parse_challenges(values: str | Sequence[str]) -> list[Challenge]:
    """The challenges of one or more ``WWW-Authenticate`` header values, in order.

    Accepts several challenges per value (``Basic realm="a", Bearer realm="b"``),
    quoted values with commas and escapes, unquoted values (tokens, and leniently
    bare URLs, which some token servers send), and empty list elements. Raises only :class:`InvalidArgumentError` (an unterminated quote, a
    parameter without a value, text that is not a challenge). Pure computation.
    """
    challenges: list[Challenge] = []
    for value in [values] if isinstance(values, str) else values:
        challenges.extend(_parse_one(value))
    return challenges


def _parse_one(text: str) -> list[Challenge]:
    what = "WWW-Authenticate"
    scan = _Scanner(text)
    challenges: list[Challenge] = []
    while True:
        scan.skip_list_separators()
        if scan.at_end():
            return challenges
        scheme = scan.token()
        if not scheme:
            raise InvalidArgumentError(f"{what}: expected an auth scheme at {text[scan.pos :]!r}")
        params: dict[str, str] = {}
        token68: str | None = None
        if scan.peek() in (" ", "\t"):
            scan.skip_space()
            if not scan.param_ahead() and scan.peek() not in ("", ","):
                token68 = _token68(scan, what)
            else:
                _params(scan, params, what)
        elif scan.peek() not in ("", ","):
            raise InvalidArgumentError(f"{what}: unexpected {scan.peek()!r} after scheme {scheme!r}")
        challenges.append(Challenge(scheme.lower(), params, token68))


def _token68(scan: _Scanner, what: str) -> str:
    start = scan.pos
    while scan.peek() and (scan.peek().isalnum() or scan.peek() in _TOKEN68_TAIL):
        scan.pos += 1
    while scan.peek() == "=":
        scan.pos += 1
    value = scan.text[start : scan.pos]
    scan.skip_space()
    if not value or scan.peek() not in ("", ","):
        raise InvalidArgumentError(f"{what}: malformed credentials at {scan.text[start:]!r}")
    return value


def _params(scan: _Scanner, params: dict[str, str], what: str) -> None:
    """``#auth-param`` until the list ends or the next element is a new challenge's scheme."""
    while True:
        scan.skip_space()
        name = scan.token()
        if not name:
            return  # an empty element: the caller skips separators
        scan.skip_space()
        if scan.peek() != "=":
            raise InvalidArgumentError(f"{what}: parameter {name!r} has no value in {scan.text!r}")
        scan.pos += 1
        scan.skip_space()
        if scan.peek() == '"':
            value = scan.quoted(what)
        else:
            value = scan.unquoted()
            if not value:
                raise InvalidArgumentError(f"{what}: parameter {name!r} has no value in {scan.text!r}")
        params.setdefault(name.lower(), value)
        scan.skip_space()
        if scan.peek() != ",":
            if scan.at_end():
                return
            raise InvalidArgumentError(f"{what}: unexpected {scan.peek()!r} after parameter {name!r}")
        while scan.peek() in (",", " ", "\t") and scan.peek():
            scan.pos += 1
        if not scan.param_ahead():
            return  # the next element is a new challenge (or the end)


# -- the state of one registry's authentication --------------------------------
@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """What to send a registry in ``Authorization``, learned from its challenges.

    Thread-safe: tokens and the Basic decision are shared by all threads of one
    client. ``fetch`` performs the token service GET (blocking), ``post`` the
    OAuth2 form POST used with an ``identity_token`` (required then).
    ``registry_token`` is sent as ``Bearer`` with every request.
    """

    def __init__(
        self,
        registry: str,
        fetch: TokenFetch,
        username: str | None = None,
        password: str | None = None,
        *,
        registry_token: str | None = None,
        identity_token: str | None = None,
        post: TokenPost | None = None,
    ) -> None:
        self.registry = registry
        self._fetch = fetch
        self._post = post
        self._credentials = (username, password or "") if username is not None else None
        self._registry_token = registry_token or None
        self._refresh_token = identity_token or None
        if self._refresh_token is not None and post is None:
            raise InvalidArgumentError("an identity token needs a token POST function")
        self._basic = False
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    @property
    def has_credentials(self) -> bool:
        return (
            self._credentials is not None
            or self._registry_token is not None
            or self._refresh_token is not None
        )

    def _basic_value(self) -> str:
        assert self._credentials is not None
        user, password = self._credentials
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")

    def authorization(self, scope: str) -> str | None:
        """The ``Authorization`` value to send for a request needing ``scope``, if any is known.

        A registry token always wins; then a cached unexpired Bearer token for
        exactly that scope; otherwise Basic credentials once the registry asked
        for Basic; otherwise None.
        """
        if self._registry_token is not None:
            return f"Bearer {self._registry_token}"
        with self._lock:
            token = self._tokens.get(scope)
            if token is not None:
                if token.expires_at > time.monotonic():
                    return f"Bearer {token.value}"
                del self._tokens[scope]
            if self._basic and self._credentials is not None:
                return self._basic_value()
        return None

    def respond(self, challenges: Sequence[str], scope: str, sent: str | None = None) -> bool:
        """Learn from a 401's ``WWW-Authenticate`` values; True when a retry may now succeed.

        Bearer (preferred when offered): fetch a token for the challenge's scope
        plus ``scope`` and cache it under ``scope``; always True, since the token
        is new. Basic: True only if credentials are configured and ``sent`` (the
        Authorization value of the refused request) was not Basic already. Raises UnauthenticatedError or PermissionDeniedError when the token
        service refuses, UnavailableError when it is unreachable or answers
        nonsense, InvalidArgumentError for an unparseable challenge.
        """
        parsed = parse_challenges(challenges)
        if self._registry_token is not None:
            return False  # the only credential there is was sent and refused
        bearer = next((c for c in parsed if c.scheme == "bearer"), None)
        if bearer is not None:
            self._fetch_token(bearer, scope)
            return True
        if any(c.scheme == "basic" for c in parsed) and self._credentials is not None:
            # Whether *this* request carried Basic decides: parallel requests that all went
            # out before the first challenge each deserve their retry with credentials.
            if sent is not None and sent.startswith("Basic "):
                return False
            with self._lock:
                self._basic = True
            return True
        return False

    def _fetch_token(self, challenge: Challenge, scope: str) -> None:
        realm = challenge.params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise UnauthenticatedError(
                f"registry {self.registry} asks for a Bearer token but names no usable realm ({realm!r})"
            )
        scopes: list[str] = []
        for text in (challenge.params.get("scope", ""), scope):
            scopes.extend(s for s in text.split() if s not in scopes)
        started = time.monotonic()
        if self._refresh_token is not None:
            status, body = self._oauth(realm, challenge.params.get("service", ""), scopes)
        else:
            query: list[tuple[str, str]] = []
            if "service" in challenge.params:
                query.append(("service", challenge.params["service"]))
            query.extend(("scope", s) for s in scopes)
            headers: dict[str, str] = {}
            if self._credentials is not None:
                query.append(("account", self._credentials[0]))
                headers["Authorization"] = self._basic_value()
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            status, body = self._fetch(url, headers)
        where = f"token service {realm} (for registry {self.registry})"
        if status == 401:
            hint = "rejected the credentials" if self.has_credentials else "requires credentials"
            raise UnauthenticatedError(f"{where} {hint} for scope {' '.join(scopes) or '(none)'}")
        if status == 403:
            raise PermissionDeniedError(f"{where} denied scope {' '.join(scopes) or '(none)'}")
        if status != 200:
            raise UnavailableError(f"{where} answered HTTP {status}")
        try:
            answer = json.loads(body)
        except ValueError:
            raise UnavailableError(f"{where} did not answer JSON") from None
        value = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value:
            raise UnavailableError(f"{where} answered without a token")
        renewed = answer.get("refresh_token")
        if self._refresh_token is not None and isinstance(renewed, str) and renewed:
            self._refresh_token = renewed  # OAuth2 servers may rotate refresh tokens
        lifetime = answer.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        expires_at = started + max(float(lifetime) - _EXPIRY_MARGIN, 1.0)
        with self._lock:
            self._tokens[scope] = _Token(value, expires_at)
        log.debug("token for %s valid %ss", scope, lifetime, extra={"registry": self.registry})

    def _oauth(self, realm: str, service: str, scopes: Sequence[str]) -> tuple[int, bytes]:
        """Exchange the identity (refresh) token for an access token: one form POST to ``realm``."""
        assert self._post is not None and self._refresh_token is not None
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "service": service,
            "client_id": OAUTH_CLIENT_ID,
            "scope": " ".join(scopes),
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self._post(realm, headers, urlencode(form).encode("ascii"))
