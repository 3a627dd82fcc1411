"""Publishing one record: build it on the verified head, sign it, send it, upload, wait.

The record chains on the package head this client verified (``prev``), takes
the current time but never one below the head's (the log would reject it,
§5.1 step 3), and is signed with the publisher's key. The registry answers
``sourcing`` when it lacks released content: each missing content is then
streamed from its file to the upload URL the registry gave. Then the record is
polled until ``published`` (the registry's checkpoint covers it) or ``rejected``
(the server's reason is the error message). Polling starts at 10 ms and doubles
up to 1 s: a local registry publishes within milliseconds and should not be
made to look slow, a remote one should not be hammered.

What this module does not do: decide what the head is (the caller updates
first, so it is verified) or record the outcome (the caller updates again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from cairn.core.errors import UnavailableError
from cairn.warg.client.errors import MalformedResponseError, RecordRejectedError
from cairn.warg.client.model import RecordStatus, UploadTarget
from cairn.warg.crypto import PrivateKey
from cairn.warg.ids import PackageName, package_record_id
from cairn.warg.records import Envelope, PackageEntry, PackageRecord, RecordTime
from cairn.warg.validation import Head

__all__ = ["FIRST_POLL", "MAX_POLL", "PublishApi", "Publisher", "build_record", "sign_record"]

#: The first wait between polls of a record's state, doubled up to :data:`MAX_POLL`.
FIRST_POLL = 0.01
MAX_POLL = 1.0


class PublishApi(Protocol):
    """The calls publishing needs (``WargApi`` has them)."""

    registry: str

    def publish_record(self, log_id: str, package_name: str, envelope: Envelope) -> RecordStatus: ...

    def get_record(self, log_id: str, record_id: str) -> RecordStatus: ...

    def upload_content(self, target: UploadTarget, path: Path, digest: str) -> None: ...


def build_record(
    head: Head | None, entries: Sequence[PackageEntry], now: RecordTime | None = None
) -> PackageRecord:
    """A version-0 record after ``head`` (None: the first record), timed now but not before the head."""
    when = now or RecordTime.now()
    if head is not None and when < head.timestamp:
        when = head.timestamp
    return PackageRecord(None if head is None else head.record_id, 0, when, tuple(entries))


def sign_record(record: PackageRecord, key: PrivateKey) -> Envelope:
    """The record's bytes signed by ``key`` (the envelope's key id is the key's fingerprint)."""
    return Envelope.sign_package(record, key)


class Publisher:
    """Sends signed records to one registry and follows them to their end state."""

    def __init__(
        self,
        api: PublishApi,
        *,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock

    def submit(self, name: PackageName, envelope: Envelope, contents: Mapping[str, Path]) -> RecordStatus:
        """Publish ``envelope`` to ``name``, uploading ``contents`` (digest -> file) the registry lacks.

        Returns the ``published`` status. RecordRejectedError with the server's
        reason if the registry rejects it; UnavailableError if it is neither
        published nor rejected within ``timeout`` seconds.
        """
        log_id = str(name.log_id)
        record_id = str(package_record_id(envelope.content_bytes))
        status = self.api.publish_record(log_id, str(name), envelope)
        if status.record_id != record_id:
            raise MalformedResponseError(
                f"publish to {name}: the registry calls the record {status.record_id}, "
                f"but its content hashes to {record_id}"
            )
        if status.state == "sourcing":
            self._upload(name, status, contents)
        return self.wait(name, record_id, status)

    def _upload(self, name: PackageName, status: RecordStatus, contents: Mapping[str, Path]) -> None:
        for digest, targets in status.missing.items():
            path = contents.get(digest)
            if path is None:
                raise MalformedResponseError(
                    f"publish to {name}: the registry asks for content {digest}, which this record "
                    "does not release"
                )
            if not targets:
                raise MalformedResponseError(f"publish to {name}: no upload URL for content {digest}")
            self.api.upload_content(targets[0], path, digest)

    def wait(self, name: PackageName, record_id: str, status: RecordStatus | None = None) -> RecordStatus:
        """Poll the record until it is published (returned) or rejected (raised)."""
        log_id = str(name.log_id)
        deadline = self._clock() + self.timeout
        interval = FIRST_POLL
        while True:
            if status is not None and status.state == "published":
                return status
            if status is not None and status.state == "rejected":
                reason = status.reason or "no reason given"
                raise RecordRejectedError(
                    f"the registry rejected record {record_id} of {name}: {reason}", reason
                )
            if self._clock() >= deadline:
                state = "unknown" if status is None else status.state
                raise UnavailableError(
                    f"record {record_id} of {name} is still {state} after {self.timeout:g}s; it may yet be "
                    f"published (see `cairn warg update {name}`)"
                )
            self._sleep(interval)
            interval = min(interval * 2, MAX_POLL)
            status = self.api.get_record(log_id, record_id)
