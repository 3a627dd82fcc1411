"""Images: the local image store and the image service's verbs (pull, push, list, inspect,
remove, tag, exists, build) with Docker Engine semantics.

Built on ``cairn.oci`` (references, manifests, the registry client) and the core
content store and catalog. The gRPC face ``arcbox.v1.ImageService`` lives in
``cairn.api.grpc.images``; this package knows nothing of the wire.
"""

from __future__ import annotations

from cairn.images.model import (
    ImageConfig,
    ImageRecord,
    LayerRecord,
    NewImage,
    chain_ids,
    created_nanos,
    created_seconds,
)
from cairn.images.store import DEFAULT_NAMESPACE, ImageStore, cache_key

__all__ = [
    "DEFAULT_NAMESPACE",
    "ImageConfig",
    "ImageRecord",
    "ImageStore",
    "LayerRecord",
    "NewImage",
    "cache_key",
    "chain_ids",
    "created_nanos",
    "created_seconds",
]
