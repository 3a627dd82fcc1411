"""The Warg registry face: the ``/v1/`` HTTP API of specs/warg.md §8 (and its OpenAPI document)."""

from __future__ import annotations

from cairn.api.http.warg.routes import add_warg_routes

__all__ = ["add_warg_routes"]
