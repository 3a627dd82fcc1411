"""Token auth and rate limits for every gRPC call over TCP: one server interceptor.

With users configured, a call over TCP carries the metadata ``authorization:
Bearer <token>``, a token from the registry's ``/token`` endpoint (same users,
same access file), and the token must grant the scope :mod:`cairn.api.grpc.scopes`
names for the method. The answers:

- no token, a malformed or unknown scheme, or a token that does not verify
  (bad signature, expired, another service's): ``UNAUTHENTICATED``, saying how
  to get one;
- a valid token that lacks the scope: ``PERMISSION_DENIED``, naming the user,
  the scope and the method;
- over the rate limit: ``RESOURCE_EXHAUSTED`` with the seconds to wait (also
  as trailing metadata ``retry-after``).

Calls over the unix socket (``context.peer()`` starts with ``unix:``) are
trusted and never limited: the socket file is mode 0660 in the data directory,
so only the server's user and group reach it, and ``ctr`` cannot send tokens.
The check runs when the call starts, before the servicer sees a message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, NoReturn

import grpc

from cairn.api.grpc.content_seed import DEFAULT_NAMESPACE
from cairn.api.grpc.context import namespace_of
from cairn.api.grpc.errors import code_for
from cairn.api.grpc.scopes import ScopeMap
from cairn.api.ratelimit import RateLimiter
from cairn.core.auth import Auth, TokenClaims
from cairn.core.errors import CairnError, UnauthenticatedError

__all__ = ["AUTHORIZATION_HEADER", "RETRY_AFTER_HEADER", "GrpcGate", "client_of_peer"]

log = logging.getLogger(__name__)

AUTHORIZATION_HEADER = "authorization"
RETRY_AFTER_HEADER = "retry-after"
_SEED_SERVICE = "/containerd.v1.Content/"


def client_of_peer(peer: str) -> str | None:
    """The remote address of a grpcio peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``); None for unix."""
    if peer.startswith("unix:"):
        return None
    _, _, address = peer.partition(":")
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address


class GrpcGate(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc has no type hints
    """Checks each TCP call's token against the scope its method needs, and the client's rate.

    ``auth`` None: no users, every call is allowed (cairn then listens on
    loopback only, unless told otherwise). ``limiter`` None: no rate limit.
    """

    def __init__(
        self,
        auth: Auth | None,
        scopes: ScopeMap,
        limiter: RateLimiter | None = None,
        token_url: str = "/token",
    ) -> None:
        self.auth = auth
        self.scopes = scopes
        self.limiter = limiter
        self.token_url = token_url

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or (self.auth is None and self.limiter is None):
            return handler
        method: str = handler_call_details.method
        return _guarded(handler, lambda context: self.check(method, context))

    def check(self, method: str, context: grpc.ServicerContext) -> None:
        """Let the call go on, or end it with the status the module docstring lists."""
        client = client_of_peer(context.peer())
        if client is None:
            return  # the unix socket: trusted, unlimited
        claims, problem = self._identify(context)
        self._limit(context, f"user:{claims.subject}" if claims and claims.subject else f"ip:{client}")
        if self.auth is None:
            return
        try:
            default = DEFAULT_NAMESPACE if method.startswith(_SEED_SERVICE) else None
            namespace = namespace_of(context, default) if self.scopes.needs_namespace(method) else None
        except CairnError as exc:
            _abort(context, code_for(exc), exc.message)
        scope = self.scopes.required(method, namespace)
        if scope is None:
            return
        if claims is None:
            log.debug("gRPC %s from %s refused: %s", method, client, problem)
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                f"{problem}: {method} needs metadata '{AUTHORIZATION_HEADER}: Bearer <token>' with a token "
                f"for scope {scope} from {self.token_url}?service={self.auth.service}&scope={scope}",
            )
        if claims.granted(scope) != scope.actions:
            who = repr(claims.subject) if claims.subject else "an anonymous caller"
            log.debug("gRPC %s from %s denied: token of %s lacks %s", method, client, who, scope)
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"the token of {who} does not grant {scope}, which {method} needs",
            )

    def _identify(self, context: grpc.ServicerContext) -> tuple[TokenClaims | None, str]:
        """The claims of the call's valid token, or None and why there are none."""
        if self.auth is None:
            return None, ""
        values = [str(v) for k, v in context.invocation_metadata() if k == AUTHORIZATION_HEADER]
        if not values:
            return None, "authentication required"
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "the authorization metadata is not 'Bearer <token>'"
        try:
            return self.auth.tokens.verify(token.strip()), ""
        except UnauthenticatedError as exc:
            return None, exc.message

    def _limit(self, context: grpc.ServicerContext, client: str) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.take(client)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            context.set_trailing_metadata(((RETRY_AFTER_HEADER, str(seconds)),))
            _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit exceeded for {client} ({self.limiter.rate:g} calls/s, burst "
                f"{self.limiter.burst:g}); retry in {seconds}s",
            )


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` (``context.abort`` raises; this tells type checkers so)."""
    context.abort(code, message)
    raise AssertionError("grpc's context.abort returned")


def _guarded(
    handler: grpc.RpcMethodHandler, check: Callable[[grpc.ServicerContext], None]
) -> grpc.RpcMethodHandler:
    """``handler`` with ``check(context)`` run before its behaviour, for each of the four call shapes."""
    h: Any = handler
    shapes: list[tuple[Any, Callable[..., grpc.RpcMethodHandler]]] = [
        (h.unary_unary, grpc.unary_unary_rpc_method_handler),
        (h.unary_stream, grpc.unary_stream_rpc_method_handler),
        (h.stream_unary, grpc.stream_unary_rpc_method_handler),
        (h.stream_stream, grpc.stream_stream_rpc_method_handler),
    ]
    for behaviour, make in shapes:
        if behaviour is not None:
            return make(
                _checked(behaviour, check),
                request_deserializer=h.request_deserializer,
                response_serializer=h.response_serializer,
            )
    return handler


def _checked(
    behaviour: Callable[[Any, grpc.ServicerContext], Any], check: Callable[[grpc.ServicerContext], None]
) -> Callable[[Any, grpc.ServicerContext], Any]:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        check(context)
        return behaviour(request, context)

    return run
