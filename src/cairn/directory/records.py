"""Directory records: canonical bytes, CID, limits, and the OCI manifest metadata that describes them.

A :class:`Record` is any JSON object (DECISIONS.md, directory 5: no OASF
validation). It is canonicalised once when made, and everything else derives
from those bytes: the CID, the digest the blob is stored under, and the few
fields the store reads (name, version, schema version, creation time, previous
CID, annotations). The record is stored as a single-layer OCI artifact whose
manifest carries :func:`manifest_annotations`, so Lookup can answer with
:func:`record_meta` from the manifest alone, without fetching the blob
(specs/directory.md §3).

The two limits of DECISIONS.md, directory 7 live here, because the store and
every face must agree on them: :func:`check_limits` for records and
:func:`check_metadata` for annotations of records and signatures.

This module is not for storage or transport: it has no I/O, and the conversion
from ``google.protobuf.Struct`` belongs to the gRPC face.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from cairn.core.cid import digest_to_cid
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, InvalidArgumentError, ResourceExhaustedError
from cairn.directory.canonical import canonical_json, parse_canonical, parse_json
from cairn.oci.model.mediatypes import OCI_MANIFEST

__all__ = [
    "ANNOTATION_PREFIX",
    "KEY_CID",
    "KEY_CREATED_AT",
    "KEY_CUSTOM_PREFIX",
    "KEY_NAME",
    "KEY_OASF_VERSION",
    "KEY_PREVIOUS_CID",
    "KEY_SCHEMA_VERSION",
    "KEY_TYPE",
    "KEY_VERSION",
    "MAX_METADATA_BYTES",
    "MAX_RECORD_BYTES",
    "PUBLIC_KEY_MEDIA_TYPE",
    "PUBLIC_KEY_REFERRER_TYPE",
    "RECORD_ARTIFACT_TYPE",
    "RECORD_MEDIA_TYPE",
    "RECORD_TYPE",
    "REFERRER_ANNOTATION_PREFIX",
    "REFERRER_CREATED_AT_KEY",
    "REFERRER_MEDIA_TYPE",
    "REFERRER_TYPE_KEY",
    "SIGNATURE_MEDIA_TYPE",
    "SIGNATURE_REFERRER_TYPE",
    "CorruptRecordError",
    "Record",
    "RecordMeta",
    "check_limits",
    "check_metadata",
    "manifest_annotations",
    "metadata_size",
    "record_meta",
]

#: Largest canonical record, in bytes (4 MiB); larger is RESOURCE_EXHAUSTED.
MAX_RECORD_BYTES = 4 * 1024 * 1024
#: Largest canonical JSON of an ``annotations`` object, in bytes (100 KiB); larger is INVALID_ARGUMENT.
MAX_METADATA_BYTES = 100 * 1024

#: Media type of the record blob (the single layer): its canonical JSON.
RECORD_MEDIA_TYPE = "application/json"
#: The record manifest's ``artifactType``: upstream passes the manifest media type itself.
RECORD_ARTIFACT_TYPE = OCI_MANIFEST
#: Blob media types of referrers (§9.3).
SIGNATURE_MEDIA_TYPE = "application/vnd.agntcy.dir.sign.signature.v1+json"
PUBLIC_KEY_MEDIA_TYPE = "application/vnd.agntcy.dir.sign.publickey.v1+pem"
REFERRER_MEDIA_TYPE = "application/vnd.agntcy.dir.referrer.v1+json"
#: ``RecordReferrer.type`` values.
SIGNATURE_REFERRER_TYPE = "agntcy.dir.sign.v1.Signature"
PUBLIC_KEY_REFERRER_TYPE = "agntcy.dir.sign.v1.PublicKey"

#: Record manifest annotation keys (current upstream, §3).
ANNOTATION_PREFIX = "org.agntcy.dir/"
KEY_TYPE = ANNOTATION_PREFIX + "type"
KEY_CID = ANNOTATION_PREFIX + "cid"
KEY_NAME = ANNOTATION_PREFIX + "name"
KEY_VERSION = ANNOTATION_PREFIX + "version"
KEY_SCHEMA_VERSION = ANNOTATION_PREFIX + "schema-version"
KEY_CREATED_AT = ANNOTATION_PREFIX + "created-at"
KEY_OASF_VERSION = ANNOTATION_PREFIX + "oasf-version"
KEY_PREVIOUS_CID = ANNOTATION_PREFIX + "previous-cid"
KEY_CUSTOM_PREFIX = ANNOTATION_PREFIX + "custom."
#: The value of :data:`KEY_TYPE` on a record manifest.
RECORD_TYPE = "record"

#: Referrer manifest annotation keys (§9.3); the referrer's CID goes under :data:`KEY_CID`.
REFERRER_TYPE_KEY = "agntcy.dir.referrer.type"
REFERRER_CREATED_AT_KEY = "agntcy.dir.referrer.created_at"
REFERRER_ANNOTATION_PREFIX = "agntcy.dir.referrer.annotation."

# RecordMeta.annotations keys copied from the manifest (prefix removed), in upstream's order.
_META_KEYS = (
    (KEY_NAME, "name"),
    (KEY_VERSION, "version"),
    (KEY_OASF_VERSION, "oasf-version"),
    (KEY_PREVIOUS_CID, "previous-cid"),
)


class CorruptRecordError(DataLossError):
    """Stored record metadata is not what cairn writes (a manifest without the record type).

    A narrower kind so the Directory face can answer INTERNAL, as upstream does
    for a corrupt manifest, rather than DATA_LOSS.
    """


@dataclass(frozen=True)
class Record:
    """A Directory record: its canonical JSON bytes and what the store reads from them.

    Make one with :meth:`from_document` or :meth:`from_json`; both canonicalise,
    so two records are equal exactly when their canonical bytes (and so their
    CIDs) are. The fields other than ``canonical`` are derived and do not take
    part in comparison. A field the record lacks, or holds as a non-string, reads
    as ``""``, as upstream's ``Struct`` accessors do.
    """

    canonical: bytes
    digest: Digest = field(compare=False)
    cid: str = field(compare=False)
    name: str = field(compare=False)
    version: str = field(compare=False)
    schema_version: str = field(compare=False)
    created_at: str = field(compare=False)
    #: The record's ``previous_record_cid``.
    previous_cid: str = field(compare=False)
    #: The record's own ``annotations`` object; non-string values as their canonical JSON text.
    annotations: dict[str, str] = field(compare=False, hash=False)
    #: Bytes of the canonical JSON of the record's ``annotations`` value (0 when absent).
    annotations_size: int = field(compare=False)

    @classmethod
    def from_document(cls, document: object) -> Record:
        """The record for a parsed JSON value, which must be an object."""
        if not isinstance(document, Mapping):
            raise InvalidArgumentError(f"record must be a JSON object, not {_json_kind(document)}")
        return cls._make(document, canonical_json(document))

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> Record:
        """The record for JSON text (any key order and spacing; numbers are doubles)."""
        document, canonical = parse_canonical(data)
        if not isinstance(document, Mapping):
            raise InvalidArgumentError(f"record must be a JSON object, not {_json_kind(document)}")
        return cls._make(document, canonical)

    @classmethod
    def _make(cls, document: Mapping[str, Any], canonical: bytes) -> Record:
        digest = Digest.of(canonical)
        raw_annotations = document.get("annotations")
        annotations: dict[str, str] = {}
        annotations_size = 0
        if raw_annotations is not None:
            annotations_size = len(canonical_json(raw_annotations))
        if isinstance(raw_annotations, Mapping):
            for key, value in raw_annotations.items():
                annotations[key] = value if isinstance(value, str) else canonical_json(value).decode("utf-8")
        return cls(
            canonical=canonical,
            digest=digest,
            cid=digest_to_cid(digest),
            name=_string_field(document, "name"),
            version=_string_field(document, "version"),
            schema_version=_string_field(document, "schema_version"),
            created_at=_string_field(document, "created_at"),
            previous_cid=_string_field(document, "previous_record_cid"),
            annotations=annotations,
            annotations_size=annotations_size,
        )

    def document(self) -> dict[str, Any]:
        """A fresh parse of the canonical bytes (numbers as floats), e.g. to build a ``Struct``."""
        return cast("dict[str, Any]", parse_json(self.canonical))


@dataclass(frozen=True)
class RecordMeta:
    """What Lookup returns, read from the record manifest's annotations alone."""

    cid: str
    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    schema_version: str = ""
    created_at: str = ""


def metadata_size(annotations: Mapping[str, object]) -> int:
    """Bytes of the canonical JSON of an annotations object (what the 100 KiB limit measures)."""
    return len(canonical_json(annotations))


def check_metadata(annotations: Mapping[str, str], what: str) -> None:
    """Refuse annotations whose canonical JSON exceeds :data:`MAX_METADATA_BYTES` (InvalidArgumentError).

    ``what`` names the owner in the message, e.g. ``signature of record baearei...``.
    """
    _check_metadata_size(metadata_size(annotations), what)


def check_limits(record: Record) -> None:
    """Enforce the record limits of DECISIONS.md, directory 7.

    Canonical bytes over :data:`MAX_RECORD_BYTES` raise
    :class:`ResourceExhaustedError`; a record ``annotations`` value whose
    canonical JSON exceeds :data:`MAX_METADATA_BYTES` raises
    :class:`InvalidArgumentError`.
    """
    size = len(record.canonical)
    if size > MAX_RECORD_BYTES:
        raise ResourceExhaustedError(
            f"record {record.cid} is {size} bytes, over the 4 MiB limit ({MAX_RECORD_BYTES} bytes)"
        )
    _check_metadata_size(record.annotations_size, f"record {record.cid}")


def _check_metadata_size(size: int, what: str) -> None:
    if size > MAX_METADATA_BYTES:
        raise InvalidArgumentError(
            f"{what}: annotations are {size} bytes, over the 100 KiB limit ({MAX_METADATA_BYTES} bytes)"
        )


def manifest_annotations(record: Record) -> dict[str, str]:
    """The record manifest's annotations (current upstream keys, §3).

    No ``org.opencontainers.image.created``: manifests stay reproducible
    (DECISIONS.md, directory 4).
    """
    out = {KEY_TYPE: RECORD_TYPE, KEY_CID: record.cid}
    for key, value in (
        (KEY_NAME, record.name),
        (KEY_VERSION, record.version),
        (KEY_SCHEMA_VERSION, record.schema_version),
        (KEY_CREATED_AT, record.created_at),
    ):
        if value:
            out[key] = value
    out[KEY_OASF_VERSION] = record.schema_version
    if record.previous_cid:
        out[KEY_PREVIOUS_CID] = record.previous_cid
    for key, value in record.annotations.items():
        out[KEY_CUSTOM_PREFIX + key] = value
    return out


def record_meta(cid: str, manifest_annotations: Mapping[str, str]) -> RecordMeta:
    """The ``RecordMeta`` for a record manifest's annotations (§3, "RecordMeta from Lookup").

    ``annotations`` holds name, version, oasf-version and previous-cid when set,
    then every ``custom.*`` entry with its prefix removed (a custom key wins
    over a fixed one of the same name, as upstream's map writes do).
    ``schema_version`` is the record's own, empty if it has none (DECISIONS.md,
    directory 5). A manifest without the record type annotation raises
    :class:`CorruptRecordError`.
    """
    kind = manifest_annotations.get(KEY_TYPE)
    if kind != RECORD_TYPE:
        found = "no" if kind is None else f"{kind!r} as its"
        raise CorruptRecordError(f"record {cid}: the manifest has {found} {KEY_TYPE} annotation")
    annotations: dict[str, str] = {}
    for key, short in _META_KEYS:
        value = manifest_annotations.get(key, "")
        if value:
            annotations[short] = value
    for key, value in manifest_annotations.items():
        if key.startswith(KEY_CUSTOM_PREFIX):
            annotations[key[len(KEY_CUSTOM_PREFIX) :]] = value
    return RecordMeta(
        cid=cid,
        annotations=annotations,
        schema_version=manifest_annotations.get(KEY_SCHEMA_VERSION, ""),
        created_at=manifest_annotations.get(KEY_CREATED_AT, ""),
    )


def _string_field(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    return value if isinstance(value, str) else ""


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"
