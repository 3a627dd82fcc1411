"""Warg primitives: hash strings, prefix encoding, keys, signatures, ids, names, SemVer (spec 1-2)."""

from __future__ import annotations

import base64
import hashlib
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.errors import InvalidArgumentError
from cairn.warg.crypto import (
    CHECKPOINT_PREFIX,
    OPERATOR_RECORD_PREFIX,
    PACKAGE_RECORD_PREFIX,
    PrivateKey,
    PublicKey,
    Signature,
)
from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import AnyHash, b64decode_strict, pstr, sha256, uleb
from cairn.warg.ids import (
    OPERATOR_LOG_ID,
    PackageName,
    is_kebab,
    operator_record_id,
    package_log_id,
    package_record_id,
)
from cairn.warg.semver import Version
from tests.unit.warg_vectors import load

ALICE_PRIVATE = "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk="
ALICE_PUBLIC = "ecdsa-p256:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF"
ALICE_ID = "sha256:d6d9b4cd077a829c0275233bf3843c8294e250dfcc82b8ea15745e92982a820d"
BOB_PRIVATE = "ecdsa-p256:2CV1EpLaSYEn4In4OAEDAj5O4Hzu8AFAxgHXuG310Ew="
BOB_PUBLIC = "ecdsa-p256:A5qc6uBi070EBb4GihGzpx6Cm5+oZnv4dWpBhhuZVagu"
BOB_ID = "sha256:8ed824821ce75c381458f8097996ab77780550ba7fb9c240e4799bb781941abb"
THIRD_PUBLIC = "ecdsa-p256:A4yBQt9Im8xnO9Sr9PT7OrOUQP8Olijcq1dPwtdTpigm"
THIRD_ID = "sha256:8225e770ee82a8a974c7732b9ca246d70b1f03dc9dbd25f5801c5cb455dee508"
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# ---- AnyHash and prefix encoding -----------------------------------------------------------------


def test_content_digest_vectors() -> None:
    fox = AnyHash.of(b"The quick brown fox jumped over the lazy dog")
    assert str(fox) == "sha256:7d38b5cd25a2baf85ad3bb5b9311383e671a8a142eb302b324d4a5fba8748c69"
    assert str(AnyHash.of(b"")) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert len(str(fox)) == 71 and pstr(str(fox))[0] == 0x47
    assert fox.hex == fox.digest.hex() and fox.algorithm == "sha256"


def test_anyhash_round_trip_and_equality() -> None:
    text = "sha256:" + "ab" * 32
    value = AnyHash.parse(text)
    assert str(value) == text and value == AnyHash.parse32(text) and hash(value) == hash(AnyHash.parse(text))


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "AB" * 32,  # uppercase hex
        "sha256:" + "aB" * 32,  # any uppercase digit
        "sha512:" + "ab" * 32,  # unknown algorithm
        "SHA256:" + "ab" * 32,
        "sha256" + "ab" * 32,  # no ':'
        "sha256:abc",  # odd length
        "sha256:zz",
        "sha256:ab:cd",  # split at the first ':' leaves "ab:cd" as the hex
        "sha256: ab",
    ],
)
def test_anyhash_rejects(text: str) -> None:
    with pytest.raises(WargFormatError):
        AnyHash.parse(text)


def test_anyhash_length_only_checked_by_parse32() -> None:
    assert AnyHash.parse("sha256:abcd").digest == b"\xab\xcd"
    assert AnyHash.parse("sha256:").digest == b""
    with pytest.raises(WargFormatError):
        AnyHash.parse32("sha256:abcd")


def test_errors_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError):
        AnyHash.parse("nope")


def test_uleb_and_pstr() -> None:
    assert uleb(0) == b"\x00" and uleb(127) == b"\x7f" and uleb(128) == b"\x80\x01"
    assert uleb(300) == b"\xac\x02" and uleb(16384) == b"\x80\x80\x01"
    assert pstr("") == b"\x00" and pstr("é") == b"\x02\xc3\xa9"
    assert sha256(b"a", b"b") == hashlib.sha256(b"ab").digest()
    with pytest.raises(ValueError):
        uleb(-1)


def _uleb_decode(data: bytes) -> tuple[int, int]:
    value = shift = 0
    for i, byte in enumerate(data):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i + 1
    raise AssertionError("unterminated")


@given(st.integers(min_value=0, max_value=2**70))
def test_uleb_round_trip(n: int) -> None:
    data = uleb(n)
    assert _uleb_decode(data) == (n, len(data))
    assert all(b & 0x80 for b in data[:-1]) and not data[-1] & 0x80
    assert len(data) == max(1, -(-n.bit_length() // 7))


def test_strict_base64() -> None:
    assert b64decode_strict("YQ==") == b"a"
    for bad in ["YQ", "YQ=", "YR==", "Y Q==", "YQ==\n", "_-8=", "Zm9v!"]:
        with pytest.raises(WargFormatError):
            b64decode_strict(bad)


# ---- keys ----------------------------------------------------------------------------------------


def test_key_vectors() -> None:
    alice = PrivateKey.parse(ALICE_PRIVATE)
    assert str(alice) == ALICE_PRIVATE
    assert str(alice.public_key) == ALICE_PUBLIC and alice.public_key.key_id == ALICE_ID
    bob = PrivateKey.parse(BOB_PRIVATE)
    assert str(bob.public_key) == BOB_PUBLIC and bob.public_key.key_id == BOB_ID
    assert PublicKey.parse(THIRD_PUBLIC).key_id == THIRD_ID
    assert PublicKey.parse(ALICE_PUBLIC).key_id == "sha256:" + hashlib.sha256(ALICE_PUBLIC.encode()).hexdigest()


def test_uncompressed_key_is_accepted_and_displayed_compressed() -> None:
    from cryptography.hazmat.primitives import serialization

    alice = PublicKey.parse(ALICE_PUBLIC)
    point = alice._key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert len(point) == 65
    uncompressed = PublicKey.parse("ecdsa-p256:" + base64.b64encode(point).decode())
    assert uncompressed == alice and hash(uncompressed) == hash(alice)
    assert str(uncompressed) == ALICE_PUBLIC and uncompressed.key_id == ALICE_ID


@pytest.mark.parametrize(
    "text",
    [
        "A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF",  # no algorithm
        "ecdsa-p384:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF",
        "ecdsa-p256:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF:x",  # three parts
        "ecdsa-p256:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87A",  # bad base64
        "ecdsa-p256:" + base64.b64encode(b"\x05" + b"\x01" * 32).decode(),  # bad tag
        "ecdsa-p256:" + base64.b64encode(b"\x06" + b"\x01" * 64).decode(),  # hybrid form
        "ecdsa-p256:" + base64.b64encode(b"\x02" + b"\xff" * 32).decode(),  # x not on the curve
        "ecdsa-p256:AA==",  # identity
    ],
)
def test_public_key_rejects(text: str) -> None:
    with pytest.raises(WargFormatError):
        PublicKey.parse(text)


@pytest.mark.parametrize(
    "scalar",
    [b"\x00" * 32, ORDER.to_bytes(32, "big"), b"\x01" * 31, (ORDER + 1).to_bytes(33, "big")],
)
def test_private_key_rejects(scalar: bytes) -> None:
    with pytest.raises(WargFormatError):
        PrivateKey.parse("ecdsa-p256:" + base64.b64encode(scalar).decode())


def test_generated_key_round_trips() -> None:
    key = PrivateKey.generate()
    assert str(PrivateKey.parse(str(key))) == str(key)
    assert PublicKey.parse(str(key.public_key)) == key.public_key
    assert key.public_key.key_id in repr(key)


# ---- signatures ----------------------------------------------------------------------------------


def test_signing_is_deterministic_low_s_and_verifies() -> None:
    alice = PrivateKey.parse(ALICE_PRIVATE)
    first = alice.sign(PACKAGE_RECORD_PREFIX, b"payload")
    assert first == alice.sign(PACKAGE_RECORD_PREFIX, b"payload")  # RFC 6979
    assert first.is_low_s
    assert alice.public_key.verify(PACKAGE_RECORD_PREFIX, b"payload", first)
    assert Signature.parse(str(first)) == first and str(Signature.parse(str(first))) == str(first)
    assert not alice.public_key.verify(OPERATOR_RECORD_PREFIX, b"payload", first)
    assert not alice.public_key.verify(PACKAGE_RECORD_PREFIX, b"payloaD", first)
    assert not PrivateKey.parse(BOB_PRIVATE).public_key.verify(PACKAGE_RECORD_PREFIX, b"payload", first)


def test_high_s_signature_still_verifies() -> None:
    alice = PrivateKey.parse(ALICE_PRIVATE)
    low = alice.sign(CHECKPOINT_PREFIX, b"x")
    r, s = decode_dss_signature(low.der)
    high = Signature(encode_dss_signature(r, ORDER - s))
    assert not high.is_low_s
    assert alice.public_key.verify(CHECKPOINT_PREFIX, b"x", high)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=256), st.sampled_from([PACKAGE_RECORD_PREFIX, OPERATOR_RECORD_PREFIX, CHECKPOINT_PREFIX]))
def test_sign_then_verify(payload: bytes, prefix: bytes) -> None:
    key = PrivateKey.parse(BOB_PRIVATE)
    signature = key.sign(prefix, payload)
    assert signature.is_low_s
    assert key.public_key.verify(prefix, payload, Signature.parse(str(signature)))
    assert not key.public_key.verify(prefix, payload + b"\x00", signature)


def _der(r: int, s: int) -> bytes:
    return encode_dss_signature(r, s)


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30\x00",
        _der(1, 1) + b"\x00",  # trailing bytes
        b"\x30\x81\x06\x02\x01\x01\x02\x01\x01",  # non-minimal length (BER)
        b"\x30\x07\x02\x02\x00\x01\x02\x01\x01",  # non-minimal integer
        _der(0, 1),
        _der(1, ORDER),
    ],
)
def test_signature_rejects_bad_der(der: bytes) -> None:
    with pytest.raises(WargFormatError):
        Signature.parse("ecdsa-p256:" + base64.b64encode(der).decode())


def test_signature_rejects_bad_text() -> None:
    good = str(PrivateKey.parse(ALICE_PRIVATE).sign(PACKAGE_RECORD_PREFIX, b""))
    body = good.split(":", 1)[1]
    for bad in [body, "ecdsa-p256:" + body.rstrip("="), "ecdsa-p256:" + body + ":", "ecdsa:" + body]:
        with pytest.raises(WargFormatError):
            Signature.parse(bad)


# ---- ids and names -------------------------------------------------------------------------------


def test_id_vectors() -> None:
    scenario = load("scenario.json")
    assert str(OPERATOR_LOG_ID) == scenario["operator_log_id"]
    assert str(OPERATOR_LOG_ID) == "sha256:0db9178aabc877b42f03a038bf453ee53f08e3c8c55fab916043428078596bfb"
    assert str(package_log_id("test:foo")) == (
        "sha256:17e9f0efa3fadd4085dc1aefc6bad35a0dfbcb3a6c80a7ed08e541bf4848a0cd"
    )
    for name, log_id in scenario["package_log_ids"].items():
        assert str(package_log_id(name)) == log_id
        assert str(PackageName.parse(name).log_id) == log_id
    for record in scenario["records"]:
        content = bytes.fromhex(record["content_bytes_hex"])
        derive = operator_record_id if record["kind"] == "operator" else package_record_id
        assert str(derive(content)) == record["record_id"]


def test_record_ids_use_distinct_prefixes() -> None:
    assert package_record_id(b"x") != operator_record_id(b"x")
    assert package_record_id(b"x").digest == sha256(b"WARG-PACKAGE-LOG-RECORD-V0:x")


@pytest.mark.parametrize("text", ["a", "abc", "a1", "a-b", "wasi-http2", "a1-b2-c3"])
def test_kebab_accepts(text: str) -> None:
    assert is_kebab(text)


@pytest.mark.parametrize("text", ["", "A", "aB", "1a", "a-", "-a", "a--b", "a-1", "a_b", "a b", "a\n", "é"])
def test_kebab_rejects(text: str) -> None:
    assert not is_kebab(text)


def test_package_name() -> None:
    name = PackageName.parse("wasi:http-types")
    assert (name.namespace, name.name, str(name)) == ("wasi", "http-types", "wasi:http-types")
    for bad in ["wasi", "Wasi:http", "wasi:Http", "a:b:c", ":b", "a:", "a-:b", "wasi:http types"]:
        with pytest.raises(WargFormatError):
            PackageName.parse(bad)


# ---- SemVer --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
     "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0+21AF26D3----117B344092BD", "1.0.0-0a",
     "1.0.0+001", "1.0.0--", "18446744073709551615.0.0"],
)
def test_semver_accepts(text: str) -> None:
    assert str(Version.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03", "1.2.3-01", "1.2.3-", "1.2.3+",
     "1.2.3-a..b", "1.2.3+a..b", " 1.2.3", "1.2.3 ", "1.2.3\n", "1.2.3-a_b", "1.2.3-é",
     "18446744073709551616.0.0", "1.2.3-18446744073709551616", "=1.2.3", "1.2.x"],
)
def test_semver_rejects(text: str) -> None:
    with pytest.raises(WargFormatError):
        Version.parse(text)


def test_semver_order() -> None:
    ordered = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
        "1.0.0-rc.1", "1.0.0", "1.0.0+0", "1.0.0+1", "1.0.0+01", "1.0.0+2", "1.0.0+10", "1.0.0+a",
        "1.0.0+a.b", "1.0.0+b", "1.0.1", "1.1.0", "2.0.0",
    ]
    versions = [Version.parse(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    for a, b in itertools.pairwise(versions):
        assert a < b and b > a and a != b and a <= b


def test_semver_build_metadata_is_identity() -> None:
    a, b = Version.parse("1.0.0+a"), Version.parse("1.0.0+b")
    assert a != b and hash(Version.parse("1.0.0+a")) == hash(a) and len({a, b, Version.parse("1.0.0+a")}) == 2
    assert Version.parse("1.0.0") != Version.parse("1.0.0+0")
    assert Version.parse("1.0.0-rc.1") == Version.parse("1.0.0-rc.1")
