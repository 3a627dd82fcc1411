"""The registry client's hand-written parsers: auth challenges, Link headers, error bodies, hosts.

These are the parts urllib3 does not do for the client, so they are checked
here as named tables: what real registries and token services send, and the
malformed input that must raise InvalidArgumentError (and nothing else).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.errors import (
    CairnError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from cairn.oci.client import Challenge, base_url, is_loopback, next_link, parse_challenges, parse_links
from cairn.oci.client.transport import error_for
from cairn.oci.errors import BlobUnknownError, DigestInvalidError, ManifestUnknownError, NameUnknownError

# --- WWW-Authenticate -----------------------------------------------------------------------

CHALLENGES: list[tuple[str, str | list[str], list[Challenge]]] = [
    ("distribution htpasswd", 'Basic realm="test-realm"', [Challenge("basic", {"realm": "test-realm"})]),
    ("bare Basic", "Basic", [Challenge("basic")]),
    (
        "token spec example, comma inside the quoted scope",
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:ns/app:pull,push"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.example/token",
                    "service": "registry.example",
                    "scope": "repository:ns/app:pull,push",
                },
            )
        ],
    ),
    (
        "spaces around separators and equals signs",
        'Bearer realm = "https://a/t" ,  service="s"',
        [Challenge("bearer", {"realm": "https://a/t", "service": "s"})],
    ),
    (
        "insufficient_scope",
        'Bearer realm="https://a/t",service="s",scope="repository:x:push",error="insufficient_scope"',
        [
            Challenge(
                "bearer",
                {
                    "realm": "https://a/t",
                    "service": "s",
                    "scope": "repository:x:push",
                    "error": "insufficient_scope",
                },
            )
        ],
    ),
    (
        "scheme and parameter names are case-insensitive, values are not",
        'BEARER Realm="https://A/T",SERVICE=Reg',
        [Challenge("bearer", {"realm": "https://A/T", "service": "Reg"})],
    ),
    (
        "escapes inside a quoted string",
        r'Basic realm="a \"quoted\" realm \\ here"',
        [Challenge("basic", {"realm": 'a "quoted" realm \\ here'})],
    ),
    (
        "two challenges in one header",
        'Basic realm="r1", Bearer realm="https://a/t",service="s"',
        [Challenge("basic", {"realm": "r1"}), Challenge("bearer", {"realm": "https://a/t", "service": "s"})],
    ),
    (
        "two header lines",
        ['Basic realm="r1"', 'Bearer realm="https://a/t"'],
        [Challenge("basic", {"realm": "r1"}), Challenge("bearer", {"realm": "https://a/t"})],
    ),
    (
        "a bare scheme before another challenge",
        'Negotiate, Basic realm="r"',
        [Challenge("negotiate"), Challenge("basic", {"realm": "r"})],
    ),
    ("token68 credentials", "Negotiate abc+/def==", [Challenge("negotiate", token68="abc+/def==")]),
    (
        "token68 then another challenge",
        'Negotiate abc=, Basic realm="r"',
        [Challenge("negotiate", token68="abc="), Challenge("basic", {"realm": "r"})],
    ),
    ("empty list elements", ' , Basic realm="r" ,, ', [Challenge("basic", {"realm": "r"})]),
    (
        "unquoted URL values (lenient)",
        "Bearer realm=https://auth.example/token,service=registry.example",
        [Challenge("bearer", {"realm": "https://auth.example/token", "service": "registry.example"})],
    ),
    (
        "empty quoted value",
        'Bearer realm="https://a/t",scope=""',
        [Challenge("bearer", {"realm": "https://a/t", "scope": ""})],
    ),
    (
        "a repeated parameter keeps the first value",
        'Basic realm="one", realm="two"',
        [Challenge("basic", {"realm": "one"})],
    ),
    ("a lone word after the scheme is token68", "Bearer realm", [Challenge("bearer", token68="realm")]),
    ("nothing at all", "", []),
]


@pytest.mark.parametrize(("header", "expected"), [c[1:] for c in CHALLENGES], ids=[c[0] for c in CHALLENGES])
def test_challenges(header: str | list[str], expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


BAD_CHALLENGES = [
    ("unterminated quote", 'Bearer realm="https://a/t'),
    ("unterminated escape", 'Basic realm="abc\\'),
    ("parameter with empty value", "Bearer realm=,service=s"),
    ("no scheme", '="x"'),
    ("junk after a value", 'Bearer realm="x" junk'),
    ("junk after the scheme", 'Basic"realm"'),
]


@pytest.mark.parametrize("header", [c[1] for c in BAD_CHALLENGES], ids=[c[0] for c in BAD_CHALLENGES])
def test_malformed_challenges_raise_invalid_argument(header: str) -> None:
    with pytest.raises(InvalidArgumentError, match="WWW-Authenticate"):
        parse_challenges(header)


@given(st.text(max_size=80))
def test_challenge_parser_raises_only_invalid_argument(header: str) -> None:
    try:
        parse_challenges(header)
    except InvalidArgumentError:
        pass


# --- Link -----------------------------------------------------------------------------------

REQUEST = "http://127.0.0.1:5000/v2/_catalog?n=2"

LINKS: list[tuple[str, str | list[str], str | None]] = [
    (
        "distribution catalog, relative",
        '</v2/_catalog?last=b&n=2>; rel="next"',
        "http://127.0.0.1:5000/v2/_catalog?last=b&n=2",
    ),
    (
        "absolute URL on another host",
        '<https://other.example/v2/_catalog?last=b>; rel="next"',
        "https://other.example/v2/_catalog?last=b",
    ),
    ("unquoted rel", "</v2/_catalog?last=b>;rel=next", "http://127.0.0.1:5000/v2/_catalog?last=b"),
    ("rel compares case-insensitively", '</x>; REL="Next"', "http://127.0.0.1:5000/x"),
    ("rel lists several relations", '</x>; rel="last next"', "http://127.0.0.1:5000/x"),
    ("next after prev", '</p>; rel="prev", </n>; rel="next"', "http://127.0.0.1:5000/n"),
    (
        "comma and semicolon inside the URL",
        '</v2/x?last=a,b;c>; rel="next"',
        "http://127.0.0.1:5000/v2/x?last=a,b;c",
    ),
    (
        "quoted parameters with commas before rel",
        '</n>; title="a, b; c"; rel="next"',
        "http://127.0.0.1:5000/n",
    ),
    (
        "path relative to the request",
        '<_catalog?last=z>; rel="next"',
        "http://127.0.0.1:5000/v2/_catalog?last=z",
    ),
    ("second header line", ['</p>; rel="prev"', '</n>; rel="next"'], "http://127.0.0.1:5000/n"),
    ("only prev", '</p>; rel="prev"', None),
    ("rel that merely contains next", '</p>; rel="nextpage"', None),
    ("no rel at all", "</p>", None),
    ("empty header", "", None),
]


@pytest.mark.parametrize(("header", "expected"), [c[1:] for c in LINKS], ids=[c[0] for c in LINKS])
def test_next_link(header: str | list[str], expected: str | None) -> None:
    assert next_link(header, REQUEST) == expected


def test_links_keep_every_parameter() -> None:
    assert parse_links('<a>; rel="next"; type="application/json", <b>; anchor="#x"; flag') == [
        ("a", {"rel": "next", "type": "application/json"}),
        ("b", {"anchor": "#x", "flag": ""}),
    ]


BAD_LINKS = [
    ("no angle brackets", "/v2/_catalog?last=b; rel=next"),
    ("unterminated URL", '</v2/_catalog?last=b; rel="next"'),
    ("missing semicolon", '</x> rel="next"'),
    ("unterminated quote", '</x>; rel="next'),
]


@pytest.mark.parametrize("header", [c[1] for c in BAD_LINKS], ids=[c[0] for c in BAD_LINKS])
def test_malformed_links_raise_invalid_argument(header: str) -> None:
    with pytest.raises(InvalidArgumentError, match="Link"):
        next_link(header, REQUEST)


@given(st.text(max_size=80))
def test_link_parser_raises_only_invalid_argument(header: str) -> None:
    try:
        next_link(header, REQUEST)
    except InvalidArgumentError:
        pass


# --- error bodies ---------------------------------------------------------------------------


def _errors(*errors: dict[str, object]) -> bytes:
    return json.dumps({"errors": list(errors)}).encode()


ERRORS: list[tuple[str, int, bytes, type[CairnError], list[str]]] = [
    (
        "manifest unknown",
        404,
        _errors({"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {"Tag": "x"}}),
        ManifestUnknownError,
        ["manifest r:x: not found at reg:5000", "MANIFEST_UNKNOWN: manifest unknown"],
    ),
    (
        "name unknown",
        404,
        _errors({"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}),
        NameUnknownError,
        ["NAME_UNKNOWN: repository name not known to registry"],
    ),
    (
        "blob unknown without message",
        404,
        _errors({"code": "BLOB_UNKNOWN"}),
        BlobUnknownError,
        ["BLOB_UNKNOWN"],
    ),
    ("404 without a body", 404, b"", NotFoundError, ["not found", "HTTP 404"]),
    ("404 with plain text", 404, b"404 page not found\n", NotFoundError, ["HTTP 404: 404 page not found"]),
    (
        "digest invalid",
        400,
        _errors({"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content"}),
        DigestInvalidError,
        ["rejected as invalid"],
    ),
    (
        "a code that disagrees with the status keeps the status's kind",
        400,
        _errors({"code": "MANIFEST_UNKNOWN", "message": "odd"}),
        InvalidArgumentError,
        ["MANIFEST_UNKNOWN: odd"],
    ),
    (
        "unauthorized",
        401,
        _errors({"code": "UNAUTHORIZED", "message": "authentication required"}),
        UnauthenticatedError,
        ["UNAUTHORIZED: authentication required"],
    ),
    ("denied", 403, _errors({"code": "DENIED", "message": "no"}), PermissionDeniedError, ["access denied"]),
    ("unsupported", 405, _errors({"code": "UNSUPPORTED"}), UnimplementedError, ["not supported"]),
    ("range", 416, b"", OutOfRangeError, ["range not satisfiable"]),
    (
        "server error",
        500,
        _errors({"code": "UNKNOWN", "message": "unknown error"}),
        UnavailableError,
        ["UNKNOWN"],
    ),
    ("bad gateway with HTML", 502, b"<html>bad gateway</html>", UnavailableError, ["(HTTP 502)"]),
    (
        "several errors all named",
        400,
        _errors(
            {"code": "MANIFEST_BLOB_UNKNOWN", "message": "a"},
            {"code": "MANIFEST_BLOB_UNKNOWN", "message": "b"},
        ),
        InvalidArgumentError,
        ["MANIFEST_BLOB_UNKNOWN: a; MANIFEST_BLOB_UNKNOWN: b"],
    ),
    ("errors not a list", 404, b'{"errors": "nope"}', NotFoundError, ["HTTP 404"]),
]


@pytest.mark.parametrize(
    ("status", "body", "kind", "fragments"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_error_bodies_map_to_kinds(
    status: int, body: bytes, kind: type[CairnError], fragments: list[str]
) -> None:
    error = error_for(status, body, "manifest r:x", "reg:5000")
    assert type(error) is kind or (kind is InvalidArgumentError and isinstance(error, kind))
    for fragment in fragments:
        assert fragment in error.message


def test_error_detail_travels_with_the_narrow_class() -> None:
    body = _errors({"code": "MANIFEST_UNKNOWN", "message": "m", "detail": {"Tag": "x"}})
    error = error_for(404, body, "manifest r:x", "reg")
    assert isinstance(error, ManifestUnknownError) and error.detail == {"Tag": "x"}


# --- hosts ----------------------------------------------------------------------------------

HOSTS = [
    ("127.0.0.1:8090", False, "http://127.0.0.1:8090"),
    ("127.1.2.3", False, "http://127.1.2.3"),
    ("localhost:5000", False, "http://localhost:5000"),
    ("[::1]:5000", False, "http://[::1]:5000"),
    ("registry.example", False, "https://registry.example"),
    ("10.0.0.1:5000", False, "https://10.0.0.1:5000"),
    ("10.0.0.1:5000", True, "http://10.0.0.1:5000"),
    ("https://127.0.0.1:8443", False, "https://127.0.0.1:8443"),
    ("http://registry.example/", False, "http://registry.example"),
]


@pytest.mark.parametrize(("host", "insecure", "expected"), HOSTS)
def test_base_url(host: str, insecure: bool, expected: str) -> None:
    assert base_url(host, insecure) == expected


@pytest.mark.parametrize("host", ["", "ftp://x", "host/path", "http://"])
def test_base_url_refuses_what_is_not_a_host(host: str) -> None:
    with pytest.raises(InvalidArgumentError):
        base_url(host)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost:1") and is_loopback("[::1]:2")
    assert not is_loopback("127.example.com") and not is_loopback("192.168.1.1:5000")
