"""Test helpers for tests/vectors/warg: the pbjson record reader and log builders.

The upstream log vectors give records in pbjson JSON (camelCase or snake_case
names, enum names, RFC 3339 times with nanoseconds). Only tests read that form;
the protocol never carries records as JSON, so the reader lives here, not in src.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cairn.warg.crypto import PrivateKey, PublicKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import operator_record_id, package_record_id
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
    OperatorEntry,
    OperatorGrantFlat,
    OperatorImportNamespace,
    OperatorInit,
    OperatorPermission,
    OperatorRecord,
    OperatorRevokeFlat,
    PackageEntry,
    PackageGrantFlat,
    PackageInit,
    PackagePermission,
    PackageRecord,
    PackageRelease,
    PackageRevokeFlat,
    PackageYank,
    RecordTime,
)
from cairn.warg.semver import Version

__all__ = [
    "VECTORS",
    "load",
    "operator_envelopes",
    "operator_record_from_pbjson",
    "package_envelopes",
    "package_record_from_pbjson",
    "parse_rfc3339",
]

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "warg"

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_PACKAGE_PERMISSIONS = {
    "PACKAGE_PERMISSION_RELEASE": PackagePermission.RELEASE,
    "PACKAGE_PERMISSION_YANK": PackagePermission.YANK,
    1: PackagePermission.RELEASE,
    2: PackagePermission.YANK,
}
_OPERATOR_PERMISSIONS = {
    "OPERATOR_PERMISSION_COMMIT": OperatorPermission.COMMIT,
    "OPERATOR_PERMISSION_DEFINE_NAMESPACE": OperatorPermission.DEFINE_NAMESPACE,
    "OPERATOR_PERMISSION_IMPORT_NAMESPACE": OperatorPermission.IMPORT_NAMESPACE,
    1: OperatorPermission.COMMIT,
    2: OperatorPermission.DEFINE_NAMESPACE,
    3: OperatorPermission.IMPORT_NAMESPACE,
}


def load(relative: str) -> Any:
    return json.loads((VECTORS / relative).read_text())


def parse_rfc3339(text: str) -> RecordTime:
    match = _RFC3339.fullmatch(text)
    assert match is not None, text
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    nanos = int((match[7] or "").ljust(9, "0"))
    zone = match[8]
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return RecordTime(seconds, nanos)


def _field(obj: Mapping[str, Any], camel: str) -> Any:
    snake = re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), camel)
    return obj[camel] if camel in obj else obj[snake]


def _only(entry: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    assert len(entry) == 1, entry
    ((kind, body),) = entry.items()
    camel = re.sub(r"_([a-z])", lambda m: m[1].upper(), kind)
    return camel, body


def _package_entry(entry: Mapping[str, Any]) -> PackageEntry:
    kind, body = _only(entry)
    if kind == "init":
        return PackageInit(PublicKey.parse(_field(body, "key")), _field(body, "hashAlgorithm"))
    if kind == "grantFlat":
        perms = tuple(_PACKAGE_PERMISSIONS[p] for p in _field(body, "permissions"))
        return PackageGrantFlat(PublicKey.parse(_field(body, "key")), perms)
    if kind == "revokeFlat":
        perms = tuple(_PACKAGE_PERMISSIONS[p] for p in _field(body, "permissions"))
        return PackageRevokeFlat(AnyHash.parse(_field(body, "keyId")), perms)
    if kind == "release":
        return PackageRelease(Version.parse(_field(body, "version")), AnyHash.parse(_field(body, "contentHash")))
    assert kind == "yank", kind
    return PackageYank(Version.parse(_field(body, "version")))


def _operator_entry(entry: Mapping[str, Any]) -> OperatorEntry:
    kind, body = _only(entry)
    if kind == "init":
        return OperatorInit(PublicKey.parse(_field(body, "key")), _field(body, "hashAlgorithm"))
    if kind == "grantFlat":
        perms = tuple(_OPERATOR_PERMISSIONS[p] for p in _field(body, "permissions"))
        return OperatorGrantFlat(PublicKey.parse(_field(body, "key")), perms)
    if kind == "revokeFlat":
        perms = tuple(_OPERATOR_PERMISSIONS[p] for p in _field(body, "permissions"))
        return OperatorRevokeFlat(AnyHash.parse(_field(body, "keyId")), perms)
    if kind == "defineNamespace":
        return OperatorDefineNamespace(_field(body, "namespace"))
    assert kind == "importNamespace", kind
    return OperatorImportNamespace(_field(body, "namespace"), _field(body, "registry"))


def package_record_from_pbjson(contents: Mapping[str, Any], prev: AnyHash | None) -> PackageRecord:
    """The record of a vector's ``contents``; its own ``prev`` is ignored, as the README says."""
    entries = tuple(_package_entry(e) for e in contents.get("entries", []))
    return PackageRecord(prev, contents.get("version", 0), parse_rfc3339(contents["time"]), entries)


def operator_record_from_pbjson(contents: Mapping[str, Any], prev: AnyHash | None) -> OperatorRecord:
    entries = tuple(_operator_entry(e) for e in contents.get("entries", []))
    return OperatorRecord(prev, contents.get("version", 0), parse_rfc3339(contents["time"]), entries)


def package_envelopes(items: Sequence[Mapping[str, Any]]) -> list[Envelope]:
    """Encode and sign each element, chaining ``prev`` to the previous record id."""
    out: list[Envelope] = []
    prev: AnyHash | None = None
    for item in items:
        record = package_record_from_pbjson(item["contents"], prev)
        envelope = Envelope.sign_package(record, PrivateKey.parse(item["key"]))
        out.append(envelope)
        prev = package_record_id(envelope.content_bytes)
    return out


def operator_envelopes(items: Sequence[Mapping[str, Any]]) -> list[Envelope]:
    out: list[Envelope] = []
    prev: AnyHash | None = None
    for item in items:
        record = operator_record_from_pbjson(item["contents"], prev)
        envelope = Envelope.sign_operator(record, PrivateKey.parse(item["key"]))
        out.append(envelope)
        prev = operator_record_id(envelope.content_bytes)
    return out
