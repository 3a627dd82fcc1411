"""The ``cairn`` command: ``cairn serve`` and the client commands that talk to a running server."""

from cairn.cli.main import cli, main

__all__ = ["cli", "main"]
