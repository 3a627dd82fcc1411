"""Canonical JSON (Go ``encoding/json`` bytes) of untrusted JSON text and values.

Properties: parsing raises only InvalidArgumentError; ``parse_canonical`` agrees
with ``canonical_json(parse_json(...))``; canonical bytes are a fixed point
(canonicalising them again gives the same bytes); they are valid UTF-8 JSON that
Python reads back to the same value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from cairn.core.errors import InvalidArgumentError
from cairn.directory.canonical import canonical_json, go_float, parse_canonical, parse_json
from tests.fuzz.budget import budget, tried

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
              st.integers(-(2**60), 2**60), st.text(max_size=12),
              st.sampled_from(["<&>", "\u2028", "\ud800", "\x00", "é", "\U0001f600"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)
json_texts = st.one_of(
    json_values.map(json.dumps),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False, indent=1)),
    st.text(max_size=60),
    st.lists(st.sampled_from(['{', '}', '[', ']', '"a"', ':', ',', '1e400', '-0', '1.5e-7', 'NaN', 'null',
                              '"\\ud800"', '"\\udc00\\ud800"', '"\\u00e9"', ' ', '\ufeff', '0.1']),
             max_size=12).map("".join),
)


def _same(a: Any, b: Any) -> bool:
    """Equal as Go values: numbers compare as doubles."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return isinstance(b, (int, float)) and not isinstance(b, bool) and float(a) == float(b)
    return bool(a == b)


@budget(400)
@given(st.one_of(json_texts, st.binary(max_size=60)))
@example("[" * 50_000)
@example(b"\xef\xbb\xbf{}")
@example('{"a": 1e309}')
@example('"\\ud800"')
def test_parse_and_canonicalise(text: str | bytes) -> None:
    tried("canonical-json")
    try:
        _value, canonical = parse_canonical(text)
    except InvalidArgumentError:
        try:
            parse_json(text)
        except InvalidArgumentError:
            return
        raise AssertionError("parse_canonical refused what parse_json accepts") from None
    assert canonical == canonical_json(parse_json(text))
    assert parse_canonical(canonical)[1] == canonical  # idempotent
    assert _same(json.loads(canonical.decode("utf-8")), parse_json(canonical))
    assert not any(c in canonical for c in (b"\n", b"<", b">", b"&"))  # Go escapes these


@budget(300)
@given(json_values)
def test_values_canonicalise_to_a_fixed_point(value: Any) -> None:
    tried("canonical-json")
    try:
        canonical = canonical_json(value)
    except InvalidArgumentError:
        return
    assert canonical_json(parse_json(canonical)) == canonical
    assert parse_canonical(canonical)[1] == canonical


@budget(200)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_go_float_reads_back_exactly(number: float) -> None:
    tried("canonical-json")
    text = go_float(number)
    assert float(text) == number and math.copysign(1, float(text)) == math.copysign(1, number)
