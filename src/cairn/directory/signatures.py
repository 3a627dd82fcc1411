"""Record signatures: ECDSA P-256 over the record's CID, and their storage as OCI referrers.

What is signed is the CID string's ASCII bytes, exactly the 59 characters of
the canonical form (specs/directory.md §9.1, current upstream; DECISIONS.md,
directory 10). The signature is ASN.1 DER ``(r, s)`` in standard padded base64,
``algorithm`` is written ``ECDSA-P-256`` and ``ECDSA_P256_SHA256`` (the proto
comment's spelling) or an empty label is accepted when verifying.

How a signature carries its public key: ``sign.v1.Signature`` has no key field,
so cairn puts the SubjectPublicKeyInfo PEM in ``content_bundle`` and sets
``content_type`` to :data:`~cairn.directory.records.PUBLIC_KEY_MEDIA_TYPE`
(``application/vnd.agntcy.dir.sign.publickey.v1+pem``, the media type upstream
gives public-key referrers). ``application/x-pem-file`` is read the same way,
and a ``certificate`` (base64 DER or PEM) supplies its subject key. Such an
embedded key proves only that the holder of that key signed these bytes: no
certificate chain, validity period or identity is checked here. Callers that
need to trust a signer pass the expected public key to
:func:`verify_signature`.

A signature is stored as a ``RecordReferrer`` blob (§9.3): the canonical JSON of
``{type, record_ref: {cid}, annotations, created_at, data}`` where ``data`` is the
protojson of the signature (camelCase keys) and empty fields are left out.

Only P-256 keys are supported, for signing and for verifying. This module is
not for Sigstore bundles, Fulcio, Rekor or cosign key files.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from cairn.core.cid import normalise_cid
from cairn.core.errors import InvalidArgumentError
from cairn.directory.canonical import canonical_json, parse_json
from cairn.directory.records import (
    KEY_CID,
    PUBLIC_KEY_MEDIA_TYPE,
    REFERRER_ANNOTATION_PREFIX,
    REFERRER_CREATED_AT_KEY,
    REFERRER_TYPE_KEY,
    SIGNATURE_MEDIA_TYPE,
    SIGNATURE_REFERRER_TYPE,
)

__all__ = [
    "ACCEPTED_ALGORITHMS",
    "PEM_FILE_MEDIA_TYPE",
    "SIGNATURE_ALGORITHM",
    "SIGNATURE_MEDIA_TYPE",
    "Signature",
    "embedded_public_key",
    "generate_key",
    "sign_cid",
    "signature_from_referrer_blob",
    "signature_manifest_annotations",
    "signature_referrer_blob",
    "verify_signature",
]

#: The ``algorithm`` label cairn writes (upstream's spelling).
SIGNATURE_ALGORITHM = "ECDSA-P-256"
#: Labels accepted when verifying; the label is informational, the key decides.
ACCEPTED_ALGORITHMS = frozenset({"", SIGNATURE_ALGORITHM, "ECDSA_P256_SHA256"})
# SIGNATURE_MEDIA_TYPE (the referrer blob's media type) is re-exported from records for callers here.
#: A generic PEM media type, also read as carrying a public key in ``content_bundle``.
PEM_FILE_MEDIA_TYPE = "application/x-pem-file"

_KEY_MEDIA_TYPES = frozenset({PUBLIC_KEY_MEDIA_TYPE, PEM_FILE_MEDIA_TYPE})
# sign.v1.Signature's string fields: (protojson name, proto name = attribute); annotations apart.
_STRING_FIELDS = (
    ("signedAt", "signed_at"),
    ("algorithm", "algorithm"),
    ("signature", "signature"),
    ("certificate", "certificate"),
    ("contentType", "content_type"),
    ("contentBundle", "content_bundle"),
)


@dataclass(frozen=True)
class Signature:
    """The seven fields of ``sign.v1.Signature``; empty string means unset."""

    annotations: dict[str, str] = field(default_factory=dict, hash=False)
    signed_at: str = ""
    algorithm: str = ""
    signature: str = ""
    certificate: str = ""
    content_type: str = ""
    content_bundle: str = ""

    def to_data(self) -> dict[str, object]:
        """The protojson object form (camelCase keys, empty fields omitted)."""
        out: dict[str, object] = {}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        for json_name, attribute in _STRING_FIELDS:
            value = getattr(self, attribute)
            if value:
                out[json_name] = value
        return out

    @classmethod
    def from_data(cls, data: object, where: str = "signature") -> Signature:
        """Parse the protojson object form (camelCase or proto field names, as protojson accepts)."""
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"{where}: must be a JSON object")
        values: dict[str, str] = {}
        for json_name, attribute in _STRING_FIELDS:
            value = data.get(json_name, data.get(attribute))
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidArgumentError(f"{where}.{json_name}: must be a string")
            values[attribute] = value
        annotations = data.get("annotations")
        if annotations is None:
            annotations = {}
        if not isinstance(annotations, Mapping) or not all(
            isinstance(value, str) for value in annotations.values()
        ):
            raise InvalidArgumentError(f"{where}.annotations: must be an object of string values")
        return cls(
            annotations=dict(annotations),
            signed_at=values.get("signed_at", ""),
            algorithm=values.get("algorithm", ""),
            signature=values.get("signature", ""),
            certificate=values.get("certificate", ""),
            content_type=values.get("content_type", ""),
            content_bundle=values.get("content_bundle", ""),
        )


def generate_key(password: bytes | None = None) -> tuple[bytes, bytes]:
    """A new P-256 key pair: (PKCS#8 private key PEM, SubjectPublicKeyInfo public key PEM).

    With ``password`` the private key PEM is encrypted with it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return private_pem, _public_pem(key.public_key())


def sign_cid(
    cid: str,
    private_key_pem: bytes,
    password: bytes | None = None,
    *,
    embed_public_key: bool = True,
    now: datetime | None = None,
) -> Signature:
    """Sign the canonical spelling of ``cid`` with a P-256 private key (PEM, PKCS#8 or SEC1).

    ``signed_at`` is ``now`` (default: the current time) in UTC, RFC 3339 with
    ``Z``. With ``embed_public_key`` the public key PEM travels in
    ``content_bundle`` (see the module docstring), so the signature verifies
    without a separately supplied key.
    """
    payload = normalise_cid(cid).encode("ascii")
    key = _load_private_key(private_key_pem, password)
    der = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Signature(
        signed_at=moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        algorithm=SIGNATURE_ALGORITHM,
        signature=base64.b64encode(der).decode("ascii"),
        content_type=PUBLIC_KEY_MEDIA_TYPE if embed_public_key else "",
        content_bundle=_public_pem(key.public_key()).decode("ascii") if embed_public_key else "",
    )


def embedded_public_key(signature: Signature) -> PublicKeyTypes | None:
    """The public key a signature carries: its certificate's, else a PEM key in ``content_bundle``.

    ``None`` when it carries neither. A malformed certificate or key raises
    :class:`InvalidArgumentError`. The key is returned whatever its type;
    :func:`verify_signature` is where non-P-256 keys are refused.
    """
    if signature.certificate:
        return _certificate_key(signature.certificate)
    media_type = signature.content_type.split(";", 1)[0].strip().lower()
    if signature.content_bundle and media_type in _KEY_MEDIA_TYPES:
        return _bundle_key(signature.content_bundle)
    return None


def verify_signature(cid: str, signature: Signature, public_key_pem: bytes | None = None) -> None:
    """Check ``signature`` over the canonical spelling of ``cid``; raise InvalidArgumentError if it fails.

    The key is ``public_key_pem`` (a SubjectPublicKeyInfo PEM) when given, else
    the one the signature embeds. Errors name the reason: no key, a key that is
    not P-256, an unknown ``algorithm`` label, bad base64, or a signature that
    does not verify.
    """
    payload = normalise_cid(cid)
    if signature.algorithm not in ACCEPTED_ALGORITHMS:
        accepted = ", ".join(repr(label) for label in sorted(ACCEPTED_ALGORITHMS) if label)
        raise InvalidArgumentError(
            f"signature of record {payload}: algorithm {signature.algorithm!r} is not supported "
            f"(accepted: {accepted}, or empty)"
        )
    key: PublicKeyTypes | None
    if public_key_pem is not None:
        key = _load_public_key(public_key_pem, "public key")
    else:
        key = embedded_public_key(signature)
        if key is None:
            raise InvalidArgumentError(
                f"signature of record {payload}: carries no public key or certificate, and no key was given"
            )
    verifier = _p256_public(key, f"signature of record {payload}")
    raw = _b64decode(signature.signature, f"signature of record {payload}: signature")
    try:
        verifier.verify(raw, payload.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        source = "embedded" if public_key_pem is None else "given"
        raise InvalidArgumentError(
            f"signature of record {payload}: does not verify with the {source} public key"
        ) from None


def signature_referrer_blob(record_cid: str, signature: Signature, created_at: str) -> bytes:
    """The canonical ``RecordReferrer`` JSON that stores ``signature`` for ``record_cid`` (§9.3).

    Its CID (``cid_of_bytes``) is the referrer's id. The referrer's annotations
    are the signature's.
    """
    referrer: dict[str, object] = {
        "type": SIGNATURE_REFERRER_TYPE,
        "record_ref": {"cid": normalise_cid(record_cid)},
    }
    if signature.annotations:
        referrer["annotations"] = dict(signature.annotations)
    if created_at:
        referrer["created_at"] = created_at
    data = signature.to_data()
    if data:
        referrer["data"] = data
    return canonical_json(referrer)


def signature_from_referrer_blob(data: bytes) -> Signature:
    """The signature in a referrer blob made by :func:`signature_referrer_blob` (or upstream).

    Raises :class:`InvalidArgumentError` for anything that is not a signature referrer.
    """
    value = parse_json(data)
    if not isinstance(value, dict):
        raise InvalidArgumentError("signature referrer: must be a JSON object")
    kind = value.get("type")
    if kind != SIGNATURE_REFERRER_TYPE:
        raise InvalidArgumentError(f"signature referrer: type is {kind!r}, not {SIGNATURE_REFERRER_TYPE!r}")
    return Signature.from_data(value.get("data", {}), "signature referrer.data")


def signature_manifest_annotations(
    referrer_cid: str, created_at: str, signature: Signature
) -> dict[str, str]:
    """The annotations of a signature referrer's manifest (§9.3); ``created_at`` is left out when empty."""
    out = {REFERRER_TYPE_KEY: SIGNATURE_REFERRER_TYPE, KEY_CID: referrer_cid}
    if created_at:
        out[REFERRER_CREATED_AT_KEY] = created_at
    for key, value in signature.annotations.items():
        out[REFERRER_ANNOTATION_PREFIX + key] = value
    return out


def _public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_private_key(pem: bytes, password: bytes | None) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise InvalidArgumentError(f"private key: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgumentError(
            f"private key: cannot be loaded (bad PEM or wrong password): {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidArgumentError(f"private key: only ECDSA P-256 keys are supported, not {_key_kind(key)}")
    return key


def _load_public_key(data: bytes, where: str) -> PublicKeyTypes:
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgumentError(f"{where}: not a valid public key ({exc})") from None


def _bundle_key(bundle: str) -> PublicKeyTypes:
    if "-----BEGIN" in bundle:
        return _load_public_key(bundle.encode("utf-8"), "signature content_bundle")
    return _load_public_key(_b64decode(bundle, "signature content_bundle"), "signature content_bundle")


def _certificate_key(certificate: str) -> PublicKeyTypes:
    try:
        if "-----BEGIN" in certificate:
            cert = x509.load_pem_x509_certificate(certificate.encode("utf-8"))
        else:
            cert = x509.load_der_x509_certificate(_b64decode(certificate, "signature certificate"))
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidArgumentError(f"signature certificate: not a valid X.509 certificate ({exc})") from None


def _p256_public(key: PublicKeyTypes, where: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidArgumentError(f"{where}: only ECDSA P-256 keys are supported, not {_key_kind(key)}")
    return key


def _key_kind(key: object) -> str:
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return f"ECDSA {key.curve.name}"
    return type(key).__name__.lstrip("_")


def _b64decode(text: str, where: str) -> bytes:
    """Standard-alphabet base64, padded or not, surrounding whitespace ignored."""
    stripped = "".join(text.split())
    if not stripped:
        raise InvalidArgumentError(f"{where}: is empty")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(f"{where}: not valid base64") from None
