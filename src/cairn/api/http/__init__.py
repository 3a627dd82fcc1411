"""The HTTP face (aiohttp): health, metrics, and later the registry APIs."""

from cairn.api.http.app import build_http_app

__all__ = ["build_http_app"]
