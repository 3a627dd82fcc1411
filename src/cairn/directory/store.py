"""Directory records as OCI artifacts in cairn's own registry (DECISIONS.md directory 3).

A record is stored the way upstream Directory stores it (specs/directory.md §3):
its canonical JSON is the single layer (so the layer digest *is* the CID), the
config is the OCI empty blob, the manifest carries the ``org.agntcy.dir/``
annotations and is tagged with the CID. A signature is a referrer artifact
(§9.3): its canonical referrer JSON is the layer, its manifest's ``subject`` is
the record manifest, and it is tagged with its own CID. Any OCI client can list
and copy records, and sync is plain registry replication.

Manifests carry no ``created`` annotation (DECISIONS.md directory 4), so the
same record has the same manifest digest on every node.

Writes come in groups: :meth:`RecordStore.plan` validates one record (and its
signature) and :meth:`RecordStore.commit` stores many planned pushes with one
flush and one catalog transaction, which is what lets one gRPC stream push
thousands of small records a second while every acknowledged record is on disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cairn.core.cid import digest_to_cid, normalise_cid
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, InvalidArgumentError, NotFoundError
from cairn.directory.records import (
    RECORD_ARTIFACT_TYPE,
    RECORD_MEDIA_TYPE,
    REFERRER_CREATED_AT_KEY,
    SIGNATURE_MEDIA_TYPE,
    Record,
    RecordMeta,
    check_limits,
    check_metadata,
    manifest_annotations,
    record_meta,
)
from cairn.directory.signatures import (
    Signature,
    embedded_public_key,
    signature_from_referrer_blob,
    signature_manifest_annotations,
    signature_referrer_blob,
    verify_signature,
)
from cairn.oci.model import mediatypes
from cairn.oci.registry import Artifact, Registry

__all__ = ["PlannedPush", "RecordStore"]

#: The OCI empty blob, every record's and signature's config.
_EMPTY = b"{}"
_EMPTY_DESCRIPTOR = {"mediaType": mediatypes.OCI_EMPTY, "digest": str(Digest.of(_EMPTY)), "size": 2}


@dataclass(frozen=True, slots=True)
class PlannedPush:
    """One validated push: the record's CID and the artifacts still to store."""

    cid: str
    artifacts: list[Artifact] = field(default_factory=list)


def _manifest_bytes(
    layer_type: str,
    layer: bytes,
    annotations: dict[str, str],
    artifact_type: str,
    subject: dict[str, object] | None,
) -> bytes:
    """A reproducible OCI image manifest around one layer (compact JSON, fixed key order)."""
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _EMPTY_DESCRIPTOR,
        "layers": [{"mediaType": layer_type, "digest": str(Digest.of(layer)), "size": len(layer)}],
    }
    if subject is not None:
        document["subject"] = subject
    document["annotations"] = dict(sorted(annotations.items()))
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RecordStore:
    """Push, pull, look up and delete records (and their signatures) in one registry repository."""

    def __init__(self, registry: Registry, repository: str = "dir") -> None:
        self._registry = registry
        self.repository = repository

    # -- push -------------------------------------------------------------------
    def plan(self, record: Record, signature: Signature | None = None) -> PlannedPush:
        """Validate a push (limits, signature) and build its artifacts; stores nothing.

        ResourceExhaustedError for a record over 4 MiB, InvalidArgumentError for
        metadata over 100 KiB or a signature that carries a key and does not
        verify. A record stored already needs no record artifact (push is
        idempotent), only its new signature.
        """
        check_limits(record)
        cid = record.cid
        artifacts: list[Artifact] = []
        record_manifest = _manifest_bytes(
            RECORD_MEDIA_TYPE, record.canonical, manifest_annotations(record), RECORD_ARTIFACT_TYPE, None
        )
        stored = self._stored_manifest(cid)
        if stored is None:
            artifacts.append(
                Artifact(record_manifest, mediatypes.OCI_MANIFEST, (_EMPTY, record.canonical), (cid,))
            )
        if signature is not None:
            subject_bytes = stored if stored is not None else record_manifest
            artifacts.append(self._signature_artifact(cid, subject_bytes, signature))
        return PlannedPush(cid, artifacts)

    def _signature_artifact(self, cid: str, subject_manifest: bytes, signature: Signature) -> Artifact:
        check_metadata(signature.annotations, "signature annotations")
        if embedded_public_key(signature) is not None:
            verify_signature(cid, signature)
        created_at = signature.signed_at or _now()
        blob = signature_referrer_blob(cid, signature, created_at)
        referrer_cid = digest_to_cid(Digest.of(blob))
        subject = {
            "mediaType": mediatypes.OCI_MANIFEST,
            "digest": str(Digest.of(subject_manifest)),
            "size": len(subject_manifest),
        }
        annotations = signature_manifest_annotations(referrer_cid, created_at, signature)
        manifest = _manifest_bytes(SIGNATURE_MEDIA_TYPE, blob, annotations, SIGNATURE_MEDIA_TYPE, subject)
        return Artifact(manifest, mediatypes.OCI_MANIFEST, (_EMPTY, blob), (referrer_cid,))

    def commit(self, plans: Sequence[PlannedPush]) -> list[str]:
        """Store planned pushes as one durable group; returns their CIDs in order."""
        artifacts = [artifact for plan in plans for artifact in plan.artifacts]
        if artifacts:
            self._registry.manifests.put_group(self.repository, artifacts)
        return [plan.cid for plan in plans]

    def push(self, record: Record, signature: Signature | None = None) -> str:
        """Plan and commit one record; returns its CID."""
        return self.commit([self.plan(record, signature)])[0]

    # -- read -------------------------------------------------------------------
    def _stored_manifest(self, cid: str) -> bytes | None:
        try:
            return self._registry.manifests.get(self.repository, cid).data
        except NotFoundError:
            return None

    def _manifest(self, cid: str) -> tuple[str, dict[str, object]]:
        """The canonical CID and the parsed record manifest; NotFoundError if unknown."""
        cid = _checked_cid(cid)
        data = self._stored_manifest(cid)
        if data is None:
            raise NotFoundError(f"record not found: {cid}")
        try:
            document = json.loads(data)
        except ValueError:
            raise DataLossError(f"record {cid}: its manifest is not JSON") from None
        if not isinstance(document, dict):
            raise DataLossError(f"record {cid}: its manifest is not a JSON object")
        return cid, document

    def pull(self, cid: str) -> bytes:
        """The record's canonical JSON bytes."""
        cid, manifest = self._manifest(cid)
        layers = manifest.get("layers")
        if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
            raise DataLossError(f"record {cid}: its manifest has no layers")
        layer = layers[0]
        digest = Digest.parse(str(layer.get("digest", "")))
        with self._registry.blobs.open(self.repository, digest) as reader:
            data = reader.read_at(0, reader.size)
        if Digest.of(data) != digest:
            raise DataLossError(f"record {cid}: its stored bytes do not match digest {digest}")
        return data

    def lookup(self, cid: str) -> RecordMeta:
        """The record's metadata, from its manifest alone (the record blob is not read)."""
        cid, manifest = self._manifest(cid)
        annotations = manifest.get("annotations")
        if not isinstance(annotations, dict):
            raise DataLossError(f"record {cid}: its manifest has no annotations")
        return record_meta(cid, {str(k): str(v) for k, v in annotations.items()})

    def signature(self, cid: str) -> Signature | None:
        """The record's newest signature, or None."""
        cid = _checked_cid(cid)
        subject = self._registry.manifests.head(self.repository, cid).digest
        referrers = self._registry.manifests.referrers(
            self.repository, subject, SIGNATURE_MEDIA_TYPE, None, 10_000
        )
        if not referrers:
            return None
        newest = max(referrers, key=lambda d: (d.annotations.get(REFERRER_CREATED_AT_KEY, ""), str(d.digest)))
        manifest = json.loads(self._registry.manifests.get(self.repository, str(newest.digest)).data)
        layer = Digest.parse(manifest["layers"][0]["digest"])
        with self._registry.blobs.open(self.repository, layer) as reader:
            return signature_from_referrer_blob(reader.read_at(0, reader.size))

    # -- delete -----------------------------------------------------------------
    def delete(self, cid: str) -> bool:
        """Remove the record's name and its referrers (signatures); False if it was not there.

        Idempotent; bytes stay until garbage collection.
        """
        cid = _checked_cid(cid)
        try:
            subject = self._registry.manifests.head(self.repository, cid).digest
        except NotFoundError:
            return False
        for referrer in self._registry.manifests.referrers(self.repository, subject, None, None, 10_000):
            self._delete_manifest(str(referrer.digest))
        self._delete_manifest(str(subject))
        return True

    def _delete_manifest(self, digest: str) -> None:
        try:
            self._registry.manifests.delete(self.repository, digest)
        except NotFoundError:
            pass  # deleted meanwhile


def _checked_cid(cid: str) -> str:
    """The canonical form of ``cid``; InvalidArgumentError if it is empty or malformed."""
    if not cid:
        raise InvalidArgumentError("record cid is required")
    return normalise_cid(cid)
