"""Directory records: Go-compatible canonical JSON, CIDs, limits and manifest metadata.

The golden data is tests/vectors/directory (a copy of shared/vectors/directory) (specs/directory.md §2); every
vector there is checked here. A small reference encoder written straight from
§2.1 cross-checks the fast encoder on generated values.
"""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.cid import CID_PREFIX, cid_of_bytes, cid_to_digest, digest_to_cid, normalise_cid
from cairn.core.digest import Digest
from cairn.core.errors import DataLossError, InvalidArgumentError, ResourceExhaustedError
from cairn.directory.canonical import canonical_json, go_float, parse_canonical, parse_json
from cairn.directory.records import (
    KEY_TYPE,
    MAX_METADATA_BYTES,
    MAX_RECORD_BYTES,
    CorruptRecordError,
    Record,
    RecordMeta,
    check_limits,
    check_metadata,
    manifest_annotations,
    record_meta,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "directory"
CIDS: dict[str, Any] = json.loads((VECTORS / "cids.json").read_text(encoding="utf-8"))
HELLO_CID = "baeareig77vqcdozl2wyk6z3cscaj5q5fggi53aoh64fewkdiri3cdauyn4"
HELLO_DIGEST = "sha256:dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f"


def _ids(entries: list[dict[str, Any]], key: str) -> list[str]:
    return [str(entry.get(key) or "<empty>") for entry in entries]


# --- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", CIDS["bytes_vectors"], ids=_ids(CIDS["bytes_vectors"], "name"))
def test_bytes_vectors(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["input_hex"])
    if "input_utf8" in vector:
        assert data == vector["input_utf8"].encode("utf-8")
    if vector.get("expect_error"):
        with pytest.raises(InvalidArgumentError, match="empty"):
            cid_of_bytes(data)
        return
    assert str(Digest.of(data)) == vector["digest"]
    assert cid_of_bytes(data) == vector["cid"]
    assert digest_to_cid(Digest.parse(vector["digest"])) == vector["cid"]


@pytest.mark.parametrize("vector", CIDS["record_vectors"], ids=_ids(CIDS["record_vectors"], "file"))
def test_record_vectors(vector: dict[str, Any]) -> None:
    data = (VECTORS / vector["file"]).read_bytes()
    expected = vector["canonical_utf8"].encode("utf-8")
    assert len(expected) == vector["canonical_length"]

    record = Record.from_json(data)
    assert record.canonical == expected
    assert str(record.digest) == vector["digest"]
    assert record.cid == vector["cid"]
    assert len(record.cid) == 59 and record.cid.startswith("baearei")

    # The same bytes from a parsed document, from Python ints (json.loads), and again from the output.
    assert Record.from_document(parse_json(data)).canonical == expected
    assert canonical_json(json.loads(data)) == expected
    assert canonical_json(parse_json(expected)) == expected
    assert Record.from_json(expected) == record
    assert cid_to_digest(record.cid) == record.digest


@pytest.mark.parametrize(
    "vector", CIDS["canonicalization_vectors"], ids=_ids(CIDS["canonicalization_vectors"], "name")
)
def test_canonicalization_vectors(vector: dict[str, Any]) -> None:
    expected = bytes.fromhex(vector["canonical_hex"])
    assert expected == vector["canonical_utf8"].encode("utf-8")
    assert len(expected) == vector["canonical_length"]

    assert canonical_json(parse_json(vector["input_json"])) == expected
    assert canonical_json(parse_json(vector["input_json"].encode("utf-8"))) == expected
    assert parse_canonical(vector["input_json"])[1] == expected
    # Idempotent: the canonical text canonicalises to itself.
    assert canonical_json(parse_json(expected)) == expected
    assert parse_canonical(expected)[1] == expected
    assert str(Digest.of(expected)) == vector["digest"]
    assert cid_of_bytes(expected) == vector["cid"]
    assert Record.from_json(vector["input_json"]).cid == vector["cid"]


@pytest.mark.parametrize("vector", CIDS["digest_to_cid"], ids=_ids(CIDS["digest_to_cid"], "digest"))
def test_digest_to_cid_vectors(vector: dict[str, Any]) -> None:
    if vector.get("expect_error"):
        with pytest.raises(InvalidArgumentError):
            digest_to_cid(Digest.parse(vector["digest"]))
        return
    cid = digest_to_cid(Digest.parse(vector["digest"]))
    assert cid == vector["cid"]
    assert str(cid_to_digest(cid)) == vector["digest"]


@pytest.mark.parametrize("vector", CIDS["cid_to_digest"], ids=_ids(CIDS["cid_to_digest"], "cid"))
def test_cid_to_digest_vectors(vector: dict[str, Any]) -> None:
    if vector.get("expect_error"):
        with pytest.raises(InvalidArgumentError):
            cid_to_digest(vector["cid"])
        with pytest.raises(InvalidArgumentError):
            normalise_cid(vector["cid"])
        return
    digest = cid_to_digest(vector["cid"])
    assert str(digest) == vector["digest"]
    assert digest_to_cid(digest) == vector["cid"]
    assert normalise_cid(vector["cid"]) == vector["cid"]


def test_cid_prefix_matches_the_vectors() -> None:
    raw = _cid_bytes(HELLO_CID)
    assert raw[:4].hex() == CIDS["cid_prefix_bytes_hex"]


# --- CIDs ----------------------------------------------------------------------------------------


def _cid_bytes(cid: str) -> bytes:
    body = cid[1:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


def _base58(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = alphabet[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=")


def test_other_spellings_normalise_to_the_canonical_cid() -> None:
    raw = _cid_bytes(HELLO_CID)
    multihash = raw[2:]
    digest = raw[4:]
    spellings = [
        "B" + _b32(raw),
        "c" + base64.b32encode(raw).decode().lower(),
        "C" + base64.b32encode(raw).decode(),
        "z" + _base58(raw),
        "f" + raw.hex(),
        "F" + raw.hex().upper(),
        "m" + base64.b64encode(raw).decode().rstrip("="),
        "M" + base64.b64encode(raw).decode(),
        "u" + base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "U" + base64.urlsafe_b64encode(raw).decode(),
        # Other content codecs: raw (0x55), dag-pb (0x70), and a two-byte varint codec (dag-json 0x0129).
        "b" + _b32(b"\x01\x55" + multihash).lower(),
        "b" + _b32(b"\x01\x70" + multihash).lower(),
        "b" + _b32(b"\x01\xa9\x02" + multihash).lower(),
        # CIDv0: a bare base58 multihash, and the same multihash under a multibase prefix.
        _base58(multihash),
        "z" + _base58(multihash),
    ]
    assert spellings[-2].startswith("Qm") and len(spellings[-2]) == 46
    for spelling in spellings:
        assert normalise_cid(spelling) == HELLO_CID, spelling
        assert cid_to_digest(spelling) == Digest("sha256", digest.hex())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x01\x01\x13\x40" + b"\0" * 64, "not sha2-256"),  # sha2-512
        (b"\x01\x01\x12\x1f" + b"\0" * 31, "length 31"),
        (b"\x01\x01\x12\x20" + b"\0" * 31, "truncated"),
        (b"\x01\x01\x12\x20" + b"\0" * 33, "1 trailing bytes"),
        (b"\x02\x01\x12\x20" + b"\0" * 32, "version 2"),
        (b"\x00\x01\x12\x20" + b"\0" * 32, "version 0"),
        (b"\x81\x00\x01\x12\x20" + b"\0" * 32, "non-minimal varint"),
        (b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" + b"\x12\x20" + b"\0" * 32, "longer than 9 bytes"),
        (b"\x01", "truncated varint"),
        (b"\x01\x01", "truncated varint"),
    ],
)
def test_malformed_cid_bytes_are_refused(raw: bytes, reason: str) -> None:
    cid = "b" + _b32(raw).lower()
    with pytest.raises(InvalidArgumentError, match=reason) as caught:
        cid_to_digest(cid)
    assert cid[:40] in caught.value.message


@pytest.mark.parametrize(
    ("cid", "reason"),
    [
        ("", "empty"),
        ("b", "no data"),
        ("invalid-cid-string", "unsupported multibase prefix"),
        (HELLO_CID.upper()[0].lower() + HELLO_CID.upper()[1:], "upper-case"),
        ("B" + HELLO_CID[1:], "lower-case"),
        (HELLO_CID + "=", "'='"),
        (HELLO_CID[:-1] + "1", "invalid multibase"),
        ("z0OIl", "base58btc character"),
        ("f0g", "base16"),
        ("m!!!!", "invalid multibase"),
        ("u+abc", "base64url"),
        ("b" + "a" * 300, "longer than 256"),
        ("baeareig77vqcdozl2wyk6z3cscaj5q5fggi53aoh64fewkdiri3cdauyn\u00e9", "non-ASCII"),
    ],
)
def test_malformed_cid_text_is_refused(cid: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=reason):
        cid_to_digest(cid)


def test_digest_to_cid_refuses_sha512() -> None:
    with pytest.raises(InvalidArgumentError, match="only sha256"):
        digest_to_cid(Digest.of(b"x", "sha512"))


@given(st.binary(min_size=1, max_size=64))
def test_cid_digest_bijection(data: bytes) -> None:
    cid = cid_of_bytes(data)
    assert len(cid) == 59 and cid.startswith("baearei")
    assert cid == "b" + _b32(CID_PREFIX + hashlib.sha256(data).digest()).lower()
    assert cid_to_digest(cid) == Digest.of(data)
    assert digest_to_cid(cid_to_digest(cid)) == cid


# --- canonical JSON ------------------------------------------------------------------------------


def test_backspace_and_form_feed_use_short_escapes() -> None:
    assert canonical_json({"a": "\b\f"}) == b'{"a":"\\b\\f"}'
    assert canonical_json(parse_json('{"a":"\\u0008\\u000C"}')) == b'{"a":"\\b\\f"}'
    assert canonical_json("\x00\x1b\x1f\x7f") == b'"\\u0000\\u001b\\u001f\x7f"'


def test_string_escapes_match_go() -> None:
    value = {"k<>&": '</script>&\u2028\u2029 \u00e9 / \\ " \t\n\r'}
    assert canonical_json(value) == (
        '{"k\\u003c\\u003e\\u0026":"\\u003c/script\\u003e\\u0026\\u2028\\u2029 \u00e9 / \\\\ \\" \\t\\n\\r"}'
    ).encode("utf-8")


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (123456.0, "123456"),
        (1e20, "100000000000000000000"),
        (12345678901234567890.0, "12345678901234567000"),
        (9007199254740993.0, "9007199254740992"),
        (1e16, "10000000000000000"),
        (0.000001, "0.000001"),
        (0.0001, "0.0001"),
        (0.00001234, "0.00001234"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (-1e21, "-1e+21"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (9.99e-7, "9.99e-7"),
        (1e100, "1e+100"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        (123.456, "123.456"),
    ],
)
def test_go_number_formatting(number: float, text: str) -> None:
    assert go_float(number) == text
    assert canonical_json([number]) == f"[{text}]".encode()
    assert canonical_json(parse_json(f"[{text}]")) == f"[{text}]".encode()


def test_ints_are_doubles() -> None:
    assert canonical_json({"a": 1}) == canonical_json({"a": 1.0}) == b'{"a":1}'
    assert canonical_json(9007199254740993) == b"9007199254740992"
    assert canonical_json(10**21) == b"1e+21"
    assert canonical_json(True) == b"true"  # bool is not a number
    with pytest.raises(InvalidArgumentError, match="range"):
        canonical_json(10**400)


def test_structure_and_other_containers() -> None:
    assert canonical_json({}) == b"{}"
    assert canonical_json([]) == b"[]"
    assert canonical_json(("a", None, False)) == b'["a",null,false]'
    assert (
        canonical_json({"b": {"d": [], "c": {}}, "a": [1.5, [True]]})
        == b'{"a":[1.5,[true]],"b":{"c":{},"d":[]}}'
    )


def test_keys_sort_by_utf8_bytes() -> None:
    # U+FF61 (3 UTF-8 bytes, EF BD A1) sorts before U+1F600 (F0 ...), as code points do.
    keys = ["\U0001f600", "\uff61", "\u00e9", "z", "Z", "", "a\u0000"]
    encoded = canonical_json(dict.fromkeys(keys, 0)).decode("utf-8")
    order = [key.encode("utf-8") for key in sorted(keys, key=lambda k: k.encode("utf-8"))]
    assert encoded == "{" + ",".join(f"{_reference_string(k.decode())}:0" for k in order) + "}"


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), {1: "a"}, {"a": {2: "b"}}, {b"a"}, b"bytes", object()],
)
def test_unencodable_values_are_refused(value: object) -> None:
    with pytest.raises(InvalidArgumentError):
        canonical_json(value)


def test_lone_surrogates_become_replacement_characters() -> None:
    assert canonical_json("a\ud800b") == '"a\ufffdb"'.encode()
    assert canonical_json({"\udfff": 1}) == '{"\ufffd":1}'.encode()
    assert parse_json('"\\ud800"') == "\ufffd"
    assert parse_json('"\\ud83d\\ude00"') == "\U0001f600"  # a valid pair stays one character
    assert parse_canonical('["\\udc00"]')[1] == '["\ufffd"]'.encode()


def test_too_deep_nesting_is_invalid_argument() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        canonical_json(deep)
    with pytest.raises(InvalidArgumentError, match="nested too deeply"):
        parse_json("[" * 100_000 + "]" * 100_000)


def test_parse_json_numbers_are_floats_and_duplicates_keep_the_last() -> None:
    value = parse_json(b'{"a": 1, "b": [2, -0, 1e2], "a": 3}')
    assert value == {"a": 3.0, "b": [2.0, -0.0, 100.0]}
    assert isinstance(value, dict) and all(isinstance(n, float) for n in [value["a"], *value["b"]])
    assert canonical_json(value) == b'{"a":3,"b":[2,-0,100]}'
    assert parse_canonical(b'{"a": 1, "a": 2}')[1] == b'{"a":2}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"", "line 1 column 1"),
        (b'{"a":1,}', "line 1 column 8"),
        (b'{"a":\n nul}', "line 2 column 2"),
        (b"[1] [2]", "Extra data"),
        (b"NaN", "NaN is not a JSON value"),
        (b"[-Infinity]", "-Infinity is not a JSON value"),
        (b"[1e400]", "out of the range"),
        (b"[-1" + b"0" * 400 + b"]", "out of the range"),
        (b'"\xff"', "not UTF-8 at byte 1"),
        (b'\xef\xbb\xbf{"a":1}', "BOM"),
        (b'{"a":"tab\there"}', "control character"),
        (b"[01]", "line 1 column 3"),
    ],
)
def test_invalid_json_is_refused(text: bytes, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=reason):
        parse_json(text)
    with pytest.raises(InvalidArgumentError, match=reason):
        parse_canonical(text)


# A reference encoder written straight from specs/directory.md §2.1, independent of the fast paths.


def _reference_number(number: float) -> str:
    if number == 0:
        return "-0" if str(number).startswith("-") else "0"
    exact = Decimal(repr(number))  # the shortest round-trip digits, as a decimal value
    if abs(number) < 1e-6 or abs(number) >= 1e21:
        sign, digits, exponent = exact.normalize().as_tuple()
        assert isinstance(exponent, int)
        mantissa = "".join(map(str, digits))
        power = exponent + len(digits) - 1
        head = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        return ("-" if sign else "") + head + "e" + ("+" if power >= 0 else "-") + str(abs(power))
    text = format(exact, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _reference_string(text: str) -> str:
    short = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
    out = []
    for char in text:
        if char in short:
            out.append(short[char])
        elif ord(char) < 0x20 or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _reference(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _reference_number(float(value))
    if isinstance(value, str):
        return _reference_string(value)
    if isinstance(value, list):
        return "[" + ",".join(_reference(item) for item in value) + "]"
    assert isinstance(value, dict)
    keys = sorted(value, key=lambda key: key.encode("utf-8"))
    return "{" + ",".join(f"{_reference_string(key)}:{_reference(value[key])}" for key in keys) + "}"


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["<&>", "\u2028", "\b\f\x00\x1f\x7f", '"\\/', "\u00e9\U0001f600"]
)
_NUMBERS = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0.0, -0.0, 1e-6, 9.999999e-7, 1e21, 999999999999999900000.0, 2.0**53, 1e-4, 1e16])
)
_JSON = st.recursive(
    st.none() | st.booleans() | _NUMBERS | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=24,
)


@given(_JSON)
def test_canonical_json_matches_the_reference_and_round_trips(value: object) -> None:
    canonical = canonical_json(value)
    assert canonical == _reference(value).encode("utf-8")
    assert canonical_json(parse_json(canonical)) == canonical
    assert parse_canonical(canonical)[1] == canonical
    assert parse_canonical(json.dumps(value, indent=1))[1] == canonical


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_matches_the_reference(number: float) -> None:
    assert go_float(number) == _reference_number(number)
    assert float(go_float(number)) == number


# --- records -------------------------------------------------------------------------------------


def _record_070() -> Record:
    return Record.from_json((VECTORS / "record_070.json").read_bytes())


def test_record_fields() -> None:
    record = _record_070()
    assert record.name == "directory.agntcy.org/cisco/marketing-strategy-v3"
    assert record.version == "v3.0.0"
    assert record.schema_version == "0.7.0"
    assert record.created_at == "2025-03-19T17:06:37Z"
    assert record.previous_cid == ""
    assert record.annotations == {"key": "value"}
    assert record.document()["skills"][0]["id"] == 10201.0
    assert hash(record) == hash(Record.from_document(record.document()))


def test_record_fields_that_are_not_strings_read_as_empty() -> None:
    record = Record.from_document(
        {
            "name": 1,
            "version": None,
            "previous_record_cid": HELLO_CID,
            "annotations": {"n": 1.0, "o": {"b": 1, "a": [True]}},
        }
    )
    assert (record.name, record.version, record.schema_version, record.created_at) == ("", "", "", "")
    assert record.previous_cid == HELLO_CID
    assert record.annotations == {"n": "1", "o": '{"a":[true],"b":1}'}


@pytest.mark.parametrize("text", ["[]", '"record"', "1", "null", "true"])
def test_record_must_be_an_object(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="record must be a JSON object"):
        Record.from_json(text)
    with pytest.raises(InvalidArgumentError, match="record must be a JSON object"):
        Record.from_document(parse_json(text))


def test_record_size_limit_is_exactly_4_mib() -> None:
    overhead = len(b'{"x":""}')
    record = Record.from_document({"x": "a" * (MAX_RECORD_BYTES - overhead)})
    assert len(record.canonical) == MAX_RECORD_BYTES
    check_limits(record)
    record = Record.from_document({"x": "a" * (MAX_RECORD_BYTES - overhead + 1)})
    with pytest.raises(
        ResourceExhaustedError, match=rf"record {record.cid} is 4194305 bytes, over the 4 MiB limit"
    ):
        check_limits(record)


def test_annotations_limit_is_exactly_100_kib() -> None:
    overhead = len(b'{"k":""}')
    annotations = {"k": "a" * (MAX_METADATA_BYTES - overhead)}
    check_metadata(annotations, "signature")
    check_limits(Record.from_document({"annotations": annotations}))
    annotations = {"k": "a" * (MAX_METADATA_BYTES - overhead + 1)}
    with pytest.raises(InvalidArgumentError, match="signature: annotations are 102401 bytes"):
        check_metadata(annotations, "signature")
    record = Record.from_document({"annotations": annotations})
    with pytest.raises(InvalidArgumentError, match=f"record {record.cid}: annotations are 102401 bytes"):
        check_limits(record)
    # Escapes count as written: 20,480 "<" are 122,880 canonical bytes.
    with pytest.raises(InvalidArgumentError, match="over the 100 KiB limit"):
        check_metadata({"k": "<" * 20_480}, "signature")


def test_manifest_annotations_and_record_meta_round_trip() -> None:
    record = _record_070()
    annotations = manifest_annotations(record)
    assert annotations == {
        "org.agntcy.dir/type": "record",
        "org.agntcy.dir/cid": record.cid,
        "org.agntcy.dir/name": "directory.agntcy.org/cisco/marketing-strategy-v3",
        "org.agntcy.dir/version": "v3.0.0",
        "org.agntcy.dir/schema-version": "0.7.0",
        "org.agntcy.dir/created-at": "2025-03-19T17:06:37Z",
        "org.agntcy.dir/oasf-version": "0.7.0",
        "org.agntcy.dir/custom.key": "value",
    }
    assert record_meta(record.cid, annotations) == RecordMeta(
        cid=record.cid,
        annotations={
            "name": "directory.agntcy.org/cisco/marketing-strategy-v3",
            "version": "v3.0.0",
            "oasf-version": "0.7.0",
            "key": "value",
        },
        schema_version="0.7.0",
        created_at="2025-03-19T17:06:37Z",
    )


def test_manifest_annotations_of_a_bare_record() -> None:
    record = Record.from_document({"previous_record_cid": HELLO_CID, "annotations": {"name": "custom wins"}})
    annotations = manifest_annotations(record)
    assert annotations == {
        "org.agntcy.dir/type": "record",
        "org.agntcy.dir/cid": record.cid,
        "org.agntcy.dir/oasf-version": "",
        "org.agntcy.dir/previous-cid": HELLO_CID,
        "org.agntcy.dir/custom.name": "custom wins",
    }
    meta = record_meta(record.cid, annotations)
    assert meta == RecordMeta(record.cid, {"previous-cid": HELLO_CID, "name": "custom wins"}, "", "")


@pytest.mark.parametrize("annotations", [{}, {KEY_TYPE: "referrer"}, {"org.agntcy.dir/cid": HELLO_CID}])
def test_record_meta_of_a_manifest_without_the_record_type_is_corrupt(annotations: dict[str, str]) -> None:
    with pytest.raises(CorruptRecordError, match=KEY_TYPE) as caught:
        record_meta(HELLO_CID, annotations)
    assert isinstance(caught.value, DataLossError)


def test_record_identity_ignores_formatting() -> None:
    first = Record.from_json('{"b": 1, "a": [1.0, "x"]}')
    second = Record.from_document({"a": [1, "x"], "b": 1.0})
    assert first == second and first.cid == second.cid
    assert first.cid == cid_of_bytes(b'{"a":[1,"x"],"b":1}')
    assert hashlib.sha256(first.canonical).hexdigest() == first.digest.hex
