"""The local image store: images as content-store blobs plus catalog rows that name them.

Pull, push, build and the image service's management calls all go through
:class:`ImageStore`. Bytes (index, manifest, config, layers) are blobs of one
content-store namespace (``images`` by default), so the same bytes are visible
to ``ctr -n images content ...`` and stored once however many images share
them. The catalog (``catalog.images``) records which images exist, their
layers, and the references (tags and ``repo@digest``) that point at them.

Lookup follows Docker's order (image-service.md section 3): a full id, a
reference (``latest`` by default), ``name@digest``, then a unique id prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from cairn.core.catalog import ImageLayerRow, ImageRefRow, ImageRow, ImagesCatalog
from cairn.core.content import ContentStore, ReaderAt, Writer
from cairn.core.digest import Digest
from cairn.core.errors import (
    AlreadyExistsError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
)
from cairn.images.model import ImageRecord, LayerRecord, NewImage, chain_ids
from cairn.images.references import parse_reference
from cairn.oci.model import Reference

__all__ = ["DEFAULT_NAMESPACE", "ImageStore", "cache_key", "reference_of"]

#: The content-store namespace image blobs live in unless configured otherwise.
DEFAULT_NAMESPACE = "images"

_FULL_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")
_COPY_CHUNK = 1 << 20


def _record(row: ImageRow) -> ImageRecord:
    return ImageRecord(
        id=Digest.parse(row.id),
        manifest_digest=Digest.parse(row.manifest_digest),
        manifest_media_type=row.manifest_media_type,
        config_media_type=row.config_media_type,
        created=row.created,
        size=row.size,
        parent=Digest.parse(row.parent) if row.parent else None,
        layers=tuple(
            LayerRecord(Digest.parse(layer.digest), layer.media_type, layer.size,
                        Digest.parse(layer.diff_id), layer.uncompressed_size)
            for layer in row.layers
        ),
    )


def _ref_name(ref: Reference) -> tuple[str, str]:
    """The catalog name and kind of a tag-only or digest-only reference."""
    if ref.digest is not None:
        return f"{ref.name}@{ref.digest}", "digest"
    return f"{ref.name}:{ref.tag_or_latest()}", "tag"


def _split(refs: Sequence[Reference]) -> list[Reference]:
    """``repo:tag@digest`` names two things: the tag and the digest reference."""
    out: list[Reference] = []
    for ref in refs:
        if ref.tag is not None and ref.digest is not None:
            out.append(Reference(ref.registry, ref.repository, ref.tag))
            out.append(Reference(ref.registry, ref.repository, digest=ref.digest))
        else:
            out.append(ref)
    return out


def reference_of(row: ImageRefRow) -> Reference:
    """The Reference a catalog reference row names."""
    return Reference.parse(row.name)


class ImageStore:
    """Images over one content store namespace and the catalog's image tables. Thread-safe."""

    def __init__(self, content: ContentStore, catalog: ImagesCatalog, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.content = content
        self.catalog = catalog
        self.namespace = namespace

    # -- blobs -------------------------------------------------------------------
    def has_blob(self, digest: Digest) -> bool:
        try:
            self.content.info(self.namespace, digest)
        except NotFoundError:
            return False
        return True

    def open_blob(self, digest: Digest) -> ReaderAt:
        return self.content.reader_at(self.namespace, digest)

    def read_blob(self, digest: Digest, limit: int = 64 << 20) -> bytes:
        """A small blob (manifest, config) whole; DataLossError if it is missing or too large."""
        try:
            with self.open_blob(digest) as reader:
                if reader.size > limit:
                    raise DataLossError(f"blob {digest}: {reader.size} bytes, more than {limit} expected")
                return reader.read_at(0, reader.size)
        except NotFoundError:
            raise DataLossError(f"blob {digest} of a local image is missing from the store") from None

    def blob_writer(self, ref: str, total: int, expected: Digest) -> Writer:
        return self.content.writer(self.namespace, ref, total=total, expected=expected)

    def ingest_file(self, path: Path, ref: str) -> tuple[Digest, int]:
        """Store a local file (a built layer); returns its digest and size."""
        size = os.path.getsize(path)
        with self.content.writer(self.namespace, ref, total=size) as writer, open(path, "rb") as source:
            offset = writer.status().offset
            if offset:
                offset = writer.write(b"", 0)  # restart: a file is cheap to send again
            while chunk := source.read(_COPY_CHUNK):
                offset = writer.write(chunk, offset)
            digest = writer.digest()
            try:
                writer.commit(size, digest)
            except AlreadyExistsError:
                pass
        return digest, size

    def put_small(self, blobs: Sequence[bytes]) -> list[Digest]:
        return self.content.put_blobs(self.namespace, blobs)

    # -- images ------------------------------------------------------------------
    def add_image(self, new: NewImage) -> ImageRecord:
        """Record an image (its layer blobs committed already) and point its references at it."""
        small = [new.manifest, new.config] + ([new.index] if new.index is not None else [])
        digests = self.put_small(small)
        manifest_digest, image_id = digests[0], digests[1]
        for layer in new.layers:
            if not self.has_blob(layer.digest):
                raise NotFoundError(f"layer {layer.digest} of image {image_id} is not in the store")
        config = json.loads(new.config)
        created = config.get("created") if isinstance(config, dict) else None
        now = int(time.time())
        chains = chain_ids([layer.diff_id for layer in new.layers])
        row = ImageRow(
            id=str(image_id),
            manifest_digest=str(manifest_digest),
            manifest_media_type=new.manifest_media_type,
            config_media_type=new.config_media_type,
            created=created if isinstance(created, str) else "",
            size=sum(layer.uncompressed_size for layer in new.layers),
            parent=str(new.parent) if new.parent else None,
            added_at=now,
            layers=tuple(
                ImageLayerRow(str(layer.digest), layer.media_type, layer.size, str(layer.diff_id),
                              layer.uncompressed_size, str(chain))
                for layer, chain in zip(new.layers, chains, strict=True)
            ),
        )
        blobs = [str(d) for d in digests] + [str(layer.digest) for layer in new.layers]
        refs = []
        for ref in _split(new.references):
            name, kind = _ref_name(ref)
            refs.append(ImageRefRow(name, ref.name, kind, str(image_id), now))
        self.catalog.put_image(row, blobs, refs)
        found = self.catalog.get(str(image_id))
        assert found is not None
        return _record(found)

    def layers(self, digests: Collection[Digest]) -> dict[Digest, LayerRecord]:
        """What the store already recorded about these layer blobs (a pull skips their diff work)."""
        rows = self.catalog.layers_by_digest([str(d) for d in digests])
        return {
            Digest.parse(key): LayerRecord(Digest.parse(row.digest), row.media_type, row.size,
                                           Digest.parse(row.diff_id), row.uncompressed_size)
            for key, row in rows.items()
        }

    def get(self, image_id: Digest) -> ImageRecord | None:
        row = self.catalog.get(str(image_id))
        return _record(row) if row else None

    def all_images(self) -> list[ImageRecord]:
        return [_record(row) for row in self.catalog.all_images()]

    def by_reference(self, ref: Reference) -> ImageRecord | None:
        """The image a reference names (a digest reference if it has a digest, else its tag or latest)."""
        name, _ = _ref_name(Reference(ref.registry, ref.repository, digest=ref.digest)
                            if ref.digest is not None else ref)
        row = self.catalog.get_ref(name)
        return self.get(Digest.parse(row.image_id)) if row else None

    def lookup(self, text: str) -> ImageRecord:
        """Find an image by id, reference, ``name@digest`` or unique id prefix (Docker's order)."""
        if not isinstance(text, str) or not text:
            raise InvalidArgumentError("an image id or reference is required")
        full = _FULL_ID.fullmatch(text)
        if full:
            found = self.get(Digest("sha256", full[1]))
            if found is not None:
                return found
        try:
            ref: Reference | None = parse_reference(text)
        except InvalidArgumentError:
            if not _ID_PREFIX.fullmatch(text):
                raise
            ref = None
        if ref is not None:
            found = self.by_reference(ref)
            if found is not None:
                return found
        prefix = _ID_PREFIX.fullmatch(text)
        if prefix:
            ids = self.catalog.ids_with_prefix(prefix[1])
            if len(ids) > 1:
                raise InvalidArgumentError(f"multiple IDs found with provided prefix: {prefix[1]}")
            if ids:
                found = self.get(Digest.parse(ids[0]))
                if found is not None:
                    return found
        raise NotFoundError(f"No such image: {text}")

    def delete_image(self, image_id: Digest) -> None:
        self.catalog.delete_image(str(image_id))

    def children(self, image_id: Digest) -> list[Digest]:
        return [Digest.parse(child) for child in self.catalog.children(str(image_id))]

    def config_bytes(self, image: ImageRecord) -> bytes:
        return self.read_blob(image.id)

    def config_json(self, image: ImageRecord) -> dict[str, Any]:
        doc = json.loads(self.config_bytes(image))
        if not isinstance(doc, dict):
            raise DataLossError(f"config {image.id} is not a JSON object")
        return doc

    def manifest_bytes(self, image: ImageRecord) -> bytes:
        return self.read_blob(image.manifest_digest)

    # -- references --------------------------------------------------------------
    def references(self, image_id: Digest) -> list[Reference]:
        """Tags first, then digest references, each sorted by name."""
        return [reference_of(row) for row in self.catalog.refs_of(str(image_id))]

    def all_reference_rows(self) -> list[ImageRefRow]:
        return self.catalog.all_refs()

    def set_reference(self, ref: Reference, image_id: Digest) -> None:
        for one in _split([ref]):
            name, kind = _ref_name(one)
            self.catalog.set_ref(ImageRefRow(name, one.name, kind, str(image_id), int(time.time())))

    def delete_reference(self, ref: Reference) -> bool:
        name, _ = _ref_name(ref)
        return self.catalog.delete_ref(name)

    def chain_in_use(self, chain_id: Digest, besides: Digest) -> bool:
        return self.catalog.chain_in_use(str(chain_id), str(besides))

    # -- build cache -------------------------------------------------------------
    def cache_get(self, key: str) -> ImageRecord | None:
        image_id = self.catalog.cache_get(key)
        return self.get(Digest.parse(image_id)) if image_id else None

    def cache_put(self, key: str, image_id: Digest) -> None:
        self.catalog.cache_put(key, str(image_id))


def cache_key(*parts: str) -> str:
    """A build-cache key from the parts that decide a step's result."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode())
        hasher.update(b"\0")
    return hasher.hexdigest()
