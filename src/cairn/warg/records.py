"""Package and operator records: the typed model and its prost-exact protobuf form (spec section 3).

Decoding applies every rule of spec 3.2 and raises ``WargFormatError`` (a 400 on
publish); protobuf's own decoder already gives the tolerance the spec asks for
(unknown fields skipped, packed or unpacked repeated enums, any field order).
Because proto3 enums are open, unknown permission numbers survive decoding as
plain ints and are rejected here.

Encoding matters only for records cairn writes itself (the operator log, client
publishing): a server hashes and stores the bytes it received and never
re-encodes them (spec 3.3). The generated ``warg_pb2`` serialiser writes fields
in tag order and omits proto3 defaults just like prost; the only care needed is
to mark ``time`` and every oneof member present even when empty.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from google.protobuf.message import DecodeError

from cairn.warg.crypto import OPERATOR_RECORD_PREFIX, PACKAGE_RECORD_PREFIX, PrivateKey, PublicKey, Signature
from cairn.warg.errors import WargFormatError
from cairn.warg.gen.warg.protocol import warg_pb2 as pb
from cairn.warg.hashes import SHA256, AnyHash, b64decode_strict, b64encode
from cairn.warg.semver import Version

__all__ = [
    "Envelope",
    "OperatorDefineNamespace",
    "OperatorEntry",
    "OperatorGrantFlat",
    "OperatorImportNamespace",
    "OperatorInit",
    "OperatorPermission",
    "OperatorRecord",
    "OperatorRevokeFlat",
    "PackageEntry",
    "PackageGrantFlat",
    "PackageInit",
    "PackagePermission",
    "PackageRecord",
    "PackageRelease",
    "PackageRevokeFlat",
    "PackageYank",
    "RecordTime",
]

_NANOS = 1_000_000_000
_SECONDS_DIGITS = 20  # an i64 count of seconds has at most 19 digits


class PackagePermission(StrEnum):
    """Package log permissions; the value is the name used in state JSON and messages."""

    RELEASE = "release"
    YANK = "yank"


class OperatorPermission(StrEnum):
    """Operator log permissions; the value is the name used in state JSON and messages."""

    COMMIT = "commit"
    DEFINE_NAMESPACE = "defineNamespace"
    IMPORT_NAMESPACE = "importNamespace"


_PACKAGE_PERMISSION_NUMBERS = {PackagePermission.RELEASE: 1, PackagePermission.YANK: 2}
_OPERATOR_PERMISSION_NUMBERS = {
    OperatorPermission.COMMIT: 1,
    OperatorPermission.DEFINE_NAMESPACE: 2,
    OperatorPermission.IMPORT_NAMESPACE: 3,
}


@dataclass(frozen=True, slots=True, order=True)
class RecordTime:
    """A record timestamp with full nanosecond precision (the state keeps it exactly)."""

    seconds: int
    nanos: int

    @classmethod
    def now(cls) -> RecordTime:
        seconds, nanos = divmod(_time.time_ns(), _NANOS)
        return cls(seconds, nanos)

    @classmethod
    def from_text(cls, text: str) -> RecordTime:
        """Parse the state JSON form ``"<secs>.<nanos 9 digits>"``."""
        seconds, dot, nanos = text.partition(".")
        if not (dot and seconds.isascii() and seconds.isdigit() and nanos.isascii() and nanos.isdigit()):
            raise WargFormatError(f"invalid timestamp `{text}`")
        if len(nanos) != 9 or len(seconds) > _SECONDS_DIGITS:  # int() refuses > 4300 digits
            raise WargFormatError(f"invalid timestamp `{text[:80]}`")
        return cls(int(seconds), int(nanos))

    @property
    def text(self) -> str:
        return f"{self.seconds}.{self.nanos:09d}"


# ---- entries -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageInit:
    key: PublicKey
    hash_algorithm: str = SHA256


@dataclass(frozen=True, slots=True)
class PackageGrantFlat:
    key: PublicKey
    permissions: tuple[PackagePermission, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", tuple(self.permissions))  # a list would break ==/hash



@dataclass(frozen=True, slots=True)
class PackageRevokeFlat:
    key_id: AnyHash
    permissions: tuple[PackagePermission, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", tuple(self.permissions))  # a list would break ==/hash



@dataclass(frozen=True, slots=True)
class PackageRelease:
    version: Version
    content: AnyHash


@dataclass(frozen=True, slots=True)
class PackageYank:
    version: Version


PackageEntry = PackageInit | PackageGrantFlat | PackageRevokeFlat | PackageRelease | PackageYank


@dataclass(frozen=True, slots=True)
class OperatorInit:
    key: PublicKey
    hash_algorithm: str = SHA256


@dataclass(frozen=True, slots=True)
class OperatorGrantFlat:
    key: PublicKey
    permissions: tuple[OperatorPermission, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", tuple(self.permissions))  # a list would break ==/hash



@dataclass(frozen=True, slots=True)
class OperatorRevokeFlat:
    key_id: AnyHash
    permissions: tuple[OperatorPermission, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", tuple(self.permissions))  # a list would break ==/hash



@dataclass(frozen=True, slots=True)
class OperatorDefineNamespace:
    namespace: str


@dataclass(frozen=True, slots=True)
class OperatorImportNamespace:
    namespace: str
    registry: str


OperatorEntry = (
    OperatorInit | OperatorGrantFlat | OperatorRevokeFlat | OperatorDefineNamespace | OperatorImportNamespace
)


# ---- decoding helpers ----------------------------------------------------------------------------

_P = TypeVar("_P", PackagePermission, OperatorPermission)
_M = TypeVar("_M", pb.PackageRecord, pb.OperatorRecord)


def _parse_message(message: _M, content: bytes, what: str) -> _M:
    try:
        message.ParseFromString(content)
    except DecodeError as exc:
        raise WargFormatError(f"invalid {what}: {exc}") from None
    return message


def _decode_time(message: pb.PackageRecord | pb.OperatorRecord) -> RecordTime:
    """Required ``time``; nanos normalised as prost does; pre-epoch times are refused.

    A time before the epoch cannot be written in the state's ``<secs>.<nanos>``
    form, so it is treated as the reference's "invalid timestamp".
    """
    if not message.HasField("time"):
        raise WargFormatError("empty or invalid timestamp in record")
    seconds, nanos = message.time.seconds, message.time.nanos
    if nanos <= -_NANOS or nanos >= _NANOS:
        carry = abs(nanos) // _NANOS
        seconds += carry if nanos > 0 else -carry
        nanos = nanos - (carry if nanos > 0 else -carry) * _NANOS
    if nanos < 0:
        seconds -= 1
        nanos += _NANOS
    if seconds < 0:
        raise WargFormatError("empty or invalid timestamp in record")
    return RecordTime(seconds, nanos)


def _decode_prev(message: pb.PackageRecord | pb.OperatorRecord) -> AnyHash | None:
    return AnyHash.parse(message.prev) if message.HasField("prev") else None


def _decode_permissions(values: Iterable[int], numbers: Mapping[_P, int]) -> tuple[_P, ...]:
    by_number = {number: permission for permission, number in numbers.items()}
    out: list[_P] = []
    for value in values:
        permission = by_number.get(int(value))
        if permission is None:
            raise WargFormatError(f"the value {int(value)} could not be parsed as a permission")
        out.append(permission)
    return tuple(out)


def _decode_algorithm(text: str) -> str:
    if text != SHA256:
        raise WargFormatError(f"hash algorithm `{text}` is not supported")
    return text


def _decode_version(text: str) -> Version:
    return Version.parse(text)


def _set_time(message: pb.PackageRecord | pb.OperatorRecord, when: RecordTime) -> None:
    message.time.SetInParent()
    message.time.seconds = when.seconds
    message.time.nanos = when.nanos


def _numbers(permissions: Sequence[_P], numbers: Mapping[_P, int]) -> list[int]:
    return [numbers[p] for p in permissions]


# ---- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """A package log record (spec 3.1 ``PackageRecord``)."""

    prev: AnyHash | None
    version: int
    time: RecordTime
    entries: tuple[PackageEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))  # a list would break ==/hash

    @classmethod
    def decode(cls, content: bytes) -> PackageRecord:
        message = _parse_message(pb.PackageRecord(), content, "package record")
        prev = _decode_prev(message)
        when = _decode_time(message)
        return cls(prev, message.version, when, tuple(_decode_package_entry(e) for e in message.entries))

    def encode(self) -> bytes:
        message = pb.PackageRecord()
        if self.prev is not None:
            message.prev = str(self.prev)
        message.version = self.version
        _set_time(message, self.time)
        for entry in self.entries:
            _encode_package_entry(message.entries.add(), entry)
        return message.SerializeToString()


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """An operator log record (spec 3.1 ``OperatorRecord``)."""

    prev: AnyHash | None
    version: int
    time: RecordTime
    entries: tuple[OperatorEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))  # a list would break ==/hash

    @classmethod
    def decode(cls, content: bytes) -> OperatorRecord:
        message = _parse_message(pb.OperatorRecord(), content, "operator record")
        prev = _decode_prev(message)
        when = _decode_time(message)
        return cls(prev, message.version, when, tuple(_decode_operator_entry(e) for e in message.entries))

    def encode(self) -> bytes:
        message = pb.OperatorRecord()
        if self.prev is not None:
            message.prev = str(self.prev)
        message.version = self.version
        _set_time(message, self.time)
        for entry in self.entries:
            _encode_operator_entry(message.entries.add(), entry)
        return message.SerializeToString()


def _decode_package_entry(entry: pb.PackageEntry) -> PackageEntry:
    kind = entry.WhichOneof("contents")
    numbers = _PACKAGE_PERMISSION_NUMBERS
    if kind == "init":
        return PackageInit(PublicKey.parse(entry.init.key), _decode_algorithm(entry.init.hash_algorithm))
    if kind == "grant_flat":
        grant = entry.grant_flat
        return PackageGrantFlat(PublicKey.parse(grant.key), _decode_permissions(grant.permissions, numbers))
    if kind == "revoke_flat":
        revoke = entry.revoke_flat
        return PackageRevokeFlat(AnyHash.parse(revoke.key_id), _decode_permissions(revoke.permissions, numbers))
    if kind == "release":
        return PackageRelease(_decode_version(entry.release.version), AnyHash.parse(entry.release.content_hash))
    if kind == "yank":
        return PackageYank(_decode_version(entry.yank.version))
    raise WargFormatError("no content in entry")


def _encode_package_entry(out: pb.PackageEntry, entry: PackageEntry) -> None:
    numbers = _PACKAGE_PERMISSION_NUMBERS
    match entry:
        case PackageInit():
            out.init.SetInParent()
            out.init.key = str(entry.key)
            out.init.hash_algorithm = entry.hash_algorithm
        case PackageGrantFlat():
            out.grant_flat.SetInParent()
            out.grant_flat.key = str(entry.key)
            out.grant_flat.permissions.extend(_numbers(entry.permissions, numbers))  # type: ignore[arg-type]
        case PackageRevokeFlat():
            out.revoke_flat.SetInParent()
            out.revoke_flat.key_id = str(entry.key_id)
            out.revoke_flat.permissions.extend(_numbers(entry.permissions, numbers))  # type: ignore[arg-type]
        case PackageRelease():
            out.release.SetInParent()
            out.release.version = str(entry.version)
            out.release.content_hash = str(entry.content)
        case PackageYank():
            out.yank.SetInParent()
            out.yank.version = str(entry.version)


def _decode_operator_entry(entry: pb.OperatorEntry) -> OperatorEntry:
    kind = entry.WhichOneof("contents")
    numbers = _OPERATOR_PERMISSION_NUMBERS
    if kind == "init":
        return OperatorInit(PublicKey.parse(entry.init.key), _decode_algorithm(entry.init.hash_algorithm))
    if kind == "grant_flat":
        grant = entry.grant_flat
        return OperatorGrantFlat(PublicKey.parse(grant.key), _decode_permissions(grant.permissions, numbers))
    if kind == "revoke_flat":
        revoke = entry.revoke_flat
        return OperatorRevokeFlat(AnyHash.parse(revoke.key_id), _decode_permissions(revoke.permissions, numbers))
    if kind == "define_namespace":
        return OperatorDefineNamespace(entry.define_namespace.namespace)
    if kind == "import_namespace":
        return OperatorImportNamespace(entry.import_namespace.namespace, entry.import_namespace.registry)
    raise WargFormatError("no content in entry")


def _encode_operator_entry(out: pb.OperatorEntry, entry: OperatorEntry) -> None:
    numbers = _OPERATOR_PERMISSION_NUMBERS
    match entry:
        case OperatorInit():
            out.init.SetInParent()
            out.init.hash_algorithm = entry.hash_algorithm
            out.init.key = str(entry.key)
        case OperatorGrantFlat():
            out.grant_flat.SetInParent()
            out.grant_flat.key = str(entry.key)
            out.grant_flat.permissions.extend(_numbers(entry.permissions, numbers))  # type: ignore[arg-type]
        case OperatorRevokeFlat():
            out.revoke_flat.SetInParent()
            out.revoke_flat.key_id = str(entry.key_id)
            out.revoke_flat.permissions.extend(_numbers(entry.permissions, numbers))  # type: ignore[arg-type]
        case OperatorDefineNamespace():
            out.define_namespace.SetInParent()
            out.define_namespace.namespace = entry.namespace
        case OperatorImportNamespace():
            out.import_namespace.SetInParent()
            out.import_namespace.namespace = entry.namespace
            out.import_namespace.registry = entry.registry


# ---- envelope ------------------------------------------------------------------------------------


def _json_str(obj: Mapping[str, object], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise WargFormatError(f"envelope field `{name}` must be a string")
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    """Signed record bytes as they travel: ``contentBytes`` verbatim, the signer's key id, the signature.

    ``key_id`` is opaque (spec 1.3): it is only ever looked up, never parsed.
    """

    content_bytes: bytes
    key_id: str
    signature: Signature

    @classmethod
    def sign_package(cls, record: PackageRecord, key: PrivateKey) -> Envelope:
        content = record.encode()
        return cls(content, key.public_key.key_id, key.sign(PACKAGE_RECORD_PREFIX, content))

    @classmethod
    def sign_operator(cls, record: OperatorRecord, key: PrivateKey) -> Envelope:
        content = record.encode()
        return cls(content, key.public_key.key_id, key.sign(OPERATOR_RECORD_PREFIX, content))

    def to_json(self) -> dict[str, str]:
        return {
            "contentBytes": b64encode(self.content_bytes),
            "keyId": self.key_id,
            "signature": str(self.signature),
        }

    @classmethod
    def from_json(cls, obj: object) -> Envelope:
        if not isinstance(obj, Mapping):
            raise WargFormatError("envelope must be a JSON object")
        content = b64decode_strict(_json_str(obj, "contentBytes"), "contentBytes")
        return cls(content, _json_str(obj, "keyId"), Signature.parse(_json_str(obj, "signature")))

    def encode(self) -> bytes:
        """The storage protobuf ``warg.protocol.Envelope`` (never sent on the wire)."""
        message = pb.Envelope(contents=self.content_bytes, key_id=self.key_id, signature=str(self.signature))
        return message.SerializeToString()

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        message = pb.Envelope()
        try:
            message.ParseFromString(data)
        except DecodeError as exc:
            raise WargFormatError(f"invalid envelope: {exc}") from None
        return cls(message.contents, message.key_id, Signature.parse(message.signature))
