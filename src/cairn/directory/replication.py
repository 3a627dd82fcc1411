"""One replication pass: copy a remote registry repository's records and signatures into ours.

A pass lists every tag of the remote repository (following its pages), keeps
the tags that are canonical record CIDs, and drops those this node already
has: a CID tag names content (the record blob, or a signature's referrer
blob), so a tag present locally is the same record or signature. For the rest
it fetches the manifest and the blobs it references, checks every digest (the
OCI client verifies manifests against ``Docker-Content-Digest`` and blobs
against their digest) and that the tag's CID is the digest of the artifact's
layer, then stores them locally through
:meth:`~cairn.oci.registry.Manifests.put_group`: records (manifests without a
``subject``) in groups of :data:`GROUP_SIZE`, each signature (``subject`` = its
record manifest, tagged with its own CID) after the record it refers to.

Fetches run on a small thread pool (:data:`FETCH_THREADS`) with a bounded
window of requests in flight; storing happens on the calling thread meanwhile.
Tags that are not CIDs (other images, cosign ``.sig`` tags, referrers-tag
indexes) are not copied. A tag that disappears on the remote between listing
and fetching is skipped; any other failure ends the pass with its error, and
whatever was stored before it stays (the next pass skips it).

This module is not for scheduling passes or for negotiating access to the
remote (:mod:`cairn.directory.sync`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cairn.core.cid import cid_to_digest, normalise_cid
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, InvalidArgumentError, NotFoundError
from cairn.oci.client import RegistryClient
from cairn.oci.model import ImageManifest, mediatypes, parse_manifest
from cairn.oci.registry import Artifact, Registry

__all__ = [
    "FETCH_THREADS",
    "GROUP_SIZE",
    "Cancelled",
    "PassProgress",
    "RegistryAccess",
    "Replicator",
    "is_cid_tag",
]

log = logging.getLogger(__name__)

#: Remote fetches run on this many threads.
FETCH_THREADS = 8
#: Artifacts stored per :meth:`~cairn.oci.registry.Manifests.put_group` (one flush, one transaction).
GROUP_SIZE = 256
#: Fetches in flight at most (keeps memory bounded on a large remote).
_WINDOW = 1024
#: Remote tags listed per page.
_TAGS_PAGE = 10_000
#: A record is at most 4 MiB (DECISIONS.md directory 7); refuse much larger blobs unread.
_MAX_BLOB_BYTES = 16 << 20
#: Seconds between progress lines in the log during a long pass.
_PROGRESS_EVERY = 5.0
#: Manifest types a record or signature can have.
_ACCEPT = (mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST)

_EMPTY = b"{}"
_EMPTY_DIGEST = Digest.of(_EMPTY)


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    """Where and how to read a remote repository: registry URL, optional Basic credentials."""

    url: str
    username: str | None = None
    password: str | None = None
    repository: str = "dir"


@dataclass(slots=True)
class PassProgress:
    """What a pass has done so far; readable after the pass failed, too."""

    remote_tags: int = 0
    present: int = 0
    copied: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class _Fetched:
    tag: str
    manifest: bytes
    media_type: str
    digest: Digest
    blobs: tuple[bytes, ...]
    subject: Digest | None

    def artifact(self) -> Artifact:
        return Artifact(self.manifest, self.media_type, self.blobs, (self.tag,))


class Cancelled(Exception):
    """The pass was asked to stop; raised out of :meth:`Replicator.run`."""


def is_cid_tag(tag: str) -> bool:
    """Whether ``tag`` is a record or referrer CID in its canonical spelling."""
    if not tag.startswith("b"):
        return False
    try:
        return normalise_cid(tag) == tag
    except InvalidArgumentError:
        return False


@dataclass
class _Batch:
    """Fetched artifacts waiting to be stored: records first, then signatures whose record is here."""

    records: list[_Fetched] = field(default_factory=list)
    referrers: list[_Fetched] = field(default_factory=list)
    deferred: list[_Fetched] = field(default_factory=list)


class Replicator:
    """Copies records and signatures from a remote registry repository into ``repository`` here."""

    def __init__(
        self,
        registry: Registry,
        repository: str,
        *,
        threads: int = FETCH_THREADS,
        group_size: int = GROUP_SIZE,
        timeout: float = 30.0,
    ) -> None:
        self._registry = registry
        self.repository = repository
        self._threads = threads
        self._group = group_size
        self._timeout = timeout
        #: Whether the OCI empty blob (every record's config) is linked here: then it is not sent again.
        self._empty_linked = False

    # -- the pass ----------------------------------------------------------------
    def run(
        self,
        access: RegistryAccess,
        progress: PassProgress,
        cancelled: Callable[[], bool] = lambda: False,
        name: str = "sync",
    ) -> PassProgress:
        """Copy what the remote has and this node lacks; returns ``progress`` (updated in place).

        Blocks for the whole pass. Raises the remote's errors (UnavailableError
        when it cannot be reached, UnauthenticatedError/PermissionDeniedError
        when it refuses, DataLossError when bytes do not match their digest)
        and :class:`Cancelled` when ``cancelled()`` turns true.
        """
        client = RegistryClient(
            access.url, username=access.username, password=access.password, timeout=self._timeout
        )
        try:
            try:
                remote = list(dict.fromkeys(client.tags(access.repository, _TAGS_PAGE)))
            except NotFoundError:
                log.debug("%s: %s has no repository %s (yet)", name, client.base_url, access.repository)
                remote = []  # a node without records has no repository: nothing to copy
            progress.remote_tags = len(remote)
            self._empty_linked = self._linked(_EMPTY_DIGEST)
            local = self._local_tags()
            todo = [tag for tag in remote if tag not in local and is_cid_tag(tag)]
            progress.present = sum(1 for tag in remote if tag in local)
            if todo:
                log.info(
                    "%s: %d new of %d tags in %s/%s", name, len(todo), len(remote), client.base_url, access.repository
                )
                self._copy(client, access.repository, todo, progress, cancelled, name)
            return progress
        finally:
            client.close()

    def _local_tags(self) -> set[str]:
        tags: set[str] = set()
        last: str | None = None
        try:
            while True:
                page = self._registry.tags(self.repository, last, _TAGS_PAGE)
                tags.update(page.items)
                if not page.more or not page.items:
                    return tags
                last = page.items[-1]
        except NotFoundError:
            return tags  # the local repository does not exist yet

    def _copy(
        self,
        client: RegistryClient,
        repository: str,
        todo: list[str],
        progress: PassProgress,
        cancelled: Callable[[], bool],
        name: str,
    ) -> None:
        batch = _Batch()
        stored_records: set[str] = set()
        started = last_report = time.monotonic()
        with ThreadPoolExecutor(self._threads, thread_name_prefix="sync-fetch") as pool:
            try:
                for fetched in self._fetch_all(pool, client, repository, todo, cancelled):
                    if fetched is None:
                        progress.skipped += 1
                        continue
                    if fetched.subject is None:
                        batch.records.append(fetched)
                    else:
                        batch.referrers.append(fetched)
                    if len(batch.records) + len(batch.referrers) >= self._group:
                        self._flush(batch, stored_records, progress, final=False)
                    now = time.monotonic()
                    if now - last_report >= _PROGRESS_EVERY:
                        last_report = now
                        log.info("%s: %d of %d copied (%.0fs)", name, progress.copied, len(todo), now - started)
                self._flush(batch, stored_records, progress, final=True)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        log.info(
            "%s: copied %d manifests (%d skipped) in %.1fs",
            name, progress.copied, progress.skipped, time.monotonic() - started,
        )

    def _fetch_all(
        self,
        pool: ThreadPoolExecutor,
        client: RegistryClient,
        repository: str,
        todo: list[str],
        cancelled: Callable[[], bool],
    ) -> Iterator[_Fetched | None]:
        """Fetched artifacts in ``todo`` order, at most :data:`_WINDOW` requests ahead."""
        pending: deque[Future[_Fetched | None]] = deque()
        tags = iter(todo)
        for tag in tags:
            pending.append(pool.submit(self._fetch, client, repository, tag))
            if len(pending) >= _WINDOW:
                break
        while pending:
            if cancelled():
                raise Cancelled()
            result = pending.popleft().result()
            following = next(tags, None)
            if following is not None:
                pending.append(pool.submit(self._fetch, client, repository, following))
            yield result

    # -- fetching one artifact -----------------------------------------------------
    def _fetch(self, client: RegistryClient, repository: str, tag: str) -> _Fetched | None:
        """The artifact under ``tag`` with the blobs this node lacks; None if it is not copyable."""
        try:
            fetched = client.get_manifest(repository, tag, _ACCEPT)
        except NotFoundError:
            log.debug("tag %s vanished from the remote; skipped", tag)
            return None
        try:
            manifest = parse_manifest(fetched.data, fetched.media_type)
        except InvalidArgumentError as exc:
            log.warning("remote manifest %s is not a valid manifest (%s); skipped", tag, exc.message)
            return None
        if not isinstance(manifest, ImageManifest) or len(manifest.layers) != 1:
            log.warning("remote tag %s is not a record or signature artifact; skipped", tag)
            return None
        layer = manifest.layers[0]
        if layer.digest != cid_to_digest(tag):
            log.warning("remote tag %s does not name its artifact's content (%s); skipped", tag, layer.digest)
            return None
        blobs = [
            self._blob(client, repository, d.digest, d.size)
            for d in manifest.references()
            if not (d.digest == _EMPTY_DIGEST and self._empty_linked)
        ]
        subject = manifest.subject.digest if manifest.subject is not None else None
        return _Fetched(tag, fetched.data, fetched.media_type, fetched.digest, tuple(blobs), subject)

    def _blob(self, client: RegistryClient, repository: str, digest: Digest, size: int) -> bytes:
        """The blob's verified bytes (the OCI empty blob is known without asking)."""
        if digest == _EMPTY_DIGEST:
            return _EMPTY
        if size > _MAX_BLOB_BYTES:
            raise DataLossError(f"remote blob {digest} declares {size} bytes, more than a record may hold")
        with client.open_blob(repository, digest) as reader:
            data = reader.read()
        if not reader.verified or len(data) != size:
            raise DataLossError(f"remote blob {digest}: received {len(data)} bytes, expected {size} verified bytes")
        return data

    # -- storing -------------------------------------------------------------------
    def _flush(self, batch: _Batch, stored_records: set[str], progress: PassProgress, *, final: bool) -> None:
        """Store the batch's records, then the signatures whose record is stored; keep the others."""
        records, batch.records = batch.records, []
        self._store(records, progress)
        stored_records.update(str(item.digest) for item in records)
        ready: list[_Fetched] = []
        for item in batch.referrers:
            if final or str(item.subject) in stored_records or self._has_manifest(item.subject):
                ready.append(item)
            else:
                batch.deferred.append(item)  # its record comes later in this pass, or never
        batch.referrers = []
        if final:
            ready.extend(batch.deferred)
            batch.deferred = []
        for start in range(0, len(ready), self._group):
            self._store(ready[start : start + self._group], progress)

    def _linked(self, digest: Digest) -> bool:
        try:
            self._registry.blobs.size(self.repository, digest)
        except NotFoundError:
            return False
        return True

    def _has_manifest(self, digest: Digest | None) -> bool:
        if digest is None:
            return True
        try:
            self._registry.manifests.head(self.repository, str(digest))
        except NotFoundError:
            return False
        return True

    def _store(self, items: list[_Fetched], progress: PassProgress) -> None:
        if not items:
            return
        try:
            self._registry.manifests.put_group(self.repository, [item.artifact() for item in items])
            progress.copied += len(items)
            self._empty_linked = self._empty_linked or any(_EMPTY in item.blobs for item in items)
            return
        except InvalidArgumentError:
            pass
        # One bad artifact must not keep the others out: store them one by one, skip the bad ones.
        for item in items:
            try:
                self._registry.manifests.put_group(self.repository, [item.artifact()])
                progress.copied += 1
            except InvalidArgumentError as exc:
                progress.skipped += 1
                log.warning("remote artifact %s refused here (%s); skipped", item.tag, exc.message)
