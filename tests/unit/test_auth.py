"""Authentication and authorization: htpasswd users, scopes, the access policy, tokens, and the HTTP gate.

The domain parts run as table tests without a loop. The HTTP parts start a real
aiohttp server on 127.0.0.1 (port 0) in a thread and talk to it with
``requests``: a tiny app whose routes call :meth:`HttpAuth.require` the way
the registry face does, plus ``/token``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jwt
import pytest
import requests
from aiohttp import web

from cairn.api.http.auth import HttpAuth, add_token_routes
from cairn.api.http.registry.errors import RegistryError, error_response
from cairn.core.auth import (
    AccessPolicy,
    Auth,
    Scope,
    TokenAuthority,
    Users,
    load_or_create_key,
    load_policy,
    load_users,
    open_auth,
    parse_scope,
    parse_scopes,
)
from cairn.core.errors import InvalidArgumentError, UnauthenticatedError

KEY = b"k" * 32

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bhash(password: str, prefix: str = "$2b$") -> str:
    """A cheap bcrypt hash (cost 4) with the given variant prefix."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


def scope(text: str) -> Scope:
    return parse_scope(text)


# -- users ------------------------------------------------------------------------------------


def test_htpasswd_accepts_every_bcrypt_variant_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(
        "# team registry users\n\n"
        f"alice:{bhash('a-pass', '$2y$')}\n"
        f"  bob:{bhash('b-pass', '$2b$')}  \n"
        f"carol:{bhash('c-pass', '$2a$')}\n"
    )
    users = load_users(path)
    assert list(users) == ["alice", "bob", "carol"]
    assert users.verify("alice", "a-pass")
    assert users.verify("bob", "b-pass")
    assert users.verify("carol", "c-pass")
    assert not users.verify("alice", "b-pass")
    assert not users.verify("nobody", "a-pass")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("alice", "line 2: expected user:bcrypt-hash"),
        ("alice:$apr1$abcdefgh$0123456789abcdefghijkl", "line 2: user 'alice' has no bcrypt hash"),
        ("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "line 2: user 'alice' has no bcrypt hash"),
        ("alice:plaintext", "line 2: user 'alice' has no bcrypt hash"),
        ("alice:$2b$04$tooshort", "line 2: user 'alice' has no bcrypt hash"),
        (":" + "$2b$04$" + "a" * 53, "line 2: user name '' is empty"),
        ("anonymous:" + "$2b$04$" + "a" * 53, "line 2: user name 'anonymous' is reserved"),
        ("alice:" + "$2b$03$" + "a" * 53, "line 2: user 'alice' has bcrypt cost 3"),
        ("zed:" + "$2b$04$" + "a" * 53, "line 2: user 'zed' is listed twice"),
    ],
)
def test_htpasswd_refuses_bad_lines_naming_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "users"
    path.write_text("zed:" + "$2b$04$" + "a" * 53 + "\n" + line + "\n")
    with pytest.raises(InvalidArgumentError, match=f"users file {path} {match}".replace("$", r"\$")):
        load_users(path)


def test_missing_users_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        load_users(tmp_path / "nope")


def test_htpasswd_tool_output_loads(tmp_path: Path) -> None:
    """A real vector: what apache2-utils' ``htpasswd -B`` writes."""
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    line = subprocess.run(
        [tool, "-Bbn", "-C", "4", "alice", "s3cret"], capture_output=True, text=True, check=True
    ).stdout
    path = tmp_path / "users"
    path.write_text(line)
    users = load_users(path)
    assert users.verify("alice", "s3cret")
    assert not users.verify("alice", "s3cret ")


def test_successes_are_cached_and_failures_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    users = Users({"alice": bhash("pw").encode()})
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    assert users.verify("alice", "pw") and users.verify("alice", "pw")
    assert len(calls) == 1
    assert not users.verify("alice", "wrong") and not users.verify("alice", "wrong")
    assert len(calls) == 3
    assert not users.verify("nobody", "pw")  # still costs a bcrypt check (the dummy hash)
    assert len(calls) == 4


def test_overlong_passwords_are_refused_not_truncated() -> None:
    long = "x" * 80
    users = Users({"alice": bcrypt.hashpw(long[:72].encode(), bcrypt.gensalt(rounds=4))})
    assert users.verify("alice", long[:72])
    assert not users.verify("alice", long)


def test_fingerprint_follows_the_hash() -> None:
    a = Users({"alice": bhash("one").encode()})
    b = Users({"alice": bhash("two").encode()})
    assert a.fingerprint("alice") != b.fingerprint("alice")
    assert a.fingerprint("nobody") is None


# -- scopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("repository:team/app:pull", Scope("repository", "team/app", frozenset({"pull"})), None),
        (
            "repository:team/app:push,pull",
            Scope("repository", "team/app", frozenset({"pull", "push"})),
            "repository:team/app:pull,push",
        ),
        ("registry:catalog:*", Scope("registry", "catalog", frozenset({"*"})), None),
        (
            "repository(plugin):a/b:pull",
            Scope("repository", "a/b", frozenset({"pull"})),
            "repository:a/b:pull",
        ),
        ("repository:host:5000/app:pull", Scope("repository", "host:5000/app", frozenset({"pull"})), None),
        ("repository:a:", Scope("repository", "a", frozenset()), None),
        (
            "repository:a:pull,,push",
            Scope("repository", "a", frozenset({"pull", "push"})),
            "repository:a:pull,push",
        ),
    ],
)
def test_scope_parsing(text: str, expected: Scope, canonical: str | None) -> None:
    parsed = parse_scope(text)
    assert parsed == expected
    assert str(parsed) == (canonical or text)
    assert parse_scope(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "repository",
        "repository:a",
        "repository::pull",
        ":a:pull",
        "Repo:a:pull",
        "repository:a:PULL",
        "r(x:a:pull",
    ],
)
def test_bad_scopes_are_invalid_argument(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="scope"):
        parse_scope(text)


def test_parse_scopes_splits_on_spaces_and_merges() -> None:
    scopes = parse_scopes(["repository:a:pull repository:b:pull", "repository:a:push", "registry:catalog:*"])
    assert [str(s) for s in scopes] == ["repository:a:pull,push", "repository:b:pull", "registry:catalog:*"]
    assert parse_scopes([]) == ()


# -- access policy ----------------------------------------------------------------------------

POLICY = """
[[rule]]
users = ["alice"]
repositories = ["*"]
actions = ["*"]

[[rule]]
users = ["bob"]
repositories = ["team/*"]
actions = ["pull"]

[[rule]]
users = ["bob", "carol"]
repositories = ["team/bob-*"]
actions = ["push"]

[[rule]]
users = ["*"]
repositories = ["shared"]
actions = ["pull", "push", "delete"]

[[rule]]
users = ["anonymous"]
repositories = ["public/*"]
actions = ["pull"]
"""


@pytest.fixture
def policy(tmp_path: Path) -> AccessPolicy:
    path = tmp_path / "access.toml"
    path.write_text(POLICY)
    return load_policy(path)


@pytest.mark.parametrize(
    ("user", "asked", "granted"),
    [
        ("alice", "repository:any/thing:pull,push,delete", "pull,push,delete"),
        ("alice", "repository:any:*", "*"),
        ("bob", "repository:team/app:pull,push", "pull"),
        ("bob", "repository:team/deep/app:pull", "pull"),  # "*" crosses "/"
        ("bob", "repository:team/bob-tools:pull,push,delete", "pull,push"),  # union of two rules
        ("bob", "repository:other:pull", ""),
        ("bob", "repository:shared:delete", "delete"),  # "*" means any authenticated user
        ("carol", "repository:team/bob-x:pull,push", "push"),
        ("carol", "repository:team/app:pull", ""),
        (None, "repository:public/base:pull,push", "pull"),
        (None, "repository:shared:pull", ""),  # "*" does not include anonymous callers
        (None, "repository:Public/base:pull", ""),  # globs are case-sensitive
        ("alice", "registry:catalog:*", "*"),
        ("bob", "registry:catalog:*", "*"),  # holds pull somewhere; the face filters the listing
        ("carol", "registry:catalog:*", "*"),  # pull on "shared" via users = ["*"]
        (None, "registry:catalog:*", "*"),
        ("alice", "registry:other:*", ""),
        ("alice", "plugin:x:pull", ""),
    ],
)
def test_policy_grants_the_union_of_matching_rules(
    policy: AccessPolicy, user: str | None, asked: str, granted: str
) -> None:
    assert policy.granted(user, scope(asked)) == frozenset(a for a in granted.split(",") if a)


def test_default_policy_is_all_for_users_nothing_for_anonymous() -> None:
    policy = load_policy(None)
    assert policy.granted("anyone", scope("repository:x/y:pull,push,delete")) == {"pull", "push", "delete"}
    assert policy.granted("anyone", scope("registry:catalog:*")) == {"*"}
    assert policy.granted(None, scope("repository:x:pull")) == frozenset()
    assert policy.granted(None, scope("registry:catalog:*")) == frozenset()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[rule]]\nusers=['a']\nrepositories=['*']\nactions=['pul']\n", "rule 1: unknown actions 'pul'"),
        ("[[rule]]\nusers=['a']\nrepositories=['*']\n", "rule 1: actions must be"),
        ("[[rule]]\nusers=[]\nrepositories=['*']\nactions=['pull']\n", "rule 1: users must be"),
        ("[[rule]]\nusers='a'\nrepositories=['*']\nactions=['pull']\n", "rule 1: users must be"),
        (
            "[[rule]]\nuser=['a']\nusers=['a']\nrepositories=['*']\nactions=['pull']\n",
            "rule 1: unknown keys user",
        ),
        ("[[rules]]\nusers=['a']\n", "unknown keys rules"),
        ("rule = 3\n", "must be \\[\\[rule\\]\\] tables"),
        ("[[rule\n", "access file"),
    ],
)
def test_bad_access_files_are_refused(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "access.toml"
    path.write_text(text)
    with pytest.raises(InvalidArgumentError, match=match):
        load_policy(path)


def test_an_access_file_without_rules_grants_nothing(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text("# nobody yet\n")
    assert load_policy(path).granted("alice", scope("repository:a:pull")) == frozenset()
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        load_policy(tmp_path / "missing.toml")


# -- tokens -----------------------------------------------------------------------------------


def test_token_round_trip_carries_docker_claims() -> None:
    authority = TokenAuthority(KEY, "registry.test", 300)
    scopes = (scope("repository:a/b:push,pull"), scope("registry:catalog:*"))
    issued = authority.issue("alice", scopes)
    assert issued.expires_in == 300
    assert issued.issued_at_rfc3339.endswith("Z") and "T" in issued.issued_at_rfc3339
    raw = jwt.decode(issued.token, KEY, algorithms=["HS256"], audience="registry.test")
    assert raw["iss"] == "cairn" and raw["sub"] == "alice" and raw["exp"] - raw["iat"] == 300
    assert raw["nbf"] == raw["iat"] and raw["jti"]
    assert raw["access"] == [
        {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    claims = authority.verify(issued.token)
    assert claims.subject == "alice"
    assert claims.access == scopes
    assert claims.granted(scope("repository:a/b:pull,push,delete")) == {"pull", "push"}
    assert claims.granted(scope("repository:a/c:pull")) == frozenset()
    assert claims.granted(scope("registry:catalog:*")) == {"*"}


def test_anonymous_tokens_have_an_empty_subject() -> None:
    authority = TokenAuthority(KEY, "cairn", 60)
    token = authority.issue(None, [])
    assert jwt.decode(token.token, KEY, algorithms=["HS256"], audience="cairn")["sub"] == ""
    assert authority.verify(token.token).subject is None


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


def test_tokens_expire_and_are_not_valid_before_issue() -> None:
    clock = Clock(1_700_000_000.0)
    authority = TokenAuthority(KEY, "cairn", 60, clock=clock)
    token = authority.issue("alice", []).token
    clock.now += 59.5
    assert authority.verify(token).subject == "alice"
    clock.now += 0.5
    with pytest.raises(UnauthenticatedError, match="expired"):
        authority.verify(token)
    clock.now -= 61
    with pytest.raises(UnauthenticatedError, match="not valid yet"):
        authority.verify(token)


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = base64.urlsafe_b64decode(payload + "==").replace(b'"pull"', b'"push"')
    return ".".join([header, base64.urlsafe_b64encode(claims).rstrip(b"=").decode(), signature])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_tamper, "Signature verification failed"),
        (lambda t: TokenAuthority(b"x" * 32, "cairn", 60).issue("alice", []).token, "Signature"),
        (lambda t: TokenAuthority(KEY, "elsewhere", 60).issue("alice", []).token, "(?i)audience"),
        (lambda t: TokenAuthority(KEY, "cairn", 60, issuer="evil").issue("alice", []).token, "issuer"),
        (lambda t: jwt.encode({"sub": "alice", "aud": "cairn", "iss": "cairn"}, KEY), "claim"),
        (
            lambda t: jwt.encode(jwt.decode(t, options={"verify_signature": False}), "", algorithm="none"),
            "invalid",
        ),
        (lambda t: "not-a-jwt", "invalid token"),
        (lambda t: TokenAuthority(KEY, "cairn", 60).issue_refresh("alice", "f"), "(?i)audience"),
    ],
    ids=[
        "tampered",
        "wrong-key",
        "wrong-audience",
        "wrong-issuer",
        "no-times",
        "alg-none",
        "garbage",
        "refresh",
    ],
)
def test_bad_tokens_are_unauthenticated(make: Callable[[str], str], match: str) -> None:
    authority = TokenAuthority(KEY, "cairn", 60)
    good = authority.issue("alice", [scope("repository:a:pull")]).token
    with pytest.raises(UnauthenticatedError, match=match):
        authority.verify(make(good))


def test_refresh_tokens_end_with_the_password(tmp_path: Path) -> None:
    users = Users({"alice": bhash("one").encode()})
    auth = Auth(users, AccessPolicy.default(), TokenAuthority(KEY, "cairn", 60))
    refresh = auth.issue_refresh("alice")
    assert auth.redeem_refresh(refresh) == "alice"
    with pytest.raises(UnauthenticatedError, match=r"(?i)audience"):
        auth.redeem_refresh(auth.tokens.issue("alice", []).token)  # an access token is not a refresh token
    changed = Auth(Users({"alice": bhash("two").encode()}), auth.policy, auth.tokens)
    with pytest.raises(UnauthenticatedError, match="log in again"):
        changed.redeem_refresh(refresh)
    removed = Auth(Users({}), auth.policy, auth.tokens)
    with pytest.raises(UnauthenticatedError, match="log in again"):
        removed.redeem_refresh(refresh)
    with pytest.raises(UnauthenticatedError, match="unknown user"):
        auth.issue_refresh("nobody")


def test_short_keys_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 32"):
        TokenAuthority(b"short", "cairn", 60)


def test_signing_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "token.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["token.key"]  # no temporary left behind
    path.write_bytes(b"short")
    with pytest.raises(InvalidArgumentError, match="holds 5 bytes"):
        load_or_create_key(path)


def test_open_auth_wires_the_parts(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{bhash('pw')}\n")
    auth = open_auth(users, None, tmp_path / "token.key", 120, service="reg")
    assert auth.service == "reg" and auth.tokens.ttl_seconds == 120
    assert auth.users.verify("alice", "pw")
    assert auth.grant("alice", [scope("repository:a:pull,push")]) == (scope("repository:a:pull,push"),)
    assert auth.grant(None, [scope("repository:a:pull")]) == ()
    assert (tmp_path / "token.key").exists()


# -- the HTTP gate and /token -----------------------------------------------------------------


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) in a thread; yield its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="aiohttp-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        asyncio.run_coroutine_threadsafe(loop.shutdown_default_executor(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def gated_app(http_auth: HttpAuth) -> web.Application:
    """Routes shaped like the registry's: ping, pull, push, and a filtered catalog."""

    def guarded(actions: frozenset[str]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            name = request.match_info.get("name", "")
            scopes = [Scope("repository", name, actions)] if name else []
            try:
                user = await http_auth.require(request, scopes)
            except RegistryError as exc:
                return error_response(exc)  # aiohttp drops the body of a HEAD answer itself
            return web.json_response({"user": user})

        return handler

    async def catalog(request: web.Request) -> web.StreamResponse:
        try:
            await http_auth.require(request, [Scope("registry", "catalog", frozenset({"*"}))])
        except RegistryError as exc:
            return error_response(exc)
        names = ["other", "public/base", "team/app", "team/bob-x"]
        visible = [
            n for n in names if await http_auth.allowed(request, Scope("repository", n, frozenset({"pull"})))
        ]
        return web.json_response({"repositories": visible})

    app = web.Application()
    app.router.add_get("/v2/", guarded(frozenset()))
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/pull/{name:.+}", guarded(frozenset({"pull"})))
    app.router.add_get("/push/{name:.+}", guarded(frozenset({"pull", "push"})))
    add_token_routes(app, http_auth)
    return app


@dataclass
class Server:
    url: str
    auth: Auth

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def challenge(self, scope_text: str | None, error: str | None = None) -> str:
        value = f'Bearer realm="{self.url}/token",service="cairn"'
        if scope_text is not None:
            value += f',scope="{scope_text}"'
        if error is not None:
            value += f',error="{error}"'
        return value

    def token(self, *scopes: str, user: str | None = None, password: str = "") -> str:
        creds = (user, password) if user is not None else None
        response = requests.get(f"{self.url}/token", params={"service": "cairn", "scope": scopes}, auth=creds)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token"] == body["access_token"]
        return str(body["token"])


ACCESS = """
[[rule]]
users = ["alice"]
repositories = ["*"]
actions = ["*"]

[[rule]]
users = ["bob"]
repositories = ["team/*"]
actions = ["pull"]

[[rule]]
users = ["anonymous"]
repositories = ["public/*"]
actions = ["pull"]
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    users = tmp_path / "users"
    users.write_text(f"alice:{bhash('alice-pw', '$2y$')}\nbob:{bhash('bob-pw')}\n")
    access = tmp_path / "access.toml"
    access.write_text(ACCESS)
    auth = open_auth(users, access, tmp_path / "token.key", 300)
    with serve(gated_app(HttpAuth(auth))) as url:
        yield Server(url, auth)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_disabled_auth_allows_everything_and_still_answers_token() -> None:
    with serve(gated_app(HttpAuth(None))) as url:
        assert requests.get(f"{url}/push/team/app").json() == {"user": None}
        assert requests.get(f"{url}/v2/", headers={"Authorization": "Basic !!!"}).status_code == 200
        assert requests.get(f"{url}/v2/_catalog").json()["repositories"] == [
            "other",
            "public/base",
            "team/app",
            "team/bob-x",
        ]
        response = requests.get(f"{url}/token", params={"scope": "repository:a:push", "service": "cairn"})
        body = response.json()
        assert response.status_code == 200
        assert body["token"] == body["access_token"] and body["expires_in"] > 0 and body["issued_at"]
        posted = requests.post(
            f"{url}/token", data={"grant_type": "password", "username": "x", "password": "y"}
        )
        assert posted.status_code == 200 and posted.json()["scope"] == ""


def test_no_credentials_get_the_exact_bearer_challenge(server: Server) -> None:
    response = requests.get(f"{server.url}/push/team/app")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == server.challenge("repository:team/app:pull,push")
    assert response.json() == {
        "errors": [
            {
                "code": "UNAUTHORIZED",
                "message": "authentication required for repository:team/app:pull,push",
                "detail": [
                    {"Type": "repository", "Name": "team/app", "Action": "pull"},
                    {"Type": "repository", "Name": "team/app", "Action": "push"},
                ],
            }
        ]
    }
    head = requests.head(f"{server.url}/push/team/app")
    assert head.status_code == 401 and head.headers["WWW-Authenticate"] == server.challenge(
        "repository:team/app:pull,push"
    )


def test_the_realm_follows_the_host_header(server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    response = requests.get(f"http://localhost:{port}/v2/")
    assert response.status_code == 401
    assert (
        response.headers["WWW-Authenticate"]
        == f'Bearer realm="http://localhost:{port}/token",service="cairn"'
    )


def test_anonymous_callers_get_what_anonymous_rules_allow(server: Server) -> None:
    assert requests.get(f"{server.url}/pull/public/base").json() == {"user": None}
    assert requests.get(f"{server.url}/push/public/base").status_code == 401
    assert requests.get(f"{server.url}/v2/_catalog").json() == {"repositories": ["public/base"]}


@pytest.mark.parametrize(
    ("user", "password", "path", "status"),
    [
        ("alice", "alice-pw", "/push/team/app", 200),
        ("alice", "alice-pw", "/v2/", 200),
        ("bob", "bob-pw", "/pull/team/app", 200),
        ("alice", "wrong", "/push/team/app", 401),
        ("nobody", "alice-pw", "/pull/public/base", 401),  # bad credentials are not downgraded to anonymous
        ("bob", "bob-pw", "/push/team/app", 403),
        ("bob", "bob-pw", "/pull/other", 403),
    ],
)
def test_basic_credentials(server: Server, user: str, password: str, path: str, status: int) -> None:
    response = requests.get(server.url + path, auth=(user, password))
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"user": user}
    elif status == 401:
        assert response.json()["errors"][0]["message"] == "invalid username or password"
        assert response.headers["WWW-Authenticate"].startswith(f'Bearer realm="{server.url}/token"')
    else:
        error = response.json()["errors"][0]
        assert error["code"] == "DENIED"
        assert (
            error["message"]
            == f"user 'bob' may not {'push' if 'push' in path else 'pull'} repository {path[6:]}"
        )
        assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"alice-without-colon").decode(),
        "Basic " + base64.b64encode(b":alice-pw").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic",
        "Bearer",
        "Bearer not.a.token",
        "Digest username=alice",
    ],
)
def test_malformed_authorization_is_bad_credentials(server: Server, header: str) -> None:
    response = requests.get(f"{server.url}/pull/public/base", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == server.challenge("repository:public/base:pull")


def test_token_flow_grants_what_the_policy_allows(server: Server) -> None:
    token = server.token("repository:team/app:pull,push", user="alice", password="alice-pw")
    assert server.auth.tokens.verify(token).access == (scope("repository:team/app:pull,push"),)
    assert requests.get(f"{server.url}/push/team/app", headers=bearer(token)).json() == {"user": "alice"}
    assert requests.get(f"{server.url}/v2/", headers=bearer(token)).status_code == 200


def test_token_for_a_pull_only_user_pushing_is_denied(server: Server) -> None:
    token = server.token("repository:team/app:pull,push", user="bob", password="bob-pw")
    assert server.auth.tokens.verify(token).access == (scope("repository:team/app:pull"),)
    assert requests.get(f"{server.url}/pull/team/app", headers=bearer(token)).status_code == 200
    response = requests.get(f"{server.url}/push/team/app", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "DENIED"
    assert response.json()["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "team/app", "Action": "push"}
    ]


def test_token_lacking_a_scope_the_user_could_get_is_insufficient_scope(server: Server) -> None:
    token = server.token("repository:team/app:pull", user="alice", password="alice-pw")
    response = requests.get(f"{server.url}/push/team/app", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == server.challenge(
        "repository:team/app:pull,push", error="insufficient_scope"
    )
    other = requests.get(f"{server.url}/pull/elsewhere", headers=bearer(token))
    assert other.status_code == 401 and "insufficient_scope" in other.headers["WWW-Authenticate"]


def test_anonymous_tokens(server: Server) -> None:
    token = server.token("repository:public/base:pull,push", "repository:team/app:pull")
    claims = server.auth.tokens.verify(token)
    assert claims.subject is None
    assert claims.access == (scope("repository:public/base:pull"),)
    assert requests.get(f"{server.url}/pull/public/base", headers=bearer(token)).status_code == 200
    # an anonymous token is no credential for what only users may do: log in, not "denied"
    response = requests.get(f"{server.url}/pull/team/app", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == server.challenge("repository:team/app:pull")


def test_expired_tokens_are_unauthorized(server: Server, tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "token.key")
    old = TokenAuthority(key, "cairn", 60, clock=lambda: time.time() - 120)
    token = old.issue("alice", [scope("repository:team/app:pull,push")]).token
    response = requests.get(f"{server.url}/push/team/app", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "invalid token: expired"
    assert response.headers["WWW-Authenticate"] == server.challenge("repository:team/app:pull,push")


def test_catalog_is_filtered_by_the_callers_pull_rights(server: Server) -> None:
    token = server.token("registry:catalog:*", user="bob", password="bob-pw")
    response = requests.get(f"{server.url}/v2/_catalog", headers=bearer(token))
    assert response.json() == {"repositories": ["team/app", "team/bob-x"]}
    everything = requests.get(f"{server.url}/v2/_catalog", auth=("alice", "alice-pw")).json()
    assert everything["repositories"] == ["other", "public/base", "team/app", "team/bob-x"]


@pytest.mark.parametrize(
    "auth",
    [("alice", "wrong"), ("nobody", "x")],
)
def test_token_endpoint_refuses_bad_credentials_with_a_basic_challenge(
    server: Server, auth: tuple[str, str]
) -> None:
    response = requests.get(f"{server.url}/token", params={"scope": "repository:a:pull"}, auth=auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="cairn"'
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    bad = requests.get(f"{server.url}/token", headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401


def test_token_endpoint_refuses_bad_scopes(server: Server) -> None:
    response = requests.get(f"{server.url}/token", params={"scope": "repository:a"})
    assert response.status_code == 400
    assert "repository:a" in response.json()["errors"][0]["message"]


def test_offline_tokens_and_the_oauth2_form(server: Server) -> None:
    url = f"{server.url}/token"
    got = requests.get(
        url,
        params={
            "service": "cairn",
            "offline_token": "true",
            "client_id": "docker",
            "scope": "repository:a:pull",
        },
        auth=("alice", "alice-pw"),
    ).json()
    refresh = got["refresh_token"]
    assert "refresh_token" not in requests.get(url, params={"offline_token": "true"}).json()  # anonymous

    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "service": "cairn",
        "client_id": "docker",
    }
    posted = requests.post(url, data={**form, "scope": "repository:team/app:pull,push registry:catalog:*"})
    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["scope"] == "repository:team/app:pull,push registry:catalog:*"
    assert body["access_token"] == body["token"] and body["expires_in"] == 300 and "refresh_token" not in body
    assert (
        requests.get(f"{server.url}/push/team/app", headers=bearer(body["access_token"])).status_code == 200
    )

    password = {"grant_type": "password", "username": "bob", "password": "bob-pw", "access_type": "offline"}
    by_password = requests.post(url, data={**password, "scope": "repository:team/app:pull,push"}).json()
    assert by_password["scope"] == "repository:team/app:pull" and by_password["refresh_token"]

    wrong = requests.post(url, data={**password, "password": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_grant"
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="cairn"'
    not_refresh = requests.post(url, data={**form, "refresh_token": body["access_token"]})
    assert not_refresh.status_code == 401 and not_refresh.json()["error"] == "invalid_grant"
    unsupported = requests.post(url, data={"grant_type": "client_credentials"})
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    with pytest.raises(UnauthenticatedError):
        server.auth.tokens.verify(refresh)  # a refresh token is no access token
    assert requests.get(f"{server.url}/pull/team/app", headers=bearer(refresh)).status_code == 401


def test_key_file_is_private_on_disk(server: Server, tmp_path: Path) -> None:
    mode = os.stat(tmp_path / "token.key").st_mode
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize(
    "text", ["repository:a/b:pull\n", "repository\n:a:pull", "repository:a:pu\nll"]
)
def test_scope_with_a_newline_is_refused(text: str) -> None:
    """``$`` would match before a final newline; the grammar's checks must take the whole text."""
    from cairn.core.auth import parse_scope
    from cairn.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        parse_scope(text)

