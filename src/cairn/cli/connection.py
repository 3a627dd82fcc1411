"""How the cairn CLI's gRPC clients reach a server securely: TLS, a private CA, a Bearer token.

Every gRPC client of the CLI (content, record, sync, image) opens its channel
through :func:`open_channel`, the one place channel credentials are built:

- a unix socket: plaintext, no token (the socket is trusted by the server);
- HOST:PORT with ``--tls`` or ``--tls-ca FILE``: TLS, trusting the system's
  roots or FILE (a private CA); with a token, ``authorization: Bearer`` on
  every call (grpc's access-token call credentials);
- HOST:PORT without TLS and with a token: loopback only (grpc's local
  credentials), so a token never crosses a network in the clear;
- HOST:PORT without either: plaintext.

The token is ``--token`` (``CAIRN_TOKEN``), or one fetched from the server's
``/token`` with ``--user`` (``CAIRN_USER``) and the password in ``CAIRN_PASSWORD``, at
``--auth-url`` (``CAIRN_URL``), asking for
every scope a CLI command may need (the grant is cut down to what the user may
do). The group options are stored on the click context, shared by its commands.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc

from cairn.api.grpc.scopes import ADMIN, IMAGES
from cairn.cli.health import DEFAULT_URL
from cairn.core.errors import InvalidArgumentError, UnauthenticatedError, UnavailableError

__all__ = ["GrpcSecurity", "current_security", "fetch_token", "open_channel", "security_options"]

F = TypeVar("F", bound=Callable[..., Any])

_META_KEY = "cairn.grpc_security"
_LOOPBACK = ("127.", "[::1]", "localhost")


@dataclass(frozen=True, slots=True)
class GrpcSecurity:
    """The CLI's choices for reaching a gRPC server: TLS, its CA, and the token (or how to get one)."""

    tls: bool = False
    ca_file: Path | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    url: str = DEFAULT_URL

    def bearer(self, namespace: str = "default") -> str | None:
        """The token to send: ``--token``, or one fetched for ``--user`` (None: none)."""
        if self.token:
            return self.token
        if not self.user:
            return None
        scopes = [
            f"repository:containerd:{namespace}:pull,push,delete",
            "repository:dir:pull,push,delete",
            f"repository:{IMAGES}:pull,push,delete",
            str(ADMIN),
        ]
        return fetch_token(self.url, self.user, self.password or "", scopes, self.ca_file)


def open_channel(
    target: str, options: Sequence[tuple[str, Any]], security: GrpcSecurity | None, namespace: str = "default"
) -> grpc.Channel:
    """A channel to ``target`` (a grpc target: ``unix:...`` or HOST:PORT) as the module docstring says."""
    security = security or GrpcSecurity()
    if target.startswith("unix:"):
        return grpc.insecure_channel(target, options=options)
    token = security.bearer(namespace)
    if security.tls or security.ca_file is not None:
        roots = _read_ca(security.ca_file) if security.ca_file is not None else None
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    elif token:
        if not target.startswith(_LOOPBACK):
            raise InvalidArgumentError(
                f"refusing to send a token to {target} without TLS; use --tls or --tls-ca FILE"
            )
        credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
    else:
        return grpc.insecure_channel(target, options=options)
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token)
        )
    return grpc.secure_channel(target, credentials, options=options)


def fetch_token(
    url: str, user: str, password: str, scopes: Sequence[str], ca_file: Path | None = None
) -> str:
    """A token from ``<url>/token`` for ``user`` (Basic credentials), asking for ``scopes``.

    UnauthenticatedError for a wrong user or password, UnavailableError when
    the server cannot be reached. Neither the password nor the token is put
    into a message.
    """
    query = urllib.parse.urlencode([("service", "cairn"), *(("scope", s) for s in scopes)])
    request = urllib.request.Request(f"{url.rstrip('/')}/token?{query}")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise UnauthenticatedError(f"{url}/token refused the credentials of user {user!r}") from None
        raise UnavailableError(f"{url}/token answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise UnavailableError(f"cannot get a token from {url}/token: {exc}") from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise UnavailableError(f"{url}/token answered without a token")
    return token


def _read_ca(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"--tls-ca {path}: cannot read: {exc.strerror or exc}") from None


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            ctx.meta.setdefault(_META_KEY, {})[name] = value

    return callback


def security_options(command: F) -> F:
    """``--tls``, ``--tls-ca``, ``--token``, ``--user`` for a command group (kept on the click context)."""
    options = [
        click.option(
            "--tls",
            is_flag=True,
            default=None,
            envvar="CAIRN_TLS",
            expose_value=False,
            callback=_store("tls"),
            help="Speak TLS to a HOST:PORT server (system CAs).",
        ),
        click.option(
            "--tls-ca",
            type=click.Path(path_type=Path, dir_okay=False),
            envvar="CAIRN_TLS_CA",
            expose_value=False,
            callback=_store("ca_file"),
            show_envvar=True,
            help="Speak TLS, trusting this PEM CA certificate.",
        ),
        click.option(
            "--token",
            envvar="CAIRN_TOKEN",
            expose_value=False,
            callback=_store("token"),
            show_envvar=True,
            help="Bearer token from the server's /token, sent on every gRPC call over TCP.",
        ),
        click.option(
            "--user",
            envvar="CAIRN_USER",
            expose_value=False,
            callback=_store("user"),
            show_envvar=True,
            help="Fetch a token from --url's /token as this user (password in CAIRN_PASSWORD).",
        ),
        click.option(
            "--auth-url",
            envvar="CAIRN_URL",
            expose_value=False,
            callback=_store("url"),
            show_envvar=True,
            help=f"HTTP address whose /token --user logs in at [{DEFAULT_URL}].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def current_security() -> GrpcSecurity:
    """The security options given to the running command's group (defaults when none).

    The password of ``--user`` comes from ``CAIRN_PASSWORD``, never from a flag
    (flags show in ``ps`` and shell history).
    """
    ctx = click.get_current_context(silent=True)
    given: dict[str, Any] = dict(ctx.meta.get(_META_KEY, {})) if ctx is not None else {}
    if given.get("user"):
        given["password"] = os.environ.get("CAIRN_PASSWORD", "")
    return GrpcSecurity(**given)
