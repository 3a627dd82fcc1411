"""An in-process Warg registry for the client's unit tests: honest by default, tamperable on purpose.

It keeps the log, map and checkpoints with cairn's own Merkle code and answers
the four calls an update makes (and the three a publish makes) with the same
typed values ``WargApi`` returns, so the updater runs exactly as against a
server. Tests then break one thing (a record's bytes, a checkpoint root, a
proof) and check the client refuses with a message naming it.

It validates nothing and is not a server: it only has to tell the truth, or
lie in a controlled way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.client.model import FetchLogsResult, PublishedRecord, RecordStatus, UploadTarget
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import OPERATOR_LOG_ID, PackageName, operator_record_id, package_record_id
from cairn.warg.merkle_log import MemoryLog, leaf_hash, prove_consistency, prove_inclusion
from cairn.warg.merkle_map import MapProofBundle, MemoryMap, key_path, map_leaf_hash
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
    OperatorInit,
    OperatorRecord,
    PackageEntry,
    PackageRecord,
    RecordTime,
)

REGISTRY = "http://127.0.0.1:1/"
T0 = 1_700_000_000


@dataclass
class FakeRegistry:
    """A registry in memory; ``append`` adds records, ``checkpoint()`` signs the current length."""

    operator_key: PrivateKey = field(default_factory=PrivateKey.generate)
    registry: str = REGISTRY
    log: MemoryLog = field(default_factory=MemoryLog)
    map: MemoryMap = field(default_factory=MemoryMap)
    #: per log id: the records in log order
    logs: dict[str, list[PublishedRecord]] = field(default_factory=dict)
    #: registry index -> (log id, record id)
    leaves: list[tuple[AnyHash, AnyHash]] = field(default_factory=list)
    map_roots: dict[int, bytes] = field(default_factory=dict)
    checkpoints: dict[int, SignedCheckpoint] = field(default_factory=dict)
    latest: int = 0
    clock: int = T0
    #: hooks a test sets to lie: each maps the honest answer to the one sent
    on_checkpoint: Callable[[SignedCheckpoint], SignedCheckpoint] | None = None
    on_logs: Callable[[FetchLogsResult], FetchLogsResult] | None = None
    on_inclusion: Callable[[bytes, bytes], tuple[bytes, bytes]] | None = None
    on_consistency: Callable[[bytes], bytes] | None = None
    calls: list[str] = field(default_factory=list)
    statuses: dict[str, RecordStatus] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    pending: tuple[str, Envelope] | None = None
    #: what get_record answers before publishing (a test may make a record stay or be rejected)
    hold: RecordStatus | None = None

    def __post_init__(self) -> None:
        record = OperatorRecord(
            None,
            0,
            self.tick(),
            (OperatorInit(self.operator_key.public_key), OperatorDefineNamespace("test")),
        )
        self.append_operator(Envelope.sign_operator(record, self.operator_key))
        self.checkpoint()

    def tick(self) -> RecordTime:
        self.clock += 1
        return RecordTime(self.clock, 0)

    # -- writing ---------------------------------------------------------------------
    def append_operator(self, envelope: Envelope) -> int:
        return self._append(OPERATOR_LOG_ID, operator_record_id(envelope.content_bytes), envelope)

    def append(self, name: str, envelope: Envelope) -> int:
        log_id = PackageName.parse(name).log_id
        return self._append(log_id, package_record_id(envelope.content_bytes), envelope)

    def _append(self, log_id: AnyHash, record_id: AnyHash, envelope: Envelope) -> int:
        index = self.log.append(leaf_hash(log_id, record_id))
        self.map.set(key_path(log_id), map_leaf_hash(record_id))
        self.leaves.append((log_id, record_id))
        self.logs.setdefault(str(log_id), []).append(PublishedRecord(envelope, index, str(record_id)))
        return index

    def publish(self, name: str, key: PrivateKey, *entries: PackageEntry) -> Envelope:
        """Append a record chained on the package's last one, signed by ``key``, and checkpoint."""
        log_id = str(PackageName.parse(name).log_id)
        records = self.logs.get(log_id, [])
        prev = AnyHash.parse(records[-1].fetch_token) if records else None
        envelope = Envelope.sign_package(PackageRecord(prev, 0, self.tick(), tuple(entries)), key)
        self.append(name, envelope)
        self.checkpoint()
        return envelope

    def checkpoint(self) -> SignedCheckpoint:
        length = self.log.length
        self.map_roots[length] = self.map.root
        contents = TimestampedCheckpoint(
            length,
            AnyHash("sha256", self.log.root(length)),
            AnyHash("sha256", self.map.root),
            self.clock,
        )
        signed = SignedCheckpoint.sign(contents, self.operator_key)
        self.checkpoints[length] = signed
        self.latest = length
        return signed

    # -- the UpdateApi ---------------------------------------------------------------
    def fetch_checkpoint(self) -> SignedCheckpoint:
        self.calls.append("checkpoint")
        signed = self.checkpoints[self.latest]
        return self.on_checkpoint(signed) if self.on_checkpoint else signed

    def fetch_logs(
        self,
        log_length: int,
        operator: str | None = None,
        packages: Mapping[str, str | None] | None = None,
        limit: int | None = None,
    ) -> FetchLogsResult:
        from cairn.warg.client.errors import WargNotFoundError

        self.calls.append("logs")
        assert log_length in self.checkpoints, log_length
        limit = limit or 100
        more = False

        def page(log_id: str, token: str | None) -> list[PublishedRecord]:
            nonlocal more
            records = [r for r in self.logs.get(log_id, []) if r.registry_index < log_length]
            if token is not None:
                tokens = [r.fetch_token for r in records]
                if token not in tokens:
                    raise WargNotFoundError("unknown fetch token", "fetchToken", token)
                records = records[tokens.index(token) + 1 :]
            out = records[:limit]
            more = more or len(out) == limit
            return out

        result = FetchLogsResult(
            False,
            page(str(OPERATOR_LOG_ID), operator),
            {},
        )
        for log_id, token in (packages or {}).items():
            if log_id not in self.logs:
                raise WargNotFoundError(f"log {log_id}", "log", log_id)
            result.packages[log_id] = page(log_id, token)
        result = replace(result, more=more)
        return self.on_logs(result) if self.on_logs else result

    def prove_inclusion(self, log_length: int, leafs: Sequence[int]) -> tuple[bytes, bytes]:
        self.calls.append("inclusion")
        log_bundle = prove_inclusion(log_length, list(leafs), self.log).encode()
        root = self.map_roots[log_length]
        proofs: list[list[bytes | None]] = []
        for index in leafs:
            log_id, _ = self.leaves[index]
            proofs.append(list(self.map.prove(key_path(log_id), root)))
        map_bundle = MapProofBundle(proofs).encode()
        return self.on_inclusion(log_bundle, map_bundle) if self.on_inclusion else (log_bundle, map_bundle)

    def prove_consistency(self, old_length: int, new_length: int) -> bytes:
        self.calls.append("consistency")
        bundle = prove_consistency(old_length, new_length, self.log).encode()
        return self.on_consistency(bundle) if self.on_consistency else bundle

    # -- the PublishApi ---------------------------------------------------------------
    def publish_record(self, log_id: str, package_name: str, envelope: Envelope) -> RecordStatus:
        """Accept anything: missing content for every release not uploaded yet, else publish at once."""
        from cairn.warg.records import PackageRelease

        record_id = str(package_record_id(envelope.content_bytes))
        record = PackageRecord.decode(envelope.content_bytes)
        missing = {
            str(e.content): [UploadTarget("POST", f"v1/upload/{e.content}", {})]
            for e in record.entries
            if isinstance(e, PackageRelease) and str(e.content) not in self.uploads
        }
        self.pending = (package_name, envelope)
        if missing:
            status = RecordStatus(record_id, "sourcing", missing)
        else:
            status = RecordStatus(record_id, "processing")
        self.statuses[record_id] = status
        return status

    def upload_content(self, target: UploadTarget, path: Path, digest: str) -> None:
        self.uploads[digest] = path.read_bytes()

    def get_record(self, log_id: str, record_id: str) -> RecordStatus:
        self.calls.append("record")
        if self.hold is not None:
            return self.hold
        status = self.statuses[record_id]
        if status.state in ("sourcing", "processing"):
            assert self.pending is not None
            name, envelope = self.pending
            index = self.append(name, envelope)
            self.checkpoint()
            status = RecordStatus(record_id, "published", registry_index=index)
            self.statuses[record_id] = status
        return status
