"""The registry's read side: checkpoints, logs, names, proofs, monitor checks, ledger, content.

Everything here answers for checkpointed state only (what a client can verify)
and reads rows the sequencer has committed; nothing here writes. Behaviour
follows specs/warg.md §8.3 (fetch), §8.6 (proofs), §8.7 (monitor) and the
choices of DECISIONS.md warg 4 and 5 (empty logs as ``[]``, ledger capped at the
latest checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cairn.core.catalog.warg import CheckpointRow, WargCatalog, WargRecordRow
from cairn.core.content.store import ContentStore, ReaderAt
from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError, UnavailableError
from cairn.warg import merkle_log, merkle_map
from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.crypto import Signature
from cairn.warg.errors import ProofError, WargFormatError
from cairn.warg.hashes import AnyHash
from cairn.warg.records import OperatorPermission
from cairn.warg.registry.errors import (
    BundleFailureError,
    IncorrectProofError,
    PackageNotIncludedError,
    WargNotFoundError,
)
from cairn.warg.registry.nodes import CatalogLogNodes, CatalogMapNodes
from cairn.warg.registry.states import load_operator_state

__all__ = ["FetchedLogs", "LEDGER_CHUNK", "RegistryReader"]

#: Default and largest ``limit`` of fetch/logs.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Leaves per ledger source (and per ``v1/ledger/records/{start}`` answer).
LEDGER_CHUNK = 1000
#: fetch/names reads only this many ids (the reference does the same, silently).
MAX_NAMES = 1000


@dataclass(frozen=True, slots=True)
class FetchedLogs:
    more: bool
    operator: list[WargRecordRow]
    packages: dict[str, list[WargRecordRow]]


def _signed(row: CheckpointRow) -> SignedCheckpoint:
    return SignedCheckpoint(
        TimestampedCheckpoint(
            row.log_length, AnyHash.parse32(row.log_root), AnyHash.parse32(row.map_root), row.timestamp
        ),
        row.key_id,
        Signature.parse(row.signature),
    )


class RegistryReader:
    def __init__(
        self,
        catalog: WargCatalog,
        log_nodes: CatalogLogNodes,
        map_nodes: CatalogMapNodes,
        store: ContentStore,
        namespace: str,
        operator_log_id: str,
    ) -> None:
        self._catalog = catalog
        self._log_nodes = log_nodes
        self._map_nodes = map_nodes
        self._store = store
        self._namespace = namespace
        self._operator_log_id = operator_log_id

    # -- checkpoints -----------------------------------------------------------------
    def checkpoint(self) -> SignedCheckpoint:
        """The most recent checkpoint."""
        row = self._catalog.latest_checkpoint()
        if row is None:
            raise UnavailableError("the registry has not issued a checkpoint yet")
        return _signed(row)

    def verify_checkpoint(self, offered: SignedCheckpoint) -> tuple[str, str]:
        """(checkpoint verdict, signature verdict), each ``verified`` or ``invalid`` (§8.7)."""
        contents = offered.contents
        stored = self._catalog.checkpoint(contents.log_length)
        matches = (
            stored is not None
            and stored.log_root == str(contents.log_root)
            and stored.map_root == str(contents.map_root)
        )
        checkpoint = "verified" if matches else "invalid"
        if stored is not None and stored.key_id == offered.key_id and stored.signature == str(offered.signature):
            # The same bytes the registry signed, if the contents are the stored ones too.
            if stored.timestamp == contents.timestamp and matches:
                return checkpoint, "verified"
        operator = load_operator_state(self._catalog, self._operator_log_id)
        key = operator.keys.get(offered.key_id)
        if key is None or not operator.has_permission(offered.key_id, OperatorPermission.COMMIT):
            return checkpoint, "invalid"
        return checkpoint, "verified" if offered.verify(key) else "invalid"

    # -- logs ------------------------------------------------------------------------
    def fetch_logs(
        self,
        log_length: int,
        limit: int | None,
        operator_token: str | None,
        packages: Mapping[str, str | None],
    ) -> FetchedLogs:
        """Records of the operator log and of each requested package log below ``log_length`` (§8.3)."""
        limit = DEFAULT_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgumentError(f"invalid records limit value `{limit}`: must be between 1 and {MAX_LIMIT}")
        if self._catalog.checkpoint(log_length) is None:
            raise WargNotFoundError("logLength", log_length)
        operator = self._records(self._operator_log_id, operator_token, log_length, limit)
        found: dict[str, list[WargRecordRow]] = {}
        for log_id, token in packages.items():
            if self._catalog.get_log(log_id) is None:
                raise WargNotFoundError("log", log_id)
            found[log_id] = self._records(log_id, token, log_length, limit)
        more = len(operator) == limit or any(len(rows) == limit for rows in found.values())
        return FetchedLogs(more, operator, found)

    def _records(self, log_id: str, token: str | None, below: int, limit: int) -> list[WargRecordRow]:
        after = -1
        if token is not None:
            try:
                AnyHash.parse(token)
            except WargFormatError:
                raise WargNotFoundError("fetchToken", token) from None
            row = self._catalog.get_record(log_id, token)
            if row is None or row.registry_index is None:
                raise WargNotFoundError("fetchToken", token)
            after = row.registry_index
        return self._catalog.accepted_in_log(log_id, after, below, limit)

    def names(self, log_ids: Sequence[str]) -> dict[str, str | None]:
        """Package names of the first 1000 ids; WargNotFoundError(log) for any unknown one."""
        wanted = list(log_ids[:MAX_NAMES])
        known = self._catalog.names(wanted)
        for log_id in wanted:
            if log_id not in known:
                raise WargNotFoundError("log", log_id)
        return {log_id: known[log_id] for log_id in wanted}

    # -- proofs ----------------------------------------------------------------------
    def prove_inclusion(self, log_length: int, leafs: Sequence[int]) -> tuple[bytes, bytes]:
        """(LogProofBundle bytes, MapProofBundle bytes) for ``leafs`` at ``log_length`` (§8.6)."""
        accepted = self._catalog.registry_length()
        leaves: list[tuple[str, str]] = []
        for index in leafs:
            if index < 0 or index >= accepted:
                raise WargNotFoundError("leaf", index)
            found = self._catalog.leaves(index, index + 1)
            if not found:
                raise WargNotFoundError("leaf", index)
            leaves.append(found[0])
        if log_length > accepted:
            raise BundleFailureError("leaf newer than when it should be included")
        try:
            log_bundle = merkle_log.prove_inclusion(log_length, list(leafs), self._log_nodes)
        except ProofError as exc:
            raise BundleFailureError(exc.message) from None
        checkpoint = self._catalog.checkpoint(log_length)
        if checkpoint is None:
            raise WargNotFoundError("logLength", log_length)
        root = AnyHash.parse32(checkpoint.map_root).digest
        proofs: list[list[bytes | None]] = []
        for log_id, record_id in leaves:
            path = merkle_map.key_path(AnyHash.parse32(log_id))
            try:
                peers = merkle_map.prove(root, path, self._map_nodes)
            except ProofError:
                raise PackageNotIncludedError(log_id) from None
            found_root = merkle_map.evaluate(path, merkle_map.map_leaf_hash(AnyHash.parse32(record_id)), peers)
            if found_root != root:
                raise IncorrectProofError(checkpoint.map_root, str(AnyHash("sha256", found_root)))
            proofs.append(list(peers))
        return log_bundle.encode(), merkle_map.MapProofBundle(proofs).encode()

    def prove_consistency(self, old_length: int, new_length: int) -> bytes:
        """LogProofBundle bytes proving the log at ``old_length`` is a prefix of it at ``new_length``."""
        accepted = self._catalog.registry_length()
        if new_length > accepted:
            raise BundleFailureError(
                f"log length `{new_length}` is beyond the end of the log (length `{accepted}`)"
            )
        try:
            return merkle_log.prove_consistency(old_length, new_length, self._log_nodes).encode()
        except ProofError as exc:
            raise BundleFailureError(exc.message) from None

    # -- ledger ----------------------------------------------------------------------
    def ledger_length(self) -> int:
        """Leaves the ledger offers: those of the latest checkpoint."""
        latest = self._catalog.latest_checkpoint()
        return 0 if latest is None else latest.log_length

    def ledger_records(self, start: int) -> bytes:
        """``logId ‖ recordId`` (32 raw bytes each) for up to 1000 leaves from ``start``."""
        stop = min(start + LEDGER_CHUNK, self.ledger_length())
        if start < 0 or start >= stop:
            return b""
        return b"".join(
            AnyHash.parse32(log_id).digest + AnyHash.parse32(record_id).digest
            for log_id, record_id in self._catalog.leaves(start, stop)
        )

    # -- content ---------------------------------------------------------------------
    def content_size(self, digest: str) -> int:
        """Size of uploaded release content; WargNotFoundError(contentDigest) if none was uploaded."""
        size = self._catalog.content_size(digest)
        if size is None:
            raise WargNotFoundError("contentDigest", digest)
        return size

    def open_content(self, digest: str) -> ReaderAt:
        self.content_size(digest)
        return self._store.reader_at(self._namespace, Digest.parse(digest))
