"""Security of a running ``cairn serve``: TLS on both TCP listeners, token auth on gRPC, the
trusted unix socket, and per-client rate limits, driven by curl, skopeo, ctr, grpcio and the
cairn CLI.

One TLS server with users serves the TLS and auth tests (module scope: starting a server
costs a second or two); a second, plaintext one has a rate limit. Users: ``reader`` may pull
``containerd:default`` and ``team/*``; ``writer`` may do everything (the admin).

Embedded only: TLS, tokens and rate limits sit in the faces, before any backend is touched,
so running them on PostgreSQL + S3 too would test nothing more.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import grpc
import pytest
import requests

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.conftest import Backend, CairnServer, cairn_command, require_binary, running
from tests.integration.registry.conftest import IMAGE_REF, build_oci_layout
from tests.tls_certs import Pki, make_pki

pytestmark = pytest.mark.embedded_only(
    "TLS, tokens and rate limits are checked in the faces before any backend: one backend is enough"
)

PASSWORDS = {"reader": "reader-pw-7d1f", "writer": "writer-pw-93ac"}
ACCESS = """\
[[rule]]
users = ["reader"]
repositories = ["containerd:default", "team/*"]
actions = ["pull"]

[[rule]]
users = ["writer"]
repositories = ["*"]
actions = ["*"]
"""
MISSING = "sha256:" + "0" * 64
TIMEOUT = 60


class TlsServer(CairnServer):
    """A ``cairn serve`` whose TCP listeners speak TLS (health probed over https with the CA)."""

    ca: Path = Path()

    @property
    def http_url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    def _healthy(self) -> bool:
        import ssl

        try:
            context = ssl.create_default_context(cafile=str(self.ca))
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1, context=context) as r:
                return bool(r.status == 200)
        except OSError:
            return False


@dataclass
class Secured:
    server: TlsServer
    pki: Pki
    users_file: Path


def write_users(directory: Path) -> Path:
    users = directory / "users"
    users.write_text(
        "".join(
            f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
            for name, pw in PASSWORDS.items()
        )
    )
    (directory / "access.toml").write_text(ACCESS)
    return users


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, cairn_backend: Backend) -> Iterator[Secured]:
    base = Path(tmp_path_factory.mktemp("sec", numbered=True))
    short = Path(os.path.realpath("/tmp")) / f"cairn-sec-{os.getpid()}-{base.name}"
    short.mkdir()
    pki = make_pki(short / "pki")
    users = write_users(short)
    server = TlsServer(short / "data")
    server.ca = pki.ca_cert
    server.extra_args = [
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--users-file", str(users), "--access-file", str(short / "access.toml"),
    ]
    try:
        with running(server):
            yield Secured(server, pki, users)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def token(s: Secured, user: str, *scopes: str) -> str:
    response = requests.get(
        f"{s.server.http_url}/token",
        params=[("service", "cairn"), *(("scope", scope) for scope in scopes)],
        auth=(user, PASSWORDS[user]),
        verify=str(s.pki.ca_cert),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def tls_channel(s: Secured) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=s.pki.ca_cert.read_bytes())
    return grpc.secure_channel(s.server.grpc_addr, credentials)


def metadata(bearer: str | None, namespace: str = "default") -> tuple[tuple[str, str], ...]:
    pairs = [("containerd-namespace", namespace)]
    if bearer is not None:
        pairs.append(("authorization", f"Bearer {bearer}"))
    return tuple(pairs)


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
            list(result)
    return caught.value


def write_blob(stub: Any, data: bytes, md: Any) -> Any:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    requests_ = [
        pb.WriteContentRequest(action=pb.STAT, ref="sec-1", total=len(data), expected=digest),
        pb.WriteContentRequest(action=pb.WRITE, offset=0, data=data),
        pb.WriteContentRequest(action=pb.COMMIT, offset=len(data), total=len(data), expected=digest),
    ]
    return list(stub.Write(iter(requests_), metadata=md, timeout=TIMEOUT))


# -- TLS ------------------------------------------------------------------------------------
def test_https_with_the_ca_and_plaintext_refused(secured: Secured) -> None:
    curl = require_binary("curl")
    url = secured.server.http_url
    ok = subprocess.run(
        [curl, "-sS", "--cacert", str(secured.pki.ca_cert), "-o", "/dev/null", "-w", "%{http_code}",
         f"{url}/v2/"], capture_output=True, timeout=TIMEOUT, check=False)
    assert ok.stdout == b"401"  # TLS worked; the registry wants credentials
    untrusted = subprocess.run([curl, "-sS", f"{url}/healthz"], capture_output=True, timeout=TIMEOUT, check=False)
    assert untrusted.returncode == 60  # peer certificate cannot be authenticated with known CAs
    plain = subprocess.run(
        [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{secured.server.http_port}/healthz"],
        capture_output=True, timeout=TIMEOUT, check=False)
    assert plain.stdout != b"200"  # a plaintext request gets no answer from the TLS listener
    assert plain.returncode != 0


def test_tls_version_is_at_least_1_2(secured: Secured) -> None:
    curl = require_binary("curl")
    old = subprocess.run(
        [curl, "-sS", "--cacert", str(secured.pki.ca_cert), "--tlsv1.1", "--tls-max", "1.1",
         f"{secured.server.http_url}/healthz"], capture_output=True, timeout=TIMEOUT, check=False)
    assert old.returncode != 0


def test_skopeo_pushes_and_pulls_over_tls_with_the_ca(secured: Secured, tmp_path: Path) -> None:
    skopeo = require_binary("skopeo")
    layout = build_oci_layout(tmp_path / "src")
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(secured.pki.ca_cert, certs / "ca.crt")
    host = f"127.0.0.1:{secured.server.http_port}"
    creds = f"writer:{PASSWORDS['writer']}"
    subprocess.run(
        [skopeo, "copy", "--dest-cert-dir", str(certs), "--dest-creds", creds,
         layout.ref(IMAGE_REF), f"docker://{host}/team/app:1"],
        check=True, capture_output=True, timeout=TIMEOUT)
    pulled = subprocess.run(
        [skopeo, "inspect", "--raw", "--cert-dir", str(certs), "--creds", f"reader:{PASSWORDS['reader']}",
         f"docker://{host}/team/app:1"], check=True, capture_output=True, timeout=TIMEOUT)
    assert hashlib.sha256(pulled.stdout).hexdigest() == layout.image.manifest.digest.split(":")[1]
    untrusted = subprocess.run(
        [skopeo, "inspect", "--raw", "--creds", creds, f"docker://{host}/team/app:1"],
        capture_output=True, timeout=TIMEOUT, check=False)
    assert untrusted.returncode != 0 and b"certificate" in untrusted.stderr


def test_grpc_over_tls_and_plaintext_refused(secured: Secured) -> None:
    writer = token(secured, "writer", "repository:containerd:default:pull,push")
    with tls_channel(secured) as channel:
        stub = pb_grpc.ContentStub(channel)
        error = rpc_error(lambda: stub.Info(pb.InfoRequest(digest=MISSING), metadata=metadata(writer), timeout=TIMEOUT))
        assert error.code() == grpc.StatusCode.NOT_FOUND  # through TLS and auth to the store
    with grpc.insecure_channel(secured.server.grpc_addr) as channel:
        stub = pb_grpc.ContentStub(channel)
        error = rpc_error(lambda: stub.Info(pb.InfoRequest(digest=MISSING), metadata=metadata(writer), timeout=10))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_cli_over_tls_with_ca_and_user(secured: Secured, tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"sent over TLS by the cairn CLI\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(CAIRN_SERVER=secured.server.grpc_addr, CAIRN_URL=secured.server.http_url,
               CAIRN_PASSWORD=PASSWORDS["writer"])
    cli = [*cairn_command(), "content", "--tls-ca", str(secured.pki.ca_cert), "--user", "writer"]
    ingest = subprocess.run([*cli, "ingest", "cli-ref", str(blob), "-o", "raw"],
                            capture_output=True, timeout=TIMEOUT, env=env, check=False)
    assert ingest.returncode == 0, ingest.stderr
    digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    assert ingest.stdout.decode().split() == [digest]
    writer = token(secured, "writer", "repository:containerd:default:pull")
    got = subprocess.run([*cairn_command(), "content", "--tls-ca", str(secured.pki.ca_cert), "get", digest],
                         capture_output=True, timeout=TIMEOUT, env={**env, "CAIRN_TOKEN": writer}, check=False)
    assert got.returncode == 0 and got.stdout == blob.read_bytes(), got.stderr
    untrusted = subprocess.run([*cairn_command(), "content", "--tls", "--token", writer, "ls"],
                               capture_output=True, timeout=TIMEOUT, env=env, check=False)
    assert untrusted.returncode == 1 and b"cairn:" in untrusted.stderr
    no_token = subprocess.run([*cairn_command(), "content", "--tls-ca", str(secured.pki.ca_cert), "ls"],
                              capture_output=True, timeout=TIMEOUT, env=env, check=False)
    assert no_token.returncode == 1
    assert b"authentication required" in no_token.stderr and b"Bearer" in no_token.stderr


# -- gRPC token auth -------------------------------------------------------------------------
def test_grpc_without_or_with_a_bad_token_is_unauthenticated(secured: Secured) -> None:
    with tls_channel(secured) as channel:
        stub = pb_grpc.ContentStub(channel)
        for bearer, words in [
            (None, "authentication required"),
            ("not-a-jwt", "invalid token"),
            (token(secured, "reader", "repository:containerd:default:pull")[:-4] + "AAAA", "invalid token"),
        ]:
            error = rpc_error(lambda b=bearer: stub.Info(
                pb.InfoRequest(digest=MISSING), metadata=metadata(b), timeout=TIMEOUT))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert words in error.details()
            assert "/token?service=cairn&scope=repository:containerd:default:pull" in error.details()
        basic = rpc_error(lambda: stub.Info(
            pb.InfoRequest(digest=MISSING),
            metadata=(("containerd-namespace", "default"), ("authorization", "Basic cmVhZGVyOng=")),
            timeout=TIMEOUT))
        assert basic.code() == grpc.StatusCode.UNAUTHENTICATED


def test_pull_only_token_reads_but_cannot_write(secured: Secured) -> None:
    reader = token(secured, "reader", "repository:containerd:default:pull,push,delete")
    writer = token(secured, "writer", "repository:containerd:default:pull,push,delete")
    with tls_channel(secured) as channel:
        stub = pb_grpc.ContentStub(channel)
        written = write_blob(stub, b"written by the admin\n", metadata(writer))
        digest = written[-1].digest
        info = stub.Info(pb.InfoRequest(digest=digest), metadata=metadata(reader), timeout=TIMEOUT)
        assert info.info.size == len(b"written by the admin\n")
        data = b"".join(r.data for r in stub.Read(pb.ReadContentRequest(digest=digest), metadata=metadata(reader)))
        assert data == b"written by the admin\n"
        assert [i.digest for r in stub.List(pb.ListContentRequest(), metadata=metadata(reader)) for i in r.info]
        denied = [
            rpc_error(lambda: write_blob(stub, b"reader's bytes", metadata(reader))),
            rpc_error(lambda: stub.Delete(pb.DeleteContentRequest(digest=digest), metadata=metadata(reader))),
            rpc_error(lambda: stub.Abort(pb.AbortRequest(ref="sec-1"), metadata=metadata(reader))),
        ]
        assert [e.code() for e in denied] == [grpc.StatusCode.PERMISSION_DENIED] * 3
        assert "the token of 'reader' does not grant repository:containerd:default:push" in denied[0].details()
        assert "repository:containerd:default:delete" in denied[1].details()
        # another namespace: the reader's token names only "default"
        other = rpc_error(lambda: stub.Info(pb.InfoRequest(digest=digest), metadata=metadata(reader, "team")))
        assert other.code() == grpc.StatusCode.PERMISSION_DENIED


def test_registry_namespace_is_admin_only_over_tcp(secured: Secured) -> None:
    """A pull right on some repositories does not open the registry's blobs by digest."""
    reader = token(secured, "reader", "repository:containerd:registry:pull", "repository:cairn:admin:*")
    writer = token(secured, "writer", "repository:cairn:admin:*")
    with tls_channel(secured) as channel:
        stub = pb_grpc.ContentStub(channel)
        denied = rpc_error(lambda: list(stub.List(pb.ListContentRequest(), metadata=metadata(reader, "registry"))))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "repository:cairn:admin:*" in denied.details()
        listed = list(stub.List(pb.ListContentRequest(), metadata=metadata(writer, "registry"), timeout=TIMEOUT))
        assert isinstance(listed, list)


def test_unix_socket_stays_trusted_and_private(secured: Secured, tmp_path: Path) -> None:
    socket_mode = stat.S_IMODE(secured.server.socket.stat().st_mode)
    assert socket_mode & 0o007 == 0 and socket_mode <= 0o660
    ctr = require_binary("ctr")
    blob = tmp_path / "ctr-blob"
    blob.write_bytes(b"ctr needs no token on the socket\n")
    address = ["--address", str(secured.server.socket), "-n", "default"]
    subprocess.run([ctr, *address, "content", "ingest", "ctr-ref"], input=blob.read_bytes(),
                   check=True, capture_output=True, timeout=TIMEOUT)
    listed = subprocess.run([ctr, *address, "content", "ls", "-q"], check=True, capture_output=True, timeout=TIMEOUT)
    assert ("sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()).encode() in listed.stdout.split()
    registry = subprocess.run([ctr, "--address", str(secured.server.socket), "-n", "registry", "content", "ls"],
                              capture_output=True, timeout=TIMEOUT, check=False)
    assert registry.returncode == 0


def test_sync_service_needs_admin_but_credentials_handshake_is_open(secured: Secured) -> None:
    from cairn.api.grpc.gen.store.v1 import sync_service_pb2 as sync_pb
    from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as sync_grpc

    reader = token(secured, "reader", "repository:cairn:admin:*")
    with tls_channel(secured) as channel:
        stub = sync_grpc.SyncServiceStub(channel)
        denied = rpc_error(lambda: list(stub.ListSyncs(sync_pb.ListSyncsRequest(), metadata=metadata(reader))))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        answer = stub.RequestRegistryCredentials(
            sync_pb.RequestRegistryCredentialsRequest(requesting_node_id="stranger"), timeout=TIMEOUT)
        assert not answer.success and answer.error_message  # its own gate: the allow-list


# -- rate limits ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, cairn_backend: Backend) -> Iterator[CairnServer]:
    short = Path("/tmp") / f"cairn-rl-{os.getpid()}"
    short.mkdir(exist_ok=True)
    server = cairn_backend.server(short / "data", extra_args=["--rate-limit", "2", "--rate-burst", "4"])
    try:
        with running(server):
            yield server
    finally:
        shutil.rmtree(short, ignore_errors=True)


def refill(seconds: float = 2.2) -> None:
    time.sleep(seconds)  # 4 tokens at 2/s: 2 s from empty to full


def test_http_burst_over_the_limit_gets_429(limited: CairnServer) -> None:
    refill()
    with requests.Session() as session:
        answers = [session.get(f"{limited.http_url}/v2/", timeout=TIMEOUT) for _ in range(10)]
    codes = [a.status_code for a in answers]
    assert codes[:4] == [200] * 4 and 429 in codes[4:]
    limited_answer = next(a for a in answers if a.status_code == 429)
    assert int(limited_answer.headers["Retry-After"]) >= 1
    assert [e["code"] for e in limited_answer.json()["errors"]] == ["TOOMANYREQUESTS"]
    warg = requests.get(f"{limited.http_url}/v1/fetch/checkpoint", timeout=TIMEOUT)
    assert warg.status_code == 429 and warg.json()["status"] == 429 and "rate limit" in warg.json()["message"]
    probes = [requests.get(f"{limited.http_url}{p}", timeout=TIMEOUT).status_code
              for p in ("/healthz", "/metrics") * 5]
    assert probes == [200] * 10


def test_http_under_the_limit_is_never_refused(limited: CairnServer) -> None:
    refill()
    codes = []
    for _ in range(6):  # 2/s: one every 0.6 s stays under the rate after the burst
        codes.append(requests.get(f"{limited.http_url}/v2/", timeout=TIMEOUT).status_code)
        time.sleep(0.6)
    assert codes == [200] * 6


def test_grpc_burst_gets_resource_exhausted_but_not_on_the_socket(limited: CairnServer) -> None:
    refill()
    with grpc.insecure_channel(limited.grpc_addr) as channel:
        stub = pb_grpc.ContentStub(channel)
        codes, trailers = [], []
        for _ in range(8):
            try:
                stub.Info(pb.InfoRequest(digest=MISSING), metadata=metadata(None), timeout=TIMEOUT)
            except grpc.RpcError as exc:
                codes.append(exc.code())
                trailers.append(dict(exc.trailing_metadata() or ()))
        assert codes[:4] == [grpc.StatusCode.NOT_FOUND] * 4
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[4:]
        exhausted = trailers[codes.index(grpc.StatusCode.RESOURCE_EXHAUSTED)]
        assert int(exhausted["retry-after"]) >= 1
    with grpc.insecure_channel(f"unix:{limited.socket}") as channel:
        stub = pb_grpc.ContentStub(channel)
        socket_codes = [rpc_error(lambda: stub.Info(pb.InfoRequest(digest=MISSING), metadata=metadata(None))).code()
                        for _ in range(20)]
        assert set(socket_codes) == {grpc.StatusCode.NOT_FOUND}

