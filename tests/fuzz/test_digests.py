"""Digests and CIDs from untrusted text: only InvalidArgumentError, and exact round trips.

A digest that parses must print back as the very text it came from and match the
strict wire grammar (nothing after the hex, not even a newline), because it becomes
a path component and a SQL key. Every accepted CID spelling maps onto one canonical
CID, and the canonical form is a fixed point.
"""

from __future__ import annotations

import base64
import re

from hypothesis import example, given
from hypothesis import strategies as st

from cairn.core.cid import cid_of_bytes, cid_to_digest, digest_to_cid, normalise_cid
from cairn.core.digest import ALGORITHMS, Digest
from cairn.core.errors import InvalidArgumentError
from tests.fuzz.budget import budget, tried

STRICT = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")
HEX = "0123456789abcdef"

# Text near the grammar: an algorithm, a separator and hex-ish digits with a stray character.
near_digests = st.builds(
    lambda alg, sep, body, tail: f"{alg}{sep}{body}{tail}",
    st.sampled_from([*ALGORITHMS, "sha384", "SHA256", "sha256+b64", "", "md5"]),
    st.sampled_from([":", "::", "", " :"]),
    st.one_of(
        st.text(HEX, min_size=60, max_size=130),
        st.sampled_from([0, 1, 63, 64, 65, 127, 128, 129]).map(lambda n: "a" * n),
    ),
    st.sampled_from(["", "\n", "\r\n", " ", "\x00", "/", "/../x", "A", "é"]),
)


@budget(300)
@given(st.one_of(st.text(max_size=200), near_digests))
# Found by this property: ``$`` in the grammar let a newline through after 63 hex digits.
@example("sha256:" + "a" * 63 + "\n")
def test_digest_parse_refuses_or_round_trips(text: str) -> None:
    tried("digest")
    try:
        digest = Digest.parse(text)
    except InvalidArgumentError:
        assert not STRICT.fullmatch(text)
        return
    assert STRICT.fullmatch(text), text
    assert str(digest) == text
    assert Digest.parse(str(digest)) == digest


@budget(100)
@given(st.sampled_from(sorted(ALGORITHMS)), st.text(max_size=140))
def test_digest_constructor_validates(algorithm: str, hex_: str) -> None:
    tried("digest")
    try:
        digest = Digest(algorithm, hex_)
    except InvalidArgumentError:
        return
    assert STRICT.fullmatch(str(digest)), hex_


def _spellings(digest_bytes: bytes) -> list[str]:
    """Spellings of one CID that the lenient decoder accepts (multibases, CIDv0)."""
    cid = b"\x01\x01\x12\x20" + digest_bytes
    raw32 = base64.b32encode(cid).decode()
    b58 = _b58(b"\x12\x20" + digest_bytes)
    return [
        "b" + raw32.rstrip("=").lower(),
        "B" + raw32.rstrip("="),
        "c" + raw32.lower(),
        "f" + cid.hex(),
        "F" + cid.hex().upper(),
        "m" + base64.b64encode(cid).decode().rstrip("="),
        "u" + base64.urlsafe_b64encode(cid).decode().rstrip("="),
        "z" + _b58(cid),
        b58,
    ]


def _b58(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number, out = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        out = alphabet[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


@budget(150)
@given(st.binary(min_size=32, max_size=32))
def test_every_cid_spelling_normalises_to_the_canonical_one(digest_bytes: bytes) -> None:
    tried("cid")
    digest = Digest("sha256", digest_bytes.hex())
    canonical = digest_to_cid(digest)
    assert canonical.startswith("baearei") and len(canonical) == 59
    for spelling in _spellings(digest_bytes):
        assert cid_to_digest(spelling) == digest, spelling
        assert normalise_cid(spelling) == canonical, spelling
    assert normalise_cid(canonical) == canonical


@budget(300)
@given(
    st.one_of(
        st.text(max_size=120),
        st.text("abcdefghijklmnopqrstuvwxyz234567", max_size=70).map(lambda s: "b" + s),
        st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=52, max_size=52).map(lambda s: "baearei" + s),
        st.binary(max_size=60).map(lambda b: "f" + b.hex()),
        st.binary(max_size=60).map(lambda b: "m" + base64.b64encode(b).decode()),
        st.binary(max_size=60).map(lambda b: "z" + _b58(b)),
        st.text("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", min_size=44, max_size=44)
        .map(lambda s: "Qm" + s),
    )
)
def test_cid_decoding_refuses_or_is_idempotent(text: str) -> None:
    tried("cid")
    try:
        canonical = normalise_cid(text)
    except InvalidArgumentError:
        return
    assert normalise_cid(canonical) == canonical
    assert digest_to_cid(cid_to_digest(text)) == canonical


@budget(100)
@given(st.binary(min_size=1, max_size=512))
def test_cid_of_bytes_is_the_sha256_cid(data: bytes) -> None:
    tried("cid")
    cid = cid_of_bytes(data)
    assert cid_to_digest(cid) == Digest.of(data)
