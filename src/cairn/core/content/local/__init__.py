"""The local-disk content backend."""

from cairn.core.content.local.backend import LocalBackend

__all__ = ["LocalBackend"]
