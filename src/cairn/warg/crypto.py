"""ECDSA P-256 keys and signatures in Warg's text forms (specs/warg.md 1.3-1.4).

Keys and signatures travel as ``"ecdsa-p256:<base64>"``. Public keys are
accepted compressed or uncompressed but always displayed compressed, because the
key id is the hash of that display text: equality and hashing therefore go by
the compressed point. Every signed message is ``PREFIX || ":" || payload``; the
prefixes are the domain separators that stop a package-record signature from
being replayed as a checkpoint signature.

Signatures cairn makes are low-S and, where ``cryptography`` supports it,
RFC 6979 deterministic (DECISIONS warg 10): neither is needed by peers, but
deterministic bytes make tests and logs reproducible. Verification accepts
either S, as the reference does.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import b64decode_strict, b64encode

__all__ = [
    "CHECKPOINT_PREFIX",
    "KEY_ALGORITHM",
    "OPERATOR_RECORD_PREFIX",
    "PACKAGE_RECORD_PREFIX",
    "PrivateKey",
    "PublicKey",
    "Signature",
]

KEY_ALGORITHM = "ecdsa-p256"
PACKAGE_RECORD_PREFIX = b"WARG-PACKAGE-RECORD-SIGNATURE-V0"
OPERATOR_RECORD_PREFIX = b"WARG-OPERATOR-RECORD-SIGNATURE-V0"
CHECKPOINT_PREFIX = b"WARG-CHECKPOINT-SIGNATURE-V0"

_CURVE = ec.SECP256R1()
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _split(text: str, what: str) -> bytes:
    """Split ``"ecdsa-p256:<base64>"`` (exactly two ':' parts) and decode the base64 strictly."""
    parts = text.split(":")
    if len(parts) != 2:
        raise WargFormatError(f"invalid {what} `{text}`: expected `{KEY_ALGORITHM}:<base64>`")
    if parts[0] != KEY_ALGORITHM:
        raise WargFormatError(f"invalid {what} `{text}`: unsupported algorithm `{parts[0]}`")
    return b64decode_strict(parts[1], what)


def _message(prefix: bytes, payload: bytes) -> bytes:
    return prefix + b":" + payload


class PublicKey:
    """A P-256 public key; equal and hashed by its compressed SEC1 point."""

    __slots__ = ("_key", "_key_id", "_point")

    def __init__(self, key: ec.EllipticCurvePublicKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise WargFormatError("public key is not on P-256")
        self._key = key
        self._point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        self._key_id = "sha256:" + hashlib.sha256(str(self).encode("ascii")).hexdigest()

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """Parse the text form; compressed (33 bytes) or uncompressed (65 bytes) SEC1 only."""
        point = _split(text, "public key")
        shape_ok = (len(point) == 33 and point[0] in (2, 3)) or (len(point) == 65 and point[0] == 4)
        if not shape_ok:
            raise WargFormatError(f"invalid public key `{text}`: not a SEC1 P-256 point")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
        except ValueError:
            raise WargFormatError(f"invalid public key `{text}`: point is not on the curve") from None
        return cls(key)

    @property
    def compressed(self) -> bytes:
        """The 33-byte compressed SEC1 point."""
        return self._point

    @property
    def key_id(self) -> str:
        """``"sha256:" + hex(H(utf8(str(self))))``: the fingerprint over the compressed display text."""
        return self._key_id

    def verify(self, prefix: bytes, payload: bytes, signature: Signature) -> bool:
        """True if ``signature`` is valid over ``prefix || ":" || payload`` (high or low S)."""
        try:
            self._key.verify(signature.der, _message(prefix, payload), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def __str__(self) -> str:
        return f"{KEY_ALGORITHM}:{b64encode(self._point)}"

    def __repr__(self) -> str:
        return f"PublicKey({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._point == self._point

    def __hash__(self) -> int:
        return hash(self._point)


class PrivateKey:
    """A P-256 signing key, written as the base64 of its 32-byte big-endian scalar."""

    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise WargFormatError("private key is not on P-256")
        self._key = key

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(ec.generate_private_key(_CURVE))

    @classmethod
    def parse(cls, text: str) -> PrivateKey:
        scalar = _split(text, "private key")
        value = int.from_bytes(scalar, "big")
        if len(scalar) != 32 or not 0 < value < _ORDER:
            raise WargFormatError("invalid private key: not a 32-byte P-256 scalar")
        return cls(ec.derive_private_key(value, _CURVE))

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key())

    def sign(self, prefix: bytes, payload: bytes) -> Signature:
        """Sign ``prefix || ":" || payload``; low-S, RFC 6979 when the library offers it."""
        message = _message(prefix, payload)
        try:
            algorithm = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
            der = self._key.sign(message, algorithm)
        except (TypeError, ValueError, NotImplementedError):  # older cryptography / OpenSSL
            der = self._key.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        if s > _ORDER // 2:
            der = encode_dss_signature(r, _ORDER - s)
        return Signature(der)

    def __str__(self) -> str:
        scalar = self._key.private_numbers().private_value.to_bytes(32, "big")
        return f"{KEY_ALGORITHM}:{b64encode(scalar)}"

    def __repr__(self) -> str:
        return f"PrivateKey(<{self.public_key.key_id}>)"


class Signature:
    """A DER ECDSA signature; ``str()`` gives back exactly the text it was parsed from."""

    __slots__ = ("der",)

    def __init__(self, der: bytes) -> None:
        self.der = der

    @classmethod
    def parse(cls, text: str) -> Signature:
        """Strict parse: two ':' parts, canonical padded base64, valid DER with 0 < r, s < n."""
        der = _split(text, "signature")
        try:
            r, s = decode_dss_signature(der)
        except ValueError:
            raise WargFormatError(f"invalid signature `{text}`: not DER") from None
        if not (0 < r < _ORDER and 0 < s < _ORDER) or encode_dss_signature(r, s) != der:
            raise WargFormatError(f"invalid signature `{text}`: not a valid DER ECDSA signature")
        return cls(der)

    @property
    def is_low_s(self) -> bool:
        return decode_dss_signature(self.der)[1] <= _ORDER // 2

    def __str__(self) -> str:
        return f"{KEY_ALGORITHM}:{b64encode(self.der)}"

    def __repr__(self) -> str:
        return f"Signature({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)
