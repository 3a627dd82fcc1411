"""Digest parsing: one value type, validated once, errors are InvalidArgumentError only."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError

GOOD = "sha256:" + hashlib.sha256(b"x").hexdigest()


def test_roundtrip_and_of() -> None:
    digest = Digest.parse(GOOD)
    assert str(digest) == GOOD
    assert Digest.of(b"x") == digest
    assert Digest.of(b"x", "sha512") == Digest.parse("sha512:" + hashlib.sha512(b"x").hexdigest())
    assert digest.short() == GOOD[:19]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("sha256:abc", "invalid checksum digest length"),
        ("sha384:" + "0" * 96, "unsupported digest algorithm"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256", "invalid checksum digest format"),
        ("", "invalid checksum digest format"),
        (":" + "0" * 64, "invalid checksum digest format"),
        ("sha256:" + "0" * 63 + "/", "invalid checksum digest format"),
    ],
)
def test_malformed(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError, match=reason):
        Digest.parse(text)


@given(st.text(max_size=200))
def test_parse_raises_only_invalid_argument(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except InvalidArgumentError:
        return
    assert str(digest) == text


@given(st.binary(max_size=1000))
def test_of_is_hashlib(data: bytes) -> None:
    assert Digest.of(data).hex == hashlib.sha256(data).hexdigest()
