"""CIDs for Directory records, and their one-to-one mapping onto sha256 digests.

A record's CID is ``b`` + base32-lower(``01 01 12 20`` + sha256 digest): CIDv1,
content codec 0x01, multihash sha2-256 of length 32 (specs/directory.md §2.2).
That form is always 59 characters and starts with ``baearei``. Because the CID
carries nothing but the digest, the store names records by their sha256 digest
internally and converts at the edge; :func:`digest_to_cid` and
:func:`cid_to_digest` are a bijection between digests and *canonical* CIDs.

Decoding is lenient like upstream's go-cid (DECISIONS.md, directory 8): any
reasonable multibase (base32 ``b``/``B``/``c``/``C``, base58btc ``z``, base16
``f``/``F``, base64 ``m``/``M``/``u``/``U``), any content codec, and CIDv0
(``Qm...``) are accepted as long as the multihash is sha2-256 of length 32, and
:func:`normalise_cid` maps them all onto the canonical ``baearei...`` string.
Everything else (other hash functions, truncated or trailing bytes, non-minimal
varints) is refused with :class:`InvalidArgumentError` naming the CID and the
reason.

Base58 decoding is written here by hand: it is a dozen lines over Python's big
integers, and a multiformats dependency would bring far more surface (and
another release train to follow) than the one alphabet cairn needs for CIDv0.

This module is not for other multihash functions or for CIDs of arbitrary IPLD
data; it knows exactly the shape Directory records use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError

__all__ = ["CID_PREFIX", "cid_of_bytes", "cid_to_digest", "digest_to_cid", "normalise_cid"]

#: CID version 1, codec 0x01, multihash sha2-256 (0x12), digest length 32 (0x20).
CID_PREFIX = b"\x01\x01\x12\x20"

_SHA2_256 = 0x12
_DIGEST_LENGTH = 32
# A CIDv1 here is at most a few varints plus 32 bytes; even base16 of that fits
# well under this, and refusing longer input keeps base58's big-integer work small.
_MAX_TEXT = 256
_VARINT_MAX_BYTES = 9  # multiformats unsigned-varint: at most 63 bits
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}

# The canonical form is "baearei" (multibase "b" plus the first 30 bits of the prefix) and 52
# base32 digits holding the prefix's last two bits (zero), the 256 digest bits and two zero
# padding bits. base64.b32encode/b32decode are pure Python and cost microseconds per call, so
# the canonical form is converted through Python's integers instead: int() reads base32 once
# the RFC 4648 alphabet is mapped onto the digits int() uses (0-9a-v).
_CANONICAL_HEAD = "baearei"
_CANONICAL = re.compile(r"baearei[a-z2-7]{52}")
_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_B32_TO_INT_DIGITS = str.maketrans(_B32_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_B32_PAIRS = [first + second for first in _B32_ALPHABET for second in _B32_ALPHABET]
_PAIR_SHIFTS = range(250, -1, -10)


def cid_of_bytes(data: bytes | bytearray | memoryview) -> str:
    """The canonical CID of ``data`` (SHA-256, then the fixed prefix, then base32)."""
    if len(data) == 0:
        raise InvalidArgumentError("cannot compute a CID of empty data")
    return _encode_hex(hashlib.sha256(data).hexdigest())


def digest_to_cid(digest: Digest) -> str:
    """The canonical CID naming the same bytes as ``digest`` (sha256 only)."""
    if digest.algorithm != "sha256":
        raise InvalidArgumentError(
            f"digest {digest}: only sha256 digests have a CID ({digest.algorithm} is not supported)"
        )
    return _encode_hex(digest.hex)


def cid_to_digest(cid: str) -> Digest:
    """The sha256 digest a CID names, from any accepted spelling of the CID."""
    if isinstance(cid, str) and _CANONICAL.fullmatch(cid):
        number = int(cid[7:].translate(_B32_TO_INT_DIGITS), 32)
        if number & 3 == 0 and number >> 258 == 0:
            return Digest("sha256", format(number >> 2, "064x"))
    return Digest("sha256", _decode(cid).hex())


@functools.lru_cache(maxsize=4096)
def normalise_cid(cid: str) -> str:
    """The canonical ``baearei...`` spelling of ``cid`` (raises InvalidArgumentError if invalid)."""
    # Cached: the same CID comes back on every Lookup/Pull of a popular record.
    return _encode_hex(cid_to_digest(cid).hex)


def _encode_hex(hex_digest: str) -> str:
    """The canonical CID of a sha256 digest given as 64 hex digits."""
    number = int(hex_digest, 16) << 2
    pairs = _B32_PAIRS
    return _CANONICAL_HEAD + "".join([pairs[(number >> shift) & 0x3FF] for shift in _PAIR_SHIFTS])


def _invalid(cid: str, reason: str) -> InvalidArgumentError:
    shown = cid if len(cid) <= 80 else cid[:77] + "..."
    return InvalidArgumentError(f"CID {shown!r}: {reason}")


def _decode(cid: str) -> bytes:
    """The 32-byte sha2-256 digest inside ``cid``."""
    if not isinstance(cid, str) or not cid:
        raise InvalidArgumentError("CID is empty")
    if len(cid) > _MAX_TEXT:
        raise _invalid(cid, f"longer than {_MAX_TEXT} characters")
    if not cid.isascii():
        raise _invalid(cid, "contains non-ASCII characters")
    if len(cid) == 46 and cid.startswith("Qm"):
        # CIDv0: a bare base58btc multihash with no multibase prefix.
        return _multihash_digest(cid, _base58_decode(cid, cid))
    data = _multibase_decode(cid)
    if len(data) == 34 and data[0] == _SHA2_256 and data[1] == _DIGEST_LENGTH:
        # A CIDv0 multihash under a multibase prefix; go-cid accepts it too.
        return _multihash_digest(cid, data)
    version, offset = _varint(cid, data, 0, "CID version")
    if version != 1:
        raise _invalid(cid, f"unsupported CID version {version}")
    _codec, offset = _varint(cid, data, offset, "content codec")
    return _multihash_digest(cid, data[offset:])


def _multihash_digest(cid: str, multihash: bytes) -> bytes:
    function, offset = _varint(cid, multihash, 0, "multihash function")
    if function != _SHA2_256:
        raise _invalid(cid, f"multihash function 0x{function:x} is not sha2-256 (0x12)")
    length, offset = _varint(cid, multihash, offset, "multihash length")
    if length != _DIGEST_LENGTH:
        raise _invalid(cid, f"sha2-256 digest length {length}, want 32")
    remaining = len(multihash) - offset
    if remaining < _DIGEST_LENGTH:
        raise _invalid(cid, f"digest is truncated ({remaining} of 32 bytes)")
    if remaining > _DIGEST_LENGTH:
        raise _invalid(cid, f"{remaining - _DIGEST_LENGTH} trailing bytes after the digest")
    return multihash[offset:]


def _varint(cid: str, data: bytes, offset: int, what: str) -> tuple[int, int]:
    """Decode one unsigned LEB128 varint (minimal encoding, at most 9 bytes) at ``offset``."""
    value = 0
    for index in range(_VARINT_MAX_BYTES):
        position = offset + index
        if position >= len(data):
            raise _invalid(cid, f"truncated varint for the {what}")
        byte = data[position]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if byte == 0 and index > 0:
                raise _invalid(cid, f"non-minimal varint for the {what}")
            return value, position + 1
    raise _invalid(cid, f"varint for the {what} is longer than {_VARINT_MAX_BYTES} bytes")


def _multibase_decode(cid: str) -> bytes:
    prefix, body = cid[0], cid[1:]
    if not body:
        raise _invalid(cid, "no data after the multibase prefix")
    try:
        if prefix in "bc":
            if body != body.lower():
                raise _invalid(cid, "base32 (lower-case) CID contains upper-case characters")
            return _base32(cid, body.upper(), padded=prefix == "c")
        if prefix in "BC":
            if body != body.upper():
                raise _invalid(cid, "base32 (upper-case) CID contains lower-case characters")
            return _base32(cid, body, padded=prefix == "C")
        if prefix == "z":
            return _base58_decode(cid, body)
        if prefix == "f":
            return _base16(cid, body, "0123456789abcdef")
        if prefix == "F":
            return _base16(cid, body, "0123456789ABCDEF")
        if prefix in "mM":
            return _base64(cid, body, padded=prefix == "M", url=False)
        if prefix in "uU":
            return _base64(cid, body, padded=prefix == "U", url=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid(cid, f"invalid multibase {prefix!r} encoding ({exc})") from None
    raise _invalid(cid, f"unsupported multibase prefix {prefix!r}")


def _base32(cid: str, body: str, *, padded: bool) -> bytes:
    if padded:
        if len(body) % 8:
            raise _invalid(cid, "padded base32 length is not a multiple of 8")
    else:
        if "=" in body:
            raise _invalid(cid, "unpadded base32 contains '='")
        body += "=" * (-len(body) % 8)
    return base64.b32decode(body)


def _base16(cid: str, body: str, alphabet: str) -> bytes:
    if len(body) % 2 or any(char not in alphabet for char in body):
        raise _invalid(cid, "invalid base16 digits")
    return bytes.fromhex(body)


def _base64(cid: str, body: str, *, padded: bool, url: bool) -> bytes:
    if padded:
        if len(body) % 4:
            raise _invalid(cid, "padded base64 length is not a multiple of 4")
    else:
        if "=" in body:
            raise _invalid(cid, "unpadded base64 contains '='")
        body += "=" * (-len(body) % 4)
    if url:
        if "+" in body or "/" in body:
            raise _invalid(cid, "base64url contains '+' or '/'")
        body = body.replace("-", "+").replace("_", "/")
    return base64.b64decode(body, validate=True)


def _base58_decode(cid: str, body: str) -> bytes:
    number = 0
    for char in body:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise _invalid(cid, f"invalid base58btc character {char!r}")
        number = number * 58 + digit
    zeros = len(body) - len(body.lstrip("1"))
    return b"\x00" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")
