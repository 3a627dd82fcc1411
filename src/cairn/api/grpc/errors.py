"""The one table from cairn's error vocabulary to gRPC status codes, and the handler wrapper.

Most specific class along the MRO wins. Anything that is not a CairnError is
an internal error: the traceback goes to the log, the client gets a generic
message.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from cairn.api.metrics import Metrics
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    CancelledError,
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)

__all__ = ["CODES", "code_for", "handles_errors"]

log = logging.getLogger(__name__)

CODES: dict[type[CairnError], grpc.StatusCode] = {
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,
    OutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnimplementedError: grpc.StatusCode.UNIMPLEMENTED,
    DataLossError: grpc.StatusCode.DATA_LOSS,
    CancelledError: grpc.StatusCode.CANCELLED,
}


def code_for(exc: CairnError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.UNKNOWN


F = TypeVar("F", bound=Callable[..., Any])


def _abort(context: grpc.ServicerContext, exc: BaseException, name: str) -> None:
    if isinstance(exc, CairnError):
        context.abort(code_for(exc), exc.message)
    log.error("internal error in %s", name, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {name}; see the server log")


def _count(servicer: Any, method: str, code: grpc.StatusCode) -> None:
    metrics: Metrics | None = getattr(servicer, "_metrics", None)
    if metrics is not None:
        service = getattr(servicer, "SERVICE", type(servicer).__name__)
        metrics.grpc_request(service, method, code.name).inc()


def handles_errors(method: F) -> F:
    """Turn errors raised by a servicer method (unary or streaming) into gRPC statuses.

    Also counts the call in the servicer's ``_metrics`` (if it has one) by
    method and resulting code.
    """
    name = method.__qualname__
    short = method.__name__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from method(self, request, context)
            except GeneratorExit:
                # The client went away between two messages (ctr does once it has its
                # commit answer): grpcio drops the stream without resuming the handler.
                _count(self, short, grpc.StatusCode.CANCELLED)
                raise
            except Exception as exc:  # noqa: BLE001 - mapped or logged in _abort
                _count(self, short, _code_of(exc))
                _abort(context, exc, name)
            _count(self, short, grpc.StatusCode.OK)

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            response = method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - mapped or logged in _abort
            _count(self, short, _code_of(exc))
            _abort(context, exc, name)
        _count(self, short, grpc.StatusCode.OK)
        return response

    return unary  # type: ignore[return-value]


def _code_of(exc: Exception) -> grpc.StatusCode:
    return code_for(exc) if isinstance(exc, CairnError) else grpc.StatusCode.INTERNAL
