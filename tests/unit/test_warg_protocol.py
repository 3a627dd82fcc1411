"""Warg records, envelopes and checkpoints against the golden vectors and spec 3.2-4."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.warg.checkpoint import Checkpoint, SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.crypto import (
    CHECKPOINT_PREFIX,
    OPERATOR_RECORD_PREFIX,
    PACKAGE_RECORD_PREFIX,
    PrivateKey,
    PublicKey,
    Signature,
)
from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import AnyHash, uleb
from cairn.warg.ids import OPERATOR_LOG_ID, operator_record_id, package_log_id, package_record_id
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
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
from tests.unit.warg_vectors import load, operator_record_from_pbjson, package_record_from_pbjson

SCENARIO = load("scenario.json")
KEYS = SCENARIO["keys"]
ALICE = PrivateKey.parse(KEYS["alice_private"])
BOB = PrivateKey.parse(KEYS["bob_private"])
T0 = 1700000000
RELEASE, YANK = PackagePermission.RELEASE, PackagePermission.YANK

MINIMAL_PACKAGE_HEX = (
    "1a0b08809ff39c0610d482954922430a410a3765636473612d703235363a41314f665a7a3559394e7937564b505677726f"
    "43545150417239746d6c4934552f555459485a4841383741461206736861323536223e123c0a3765636473612d703235363a"
    "41347942517439496d38786e4f395372395054374f724f555150384f6c696a6371316450777464547069676d120101"
)
MINIMAL_OPERATOR_HEX = (
    "1a0b08809ff39c0610d482954922430a410a06736861323536123765636473612d703235363a41314f665a7a3559394e79"
    "37564b505677726f43545150417239746d6c4934552f555459485a484138374146223e123c0a3765636473612d703235363a"
    "41347942517439496d38786e4f395372395054374f724f555150384f6c696a6371316450777464547069676d120101"
)


# ---- hand-built protobuf -------------------------------------------------------------------------


def ld(field: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return uleb(field << 3 | 2) + uleb(len(raw)) + raw


def vi(field: int, n: int) -> bytes:
    """A varint field; negative numbers are written as protobuf does (64-bit two's complement)."""
    return uleb(field << 3) + uleb(n % (1 << 64))


def time_field(seconds: int = T0, nanos: int = 0) -> bytes:
    return ld(3, (vi(1, seconds) if seconds else b"") + (vi(2, nanos) if nanos else b""))


def entry(kind: int, body: bytes) -> bytes:
    return ld(4, ld(kind, body))


ALICE_PUB = str(ALICE.public_key)
BOB_PUB = str(BOB.public_key)
BOB_ID = BOB.public_key.key_id


# ---- encoding against the vectors ----------------------------------------------------------------


def test_first_records_of_the_log_vectors_encode_exactly() -> None:
    package = package_record_from_pbjson(load("package-logs/minimal.json")[0]["contents"], None)
    assert package.encode().hex() == MINIMAL_PACKAGE_HEX
    operator = operator_record_from_pbjson(load("operator-logs/minimal.json")[0]["contents"], None)
    assert operator.encode().hex() == MINIMAL_OPERATOR_HEX
    assert PackageRecord.decode(bytes.fromhex(MINIMAL_PACKAGE_HEX)) == package
    assert OperatorRecord.decode(bytes.fromhex(MINIMAL_OPERATOR_HEX)) == operator


def _scenario_records() -> list[PackageRecord | OperatorRecord]:
    """The scenario table of tests/vectors/warg/README.md, built from typed values."""
    alice, bob = ALICE.public_key, BOB.public_key
    rows = SCENARIO["records"]

    def prev(i: int) -> AnyHash | None:
        return AnyHash.parse(rows[i]["prev"]) if rows[i]["prev"] else None

    def package(i: int, *entries: PackageEntry) -> PackageRecord:
        return PackageRecord(prev(i), 0, RecordTime(T0 + i, 0), entries)

    return [
        OperatorRecord(None, 0, RecordTime(T0, 0), (OperatorInit(alice), OperatorDefineNamespace("test"))),
        package(1, PackageInit(alice), PackageRelease(Version.parse("1.0.0"), AnyHash.of(b"hello"))),
        package(2, PackageInit(bob)),
        package(3, PackageGrantFlat(bob, (RELEASE, YANK))),
        package(4, PackageRelease(Version.parse("1.1.0"), AnyHash.of(b"world"))),
        package(5, PackageInit(alice)),
        package(6, PackageRevokeFlat(AnyHash.parse(BOB_ID), (RELEASE,)), PackageYank(Version.parse("1.0.0"))),
    ]


def test_scenario_records_encode_and_ids() -> None:
    for record, row in zip(_scenario_records(), SCENARIO["records"], strict=True):
        content = record.encode()
        assert content.hex() == row["content_bytes_hex"]
        assert base64.b64encode(content).decode() == row["content_bytes_b64"]
        assert row["time"] == record.time.seconds
        if isinstance(record, OperatorRecord):
            assert str(operator_record_id(content)) == row["record_id"]
            assert str(OPERATOR_LOG_ID) == row["log_id"]
            assert OperatorRecord.decode(content) == record
        else:
            assert str(package_record_id(content)) == row["record_id"]
            assert str(package_log_id(row["name"])) == row["log_id"]
            assert PackageRecord.decode(content) == record


def _flip_s(signature: Signature) -> Signature:
    r, s = decode_dss_signature(signature.der)
    return Signature(encode_dss_signature(r, s ^ 1))


@pytest.mark.parametrize("index", range(7))
def test_scenario_signatures_verify(index: int) -> None:
    row = SCENARIO["records"][index]
    content = bytes.fromhex(row["content_bytes_hex"])
    signer = {KEYS["alice_key_id"]: ALICE.public_key, KEYS["bob_key_id"]: BOB.public_key}[row["key_id"]]
    envelope = Envelope.from_json(
        {"contentBytes": row["content_bytes_b64"], "keyId": row["key_id"], "signature": row["signature_random_k"]}
    )
    prefix, other = (
        (OPERATOR_RECORD_PREFIX, PACKAGE_RECORD_PREFIX)
        if row["kind"] == "operator"
        else (PACKAGE_RECORD_PREFIX, OPERATOR_RECORD_PREFIX)
    )
    assert envelope.content_bytes == content
    assert signer.verify(prefix, content, envelope.signature)
    assert not signer.verify(other, content, envelope.signature)
    flipped = bytes([content[0] ^ 0x01]) + content[1:]
    assert not signer.verify(prefix, flipped, envelope.signature)
    assert not signer.verify(prefix, content, _flip_s(envelope.signature))


# ---- decoding rules (spec 3.2) -------------------------------------------------------------------


def _release(version: str = "1.0.0", content: str = str(AnyHash.of(b"x"))) -> bytes:
    return entry(4, ld(1, version) + ld(2, content))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or invalid timestamp in record"),
        (entry(5, ld(1, "1.0.0")), "empty or invalid timestamp in record"),
        (time_field() + ld(4, b""), "no content in entry"),
        (time_field() + entry(2, ld(1, BOB_PUB) + ld(2, b"\x00")), "the value 0 could not be parsed as a permission"),
        (time_field() + entry(2, ld(1, BOB_PUB) + ld(2, b"\x03")), "the value 3 could not be parsed as a permission"),
        (time_field() + entry(3, ld(1, BOB_ID) + vi(2, 9)), "the value 9 could not be parsed as a permission"),
        (time_field() + entry(1, ld(1, ALICE_PUB) + ld(2, "sha512")), "hash algorithm `sha512` is not supported"),
        (time_field() + entry(1, ld(1, ALICE_PUB)), "hash algorithm `` is not supported"),
        (time_field() + entry(1, ld(1, "ecdsa-p256:nope") + ld(2, "sha256")), "invalid public key"),
        (time_field() + entry(2, ld(1, "") + ld(2, b"\x01")), "invalid public key"),
        (ld(1, "sha256:XY") + time_field(), "not lowercase hexadecimal"),
        (ld(1, "md5:00") + time_field(), "hash algorithm `md5` is not supported"),
        (time_field() + entry(3, ld(1, "not-a-hash") + ld(2, b"\x01")), "has no algorithm prefix"),
        (time_field() + _release(content="sha256:ZZ"), "not lowercase hexadecimal"),
        (time_field() + _release(version="v1.0.0"), "invalid semantic version `v1.0.0`"),
        (time_field() + _release(version="1.0"), "invalid semantic version `1.0`"),
        (time_field() + entry(5, ld(1, "01.0.0")), "invalid semantic version `01.0.0`"),
        (time_field() + entry(5, b""), "invalid semantic version ``"),
        (time_field(-5), "empty or invalid timestamp in record"),
        (time_field()[:-1], "invalid package record"),
        (time_field() + ld(1, b"\xff\xfe"), "invalid package record"),
    ],
)
def test_package_decode_rejects(content: bytes, message: str) -> None:
    with pytest.raises(WargFormatError) as info:
        PackageRecord.decode(content)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or invalid timestamp in record"),
        (time_field() + ld(4, b""), "no content in entry"),
        (time_field() + entry(2, ld(1, BOB_PUB) + ld(2, b"\x04")), "the value 4 could not be parsed as a permission"),
        (time_field() + entry(3, ld(1, BOB_ID) + ld(2, b"\x00")), "the value 0 could not be parsed as a permission"),
        (time_field() + entry(1, ld(1, "sha1") + ld(2, ALICE_PUB)), "hash algorithm `sha1` is not supported"),
        (time_field() + entry(1, ld(1, "sha256") + ld(2, BOB_ID)), "invalid public key"),
        (ld(1, "SHA256:00") + time_field(), "hash algorithm `SHA256` is not supported"),
    ],
)
def test_operator_decode_rejects(content: bytes, message: str) -> None:
    with pytest.raises(WargFormatError) as info:
        OperatorRecord.decode(content)
    assert message in info.value.message


def test_protobuf_tolerance() -> None:
    """Unknown fields ignored, unpacked repeated enums accepted, fields in any order."""
    canonical = PackageRecord(
        AnyHash.of(b"prev"),
        0,
        RecordTime(T0, 7),
        (
            PackageInit(ALICE.public_key),
            PackageGrantFlat(BOB.public_key, (RELEASE, YANK)),
            PackageRevokeFlat(AnyHash.parse(BOB_ID), (YANK,)),
            _release_entry(),
        ),
    )
    unknown = vi(15, 1) + ld(99, b"junk")
    hand = (
        entry(1, ld(2, "sha256") + unknown + ld(1, ALICE_PUB))  # init fields reversed, unknown inside
        + ld(4, ld(2, ld(1, BOB_PUB) + vi(2, 1) + vi(2, 2)) + unknown)  # unpacked enums, unknown in entry
        + unknown
        + time_field(T0, 7)  # time after entries
        + entry(3, ld(2, b"\x02") + ld(1, BOB_ID))  # packed enums before key_id
        + ld(1, str(AnyHash.of(b"prev")))  # prev last
        + entry(4, ld(2, str(AnyHash.of(b"x"))) + ld(1, "1.0.0"))
    )
    assert PackageRecord.decode(hand) == canonical
    assert PackageRecord.decode(canonical.encode()) == canonical


def _release_entry() -> PackageRelease:
    return PackageRelease(Version.parse("1.0.0"), AnyHash.of(b"x"))


def test_time_is_required_but_may_be_zero_and_nanos_normalise() -> None:
    assert PackageRecord.decode(time_field(0, 0)).time == RecordTime(0, 0)
    assert PackageRecord.decode(time_field(T0, 1_500_000_000)).time == RecordTime(T0 + 1, 500_000_000)
    negative_nanos = ld(3, vi(1, T0) + vi(2, -1))
    assert PackageRecord.decode(negative_nanos).time == RecordTime(T0 - 1, 999_999_999)


def test_prost_encoding_details() -> None:
    empty = PackageRecord(None, 0, RecordTime(0, 0), ())
    assert empty.encode() == b"\x1a\x00"  # time is always written, defaults omitted
    versioned = PackageRecord(None, 3, RecordTime(1, 2), ())
    assert versioned.encode() == vi(2, 3) + ld(3, vi(1, 1) + vi(2, 2))
    grant = PackageRecord(None, 0, RecordTime(0, 0), (PackageGrantFlat(BOB.public_key, ()),))
    assert grant.encode() == b"\x1a\x00" + entry(2, ld(1, BOB_PUB))  # an empty list is omitted
    packed = PackageRecord(None, 0, RecordTime(0, 0), (PackageGrantFlat(BOB.public_key, (RELEASE, YANK)),))
    assert packed.encode().endswith(ld(2, b"\x01\x02"))
    with_prev = PackageRecord(AnyHash.of(b""), 0, RecordTime(0, 0), ())
    assert with_prev.encode().startswith(ld(1, str(AnyHash.of(b""))))


def test_operator_entries_round_trip() -> None:
    record = OperatorRecord(
        None,
        0,
        RecordTime(T0, 1),
        (
            OperatorInit(ALICE.public_key),
            OperatorGrantFlat(BOB.public_key, tuple(OperatorPermission)),
            OperatorRevokeFlat(AnyHash.parse(BOB_ID), (OperatorPermission.IMPORT_NAMESPACE,)),
            OperatorDefineNamespace("wasi"),
            OperatorImportNamespace("other", "registry.example.com"),
        ),
    )
    content = record.encode()
    assert OperatorRecord.decode(content) == record
    assert entry(4, ld(1, "wasi")) in content
    assert entry(5, ld(1, "other") + ld(2, "registry.example.com")) in content
    assert ld(2, b"\x01\x02\x03") in content


_versions = st.builds(
    lambda a, b, c, pre: Version.parse(f"{a}.{b}.{c}" + (f"-{pre}" if pre else "")),
    st.integers(0, 2**40),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["", "alpha", "rc.1", "0.3.x"]),
)
_hashes = st.binary(min_size=32, max_size=32).map(lambda d: AnyHash("sha256", d))
_perms = st.lists(st.sampled_from(list(PackagePermission)), max_size=3).map(tuple)
_keys = st.sampled_from([ALICE.public_key, BOB.public_key])
_entries: st.SearchStrategy[PackageEntry] = st.one_of(
    st.builds(PackageInit, _keys),
    st.builds(PackageGrantFlat, _keys, _perms),
    st.builds(PackageRevokeFlat, _hashes, _perms),
    st.builds(PackageRelease, _versions, _hashes),
    st.builds(PackageYank, _versions),
)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(st.none(), _hashes),
    st.integers(0, 2**32 - 1),
    st.builds(RecordTime, st.integers(0, 2**40), st.integers(0, 999_999_999)),
    st.lists(_entries, max_size=5).map(tuple),
)
def test_package_record_round_trip(
    prev: AnyHash | None, version: int, when: RecordTime, entries: tuple[PackageEntry, ...]
) -> None:
    record = PackageRecord(prev, version, when, entries)
    content = record.encode()
    assert PackageRecord.decode(content) == record
    assert PackageRecord.decode(content).encode() == content


def test_record_time() -> None:
    assert RecordTime(1671221120, 153436500).text == "1671221120.153436500"
    assert RecordTime(5, 0).text == "5.000000000"
    assert RecordTime.from_text("5.000000001") == RecordTime(5, 1)
    assert RecordTime(1, 999_999_999) < RecordTime(2, 0) < RecordTime(2, 1)
    now = RecordTime.now()
    assert now.seconds > T0 and 0 <= now.nanos < 1_000_000_000
    for bad in ["5", "5.1", "5.0000000001", "-5.000000000", "a.000000000"]:
        with pytest.raises(WargFormatError):
            RecordTime.from_text(bad)


# ---- envelopes -----------------------------------------------------------------------------------


def test_envelope_sign_and_json() -> None:
    record = PackageRecord(None, 0, RecordTime(T0, 0), (PackageInit(ALICE.public_key),))
    envelope = Envelope.sign_package(record, ALICE)
    assert envelope.key_id == ALICE.public_key.key_id and envelope.content_bytes == record.encode()
    assert ALICE.public_key.verify(PACKAGE_RECORD_PREFIX, envelope.content_bytes, envelope.signature)
    body = envelope.to_json()
    assert list(body) == ["contentBytes", "keyId", "signature"]
    assert Envelope.from_json(body) == envelope
    assert Envelope.decode(envelope.encode()) == envelope
    operator = Envelope.sign_operator(OperatorRecord(None, 0, RecordTime(T0, 0), ()), BOB)
    assert BOB.public_key.verify(OPERATOR_RECORD_PREFIX, operator.content_bytes, operator.signature)


@pytest.mark.parametrize(
    "mutation",
    [
        {"contentBytes": "not base64!"},
        {"contentBytes": "GgA"},
        {"contentBytes": 5},
        {"keyId": None},
        {"signature": "ecdsa-p256:AAAA"},
    ],
)
def test_envelope_from_json_rejects(mutation: dict[str, Any]) -> None:
    body: dict[str, Any] = Envelope.sign_package(PackageRecord(None, 0, RecordTime(0, 0), ()), ALICE).to_json()
    body.update(mutation)
    with pytest.raises(WargFormatError):
        Envelope.from_json(body)
    with pytest.raises(WargFormatError):
        Envelope.from_json([body])


# ---- checkpoints ---------------------------------------------------------------------------------


def _vector_checkpoint() -> TimestampedCheckpoint:
    vector = SCENARIO["checkpoint"]
    return TimestampedCheckpoint.from_json({**vector["json"], "timestamp": vector["timestamp"]})


def test_checkpoint_vector() -> None:
    vector = SCENARIO["checkpoint"]
    contents = _vector_checkpoint()
    assert contents.log_length == 7
    assert contents.log_root.hex == SCENARIO["roots_by_length"]["len7"]["log_root"]
    assert contents.map_root.hex == SCENARIO["roots_by_length"]["len7"]["map_root"]
    assert contents.checkpoint.encode().hex() == vector["checkpoint_bytes_hex"]
    assert str(contents.checkpoint.id) == vector["checkpoint_id"]
    assert contents.encode().hex() == vector["timestamped_checkpoint_bytes_hex"]
    assert (CHECKPOINT_PREFIX + b":" + contents.encode()).hex() == vector["signed_message_hex"]
    signed = SignedCheckpoint.from_json(
        {"contents": contents.to_json(), "keyId": vector["key_id"], "signature": vector["signature_random_k"]}
    )
    assert signed.verify(ALICE.public_key)
    assert not signed.verify(BOB.public_key)
    assert not SignedCheckpoint(contents, signed.key_id, _flip_s(signed.signature)).verify(ALICE.public_key)
    later = TimestampedCheckpoint(7, contents.log_root, contents.map_root, contents.timestamp + 1)
    assert not SignedCheckpoint(later, signed.key_id, signed.signature).verify(ALICE.public_key)
    assert SignedCheckpoint.from_json(signed.to_json()) == signed
    assert signed.to_json() == {
        "contents": {**vector["json"], "timestamp": vector["timestamp"]},
        "keyId": vector["key_id"],
        "signature": vector["signature_random_k"],
    }
    assert list(contents.to_json()) == ["logRoot", "logLength", "mapRoot", "timestamp"]


def test_checkpoint_sign_then_verify() -> None:
    contents = _vector_checkpoint()
    signed = SignedCheckpoint.sign(contents, BOB)
    assert signed.key_id == BOB.public_key.key_id and signed.signature.is_low_s
    assert signed.verify(BOB.public_key) and not signed.verify(ALICE.public_key)
    assert signed == SignedCheckpoint.sign(contents, BOB)  # deterministic
    assert Checkpoint(7, contents.log_root, contents.map_root) == contents.checkpoint


@pytest.mark.parametrize(
    "mutation",
    [
        {"logLength": -1},
        {"logLength": True},
        {"logLength": "7"},
        {"timestamp": 1.5},
        {"logRoot": "sha256:abcd"},
        {"mapRoot": 5},
        {"mapRoot": "sha256:" + "AB" * 32},
    ],
)
def test_checkpoint_from_json_rejects(mutation: dict[str, Any]) -> None:
    body = {**_vector_checkpoint().to_json(), **mutation}
    with pytest.raises(WargFormatError):
        TimestampedCheckpoint.from_json(body)


def test_signed_checkpoint_from_json_rejects_missing_fields() -> None:
    signed = SignedCheckpoint.sign(_vector_checkpoint(), ALICE).to_json()
    for name in ["contents", "keyId", "signature"]:
        with pytest.raises(WargFormatError):
            SignedCheckpoint.from_json({k: v for k, v in signed.items() if k != name})
    with pytest.raises(WargFormatError):
        TimestampedCheckpoint.from_json({k: v for k, v in signed["contents"].items() if k != "timestamp"})
    with pytest.raises(WargFormatError):
        SignedCheckpoint.from_json("nope")


def test_public_key_type_is_reexported_consistently() -> None:
    assert isinstance(ALICE.public_key, PublicKey)
