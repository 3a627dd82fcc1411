"""Checkpoints and their signatures (specs/warg.md section 4).

A checkpoint commits to the registry log (length and root) and the map root.
Its byte forms are prefix encodings, not protobuf: ``Checkpoint`` bytes are only
a server-internal key (their hash is the checkpoint id), while the
``TimestampedCheckpoint`` bytes are what the operator key signs and what every
client re-derives from the JSON to verify that signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cairn.warg.crypto import CHECKPOINT_PREFIX, PrivateKey, PublicKey, Signature
from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import AnyHash, pstr, uleb

__all__ = ["Checkpoint", "SignedCheckpoint", "TimestampedCheckpoint"]


def _field(obj: Mapping[str, Any], name: str) -> Any:
    if name not in obj:
        raise WargFormatError(f"checkpoint field `{name}` is missing")
    return obj[name]


def _uint(obj: Mapping[str, Any], name: str) -> int:
    value: object = _field(obj, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WargFormatError(f"checkpoint field `{name}` must be a non-negative integer")
    return value


def _hash(obj: Mapping[str, Any], name: str) -> AnyHash:
    value: object = _field(obj, name)
    if not isinstance(value, str):
        raise WargFormatError(f"checkpoint field `{name}` must be a hash string")
    return AnyHash.parse32(value)


def _str(obj: Mapping[str, Any], name: str) -> str:
    value: object = _field(obj, name)
    if not isinstance(value, str):
        raise WargFormatError(f"checkpoint field `{name}` must be a string")
    return value


def _object(obj: object, what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise WargFormatError(f"{what} must be a JSON object")
    return obj


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Log length, log root and map root; ``id`` keys the server's checkpoint table."""

    log_length: int
    log_root: AnyHash
    map_root: AnyHash

    def encode(self) -> bytes:
        return (
            b"WARG-CHECKPOINT-V0"
            + uleb(self.log_length)
            + pstr(str(self.log_root))
            + pstr(str(self.map_root))
        )

    @property
    def id(self) -> AnyHash:
        return AnyHash.of(self.encode())


@dataclass(frozen=True, slots=True)
class TimestampedCheckpoint:
    """A checkpoint plus the whole seconds since the epoch at which it was signed."""

    log_length: int
    log_root: AnyHash
    map_root: AnyHash
    timestamp: int

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.log_length, self.log_root, self.map_root)

    def encode(self) -> bytes:
        return (
            b"WARG-TIMESTAMPED-CHECKPOINT-V0"
            + uleb(self.log_length)
            + pstr(str(self.log_root))
            + pstr(str(self.map_root))
            + uleb(self.timestamp)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "logRoot": str(self.log_root),
            "logLength": self.log_length,
            "mapRoot": str(self.map_root),
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_json(cls, obj: object) -> TimestampedCheckpoint:
        body = _object(obj, "checkpoint contents")
        return cls(_uint(body, "logLength"), _hash(body, "logRoot"), _hash(body, "mapRoot"), _uint(body, "timestamp"))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A timestamped checkpoint signed by an operator key holding ``commit``."""

    contents: TimestampedCheckpoint
    key_id: str
    signature: Signature

    @classmethod
    def sign(cls, contents: TimestampedCheckpoint, key: PrivateKey) -> SignedCheckpoint:
        return cls(contents, key.public_key.key_id, key.sign(CHECKPOINT_PREFIX, contents.encode()))

    def verify(self, key: PublicKey) -> bool:
        """True if the signature is ``key``'s over the timestamped bytes (the key id is not checked)."""
        return key.verify(CHECKPOINT_PREFIX, self.contents.encode(), self.signature)

    def to_json(self) -> dict[str, Any]:
        return {"contents": self.contents.to_json(), "keyId": self.key_id, "signature": str(self.signature)}

    @classmethod
    def from_json(cls, obj: object) -> SignedCheckpoint:
        body = _object(obj, "signed checkpoint")
        contents = TimestampedCheckpoint.from_json(_field(body, "contents"))
        return cls(contents, _str(body, "keyId"), Signature.parse(_str(body, "signature")))
