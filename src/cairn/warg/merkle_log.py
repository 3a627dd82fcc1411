"""The registry's verifiable log (specs/warg.md section 6): an RFC 6962-shaped Merkle log.

Every accepted record appends one leaf; checkpoints sign the log root, and
clients check inclusion and consistency proofs against it. Nodes are numbered
in binary in-order (leaf i is node 2i, height = trailing one bits), which is the
numbering the proof bundles carry on the wire.

Nothing here rebuilds a tree. The registry keeps the hash of every complete
node (a node is complete once its rightmost leaf exists, and never changes
after that), so this module works over a :class:`NodeReader` and only ever
touches O(log n) nodes: an append reads the left siblings it completes, a root
folds the balanced-subtree roots ("broots"), a proof reads the nodes of its walk.
The reader may be a catalog, a cache over one, or :class:`MemoryLog`.

Error texts are upstream's (``warg-transparency``), because the Warg HTTP face
returns them to clients as the ``failure`` message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError

from cairn.warg.errors import ProofError
from cairn.warg.gen.warg.transparency import proofs_pb2
from cairn.warg.hashes import AnyHash, pstr

__all__ = [
    "EMPTY_ROOT",
    "LEAF_PREFIX",
    "LogProofBundle",
    "MemoryLog",
    "NodeReader",
    "appended_nodes",
    "branch",
    "broots",
    "evaluate_consistency",
    "evaluate_inclusion",
    "leaf_hash",
    "log_leaf_bytes",
    "node_exists",
    "prove_consistency",
    "prove_inclusion",
    "root",
    "walk",
]

#: Domain prefix of a log leaf value.
LEAF_PREFIX = b"WARG-LOG-LEAF-V0"

#: Root of the empty log: ``H("")`` (not the map's ``H(0x00)``).
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Upstream texts, kept verbatim (the HTTP face sends them as the failure message).
_NO_PROOFS = "A bundle can not be made from no proofs"
_OUT_OF_ORDER = "tries to prove later value comes before earlier"
_LEAF_TOO_NEW = "leaf newer than when it should be included"
_HASH_NOT_FOUND = "Necessary hash not found"
_HASH_NOT_KNOWN = "required hash for proof is not available"
_DIVERGING_ROOTS = "constituent inclusion proofs diverge produce different roots"

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_BRANCH = b"\x01"


class NodeReader(Protocol):
    """Where the hashes of complete in-order nodes live (catalog rows, a cache, a list)."""

    def node(self, index: int) -> bytes:
        """The 32-byte hash of complete node ``index``; KeyError if it is not stored."""
        ...


def log_leaf_bytes(log_id: AnyHash, record_id: AnyHash) -> bytes:
    """``"WARG-LOG-LEAF-V0" || pstr(log_id) || pstr(record_id)``, over the hash strings."""
    return LEAF_PREFIX + pstr(str(log_id)) + pstr(str(record_id))


def leaf_hash(log_id: AnyHash, record_id: AnyHash) -> bytes:
    """``H(0x00 || leaf bytes)``: what the log actually appends for a record."""
    return _sha256(_LEAF + log_leaf_bytes(log_id, record_id)).digest()


def branch(left: bytes, right: bytes) -> bytes:
    """``H(0x01 || left || right)``, the hash of an inner node."""
    return _sha256(_BRANCH + left + right).digest()


def _height(node: int) -> int:
    """Number of trailing 1-bits of ``node``: 0 for leaves."""
    above = node + 1
    return (above & -above).bit_length() - 1


def node_exists(node: int, length: int) -> bool:
    """Whether in-order ``node`` is complete in a log of ``length`` leaves (its last leaf exists)."""
    if node < 0:
        return False
    return (node + (1 << _height(node)) - 1) // 2 < length


def broots(length: int) -> list[int]:
    """The balanced-subtree roots of a log of ``length`` leaves, left (tallest) to right.

    One per set bit of ``length``; each spans the next ``2^h`` leaves. L=7 -> [3, 9, 12].
    """
    out: list[int] = []
    first_leaf_node = 0
    for h in range(length.bit_length() - 1, -1, -1):
        if (length >> h) & 1:
            out.append(first_leaf_node + (1 << h) - 1)
            first_leaf_node += 1 << (h + 1)
    return out


def walk(node: int, length: int) -> list[int]:
    """The nodes an inclusion proof of ``node`` at ``length`` needs, in evaluation order.

    Siblings up to the covering broot, then the broots to its right (rightmost
    first), then those to its left (nearest first). walk(6, 7) = [4, 1, 12, 9].
    """
    return [n for part in _walk_parts(node, length) for n in part]


def _walk_parts(node: int, length: int) -> tuple[list[int], list[int], list[int]]:
    if not node_exists(node, length):
        raise ProofError(_LEAF_TOO_NEW)
    roots = broots(length)
    root_set = set(roots)
    siblings: list[int] = []
    current, h = node, _height(node)
    while current not in root_set:
        if (current >> (h + 1)) & 1:  # a right child
            siblings.append(current - (1 << (h + 1)))
            current -= 1 << h
        else:
            siblings.append(current + (1 << (h + 1)))
            current += 1 << h
        h += 1
    position = roots.index(current)
    return siblings, roots[:position:-1], roots[position - 1 :: -1] if position else []


def appended_nodes(length: int, leaf: bytes, nodes: NodeReader) -> list[tuple[int, bytes]]:
    """Append leaf hash ``leaf`` at registry index ``length``: the nodes it completes, bottom-up.

    The first pair is ``(2*length, leaf)``; then one parent per level for as long
    as the new node is a right child, each read-once from its stored left sibling.
    Amortised two nodes per append, at most log2(n) + 1.
    """
    node, h, current = 2 * length, 0, leaf
    out = [(node, current)]
    while (node >> (h + 1)) & 1:
        current = _sha256(_BRANCH + nodes.node(node - (1 << (h + 1))) + current).digest()
        node -= 1 << h
        h += 1
        out.append((node, current))
    return out


def root(length: int, nodes: NodeReader) -> bytes:
    """Root of the log at ``length``: the broots folded from the right (``H("")`` when empty)."""
    roots = broots(length)
    if not roots:
        return EMPTY_ROOT
    current = nodes.node(roots[-1])
    for node in reversed(roots[:-1]):
        current = _sha256(_BRANCH + nodes.node(node) + current).digest()
    return current


@dataclass(frozen=True)
class LogProofBundle:
    """Inclusion and consistency proofs against one log length, as ``warg.transparency`` sends them.

    ``included_indices`` are node numbers (2 x registry index) in request order;
    ``hashes`` is the union of every walk's nodes (plus the old broots of each
    consistency proof), keyed by node number. ``encode`` sorts them, as prost does.
    """

    log_length: int
    consistent_lengths: list[int] = field(default_factory=list)
    included_indices: list[int] = field(default_factory=list)
    hashes: dict[int, bytes] = field(default_factory=dict)

    def encode(self) -> bytes:
        message = proofs_pb2.LogProofBundle(
            log_length=self.log_length,
            consistent_lengths=self.consistent_lengths,
            included_indices=self.included_indices,
            hashes=[proofs_pb2.HashEntry(index=i, hash=self.hashes[i]) for i in sorted(self.hashes)],
        )
        return bytes(message.SerializeToString())

    @classmethod
    def decode(cls, data: bytes) -> LogProofBundle:
        """Parse bundle bytes from a peer; anything malformed is a ProofError, never a crash."""
        message = proofs_pb2.LogProofBundle()
        try:
            message.ParseFromString(data)
        except (DecodeError, ValueError, TypeError) as exc:
            raise ProofError(f"malformed log proof bundle: {exc}") from None
        hashes: dict[int, bytes] = {}
        for entry in message.hashes:
            if len(entry.hash) != 32:
                raise ProofError(f"log proof hash for node {entry.index} is not 32 bytes")
            if entry.index in hashes:
                raise ProofError(f"log proof repeats the hash of node {entry.index}")
            hashes[entry.index] = bytes(entry.hash)
        return cls(
            log_length=message.log_length,
            consistent_lengths=list(message.consistent_lengths),
            included_indices=list(message.included_indices),
            hashes=hashes,
        )


def _bundle(
    length: int, consistent: Sequence[int], included: Sequence[int], needed: Iterable[int], nodes: NodeReader
) -> LogProofBundle:
    hashes: dict[int, bytes] = {}
    try:
        for node in needed:
            if node not in hashes:
                hashes[node] = nodes.node(node)
    except KeyError:
        raise ProofError(_HASH_NOT_FOUND) from None
    return LogProofBundle(length, list(consistent), list(included), hashes)


def prove_inclusion(length: int, registry_indices: Sequence[int], nodes: NodeReader) -> LogProofBundle:
    """One bundle proving each registry index is in the log at ``length`` (O(log n) reads each)."""
    if not registry_indices:
        raise ProofError(_NO_PROOFS)
    included = [2 * index for index in registry_indices]
    needed = [n for node in included for n in walk(node, length)]
    return _bundle(length, [], included, needed, nodes)


def prove_consistency(old_length: int, new_length: int, nodes: NodeReader) -> LogProofBundle:
    """A bundle proving the log at ``old_length`` is a prefix of the log at ``new_length``.

    One inclusion walk per old broot; the old broots themselves travel too, so
    the verifier can rebuild the old root.
    """
    if old_length > new_length:
        raise ProofError(_OUT_OF_ORDER)
    old_roots = broots(old_length)
    if not old_roots:
        raise ProofError(_NO_PROOFS)
    needed = [n for broot in old_roots for n in (*walk(broot, new_length), broot)]
    return _bundle(new_length, [old_length], [], needed, nodes)


def _known(hashes: dict[int, bytes], node: int) -> bytes:
    try:
        return hashes[node]
    except KeyError:
        raise ProofError(_HASH_NOT_KNOWN) from None


def _evaluate(node: int, value: bytes, length: int, hashes: dict[int, bytes]) -> bytes:
    """Fold the walk of ``node`` (hash ``value``) at ``length`` into the root it implies."""
    siblings, right, left = _walk_parts(node, length)
    current = value
    for sibling in siblings:
        peer = _known(hashes, sibling)
        current = branch(peer, current) if sibling < node else branch(current, peer)
    if right:
        summary = _known(hashes, right[0])
        for broot in right[1:]:
            summary = branch(_known(hashes, broot), summary)
        current = branch(current, summary)
    for broot in left:
        current = branch(_known(hashes, broot), current)
    return current


def evaluate_inclusion(bundle: LogProofBundle, registry_index: int, leaf: bytes) -> bytes:
    """The log root at ``bundle.log_length`` implied by leaf hash ``leaf`` at ``registry_index``.

    The caller compares it with the checkpoint's root. The bundle must list the leaf.
    """
    node = 2 * registry_index
    if registry_index < 0 or node not in bundle.included_indices:
        raise ProofError(f"the bundle does not prove registry index {registry_index}")
    return _evaluate(node, leaf, bundle.log_length, bundle.hashes)


def evaluate_consistency(bundle: LogProofBundle) -> tuple[bytes, bytes]:
    """The (old root, new root) a consistency bundle proves; the caller compares both.

    The bundle must hold exactly one consistency proof and no inclusions (what
    ``/proof/consistency`` returns); every old broot must lead to the same new root.
    """
    if len(bundle.consistent_lengths) != 1 or bundle.included_indices:
        raise ProofError("a consistency bundle must hold exactly one consistency proof and no inclusions")
    old_length, new_length = bundle.consistent_lengths[0], bundle.log_length
    if old_length > new_length:
        raise ProofError(_OUT_OF_ORDER)
    old_roots = broots(old_length)
    if not old_roots:
        raise ProofError(_NO_PROOFS)
    new_root: bytes | None = None
    old_hashes: list[bytes] = []
    for broot in old_roots:
        value = _known(bundle.hashes, broot)
        old_hashes.append(value)
        found = _evaluate(broot, value, new_length, bundle.hashes)
        if new_root is not None and found != new_root:
            raise ProofError(_DIVERGING_ROOTS)
        new_root = found
    assert new_root is not None
    old_root = old_hashes[-1]
    for value in reversed(old_hashes[:-1]):
        old_root = branch(value, old_root)
    return old_root, new_root


class MemoryLog:
    """An in-memory log: a list of in-order node hashes. A NodeReader for tests, benches, clients."""

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self._length = 0

    @property
    def length(self) -> int:
        return self._length

    def node(self, index: int) -> bytes:
        if index < 0 or index >= len(self._nodes) or not self._nodes[index]:
            raise KeyError(index)
        return self._nodes[index]

    def append(self, leaf: bytes) -> int:
        """Append leaf hash ``leaf`` (see :func:`leaf_hash`); returns its registry index."""
        index = self._length
        nodes = self._nodes
        for node, value in appended_nodes(index, leaf, self):
            if node >= len(nodes):
                nodes.extend([b""] * (node + 1 - len(nodes)))
            nodes[node] = value
        self._length = index + 1
        return index

    def root(self, length: int | None = None) -> bytes:
        """Root at ``length`` (default: the current length)."""
        return root(self._length if length is None else length, self)
