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

Replicas sharing one catalog (ARCHITECTURE.md principle 4) must never fork
the log, so only the replica holding the claim ``warg-sequencer``
(:mod:`cairn.core.catalog.claims`) runs batches; the others keep trying to take
it, and whoever gains it reloads the log's length, map root and states from the
catalog first, since the previous holder has appended since. The claim dies
with its holder, so a dead sequencer is replaced within one idle poll. Records
published on another replica do not wake this one, so with shared claims the
sequencer polls the queue every :data:`SHARED_IDLE_POLL_SECONDS`. And because
a claim can be lost mid-batch (a broken connection), the commit itself checks,
under the catalog's writer lock, that the log still has the length the batch
started from and that every record it settles is still queued; if not, the
batch is rolled back, the sequencer reloads and tries again. A batch that
fails for any other reason (an unreachable catalog) gives the claim up, so a
replica whose connections work can go on meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.core.catalog.claims import Claims, LocalClaims
from cairn.core.catalog.warg import CheckpointRow, WargCatalog, WargRecordRow
from cairn.core.errors import CairnError, UnavailableError
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

__all__ = ["CLAIM", "Sequencer"]

log = logging.getLogger(__name__)

#: Most records taken from the queue for one batch.
BATCH_LIMIT = 2000
#: How long an idle sequencer sleeps before looking at the queue again (records queued by
#: this process wake it at once; this is for other replicas' records and missed wake-ups).
IDLE_POLL_SECONDS = 1.0
#: The same with replicas sharing the catalog: their records never wake this sequencer, and
#: the replica that is not sequencing tries to take the claim this often.
SHARED_IDLE_POLL_SECONDS = 0.1
#: Pause after a batch failed to commit (a busy or unreachable catalog).
RETRY_SECONDS = 0.5
#: The claim of the one replica that appends to the log.
CLAIM = "warg-sequencer"
#: Batches retried in a row after finding that the log moved underneath them.
STALE_ATTEMPTS = 3


class _Waiting(Exception):
    """A record chains onto a record of its log that is still queued: settle that one first."""


class _Stale(Exception):
    """Another sequencer committed since this batch began (a claim lost mid-batch)."""


class _BatchLogNodes:
    """The log's nodes as a batch sees them: its new nodes over the shared cache.

    The shared cache (the reader's too) only ever receives committed nodes, so a
    batch that is rolled back, because another replica appended those indexes
    meanwhile, never shows a reader a node the catalog does not hold.
    """

    def __init__(self, base: CatalogLogNodes) -> None:
        self._base = base
        self.new: dict[int, bytes] = {}

    def node(self, index: int) -> bytes:
        found = self.new.get(index)
        return self._base.node(index) if found is None else found


@dataclass
class _Batch:
    log_nodes: _BatchLogNodes
    accepted: list[tuple[WargRecordRow, int]] = field(default_factory=list)
    rejected: list[tuple[WargRecordRow, str]] = field(default_factory=list)
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
        claims: Claims | None = None,
    ) -> None:
        self._catalog = catalog
        self._key = key
        self._key_id = key.public_key.key_id
        self._log_nodes = log_nodes
        self._map_nodes = map_nodes
        self._interval = interval
        self._on_commit = on_commit
        #: without claims of the catalog, this sequencer is the only one (tests, tools)
        self._claims: Claims = LocalClaims() if claims is None else claims
        self._leading = False
        self._loaded = False  # whether length, map root and timestamp are the catalog's (see reload)
        self._states = LogStates(catalog, str(OPERATOR_LOG_ID))
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one batch at a time (the thread, or start-up's drain())
        self.length = 0
        self._map_root = merkle_map.EMPTY_ROOT
        self._timestamp = 0  # of the latest checkpoint: a new one never goes back (replicas' clocks differ)
        self._poll = SHARED_IDLE_POLL_SECONDS if self._claims.shared else IDLE_POLL_SECONDS
        self._idle_poll = self._poll
        # The log's position is loaded when this sequencer takes the claim (:meth:`_lead`).

    # -- lifecycle -----------------------------------------------------------------
    def reload(self) -> None:
        """Take the log length and map root from the catalog (on taking the claim, after a failed commit)."""
        self._loaded = False
        self._states.clear()
        self._log_nodes.clear()
        self._map_nodes.clear()
        self.length, latest = self._catalog.head()
        if latest is None:
            self._map_root = merkle_map.EMPTY_ROOT
            self._timestamp = 0
        else:
            if latest.log_length != self.length:  # both are written in one transaction
                raise CairnError(
                    f"warg catalog is inconsistent: {self.length} records accepted, latest checkpoint "
                    f"covers {latest.log_length}"
                )
            self._map_root = AnyHash.parse32(latest.map_root).digest
            self._timestamp = latest.timestamp
        self._loaded = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="warg-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and hand the claim on: another replica sequences from its next poll."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Even if a batch outlived the join, the next holder's commit checks the log's length.
        self._leading = False
        self._claims.release(CLAIM)

    def wake(self) -> None:
        """Records were queued: look at the queue now."""
        self._wake.set()

    def drain(self) -> None:
        """Process batches until the queue is empty (start-up, tests); at once if another replica sequences."""
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
        """Validate and commit one batch; returns how many records it settled.

        0 when the queue is empty, and when another replica holds the claim (it
        settles the queue).
        """
        with self._lock:
            for _ in range(STALE_ATTEMPTS):
                if not self._lead():
                    return 0
                rows = self._catalog.queued(BATCH_LIMIT)
                if not rows:
                    return 0
                start_length = self.length
                try:
                    batch = self._validate(rows)
                    self._commit(batch, start_length)
                except _Stale as exc:
                    log.warning("warg sequencer: %s; reloading the log and retrying the batch", exc)
                    self.length = start_length
                    self.reload()
                    continue
                except BaseException:
                    self.length = start_length
                    self._step_down()  # working states may hold the failed batch; a healthier replica may go on
                    raise
                break
            else:
                raise UnavailableError("the warg log kept moving under this sequencer; is another one running?")
            settled = len(batch.accepted) + len(batch.rejected)
            # records left waiting for a predecessor are looked at again soon, not after a full idle poll
            self._idle_poll = 0.05 if settled < len(rows) else self._poll
        if self._on_commit is not None:
            self._on_commit()
        return settled

    def _lead(self) -> bool:
        """Whether this replica may append now: it holds the claim, or takes it (and reloads) now."""
        if self._claims.holding(CLAIM):
            if not self._loaded:  # a reload failed (the catalog was unreachable): again
                self.reload()
            return True
        if self._leading:
            self._leading = False
            log.warning("warg sequencer: lost the claim %r with its catalog connection", CLAIM)
        if not self._claims.try_claim(CLAIM):
            return False
        self._leading = True
        try:
            self.reload()  # the previous holder appended since this replica last looked
        except BaseException:
            self._step_down()
            raise
        if self._claims.shared:
            log.info("warg sequencer: this replica now sequences the log, from length %d", self.length)
        return True

    def _step_down(self) -> None:
        """After a failure: forget the working states and let another replica sequence for a while.

        The next :meth:`process` claims again (if nobody else did) and reloads; a replica
        whose catalog connections are broken so does not hold up the ones that work.
        """
        self._loaded = False
        self._states.clear()
        self._leading = False
        self._claims.release(CLAIM)

    def _validate(self, rows: list[WargRecordRow]) -> _Batch:
        batch = _Batch(_BatchLogNodes(self._log_nodes))
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
        batch.log_nodes.new.update(merkle_log.appended_nodes(index, leaf, batch.log_nodes))
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

    def _commit(self, batch: _Batch, start_length: int) -> None:
        """Write the batch and its checkpoint in one transaction; _Stale if the log moved meanwhile."""
        if not batch.accepted and not batch.rejected:
            return  # every record is waiting for its predecessor
        checkpoint: SignedCheckpoint | None = None
        map_root = self._map_root
        new_map_nodes: dict[bytes, merkle_map.MapNode] = {}
        if batch.accepted:
            map_root, new_map_nodes = merkle_map.update(self._map_root, batch.map_changes, self._map_nodes)
            contents = TimestampedCheckpoint(
                log_length=self.length,
                log_root=AnyHash("sha256", merkle_log.root(self.length, batch.log_nodes)),
                map_root=AnyHash("sha256", map_root),
                timestamp=max(int(time.time()), self._timestamp, 1),
            )
            checkpoint = SignedCheckpoint.sign(contents, self._key)
        catalog = self._catalog
        with catalog.transaction() as tx:
            # The writer lock is held from here to the commit: no other sequencer's batch lands in between.
            found = catalog.registry_length_in(tx)
            if found != start_length:
                raise _Stale(f"the log grew to {found} records since this batch began at {start_length}")
            for row, index in batch.accepted:
                if not catalog.accept_in(tx, row.log_id, row.record_id, index):
                    raise _Stale(f"record {row.record_id} of log {row.log_id} was settled meanwhile")
            for row, reason in batch.rejected:
                if not catalog.reject_in(tx, row.log_id, row.record_id, reason):
                    raise _Stale(f"record {row.record_id} of log {row.log_id} was settled meanwhile")
            for log_id, (state, count, versions) in batch.logs.items():
                if isinstance(state, PackageLogState):
                    catalog.save_log_in(tx, log_id, dump(state.summary_json()), count)
                    catalog.put_releases_in(
                        tx, log_id, {v: dump(state.releases[v].to_json(keep_content=True)) for v in versions}
                    )
                else:
                    catalog.save_log_in(tx, log_id, dump(state.to_json()), count)
            catalog.put_log_nodes_in(tx, batch.log_nodes.new.items())
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
        # Committed: now the batch's position and nodes are the log's.
        self._map_root = map_root
        self._log_nodes.add(batch.log_nodes.new.items())
        self._map_nodes.add(new_map_nodes.items())
        if checkpoint is not None:
            self._timestamp = checkpoint.contents.timestamp
        for row, reason in batch.rejected:
            log.info("warg record %s of log %s rejected: %s", row.record_id, row.log_id, reason)
