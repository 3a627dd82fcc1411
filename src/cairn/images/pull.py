"""Pull: resolve a reference at its registry, fetch what is missing, record the image.

The steps are Docker's (image-service.md section 5.1): resolve the tag or
digest to a manifest or index (keeping the exact bytes; their digest is the
RepoDigest), pick the platform's manifest from an index, fetch the config,
then the layers, ``RegistryAccess.parallel`` at a time, with Docker v24's
progress messages. Every layer streams into a content-store ingest named
``pull-<digest>``: a pull cut off anywhere (a dropped connection, a cancelled
client, the whole server killed) leaves the bytes it got, and the next pull
asks the registry only for the rest (``Range``). The content store checks each
blob's digest and size at commit; a mismatch is DataLossError naming the blob
(and the ingest is dropped, so the next try starts clean). Each layer is also
decompressed once, alongside the download when it starts at byte 0, to get
the uncompressed size and check its diff_id against the config.

This module is not for pushing (:mod:`cairn.images.push`) nor for the gRPC
stream (the face turns :class:`~cairn.images.progress.Progress` into messages
and errors into statuses).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from cairn.core.content import RefLockedError, Writer
from cairn.core.digest import Digest
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    DataLossError,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from cairn.images.access import RegistryAccess, retrying
from cairn.images.credentials import Credentials
from cairn.images.layers import (
    ZSTD,
    BackgroundDiffHasher,
    DiffHasher,
    compression_of,
    diff_of_blob,
    zstd_available,
)
from cairn.images.model import ImageRecord, LayerRecord, NewImage
from cairn.images.platform import Platform
from cairn.images.progress import Meter, ProgressSink
from cairn.images.store import ImageStore
from cairn.images.transfer import Transfer
from cairn.oci.client import FetchedManifest, RegistryClient
from cairn.oci.model import Descriptor, ImageIndex, ImageManifest, Reference, mediatypes, parse_manifest

__all__ = ["PULL_MANIFEST_TYPES", "PullResult", "RegistryAccess", "pull"]

log = logging.getLogger(__name__)

#: What a pull accepts from a registry (image-service.md section 4): no schema 1.
PULL_MANIFEST_TYPES: tuple[str, ...] = (
    mediatypes.OCI_INDEX,
    mediatypes.DOCKER_MANIFEST_LIST,
    mediatypes.OCI_MANIFEST,
    mediatypes.DOCKER_MANIFEST,
)
_CONFIG_TYPES = frozenset({mediatypes.OCI_CONFIG, mediatypes.DOCKER_CONFIG})
#: Image configs larger than this are refused (Docker allows 8 MiB).
_MAX_CONFIG_BYTES = 64 << 20
_CHUNK = 1 << 20
#: How long a pull waits between looks when another pull is fetching the same layer.
_BUSY_POLL = 0.2


@dataclass(frozen=True)
class PullResult:
    """What a pull recorded: the image, the top-level digest (the RepoDigest) and whether it was new."""

    image: ImageRecord
    digest: Digest
    up_to_date: bool


def _short(digest: Digest) -> str:
    return digest.hex[:12]


def _display(ref: Reference) -> str:
    """The familiar reference Docker prints in messages (``busybox:latest``, ``busybox@sha256:...``)."""
    return ref.familiar()


def _repo_shown(ref: Reference) -> str:
    """The repository in ``Pulling from``: the path on Docker Hub (``library/busybox``), else the full name."""
    return ref.repository if ref.registry == "docker.io" else ref.name


@dataclass
class _Layer:
    """One distinct layer blob of the manifest and what the pull learned about it."""

    descriptor: Descriptor
    present: bool
    known: LayerRecord | None = None
    downloaded: bool = False


class _Puller(Transfer):
    def __init__(
        self,
        store: ImageStore,
        ref: Reference,
        client: RegistryClient,
        platform: Platform | None,
        parallel: int,
        progress: ProgressSink,
        cancelled: Callable[[], bool],
    ) -> None:
        super().__init__(progress, cancelled, f"pull of {_display(ref)}")
        self.store = store
        self.ref = ref
        self.client = client
        self.platform = platform
        self.parallel = parallel
        self._downloaded = False

    # -- resolving -----------------------------------------------------------------
    def resolve(self) -> FetchedManifest:
        target: str | Digest = self.ref.digest if self.ref.digest is not None else self.ref.tag_or_latest()
        try:
            return self.client.get_manifest(self.ref.repository, target, PULL_MANIFEST_TYPES)
        except NotFoundError:
            raise NotFoundError(
                f"manifest for {_display(self.ref)} not found: manifest unknown: manifest unknown"
            ) from None
        except UnauthenticatedError as exc:
            raise UnauthenticatedError(self._denied(exc)) from None
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(self._denied(exc)) from None

    def _denied(self, exc: CairnError) -> str:
        name = Reference(self.ref.registry, self.ref.repository).familiar()
        return (
            f"pull access denied for {name}, repository does not exist or may require "
            f"'docker login': {exc.message}"
        )

    def manifest_of(self, top: FetchedManifest) -> tuple[FetchedManifest, ImageManifest]:
        """The image manifest to pull: ``top`` itself, or the platform's entry of an index."""
        document = self._parse(top)
        if isinstance(document, ImageManifest):
            return top, document
        wanted = self.platform or Platform.host()
        choice = wanted.best([entry.platform for entry in document.manifests])
        if choice is None:
            raise NotFoundError(f"no matching manifest for {wanted} in the manifest list entries")
        entry = document.manifests[choice]
        if not mediatypes.is_manifest(entry.media_type):
            raise UnimplementedError(
                f"{_display(self.ref)}: the entry for {wanted} is a {entry.media_type}, not an image manifest"
            )
        fetched = self.client.get_manifest(self.ref.repository, entry.digest, PULL_MANIFEST_TYPES)
        if fetched.size != entry.size:
            raise DataLossError(
                f"manifest {entry.digest} of {_display(self.ref)}: {fetched.size} bytes, the index says {entry.size}"
            )
        document = self._parse(fetched)
        if not isinstance(document, ImageManifest):
            raise UnimplementedError(f"manifest {entry.digest} of {_display(self.ref)} is an index inside an index")
        return fetched, document

    def _parse(self, fetched: FetchedManifest) -> ImageManifest | ImageIndex:
        if not mediatypes.is_manifest_or_index(fetched.media_type):
            raise UnimplementedError(
                f"{_display(self.ref)}: unsupported manifest media type {fetched.media_type!r}"
            )
        try:
            return parse_manifest(fetched.data, fetched.media_type)
        except CairnError as exc:
            raise DataLossError(f"manifest {fetched.digest} of {_display(self.ref)}: {exc.message}") from None

    def config_of(self, manifest: ImageManifest) -> tuple[Descriptor, bytes]:
        descriptor = manifest.config
        if descriptor is None:
            raise DataLossError(f"manifest of {_display(self.ref)} names no config")
        if mediatypes.base(descriptor.media_type) not in _CONFIG_TYPES:
            raise FailedPreconditionError(
                f"{_display(self.ref)} is not a container image: config media type {descriptor.media_type}"
            )
        if descriptor.size > _MAX_CONFIG_BYTES:
            raise DataLossError(f"config {descriptor.digest}: {descriptor.size} bytes is too large for an image config")
        if self.store.has_blob(descriptor.digest):
            data = self.store.read_blob(descriptor.digest, _MAX_CONFIG_BYTES)
        else:
            with self.client.open_blob(self.ref.repository, descriptor.digest) as reader:
                data = reader.read()  # read whole: the reader checks the digest at the end
        if len(data) != descriptor.size or Digest.of(data, descriptor.digest.algorithm) != descriptor.digest:
            raise DataLossError(
                f"config {descriptor.digest}: received {len(data)} bytes that do not match the manifest"
            )
        return descriptor, data

    # -- layers --------------------------------------------------------------------
    def known_layers(self, digests: set[Digest]) -> dict[Digest, LayerRecord]:
        """What the store already recorded (diff_id, uncompressed size) about these blobs."""
        return self.store.layers(digests) if digests else {}

    def download(self, layer: _Layer) -> tuple[Digest, int]:
        """Fetch one layer into the store (resuming its ingest); returns its (diff_id, size)."""
        descriptor = layer.descriptor
        digest, size = descriptor.digest, descriptor.size
        id = _short(digest)
        what = f"layer {digest} of {_display(self.ref)}"
        ref = f"pull-{digest}"
        restarted = False
        while True:
            self.check()
            try:
                writer = self.store.blob_writer(ref, size, digest)
            except AlreadyExistsError:
                return self.measure(layer)  # committed meanwhile (another pull of the same blob)
            except RefLockedError:
                time.sleep(_BUSY_POLL)  # another pull is fetching this blob right now
                continue
            except FailedPreconditionError:
                self._drop_ingest(ref)  # an ingest of that name with another size: start over
                continue
            hasher: BackgroundDiffHasher | None = None
            with writer, ExitStack() as cleanup:
                offset = writer.status().offset
                if offset > size:
                    offset = 0  # writing at 0 truncates
                if offset == 0:
                    # The diff_id check runs beside the download (its own thread) and ends
                    # while the commit fsyncs; leaving the block on an error abandons it.
                    hasher = cleanup.enter_context(
                        BackgroundDiffHasher(DiffHasher(descriptor.media_type, what)))
                started = offset
                meter = Meter(self.sink, id, "Downloading", size)
                if offset < size:
                    offset = self._fetch(layer, writer, offset, hasher, meter)
                meter.finish()
                self.say(id, "Verifying Checksum")
                try:
                    writer.commit(size, digest)
                except AlreadyExistsError:
                    pass
                except FailedPreconditionError as exc:
                    self._drop_ingest(ref)
                    if started > 0 and not restarted:
                        # The bytes kept from an earlier try were bad: fetch the whole blob once more.
                        log.warning("%s: resumed bytes did not verify (%s); starting over", what, exc.message)
                        restarted = True
                        if hasher is not None:
                            hasher.abandon()
                        continue
                    raise DataLossError(f"{what}: the bytes received do not match the digest ({exc.message})") from None
            layer.downloaded = True
            self.say(id, "Download complete")
            if hasher is not None:
                return hasher.finish()  # a blob that verified but does not decompress fails here
            return self.measure(layer)

    def _fetch(
        self, layer: _Layer, writer: Writer, offset: int, hasher: BackgroundDiffHasher | None, meter: Meter
    ) -> int:
        """Append the blob's bytes from ``offset`` to the ingest, retrying a broken transfer."""
        descriptor = layer.descriptor
        digest, size = descriptor.digest, descriptor.size
        what = f"layer {digest} of {_display(self.ref)}"
        position = offset

        def attempt() -> None:
            nonlocal position
            with self.client.open_blob(self.ref.repository, digest, position, verify=False) as reader:
                if reader.size is not None and reader.size != size:
                    raise DataLossError(f"{what}: the registry serves {reader.size} bytes, the manifest says {size}")
                while True:
                    self.check()
                    try:
                        data = reader.read(_CHUNK)
                    except DataLossError as exc:  # the connection broke off: worth a retry from here
                        raise UnavailableError(exc.message) from None
                    if not data:
                        break
                    if position + len(data) > size:
                        raise DataLossError(f"{what}: the registry sent more than the {size} bytes expected")
                    writer.write(data, position)
                    position += len(data)
                    if hasher is not None:
                        hasher.update(data)
                    meter.update(position)
            if position != size:
                raise DataLossError(f"{what}: the transfer ended after {position} of {size} bytes")

        retrying(attempt, id=_short(digest), sink=self.sink, stopped=self.stopped, progressed=lambda: position)
        return position

    def measure(self, layer: _Layer) -> tuple[Digest, int]:
        """(diff_id, size) of a committed layer blob, by decompressing it from the store."""
        digest = layer.descriptor.digest
        with self.store.open_blob(digest) as reader:
            return diff_of_blob(
                reader, layer.descriptor.media_type, f"layer {digest} of {_display(self.ref)}", cancelled=self.stopped
            )

    def _drop_ingest(self, ref: str) -> None:
        try:
            self.store.content.abort(self.store.namespace, ref)
        except NotFoundError:
            pass

    # -- the whole pull ------------------------------------------------------------
    def run(self) -> PullResult:
        top = self.resolve()
        tag_or_digest = str(self.ref.digest) if self.ref.digest is not None else self.ref.tag_or_latest()
        self.say(tag_or_digest, f"Pulling from {_repo_shown(self.ref)}")
        fetched, manifest = self.manifest_of(top)
        config_descriptor, config = self.config_of(manifest)
        diff_ids = self._diff_ids(config, config_descriptor.digest)
        self._check_os(config)
        if len(diff_ids) != len(manifest.layers):
            raise DataLossError(
                f"{_display(self.ref)}: the manifest has {len(manifest.layers)} layers, "
                f"the config {len(diff_ids)} diff_ids"
            )
        if not zstd_available():
            for descriptor in manifest.layers:
                if compression_of(descriptor.media_type) == ZSTD:
                    raise UnimplementedError(
                        f"{_display(self.ref)}: layer {descriptor.digest} has media type "
                        f"{descriptor.media_type} and this cairn cannot decompress zstd "
                        "(install the 'zstandard' package)"
                    )
        measured = self.layers(manifest.layers)
        records: list[LayerRecord] = []
        for position, descriptor in enumerate(manifest.layers):
            diff_id, uncompressed = measured[descriptor.digest]
            if diff_id != diff_ids[position]:
                raise DataLossError(
                    f"layer {descriptor.digest} of {_display(self.ref)}: its content hashes to {diff_id}, "
                    f"the config says {diff_ids[position]}"
                )
            records.append(LayerRecord(descriptor.digest, descriptor.media_type, descriptor.size, diff_id, uncompressed))
        return self.record(top, fetched, config_descriptor, config, records, self._downloaded)

    def _diff_ids(self, config: bytes, digest: Digest) -> list[Digest]:
        try:
            document = json.loads(config)
            texts = document["rootfs"]["diff_ids"]
            if not isinstance(texts, list):
                raise TypeError("diff_ids is not a list")
            return [Digest.parse(text) for text in texts]
        except (ValueError, KeyError, TypeError, CairnError) as exc:
            raise DataLossError(f"config {digest} of {_display(self.ref)}: no readable rootfs.diff_ids ({exc})") from None

    def _check_os(self, config: bytes) -> None:
        """Docker checks only the OS of a single-platform image at pull time."""
        try:
            os_name = json.loads(config).get("os")
        except (ValueError, AttributeError):
            return
        wanted = self.platform or Platform.host()
        if isinstance(os_name, str) and os_name and os_name.lower() != wanted.os:
            raise FailedPreconditionError(
                f'image operating system "{os_name}" cannot be used on this platform ({wanted.os})'
            )

    def layers(self, descriptors: Sequence[Descriptor]) -> dict[Digest, tuple[Digest, int]]:
        """Fetch what is missing, ``parallel`` at a time; (diff_id, size) for every distinct blob."""
        distinct: dict[Digest, _Layer] = {}
        for descriptor in descriptors:
            if descriptor.digest not in distinct:
                distinct[descriptor.digest] = _Layer(descriptor, self.store.has_blob(descriptor.digest))
        present = {d for d, layer in distinct.items() if layer.present}
        known = self.known_layers(present)
        queued = 0
        waiting: list[str] = []
        for digest, layer in distinct.items():
            layer.known = known.get(digest)
            if layer.present:
                self.say(_short(digest), "Already exists")
            else:
                self.say(_short(digest), "Pulling fs layer")
                if queued >= self.parallel:
                    waiting.append(_short(digest))
                queued += 1
        for id in waiting:
            self.say(id, "Waiting")
        results: dict[Digest, tuple[Digest, int]] = {}
        order = list(distinct.values())
        jobs: list[Callable[[], tuple[Digest, int]]] = []
        jobbed: list[_Layer] = []
        for layer in order:
            if layer.known is not None:
                results[layer.descriptor.digest] = (layer.known.diff_id, layer.known.uncompressed_size)
            elif layer.present:
                jobs.append(functools.partial(self.measure, layer))
                jobbed.append(layer)
        for layer in order:
            if not layer.present:
                jobs.append(functools.partial(self.download, layer))
                jobbed.append(layer)
        reported = 0

        def finished(index: int, result: tuple[Digest, int]) -> None:
            results[jobbed[index].descriptor.digest] = result

        def report_in_order() -> None:
            """``Extracting``/``Pull complete`` in layer order, as the layers finish."""
            nonlocal reported
            while reported < len(order) and order[reported].descriptor.digest in results:
                layer = order[reported]
                if not layer.present:
                    size = layer.descriptor.size
                    id = _short(layer.descriptor.digest)
                    self.say(id, "Extracting", size, size, bar=True)
                    self.say(id, "Pull complete")
                reported += 1

        self.run_jobs(jobs, parallel=self.parallel, name="pull", finished=finished, progressed=report_in_order)
        self._downloaded = any(layer.downloaded for layer in order)
        return results

    def record(
        self,
        top: FetchedManifest,
        fetched: FetchedManifest,
        config_descriptor: Descriptor,
        config: bytes,
        layers: list[LayerRecord],
        downloaded: bool,
    ) -> PullResult:
        # As Docker: a pull by tag records the tag and repo@digest; a pull by digest (even
        # ``name:tag@digest``) records only repo@digest.
        refs: list[Reference] = []
        if self.ref.digest is None:
            refs.append(Reference(self.ref.registry, self.ref.repository, self.ref.tag_or_latest()))
        refs.append(Reference(self.ref.registry, self.ref.repository, digest=top.digest))
        before = self.store.by_reference(refs[0])
        image = self.store.add_image(
            NewImage(
                manifest=fetched.data,
                manifest_media_type=fetched.media_type,
                config=config,
                config_media_type=config_descriptor.media_type,
                layers=layers,
                index=top.data if top.digest != fetched.digest else None,
                references=refs,
            )
        )
        up_to_date = before is not None and before.id == image.id and not downloaded
        self.say("", f"Digest: {top.digest}")
        status = "Image is up to date for" if up_to_date else "Downloaded newer image for"
        self.say("", f"Status: {status} {_display(self._status_ref())}")
        return PullResult(image, top.digest, up_to_date)

    def _status_ref(self) -> Reference:
        if self.ref.tag is None and self.ref.digest is None:
            return Reference(self.ref.registry, self.ref.repository, "latest")
        return self.ref


def pull(
    store: ImageStore,
    reference: Reference,
    *,
    credentials: Credentials | None,
    platform: Platform | None,
    registries: RegistryAccess,
    progress: ProgressSink,
    cancelled: Callable[[], bool] = lambda: False,
) -> PullResult:
    """Pull ``reference`` (tag ``latest`` when it names neither tag nor digest) into ``store``.

    ``platform`` picks the entry of a multi-platform index (None: the host's).
    Progress goes to ``progress`` from this and worker threads. Blocks until
    the image is recorded (tag and ``repo@digest`` references point at it).

    Raises NotFoundError (``manifest for <ref> not found: manifest unknown``, or
    ``no matching manifest for <platform> in the manifest list entries``),
    UnauthenticatedError/PermissionDeniedError when the registry refuses,
    UnavailableError when it cannot be reached or fails, DataLossError when
    bytes do not match their digest, size or the config's diff_ids,
    UnimplementedError for formats cairn cannot read (schema 1, zstd without
    ``zstandard``), CancelledError when ``cancelled()`` turns true.
    """
    ref = reference
    if ref.tag is None and ref.digest is None:
        ref = Reference(ref.registry, ref.repository, "latest")
    with registries.client(ref.registry, credentials, ref.repository) as client:
        return _Puller(store, ref, client, platform, registries.parallel, progress, cancelled).run()
