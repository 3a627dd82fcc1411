"""The image service's verbs over the local image store: list, inspect, remove, tag, exists.

These answer with Docker Engine semantics where the ArcBox proto is silent
(image-service.md section 5): one summary per image id, familiar names in
RepoTags and RepoDigests, sizes as the sum of uncompressed layers, Docker's
lookup order and messages. Pull, push and build are their own modules
(``pull``, ``push``, ``build``); :class:`ImageService` gives the face one object
to call for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError, NotFoundError
from cairn.images.access import RegistryAccess
from cairn.images.build import BaseResolver, BuildEvent, BuildParams, build
from cairn.images.credentials import decode_auth
from cairn.images.filters import labels_match, parse_filters, reference_matches
from cairn.images.model import ImageConfig, ImageRecord, created_nanos
from cairn.images.platform import Platform
from cairn.images.progress import Progress, ProgressSink
from cairn.images.pull import PullResult, pull
from cairn.images.push import push, push_source
from cairn.images.references import familiar_name, parse_reference, repo_digest, repo_tag
from cairn.images.remove import RemoveResult, remove_image
from cairn.images.store import ImageStore
from cairn.oci.model import Reference, validate_tag

__all__ = ["ImageDetails", "ImageService", "ImageSummary"]


@dataclass(frozen=True, slots=True)
class ImageSummary:
    """One List entry (one per image id)."""

    image: ImageRecord
    repo_tags: list[str]
    repo_digests: list[str]
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class ImageDetails:
    """What Inspect reports: the record, its names and its parsed config."""

    image: ImageRecord
    repo_tags: list[str]
    repo_digests: list[str]
    config: ImageConfig


def _names(refs: Iterable[Reference]) -> tuple[list[str], list[str]]:
    tags, digests = [], []
    for ref in refs:
        if ref.digest is not None:
            digests.append(repo_digest(ref))
        else:
            tags.append(repo_tag(ref))
    return tags, digests


class ImageService:
    """Every ImageService RPC as a blocking call on the domain; errors are cairn.core.errors kinds."""

    def __init__(self, store: ImageStore, access: RegistryAccess, workdir: Path) -> None:
        self.store = store
        self.access = access
        self.workdir = workdir

    # -- reading -----------------------------------------------------------------
    def _config(self, image: ImageRecord) -> ImageConfig:
        return ImageConfig.from_bytes(self.store.config_bytes(image), f"config {image.id}")

    def list(self, *, all: bool = False, filters: str = "") -> list[ImageSummary]:
        """Summaries newest first; ``all`` includes intermediate build images."""
        wanted = parse_filters(filters)
        images = self.store.all_images()
        refs: dict[Digest, list[Reference]] = {}
        for row in self.store.all_reference_rows():
            refs.setdefault(Digest.parse(row.image_id), []).append(Reference.parse(row.name))
        parents = {image.parent for image in images if image.parent is not None}
        before = [created_nanos(self.store.lookup(text).created) for text in wanted.before]
        since = [created_nanos(self.store.lookup(text).created) for text in wanted.since]
        out: list[ImageSummary] = []
        for image in images:
            names = refs.get(image.id, [])
            tagged = [r for r in names if r.digest is None]
            if not all and image.id in parents and not names:
                continue
            if wanted.dangling is not None and wanted.dangling != (not tagged):
                continue
            created = created_nanos(image.created)
            if before and not created < min(before):
                continue
            if since and not created > max(since):
                continue
            if wanted.references:
                pairs = [(familiar_name(r), repo_tag(r)) for r in tagged]
                if not reference_matches(wanted.references, pairs):
                    continue
            config = self._config(image)
            if wanted.labels and not labels_match(wanted.labels, config.labels):
                continue
            tags, digests = _names(names)
            out.append(ImageSummary(image, tags, digests, dict(config.labels)))
        out.sort(key=lambda s: (created_nanos(s.image.created), str(s.image.id)), reverse=True)
        return out

    def inspect(self, text: str) -> ImageDetails:
        image = self.store.lookup(text)
        tags, digests = _names(self.store.references(image.id))
        return ImageDetails(image, tags, digests, self._config(image))

    def exists(self, text: str) -> ImageRecord | None:
        """The image ``text`` names, or None; InvalidArgumentError for a malformed reference."""
        try:
            return self.store.lookup(text)
        except NotFoundError:
            return None

    # -- naming ------------------------------------------------------------------
    def tag(self, source: str, repo: str, tag: str) -> Reference:
        """Point ``repo:tag`` (tag "" = latest) at ``source``'s image, moving an existing tag."""
        image = self.store.lookup(source)
        target = parse_reference(repo)
        if target.digest is not None:
            raise InvalidArgumentError("cannot import digest reference")
        if tag:
            validate_tag(tag)
            target = Reference(target.registry, target.repository, tag)
        else:
            target = Reference(target.registry, target.repository, target.tag_or_latest())
        if familiar_name(target) == "sha256":
            raise InvalidArgumentError("refusing to create an ambiguous tag using digest algorithm as name")
        self.store.set_reference(target, image.id)
        return target

    def remove(self, text: str, *, force: bool = False, prune_parents: bool = False) -> RemoveResult:
        return remove_image(self.store, text, force=force, prune_parents=prune_parents)

    # -- transfers ---------------------------------------------------------------
    def check_pull(self, reference: str, auth: str = "", platform: str = "") -> None:
        """Refuse a malformed pull request before anything is streamed (INVALID_ARGUMENT)."""
        parse_reference(reference)
        decode_auth(auth)
        if platform:
            Platform.parse(platform)

    def check_push(self, reference: str, auth: str = "") -> None:
        """Refuse a malformed push, or one of an image that is not here, before anything is streamed."""
        push_source(self.store, parse_reference(reference))
        decode_auth(auth)

    def pull(
        self,
        reference: str,
        *,
        auth: str = "",
        platform: str = "",
        progress: ProgressSink,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> PullResult:
        """Pull ``reference`` (tag ``latest`` if none); every argument is checked before any transfer."""
        ref = parse_reference(reference)
        credentials = decode_auth(auth)
        wanted = Platform.parse(platform) if platform else None
        return pull(self.store, ref, credentials=credentials, platform=wanted, registries=self.access,
                    progress=progress, cancelled=cancelled)

    def push(
        self,
        reference: str,
        *,
        auth: str = "",
        progress: ProgressSink,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Digest:
        ref = parse_reference(reference)
        credentials = decode_auth(auth)
        return push(self.store, ref, credentials=credentials, registries=self.access,
                    progress=progress, cancelled=cancelled)

    def build(
        self,
        context: Iterable[bytes],
        params: BuildParams,
        *,
        events: Callable[[BuildEvent], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> ImageRecord:
        """Build from a tar stream; base images come from the store or are pulled on demand."""
        resolve_base = self._base_resolver(events, cancelled)
        return build(self.store, context, params, resolve_base=resolve_base, events=events,
                     workdir=self.workdir, cancelled=cancelled)

    def _base_resolver(
        self, events: Callable[[BuildEvent], None], cancelled: Callable[[], bool]
    ) -> BaseResolver:
        def resolve(text: str, platform: Platform | None) -> ImageRecord:
            ref = parse_reference(text)
            found = self.store.by_reference(ref)
            if found is not None:
                return found
            try:
                return self.store.lookup(text)
            except NotFoundError:
                pass

            def relay(p: Progress) -> None:
                events(BuildEvent(status=p.status, progress=p.progress))

            # No request credentials reach a build: RegistryAccess's credentials file applies.
            result = pull(self.store, ref, credentials=None, platform=platform,
                          registries=self.access, progress=relay, cancelled=cancelled)
            return result.image

        return resolve
