"""Where a ``/v2/`` request goes: the route kind, repository name and argument.

Repository names contain ``/``, so aiohttp's router cannot split them; the
distribution spec says to locate the *last* ``/blobs/``, ``/manifests/``,
``/tags/list``, ``/referrers/`` or ``/blobs/uploads/`` segment, which greedy
regular expressions over the path after ``/v2/`` do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Route", "route_of"]

_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("upload", re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<arg>[^/]*)$")),
    ("blob", re.compile(r"^(?P<name>.+)/blobs/(?P<arg>[^/]+)$")),
    ("manifest", re.compile(r"^(?P<name>.+)/manifests/(?P<arg>[^/]+)$")),
    ("tags", re.compile(r"^(?P<name>.+)/tags/list(?P<arg>)$")),
    ("referrers", re.compile(r"^(?P<name>.+)/referrers/(?P<arg>[^/]+)$")),
)


@dataclass(frozen=True, slots=True)
class Route:
    """``kind`` is base, catalog, openapi, upload, blob, manifest, tags or referrers."""

    kind: str
    name: str = ""
    arg: str = ""


def route_of(tail: str) -> Route | None:
    """The route for the path after ``/v2/``, or None when nothing matches (404)."""
    if tail == "":
        return Route("base")
    if tail == "_catalog":
        return Route("catalog")
    if tail == "openapi.json":  # one segment: never a repository URL (those end in an endpoint)
        return Route("openapi")
    for kind, pattern in _ROUTES:
        match = pattern.match(tail)
        if match:
            return Route(kind, match["name"], match["arg"])
    return None
