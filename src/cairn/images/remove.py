"""Remove an image the way Docker's ``daemon/images/image_delete.go`` does (image-service.md 5.5).

Given a reference, the reference goes first (and, when it was the last tag of
its repository on this image, that repository's digest references with it);
the image itself is deleted only when nothing names it any more. Given an id,
the image goes with its references if they are all in one repository with at
most one tag, or with ``force``. Conflicts: dependent child images (hard),
remaining references (soft, overridden by ``force``). cairn runs no
containers, so the container conflicts cannot occur. ``prune_parents`` deletes
untagged, childless parents quietly afterwards (only built images have them).

Blobs stay in the content store: reclaiming them is garbage collection's job,
shared with the other faces (DECISIONS image-service 17).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.core.digest import Digest
from cairn.core.errors import FailedPreconditionError
from cairn.images.model import ImageRecord, chain_ids
from cairn.images.references import parse_reference
from cairn.images.store import ImageStore
from cairn.oci.model import Reference

__all__ = ["RemoveResult", "remove_image"]


@dataclass(slots=True)
class RemoveResult:
    """Docker's ``Untagged``/``Deleted`` records, split in two lists each in Docker's order."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


class _Conflict(FailedPreconditionError):
    def __init__(self, image_id: Digest, hard: bool, reason: str) -> None:
        how = "cannot be forced" if hard else "must be forced"
        super().__init__(f"conflict: unable to delete {image_id.hex[:12]} ({how}) - {reason}")


def _is_id_prefix(image_id: Digest, text: str) -> bool:
    return str(image_id).startswith(text) or image_id.hex.startswith(text)


def _is_single_reference(refs: list[Reference]) -> bool:
    """Docker's test: all references in one repository, with at most one tag among them."""
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if r.digest is None]
    if len(tags) > 1:
        return False
    canonical = {r.name for r in refs if r.digest is not None}
    single = tags[0] if tags else refs[0]
    return len(canonical) == 1 and single.name in canonical


def _familiar(ref: Reference) -> str:
    if ref.digest is not None:
        return Reference(ref.registry, ref.repository, digest=ref.digest).familiar()
    return Reference(ref.registry, ref.repository, ref.tag_or_latest()).familiar()


class _Remover:
    def __init__(self, store: ImageStore, result: RemoveResult) -> None:
        self.store = store
        self.result = result

    def untag(self, ref: Reference) -> None:
        self.store.delete_reference(ref)
        self.result.untagged.append(_familiar(ref))

    def conflict(self, image: ImageRecord, *, soft: bool) -> _Conflict | None:
        if self.store.children(image.id):
            return _Conflict(image.id, True, "image has dependent child images")
        if soft and self.store.references(image.id):
            return _Conflict(image.id, False, "image is referenced in multiple repositories")
        return None

    def delete(self, image: ImageRecord, *, force: bool, prune: bool, quiet: bool) -> None:
        conflict = self.conflict(image, soft=not force)
        if conflict is not None:
            dangling = not self.store.references(image.id) and not self.store.children(image.id)
            if quiet and not dangling:
                return
            raise conflict
        for ref in self.store.references(image.id):
            self.untag(ref)
        chains = chain_ids([layer.diff_id for layer in image.layers])
        unused = [chain for chain in reversed(chains) if not self.store.chain_in_use(chain, image.id)]
        self.store.delete_image(image.id)
        self.result.deleted.append(str(image.id))
        self.result.deleted.extend(str(chain) for chain in unused)
        if prune and image.parent is not None:
            parent = self.store.get(image.parent)
            if parent is not None:
                self.delete(parent, force=False, prune=True, quiet=True)


def remove_image(store: ImageStore, text: str, *, force: bool, prune_parents: bool) -> RemoveResult:
    """Untag and/or delete what ``text`` names; FailedPreconditionError on a conflict."""
    image = store.lookup(text)
    result = RemoveResult()
    remover = _Remover(store, result)
    refs = store.references(image.id)
    quiet = False
    if not _is_id_prefix(image.id, text):
        parsed = parse_reference(text)
        if parsed.digest is not None:
            parsed = Reference(parsed.registry, parsed.repository, digest=parsed.digest)
        else:
            parsed = Reference(parsed.registry, parsed.repository, parsed.tag_or_latest())
        remover.untag(parsed)
        refs = store.references(image.id)
        if parsed.digest is None and not any(r.digest is None and r.name == parsed.name for r in refs):
            for ref in refs:
                if ref.digest is not None and ref.name == parsed.name:
                    remover.untag(ref)
            refs = store.references(image.id)
        if refs:
            return result
        quiet = True
    elif _is_single_reference(refs):
        conflict = remover.conflict(image, soft=False)
        if conflict is not None:
            raise conflict
        for ref in refs:
            remover.untag(ref)
    remover.delete(image, force=force, prune=prune_parents, quiet=quiet)
    return result
