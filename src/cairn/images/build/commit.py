"""Turn a build step's result into store content: a gzip layer blob, a config, a manifest, an image.

Each step of a classic build is an image of its own (Docker's intermediate
images), recorded with its parent so ``List(all=true)`` shows the chain. Built
images are OCI: an ``application/vnd.oci.image.manifest.v1+json`` manifest, an
``application/vnd.oci.image.config.v1+json`` config and ``tar+gzip`` layers.
Layer tars are streamed through a hasher (the diff_id) into a gzip file in the
build's directory and then ingested, so a layer is never held in memory.

This module does not decide what goes into a layer or config; the builder does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cairn.core.digest import Digest
from cairn.images.model import ImageRecord, LayerRecord, NewImage
from cairn.images.store import ImageStore
from cairn.oci.model import Descriptor, ImageManifest, Reference, mediatypes

__all__ = ["LayerWriter", "commit_image", "now_rfc3339", "oci_layer"]

_GZIP_LEVEL = 6


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with nanoseconds, as Docker writes ``created``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


class LayerWriter:
    """A write-only sink that hashes the uncompressed tar and gzips it into a file.

    Use as a context manager; after a clean exit :meth:`commit` stores the blob.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, mtime=0,
                                   compresslevel=_GZIP_LEVEL)
        self._hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._hasher.update(data)
        self.size += len(data)
        self._gzip.write(data)
        return len(data)

    @property
    def diff_id(self) -> Digest:
        return Digest("sha256", self._hasher.hexdigest())

    def close(self) -> None:
        if not self._file.closed:
            self._gzip.close()
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def commit(self, store: ImageStore) -> LayerRecord:
        """Store the compressed blob (content-addressed, so a repeat is free) and delete the file."""
        self.close()
        try:
            digest, size = store.ingest_file(self.path, f"build-{uuid.uuid4().hex}")
        finally:
            self.path.unlink(missing_ok=True)
        return LayerRecord(digest, mediatypes.OCI_LAYER_GZIP, size, self.diff_id, self.size)


def oci_layer(layer: LayerRecord) -> LayerRecord:
    """The record as an OCI manifest names it (Docker's gzip layer type is the same bytes)."""
    if layer.media_type == mediatypes.DOCKER_LAYER:
        return LayerRecord(layer.digest, mediatypes.OCI_LAYER_GZIP, layer.size, layer.diff_id,
                           layer.uncompressed_size)
    return layer


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def commit_image(
    store: ImageStore, config: dict[str, Any], layers: Sequence[LayerRecord], *,
    parent: Digest | None, references: Sequence[Reference] = (),
) -> ImageRecord:
    """Write ``config`` and an OCI manifest over ``layers`` and record the image; returns it.

    ``config["rootfs"]["diff_ids"]`` must match ``layers``; blobs of ``layers``
    must be committed already (the store raises NotFoundError otherwise).
    """
    config_bytes = _encode(config)
    manifest = ImageManifest.from_parts(
        Descriptor(mediatypes.OCI_CONFIG, Digest.of(config_bytes), len(config_bytes)),
        [Descriptor(layer.media_type, layer.digest, layer.size) for layer in layers],
        media_type=mediatypes.OCI_MANIFEST,
    )
    return store.add_image(NewImage(
        manifest=manifest.to_bytes(),
        manifest_media_type=mediatypes.OCI_MANIFEST,
        config=config_bytes,
        config_media_type=mediatypes.OCI_CONFIG,
        layers=list(layers),
        references=list(references),
        parent=parent,
    ))
