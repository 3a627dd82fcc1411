"""The sequencer: the one writer that gives queued records their registry index.

Publishing only stores a record as queued (its signature already checked, in
parallel, by the request that brought it: DECISIONS.md warg 8). The sequencer
takes queued records in order, validates each against its log (specs/warg.md
§5), appends accepted ones to the Merkle log and sets their log's head in the
map, then commits the whole batch together with a signed checkpoint covering
it: one transaction, so a crash leaves either the batch and its checkpoint or
neither, and every registry index below the latest checkpoint is final.

A batch is committed as soon as the queue is drained or ``interval`` seconds
have passed since it began (DECISIONS.md warg 3: a checkpoint follows the
work at once, never a fixed tick), so a lone publish is published within
milliseconds and a busy registry still checkpoints at least every interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.core.catalog.warg import CheckpointRow, WargCatalog, WargRecordRow
from cairn.core.errors import CairnError
from cairn.warg import merkle_log, merkle_map
from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.crypto import PrivateKey, Signature
from cairn.warg.errors import ValidationError, WargFormatError
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import OPERATOR_LOG_ID
from cairn.warg.records import Envelope, OperatorRecord, PackageRecord
from cairn.warg.registry.nodes import CatalogLogNodes, CatalogMapNodes
from cairn.warg.registry.states import LogStates, dump
from cairn.warg.validation import OperatorLogState, PackageLogState

__all__ = ["Sequencer"]

log = logging.getLogger(__name__)

#: Most records taken from the queue for one batch.
BATCH_LIMIT = 2000
#: How long an idle sequencer sleeps before looking at the queue again (records queued by
#: this process wake it at once; this is for other replicas' records and missed wake-ups).
IDLE_POLL_SECONDS = 1.0
#: Pause after a batch failed to commit (a busy or unreachable catalog).
RETRY_SECONDS = 0.5


class _Waiting(Exception):
    """A record chains onto a record of its log that is still queued: settle that one first."""


@dataclass
class _Batch:
    accepted: list[tuple[WargRecordRow, int]] = field(default_factory=list)
    rejected: list[tuple[WargRecordRow, str]] = field(default_factory=list)
    log_nodes: list[tuple[int, bytes]] = field(default_factory=list)
    map_changes: dict[bytes, bytes] = field(default_factory=dict)
    #: log id -> (state, accepted records of it in this batch, versions whose release changed)
    logs: dict[str, tuple[PackageLogState | OperatorLogState, int, set[str]]] = field(default_factory=dict)


class Sequencer:
    """Validates, appends and checkpoints queued records, one batch at a time, in one thread."""

    def __init__(
        self,
        catalog: WargCatalog,
        key: PrivateKey,
        log_nodes: CatalogLogNodes,
        map_nodes: CatalogMapNodes,
        *,
        interval: float,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._catalog = catalog
        self._key = key
        self._key_id = key.public_key.key_id
        self._log_nodes = log_nodes
        self._map_nodes = map_nodes
        self._interval = interval
        self._on_commit = on_commit
        self._states = LogStates(catalog, str(OPERATOR_LOG_ID))
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one batch at a time (the thread, or start-up's drain())
        self.length = 0
        self._map_root = merkle_map.EMPTY_ROOT
        self._idle_poll = IDLE_POLL_SECONDS
        self.reload()

    # -- lifecycle -----------------------------------------------------------------
    def reload(self) -> None:
        """Take the log length and map root from the catalog (at start, after a failed commit)."""
        self._states.clear()
        self._log_nodes.clear()
        self._map_nodes.clear()
        latest = self._catalog.latest_checkpoint()
        self.length = self._catalog.registry_length()
        if latest is None:
            self._map_root = merkle_map.EMPTY_ROOT
        else:
            if latest.log_length != self.length:  # both are written in one transaction
                raise CairnError(
                    f"warg catalog is inconsistent: {self.length} records accepted, latest checkpoint "
                    f"covers {latest.log_length}"
                )
            self._map_root = AnyHash.parse32(latest.map_root).digest

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="warg-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Records were queued: look at the queue now."""
        self._wake.set()

    def drain(self) -> None:
        """Process batches until the queue is empty (start-up, tests)."""
        while self.process():
            pass

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                done = self.process()
            except CairnError as exc:
                log.warning("warg sequencer: batch not committed, retrying: %s", exc.message)
                self._stopping.wait(RETRY_SECONDS)
                continue
            except Exception:
                log.exception("warg sequencer: batch failed, retrying")
                self._stopping.wait(RETRY_SECONDS)
                continue
            if not done:
                self._wake.wait(self._idle_poll)

    # -- one batch -----------------------------------------------------------------
    def process(self) -> int:
        """Validate and commit one batch; returns how many records it settled (0: queue empty)."""
        with self._lock:
            rows = self._catalog.queued(BATCH_LIMIT)
            if not rows:
                return 0
            start_length, start_root = self.length, self._map_root
            try:
                batch = self._validate(rows)
                self._commit(batch)
            except BaseException:
                self.length, self._map_root = start_length, start_root
                self.reload()  # working states and caches may hold the failed batch
                raise
            settled = len(batch.accepted) + len(batch.rejected)
            # records left waiting for a predecessor are looked at again soon, not after a full idle poll
            self._idle_poll = 0.05 if settled < len(rows) else IDLE_POLL_SECONDS
        if self._on_commit is not None:
            self._on_commit()
        return settled

    def _validate(self, rows: list[WargRecordRow]) -> _Batch:
        batch = _Batch()
        deadline = time.monotonic() + self._interval
        waiting: list[WargRecordRow] = []
        for row in rows:
            if time.monotonic() > deadline:
                break
            if not self._settle(row, batch):
                waiting.append(row)
        # Records that arrived before the record they chain onto: retry while that helps.
        while waiting and len(batch.accepted) > 0:
            before = len(waiting)
            waiting = [row for row in waiting if not self._settle(row, batch)]
            if len(waiting) == before:
                break
        return batch

    def _settle(self, row: WargRecordRow, batch: _Batch) -> bool:
        """Accept or reject ``row`` into ``batch``; False if it waits for its queued predecessor."""
        operator = row.log_id == str(OPERATOR_LOG_ID)
        try:
            state, changed = self._apply(row, operator)
        except _Waiting:
            return False
        except (ValidationError, WargFormatError) as exc:
            kind = "operator" if operator else "package"
            batch.rejected.append((row, f"the {kind} record was invalid: {exc.message}"))
            return True
        index = self.length
        leaf = merkle_log.leaf_hash(AnyHash.parse32(row.log_id), AnyHash.parse32(row.record_id))
        nodes = merkle_log.appended_nodes(index, leaf, self._log_nodes)
        self._log_nodes.add(nodes)
        batch.log_nodes.extend(nodes)
        self.length += 1
        log_id = AnyHash.parse32(row.log_id)
        batch.map_changes[merkle_map.key_path(log_id)] = merkle_map.map_leaf_hash(
            AnyHash.parse32(row.record_id)
        )
        batch.accepted.append((row, index))
        _, count, versions = batch.logs.get(row.log_id, (state, 0, set()))
        batch.logs[row.log_id] = (state, count + 1, versions | set(changed))
        return True

    def _apply(self, row: WargRecordRow, operator: bool) -> tuple[PackageLogState | OperatorLogState, list[str]]:
        envelope = Envelope(row.content_bytes, row.key_id, Signature.parse(row.signature))
        if operator:
            operator_state = self._states.operator()
            operator_state.validate(envelope, OperatorRecord.decode(row.content_bytes))
            return operator_state, []
        state = self._states.package(row.log_id)
        record = PackageRecord.decode(row.content_bytes)
        head = None if state.head is None else state.head.record_id
        if record.prev is not None and record.prev != head:
            # Published in parallel with the record before it, which is queued too: settle that first.
            earlier = self._catalog.get_record(row.log_id, str(record.prev))
            if earlier is not None and earlier.status == "queued":
                raise _Waiting
        # The publishing request verified the signature with the key this log knows for the
        # key id (or the record's own init key), which validation would use again.
        changed = state.validate(envelope, record, signature_checked=True)
        return state, changed

    def _commit(self, batch: _Batch) -> None:
        if not batch.accepted and not batch.rejected:
            return  # every record is waiting for its predecessor
        checkpoint: SignedCheckpoint | None = None
        new_map_nodes: dict[bytes, merkle_map.MapNode] = {}
        if batch.accepted:
            self._map_root, new_map_nodes = merkle_map.update(self._map_root, batch.map_changes, self._map_nodes)
            self._map_nodes.add(new_map_nodes.items())
            contents = TimestampedCheckpoint(
                log_length=self.length,
                log_root=AnyHash("sha256", merkle_log.root(self.length, self._log_nodes)),
                map_root=AnyHash("sha256", self._map_root),
                timestamp=max(int(time.time()), 1),
            )
            checkpoint = SignedCheckpoint.sign(contents, self._key)
        catalog = self._catalog
        with catalog.transaction() as tx:
            for row, index in batch.accepted:
                catalog.accept_in(tx, row.log_id, row.record_id, index)
            for row, reason in batch.rejected:
                catalog.reject_in(tx, row.log_id, row.record_id, reason)
                log.info("warg record %s of log %s rejected: %s", row.record_id, row.log_id, reason)
            for log_id, (state, count, versions) in batch.logs.items():
                if isinstance(state, PackageLogState):
                    catalog.save_log_in(tx, log_id, dump(state.summary_json()), count)
                    catalog.put_releases_in(
                        tx, log_id, {v: dump(state.releases[v].to_json(keep_content=True)) for v in versions}
                    )
                else:
                    catalog.save_log_in(tx, log_id, dump(state.to_json()), count)
            catalog.put_log_nodes_in(tx, batch.log_nodes)
            catalog.put_map_nodes_in(tx, ((digest, node.encode()) for digest, node in new_map_nodes.items()))
            if checkpoint is not None:
                contents = checkpoint.contents
                catalog.put_checkpoint_in(
                    tx,
                    CheckpointRow(
                        contents.log_length, str(contents.log_root), str(contents.map_root),
                        contents.timestamp, checkpoint.key_id, str(checkpoint.signature),
                    ),
                )
