"""Unit tests for cairn.core.content.filters, containerd's filter language."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.content.filters import (
    Fields,
    Filter,
    content_fields,
    ingest_fields,
    parse_filters,
)
from cairn.core.errors import InvalidArgumentError

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
LABELS = {
    "k": "v",
    "foo": "true",
    "a.b": "c",
    "containerd.io/gc.root": "2024-01-01",
    "with space": "x y",
    'odd \\ and "': "present",
    "empty": "",
}

BLOB = content_fields(DIGEST, LABELS)
BARE = content_fields(OTHER_DIGEST, {})


def matches(expressions: list[str], fields: Fields) -> bool:
    return parse_filters(expressions).match(fields)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # presence
        ("labels.foo", True),
        ("labels.nope", False),
        ("digest", True),
        ("size", False),
        ("unknown", False),
        ("labels.empty", True),
        # equality, quoting of fields
        ('labels."k"==v', True),
        ("labels.k==v", True),
        ("labels.k==w", False),
        ('labels."containerd.io/gc.root"', True),
        ('labels."containerd.io/gc.root"==2024-01-01', True),
        ("labels.a.b==c", True),
        ('labels."a.b"==c', True),
        ('labels.a."b"==c', True),
        ('labels."with space"=="x y"', True),
        (r'labels."odd \\ and \""==present', True),
        (r'labels."\x6b"==v', True),
        (r'labels."\u006b"==v', True),
        (r'labels."\U0000006b"==v', True),
        (r'labels."\153"==v', True),
        (r'labels.k=="\x76"', True),
        ('labels.empty==""', True),
        # digests
        (f"digest=={DIGEST}", True),
        (f"digest=={OTHER_DIGEST}", False),
        ("digest~=^sha256:ab", True),
        ("digest~=^sha512:", False),
        ("digest~=abab", True),  # unanchored search
        # inequality: absent fields compare as "" and so differ from any non-empty value
        ("labels.k!=w", True),
        ("labels.k!=v", False),
        ("labels.nope!=v", True),
        ('labels.nope!=""', False),
        # regexps, with alternative quotes
        (r"digest~=/^sha256:[a-f0-9]+$/", True),
        (r"labels.a.b~=/^c$/", True),
        (r"labels.containerd~=/x/", False),
        (r'labels."containerd.io/gc.root"~=/^\d{4}-\d\d/', True),
        (r"labels.k~=|^(v\|w)$|", True),
        (r'labels.k~="^v$"', True),
        (r'labels."with space"~=/x\sy/', True),
        # AND
        ('labels."k",digest~=^sha256', True),
        ('labels."a",digest~=^sha256', False),
        ("labels.foo==true,labels.k==v,digest", True),
        ("labels.foo==true,labels.k==w", False),
        # whitespace around tokens
        (" labels . k == v , digest ~= ^sha256 ", True),
        ("\tlabels.foo\t", True),
    ],
)
def test_match_content(expression: str, expected: bool) -> None:
    assert matches([expression], BLOB) is expected


@pytest.mark.parametrize(
    ("expression", "ref", "expected"),
    [
        ("ref~=^layer-", "layer-sha256:1", True),
        ("ref~=^layer-", "config-1", False),
        (r"ref~=/^x\.y/", "x.y-1", True),
        (r"ref~=/^x\.y/", "xzy", False),
        (r"ref~=/a\/b/", "a/b", True),
        ("ref==layer-1", "layer-1", True),
        ("ref", "anything", True),
        ("digest", "anything", False),
        ("ref!=a", "b", True),
    ],
)
def test_match_ingest(expression: str, ref: str, expected: bool) -> None:
    assert matches([expression], ingest_fields(ref)) is expected


@pytest.mark.parametrize(
    ("expressions", "on_blob", "on_bare"),
    [
        ([], True, True),
        ([""], True, True),
        (["labels.nope", ""], True, True),
        ([f"digest=={DIGEST}", "labels.y"], True, False),
        ([f"digest=={OTHER_DIGEST}", "labels.k"], True, True),
        (["labels.nope", "labels.k==w"], False, False),
        (["labels.k", "labels.k==w"], True, False),
    ],
)
def test_or_of_list(expressions: list[str], on_blob: bool, on_bare: bool) -> None:
    f = parse_filters(expressions)
    assert isinstance(f, Filter)
    assert f.match(BLOB) is on_blob
    assert f.match(BARE) is on_bare


def test_paths_reach_fields_as_segments() -> None:
    seen: list[tuple[str, ...]] = []

    def fields(path: tuple[str, ...]) -> str | None:
        seen.append(path)
        return "present"  # so that All goes on to the second selector

    parse_filters([r'labels.a."b.c"."d\"e".f1_2,x']).match(fields)
    assert seen == [("labels", "a", "b.c", 'd"e', "f1_2"), ("x",)]


def test_content_fields() -> None:
    assert BLOB(("digest",)) == DIGEST
    assert BLOB(("labels", "a", "b")) == "c"
    assert BLOB(("labels", "k")) == "v"
    assert BLOB(("labels", "missing")) is None
    assert BLOB(("size",)) is None
    assert BLOB(("ref",)) is None
    assert BLOB(()) is None
    assert ingest_fields("r")(("ref",)) == "r"
    assert ingest_fields("r")(("digest",)) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("labels.|foo|==x", "[labels. >|||< foo|==x]: invalid quote encountered"),
        ('labels.?"k"', '[labels. >|?|< "k"]: expected field or quoted'),
        ("name==foo,", "[name==foo,]: expected field or quoted"),
        ("labels.", "[labels.]: expected field or quoted"),
        (",", "[ >|,|< ]: expected field or quoted"),
        ("a==b,,c", "[a==b, >|,|< c]: expected field or quoted"),
        ("image~=,id", "[image~= >|,|< id]: expected value or quoted"),
        ("a==", "[a==]: expected value or quoted"),
        ("a b", '[a  >|b|< ]: expected an operator ("=="|"!="|"~=")'),
        ("a===b", '[a >|=|< ==b]: unsupported operator "==="'),
        ("a=b", '[a >|=|< b]: unsupported operator "="'),
        ("a==b c", "[a==b  >|c|< ]: unexpected input: c"),
        ('a=="abc', '[a== >|"|< abc]: quoted literal not terminated'),
        ("a~=/abc", "[a~= >|/|< abc]: quoted literal not terminated"),
        ('"a\nb"', '[ >|"|< a\nb"]: quoted literal not terminated'),
        (r'a=="\q"', r'[a== >|"|< \q"]: illegal escape sequence'),
        (r'a=="\x4"', r'[a== >|"|< \x4"]: illegal numeric escape sequence'),
        (r'a=="\uD800"', r'[a== >|"|< \uD800"]: illegal numeric escape sequence'),
        (r'a=="\400"', r'[a== >|"|< \400"]: illegal numeric escape sequence'),
        (r'a=="\xff"', r'[a== >|"|< \xff"]: unquoting failed: invalid UTF-8'),
        ("a==/x/", "[a== >|/|< x/]: invalid quote encountered"),
        ("a!=|x|", "[a!= >|||< x|]: invalid quote encountered"),
        ("a-b", "[a >|-|< b]: expected an operator"),
        ("a\x00", "[a >|\x00|< ]: unexpected null"),
    ],
)
def test_parse_errors(expression: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_filters(["labels.ok", expression])
    assert str(info.value).startswith("filters: parse error: " + message)


@pytest.mark.parametrize("regexp", ["[", "(", "a{2,1}", "a{4294967296}", "(" * 2000 + ")" * 2000])
def test_invalid_regexp_is_a_parse_error(regexp: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^filters: parse error: .*: invalid regexp"):
        parse_filters([f"digest~=/{regexp}/"])


def test_regexp_compiled_once_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    f = parse_filters(["digest~=^sha256"])

    def fail(*_: object) -> None:
        raise AssertionError("compiled during match")

    monkeypatch.setattr(re, "compile", fail)
    assert f.match(BLOB)


@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_invalid_argument(text: str) -> None:
    try:
        f = parse_filters([text])
    except InvalidArgumentError as exc:
        assert str(exc).startswith("filters: parse error: ")
        return
    assert isinstance(f, Filter)
    assert isinstance(f.match(BLOB), bool)
    assert isinstance(f.match(ingest_fields("ref-1")), bool)


_TOKENS = st.sampled_from(
    [
        "labels",
        "digest",
        "ref",
        ".",
        ",",
        "==",
        "!=",
        "~=",
        "=",
        "!",
        "~",
        " ",
        '"',
        "/",
        "|",
        "\\",
        "a",
        "k",
        "^",
        "$",
        "[",
        "(",
        "\\x",
        "\\u00",
        "\n",
        "-",
        "sha256:ab",
    ]
)


@given(st.lists(st.lists(_TOKENS, max_size=12).map("".join), max_size=3))
def test_grammar_like_text_parses_or_raises_invalid_argument(texts: list[str]) -> None:
    try:
        f = parse_filters(texts)
    except InvalidArgumentError as exc:
        assert str(exc).startswith("filters: parse error: ")
        return
    assert isinstance(f.match(BLOB), bool)
    assert isinstance(f.match(BARE), bool)
