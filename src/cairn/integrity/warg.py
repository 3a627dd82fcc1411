"""The Warg registry log against its checkpoints: recompute each stored checkpoint's root.

For every checkpoint (shortest first) the log root is computed twice and
compared with the root the checkpoint signs: once from the leaves themselves
(each accepted record's ``(log id, record id)`` in registry order, hashed as the
sequencer hashes them, folded with :func:`cairn.warg.merkle_log.branch`), and
once from the stored complete nodes with :func:`cairn.warg.merkle_log.root`,
which is what proofs are built from. When the operator key is at hand, the
checkpoint's signature is verified too. Any disagreement is one
``warg-checkpoint-mismatch`` problem per checkpoint, naming what disagrees.

The leaves are streamed in pages and folded into a stack of at most log2(n)
subtree roots, so memory stays small however long the log is. The map root is
not recomputed (it would mean replaying every record's validation).
"""

from __future__ import annotations

from cairn.core.catalog.integrity import IntegrityCatalog
from cairn.core.catalog.warg import CheckpointRow, WargCatalog
from cairn.integrity.report import Problem, Report
from cairn.warg import merkle_log
from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.crypto import PublicKey, Signature
from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import AnyHash
from cairn.warg.registry.nodes import CatalogLogNodes

__all__ = ["LeafFolder", "WargLogCheck"]

#: Leaves read from the catalog at a time.
PAGE = 2000


class LeafFolder:
    """The root of a log grown one leaf at a time, in O(log n) memory (a stack of subtree roots)."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (leaves under it, hash), tallest first
        self.length = 0

    def push(self, leaf: bytes) -> None:
        size, value = 1, leaf
        while self._stack and self._stack[-1][0] == size:
            _, left = self._stack.pop()
            size, value = 2 * size, merkle_log.branch(left, value)
        self._stack.append((size, value))
        self.length += 1

    def root(self) -> bytes:
        if not self._stack:
            return merkle_log.EMPTY_ROOT
        current = self._stack[-1][1]
        for _, value in reversed(self._stack[:-1]):
            current = merkle_log.branch(value, current)
        return current


class WargLogCheck:
    """Checks every stored checkpoint; ``operator_key`` (None: signatures are not checked)."""

    def __init__(self, integrity: IntegrityCatalog, warg: WargCatalog, operator_key: PublicKey | None) -> None:
        self._integrity = integrity
        self._warg = warg
        self._key = operator_key

    def run(self, report: Report) -> None:
        folder = LeafFolder()
        nodes = CatalogLogNodes(self._warg)
        for checkpoint in self._integrity.checkpoints():
            self._grow(folder, checkpoint.log_length)
            faults = self._faults(checkpoint, folder, nodes)
            if faults:
                report.add(Problem(
                    "warg-checkpoint-mismatch", f"checkpoint {checkpoint.log_length}", "; ".join(faults)
                ))

    def _grow(self, folder: LeafFolder, length: int) -> None:
        while folder.length < length:
            page = self._warg.leaves(folder.length, min(length, folder.length + PAGE))
            if not page:
                return
            for log_id, record_id in page:
                folder.push(merkle_log.leaf_hash(AnyHash.parse32(log_id), AnyHash.parse32(record_id)))

    def _faults(self, checkpoint: CheckpointRow, folder: LeafFolder, nodes: CatalogLogNodes) -> list[str]:
        length, signed = checkpoint.log_length, checkpoint.log_root
        faults = []
        if folder.length < length:
            faults.append(f"it covers {length} records but the log holds {folder.length}")
        else:
            from_leaves = str(AnyHash("sha256", folder.root()))
            if from_leaves != signed:
                faults.append(f"log root {signed}, but its {length} leaves give {from_leaves}")
        try:
            from_nodes = str(AnyHash("sha256", merkle_log.root(length, nodes)))
        except KeyError as exc:
            faults.append(f"stored log node {exc.args[0]} is missing")
        else:
            if from_nodes != signed:
                faults.append(f"log root {signed}, but the stored log nodes give {from_nodes}")
        if self._key is not None and checkpoint.key_id == self._key.key_id:
            if not self._signed(checkpoint, self._key):
                faults.append(f"its signature does not verify with operator key {checkpoint.key_id}")
        return faults

    @staticmethod
    def _signed(checkpoint: CheckpointRow, key: PublicKey) -> bool:
        try:
            contents = TimestampedCheckpoint(
                checkpoint.log_length,
                AnyHash.parse32(checkpoint.log_root),
                AnyHash.parse32(checkpoint.map_root),
                checkpoint.timestamp,
            )
            signed = SignedCheckpoint(contents, checkpoint.key_id, Signature.parse(checkpoint.signature))
        except WargFormatError:
            return False
        return signed.verify(key)
