"""Directory records and their signatures from untrusted input.

A record arrives as a protobuf ``Struct`` (gRPC ``Push``), as JSON text (CLI,
sync) or as an OCI blob (replication); signatures arrive as protobuf fields or
referrer blobs. Properties: only InvalidArgumentError (ResourceExhaustedError for
the size limit); a record's CID is the CID of its canonical bytes, and reading
the canonical bytes back gives the same record (round trip); the wire Struct a
record is served as converts back to the same record.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct
from hypothesis import example, given
from hypothesis import strategies as st

from cairn.api.grpc.directory_store import record_message, record_of
from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.core.cid import cid_of_bytes, cid_to_digest
from cairn.core.errors import InvalidArgumentError, ResourceExhaustedError
from cairn.directory.records import Record, check_limits, manifest_annotations, record_meta
from cairn.directory.signatures import (
    Signature,
    generate_key,
    sign_cid,
    signature_from_referrer_blob,
    signature_referrer_blob,
    verify_signature,
)
from tests.fuzz.budget import budget, tried

_scalars = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                     st.integers(-(2**53), 2**53), st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=12)
record_like = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.text(max_size=20), _values),
    "version": st.one_of(st.text(max_size=10), _values),
    "schema_version": st.sampled_from(["0.7.0", "v0.3.1", ""]),
    "created_at": st.text(max_size=25),
    "previous_record_cid": st.one_of(st.text(max_size=60), _values),
    "annotations": st.one_of(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3), _values),
    "skills": _values,
})


def _check_record(record: Record) -> None:
    assert record.cid == cid_of_bytes(record.canonical)
    assert cid_to_digest(record.cid) == record.digest
    assert Record.from_json(record.canonical) == record
    assert Record.from_document(record.document()) == record
    annotations = manifest_annotations(record)
    meta = record_meta(record.cid, annotations)
    assert meta.cid == record.cid


@budget(300)
@given(st.one_of(record_like.map(json.dumps), _values.map(json.dumps), st.text(max_size=80),
                 st.binary(max_size=80)))
@example('{"annotations": {"a": {"b": [1, 2e300]}}, "name": "\\ud800x"}')
def test_records_from_json(text: str | bytes) -> None:
    tried("directory-record")
    try:
        record = Record.from_json(text)
        check_limits(record)
    except (InvalidArgumentError, ResourceExhaustedError):
        return
    _check_record(record)


def _struct_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.floats(), st.text(max_size=8)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner,
                                                                               max_size=3)),
        max_leaves=10,
    )


def _mutated_record_bytes() -> st.SearchStrategy[bytes]:
    seed = record_pb2.Record(data=_struct({"name": "agent", "version": "v1", "skills": [{"id": 1.0}]}))
    raw = seed.SerializeToString()
    return st.tuples(st.integers(0, len(raw)), st.integers(0, 8), st.binary(max_size=8)).map(
        lambda m: raw[: m[0]] + m[2] + raw[m[0] + m[1]:])


def _struct(document: dict[str, Any]) -> Struct:
    data = Struct()
    data.update(document)
    return data


@budget(300)
@given(st.one_of(
    st.dictionaries(st.text(max_size=8), _struct_values(), max_size=4).map(
        lambda d: record_pb2.Record(data=_struct(d)).SerializeToString()),
    _mutated_record_bytes(),
    st.binary(max_size=120),
))
# Found by this property: a Struct holding NaN or infinity (or a Value with no kind set)
# made json_format raise ValueError, which the gRPC face answered with INTERNAL.
@example(record_pb2.Record(data=_struct({"a": float("nan")})).SerializeToString())
@example(bytes.fromhex("0a060a040a0161" + "1200"))  # data { fields { key: "a" value {} } }
def test_records_from_protobuf_struct(wire: bytes) -> None:
    tried("directory-struct")
    try:
        message = record_pb2.Record.FromString(wire)
    except DecodeError:
        return  # the gRPC runtime refuses these before the servicer sees them
    try:
        record = record_of(message)
        check_limits(record)
    except (InvalidArgumentError, ResourceExhaustedError):
        return
    _check_record(record)
    assert record_of(record_message(record.canonical)) == record


_signature_like = st.fixed_dictionaries({}, optional={
    key: st.one_of(st.text(max_size=30), _values)
    for key in ("signedAt", "signed_at", "algorithm", "signature", "certificate", "contentType", "contentBundle")
} | {"annotations": st.one_of(st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2), _values)})
_PRIVATE, _PUBLIC = generate_key()
_CID = cid_of_bytes(b"{}")


@budget(250)
@given(st.one_of(_signature_like, _values), st.text(max_size=20))
def test_signatures_and_referrer_blobs(data: Any, created_at: str) -> None:
    tried("directory-signature")
    try:
        signature = Signature.from_data(data)
    except InvalidArgumentError:
        return
    assert Signature.from_data(signature.to_data()) == signature
    blob = signature_referrer_blob(_CID, signature, created_at)
    assert signature_from_referrer_blob(blob) == signature
    try:
        verify_signature(_CID, signature)
    except InvalidArgumentError:
        pass
    try:
        verify_signature(_CID, signature, _PUBLIC)
    except InvalidArgumentError:
        pass


@budget(100)
@given(st.binary(max_size=200))
def test_referrer_blob_bytes(blob: bytes) -> None:
    tried("directory-signature")
    try:
        signature_from_referrer_blob(blob)
    except InvalidArgumentError:
        return


def test_a_real_signature_verifies_and_a_changed_one_does_not() -> None:
    signature = sign_cid(_CID, _PRIVATE)
    verify_signature(_CID, signature, _PUBLIC)
    other = cid_of_bytes(b"[]")
    try:
        verify_signature(other, signature, _PUBLIC)
    except InvalidArgumentError:
        return
    raise AssertionError("a signature verified for another record")
