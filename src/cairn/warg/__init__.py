"""The Warg domain: a verifiable package log with signed checkpoints (specs/warg.md).

Wire-exact protocol pieces (hashes, keys, records, checkpoints), the Merkle log
and sparse Merkle map with their proofs, the registry (publishing, sequencing,
checkpoints, proofs, ledger) over cairn's core, and a verifying client.
"""

from __future__ import annotations

__all__: list[str] = []
