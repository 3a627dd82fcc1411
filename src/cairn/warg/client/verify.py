"""The client's checks of what a registry sent, one function each, with no network and no disk.

Each check raises :class:`~cairn.warg.client.errors.VerificationError` whose
message names the thing that did not match (which record, which log, which
root, which length), so a user can tell a tampered record from a rolled-back
registry from a broken proof. They are pure so the unit tests can feed them
crafted answers; ``update.py`` runs them in the order of the reference client
(specs/warg.md §8.8):

1. :func:`check_progress`: the new checkpoint does not go back (length) or
   rewrite history (same length, other roots) relative to the one verified
   before;
2. :func:`apply_records`: every new record of a log has the fetch token its
   bytes hash to, lies below the checkpoint's length, and validates (§5: the
   prev chain, permissions, and the signature) on top of the log's state;
3. :func:`check_checkpoint_signature`: the checkpoint is signed by a key the
   operator log knows and lets ``commit``;
4. :func:`check_inclusion`: every log's head is the leaf at its registry index
   under the checkpoint's log root, and the value of its log id under the map
   root; so the heads the client validated are the heads the checkpoint commits
   to;
5. :func:`check_consistency`: the old checkpoint's log is a prefix of the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cairn.core.errors import CairnError
from cairn.warg.checkpoint import SignedCheckpoint
from cairn.warg.client.errors import VerificationError
from cairn.warg.client.model import PublishedRecord
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import operator_record_id, package_record_id
from cairn.warg.merkle_log import LogProofBundle, evaluate_consistency, evaluate_inclusion, leaf_hash
from cairn.warg.merkle_map import MapProofBundle, key_path, map_leaf_hash
from cairn.warg.merkle_map import evaluate as evaluate_map
from cairn.warg.records import OperatorPermission
from cairn.warg.validation import OperatorLogState, PackageLogState

__all__ = [
    "Cursor",
    "Leaf",
    "apply_records",
    "check_checkpoint_signature",
    "check_consistency",
    "check_inclusion",
    "check_progress",
]


def _hex(value: bytes) -> str:
    return f"sha256:{value.hex()}"


def check_progress(old: SignedCheckpoint | None, new: SignedCheckpoint) -> None:
    """Refuse a checkpoint shorter than the verified one, or as long with other roots."""
    if old is None:
        return
    before, after = old.contents, new.contents
    if after.log_length < before.log_length:
        raise VerificationError(
            f"checkpoint rollback: the registry's checkpoint has log length {after.log_length}, "
            f"but this client already verified log length {before.log_length}"
        )
    if after.log_length == before.log_length and (
        after.log_root != before.log_root or after.map_root != before.map_root
    ):
        which = "log root" if after.log_root != before.log_root else "map root"
        got = after.log_root if which == "log root" else after.map_root
        had = before.log_root if which == "log root" else before.map_root
        raise VerificationError(
            f"checkpoint mismatch: at log length {after.log_length} the registry now gives {which} "
            f"{got}, but this client verified {had}"
        )


class Cursor(Protocol):
    """Where a log's validation stands: its head's registry index and the fetch token to go on from."""

    head_index: int | None
    fetch_token: str | None


def apply_records(
    what: str,
    state: PackageLogState | OperatorLogState,
    track: Cursor,
    records: Sequence[PublishedRecord],
    log_length: int,
    seen_indices: set[int],
) -> int:
    """Validate ``records`` of one log on top of ``state`` and advance ``track``; returns how many.

    ``what`` names the log in messages (``package test:foo``, ``the operator log``).
    ``track`` is updated per record. Records at or below the head's registry index were seen before and
    are skipped (as the reference client does). ``seen_indices`` collects the
    registry indices of this update across logs: two records at one index is a lie.
    """
    applied = 0
    operator = isinstance(state, OperatorLogState)
    for record in records:
        index = record.registry_index
        if track.head_index is not None and index <= track.head_index:
            continue
        record_id = (operator_record_id if operator else package_record_id)(record.envelope.content_bytes)
        where = f"record {record_id} of {what} (registry index {index})"
        if record.fetch_token != str(record_id):
            raise VerificationError(
                f"{where}: the registry gives it fetch token {record.fetch_token}, "
                f"but its content hashes to {record_id}"
            )
        if index >= log_length:
            raise VerificationError(f"{where}: beyond the checkpoint's log length {log_length}")
        if index in seen_indices:
            raise VerificationError(f"{where}: another record was sent for the same registry index")
        try:
            state.validate(record.envelope)
        except CairnError as exc:
            raise VerificationError(f"{where} does not validate: {exc.message}") from None
        seen_indices.add(index)
        track.head_index = index
        track.fetch_token = str(record_id)
        applied += 1
    return applied


def check_checkpoint_signature(checkpoint: SignedCheckpoint, operator: OperatorLogState) -> None:
    """The checkpoint must be signed by an operator-log key that holds ``commit`` (§4)."""
    key_id = checkpoint.key_id
    key = operator.keys.get(key_id)
    if key is None:
        raise VerificationError(
            f"checkpoint signature: signed by key {key_id}, which the operator log does not know"
        )
    if not operator.has_permission(key_id, OperatorPermission.COMMIT):
        raise VerificationError(
            f"checkpoint signature: key {key_id} does not hold the commit permission in the operator log"
        )
    if not checkpoint.verify(key):
        raise VerificationError(
            f"checkpoint signature: the signature of the checkpoint at log length "
            f"{checkpoint.contents.log_length} does not verify with operator key {key_id}"
        )


@dataclass(frozen=True, slots=True)
class Leaf:
    """A log head to prove: which log (named for messages), its id, head record id and registry index."""

    what: str
    log_id: AnyHash
    record_id: AnyHash
    registry_index: int


def check_inclusion(
    checkpoint: SignedCheckpoint, leaves: Sequence[Leaf], log_bundle: bytes, map_bundle: bytes
) -> None:
    """Every head must lead to the checkpoint's log root (log proof) and map root (map proof)."""
    contents = checkpoint.contents
    try:
        log_proof = LogProofBundle.decode(log_bundle)
        map_proof = MapProofBundle.decode(map_bundle)
    except CairnError as exc:
        raise VerificationError(f"inclusion proof: cannot decode the bundle ({exc.message})") from None
    if log_proof.log_length != contents.log_length:
        raise VerificationError(
            f"inclusion proof: the log proof is for log length {log_proof.log_length}, "
            f"the checkpoint's is {contents.log_length}"
        )
    if len(map_proof.proofs) != len(leaves):
        raise VerificationError(
            f"inclusion proof: {len(map_proof.proofs)} map proofs for {len(leaves)} logs asked about"
        )
    for leaf, peers in zip(leaves, map_proof.proofs, strict=True):
        where = f"{leaf.what}'s head {leaf.record_id} (registry index {leaf.registry_index})"
        try:
            log_root = evaluate_inclusion(
                log_proof, leaf.registry_index, leaf_hash(leaf.log_id, leaf.record_id)
            )
            map_root = evaluate_map(key_path(leaf.log_id), map_leaf_hash(leaf.record_id), peers)
        except CairnError as exc:
            raise VerificationError(f"inclusion proof of {where}: {exc.message}") from None
        if log_root != contents.log_root.digest:
            raise VerificationError(
                f"inclusion proof of {where}: the log proof leads to root {_hex(log_root)}, "
                f"the checkpoint's log root is {contents.log_root}"
            )
        if map_root != contents.map_root.digest:
            raise VerificationError(
                f"inclusion proof of {where}: the map proof leads to root {_hex(map_root)}, "
                f"the checkpoint's map root is {contents.map_root}"
            )


def check_consistency(old: SignedCheckpoint, new: SignedCheckpoint, bundle: bytes) -> None:
    """The log at the old checkpoint must be a prefix of the log at the new one."""
    before, after = old.contents, new.contents
    where = f"consistency proof from log length {before.log_length} to {after.log_length}"
    try:
        proof = LogProofBundle.decode(bundle)
        if proof.log_length != after.log_length or list(proof.consistent_lengths) != [before.log_length]:
            raise VerificationError(
                f"{where}: the bundle proves lengths {list(proof.consistent_lengths)} -> {proof.log_length}"
            )
        old_root, new_root = evaluate_consistency(proof)
    except VerificationError:
        raise
    except CairnError as exc:
        raise VerificationError(f"{where}: {exc.message}") from None
    if old_root != before.log_root.digest:
        raise VerificationError(
            f"{where}: the proof leads to old root {_hex(old_root)}, but this client verified "
            f"{before.log_root}"
        )
    if new_root != after.log_root.digest:
        raise VerificationError(
            f"{where}: the proof leads to new root {_hex(new_root)}, but the new checkpoint's is "
            f"{after.log_root}"
        )
