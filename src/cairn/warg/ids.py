"""Log ids, record ids and package names (specs/warg.md section 2).

Ids are hashes over fixed domain prefixes so that a package log id can never
collide with a record id or the operator log id. Record ids hash the content
bytes exactly as received, never a re-encoding, so they do not depend on the
signature or on how a peer's encoder orders fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import SHA256, AnyHash, pstr, sha256

__all__ = [
    "OPERATOR_LOG_ID",
    "PackageName",
    "is_kebab",
    "operator_record_id",
    "package_log_id",
    "package_record_id",
]

OPERATOR_LOG_ID = AnyHash(SHA256, sha256(b"WARG-OPERATOR-LOG-ID-V0"))

_KEBAB = re.compile(r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*")


def is_kebab(text: str) -> bool:
    """True for lowercase kebab words: every word starts with a letter, no empty words."""
    return _KEBAB.fullmatch(text) is not None


def package_log_id(name: str) -> AnyHash:
    """``H("WARG-PACKAGE-LOG-ID-V0:" || "WARG-PACKAGE-ID-V0" || pstr(name))`` over the exact name."""
    return AnyHash(SHA256, sha256(b"WARG-PACKAGE-LOG-ID-V0:", b"WARG-PACKAGE-ID-V0", pstr(name)))


def package_record_id(content: bytes) -> AnyHash:
    return AnyHash(SHA256, sha256(b"WARG-PACKAGE-LOG-RECORD-V0:", content))


def operator_record_id(content: bytes) -> AnyHash:
    return AnyHash(SHA256, sha256(b"WARG-OPERATOR-LOG-RECORD-V0:", content))


@dataclass(frozen=True, slots=True)
class PackageName:
    """``<namespace>:<name>``, split at the last ':', both halves lowercase kebab."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str) -> PackageName:
        namespace, sep, name = text.rpartition(":")
        if not sep:
            raise WargFormatError(f"invalid package name `{text}`: expected `<namespace>:<name>`")
        if not is_kebab(namespace):
            raise WargFormatError(f"invalid package name `{text}`: namespace `{namespace}` is not kebab case")
        if not is_kebab(name):
            raise WargFormatError(f"invalid package name `{text}`: name `{name}` is not kebab case")
        return cls(namespace, name)

    @property
    def log_id(self) -> AnyHash:
        return package_log_id(str(self))

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"
