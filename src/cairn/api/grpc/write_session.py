"""One Write stream's rules, shared by the modern and the seed content services.

Both services send the same request fields (the seed's ``expected_size`` and
``expected_digest`` are the modern ``total`` and ``expected``); only the
response messages differ, so each servicer turns a :class:`WriteStep` into its
own response. The rules (content-api.md 4.9 with DECISIONS.md content-api 2
and 10):

- the first message must name a ref; it opens (or resumes) the ingest;
- every message may update ``expected`` and ``total``;
- WRITE/COMMIT with data, or COMMIT, or a non-zero offset, write at ``offset``
  (offset 0 on a non-empty ingest truncates it only in those cases; a bare
  offset-0 WRITE reports status);
- the response ``digest`` is the running digest, except on a WRITE that carried
  data (answered while its bytes are still being hashed);
- COMMIT verifies and publishes, and ends the stream; so does the seed's ABORT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from cairn.api.metrics import Metrics
from cairn.core.catalog import LeaseCatalog, LeaseResource, Transaction
from cairn.core.content import ContentStore, Info, Status, Writer
from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError, NotFoundError

__all__ = ["Action", "LeaseHold", "WriteSession", "WriteStep", "drive_write_stream"]

Request = TypeVar("Request")
Response = TypeVar("Response")


class Action(IntEnum):
    STAT = 0
    WRITE = 1
    COMMIT = 2
    ABORT = -1


@dataclass(frozen=True, slots=True)
class WriteStep:
    """What one request did: the state to report back."""

    action: Action
    offset: int
    digest: str
    status: Status | None
    committed: Info | None = None


@dataclass(frozen=True, slots=True)
class LeaseHold:
    """The lease a Write stream's ``containerd-lease`` header names: it holds the ingest, then the blob.

    As containerd: opening the ingest adds resource ("ingests", ref) to the lease
    (NotFoundError for an unknown lease); the commit, in its own catalog
    transaction, adds ("content", digest) and drops the ingest resource.
    """

    leases: LeaseCatalog
    namespace: str
    lease: str

    def hold_ingest(self, ref: str) -> None:
        self.leases.add_resource(self.namespace, self.lease, LeaseResource("ingests", ref))

    def hold_blob(self, ref: str, digest: Digest) -> Callable[[Transaction], None]:
        def hold(tx: Transaction) -> None:
            if not self.leases.add_resource_in(tx, self.namespace, self.lease, LeaseResource("content", str(digest))):
                raise NotFoundError(f"lease {self.lease!r}: not found")
            self.leases.delete_resource_in(tx, self.namespace, self.lease, LeaseResource("ingests", ref))

        return hold


class WriteSession:
    """Holds the writer of one stream; ``close()`` keeps an unfinished ingest resumable."""

    def __init__(self, store: ContentStore, namespace: str, lease: LeaseHold | None = None) -> None:
        self._store = store
        self._namespace = namespace
        self._lease = lease
        self._writer: Writer | None = None
        self.finished = False
        self.bytes_written = 0

    def step(
        self,
        action: int,
        ref: str,
        total: int,
        expected: str,
        offset: int,
        data: bytes,
        labels: Mapping[str, str] | None = None,
    ) -> WriteStep:
        try:
            act = Action(action)
        except ValueError:
            raise InvalidArgumentError(f"unknown write action {action}") from None
        expected_digest = Digest.parse(expected) if expected else None
        writer = self._writer
        if writer is None:
            if not ref:
                raise InvalidArgumentError("first message must have a reference")
            if self._lease is not None:
                self._lease.hold_ingest(ref)
            writer = self._writer = self._store.writer(
                self._namespace, ref, total=total, expected=expected_digest
            )
        else:
            if expected_digest is not None:
                writer.set_expected(expected_digest)
            if total > 0:
                writer.set_total(total)

        if act is Action.ABORT:
            self.finished = True
            writer.abort()
            return WriteStep(act, 0, "", None)
        if act is Action.STAT:
            status = writer.status()
            return WriteStep(act, status.offset, str(writer.digest()), status)

        if data or act is Action.COMMIT or offset > 0:
            writer.write(data, offset)
            self.bytes_written += len(data)
        if act is Action.COMMIT:
            status = writer.status()
            self.finished = True
            hold = None
            if self._lease is not None:
                hold = self._lease.hold_blob(writer.ref, expected_digest or writer.digest())
            info = writer.commit(size=total, expected=expected_digest, labels=labels, also=hold)
            return WriteStep(act, info.size, str(info.digest), status, committed=info)
        status = writer.status()
        # A WRITE that carried data is answered before its bytes are hashed (the store
        # pipelines them), so its response has no digest; STAT and COMMIT always have one.
        return WriteStep(act, status.offset, "" if data else str(writer.digest()), status)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def drive_write_stream(
    store: ContentStore,
    namespace: str,
    metrics: Metrics,
    requests: Iterable[Request],
    step: Callable[[WriteSession, Request], tuple[WriteStep, int]],
    respond: Callable[[Request, WriteStep], Response],
    lease: LeaseHold | None = None,
) -> Iterator[Response]:
    """Answer each request of a Write stream with one response until COMMIT or ABORT.

    ``step`` applies one request to the session and returns the step and how
    many data bytes it carried; ``respond`` builds the service's response.
    Whatever ends the stream (commit, error, client gone), the writer is
    closed, so an unfinished ingest stays resumable.
    """
    session = WriteSession(store, namespace, lease)
    metrics.active_writers.inc()
    try:
        for request in requests:
            result, received = step(session, request)
            metrics.content_written_bytes.inc(received)
            if result.committed is not None:
                metrics.content_commits.inc()
            yield respond(request, result)
            if session.finished:
                return
    finally:
        metrics.active_writers.dec()
        session.close()
