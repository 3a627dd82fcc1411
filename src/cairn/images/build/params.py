"""What a build is asked to do (:class:`BuildParams`) and what it reports (:class:`BuildEvent`).

The gRPC face reads the parameters from request metadata (DECISIONS.md
image-service 13) and turns each event into one ``BuildProgress`` message; this
module knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cairn.images.model import ImageRecord
from cairn.images.platform import Platform

__all__ = ["BaseResolver", "BuildEvent", "BuildParams"]


@dataclass(frozen=True)
class BuildParams:
    """Dockerfile path (in the context), tags, build args, target stage, platform, no-cache."""

    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None
    no_cache: bool = False


@dataclass(frozen=True, slots=True)
class BuildEvent:
    """One BuildProgress message: a Docker classic-builder ``stream`` line, pull status, or the final aux."""

    stream: str = ""
    status: str = ""
    progress: str = ""
    error: str = ""
    aux: str = ""


#: FROM and ``COPY --from=<image>``: the image for a reference (local lookup, else pull).
BaseResolver = Callable[[str, Platform | None], ImageRecord]
