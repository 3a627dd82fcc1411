"""Blob bytes in an S3-compatible object store, so several replicas share one content store.

Layout under the URL's prefix: ``blobs/<algorithm>/<hex>`` for committed blobs
(immutable: a key is written once, with verified bytes) and
``ingests/<key>/...`` for ingest data in progress (:mod:`.ingest`). Which
namespace sees which blob is the catalog's business, as with the local disk.

Object stores acknowledge a PUT or a completed upload only once it is durable,
so there is no fsync step; a blob is visible to cairn only after its catalog
row is committed, which happens after the store acknowledged it
(ARCHITECTURE.md principle 5). Small blobs are kept in memory once read or
written (:mod:`.cache`), and large ones are read in cached 1 MiB blocks
(:mod:`.reader`): they are immutable, so a copy is never stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from cairn.core.catalog.ingest_uploads import IngestUploadCatalog
from cairn.core.content.backend import BlobStat, PendingUpload
from cairn.core.content.s3 import hashstate
from cairn.core.content.s3.cache import ImmutableBytesCache
from cairn.core.content.s3.client import S3_ERRORS, S3Location, error_code, is_not_found, translate
from cairn.core.content.s3.ingest import S3IngestData, blob_key, remove_ingest_objects
from cairn.core.content.s3.reader import BLOCK, MemoryReader, S3Reader
from cairn.core.digest import ALGORITHMS, Digest
from cairn.core.errors import DataLossError, FailedPreconditionError, InvalidArgumentError, NotFoundError

__all__ = ["S3Backend"]

log = logging.getLogger(__name__)

#: Answers of stores that do not implement ListMultipartUploads (rclone serve s3 says NoSuchUpload).
_NO_UPLOAD_LISTING = {"NoSuchUpload", "NotImplemented", "501"}

#: Worker threads uploading ingest parts (one part in flight per ingest) and small blob groups.
UPLOAD_THREADS = 16


class S3Backend:
    """A :class:`~cairn.core.content.backend.BlobBackend` over one bucket and prefix.

    Raises FailedPreconditionError at construction when the bucket does not exist
    and UnavailableError when the store cannot be reached.
    """

    def __init__(self, location: S3Location, uploads: IngestUploadCatalog) -> None:
        if not hashstate.available():
            raise FailedPreconditionError(
                "the S3 content store needs OpenSSL's libcrypto for resumable ingest hashes; none was found"
            )
        self.location = location
        self._uploads = uploads
        self._client: Any = location.client()
        self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="s3-upload")
        self._cache = ImmutableBytesCache()
        self._mutex = threading.Lock()
        self._open: dict[str, S3IngestData] = {}  # ingests with a writer in this process
        self._blocks = ImmutableBytesCache(budget=128 << 20, item_limit=BLOCK)
        self._check_bucket()

    def _check_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.location.bucket)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise FailedPreconditionError(
                    f"content store {self.location}: bucket {self.location.bucket!r} does not exist; create it first"
                ) from exc
            raise translate(exc, self.location, "opening the content store") from exc
        except S3_ERRORS as exc:
            raise translate(exc, self.location, "opening the content store") from exc

    # -- blobs ---------------------------------------------------------------------
    def blob_size(self, digest: Digest) -> int | None:
        try:
            head = self._client.head_object(Bucket=self.location.bucket, Key=blob_key(self.location, digest))
        except S3_ERRORS as exc:
            if is_not_found(exc):
                return None
            raise translate(exc, self.location, f"blob {digest}") from exc
        return int(head["ContentLength"])

    def open_blob(self, digest: Digest, size: int | None = None) -> S3Reader | MemoryReader:
        cached = self._cache.get(str(digest))
        if cached is not None:
            return MemoryReader(cached)
        if size is None:
            size = self.blob_size(digest)
            if size is None:
                raise NotFoundError(f"blob {digest} not found in content storage")
        key = blob_key(self.location, digest)
        if size <= self._cache.item_limit:
            data = self._get_whole(key, digest, size)
            self._cache.put(str(digest), data)
            return MemoryReader(data)
        return S3Reader(self._client, self.location, key, size, f"blob {digest}", self._blocks)

    def _get_whole(self, key: str, digest: Digest, size: int) -> bytes:
        try:
            data: bytes = self._client.get_object(Bucket=self.location.bucket, Key=key)["Body"].read()
        except S3_ERRORS as exc:  # a missing object is NotFoundError
            raise translate(exc, self.location, f"blob {digest}") from exc
        if len(data) != size:
            raise DataLossError(f"blob {digest}: content store {self.location} holds {len(data)} bytes, not {size}")
        return data

    def put_blobs(self, blobs: Sequence[tuple[Digest, bytes]]) -> None:
        # Content-addressed keys: writing bytes that are already there changes nothing, so no
        # HEAD first. Several blobs go up in parallel; each is durable once its PUT returns.
        def put(item: tuple[Digest, bytes]) -> None:
            digest, data = item
            try:
                self._client.put_object(Bucket=self.location.bucket, Key=blob_key(self.location, digest), Body=data)
            except S3_ERRORS as exc:
                raise translate(exc, self.location, f"blob {digest}") from exc
            self._cache.put(str(digest), data)

        unique = list({str(d): (d, data) for d, data in blobs}.values())
        if len(unique) == 1:
            put(unique[0])
            return
        for future in [self._pool.submit(put, item) for item in unique]:
            future.result()

    def remove_blob(self, digest: Digest) -> None:
        self._cache.drop(str(digest))
        try:
            self._client.delete_object(Bucket=self.location.bucket, Key=blob_key(self.location, digest))
        except S3_ERRORS as exc:
            raise translate(exc, self.location, f"blob {digest}") from exc

    def quarantine_blob(self, digest: Digest) -> str | None:
        # Copied to quarantine/<alg>/<hex>.<ns>, then deleted: an object store has no rename.
        source = blob_key(self.location, digest)
        target = self.location.key("quarantine", digest.algorithm, f"{digest.hex}.{time.time_ns()}")
        self._cache.drop(str(digest))
        try:
            self._client.copy_object(
                Bucket=self.location.bucket, Key=target, CopySource={"Bucket": self.location.bucket, "Key": source}
            )
        except S3_ERRORS as exc:
            if is_not_found(exc):
                return None
            raise translate(exc, self.location, f"quarantining blob {digest}") from exc
        self.remove_blob(digest)
        return target

    def iter_blobs(self) -> Iterator[Digest]:
        return (stat.digest for stat in self.iter_blob_stats())

    def iter_blob_stats(self) -> Iterator[BlobStat]:
        paginator = self._client.get_paginator("list_objects_v2")
        for algorithm in sorted(ALGORITHMS):
            prefix = self.location.key("blobs", algorithm) + "/"
            try:
                for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                    for item in page.get("Contents", []):
                        name = str(item["Key"])[len(prefix) :]
                        try:
                            digest = Digest(algorithm, name)
                        except InvalidArgumentError:
                            log.warning("ignoring stray object %s%s", prefix, name)
                            continue
                        modified = int(item["LastModified"].timestamp() * 1e9)
                        yield BlobStat(digest, int(item["Size"]), modified)
            except S3_ERRORS as exc:
                raise translate(exc, self.location, "listing blobs") from exc

    # -- multipart uploads (garbage collection) --------------------------------------
    def pending_uploads(self) -> Iterator[PendingUpload]:
        """Multipart uploads open under this store's prefix (ingest data in progress)."""
        paginator = self._client.get_paginator("list_multipart_uploads")
        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        try:
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                for item in page.get("Uploads", []):
                    initiated = int(item["Initiated"].timestamp() * 1e9)
                    yield PendingUpload(str(item["Key"]), str(item["UploadId"]), initiated)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _NO_UPLOAD_LISTING:
                log.info("content store %s cannot list multipart uploads (%s); none aborted", self.location, error_code(exc))
                return
            raise translate(exc, self.location, "listing multipart uploads") from exc
        except S3_ERRORS as exc:
            raise translate(exc, self.location, "listing multipart uploads") from exc

    def abort_upload(self, upload: PendingUpload) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.location.bucket, Key=upload.key, UploadId=upload.upload_id)
        except S3_ERRORS as exc:
            if error_code(exc) != "NoSuchUpload":
                raise translate(exc, self.location, f"multipart upload {upload.upload_id}") from exc

    # -- ingests -------------------------------------------------------------------
    def create_ingest(self, key: str, description: str) -> None:
        # Nothing to create: the first write records the ingest's state (ingest_uploads),
        # after the content_ingests row exists, so start-up recovery on another replica
        # never mistakes a new ingest for a leftover.
        pass

    def open_ingest(self, key: str, algorithm: str, expected: Digest | None = None) -> S3IngestData:
        def forget() -> None:
            with self._mutex:
                if self._open.get(key) is data:
                    del self._open[key]

        data = S3IngestData(
            self._client, self.location, self._uploads, self._pool, key, algorithm, expected, on_close=forget
        )
        with self._mutex:
            self._open[key] = data
        return data

    # An ingest open in this process counts what it has received, as a local file's size
    # would; the catalog counts what is stored (what another replica, or a restart, sees).
    def ingest_size(self, key: str) -> int:
        with self._mutex:
            live = self._open.get(key)
        return live.size if live is not None else self._uploads.size(key)[0]

    def ingest_updated_at(self, key: str) -> int | None:
        with self._mutex:
            live = self._open.get(key)
        return live.updated_at if live is not None else self._uploads.size(key)[1]

    def remove_ingest(self, key: str) -> None:
        state = self._uploads.get(key)
        if state is None:
            return
        remove_ingest_objects(self._client, self.location, key, state.upload_id, state.target, state.tails)
        self._uploads.delete(key)

    def ingest_keys(self) -> set[str]:
        return self._uploads.keys()

    def clear_temporaries(self) -> int:
        return 0  # a PutObject is whole or absent: S3 leaves no partial blob behind

    def close(self) -> None:
        """Store the tails of ingests still open (a writer whose client just went away may not
        have got to it before shutdown), then stop the upload threads."""
        with self._mutex:
            still_open = list(self._open.values())
        for data in still_open:
            try:
                data.close()
            except Exception:
                log.exception("could not keep the buffered bytes of an open ingest")
        self._pool.shutdown(wait=True)
