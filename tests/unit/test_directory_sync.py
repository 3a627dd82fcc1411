"""Directory sync without a server: remote URLs, the sync catalog's state changes, credentials, tokens."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest

from cairn.core.auth import TOKEN_USERNAME, AccessPolicy, Auth, Scope, TokenAuthority, Users
from cairn.core.auth.access import AccessRule
from cairn.core.catalog import SyncRow, open_catalog
from cairn.core.cid import cid_of_bytes, cid_to_digest
from cairn.core.errors import InvalidArgumentError, UnauthenticatedError
from cairn.directory.credentials import SyncCredentials, parse_allowed_nodes
from cairn.directory.replication import is_cid_tag
from cairn.directory.sync import parse_remote_url, registry_access

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("url", "kind", "address", "tls", "repository"),
    [
        ("127.0.0.1:8888", "directory", "127.0.0.1:8888", False, "dir"),
        ("  localhost:9000 ", "directory", "localhost:9000", False, "dir"),
        ("http://127.0.0.1:8888", "directory", "127.0.0.1:8888", False, "dir"),
        ("http://dir.example.com", "directory", "dir.example.com:80", False, "dir"),
        ("https://dir.example.com:9443/", "directory", "dir.example.com:9443", True, "dir"),
        ("[::1]:8888", "directory", "[::1]:8888", False, "dir"),
        ("oci+http://127.0.0.1:5000", "oci", "http://127.0.0.1:5000", False, "dir"),
        ("oci+https://registry.example.com/team/records", "oci", "https://registry.example.com", True, "team/records"),
    ],
)
def test_remote_urls(url: str, kind: str, address: str, tls: bool, repository: str) -> None:
    remote = parse_remote_url(url)
    assert (remote.kind, remote.address, remote.tls, remote.repository) == (kind, address, tls, repository)


@pytest.mark.parametrize(
    "url",
    ["", "   ", "localhost", "ftp://h:1", "http://:80", "h:99999", "http://h:1/path", "oci+http://h/Bad_Name",
     "http://user:pw@h:1", "h:1?x=1", "dir.example.com"],
)
def test_bad_remote_urls(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"^invalid remote directory URL"):
        parse_remote_url(url)


def test_registry_urls_from_remotes() -> None:
    assert registry_access("127.0.0.1:5555").url == "http://127.0.0.1:5555"
    access = registry_access("https://r.example.com/records/", "u", "p")
    assert (access.url, access.repository, access.username, access.password) == (
        "https://r.example.com", "records", "u", "p",
    )
    assert registry_access("http://h:1", "", "").username is None
    with pytest.raises(InvalidArgumentError):
        registry_access("")


def test_cid_tags() -> None:
    cid = cid_of_bytes(b'{"name":"x"}')
    assert is_cid_tag(cid)
    for tag in ("latest", "sha256-abc", cid.upper(), "f" + cid_to_digest(cid).hex, "b", ""):
        assert not is_cid_tag(tag)


def test_sync_rows_change_state_only_from_the_named_states(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite://{tmp_path}/c.db")
    rows = catalog.syncs
    for i in range(3):
        rows.insert(SyncRow(f"id{i}", f"h:{i}", "continuous", "PENDING", "", "", 0, 10 + i, 10 + i))
    assert rows.transition("id0", "IN_PROGRESS", ("PENDING",), 20)
    assert not rows.transition("id0", "IN_PROGRESS", ("PENDING",), 21)
    assert rows.transition("id0", "FAILED", ("IN_PROGRESS",), 22, reason="down", copied=5)
    rows.add_copied("id0", 2)
    row = rows.get("id0")
    assert row is not None
    assert (row.status, row.reason, row.copied, row.created_at, row.updated_at) == ("FAILED", "down", 7, 10, 22)
    assert rows.find("h:0", "continuous", ("FAILED",)) == row
    assert rows.find("h:0", "once", ("FAILED",)) is None
    assert [r.id for r in rows.list_syncs(1, 1)] == ["id1"]
    assert [r.id for r in rows.list_syncs()] == ["id0", "id1", "id2"]
    assert [r.id for r in rows.in_states(("PENDING",))] == ["id1", "id2"]
    assert rows.get("nope") is None
    catalog.close()


def _auth(policy: AccessPolicy | None = None) -> Auth:
    digest = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
    return Auth(Users({"admin": digest}), policy or AccessPolicy.default(), TokenAuthority(KEY, "cairn", 300))


def test_credentials_follow_the_rules() -> None:
    assert parse_allowed_nodes(" a, ,b ") == {"a", "b"}
    anonymous = SyncCredentials(None, "http://127.0.0.1:8090", "dir", "")
    assert anonymous.request("").error == "requesting node ID is required"
    grant = anonymous.request("someone")
    assert grant.success and grant.registry_url == "http://127.0.0.1:8090" and not grant.password

    auth = _auth()
    guarded = SyncCredentials(auth, "http://10.0.0.1:8090/", "records", "node-b")
    assert not guarded.request("node-x").success
    grant = guarded.request("node-b")
    assert grant.success and grant.registry_url == "http://10.0.0.1:8090/records"
    assert grant.username == TOKEN_USERNAME and auth.is_token(grant.password)
    claims = auth.verify_password_token(grant.password)
    assert claims.subject == "node:node-b"
    assert claims.granted(Scope("repository", "records", frozenset({"pull", "push"}))) == {"pull"}
    assert claims.granted(Scope("repository", "other", frozenset({"pull"}))) == frozenset()
    assert SyncCredentials(auth, "http://h:1", "dir", "*").request("anything").success

    public = AccessPolicy([AccessRule(frozenset({"anonymous"}), ("dir",), frozenset({"pull"}))])
    open_pull = SyncCredentials(_auth(public), "http://h:1", "dir", "")
    grant = open_pull.request("stranger")
    assert grant.success and not grant.password


def test_only_password_tokens_are_passwords() -> None:
    auth = _auth()
    ordinary = auth.tokens.issue("admin", [Scope("repository", "dir", frozenset({"pull"}))]).token
    with pytest.raises(UnauthenticatedError, match="not issued for use as a password"):
        auth.verify_password_token(ordinary)
    token = auth.issue_password_token("node:x", [], 60)
    assert auth.tokens.verify(token.token).subject == "node:x"
    assert token.expires_in == 60
    assert not auth.is_token("a normal password")
