"""The Directory domain: records, their CIDs and canonical JSON, manifest metadata, signatures.

Everything here is pure: canonicalisation (:mod:`~cairn.directory.canonical`,
byte-for-byte Go ``encoding/json``), records with their limits and OCI manifest
annotations (:mod:`~cairn.directory.records`), and ECDSA P-256 signatures over
CIDs with their referrer encoding (:mod:`~cairn.directory.signatures`). CIDs
themselves live in :mod:`cairn.core.cid`, since any layer may need to name
bytes by CID. Storage and the gRPC face build on this package; nothing here
does I/O or speaks protobuf.
"""

from __future__ import annotations

from cairn.directory.canonical import canonical_json, go_float, parse_canonical, parse_json
from cairn.directory.records import (
    MAX_METADATA_BYTES,
    MAX_RECORD_BYTES,
    CorruptRecordError,
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
    generate_key,
    sign_cid,
    signature_from_referrer_blob,
    signature_manifest_annotations,
    signature_referrer_blob,
    verify_signature,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_RECORD_BYTES",
    "CorruptRecordError",
    "Record",
    "RecordMeta",
    "Signature",
    "canonical_json",
    "check_limits",
    "check_metadata",
    "embedded_public_key",
    "generate_key",
    "go_float",
    "manifest_annotations",
    "parse_canonical",
    "parse_json",
    "record_meta",
    "sign_cid",
    "signature_from_referrer_blob",
    "signature_manifest_annotations",
    "signature_referrer_blob",
    "verify_signature",
]
