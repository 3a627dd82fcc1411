"""Upload sessions: resumable blob uploads, each one a content-store ingest.

A session is an ingest in the registry's content namespace with the ref
``registry-upload/<repository>/<id>`` (the id is random and opaque), so its
state lives in the catalog and on the store's disk, not in this process:
a session survives a restart, shows up in ``ctr -n registry content active``,
and a later replica could continue it (DECISIONS.md oci 1). Each HTTP request
opens the session, streams its bytes in with :class:`OpenUpload`, and closes or
completes it; the ingest's ref lock keeps two requests from writing one session.

The running hash is sha256. A final digest in another algorithm (sha512)
re-reads the session's data once at completion.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Self

from cairn.core.content import RefLockedError
from cairn.core.content.store import ContentStore, Writer
from cairn.core.digest import Digest
from cairn.core.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError
from cairn.oci.errors import DigestInvalidError, UploadBusyError, UploadOutOfOrderError, UploadUnknownError
from cairn.oci.registry.blobs import Blobs

__all__ = ["OpenUpload", "Uploads"]

log = logging.getLogger(__name__)

_REF_PREFIX = "registry-upload/"


class OpenUpload:
    """One request's hold on an upload session: append bytes, then close or complete."""

    def __init__(self, repository: str, upload_id: str, writer: Writer, blobs: Blobs) -> None:
        self.repository = repository
        self.upload_id = upload_id
        self._writer = writer
        self._blobs = blobs
        self.offset = writer.status().offset

    def write(self, data: bytes | memoryview) -> None:
        self.offset = self._writer.write(data, self.offset)

    def complete(self, digest: Digest) -> int:
        """Verify the data against ``digest``, publish it and link it into the repository; returns its size.

        A mismatch is DigestInvalidError and keeps the session (the client may
        cancel it or let it expire).
        """
        size = self.offset
        try:
            self._writer.commit(expected=digest, also=self._blobs.linker(self.repository, digest, size))
        except FailedPreconditionError:
            raise DigestInvalidError(
                f"upload {self.upload_id}: the {size} bytes received do not have digest {digest}",
                {"Digest": str(digest)},
            ) from None
        except AlreadyExistsError:
            pass  # the bytes were verified; the namespace already held them (and ``also`` linked them)
        return size

    def close(self) -> None:
        """Keep the session for the next request."""
        self._writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Uploads:
    def __init__(self, store: ContentStore, namespace: str, blobs: Blobs) -> None:
        self._store = store
        self._namespace = namespace
        self._blobs = blobs

    @staticmethod
    def _ref(repository: str, upload_id: str) -> str:
        return f"{_REF_PREFIX}{repository}/{upload_id}"

    def start(self, repository: str) -> str:
        """Create an empty session; returns its id."""
        upload_id = uuid.uuid4().hex
        self._store.writer(self._namespace, self._ref(repository, upload_id)).close()
        return upload_id

    def offset(self, repository: str, upload_id: str) -> int:
        """How many bytes the session holds; UploadUnknownError if there is no such session."""
        try:
            return self._store.status(self._namespace, self._ref(repository, upload_id)).offset
        except NotFoundError:
            raise self._unknown(repository, upload_id) from None

    def open(self, repository: str, upload_id: str, start: int | None = None) -> OpenUpload:
        """Hold the session for writing; ``start`` (a chunk's first byte) must equal its size.

        UploadUnknownError if there is no such session, UploadOutOfOrderError
        (416) if ``start`` is not its size, UploadBusyError (416) while another
        request holds it.
        """
        try:
            writer = self._store.writer(self._namespace, self._ref(repository, upload_id), create=False)
        except NotFoundError:
            raise self._unknown(repository, upload_id) from None
        except RefLockedError:
            raise UploadBusyError(
                f"upload {upload_id} is being written by another request; ask for its status and resume"
            ) from None
        upload = OpenUpload(repository, upload_id, writer, self._blobs)
        if start is not None and start != upload.offset:
            upload.close()
            raise UploadOutOfOrderError(
                f"upload {upload_id}: chunk starts at {start} but the upload holds {upload.offset} bytes",
                {"Offset": upload.offset},
            )
        return upload

    def store(
        self, repository: str, upload_id: str, start: int | None, data: bytes, digest: Digest | None
    ) -> int:
        """Append a body that is already in memory and, with ``digest``, complete: one call, one thread hop.

        Returns the session's size (or the blob's, when completed).
        """
        with self.open(repository, upload_id, start) as upload:
            upload.write(data)
            return upload.complete(digest) if digest is not None else upload.offset

    def cancel(self, repository: str, upload_id: str) -> None:
        try:
            self._store.abort(self._namespace, self._ref(repository, upload_id))
        except NotFoundError:
            raise self._unknown(repository, upload_id) from None
        except RefLockedError:
            raise UploadBusyError(f"upload {upload_id} is being written by another request") from None

    def expire(self, idle_seconds: float) -> int:
        """Cancel sessions idle for longer than ``idle_seconds``; returns how many went."""
        cutoff = time.time_ns() - int(idle_seconds * 1e9)
        expired = 0
        for status in self._store.list_statuses(self._namespace):
            if not status.ref.startswith(_REF_PREFIX) or status.updated_at >= cutoff:
                continue
            try:
                self._store.abort(self._namespace, status.ref)
                expired += 1
            except (NotFoundError, RefLockedError):
                continue  # finished or in use meanwhile
        if expired:
            log.info("expired %d idle upload sessions", expired)
        return expired

    @staticmethod
    def _unknown(repository: str, upload_id: str) -> UploadUnknownError:
        return UploadUnknownError(
            f"upload {upload_id} is not known to repository {repository}", {"UUID": upload_id}
        )
