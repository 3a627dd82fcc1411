"""Push: send a local image's blobs and its manifest, byte for byte, to a registry.

Docker's sequence (image-service.md section 5.2): every layer, then the config,
then the manifest by tag. A layer the repository already has is not sent
(``HEAD``); one the registry holds in another repository this image was pulled
from or pushed to is mounted (``POST ?mount=&from=``); the rest is uploaded from
the content store, ``RegistryAccess.parallel`` at a time. The manifest sent is
the one stored at pull or build time, unchanged (DECISIONS.md image-service 9),
so the pushed digest equals the pulled one; ``repo@digest`` is recorded as a
RepoDigest afterwards.

This module is not for pulling (:mod:`cairn.images.pull`) nor for compressing
built layers (build stores them compressed already).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cairn.core.content import ReaderAt
from cairn.core.digest import Digest
from cairn.core.errors import (
    CairnError,
    CancelledError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
)
from cairn.images.access import RegistryAccess, retrying
from cairn.images.credentials import Credentials
from cairn.images.model import ImageRecord
from cairn.images.progress import Meter, ProgressSink
from cairn.images.store import ImageStore
from cairn.images.transfer import Transfer
from cairn.oci.client import RegistryClient
from cairn.oci.model import Descriptor, ImageManifest, Reference, parse_manifest

__all__ = ["MAX_MOUNT_ATTEMPTS", "RegistryAccess", "push", "push_source"]

log = logging.getLogger(__name__)

#: Repositories tried for a cross-repository mount of one blob (Docker tries 3).
MAX_MOUNT_ATTEMPTS = 3


class _BlobSource:
    """A committed blob as the file-like body of an upload: counts bytes, checks for cancellation.

    Seekable, so the transport can rewind it when a 401 makes it send the body again.
    """

    def __init__(self, reader: ReaderAt, meter: Meter | None, check: Callable[[], None]) -> None:
        self._reader = reader
        self._meter = meter
        self._check = check
        self._offset = 0

    def read(self, size: int = -1, /) -> bytes:
        self._check()
        left = self._reader.size - self._offset
        want = left if size < 0 else min(size, left)
        if want <= 0:
            return b""
        data = self._reader.read_at(self._offset, want)
        self._offset += len(data)
        if self._meter is not None:
            self._meter.update(self._offset)
        return data

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0:
            raise InvalidArgumentError("blob source: only absolute seeks are supported")
        self._offset = offset
        if self._meter is not None:
            self._meter.reset(offset)
        return offset


@dataclass
class _Blob:
    descriptor: Descriptor
    id: str  # 12-hex short DiffID (the message id Docker uses on push)


class _Pusher(Transfer):
    def __init__(
        self,
        store: ImageStore,
        ref: Reference,
        image: ImageRecord,
        client: RegistryClient,
        parallel: int,
        progress: ProgressSink,
        cancelled: Callable[[], bool],
    ) -> None:
        super().__init__(progress, cancelled, f"push of {ref.familiar()}")
        self.store = store
        self.ref = ref
        self.image = image
        self.client = client
        self.parallel = parallel
        self._sources: list[str] | None = None
        self._sources_lock = threading.Lock()

    # -- where blobs may be mounted from -----------------------------------------------
    def mount_sources(self) -> list[str]:
        """Other repositories of this registry known to hold this image's blobs (its RepoDigests first)."""
        with self._sources_lock:
            if self._sources is None:
                found: list[str] = []
                for ref in self.store.references(self.image.id):
                    if (
                        ref.digest is not None
                        and ref.registry == self.ref.registry
                        and ref.repository != self.ref.repository
                        and ref.repository not in found
                    ):
                        found.append(ref.repository)
                self._sources = found
            return self._sources

    # -- one blob --------------------------------------------------------------------
    def push_layer(self, blob: _Blob) -> None:
        """HEAD, else mount, else upload one layer; reports the outcome."""
        digest, size = blob.descriptor.digest, blob.descriptor.size
        repository = self.ref.repository
        self.check()
        if self.client.head_blob(repository, digest) is not None:
            self.say(blob.id, "Layer already exists")
            return
        for source in self.mount_sources()[:MAX_MOUNT_ATTEMPTS]:
            self.check()
            try:
                if self.client.mount_blob(repository, digest, source):
                    self.say(blob.id, f"Mounted from {source}")
                    return
            except CancelledError:
                raise
            except CairnError as exc:  # a refused mount is no failure: upload instead
                log.debug("mount of %s from %s failed: %s", digest, source, exc.message)
        meter = Meter(self.sink, blob.id, "Pushing", size)
        self.upload(digest, size, meter)
        meter.finish()
        self.say(blob.id, "Pushed")

    def upload(self, digest: Digest, size: int, meter: Meter | None) -> None:
        try:
            reader = self.store.open_blob(digest)
        except NotFoundError:
            raise DataLossError(
                f"blob {digest} of image {self.image.id} is missing from the local store"
            ) from None
        with reader:
            if reader.size != size:
                raise DataLossError(f"blob {digest}: the store holds {reader.size} bytes, the manifest says {size}")

            def attempt() -> None:
                source = _BlobSource(reader, meter, self.check)
                self.client.push_blob(self.ref.repository, source, size, digest)

            retrying(attempt, id=digest.hex[:12], sink=self.sink, stopped=self.stopped)

    # -- the whole push -------------------------------------------------------------------
    def run(self) -> Digest:
        manifest_bytes = self.store.manifest_bytes(self.image)
        try:
            manifest = parse_manifest(manifest_bytes, self.image.manifest_media_type)
        except CairnError as exc:
            raise DataLossError(f"the stored manifest of image {self.image.id} is unreadable: {exc.message}") from None
        if not isinstance(manifest, ImageManifest) or manifest.config is None:
            raise DataLossError(f"the stored manifest of image {self.image.id} is not an image manifest")
        self.say("", f"The push refers to repository [{self.ref.name}]")
        self.layers(manifest)
        self.check()
        config = manifest.config
        if self.client.head_blob(self.ref.repository, config.digest) is None:
            self.upload(config.digest, config.size, None)
        self.check()
        tag = self.ref.tag_or_latest()
        digest = self.client.put_manifest(self.ref.repository, tag, manifest_bytes, self.image.manifest_media_type)
        self.store.set_reference(Reference(self.ref.registry, self.ref.repository, digest=digest), self.image.id)
        self.say("", f"{tag}: digest: {digest} size: {len(manifest_bytes)}")
        return digest

    def layers(self, manifest: ImageManifest) -> None:
        diff_ids = {layer.digest: layer.diff_id for layer in self.image.layers}
        blobs: list[_Blob] = []
        seen: set[Digest] = set()
        for descriptor in reversed(manifest.layers):  # Docker lists the top layer first
            if descriptor.digest in seen:
                continue
            seen.add(descriptor.digest)
            short = (diff_ids.get(descriptor.digest) or descriptor.digest).hex[:12]
            blobs.append(_Blob(descriptor, short))
        for blob in blobs:
            self.say(blob.id, "Preparing")
        for blob in blobs[self.parallel :]:
            self.say(blob.id, "Waiting")
        self.run_jobs([functools.partial(self.push_layer, blob) for blob in blobs],
                      parallel=self.parallel, name="push")


def push_source(store: ImageStore, reference: Reference) -> tuple[Reference, ImageRecord]:
    """The tag a push names (``latest`` when untagged) and its local image.

    InvalidArgumentError for a digest reference, NotFoundError (``No such image: <ref>``)
    when no local image has that tag. Cheap: callers check with it before streaming.
    """
    if reference.digest is not None:
        raise InvalidArgumentError(f"cannot push a digest reference: {reference.familiar()}")
    ref = Reference(reference.registry, reference.repository, reference.tag_or_latest())
    image = store.by_reference(ref)
    if image is None:
        raise NotFoundError(f"No such image: {ref.familiar()}")
    return ref, image


def push(
    store: ImageStore,
    reference: Reference,
    *,
    credentials: Credentials | None,
    registries: RegistryAccess,
    progress: ProgressSink,
    cancelled: Callable[[], bool] = lambda: False,
) -> Digest:
    """Push the local image tagged ``reference`` (``latest`` when untagged); returns the manifest digest.

    Blocks until the manifest is stored under the tag and ``repo@digest`` is
    recorded locally. Raises InvalidArgumentError for a digest reference,
    NotFoundError (``No such image: <ref>``) when no local image has that tag,
    UnauthenticatedError/PermissionDeniedError when the registry refuses,
    UnavailableError when it cannot be reached or fails, DataLossError when a
    local blob is missing or damaged, CancelledError when ``cancelled()`` turns true.
    """
    ref, image = push_source(store, reference)
    with registries.client(ref.registry, credentials, ref.repository) as client:
        return _Pusher(store, ref, image, client, registries.parallel, progress, cancelled).run()
