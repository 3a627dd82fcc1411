"""The data of one ingest in an object store: a multipart upload, resumable by any replica.

Bytes arrive in a buffer. Each time it holds a part's worth, the part is handed
to a worker thread that hashes it, uploads it and records it in the catalog
(``ingest_pieces``: part number, ETag, and the hash state after it), while the
writer goes on receiving the next one; one part is in flight at a time, so
parts reach the store in order (``rclone serve s3`` and others stream them).
A writer that closes with less than a part buffered stores the rest as a
"tail" object; the next writer, on this replica or another, reads the tails
back and folds them into its next part. So what was acknowledged by a close is
durable and any replica continues from the catalog's rows.

Publishing uploads the buffer as the last part and completes the upload,
only after the caller verified the digest, so the object appears at its key
verified or not at all. An ingest that knew its digest from the start
uploads straight to its blob key; one that did not uploads to a staging key
and is copied into place server-side.

If the object store forgets an upload (a restarted test server, a lifecycle
rule that aborts old uploads), the ingest starts over at offset 0 with a
DataLossError saying so; the catalog never claims bytes the store lacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from cairn.core.catalog.ingest_uploads import IngestUpload, IngestUploadCatalog, UploadPiece
from cairn.core.content.s3.client import S3_ERRORS, S3Location, error_code, is_not_found, translate
from cairn.core.content.s3.hashstate import ResumableHasher
from cairn.core.digest import Digest
from cairn.core.errors import CairnError, DataLossError, FailedPreconditionError

__all__ = ["S3IngestData", "staging_key", "tail_key"]

log = logging.getLogger(__name__)

#: The largest object one CopyObject request may copy (S3's limit).
MAX_COPY_OBJECT = 5 << 30


def staging_key(location: S3Location, key: str) -> str:
    return location.key("ingests", key, "data")


def tail_key(location: S3Location, key: str, start: int) -> str:
    return location.key("ingests", key, f"tail-{start:020d}")


def blob_key(location: S3Location, digest: Digest) -> str:
    return location.key("blobs", digest.algorithm, digest.hex)


class S3IngestData:
    """An :class:`~cairn.core.content.backend.IngestData` in an object store. One writer holds it."""

    def __init__(
        self,
        client: Any,
        location: S3Location,
        catalog: IngestUploadCatalog,
        pool: ThreadPoolExecutor,
        key: str,
        algorithm: str,
        expected: Digest | None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._location = location
        self._catalog = catalog
        self._pool = pool
        self._key = key
        self._expected = expected
        self._pending: Future[None] | None = None
        self._error: CairnError | None = None
        self._closed = False
        self._on_close = on_close
        self._closing = threading.Lock()
        #: when bytes last arrived (ns); what Status reports while this writer is open
        self.updated_at = time.time_ns()
        state = catalog.get(key)
        if state is None:
            catalog.reset(key, algorithm, time.time_ns())
            state = IngestUpload(key, algorithm, None, None, time.time_ns())
        self._load(state, algorithm)

    # -- state ---------------------------------------------------------------------
    def _load(self, state: IngestUpload, algorithm: str) -> None:
        parts = state.parts
        self._upload_id = state.upload_id
        self._target = state.target
        self._parts: list[UploadPiece] = parts
        self._parts_end = parts[-1].end if parts else 0
        if parts and parts[-1].hash_state is not None:
            self._hasher = ResumableHasher.restore(parts[-1].hash_state)
        else:
            self._hasher = ResumableHasher(algorithm)
        self._buffer = bytearray()
        self._tails: list[UploadPiece] = []
        for tail in state.tails:
            data = self._read_tail(tail)
            if data is None:  # the rest is not usable: the catalog must not count it either
                self._catalog.cut(self._key, self._parts_end + len(self._buffer), time.time_ns())
                break
            self._buffer += data
            self._tails.append(tail)
        self._size = self._persisted = self._parts_end + len(self._buffer)

    def _read_tail(self, tail: UploadPiece) -> bytes | None:
        what = f"ingest {self._key} tail at {tail.start}"
        if tail.start != self._parts_end + len(self._buffer):
            log.warning("%s: not contiguous; the ingest resumes before it", what)
            return None
        try:
            data: bytes = self._client.get_object(
                Bucket=self._location.bucket, Key=tail_key(self._location, self._key, tail.start)
            )["Body"].read()
        except S3_ERRORS as exc:
            if is_not_found(exc):
                log.warning("%s: missing from the object store; the ingest resumes before it", what)
                return None
            raise translate(exc, self._location, what) from exc
        if len(data) != tail.size:
            log.warning("%s: %d bytes stored, %d recorded; the ingest resumes before it", what, len(data), tail.size)
            return None
        return data

    @property
    def size(self) -> int:
        return self._size

    # -- writing -------------------------------------------------------------------
    def append(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self._error is not None or (self._pending is not None and self._pending.done()):
            self._wait()  # raises a failed part's error now, not a part later
        self._buffer += data
        self._size += len(data)
        self.updated_at = time.time_ns()
        part_size = self._location.part_size
        while len(self._buffer) >= part_size:
            with memoryview(self._buffer) as view:
                chunk = bytes(view[:part_size])  # one copy (a bytearray slice would make two)
            del self._buffer[:part_size]
            self._submit(chunk)

    def _submit(self, chunk: bytes) -> None:
        self._wait()  # one part in flight: parts arrive in order, memory stays at two parts
        start, number = self._parts_end, len(self._parts) + 1
        self._parts_end += len(chunk)
        self._pending = self._pool.submit(self._upload_part, chunk, start, number)

    def _wait(self) -> None:
        """Let the part in flight finish; raise its failure (then and on every later call)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            try:
                pending.result()
            except CairnError as exc:
                self._error = exc
            except Exception as exc:  # a bug, not the store: keep its trace in the log
                log.exception("ingest %s: part upload failed", self._key)
                self._error = DataLossError(f"ingest {self._key}: part upload failed: {exc!r}")
        if self._error is not None:
            raise self._error

    def _upload_part(self, chunk: bytes, start: int, number: int) -> None:
        """On a worker: hash, upload and record one part; drop the tails it absorbed."""
        what = f"ingest {self._key} part {number}"
        if self._upload_id is None:
            self._create_upload()
        self._hasher.update(chunk)
        try:
            response = self._client.upload_part(
                Bucket=self._location.bucket, Key=self._target, UploadId=self._upload_id,
                PartNumber=number, Body=chunk,
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchUpload":
                raise self._forgotten() from exc
            raise translate(exc, self._location, what) from exc
        except S3_ERRORS as exc:
            raise translate(exc, self._location, what) from exc
        part = UploadPiece(start, len(chunk), number, str(response["ETag"]), self._hasher.state())
        self._catalog.add_part(self._key, part, time.time_ns())
        self._parts.append(part)
        absorbed = [t for t in self._tails if t.start < part.end]
        self._tails = [t for t in self._tails if t.start >= part.end]
        self._persisted = max(self._persisted, part.end)
        self._delete_tails(absorbed)

    def _create_upload(self) -> None:
        target = (
            blob_key(self._location, self._expected)
            if self._expected is not None
            else staging_key(self._location, self._key)
        )
        try:
            response = self._client.create_multipart_upload(Bucket=self._location.bucket, Key=target)
        except S3_ERRORS as exc:
            raise translate(exc, self._location, f"ingest {self._key}") from exc
        self._upload_id, self._target = str(response["UploadId"]), target
        self._catalog.set_upload(self._key, self._upload_id, target, time.time_ns())

    def _forgotten(self) -> DataLossError:
        """The store lost our upload: start the ingest over, and say so."""
        upload_id = self._upload_id
        self._remove_objects(abort=False)
        self._catalog.reset(self._key, self._hasher.name, time.time_ns())
        return DataLossError(
            f"ingest {self._key}: content store {self._location} no longer has multipart upload {upload_id} "
            "(restarted or expired); the ingest starts over at offset 0"
        )

    def truncate(self) -> None:
        try:
            self._wait()
        except CairnError:
            self._error = None
        algorithm = self._hasher.name
        self._remove_objects(abort=True)
        self._catalog.reset(self._key, algorithm, time.time_ns())
        self._load(IngestUpload(self._key, algorithm, None, None, time.time_ns()), algorithm)

    # -- reading the result ----------------------------------------------------------
    def digest(self, algorithm: str) -> Digest:
        self._wait()
        if algorithm != self._hasher.name:
            if self._parts_end > 0 or self._pending is not None:
                raise FailedPreconditionError(
                    f"ingest {self._key} was hashed with {self._hasher.name} as its parts were stored; "
                    f"it cannot be verified against a {algorithm} digest: abort it and upload again"
                )
            self._hasher = ResumableHasher(algorithm)
        hasher = self._hasher.copy()
        hasher.update(self._buffer)
        return hasher.digest()

    def publish(self, digest: Digest) -> None:
        self._wait()
        final = blob_key(self._location, digest)
        what = f"blob {digest}"
        try:
            if self._upload_id is None:
                self._client.put_object(Bucket=self._location.bucket, Key=final, Body=bytes(self._buffer))
                self._closed = True  # published: nothing is left to keep as a tail
                return
            if self._buffer:
                last = bytes(self._buffer)
                self._buffer.clear()
                start, number = self._parts_end, len(self._parts) + 1
                self._parts_end += len(last)
                self._upload_part(last, start, number)
            self._complete()
            staged = self._target
            if staged is not None and staged != final:
                self._copy(staged, final)
                self._client.delete_object(Bucket=self._location.bucket, Key=staged)
            self._closed = True
        except S3_ERRORS as exc:
            raise translate(exc, self._location, what) from exc

    def _copy(self, source: str, target: str) -> None:
        """Copy inside the store: one CopyObject up to S3's 5 GiB limit, a multipart copy above."""
        bucket = self._location.bucket
        if self._parts_end <= MAX_COPY_OBJECT:
            self._client.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source})
        else:
            self._client.copy({"Bucket": bucket, "Key": source}, bucket, target)

    def _complete(self) -> None:
        parts = [{"PartNumber": p.part_number, "ETag": p.etag} for p in self._parts]
        try:
            self._client.complete_multipart_upload(
                Bucket=self._location.bucket, Key=self._target, UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                raise
            # Completed before (a commit that died before its catalog transaction), or lost.
            try:
                head = self._client.head_object(Bucket=self._location.bucket, Key=self._target)
            except botocore.exceptions.ClientError:
                head = None
            if head is None or int(head["ContentLength"]) != self._parts_end:
                raise self._forgotten() from exc

    # -- closing ---------------------------------------------------------------------
    def close(self) -> None:
        """Store what is buffered as a tail; idempotent and safe from two threads (a writer and
        the backend's shutdown): the second caller waits for the first to finish."""
        try:
            with self._closing:
                self._save_tail()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()

    def _save_tail(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._wait()
        except CairnError:
            return  # what the failed part carried is lost; the catalog holds what is stored
        unsaved = self._size - self._persisted
        if unsaved <= 0:
            return
        start = self._persisted
        tail = UploadPiece(start, unsaved)
        try:
            self._client.put_object(
                Bucket=self._location.bucket, Key=tail_key(self._location, self._key, start),
                Body=bytes(self._buffer[len(self._buffer) - unsaved :]),
            )
        except S3_ERRORS as exc:
            raise translate(exc, self._location, f"ingest {self._key}") from exc
        self._catalog.add_tail(self._key, tail, time.time_ns())
        self._persisted = self._size

    # -- removing --------------------------------------------------------------------
    def _delete_tails(self, tails: list[UploadPiece]) -> None:
        for tail in tails:
            try:
                self._client.delete_object(
                    Bucket=self._location.bucket, Key=tail_key(self._location, self._key, tail.start)
                )
            except S3_ERRORS as exc:  # an orphan tail object costs space, not correctness
                log.warning("ingest %s: could not delete tail at %d: %s", self._key, tail.start, exc)

    def _remove_objects(self, *, abort: bool) -> None:
        remove_ingest_objects(
            self._client, self._location, self._key, self._upload_id if abort else None, self._target, self._tails
        )
        self._tails = []


def remove_ingest_objects(
    client: Any, location: S3Location, key: str, upload_id: str | None, target: str | None, tails: list[UploadPiece]
) -> None:
    """Abort ``upload_id`` and delete the ingest's tails and staging object; best effort, logged."""
    if upload_id is not None and target is not None:
        try:
            client.abort_multipart_upload(Bucket=location.bucket, Key=target, UploadId=upload_id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "NoSuchUpload":
                log.warning("ingest %s: could not abort upload %s: %s", key, upload_id, exc)
        except S3_ERRORS as exc:
            log.warning("ingest %s: could not abort upload %s: %s", key, upload_id, exc)
    names = [tail_key(location, key, t.start) for t in tails]
    if target == staging_key(location, key):
        names.append(target)
    for name in names:
        try:
            client.delete_object(Bucket=location.bucket, Key=name)
        except S3_ERRORS as exc:
            log.warning("ingest %s: could not delete %s: %s", key, name, exc)
