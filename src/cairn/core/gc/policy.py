"""What garbage collection keeps and how it paces itself, as the server's settings give it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GcPolicy"]


@dataclass(frozen=True, slots=True)
class GcPolicy:
    """``grace_seconds``: anything named, stored or changed more recently is kept.

    ``ingest_expiry_seconds``: ingests idle longer (and held by no lease) are
    aborted, except in ``registry_namespace``, whose upload sessions the registry
    expires itself. ``batch_size`` bounds the work (and the writer pause) of one
    catalog transaction.
    """

    registry_namespace: str = "registry"
    directory_repository: str = "dir"
    images_namespace: str = "images"
    grace_seconds: int = 3600
    ingest_expiry_seconds: int = 86400
    batch_size: int = 64
