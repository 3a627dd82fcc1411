"""Streaming a blob range out in chunks, shared by the modern and the seed Read.

Bounds (content-api.md 4.6): a negative offset reads from 0; an offset past
the end is OUT_OF_RANGE; ``size`` <= 0, or a range past the end, reads to the
end. Chunks are ``chunk_size`` bytes (1 MiB by default); the response offset
is absolute (DECISIONS.md content-api 3).
"""

from __future__ import annotations

from collections.abc import Iterator

from cairn.core.content import Provider
from cairn.core.digest import Digest
from cairn.core.errors import OutOfRangeError

__all__ = ["read_range"]


def read_range(
    store: Provider, namespace: str, digest: Digest, offset: int, size: int, chunk_size: int
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
        while offset < end:
            data = reader.read_at(offset, min(chunk_size, end - offset))
            if not data:
                break
            yield offset, data
            offset += len(data)
