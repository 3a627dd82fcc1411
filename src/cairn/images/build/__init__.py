"""Build: Dockerfile builds with Docker's classic-builder semantics and output.

:func:`build` receives a build context as a tar stream, runs the Dockerfile's
stages (RUN isolated with namespaces and chroot, COPY/ADD, config-only
instructions), records every step as an image in the :class:`ImageStore` with
a layer cache, and reports progress as :class:`BuildEvent` lines. The modules
inside are private; this package's names are the whole interface.
"""

from __future__ import annotations

from cairn.images.build.builder import build
from cairn.images.build.params import BaseResolver, BuildEvent, BuildParams

__all__ = ["BaseResolver", "BuildEvent", "BuildParams", "build"]
