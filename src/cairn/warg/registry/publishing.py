"""Publishing: accept a signed package record, source its content, report its state.

The flow of specs/warg.md §8.4: the record is checked as far as it can be
without its log's order (name, decoding, namespace, policy, signature), stored
as received, and queued for the sequencer once every release's content is in
the store. Content arrives by upload, is hashed as it streams into cairn's
content store (so the other faces see the same bytes) and is shared by
digest: one upload serves every record waiting for those bytes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cairn.core.catalog.group_commit import GroupCommit
from cairn.core.catalog.warg import WargCatalog, WargRecordRow
from cairn.core.content.store import ContentStore, Writer
from cairn.core.digest import Digest, new_hasher
from cairn.core.errors import AlreadyExistsError, InvalidArgumentError, ResourceExhaustedError
from cairn.warg.crypto import PACKAGE_RECORD_PREFIX, PublicKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import PackageName, package_record_id
from cairn.warg.records import Envelope, PackageInit, PackageRecord, PackageRelease
from cairn.warg.registry.errors import (
    ContentRejectedError,
    ContentSourcesUnsupportedError,
    NamespaceImportedError,
    NotSourcingError,
    UnauthorizedRecordError,
    WargNotFoundError,
)
from cairn.warg.registry.states import load_operator_state, load_package_state
from cairn.warg.validation import OperatorLogState

__all__ = ["ContentUpload", "PublishPolicy", "Publisher", "RecordStatus"]

#: Seconds the publisher reuses the operator log's state (its namespaces) before reading it again.
OPERATOR_STATE_SECONDS = 1.0
#: WebAssembly modules and components both start with these bytes.
_WASM_MAGIC = b"\0asm"


@dataclass(frozen=True, slots=True)
class RecordStatus:
    """A record as ``GET v1/package/{logId}/record/{recordId}`` reports it."""

    record_id: str
    state: str  # sourcing | processing | published | rejected
    missing: tuple[str, ...] = ()
    reason: str = ""
    registry_index: int | None = None


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    """What the operator allows beyond the protocol (DECISIONS.md warg 7); all off by default."""

    #: namespace -> key ids allowed to publish in it; namespaces not listed are open to any key
    authorized_keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: refuse uploaded content that is not WebAssembly (does not start with ``\0asm``)
    wasm_only: bool = False
    #: largest content upload accepted, in bytes
    upload_max_bytes: int = 1 << 30


class Publisher:
    def __init__(
        self,
        catalog: WargCatalog,
        store: ContentStore,
        namespace: str,
        operator_log_id: str,
        policy: PublishPolicy,
        queued: Callable[[], None],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._namespace = namespace
        self._operator_log_id = operator_log_id
        self.policy = policy
        self._queued = queued
        self._submits: GroupCommit[tuple[WargRecordRow, str, str | None], WargRecordRow] = GroupCommit(
            # A record is promised only once it is published (its checkpoint is flushed with
            # it): a 202 needs no flush of its own, which keeps publishing off the disk's
            # latency. A crash of the process keeps it; a power loss may drop it, and the
            # client then sees 404 and publishes again.
            lambda records: catalog.submit_many(records, durable=False)
        )
        #: (log id, key id) -> key, for keys a log is known to hold (a log never forgets a key)
        self._log_keys: dict[tuple[str, str], PublicKey] = {}
        self._operator: tuple[float, OperatorLogState] | None = None

    def publish(
        self, log_id: AnyHash, name: PackageName, envelope: Envelope, *, content_sources: bool = False
    ) -> RecordStatus:
        """Check and store a record; it is then sourcing (content missing) or processing."""
        if name.log_id != log_id:
            raise InvalidArgumentError(
                f"package log identifier `{name.log_id}` derived from `{name}` does not match provided "
                f"log identifier `{log_id}`"
            )
        record = PackageRecord.decode(envelope.content_bytes)
        if content_sources:
            raise ContentSourcesUnsupportedError("specifying content sources is not supported")
        self._check_namespace(name.namespace)
        allowed = self.policy.authorized_keys.get(name.namespace)
        if allowed is not None and envelope.key_id not in allowed:
            raise UnauthorizedRecordError(
                f"key id `{envelope.key_id}` is not authorized to publish in namespace `{name.namespace}`"
            )
        self._check_signature(str(log_id), record, envelope)

        contents = list(dict.fromkeys(str(e.content) for e in record.entries if isinstance(e, PackageRelease)))
        known = self._catalog.known_contents(contents)
        missing = tuple(d for d in contents if d not in known)
        now = time.time_ns()
        row = self._submits.submit((
            WargRecordRow(
                log_id=str(log_id),
                record_id=str(package_record_id(envelope.content_bytes)),
                content_bytes=envelope.content_bytes,
                key_id=envelope.key_id,
                signature=str(envelope.signature),
                status="sourcing" if missing else "queued",
                missing=missing,
                queued_seq=None if missing else now,
                created_at=now,
            ),
            "package",
            str(name),
        ))
        if row.status == "queued":
            self._queued()
        return self._status(row)

    def status(self, log_id: str, record_id: str) -> RecordStatus:
        row = self._catalog.get_record(log_id, record_id)
        if row is None:
            if self._catalog.get_log(log_id) is None:
                raise WargNotFoundError("log", log_id)
            raise WargNotFoundError("record", record_id)
        return self._status(row)

    def begin_upload(self, log_id: str, record_id: str, digest: str) -> ContentUpload:
        """Start receiving content the record is missing."""
        row = self._catalog.get_record(log_id, record_id)
        if row is None:
            if self._catalog.get_log(log_id) is None:
                raise WargNotFoundError("log", log_id)
            raise WargNotFoundError("record", record_id)
        if row.status != "sourcing":
            raise NotSourcingError(f"record `{record_id}` is no longer accepting content")
        if digest not in row.missing:
            raise InvalidArgumentError(f"content digest `{digest}` is not required for package record `{record_id}`")
        return ContentUpload(self, row, Digest.parse(digest))

    # -- helpers ---------------------------------------------------------------------
    def _check_namespace(self, namespace: str) -> None:
        state = self._operator_state().namespace_state(namespace)
        if state is None:
            raise WargNotFoundError("namespace", namespace)
        if state.imported_from is not None:
            raise NamespaceImportedError(namespace)

    def _operator_state(self) -> OperatorLogState:
        """The operator log's state, re-read at most every second (namespaces change rarely)."""
        now = time.monotonic()
        if self._operator is None or now - self._operator[0] > OPERATOR_STATE_SECONDS:
            self._operator = (now, load_operator_state(self._catalog, self._operator_log_id))
        return self._operator[1]

    def _check_signature(self, log_id: str, record: PackageRecord, envelope: Envelope) -> None:
        key = self._log_keys.get((log_id, envelope.key_id))
        if key is None:
            key = load_package_state(self._catalog, log_id, with_releases=False).keys.get(envelope.key_id)
            if key is not None:
                if len(self._log_keys) > 100_000:
                    self._log_keys.clear()
                self._log_keys[(log_id, envelope.key_id)] = key
        if key is None and record.entries and isinstance(record.entries[0], PackageInit):
            key = record.entries[0].key
        if key is None:
            raise UnauthorizedRecordError(f"unknown key id `{envelope.key_id}`")
        if not key.verify(PACKAGE_RECORD_PREFIX, envelope.content_bytes, envelope.signature):
            raise UnauthorizedRecordError(f"signature `{envelope.signature}` verification failed")

    def _status(self, row: WargRecordRow) -> RecordStatus:
        if row.status == "sourcing":
            return RecordStatus(row.record_id, "sourcing", missing=row.missing)
        if row.status == "rejected":
            return RecordStatus(row.record_id, "rejected", reason=row.reason)
        if row.status == "accepted" and row.registry_index is not None:
            latest = self._catalog.latest_checkpoint()
            if latest is not None and row.registry_index < latest.log_length:
                return RecordStatus(row.record_id, "published", registry_index=row.registry_index)
        return RecordStatus(row.record_id, "processing")

    def _arrived(self, digest: str, size: int) -> None:
        with self._catalog.transaction() as tx:
            queued = self._catalog.content_arrived_in(tx, digest, size, time.time_ns())
        if queued:
            self._queued()

    def _reject(self, row: WargRecordRow, reason: str) -> None:
        self._catalog.reject(row.log_id, row.record_id, reason, "sourcing")


class ContentUpload:
    """One upload of release content, streamed into the content store and verified at the end."""

    def __init__(self, publisher: Publisher, row: WargRecordRow, expected: Digest) -> None:
        self._publisher = publisher
        self._row = row
        self._expected = expected
        self._size = 0
        self._head = b""
        self._writer: Writer | None = None
        self._hasher = new_hasher(expected.algorithm)
        try:
            self._writer = publisher._store.writer(
                publisher._namespace, f"warg-upload-{uuid.uuid4().hex}", expected=expected
            )
        except AlreadyExistsError:
            self._writer = None  # the store has these bytes already; only check what the client sends

    def write(self, chunk: bytes) -> None:
        limit = self._publisher.policy.upload_max_bytes
        if self._size + len(chunk) > limit:
            self.abort()
            raise ResourceExhaustedError(f"content is larger than the upload limit of {limit} bytes")
        if len(self._head) < len(_WASM_MAGIC):
            self._head += chunk[: len(_WASM_MAGIC) - len(self._head)]
        if self._writer is not None:
            self._writer.write(chunk, self._size)
        else:
            self._hasher.update(chunk)
        self._size += len(chunk)

    def finish(self) -> None:
        """Verify the digest (and the content policy), store, and queue every record now complete."""
        expected = str(self._expected)
        actual = str(self._writer.digest()) if self._writer is not None else f"sha256:{self._hasher.hexdigest()}"
        if actual != expected:
            self.abort()
            raise InvalidArgumentError(f"content digest `{actual}` does not match expected digest `{expected}`")
        if self._publisher.policy.wasm_only and self._head != _WASM_MAGIC:
            self.abort()
            reason = (
                f"content with digest `{expected}` was rejected by policy: it is not a WebAssembly module "
                "or component (it does not start with \\0asm)"
            )
            self._publisher._reject(self._row, reason)
            raise ContentRejectedError(reason)
        if self._writer is not None:
            try:
                self._writer.commit(self._size, self._expected)
            except AlreadyExistsError:
                pass  # committed meanwhile by another upload of the same bytes
            self._writer = None
        self._publisher._arrived(expected, self._size)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
