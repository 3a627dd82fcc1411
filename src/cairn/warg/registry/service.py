"""The Warg registry as ``cairn serve`` runs it: publisher, sequencer and reader over one catalog.

On first start the registry writes its operator log's first record (Init with
the operator key, then DefineNamespace for each configured namespace) and
checkpoints it, so the first checkpoint a client sees has length 1 (specs/warg.md
§5.3). On later starts it only checks that the operator key is the one the log
knows and appends one operator record for namespaces added to the
configuration since. Everything lives in the catalog, so a restart neither
replays the log nor rewrites history (the reference memory store's restart bug).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from cairn.core.catalog.warg import WargCatalog, WargRecordRow
from cairn.core.content.store import ContentStore
from cairn.core.errors import FailedPreconditionError, InvalidArgumentError
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
    ) -> None:
        self._catalog = catalog
        self.operator_key = operator_key
        operator_log_id = str(OPERATOR_LOG_ID)
        log_nodes = CatalogLogNodes(catalog)
        map_nodes = CatalogMapNodes(catalog)
        self.sequencer = Sequencer(catalog, operator_key, log_nodes, map_nodes, interval=checkpoint_interval)
        self.publisher = Publisher(
            catalog, store, namespace, operator_log_id, policy or PublishPolicy(), self.sequencer.wake
        )
        self.reader = RegistryReader(catalog, log_nodes, map_nodes, store, namespace, operator_log_id)

    def initialise(self, namespaces: Sequence[str] = (), imported: Sequence[tuple[str, str]] = ()) -> None:
        """Write the operator records the configuration needs, and checkpoint them (blocking)."""
        for namespace in [*namespaces, *(ns for ns, _ in imported)]:
            if not is_kebab(namespace):
                raise InvalidArgumentError(
                    f"warg namespace {namespace!r} is invalid: namespaces are lowercase kebab-case words"
                )
        self.sequencer.drain()  # records queued before a crash go first
        state = load_operator_state(self._catalog, str(OPERATOR_LOG_ID))
        key_id = self.operator_key.public_key.key_id
        entries: list[OperatorEntry] = []
        if state.head is None:
            entries.append(OperatorInit(hash_algorithm=SHA256, key=self.operator_key.public_key))
        elif key_id not in state.keys or not state.has_permission(key_id, OperatorPermission.COMMIT):
            raise FailedPreconditionError(
                f"the operator key ({key_id}) is not a committing key of this registry's operator log; "
                "configure the key the registry was created with"
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
        self._catalog.submit(
            WargRecordRow(
                log_id=str(OPERATOR_LOG_ID),
                record_id=str(operator_record_id(envelope.content_bytes)),
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
        self.sequencer.drain()
        after = load_operator_state(self._catalog, str(OPERATOR_LOG_ID))
        if after.head is None or after.head.record_id != operator_record_id(envelope.content_bytes):
            raise FailedPreconditionError("the registry could not write its operator record (see the log)")
        log.info("warg operator log: wrote %d entries", len(entries))

    def start(self) -> None:
        self.sequencer.start()

    def stop(self) -> None:
        self.sequencer.stop()
