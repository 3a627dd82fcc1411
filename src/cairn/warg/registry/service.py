"""The Warg registry as ``cairn serve`` runs it: publisher, sequencer and reader over one catalog.

On first start the registry writes its operator log's first record (Init with
the operator key, then DefineNamespace for each configured namespace) and
checkpoints it, so the first checkpoint a client sees has length 1 (specs/warg.md
§5.3). On later starts it only checks that the operator key is the one the log
knows and appends one operator record for namespaces added to the
configuration since. Everything lives in the catalog, so a restart neither
replays the log nor rewrites history (the reference memory store's restart bug).

Several replicas may serve one catalog (ARCHITECTURE.md principle 4). Each
publishes and reads through the catalog, so a replica that does not sequence
answers with what the sequencing one committed; only the sequencer's claim
decides who appends (:mod:`cairn.warg.registry.sequencer`). Start-up holds the
claim ``warg-initialise`` while it reads the operator log and writes its
record, and waits until that record is settled by whichever replica
sequences, so replicas starting together define each namespace once. Every
replica must sign with the same operator key (its checkpoints are the log's):
one whose key the log does not know refuses to start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from cairn.core.catalog.claims import Claims, LocalClaims
from cairn.core.catalog.warg import WargCatalog, WargRecordRow
from cairn.core.content.store import ContentStore
from cairn.core.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import SHA256
from cairn.warg.ids import OPERATOR_LOG_ID, is_kebab, operator_record_id
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
    OperatorEntry,
    OperatorImportNamespace,
    OperatorInit,
    OperatorPermission,
    OperatorRecord,
    RecordTime,
)
from cairn.warg.registry.nodes import CatalogLogNodes, CatalogMapNodes
from cairn.warg.registry.publishing import Publisher, PublishPolicy
from cairn.warg.registry.reading import RegistryReader
from cairn.warg.registry.sequencer import Sequencer
from cairn.warg.registry.states import load_operator_state

__all__ = ["WargRegistry"]

log = logging.getLogger(__name__)

#: The claim of the replica writing the operator records its configuration needs.
INIT_CLAIM = "warg-initialise"
#: Longest start-up waits for another replica's initialisation, or for the sequencer.
START_TIMEOUT_SECONDS = 60.0
#: Pause between looks while start-up waits for another replica.
_START_POLL_SECONDS = 0.05


class WargRegistry:
    def __init__(
        self,
        catalog: WargCatalog,
        store: ContentStore,
        namespace: str,
        operator_key: PrivateKey,
        *,
        checkpoint_interval: float = 0.1,
        policy: PublishPolicy | None = None,
        claims: Claims | None = None,
    ) -> None:
        """``claims``: the catalog's (``catalog.claims``), shared with every replica; None for a
        registry that is alone on its catalog."""
        self._catalog = catalog
        self._claims: Claims = LocalClaims() if claims is None else claims
        self.operator_key = operator_key
        operator_log_id = str(OPERATOR_LOG_ID)
        log_nodes = CatalogLogNodes(catalog)
        map_nodes = CatalogMapNodes(catalog)
        self.sequencer = Sequencer(
            catalog, operator_key, log_nodes, map_nodes, interval=checkpoint_interval, claims=self._claims
        )
        self.publisher = Publisher(
            catalog, store, namespace, operator_log_id, policy or PublishPolicy(), self.sequencer.wake
        )
        self.reader = RegistryReader(catalog, log_nodes, map_nodes, store, namespace, operator_log_id)

    def initialise(
        self,
        namespaces: Sequence[str] = (),
        imported: Sequence[tuple[str, str]] = (),
        *,
        timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        """Write the operator records the configuration needs, and checkpoint them (blocking).

        With other replicas on the catalog this waits, up to ``timeout`` seconds, for one
        that is initialising too, then for the sequencer (which may run on another replica);
        UnavailableError when the wait runs out.
        """
        for namespace in [*namespaces, *(ns for ns, _ in imported)]:
            if not is_kebab(namespace):
                raise InvalidArgumentError(
                    f"warg namespace {namespace!r} is invalid: namespaces are lowercase kebab-case words"
                )
        deadline = time.monotonic() + timeout
        self._wait(
            lambda: self._claims.try_claim(INIT_CLAIM), deadline, "another replica to initialise the warg registry"
        )
        try:
            self._initialise(namespaces, imported, deadline)
        finally:
            self._claims.release(INIT_CLAIM)

    def _initialise(self, namespaces: Sequence[str], imported: Sequence[tuple[str, str]], deadline: float) -> None:
        operator_log_id = str(OPERATOR_LOG_ID)
        self.sequencer.drain()  # records queued before a crash go first (if this replica sequences)
        self._settle(
            lambda: not self._catalog.has_queued(operator_log_id), deadline,
            "operator records queued earlier to be sequenced",
        )
        state = load_operator_state(self._catalog, operator_log_id)
        key_id = self.operator_key.public_key.key_id
        entries: list[OperatorEntry] = []
        if state.head is None:
            entries.append(OperatorInit(hash_algorithm=SHA256, key=self.operator_key.public_key))
        elif key_id not in state.keys or not state.has_permission(key_id, OperatorPermission.COMMIT):
            known = ", ".join(k for k in state.keys if state.has_permission(k, OperatorPermission.COMMIT))
            raise FailedPreconditionError(
                f"the operator key of this server ({key_id}) is not a committing key of this registry's "
                f"operator log, which was created with {known or 'no committing key'}; configure the key the "
                "registry was created with, and give every replica serving this catalog the same "
                "--warg-operator-key-file"
            )
        for namespace in dict.fromkeys(ns.lower() for ns in namespaces):
            if state.namespace_state(namespace) is None:
                entries.append(OperatorDefineNamespace(namespace))
        for namespace, registry in imported:
            if state.namespace_state(namespace.lower()) is None:
                entries.append(OperatorImportNamespace(namespace.lower(), registry))
        if not entries:
            return
        now = RecordTime.now()
        record = OperatorRecord(
            prev=None if state.head is None else state.head.record_id,
            version=0,
            time=now if state.head is None else max(now, state.head.timestamp),
            entries=tuple(entries),
        )
        envelope = Envelope.sign_operator(record, self.operator_key)
        record_id = str(operator_record_id(envelope.content_bytes))
        self._catalog.submit(
            WargRecordRow(
                log_id=operator_log_id,
                record_id=record_id,
                content_bytes=envelope.content_bytes,
                key_id=envelope.key_id,
                signature=str(envelope.signature),
                status="queued",
                queued_seq=now.seconds * 1_000_000_000 + now.nanos,
                created_at=now.seconds * 1_000_000_000 + now.nanos,
            ),
            "operator",
            None,
        )
        self.sequencer.wake()

        def settled() -> bool:
            row = self._catalog.get_record(operator_log_id, record_id)
            return row is None or row.status != "queued"

        self._settle(settled, deadline, f"the operator record {record_id} to be sequenced")
        after = load_operator_state(self._catalog, operator_log_id)
        if after.head is None or str(after.head.record_id) != record_id:
            raise FailedPreconditionError("the registry could not write its operator record (see the log)")
        log.info("warg operator log: wrote %d entries", len(entries))

    def _settle(self, done: Callable[[], bool], deadline: float, what: str) -> None:
        """Sequence batches until ``done()``: here if this replica takes the sequencer's claim,
        else wait for the replica that holds it (UnavailableError after ``deadline``)."""
        while not done():
            if self.sequencer.process():
                continue
            self._pause(deadline, what)

    @staticmethod
    def _wait(done: Callable[[], bool], deadline: float, what: str) -> None:
        while not done():
            WargRegistry._pause(deadline, what)

    @staticmethod
    def _pause(deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise UnavailableError(f"warg registry start-up: gave up waiting for {what}")
        time.sleep(_START_POLL_SECONDS)

    def start(self) -> None:
        self.sequencer.start()

    def stop(self) -> None:
        self.sequencer.stop()
