"""The ``cairn`` command: ``cairn serve`` and the client commands that talk to a running server."""

import os

# grpc core reads GRPC_EXPERIMENTS once, when grpc is first imported, so this must
# come before anything imports grpc. With its EventEngine listener off, grpcio's
# server hands each call between fewer threads (docs/benchmarks.md: the cost that
# dominates ``ctr content get``). A value the user set is kept.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_listener")

from cairn.cli.main import cli, main

__all__ = ["cli", "main"]
