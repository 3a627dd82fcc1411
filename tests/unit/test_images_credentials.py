"""Registry credentials: the request's ``auth`` field, auth files, and how they reach a registry.

Covers every base64 spelling of ``auth``, Docker Hub's aliases in auth files,
the operator's insecure list, and the two token forms the Authenticator learned
for them (a registry token sent as is; an identity token exchanged as an OAuth2
refresh token).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from cairn.core.errors import FailedPreconditionError, InvalidArgumentError, UnauthenticatedError
from cairn.images.access import RegistryAccess, retrying
from cairn.images.credentials import (
    Credentials,
    CredentialsFile,
    CredentialsFileCache,
    decode_auth,
    normalize_registry,
)
from cairn.images.progress import Progress
from cairn.oci.client.auth import OAUTH_CLIENT_ID, Authenticator

ALICE = {"username": "alice", "password": "pa:ss=wörd~~??>???", "serveraddress": "registry.example.com"}


def _spellings(document: object) -> list[str]:
    raw = json.dumps(document, ensure_ascii=False).encode()
    standard = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    return [standard, standard.rstrip("="), urlsafe, urlsafe.rstrip("="), f" {standard[:10]}\n{standard[10:]} "]


def test_payload_needs_both_alphabets() -> None:
    # The fixture must exercise the characters that differ between the alphabets, and padding.
    encoded = _spellings(ALICE)[0]
    assert "+" in encoded and "/" in encoded and encoded.endswith("=")


@pytest.mark.parametrize("text", _spellings(ALICE))
def test_decode_auth_accepts_every_base64_spelling(text: str) -> None:
    assert decode_auth(text) == Credentials(
        username="alice", password="pa:ss=wörd~~??>???", server_address="registry.example.com"
    )


@pytest.mark.parametrize("text", ["", "   ", "e30=", "e30", base64.b64encode(b"null").decode(),
                                  base64.b64encode(b'{"email": "a@b.c"}').decode(),
                                  base64.b64encode(b'{"serveraddress": "x.io"}').decode()])
def test_anonymous_forms_decode_to_none(text: str) -> None:
    assert decode_auth(text) is None


def test_field_names_compare_case_insensitively() -> None:
    text = base64.b64encode(json.dumps({"Username": "bob", "Password": "pw", "IdentityToken": ""}).encode())
    assert decode_auth(text.decode()) == Credentials(username="bob", password="pw")


def test_auth_field_gives_user_and_password() -> None:
    inner = base64.b64encode(b"carol:se:cret").decode()
    for text in _spellings({"auth": inner}):
        assert decode_auth(text) == Credentials(username="carol", password="se:cret")
    explicit = _spellings({"auth": inner, "username": "dave", "password": "x"})[0]
    assert decode_auth(explicit) == Credentials(username="dave", password="x")


def test_tokens_are_kept() -> None:
    text = _spellings({"identitytoken": "refresh-me", "registrytoken": "bearer-me"})[3]
    assert decode_auth(text) == Credentials(identity_token="refresh-me", registry_token="bearer-me")


@pytest.mark.parametrize(
    "text",
    [
        "not base64!",
        "abcde",  # impossible length
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(b'"text"').decode(),
        base64.b64encode(b'{"username": 5}').decode(),
        base64.b64encode(json.dumps({"auth": "bm9jb2xvbg=="}).encode()).decode(),  # "nocolon"
    ],
)
def test_malformed_auth_is_an_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        decode_auth(text)


def test_credentials_hide_secrets_in_repr() -> None:
    shown = repr(Credentials(username="u", password="hunter2", identity_token="tok", registry_token="rt"))
    assert "hunter2" not in shown and "tok" not in shown and "rt'" not in shown


# -- auth files -------------------------------------------------------------------
def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("http://localhost:5000", "localhost:5000"),
        ("https://GHCR.io/", "ghcr.io"),
        ("quay.io/org/", "quay.io/org"),
        ("127.0.0.1:5000/v2/", "127.0.0.1:5000"),
    ],
)
def test_normalize_registry(key: str, expected: str) -> None:
    assert normalize_registry(key) == expected


def test_docker_hub_by_its_legacy_key() -> None:
    data = json.dumps({"auths": {"https://index.docker.io/v1/": _auth("hubuser", "hubpw")}}).encode()
    found = CredentialsFile.parse(data)
    expected = Credentials(username="hubuser", password="hubpw")
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert found.lookup(name) == expected
    assert found.lookup("ghcr.io") is None


def test_lookup_by_host_and_port_and_scope(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({
        "auths": {
            "http://127.0.0.1:5000": _auth("local", "a"),
            "quay.io": _auth("quay", "b"),
            "quay.io/team": _auth("team", "c"),
            "quay.io/team/app": _auth("app", "d"),
            "ghcr.io": {"identitytoken": "refresh"},
            "empty.io": {"auth": ""},
        },
        "credsStore": "desktop",
    }))
    found = CredentialsFile.load(path)
    assert found.lookup("127.0.0.1:5000") == Credentials(username="local", password="a")
    assert found.lookup("127.0.0.1:5001") is None
    assert found.lookup("quay.io") == Credentials(username="quay", password="b")
    assert found.lookup("quay.io", "other/app") == Credentials(username="quay", password="b")
    assert found.lookup("quay.io", "team/tool") == Credentials(username="team", password="c")
    assert found.lookup("quay.io", "team/app") == Credentials(username="app", password="d")
    assert found.lookup("ghcr.io") == Credentials(identity_token="refresh")
    assert found.lookup("empty.io") is None


def test_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert len(CredentialsFile.load(tmp_path / "nope.json")) == 0


@pytest.mark.parametrize(
    "content",
    [b"{", b"[]", b'{"auths": []}', b'{"auths": {"x.io": "user:pw"}}', b'{"auths": {"x.io": {"auth": "%%"}}}'],
)
def test_a_malformed_file_is_a_failed_precondition(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(FailedPreconditionError, match="credentials file"):
        CredentialsFile.load(path)


def test_an_empty_file_or_one_without_auths_is_empty() -> None:
    assert len(CredentialsFile.parse(b"")) == 0
    assert len(CredentialsFile.parse(b'{"credHelpers": {"x.io": "pass"}}')) == 0


def test_the_cache_rereads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    cache = CredentialsFileCache(path)
    assert cache.current().lookup("x.io") is None
    path.write_text(json.dumps({"auths": {"x.io": _auth("one", "1")}}))
    assert cache.current().lookup("x.io") == Credentials(username="one", password="1")
    path.write_text(json.dumps({"auths": {"x.io": _auth("two", "22")}}))
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert cache.current().lookup("x.io") == Credentials(username="two", password="22")


# -- RegistryAccess ---------------------------------------------------------------------
def test_insecure_entries_by_name_port_and_network() -> None:
    access = RegistryAccess(insecure=frozenset({"reg.lan", "other.lan:5000", "10.1.0.0/16"}))
    assert access.is_insecure("reg.lan")
    assert access.is_insecure("reg.lan:443")
    assert access.is_insecure("other.lan:5000")
    assert not access.is_insecure("other.lan:5001")
    assert access.is_insecure("10.1.2.3:5000")
    assert not access.is_insecure("10.2.0.1:5000")
    assert not access.is_insecure("docker.io")


def test_clients_use_http_only_where_allowed() -> None:
    access = RegistryAccess(insecure=frozenset({"reg.lan:5000"}))
    with access.client("reg.lan:5000", None) as client:
        assert client.base_url == "http://reg.lan:5000"
    with access.client("127.0.0.1:5000", None) as client:
        assert client.base_url == "http://127.0.0.1:5000"
    with access.client("localhost:5000", None) as client:
        assert client.base_url == "http://localhost:5000"
    with access.client("ghcr.io", None) as client:
        assert client.base_url == "https://ghcr.io"
    with access.client("docker.io", None) as client:
        assert client.base_url == "https://registry-1.docker.io"


def test_request_credentials_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"x.io": _auth("file", "f")}}))
    access = RegistryAccess(credentials_file=path)
    assert access.credentials_for("x.io") == Credentials(username="file", password="f")
    with access.client("x.io", None) as client:
        assert client._transport.auth._credentials == ("file", "f")
    with access.client("x.io", Credentials(username="req", password="r")) as client:
        assert client._transport.auth._credentials == ("req", "r")
    with access.client("y.io", None) as client:
        assert not client._transport.auth.has_credentials


# -- the Authenticator's token forms ---------------------------------------------------
def _fail_fetch(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
    raise AssertionError(f"unexpected GET {url}")


def test_a_registry_token_is_sent_as_bearer() -> None:
    auth = Authenticator("x.io", _fail_fetch, registry_token="abc")
    assert auth.authorization("repository:a:pull") == "Bearer abc"
    assert auth.has_credentials
    assert not auth.respond(['Bearer realm="https://auth.x.io/token",service="x.io"'], "repository:a:pull")


def test_an_identity_token_is_exchanged_as_an_oauth2_refresh_token() -> None:
    posts: list[tuple[str, dict[str, list[str]]]] = []

    def post(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        posts.append((url, parse_qs(body.decode())))
        answer = {"access_token": f"access-{len(posts)}", "refresh_token": f"rotated-{len(posts)}", "expires_in": 300}
        return 200, json.dumps(answer).encode()

    auth = Authenticator("x.io", _fail_fetch, identity_token="refresh-0", post=post)
    challenge = ['Bearer realm="https://auth.x.io/token",service="registry.x.io",scope="repository:a:pull"']
    assert auth.authorization("repository:a:pull") is None
    assert auth.respond(challenge, "repository:a:pull")
    assert auth.authorization("repository:a:pull") == "Bearer access-1"
    url, form = posts[0]
    assert url == "https://auth.x.io/token"
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-0"],
        "service": ["registry.x.io"],
        "client_id": [OAUTH_CLIENT_ID],
        "scope": ["repository:a:pull"],
    }
    assert auth.respond(challenge, "repository:b:pull,push")
    assert posts[1][1]["refresh_token"] == ["rotated-1"]
    assert posts[1][1]["scope"] == ["repository:a:pull repository:b:pull,push"]


def test_a_refused_identity_token_is_unauthenticated() -> None:
    auth = Authenticator("x.io", _fail_fetch, identity_token="bad", post=lambda u, h, b: (401, b"{}"))
    with pytest.raises(UnauthenticatedError, match="rejected the credentials"):
        auth.respond(['Bearer realm="https://auth.x.io/token"'], "repository:a:pull")


def test_an_identity_token_needs_a_post_function() -> None:
    with pytest.raises(InvalidArgumentError):
        Authenticator("x.io", _fail_fetch, identity_token="t")


def test_access_passes_tokens_to_the_client() -> None:
    access = RegistryAccess()
    with access.client("x.io", Credentials(registry_token="rt")) as client:
        assert client._transport.auth.authorization("repository:a:pull") == "Bearer rt"
    with access.client("x.io", Credentials(identity_token="it", username="<token>")) as client:
        assert client._transport.auth.has_credentials
        assert client._transport.auth._credentials is None


# -- retries -----------------------------------------------------------------------------
def test_retrying_counts_down_and_gives_up() -> None:
    from cairn.core.errors import UnavailableError

    messages: list[Progress] = []
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 2:
            raise UnavailableError("registry hiccup")
        return "ok"

    assert retrying(flaky, id="abc", sink=messages.append, stopped=lambda: False, delays=(1,)) == "ok"
    assert [m.status for m in messages] == ["Retrying in 1 second"]

    def broken() -> str:
        raise UnavailableError("down")

    with pytest.raises(UnavailableError, match="down"):
        retrying(broken, id="abc", sink=messages.append, stopped=lambda: False, delays=())
