"""``fsck --repair``: quarantine corrupt blobs, then fetch good bytes from a peer registry.

Quarantine moves a corrupt blob's bytes out of the blobs (:meth:`BlobBackend.quarantine_blob`)
so nothing serves them any more and verified bytes can take their place; the bytes are
kept for an operator to look at, never deleted here. With a peer (an OCI registry
holding the same content, e.g. another cairn), every blob whose bytes are corrupt or
missing is fetched from a repository the catalog says names it
(``GET /v2/<repository>/manifests|blobs/<digest>``), its digest verified while it
streams, and stored again through the backend, as an ingest would store it. The
catalog's names are left as they were: they were right, only the bytes were wrong.

Not for deciding what is wrong (:mod:`.blobs`, :mod:`.references`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from cairn.core.catalog.integrity import IntegrityCatalog, PeerSource
from cairn.core.content.backend import BlobBackend
from cairn.core.digest import Digest
from cairn.core.errors import CairnError, DataLossError, NotFoundError
from cairn.integrity.report import Report
from cairn.oci.client import RegistryClient

__all__ = ["Repairer"]

log = logging.getLogger(__name__)


class Repairer:
    """Repairs what a :class:`Report` found; ``peer`` is a registry URL or host (None: quarantine only)."""

    def __init__(self, backend: BlobBackend, catalog: IntegrityCatalog, peer: str | None) -> None:
        self._backend = backend
        self._catalog = catalog
        self._peer = peer

    def run(self, report: Report) -> None:
        for problem in report.problems:
            if problem.kind == "corrupt-blob" and problem.digest is not None:
                where = self._backend.quarantine_blob(problem.digest)
                if where is not None:
                    report.quarantined[str(problem.digest)] = where
                    log.warning("quarantined corrupt blob %s to %s", problem.digest, where)
        if not self._peer:
            return
        with RegistryClient(self._peer, timeout=60) as client:
            for digest in report.digests_to_fetch():
                if self._fetch(client, digest):
                    report.mark_repaired(digest)

    def _fetch(self, client: RegistryClient, digest: Digest) -> bool:
        """Store ``digest`` from the first repository of the peer that has it; False if none did."""
        sources = self._catalog.peer_sources(str(digest))
        if not sources:
            log.warning("cannot repair %s from %s: no registry repository names it", digest, self._peer)
            return False
        for source in sources:
            try:
                self._fetch_from(client, source, digest)
            except (NotFoundError, DataLossError) as exc:
                log.warning("peer %s, repository %s: %s", self._peer, source.repository, exc.message)
                continue
            log.info("restored %s from %s (repository %s)", digest, self._peer, source.repository)
            return True
        return False

    def _fetch_from(self, client: RegistryClient, source: PeerSource, digest: Digest) -> None:
        if source.media_type is not None:
            manifest = client.get_manifest(source.repository, digest, accept=[source.media_type])
            self._store(digest, [manifest.data])
            return
        with client.open_blob(source.repository, digest) as reader:
            self._store(digest, reader.chunks())
            if not reader.verified:  # the peer sent fewer bytes than it announced
                raise DataLossError(f"blob {digest}: the peer's answer ended early")

    def _store(self, digest: Digest, chunks: Iterable[bytes]) -> None:
        """Write ``chunks`` as blob ``digest`` through an ingest of the backend; DataLossError on a mismatch."""
        key = f"fsck-repair-{uuid.uuid4().hex}"
        self._backend.create_ingest(key, f"fsck repair of {digest}")
        try:
            data = self._backend.open_ingest(key, digest.algorithm, digest)
            try:
                for chunk in chunks:
                    data.append(chunk)
                got = data.digest(digest.algorithm)
                if got != digest:
                    raise DataLossError(f"blob {digest}: the peer's bytes hash to {got}")
                data.publish(digest)
            finally:
                data.close()
        finally:
            try:
                self._backend.remove_ingest(key)
            except CairnError:
                log.exception("could not remove repair ingest %s", key)
