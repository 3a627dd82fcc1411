"""cairn's registry face with users: Bearer challenges, the ``/token`` endpoint, and access rules,
driven by raw ``requests`` (the token flow by hand) and by skopeo (``--dest-creds``/``--src-creds``).

Users: ``reader`` may pull everywhere, ``writer`` may pull, push and delete everywhere. The
``writer`` line comes from ``htpasswd -B`` (``$2y$``), the ``reader`` line from the ``bcrypt``
package (``$2b$``), so both spellings of bcrypt are exercised.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests

from tests.conftest import Backend, CairnServer, require_binary
from tests.integration.registry.conftest import (
    IMAGE_REF,
    OCI_MANIFEST,
    ContainerTools,
    OciLayout,
    assert_blobs_identical,
    error_codes,
    push_blob,
    registry_url,
    run,
    sha256,
)

PASSWORDS = {"reader": "reader-secret", "writer": "writer-secret"}
ACCESS = """\
[[rule]]
users = ["reader"]
repositories = ["*"]
actions = ["pull"]

[[rule]]
users = ["writer"]
repositories = ["*"]
actions = ["pull", "push", "delete"]
"""
CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@pytest.fixture
def auth_server(short_tmp: Path, cairn_backend: Backend) -> Iterator[CairnServer]:
    """``cairn serve`` with a users file and an access file."""
    writer = run([require_binary("htpasswd"), "-Bbn", "-C", "5", "writer", PASSWORDS["writer"]])
    reader_hash = bcrypt.hashpw(PASSWORDS["reader"].encode(), bcrypt.gensalt(rounds=5)).decode()
    users = short_tmp / "users.htpasswd"
    users.write_text(writer.stdout.decode().strip() + f"\nreader:{reader_hash}\n")
    access = short_tmp / "access.toml"
    access.write_text(ACCESS)
    server = cairn_backend.server(short_tmp / "data",
                                  extra_args=["--users-file", str(users), "--access-file", str(access)])
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.kill()


def challenge(response: requests.Response) -> tuple[str, dict[str, str]]:
    """The scheme and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, params = response.headers["WWW-Authenticate"].partition(" ")
    return scheme, dict(CHALLENGE.findall(params))


def basic(user: str) -> tuple[str, str]:
    return user, PASSWORDS[user]


def token(server: CairnServer, scope: str, user: str | None) -> requests.Response:
    return requests.get(f"{server.http_url}/token", params={"service": "cairn", "scope": scope},
                        auth=basic(user) if user else None, timeout=30)


def bearer(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if "access_token" in body:
        assert body["access_token"] == body["token"]
    return {"Authorization": f"Bearer {body['token']}"}


def push_manifest(server: CairnServer, repository: str, tag: str, headers: dict[str, str]) -> str:
    """Push a one-layer image by hand; returns the manifest digest."""
    host = registry_url(server)
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = os.urandom(10_000)
    for blob in (config, layer):
        assert push_blob(host, repository, blob, headers).status_code == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer),
                    "size": len(layer)}],
    }).encode()
    put = requests.put(f"http://{host}/v2/{repository}/manifests/{tag}", data=manifest, timeout=30,
                       headers={**headers, "Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == sha256(manifest)
    return sha256(manifest)


def test_anonymous_requests_get_a_bearer_challenge(auth_server: CairnServer) -> None:
    host = registry_url(auth_server)
    ping = requests.get(f"http://{host}/v2/", timeout=30)
    assert ping.status_code == 401
    scheme, params = challenge(ping)
    assert scheme == "Bearer"
    assert params["realm"] == f"{auth_server.http_url}/token"
    assert params["service"] == "cairn"

    pushed = requests.post(f"http://{host}/v2/secure/app/blobs/uploads/", headers={"Content-Length": "0"},
                           timeout=30)
    assert pushed.status_code == 401
    assert error_codes(pushed) == ["UNAUTHORIZED"]
    scheme, params = challenge(pushed)
    assert scheme == "Bearer"
    assert params == {"realm": f"{auth_server.http_url}/token", "service": "cairn",
                      "scope": "repository:secure/app:pull,push"}


def test_token_flow_by_hand(auth_server: CairnServer) -> None:
    host = registry_url(auth_server)
    scope = "repository:secure/app:pull,push"
    # Anonymous callers may get a token (policy permitting) but not one that allows a push.
    anonymous = token(auth_server, scope, None)
    if anonymous.status_code == 200:
        refused = requests.post(f"http://{host}/v2/secure/app/blobs/uploads/", timeout=30,
                                headers={**bearer(anonymous), "Content-Length": "0"})
        assert refused.status_code in (401, 403)
    else:
        assert anonymous.status_code == 401
    wrong = requests.get(f"{auth_server.http_url}/token", params={"service": "cairn", "scope": scope},
                         auth=("writer", "not-the-password"), timeout=30)
    assert wrong.status_code == 401

    issued = token(auth_server, scope, "writer")
    body = issued.json()
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    headers = bearer(issued)
    digest = push_manifest(auth_server, "secure/app", "v1", headers)

    fetched = requests.get(f"http://{host}/v2/secure/app/manifests/v1", timeout=30,
                           headers={**headers, "Accept": OCI_MANIFEST})
    assert fetched.status_code == 200
    assert sha256(fetched.content) == digest

    # A token is good for the repository it names only.
    other = requests.post(f"http://{host}/v2/secure/other/blobs/uploads/", timeout=30,
                          headers={**headers, "Content-Length": "0"})
    assert other.status_code == 401
    assert challenge(other)[1]["scope"] == "repository:secure/other:pull,push"

    # A token asked for with pull only does not allow a push, even to the writer.
    pull_only = bearer(token(auth_server, "repository:secure/app:pull", "writer"))
    refused = requests.post(f"http://{host}/v2/secure/app/blobs/uploads/", timeout=30,
                            headers={**pull_only, "Content-Length": "0"})
    assert refused.status_code == 401
    assert challenge(refused)[1].get("error") == "insufficient_scope"


def test_pull_only_user_is_denied_push(auth_server: CairnServer, tools: ContainerTools,
                                       oci_layout: OciLayout) -> None:
    host = registry_url(auth_server)
    headers = bearer(token(auth_server, "repository:secure/app:pull,push", "reader"))
    refused = requests.post(f"http://{host}/v2/secure/app/blobs/uploads/", timeout=30,
                            headers={**headers, "Content-Length": "0"})
    assert refused.status_code == 403
    assert error_codes(refused) == ["DENIED"]

    copied = tools.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "reader:reader-secret",
                          oci_layout.ref(IMAGE_REF), f"docker://{host}/secure/img:v1", check=False)
    assert copied.returncode != 0
    assert b"denied" in copied.stderr.lower()


def test_skopeo_with_and_without_credentials(auth_server: CairnServer, tools: ContainerTools,
                                             oci_layout: OciLayout, tmp_path: Path) -> None:
    host = registry_url(auth_server)
    target = f"docker://{host}/secure/img:v1"
    source = oci_layout.ref(IMAGE_REF)

    anonymous = tools.skopeo("copy", "--dest-tls-verify=false", source, target, check=False)
    assert anonymous.returncode != 0
    assert b"unauthorized" in anonymous.stderr.lower()
    wrong = tools.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "writer:wrong", source, target,
                         check=False)
    assert wrong.returncode != 0
    assert b"unauthorized" in wrong.stderr.lower()

    tools.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds",
                 "writer:writer-secret", source, target)

    out = tmp_path / "pulled"
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false", "--src-creds",
                 "reader:reader-secret", target, f"oci:{out}:v1")
    assert_blobs_identical(oci_layout, out, oci_layout.image.digests())
    raw = tools.skopeo("inspect", "--raw", "--tls-verify=false", "--creds", "reader:reader-secret", target)
    assert raw.stdout == oci_layout.image.manifest.data
