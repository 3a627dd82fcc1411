"""Layer measurement: diff_id and uncompressed size from gzip, zstd and plain tar blobs, fed in any chunks."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from typing import Self

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.digest import Digest
from cairn.core.errors import CancelledError, DataLossError
from cairn.images.layers import (
    GZIP,
    NONE,
    ZSTD,
    DiffHasher,
    compression_of,
    detect_compression,
    diff_of_blob,
)

OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

TAR = os.urandom(300_000) + b"\0" * 200_000


def _digest(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def _feed(hasher: DiffHasher, blob: bytes, sizes: list[int]) -> tuple[Digest, int]:
    position = 0
    for size in sizes:
        hasher.update(blob[position : position + size])
        position += size
    hasher.update(blob[position:])
    return hasher.finish()


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        (OCI_GZIP, GZIP),
        (DOCKER, GZIP),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", GZIP),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", GZIP),
        (OCI_ZSTD, ZSTD),
        (OCI_TAR, NONE),
        ("application/vnd.oci.image.layer.v1.tar; foo=bar", NONE),
        ("application/octet-stream", None),
    ],
)
def test_compression_of_media_types(media_type: str, expected: str | None) -> None:
    assert compression_of(media_type) == expected


def test_detect_compression() -> None:
    assert detect_compression(gzip.compress(b"x")) == GZIP
    assert detect_compression(b"\x28\xb5\x2f\xfd rest") == ZSTD
    assert detect_compression(b"ustar") == NONE


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=70_000), max_size=12))
def test_gzip_any_chunking(cuts: list[int]) -> None:
    blob = gzip.compress(TAR, compresslevel=1, mtime=0)
    assert _feed(DiffHasher(OCI_GZIP), blob, cuts) == (_digest(TAR), len(TAR))


def test_plain_tar_and_unknown_types() -> None:
    assert _feed(DiffHasher(OCI_TAR), TAR, [10, 1000]) == (_digest(TAR), len(TAR))
    blob = gzip.compress(TAR, mtime=0)
    assert _feed(DiffHasher("application/octet-stream"), blob, [1, 1, 1]) == (_digest(TAR), len(TAR))
    assert _feed(DiffHasher("application/octet-stream"), TAR, [3]) == (_digest(TAR), len(TAR))


def test_concatenated_gzip_members_and_zero_padding() -> None:
    half = len(TAR) // 2
    blob = gzip.compress(TAR[:half], mtime=0) + gzip.compress(TAR[half:], mtime=0)
    assert _feed(DiffHasher(DOCKER), blob, [half // 3, 5]) == (_digest(TAR), len(TAR))
    assert _feed(DiffHasher(DOCKER), blob + b"\0" * 1024, []) == (_digest(TAR), len(TAR))


def test_a_bomb_is_decompressed_in_bounded_steps() -> None:
    tar = b"\0" * (64 << 20)
    blob = gzip.compress(tar, compresslevel=9, mtime=0)
    assert len(blob) < (1 << 20)
    hasher = DiffHasher(OCI_GZIP)
    hasher.update(blob)  # one call; the 64 MiB come out (and are hashed) in 8 MiB pieces
    assert hasher.finish() == (_digest(tar), len(tar))


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(TAR, mtime=0)[:-100],  # cut short
        b"",  # nothing at all
    ],
)
def test_incomplete_gzip_is_data_loss(blob: bytes) -> None:
    hasher = DiffHasher(OCI_GZIP)
    hasher.update(blob)
    with pytest.raises(DataLossError):
        hasher.finish()


def test_corrupt_gzip_is_data_loss() -> None:
    blob = bytearray(gzip.compress(TAR, mtime=0))
    blob[50] ^= 0xFF
    hasher = DiffHasher(OCI_GZIP, "layer sha256:abc")
    with pytest.raises(DataLossError, match="layer sha256:abc"):
        hasher.update(bytes(blob))
        hasher.finish()


def test_garbage_after_gzip_is_data_loss() -> None:
    hasher = DiffHasher(OCI_GZIP)
    with pytest.raises(DataLossError, match="trailing"):
        hasher.update(gzip.compress(b"x") + b"garbage")


def test_zstd_with_the_package() -> None:
    import importlib

    zstandard = importlib.import_module("zstandard")
    blob = zstandard.ZstdCompressor().compress(TAR)
    assert _feed(DiffHasher(OCI_ZSTD), blob, [7, 1000]) == (_digest(TAR), len(TAR))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)
        self.size = len(data)
        self.path = None

    def read_at(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_diff_of_blob_reports_progress_and_honours_cancellation() -> None:
    blob = gzip.compress(TAR * 6, compresslevel=1, mtime=0)
    offsets: list[int] = []
    assert diff_of_blob(_Reader(blob), OCI_GZIP, advanced=offsets.append) == (_digest(TAR * 6), len(TAR) * 6)
    assert offsets[-1] == len(blob) and offsets == sorted(offsets)
    with pytest.raises(CancelledError):
        diff_of_blob(_Reader(blob), OCI_GZIP, cancelled=lambda: True)
