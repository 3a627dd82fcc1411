"""Catalog references whose bytes or targets are missing.

What is checked, each against the blobs the content backend holds:

- ``dangling-name``: a content name (namespace, digest) whose bytes are gone;
- ``dangling-tag``: a registry tag whose manifest row is gone, or whose manifest's bytes are;
- ``dangling-manifest-ref``: a blob or child manifest a manifest references, that its
  repository links, whose bytes are gone (an unlinked reference is a non-distributable
  layer, which the registry never held);
- ``missing-blob``: a blob of an image in the image store, or Warg release content,
  whose bytes are gone.

The backend is listed once; a digest that listing lacks is asked for again on its
own before it is reported, and a name is looked up again, so a blob committed
(bytes first, then its name) or collected (name first, then bytes) during the
check is not mistaken for a problem. Bytes without any name are not a problem:
garbage collection removes them.
"""

from __future__ import annotations

from cairn.core.catalog.integrity import IntegrityCatalog
from cairn.core.content.backend import BlobBackend
from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError
from cairn.integrity.report import Problem, Report

__all__ = ["ReferenceCheck"]


class _HeldBlobs:
    """Whether the backend holds a digest: one listing, confirmed one by one for absentees."""

    def __init__(self, backend: BlobBackend) -> None:
        self._backend = backend
        self._listed = {str(d) for d in backend.iter_blobs()}
        self._absent: dict[str, bool] = {}

    def listed(self, digest: str) -> bool:
        return digest in self._listed

    def missing(self, digest: str) -> Digest | None:
        """The parsed digest when its bytes are missing; None when they are held (or it is no digest)."""
        if digest in self._listed:
            return None
        try:
            parsed = Digest.parse(digest)
        except InvalidArgumentError:
            return None
        gone = self._absent.get(digest)
        if gone is None:
            gone = self._absent[digest] = self._backend.blob_size(parsed) is None
        return parsed if gone else None


class ReferenceCheck:
    """Walks the catalog's references and reports those that lead nowhere."""

    def __init__(self, backend: BlobBackend, catalog: IntegrityCatalog) -> None:
        self._backend = backend
        self._catalog = catalog

    def run(self, report: Report) -> None:
        held = _HeldBlobs(self._backend)
        self._names(report, held)
        self._tags(report, held)
        self._manifest_refs(report, held)
        self._image_blobs(report, held)
        self._warg_contents(report, held)

    def _names(self, report: Report, held: _HeldBlobs) -> None:
        candidates = [(ns, d) for ns, d in self._catalog.names() if not held.listed(d)]
        for namespace, text in candidates:
            digest = held.missing(text)
            if digest is not None and self._catalog.name_exists(namespace, text):
                report.add(Problem(
                    "dangling-name", text,
                    f"named in namespace {namespace}, but the content store does not hold its bytes", digest,
                ))

    def _tags(self, report: Report, held: _HeldBlobs) -> None:
        for tag in list(self._catalog.tags()):
            subject = f"{tag.repository}:{tag.tag}"
            if not tag.has_manifest:
                report.add(Problem(
                    "dangling-tag", subject,
                    f"points at manifest {tag.digest}, which repository {tag.repository} does not hold",
                ))
                continue
            digest = held.missing(tag.digest)
            if digest is not None:
                report.add(Problem(
                    "dangling-tag", subject, f"points at manifest {tag.digest}, whose bytes are missing", digest
                ))

    def _manifest_refs(self, report: Report, held: _HeldBlobs) -> None:
        for ref in list(self._catalog.manifest_refs()):
            if not ref.linked:
                continue
            digest = held.missing(ref.digest)
            if digest is not None:
                report.add(Problem(
                    "dangling-manifest-ref", ref.digest,
                    f"manifest {ref.repository}@{ref.manifest} references it, but its bytes are missing", digest,
                ))

    def _image_blobs(self, report: Report, held: _HeldBlobs) -> None:
        for image_id, text in list(self._catalog.image_blobs()):
            digest = held.missing(text)
            if digest is not None:
                report.add(Problem(
                    "missing-blob", text, f"image {image_id} holds it, but its bytes are missing", digest
                ))

    def _warg_contents(self, report: Report, held: _HeldBlobs) -> None:
        for text in list(self._catalog.warg_contents()):
            digest = held.missing(text)
            if digest is not None:
                report.add(Problem(
                    "missing-blob", text, "Warg release content, but its bytes are missing", digest
                ))
