"""What a content call carries besides its message: the containerd namespace, parsed digests."""

from __future__ import annotations

import grpc

from cairn.core.content import validate_namespace
from cairn.core.digest import Digest
from cairn.core.errors import FailedPreconditionError

__all__ = ["MAX_MESSAGE_BYTES", "NAMESPACE_HEADER", "namespace_of", "parse_digest"]

NAMESPACE_HEADER = "containerd-namespace"
#: gRPC message limit each way; containerd and ctr use 16 MiB.
MAX_MESSAGE_BYTES = 16 << 20


def namespace_of(context: grpc.ServicerContext, default: str | None = None) -> str:
    """The namespace from gRPC metadata; FailedPreconditionError when required and absent."""
    for key, value in context.invocation_metadata():
        if key == NAMESPACE_HEADER and value:
            return validate_namespace(str(value))
    if default is not None:
        return default
    raise FailedPreconditionError(
        f"namespace is required: set the {NAMESPACE_HEADER} metadata (ctr -n <namespace>)"
    )


def parse_digest(text: str) -> Digest:
    return Digest.parse(text)
