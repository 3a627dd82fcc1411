"""Hash strings and the prefix-encoding primitives of specs/warg.md section 1.

``AnyHash`` is the ``"sha256:<hex>"`` text form that every Warg id, record id and
root travels as. The parser is deliberately stricter than a generic hex decoder
(uppercase digits are rejected) because the text itself is hashed in log leaves
and compared as a string by peers, so two spellings of one digest must not both
be accepted.

``uleb``/``pstr``/``sha256`` are the building blocks of the "VisitBytes" prefix
encoding used by every structured hash and signature. The strict base64 helpers
live here too: keys, signatures and envelopes all need the same canonical form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cairn.warg.errors import WargFormatError

__all__ = ["SHA256", "AnyHash", "b64decode_strict", "b64encode", "pstr", "sha256", "uleb"]

SHA256 = "sha256"
_HEX_DIGITS = frozenset("0123456789abcdef")


def uleb(n: int) -> bytes:
    """Unsigned LEB128 of ``n`` (the integer form of the prefix encoding)."""
    if n < 0:
        raise ValueError(f"uleb of a negative number: {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pstr(s: str) -> bytes:
    """``uleb(len(utf8(s))) || utf8(s)``: how a string field enters a prefix encoding."""
    data = s.encode("utf-8")
    return uleb(len(data)) + data


def sha256(*parts: bytes) -> bytes:
    """Raw 32-byte SHA-256 of the concatenation of ``parts`` (no copy of the joined bytes)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, the only form Warg emits."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, what: str = "base64") -> bytes:
    """Decode standard padded base64 and insist the text is the canonical encoding.

    Re-encoding and comparing rejects missing or extra padding, whitespace, the
    URL-safe alphabet and non-zero trailing bits in one check, which is what the
    reference's base64 engine does.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise WargFormatError(f"invalid {what}: {exc}") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise WargFormatError(f"invalid {what}: not canonical padded base64")
    return data


@dataclass(frozen=True, slots=True)
class AnyHash:
    """A digest with its algorithm; ``str()`` is the ``"<algo>:<hex>"`` wire form."""

    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> AnyHash:
        """Parse ``"<algo>:<hex>"``: split at the first ':', only sha256, lowercase hex only.

        The length is not checked here (spec 1.1); use ``parse32`` for ids and roots.
        """
        algorithm, sep, hex_text = text.partition(":")
        if not sep:
            raise WargFormatError(f"hash `{text}` has no algorithm prefix")
        if algorithm != SHA256:
            raise WargFormatError(f"hash algorithm `{algorithm}` is not supported")
        if len(hex_text) % 2 or not _HEX_DIGITS.issuperset(hex_text):
            raise WargFormatError(f"hash `{text}` is not lowercase hexadecimal")
        return cls(algorithm, bytes.fromhex(hex_text))

    @classmethod
    def parse32(cls, text: str) -> AnyHash:
        """Like ``parse`` but also require a 32-byte digest (log ids, record ids, roots)."""
        value = cls.parse(text)
        if len(value.digest) != 32:
            raise WargFormatError(f"hash `{text}` is not 32 bytes long")
        return value

    @classmethod
    def of(cls, data: bytes) -> AnyHash:
        """The sha256 content digest of ``data``."""
        return cls(SHA256, hashlib.sha256(data).digest())

    @property
    def hex(self) -> str:
        return self.digest.hex()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.digest.hex()}"

    def __repr__(self) -> str:
        return f"AnyHash({str(self)!r})"
