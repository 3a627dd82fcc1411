"""Streaming a blob range out in chunks, shared by the modern and the seed Read.

Bounds (content-api.md 4.6): a negative offset reads from 0; an offset past
the end is OUT_OF_RANGE; ``size`` <= 0, or a range past the end, reads to the
end. Chunks are ``chunk_size`` bytes (1 MiB by default); the response offset
is absolute (DECISIONS.md content-api 3).

With ``verify`` (setting ``verify_reads_max_bytes``), a read from offset 0 of a blob
up to that size, or one that
continues where an earlier Read of the same blob stopped (``ctr content get``
reads 32 KiB per call), is hashed as it goes, and the chunk that reaches the
end of the blob is sent only if the digest matches; otherwise the call ends
with DATA_LOSS naming the blob (:mod:`cairn.integrity.verified_reads`).
Hashing runs in the calling gRPC worker thread, never on an event loop.
"""

from __future__ import annotations

from collections.abc import Iterator

from cairn.core.content import Provider
from cairn.core.digest import Digest
from cairn.core.errors import OutOfRangeError
from cairn.integrity.verified_reads import SequentialReads

__all__ = ["read_range"]


def read_range(
    store: Provider,
    namespace: str,
    digest: Digest,
    offset: int,
    size: int,
    chunk_size: int,
    verify: SequentialReads | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(absolute offset, bytes)`` pieces of the requested range."""
    with store.reader_at(namespace, digest) as reader:
        total = reader.size
        offset = max(offset, 0)
        if offset > total:
            raise OutOfRangeError(
                f"read of {digest} at offset {offset}: past object length {total} bytes"
            )
        end = total if size <= 0 or offset + size > total else offset + size
        check = (
            verify.resume(namespace, digest, offset)
            if verify is not None and offset < total <= verify.max_bytes
            else None
        )
        while offset < end:
            data = reader.read_at(offset, min(chunk_size, end - offset))
            if not data:
                break
            if check is not None and verify is not None:
                check.update(data)
                if offset + len(data) >= total:
                    check.verify("gRPC Read")
                elif offset + len(data) >= end:
                    # Kept before the last piece goes out: a client with all it asked for may
                    # cancel the call, and the generator is then never resumed after its yield.
                    verify.suspend(namespace, check)
            yield offset, data
            offset += len(data)
