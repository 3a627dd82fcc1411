"""Directory signatures: ECDSA P-256 over the CID string, embedded keys, and the referrer encoding."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from cairn.core.errors import InvalidArgumentError
from cairn.directory.canonical import parse_json
from cairn.directory.records import PUBLIC_KEY_MEDIA_TYPE
from cairn.directory.signatures import (
    PEM_FILE_MEDIA_TYPE,
    Signature,
    embedded_public_key,
    generate_key,
    sign_cid,
    signature_from_referrer_blob,
    signature_manifest_annotations,
    signature_referrer_blob,
    verify_signature,
)

CID = "baeareig77vqcdozl2wyk6z3cscaj5q5fggi53aoh64fewkdiri3cdauyn4"
OTHER_CID = "baeareiax5cg3db5p2ywbnzo6x47gkj6nabv4aev4sc2rvaim3agc2ui7im"
NOW = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_key()


def _self_signed_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cairn test signer")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_generate_key_gives_pkcs8_and_spki_pem(keys: tuple[bytes, bytes]) -> None:
    private_pem, public_pem = keys
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    private = serialization.load_pem_private_key(private_pem, None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1)


def test_sign_and_verify_round_trip(keys: tuple[bytes, bytes]) -> None:
    private_pem, public_pem = keys
    signature = sign_cid(CID, private_pem, now=NOW)
    assert signature.algorithm == "ECDSA-P-256"
    assert signature.signed_at == "2026-01-02T03:04:05Z"
    assert signature.content_type == PUBLIC_KEY_MEDIA_TYPE
    assert signature.content_bundle == public_pem.decode()
    assert signature.certificate == "" and signature.annotations == {}
    verify_signature(CID, signature)  # embedded key
    verify_signature(CID, signature, public_pem)  # given key
    # It is a plain ECDSA/SHA-256 DER signature over the CID's ASCII bytes.
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(signature.signature), CID.encode("ascii"), ec.ECDSA(hashes.SHA256()))


def test_signed_at_is_utc(keys: tuple[bytes, bytes]) -> None:
    plus_two = timezone(timedelta(hours=2))
    assert (
        sign_cid(CID, keys[0], now=datetime(2026, 1, 2, 5, 0, tzinfo=plus_two)).signed_at
        == "2026-01-02T03:00:00Z"
    )
    assert sign_cid(CID, keys[0], now=datetime(2026, 1, 2, 5, 0)).signed_at == "2026-01-02T05:00:00Z"
    assert sign_cid(CID, keys[0]).signed_at.endswith("Z")


def test_other_spellings_of_the_cid_sign_the_canonical_one(keys: tuple[bytes, bytes]) -> None:
    upper = "B" + CID[1:].upper()
    signature = sign_cid(upper, keys[0])
    verify_signature(CID, signature)
    verify_signature(upper, signature)


def test_tampered_cid_or_signature_fails(keys: tuple[bytes, bytes]) -> None:
    signature = sign_cid(CID, keys[0])
    with pytest.raises(InvalidArgumentError, match=f"signature of record {OTHER_CID}: does not verify"):
        verify_signature(OTHER_CID, signature)
    raw = bytearray(base64.b64decode(signature.signature))
    raw[-1] ^= 1
    tampered = dataclasses.replace(signature, signature=base64.b64encode(bytes(raw)).decode())
    with pytest.raises(InvalidArgumentError, match="does not verify"):
        verify_signature(CID, tampered)


def test_wrong_key_fails(keys: tuple[bytes, bytes]) -> None:
    signature = sign_cid(CID, keys[0])
    _, other_public = generate_key()
    with pytest.raises(InvalidArgumentError, match="does not verify with the given public key"):
        verify_signature(CID, signature, other_public)
    # A signature whose embedded key was swapped for another does not verify either.
    swapped = dataclasses.replace(signature, content_bundle=other_public.decode())
    with pytest.raises(InvalidArgumentError, match="does not verify with the embedded public key"):
        verify_signature(CID, swapped)


def test_no_key_is_an_error(keys: tuple[bytes, bytes]) -> None:
    signature = sign_cid(CID, keys[0], embed_public_key=False)
    assert signature.content_type == "" and signature.content_bundle == ""
    assert embedded_public_key(signature) is None
    with pytest.raises(InvalidArgumentError, match="carries no public key or certificate"):
        verify_signature(CID, signature)
    verify_signature(CID, signature, keys[1])


@pytest.mark.parametrize("label", ["ECDSA-P-256", "ECDSA_P256_SHA256", ""])
def test_accepted_algorithm_labels(keys: tuple[bytes, bytes], label: str) -> None:
    verify_signature(CID, dataclasses.replace(sign_cid(CID, keys[0]), algorithm=label))


def test_unknown_algorithm_label_is_refused(keys: tuple[bytes, bytes]) -> None:
    signature = dataclasses.replace(sign_cid(CID, keys[0]), algorithm="SHA2_256")
    with pytest.raises(InvalidArgumentError, match="algorithm 'SHA2_256' is not supported"):
        verify_signature(CID, signature)


@pytest.mark.parametrize(("value", "reason"), [("", "is empty"), ("not base64!", "not valid base64")])
def test_bad_signature_encoding(keys: tuple[bytes, bytes], value: str, reason: str) -> None:
    signature = dataclasses.replace(sign_cid(CID, keys[0]), signature=value)
    with pytest.raises(InvalidArgumentError, match=reason):
        verify_signature(CID, signature)


def test_unpadded_base64_signature_is_accepted(keys: tuple[bytes, bytes]) -> None:
    signature = sign_cid(CID, keys[0])
    verify_signature(CID, dataclasses.replace(signature, signature=signature.signature.rstrip("=")))


def test_invalid_cid_is_refused(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidArgumentError, match="CID"):
        sign_cid("not-a-cid", keys[0])
    with pytest.raises(InvalidArgumentError, match="CID"):
        verify_signature("not-a-cid", sign_cid(CID, keys[0]))


def test_certificate_embedded_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )  # SEC1 ("EC PRIVATE KEY") is accepted as well as PKCS#8
    certificate = _self_signed_certificate(key)
    der = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    signature = dataclasses.replace(sign_cid(CID, private_pem, embed_public_key=False), certificate=der)
    embedded = embedded_public_key(signature)
    assert isinstance(embedded, ec.EllipticCurvePublicKey)
    assert embedded.public_numbers() == key.public_key().public_numbers()
    verify_signature(CID, signature)
    verify_signature(CID, dataclasses.replace(signature, certificate=pem))
    other = _self_signed_certificate(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(InvalidArgumentError, match="does not verify"):
        verify_signature(
            CID,
            dataclasses.replace(
                signature, certificate=other.public_bytes(serialization.Encoding.PEM).decode()
            ),
        )
    with pytest.raises(InvalidArgumentError, match=r"not a valid X\.509 certificate"):
        verify_signature(CID, dataclasses.replace(signature, certificate=base64.b64encode(b"junk").decode()))


def test_pem_file_content_type_carries_a_key(keys: tuple[bytes, bytes]) -> None:
    signature = dataclasses.replace(sign_cid(CID, keys[0]), content_type=PEM_FILE_MEDIA_TYPE)
    verify_signature(CID, signature)
    # A bundle of another content type is not read as a key.
    assert embedded_public_key(dataclasses.replace(signature, content_type="application/json")) is None
    with pytest.raises(InvalidArgumentError, match="not a valid public key"):
        embedded_public_key(dataclasses.replace(signature, content_bundle="-----BEGIN PUBLIC KEY-----\nxx\n"))


def test_non_p256_keys_are_refused(keys: tuple[bytes, bytes]) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    p384_pem = p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(
        InvalidArgumentError, match="only ECDSA P-256 keys are supported, not ECDSA secp384r1"
    ):
        sign_cid(CID, p384_pem)
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidArgumentError, match="only ECDSA P-256 keys are supported"):
        sign_cid(CID, ed_pem)
    signature = sign_cid(CID, keys[0])
    for public in (p384.public_key(), ed.public_key()):
        public_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(InvalidArgumentError, match="only ECDSA P-256 keys are supported"):
            verify_signature(CID, signature, public_pem)
        with pytest.raises(InvalidArgumentError, match="only ECDSA P-256 keys are supported"):
            verify_signature(CID, dataclasses.replace(signature, content_bundle=public_pem.decode()))


def test_encrypted_private_key() -> None:
    private_pem, public_pem = generate_key(password=b"secret")
    assert private_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    verify_signature(CID, sign_cid(CID, private_pem, b"secret"), public_pem)
    with pytest.raises(InvalidArgumentError, match="private key"):
        sign_cid(CID, private_pem)
    with pytest.raises(InvalidArgumentError, match="private key"):
        sign_cid(CID, private_pem, b"wrong")


@pytest.mark.parametrize(
    "pem", [b"", b"not a key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_bad_private_key(pem: bytes) -> None:
    with pytest.raises(InvalidArgumentError, match="private key"):
        sign_cid(CID, pem)


def test_bad_given_public_key(keys: tuple[bytes, bytes]) -> None:
    with pytest.raises(InvalidArgumentError, match="public key: not a valid public key"):
        verify_signature(CID, sign_cid(CID, keys[0]), b"garbage")


# --- referrers -----------------------------------------------------------------------------------

FIXED = Signature(
    annotations={"k": "v", "team": "a&b"},
    signed_at="2026-01-02T03:04:05Z",
    algorithm="ECDSA-P-256",
    signature="MEUCIQ==",
    content_type=PUBLIC_KEY_MEDIA_TYPE,
    content_bundle="-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n",
)


def test_referrer_blob_exact_form() -> None:
    blob = signature_referrer_blob(CID, FIXED, "2026-01-02T03:04:06Z")
    assert blob == (
        b'{"annotations":{"k":"v","team":"a\\u0026b"},"created_at":"2026-01-02T03:04:06Z",'
        b'"data":{"algorithm":"ECDSA-P-256","annotations":{"k":"v","team":"a\\u0026b"},'
        b'"contentBundle":"-----BEGIN PUBLIC KEY-----\\nabc\\n-----END PUBLIC KEY-----\\n",'
        b'"contentType":"application/vnd.agntcy.dir.sign.publickey.v1+pem",'
        b'"signature":"MEUCIQ==","signedAt":"2026-01-02T03:04:05Z"},'
        b'"record_ref":{"cid":"' + CID.encode() + b'"},"type":"agntcy.dir.sign.v1.Signature"}'
    )


def test_referrer_blob_omits_empty_fields() -> None:
    assert signature_referrer_blob("B" + CID[1:].upper(), Signature(), "") == (
        b'{"record_ref":{"cid":"' + CID.encode() + b'"},"type":"agntcy.dir.sign.v1.Signature"}'
    )


def test_referrer_blob_round_trip(keys: tuple[bytes, bytes]) -> None:
    for signature in (
        FIXED,
        Signature(),
        sign_cid(CID, keys[0]),
        dataclasses.replace(FIXED, certificate="QUJD"),
    ):
        blob = signature_referrer_blob(CID, signature, "2026-01-02T03:04:06Z")
        assert signature_from_referrer_blob(blob) == signature


def test_referrer_data_accepts_proto_field_names() -> None:
    blob = (
        b'{"type":"agntcy.dir.sign.v1.Signature","record_ref":{"cid":"' + CID.encode() + b'"},'
        b'"data":{"signed_at":"2026-01-02T03:04:05Z","content_type":"x","algorithm":"ECDSA-P-256"}}'
    )
    assert signature_from_referrer_blob(blob) == Signature(
        signed_at="2026-01-02T03:04:05Z", content_type="x", algorithm="ECDSA-P-256"
    )


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"not json", "invalid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"type":"agntcy.dir.sign.v1.PublicKey","data":{"key":"x"}}', "not 'agntcy.dir.sign.v1.Signature'"),
        (b'{"data":{}}', "type is None"),
        (b'{"type":"agntcy.dir.sign.v1.Signature","data":[]}', "data: must be a JSON object"),
        (b'{"type":"agntcy.dir.sign.v1.Signature","data":{"signature":1}}', "signature: must be a string"),
        (
            b'{"type":"agntcy.dir.sign.v1.Signature","data":{"annotations":{"a":1}}}',
            "object of string values",
        ),
    ],
)
def test_garbage_referrer_blobs_are_refused(blob: bytes, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=reason):
        signature_from_referrer_blob(blob)


def test_signature_manifest_annotations() -> None:
    assert signature_manifest_annotations("baeareiref", "2026-01-02T03:04:06Z", FIXED) == {
        "agntcy.dir.referrer.type": "agntcy.dir.sign.v1.Signature",
        "org.agntcy.dir/cid": "baeareiref",
        "agntcy.dir.referrer.created_at": "2026-01-02T03:04:06Z",
        "agntcy.dir.referrer.annotation.k": "v",
        "agntcy.dir.referrer.annotation.team": "a&b",
    }
    assert signature_manifest_annotations("baeareiref", "", Signature()) == {
        "agntcy.dir.referrer.type": "agntcy.dir.sign.v1.Signature",
        "org.agntcy.dir/cid": "baeareiref",
    }


def test_to_data_is_protojson() -> None:
    referrer = parse_json(signature_referrer_blob(CID, FIXED, ""))
    assert isinstance(referrer, dict)
    assert FIXED.to_data() == referrer["data"]
    assert Signature().to_data() == {}
    assert Signature.from_data(FIXED.to_data()) == FIXED
