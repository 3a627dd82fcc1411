"""Secrets never reach the server's log, even at debug level: passwords, Basic credentials,
access and refresh tokens (HTTP and gRPC), and the password of a catalog URL that fails.

The server runs with ``--log-level debug`` through every way of logging in: ``/token`` with
Basic (right and wrong passwords), the OAuth2 password and refresh grants, Basic and Bearer
on ``/v2/``, Bearer on gRPC over TCP (valid and forged), and the cairn CLI's ``--user``.
Then its whole output (stderr and stdout) is searched for each secret and for the base64
form of each Basic credential.

Embedded only: what is logged does not depend on the backend; the failing catalog case
uses a PostgreSQL URL on a closed port, which needs no PostgreSQL.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import bcrypt
import grpc
import pytest
import requests

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.conftest import Backend, cairn_command, free_port, running

pytestmark = pytest.mark.embedded_only("what is logged does not depend on the backend")

PASSWORD = "Pw-never-logged-4c1e9"
WRONG = "Wrong-pw-never-logged-77b2"
DB_PASSWORD = "Db-pw-never-logged-5a0d"
TIMEOUT = 60


def test_no_secret_in_a_debug_log(short_tmp: Path, cairn_backend: Backend) -> None:
    users = short_tmp / "users"
    users.write_text(f"alice:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    server = cairn_backend.server(
        short_tmp / "data", extra_args=["--users-file", str(users), "--log-level", "debug"]
    )
    secrets: list[str] = [PASSWORD, WRONG]
    with running(server):
        url = server.http_url
        scope = "repository:containerd:default:pull,push"
        got = requests.get(f"{url}/token", params={"service": "cairn", "scope": scope, "offline_token": "true"},
                           auth=("alice", PASSWORD), timeout=TIMEOUT).json()
        access, refresh = got["token"], got["refresh_token"]
        secrets += [access, refresh]
        assert requests.get(f"{url}/token", auth=("alice", WRONG), timeout=TIMEOUT).status_code == 401
        form = {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": scope,
                "access_type": "offline", "service": "cairn"}
        posted = requests.post(f"{url}/token", data=form, timeout=TIMEOUT).json()
        secrets += [posted["access_token"], posted["refresh_token"]]
        refreshed = requests.post(f"{url}/token", data={"grant_type": "refresh_token", "refresh_token": refresh,
                                                        "scope": scope, "service": "cairn"}, timeout=TIMEOUT).json()
        secrets.append(refreshed["access_token"])
        bad_form = {**form, "password": WRONG}
        assert requests.post(f"{url}/token", data=bad_form, timeout=TIMEOUT).status_code == 401
        for auth in [("alice", PASSWORD), ("alice", WRONG)]:
            requests.get(f"{url}/v2/", auth=auth, timeout=TIMEOUT)
        forged = access[:-6] + "AAAAAA"
        for bearer in (access, forged):
            requests.get(f"{url}/v2/", headers={"Authorization": f"Bearer {bearer}"}, timeout=TIMEOUT)
        with grpc.insecure_channel(server.grpc_addr) as channel:
            stub = pb_grpc.ContentStub(channel)
            for bearer in (access, forged):
                try:
                    stub.Info(pb.InfoRequest(digest="sha256:" + "1" * 64), timeout=TIMEOUT,
                              metadata=(("containerd-namespace", "default"), ("authorization", f"Bearer {bearer}")))
                except grpc.RpcError as exc:
                    assert exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env.update(CAIRN_SERVER=server.grpc_addr, CAIRN_URL=url, CAIRN_PASSWORD=PASSWORD)
        cli = subprocess.run([*cairn_command(), "content", "--user", "alice", "ls"],
                             capture_output=True, timeout=TIMEOUT, env=env, check=False)
        assert cli.returncode == 0, cli.stderr
    log = server.log()
    assert "DEBUG" in log  # the level really was debug
    encoded = [base64.b64encode(f"alice:{pw}".encode()).decode() for pw in (PASSWORD, WRONG)]
    for secret in secrets + encoded:
        assert secret not in log, f"a secret ({secret[:6]}...) is in the server log"


def test_catalog_password_is_redacted_when_the_catalog_fails(short_tmp: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://cairn:{DB_PASSWORD}@127.0.0.1:{port}/cairn"
    result = subprocess.run(
        [sys.executable, "-m", "cairn", "serve", "--data-dir", str(short_tmp / "data"), "--log-level", "debug",
         "--catalog", url, "--http-addr", f"127.0.0.1:{free_port()}", "--grpc-addr", f"127.0.0.1:{free_port()}"],
        capture_output=True, timeout=TIMEOUT, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 1, output
    assert f"postgresql://cairn:***@127.0.0.1:{port}/cairn" in output
    assert DB_PASSWORD not in output
