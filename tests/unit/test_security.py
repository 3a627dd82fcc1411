"""Security building blocks without a server: the token bucket, the method -> scope table,
peer parsing, TLS file checks, and the redaction of catalog URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.api.grpc.auth import client_of_peer
from cairn.api.grpc.gen.arcbox.v1 import image_pb2
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as content_v1
from cairn.api.grpc.gen.containerd.v1 import content_pb2 as content_seed
from cairn.api.grpc.gen.store.v1 import store_service_pb2, sync_service_pb2
from cairn.api.grpc.scopes import ADMIN, ScopeMap, method_table
from cairn.api.ratelimit import RateLimiter, TokenBucket
from cairn.api.tls import load_server_tls
from cairn.core.auth import Scope
from cairn.core.catalog.postgres import _redacted
from cairn.core.errors import InvalidArgumentError
from tests.tls_certs import make_pki


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- token bucket ------------------------------------------------------------------------
def test_bucket_allows_burst_then_paces_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # empty: one token comes back in 1/rate s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 10  # refills to the burst, no further
    assert [limiter.take("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]


def test_bucket_default_burst_is_twice_the_rate_at_least_one() -> None:
    assert RateLimiter(5.0).burst == 10.0
    assert RateLimiter(0.1).burst == 1.0
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_bucket_waits_are_exact() -> None:
    bucket = TokenBucket(tokens=0.25, updated=0.0)
    assert bucket.take(rate=1.0, burst=2.0, now=0.0) == pytest.approx(0.75)
    assert bucket.take(rate=1.0, burst=2.0, now=0.75) == 0.0


def test_memory_is_bounded_by_cap_and_idle_eviction() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, max_clients=100, clock=clock)
    for i in range(1000):
        limiter.take(f"ip:10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100
    clock.now += limiter.idle_seconds + 1  # every bucket is full again: all forgettable
    limiter.take("ip:fresh")
    assert len(limiter) == 1


def test_idle_sweep_keeps_clients_that_are_still_refilling() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, clock=clock)
    limiter.take("idle")
    clock.now += limiter.idle_seconds + 1
    assert [limiter.take("busy") for _ in range(2)] == [0.0, 0.0]  # the sweep here drops "idle"
    assert len(limiter) == 1
    clock.now += limiter.idle_seconds / 2
    limiter.take("other")
    assert len(limiter) == 2
    assert limiter.take("busy") == 0.0 and limiter.take("busy") > 0  # its state survived: 1 token, not 2


# -- method -> scope ----------------------------------------------------------------------
def _leases() -> list[object]:
    """The Leases service, once its generated code exists (helper A adds it in issue 8)."""
    try:
        from cairn.api.grpc.gen.containerd.services.leases.v1 import leases_pb2
    except ImportError:
        return []
    return [leases_pb2.DESCRIPTOR.services_by_name["Leases"]]


SERVICES = [
    content_v1.DESCRIPTOR.services_by_name["Content"],
    content_seed.DESCRIPTOR.services_by_name["Content"],
    store_service_pb2.DESCRIPTOR.services_by_name["StoreService"],
    sync_service_pb2.DESCRIPTOR.services_by_name["SyncService"],
    image_pb2.DESCRIPTOR.services_by_name["ImageService"],
    *_leases(),
]


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.full_name)
def test_every_served_method_has_an_explicit_scope(service: object) -> None:
    table = method_table()
    full_name: str = service.full_name  # type: ignore[attr-defined]
    methods = {m.name for m in service.methods}  # type: ignore[attr-defined]
    assert full_name in table
    assert methods == set(table[full_name][1]), "a new method must be given a scope (or it needs admin)"


def scope(name: str, action: str) -> Scope:
    return Scope("repository", name, frozenset({action}))


@pytest.mark.parametrize(
    ("method", "namespace", "expected"),
    [
        ("/containerd.services.content.v1.Content/Info", "default", scope("containerd:default", "pull")),
        ("/containerd.services.content.v1.Content/Read", "k8s.io", scope("containerd:k8s.io", "pull")),
        ("/containerd.services.content.v1.Content/ListStatuses", "ns", scope("containerd:ns", "pull")),
        ("/containerd.services.content.v1.Content/Write", "default", scope("containerd:default", "push")),
        ("/containerd.services.content.v1.Content/Update", "default", scope("containerd:default", "push")),
        ("/containerd.services.content.v1.Content/Abort", "default", scope("containerd:default", "push")),
        ("/containerd.services.content.v1.Content/Delete", "default", scope("containerd:default", "delete")),
        ("/containerd.v1.Content/Read", "default", scope("containerd:default", "pull")),
        ("/containerd.v1.Content/Write", "default", scope("containerd:default", "push")),
        ("/containerd.services.leases.v1.Leases/Create", "default", scope("containerd:default", "push")),
        ("/containerd.services.leases.v1.Leases/List", "default", scope("containerd:default", "pull")),
        # the registry's and the image store's namespaces hold every repository's blobs: admin only
        ("/containerd.services.content.v1.Content/Info", "reg", ADMIN),
        ("/containerd.services.content.v1.Content/Delete", "imgs", ADMIN),
        ("/containerd.services.leases.v1.Leases/Create", "reg", ADMIN),
        ("/store.v1.StoreService/Pull", None, scope("records", "pull")),
        ("/store.v1.StoreService/Lookup", None, scope("records", "pull")),
        ("/store.v1.StoreService/PushWithOptions", None, scope("records", "push")),
        ("/store.v1.StoreService/Delete", None, scope("records", "delete")),
        ("/store.v1.SyncService/CreateSync", None, ADMIN),
        ("/store.v1.SyncService/ListSyncs", None, ADMIN),
        ("/store.v1.SyncService/RequestRegistryCredentials", None, None),
        ("/arcbox.v1.ImageService/List", None, scope("cairn:images", "pull")),
        ("/arcbox.v1.ImageService/Push", None, scope("cairn:images", "pull")),
        ("/arcbox.v1.ImageService/Pull", None, scope("cairn:images", "push")),
        ("/arcbox.v1.ImageService/Build", None, scope("cairn:images", "push")),
        ("/arcbox.v1.ImageService/Remove", None, scope("cairn:images", "delete")),
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None, ADMIN),  # unknown: fail closed
        ("/store.v1.StoreService/NewMethod", None, ADMIN),
    ],
)
def test_method_scopes(method: str, namespace: str | None, expected: Scope | None) -> None:
    scopes = ScopeMap(registry_namespace="reg", images_namespace="imgs", directory_repository="records")
    assert scopes.required(method, namespace) == expected


def test_pseudo_repositories_cannot_collide_with_registry_repositories() -> None:
    """Registry repository names never contain ':', so a rule for one never grants a gRPC resource."""
    from cairn.oci.registry.names import check_repository

    for name in ("containerd:default", "cairn:admin", "cairn:images"):
        with pytest.raises(InvalidArgumentError):
            check_repository(name)
    assert str(ADMIN) == "repository:cairn:admin:*"


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("ipv4:127.0.0.1:50514", "127.0.0.1"),
        ("ipv6:[::1]:50514", "::1"),
        ("ipv6:[fe80::1%25eth0]:1", "fe80::1%25eth0"),
        ("unix:/tmp/cairn.sock", None),
        ("unix:", None),
    ],
)
def test_client_of_peer(peer: str, client: str | None) -> None:
    assert client_of_peer(peer) == client


# -- TLS files ----------------------------------------------------------------------------
def test_tls_files_are_checked_at_start(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = load_server_tls(pki.server_cert, pki.server_key)
    assert tls.ssl_context().minimum_version.name == "TLSv1_2"
    with pytest.raises(InvalidArgumentError, match=r"--tls-key .*other.key does not belong to the certificate"):
        load_server_tls(pki.server_cert, pki.other_key)
    with pytest.raises(InvalidArgumentError, match=r"--tls-cert certificate .*missing.pem does not exist"):
        load_server_tls(tmp_path / "missing.pem", pki.server_key)
    with pytest.raises(InvalidArgumentError, match="no PEM certificate"):
        load_server_tls(pki.server_key, pki.server_key)
    with pytest.raises(InvalidArgumentError, match="no PEM private key"):
        load_server_tls(pki.server_cert, pki.ca_cert)
    unreadable = tmp_path / "unreadable.key"
    unreadable.write_bytes(pki.server_key.read_bytes())
    unreadable.chmod(0)
    try:
        unreadable.read_bytes()  # root reads anything; check the message only when it cannot
    except PermissionError:
        with pytest.raises(InvalidArgumentError, match="cannot read"):
            load_server_tls(pki.server_cert, unreadable)


def test_key_material_never_in_messages(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with pytest.raises(InvalidArgumentError) as caught:
        load_server_tls(pki.server_cert, pki.other_key)
    body = pki.other_key.read_text().splitlines()[1]
    assert body not in caught.value.message


# -- secrets in URLs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:s3cret@db:5432/cairn", "postgresql://bob:***@db:5432/cairn"),
        ("postgresql://db/cairn?sslmode=require&password=s3cret", "postgresql://db/cairn?sslmode=require&password=***"),
        ("postgresql://bob@db/cairn", "postgresql://bob@db/cairn"),
    ],
)
def test_catalog_urls_are_redacted(url: str, shown: str) -> None:
    assert _redacted(url) == shown
