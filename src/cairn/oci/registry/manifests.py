"""Manifests of a repository: push (validate, store the exact bytes, tag), fetch, delete, referrers.

The bytes of a manifest are a content-store blob in the registry's namespace
(as containerd keeps them), so they are the same bytes for every face; the
catalog row records what the registry needs to answer without parsing them
again (media type, subject, artifact type, annotations). The digest is the
digest of the bytes received, in the algorithm of the URL's digest when pushed
by digest, else sha256 (DECISIONS.md oci 15).

Validation is strict (DECISIONS.md oci 5): config, layers and child manifests
must exist in the repository, except non-distributable layers, and a missing
``subject`` is accepted so referrers can be pushed first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from cairn.core.catalog.database import Transaction
from cairn.core.catalog.registry import ManifestRow, ReferencesGoneError, RegistryCatalog, Requirements
from cairn.core.content import RefLockedError
from cairn.core.content.store import ContentStore
from cairn.core.digest import Digest
from cairn.core.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from cairn.oci.errors import (
    DigestInvalidError,
    ManifestBlobUnknownError,
    ManifestInvalidError,
    ManifestUnknownError,
    NameUnknownError,
    TooLargeError,
)
from cairn.oci.model import Descriptor, ImageIndex, ImageManifest, mediatypes, parse_manifest
from cairn.oci.registry.names import check_tag, is_digest, parse_digest

__all__ = ["Artifact", "Manifests", "PushedManifest", "StoredManifest"]

#: Layer media types that are never uploaded (their bytes live at ``urls``).
_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# Waiting for a concurrent push of the same manifest bytes: 8 tries, 10 ms doubling (~2.5 s in all).
_STORE_ATTEMPTS = 8
_STORE_BACKOFF = 0.01


def _is_non_distributable(descriptor: Descriptor) -> bool:
    media_type = mediatypes.base(descriptor.media_type)
    return ".nondistributable." in media_type or media_type == _FOREIGN_LAYER


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as stored: its digest, media type and (for GET) exact bytes."""

    digest: Digest
    media_type: str
    size: int
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Artifact:
    """A small artifact pushed as one unit: its blobs (in memory), its manifest and its tags."""

    manifest: bytes
    media_type: str
    blobs: Sequence[bytes] = ()
    tags: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: Digest
    subject: Digest | None
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Prepared:
    row: ManifestRow
    references: list[str]
    pushed: PushedManifest
    required: Requirements
    needed: Sequence[Descriptor]


def _blob_unknown(repository: str, missing: set[str], needed: Sequence[Descriptor]) -> ManifestBlobUnknownError:
    details = [{"Digest": str(d.digest), "MediaType": d.media_type} for d in needed if str(d.digest) in missing]
    return ManifestBlobUnknownError(
        f"manifest references {len(missing)} blob(s) or manifest(s) not in repository "
        f"{repository}: {', '.join(sorted(missing))}",
        details,
    )


class _BytesCache:
    """Manifest bytes by digest (immutable, so never stale), bounded in total size."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._size = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self._max // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self._max:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


class Manifests:
    def __init__(self, store: ContentStore, catalog: RegistryCatalog, namespace: str, max_bytes: int) -> None:
        self._store = store
        self._catalog = catalog
        self._namespace = namespace
        self.max_bytes = max_bytes
        self._cache = _BytesCache(64 << 20)

    # -- push ---------------------------------------------------------------------
    def put(
        self,
        repository: str,
        reference: str,
        data: bytes,
        content_type: str | None,
        extra_tags: Sequence[str] = (),
    ) -> PushedManifest:
        """Validate and store a manifest under ``reference`` (a tag or the digest of ``data``)."""
        prepared = self._prepare(repository, reference, data, content_type, extra_tags, frozenset())
        self._store_bytes(prepared.pushed.digest, data)
        required = Requirements(
            prepared.required.blobs, prepared.required.manifests, (self._namespace, str(prepared.pushed.digest))
        )
        try:
            self._catalog.put_manifest(prepared.row, prepared.references, prepared.pushed.tags, required)
        except ReferencesGoneError as exc:  # garbage collected since the first check
            raise _blob_unknown(repository, exc.missing, prepared.needed) from None
        return prepared.pushed

    def put_group(self, repository: str, artifacts: Sequence[Artifact]) -> list[PushedManifest]:
        """Store several small artifacts (blobs + manifest + tags each) with one flush and one transaction.

        Each manifest is validated as :meth:`put` does, except that its blobs may
        come in the same group; a later artifact may name an earlier one as its
        ``subject``. Nothing is stored unless every artifact is valid.
        """
        blob_sizes: dict[str, int] = {}  # every blob of the group, hashed once
        prepared: list[_Prepared] = []
        contents: list[bytes] = []
        for artifact in artifacts:
            for blob in artifact.blobs:
                blob_sizes[str(Digest.of(blob))] = len(blob)
                contents.append(blob)
            reference = artifact.tags[0] if artifact.tags else str(Digest.of(artifact.manifest))
            prepared.append(
                self._prepare(
                    repository,
                    reference,
                    artifact.manifest,
                    artifact.media_type,
                    artifact.tags[1:],
                    blob_sizes.keys(),
                )
            )
            contents.append(artifact.manifest)

        def name_all(tx: Transaction) -> None:
            now = time.time_ns()
            for digest, size in blob_sizes.items():
                self._catalog.link_blob_in(tx, repository, digest, size, now)
            for item in prepared:
                self._catalog.check_required(tx, repository, item.required)
                self._catalog.put_manifest_in(tx, item.row, item.references, item.pushed.tags)

        try:
            self._store.put_blobs(self._namespace, contents, name_all)
        except ReferencesGoneError as exc:  # garbage collected since the first check
            raise _blob_unknown(repository, exc.missing, [d for p in prepared for d in p.needed]) from None
        for item, artifact in zip(prepared, artifacts, strict=True):
            self._cache.put(str(item.pushed.digest), artifact.manifest)
        return [item.pushed for item in prepared]

    def _prepare(
        self,
        repository: str,
        reference: str,
        data: bytes,
        content_type: str | None,
        extra_tags: Sequence[str],
        in_group: AbstractSet[str],
    ) -> _Prepared:
        if len(data) > self.max_bytes:
            raise TooLargeError(f"manifest of {len(data)} bytes is over the limit of {self.max_bytes}")
        tags = [check_tag(tag) for tag in extra_tags]
        if is_digest(reference):
            claimed = parse_digest(reference)
            digest = Digest.of(data, claimed.algorithm)
            if digest != claimed:
                raise DigestInvalidError(
                    f"manifest bytes have digest {digest}, not {claimed}", {"Digest": str(claimed)}
                )
        else:
            tags.insert(0, check_tag(reference))
            digest = Digest.of(data)
        try:
            manifest = parse_manifest(data, content_type)
        except InvalidArgumentError as exc:
            raise ManifestInvalidError(exc.message) from None
        required, needed = self._check_references(repository, manifest, in_group)
        subject = manifest.subject.digest if manifest.subject is not None else None
        media_type = mediatypes.base(manifest.media_type or content_type or "")
        artifact_type = (
            manifest.effective_artifact_type()
            if isinstance(manifest, ImageManifest)
            else manifest.artifact_type
        )
        row = ManifestRow(
            repository=repository,
            digest=str(digest),
            media_type=media_type,
            size=len(data),
            artifact_type=artifact_type,
            subject=str(subject) if subject else None,
            annotations=dict(manifest.annotations),
            created_at=time.time_ns(),
        )
        references = [str(d.digest) for d in manifest.references()]
        return _Prepared(row, references, PushedManifest(digest, subject, tuple(tags)), required, needed)

    def _check_references(
        self, repository: str, manifest: ImageManifest | ImageIndex, in_group: AbstractSet[str] = frozenset()
    ) -> tuple[Requirements, list[Descriptor]]:
        """ManifestBlobUnknownError for references the repository lacks; else what the write re-checks."""
        if isinstance(manifest, ImageManifest):
            needed = [d for d in manifest.references() if not _is_non_distributable(d)]
            wanted = frozenset(str(d.digest) for d in needed if str(d.digest) not in in_group)
            missing = self._catalog.unlinked(repository, wanted)
            required = Requirements(blobs=wanted)
        else:
            needed = list(manifest.manifests)
            children = frozenset(str(d.digest) for d in needed)
            missing = self._catalog.missing_manifests(repository, children)
            required = Requirements(manifests=children)
        if missing:
            raise _blob_unknown(repository, missing, needed)
        return required, needed

    def _store_bytes(self, digest: Digest, data: bytes) -> None:
        for attempt in range(_STORE_ATTEMPTS):
            try:
                with self._store.writer(self._namespace, f"registry-manifest/{digest}", len(data), digest) as w:
                    w.write(data, 0)
                    w.commit(len(data), digest)
            except AlreadyExistsError:
                pass  # the same bytes are stored already
            except RefLockedError:
                # Another request holds the ref, so it is storing these very bytes (the ref is their
                # digest): a small write that ends in milliseconds. Pushing the same manifest twice at
                # once is idempotent for clients, so wait for it, briefly and boundedly.
                if attempt == _STORE_ATTEMPTS - 1:
                    raise
                time.sleep(_STORE_BACKOFF * 2**attempt)
                continue
            break
        self._cache.put(str(digest), data)

    # -- fetch --------------------------------------------------------------------
    def _row(self, repository: str, reference: str) -> ManifestRow:
        if is_digest(reference):
            row = self._catalog.get_manifest(repository, str(parse_digest(reference)))
        else:
            row = self._catalog.get_tagged_manifest(repository, check_tag(reference))
        if row is None:
            if not self._catalog.repository_exists(repository):
                raise NameUnknownError(f"repository {repository} is not known", {"Name": repository})
            raise ManifestUnknownError(
                f"manifest {reference} is not known to repository {repository}",
                {"Name": repository, "Reference": reference},
            )
        return row

    def head(self, repository: str, reference: str) -> StoredManifest:
        row = self._row(repository, reference)
        return StoredManifest(Digest.parse(row.digest), row.media_type, row.size)

    def get(self, repository: str, reference: str) -> StoredManifest:
        row = self._row(repository, reference)
        data = self._cache.get(row.digest)
        if data is None:
            digest = Digest.parse(row.digest)
            try:
                with self._store.reader_at(self._namespace, digest) as reader:
                    data = reader.read_at(0, row.size)
            except NotFoundError:
                raise ManifestUnknownError(
                    f"manifest {row.digest} of repository {repository} has lost its bytes"
                ) from None
            self._cache.put(row.digest, data)
        return StoredManifest(Digest.parse(row.digest), row.media_type, row.size, data)

    # -- delete -------------------------------------------------------------------
    def delete(self, repository: str, reference: str) -> None:
        """By digest: the manifest and every tag pointing at it. By tag: only the tag."""
        if is_digest(reference):
            removed = self._catalog.delete_manifest(repository, str(parse_digest(reference)))
        else:
            removed = self._catalog.delete_tag(repository, check_tag(reference))
        if not removed:
            self._row(repository, reference)  # raises the right not-found error
            raise ManifestUnknownError(f"manifest {reference} is not known to repository {repository}")

    # -- referrers ----------------------------------------------------------------
    def referrers(
        self, repository: str, subject: Digest, artifact_type: str | None, last: str | None, limit: int
    ) -> list[Descriptor]:
        """Descriptors of the repository's manifests whose ``subject`` is ``subject``, by digest."""
        rows = self._catalog.referrers(repository, str(subject), artifact_type, last, limit)
        return [
            Descriptor(
                media_type=row.media_type,
                digest=Digest.parse(row.digest),
                size=row.size,
                annotations=dict(row.annotations),
                artifact_type=row.artifact_type,
            )
            for row in rows
        ]
