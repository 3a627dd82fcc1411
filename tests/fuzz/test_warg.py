"""Warg records, envelopes, keys, signatures, hashes, versions and checkpoints from untrusted input.

Publishers send an envelope (JSON with base64 protobuf record bytes); peers and
clients send hashes, checkpoints and proofs. Every parser here raises only
InvalidArgumentError kinds (``WargFormatError``, ``ValidationError``); what decodes
re-encodes to bytes that decode to the same value; and a log state fed a mutated
record either applies it or refuses it with the spec's message, never anything else.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from cairn.core.errors import InvalidArgumentError
from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.crypto import PrivateKey, PublicKey, Signature
from cairn.warg.hashes import AnyHash, b64encode
from cairn.warg.ids import PackageName
from cairn.warg.records import (
    Envelope,
    OperatorRecord,
    PackageGrantFlat,
    PackageInit,
    PackagePermission,
    PackageRecord,
    PackageRelease,
    PackageYank,
    RecordTime,
)
from cairn.warg.semver import Version
from cairn.warg.validation import OperatorLogState, PackageLogState
from tests.fuzz.budget import budget, tried

KEY = PrivateKey.generate()
OTHER = PrivateKey.generate()
CONTENT = AnyHash.of(b"wasm")
SEED_RECORDS = [
    PackageRecord(None, 0, RecordTime(1_700_000_000, 0), (
        PackageInit(KEY.public_key), PackageRelease(Version.parse("1.0.0"), CONTENT),
        PackageGrantFlat(OTHER.public_key, (PackagePermission.RELEASE,)),
        PackageYank(Version.parse("1.0.0")),
    )),
]
SEED = SEED_RECORDS[0].encode()


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a slice replaced, truncated or extended: near-valid protobuf."""
    return st.tuples(st.integers(0, len(seed)), st.integers(0, 12), st.binary(max_size=12)).map(
        lambda m: seed[: m[0]] + m[2] + seed[m[0] + m[1]:]
    )


protobuf_bytes = st.one_of(st.binary(max_size=400), _mutations(SEED))


@budget(400)
@given(protobuf_bytes)
@example(b"\x1a\x0b\x08\xff\xff\xff\xff\xff\xff\xff\xff\x7f")  # time.seconds = 2**63 - 1
@example(b"\x1a\x06\x08\x01\x10\xff\xff\xff\xff\x07")  # nanos of 2**31 - 1
@example(b"\x0a" + b"\x80" * 10)  # a truncated, over-long varint
def test_record_decode(content: bytes) -> None:
    tried("warg-record")
    for kind in (PackageRecord, OperatorRecord):
        try:
            record = kind.decode(content)
        except InvalidArgumentError:
            continue
        again = kind.decode(record.encode())
        assert again == record
        assert kind.decode(again.encode()).encode() == again.encode()


@budget(300)
@given(st.one_of(st.binary(max_size=300), _mutations(Envelope.sign_package(SEED_RECORDS[0], KEY).encode())))
def test_envelope_decode(data: bytes) -> None:
    tried("warg-envelope")
    try:
        envelope = Envelope.decode(data)
    except InvalidArgumentError:
        return
    assert Envelope.decode(envelope.encode()) == envelope


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                         st.just(b64encode(SEED)), st.just(str(KEY.sign(b"P", b"x"))))
_json = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=10)
_envelope_like = st.fixed_dictionaries({}, optional={
    "contentBytes": st.one_of(st.just(b64encode(SEED)), st.text(max_size=20), _json),
    "keyId": st.one_of(st.just(KEY.public_key.key_id), _json),
    "signature": st.one_of(st.just(str(KEY.sign(b"P", SEED))), st.text(max_size=20), _json),
})


@budget(300)
@given(st.one_of(_json, _envelope_like))
def test_envelope_from_json_and_validation(obj: Any) -> None:
    tried("warg-envelope")
    try:
        envelope = Envelope.from_json(json.loads(json.dumps(obj)))
    except InvalidArgumentError:
        return
    assert Envelope.from_json(envelope.to_json()) == envelope
    for state in (PackageLogState(), OperatorLogState()):
        try:
            state.validate(envelope)
        except InvalidArgumentError:
            pass


@budget(200)
@given(_mutations(SEED))
def test_signed_mutated_records_validate_or_are_refused(content: bytes) -> None:
    """A validly signed record with mutated contents: the log applies it or refuses it by the spec."""
    tried("warg-validation")
    envelope = Envelope(content, KEY.public_key.key_id, KEY.sign(b"WARG-PACKAGE-RECORD-SIGNATURE-V0", content))
    state = PackageLogState()
    try:
        state.validate(envelope)
    except InvalidArgumentError:
        assert state.to_json() == PackageLogState().to_json()  # refused: state untouched
        return
    assert PackageLogState.from_json(json.loads(json.dumps(state.to_json()))).to_json() == state.to_json()


@budget(300)
@given(st.one_of(
    st.text(max_size=80),
    st.builds(lambda a, b: f"{a}:{b}", st.sampled_from(["sha256", "sha512", "", "SHA256"]),
              st.text("0123456789abcdefABCDEF", max_size=70)),
))
def test_hashes(text: str) -> None:
    tried("warg-hash")
    try:
        value = AnyHash.parse(text)
    except InvalidArgumentError:
        return
    assert str(value) == text and AnyHash.parse(str(value)) == value


@budget(300)
@given(st.one_of(
    st.text(max_size=60),
    st.builds(lambda n: f"ecdsa-p256:{b64encode(n)}", st.binary(max_size=80)),
    st.builds(lambda p, b: f"ecdsa-p256:{b64encode(bytes([p]) + b)}", st.sampled_from([2, 3, 4]),
              st.binary(min_size=32, max_size=64)),
    st.just(str(KEY.public_key)), st.just(str(KEY.sign(b"P", b"x"))),
))
def test_keys_and_signatures(text: str) -> None:
    tried("warg-key-signature")
    try:
        key = PublicKey.parse(text)
    except InvalidArgumentError:
        pass
    else:
        assert PublicKey.parse(str(key)) == key
    try:
        signature = Signature.parse(text)
    except InvalidArgumentError:
        return
    assert str(signature) == text


@budget(300)
@given(st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["0", "1", "01", "18446744073709551616", ".", "-", "+", "a", "rc", "9" * 30]),
             max_size=9).map("".join),
))
# Found by this property: a number of more than 4300 digits raised ValueError from int().
@example("1" * 5000 + ".0.0")
def test_versions(text: str) -> None:
    tried("warg-version")
    try:
        version = Version.parse(text)
    except InvalidArgumentError:
        return
    assert str(version) == text and Version.parse(str(version)) == version


@budget(200)
@given(st.text(max_size=40))
# Found by this property: seconds of more than 4300 digits raised ValueError from int().
@example("1" * 5000 + ".000000000")
def test_record_time_and_package_names(text: str) -> None:
    tried("warg-name-time")
    try:
        when = RecordTime.from_text(text)
    except InvalidArgumentError:
        pass
    else:
        assert RecordTime.from_text(when.text) == when
    try:
        name = PackageName.parse(text)
    except InvalidArgumentError:
        return
    assert str(name) == text


_checkpoint_like = st.fixed_dictionaries({}, optional={
    "logLength": st.one_of(st.integers(-1, 2**70), _json),
    "logRoot": st.one_of(st.just(str(CONTENT)), _json),
    "mapRoot": st.one_of(st.just(str(CONTENT)), _json),
    "timestamp": st.one_of(st.integers(-1, 2**70), _json),
})


@budget(300)
@given(st.one_of(_json, _checkpoint_like,
                 st.builds(lambda c, k, s: {"contents": c, "keyId": k, "signature": s}, _checkpoint_like,
                           st.one_of(st.just(KEY.public_key.key_id), _json),
                           st.one_of(st.just(str(KEY.sign(b"P", b"x"))), _json))))
def test_checkpoints(obj: Any) -> None:
    tried("warg-checkpoint")
    try:
        contents = TimestampedCheckpoint.from_json(obj)
    except InvalidArgumentError:
        pass
    else:
        assert TimestampedCheckpoint.from_json(contents.to_json()) == contents
        contents.encode()
    try:
        signed = SignedCheckpoint.from_json(obj)
    except InvalidArgumentError:
        return
    assert SignedCheckpoint.from_json(signed.to_json()) == signed
    signed.verify(KEY.public_key)
