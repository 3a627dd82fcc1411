"""Several replicas share the Directory syncs of one PostgreSQL catalog (issue 7).

Each "replica" is a :class:`Syncs` scheduler over its own ``open_catalog`` of a
shared database URL (its own pool and claims session, as a second ``cairn
serve`` would have). A sync runs only on the replica holding its claim
``directory-sync:<id>``. The remotes are Directory node URLs whose
negotiation (the step the gRPC face injects) each replica records and fails,
so every pass shows which replica ran it; one-shot syncs that succeed read an
empty registry served on loopback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cairn.core.catalog import Catalog, open_catalog
from cairn.core.content import NamespacedStore, open_content_store
from cairn.core.errors import UnavailableError
from cairn.directory.replication import RegistryAccess, Replicator
from cairn.directory.sync import MODE_ONCE, Syncs, SyncStatus, claim_name
from cairn.oci.registry import Registry
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixture

POLL = 0.1  # seconds between a replica's looks at the syncs (and the first retry of a failed mirror)
WAIT = 8.0


class Replica:
    """One node's sync scheduler over the shared catalog; remembers the remotes it negotiated with."""

    def __init__(self, url: str, content: Path, registry_url: str | None) -> None:
        self.catalog: Catalog = open_catalog(url)
        self.store: NamespacedStore = open_content_store(f"file://{content}", self.catalog)
        self.tried: list[str] = []
        self._registry_url = registry_url
        self.syncs = Syncs(
            self.catalog.syncs,
            Replicator(Registry(self.store, self.catalog.registry), "dir"),
            self._negotiate,
            poll_seconds=POLL,
            claims=self.catalog.claims,
        )
        self.closed = False

    def _negotiate(self, remote_url: str) -> RegistryAccess:
        self.tried.append(remote_url)
        if self._registry_url is None:
            raise UnavailableError(f"remote {remote_url} is down")
        return RegistryAccess(self._registry_url)

    def owns(self, sync_id: str) -> bool:
        return self.catalog.claims.holding(claim_name(sync_id))

    def die(self) -> None:
        """Go away as a killed process does: its catalog sessions end, its claims with them."""
        self.catalog.close()
        self.syncs.stop()
        self.store.close()
        self.closed = True

    def close(self) -> None:
        if not self.closed:
            self.syncs.stop()
            self.store.close()
            self.catalog.close()
            self.closed = True


class _EmptyRegistry(BaseHTTPRequestHandler):
    """An OCI registry that holds no repository: a one-shot sync of it copies nothing and completes."""

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v2":
            status, body = 200, b"{}"
        else:
            status = 404
            body = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def empty_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def replicas(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Callable[..., Replica]]:  # noqa: F811
    url = postgres_server.create_database()
    opened: list[Replica] = []

    def open_replica(registry_url: str | None = None) -> Replica:
        replica = Replica(url, tmp_path / "content", registry_url)
        opened.append(replica)
        replica.syncs.start()
        return replica

    yield open_replica
    for replica in opened:
        replica.close()


def wait_until(done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_each_sync_is_run_by_exactly_one_replica(replicas: Callable[..., Replica]) -> None:
    a, b = replicas(), replicas()
    remotes = [f"127.0.0.1:{10001 + n}" for n in range(4)]
    created = [(a, b)[n % 2].syncs.create(remote) for n, remote in enumerate(remotes)]
    # failing mirrors are retried (after 0.1, 0.2, 0.4 s): several passes each
    wait_until(lambda: all((a.tried + b.tried).count(remote) >= 3 for remote in remotes), "passes of every sync")
    for sync in created:
        by_a, by_b = sync.remote_url in a.tried, sync.remote_url in b.tried
        assert by_a != by_b, f"sync {sync.id} was run by both replicas (or neither)"
        owner, other = (a, b) if by_a else (b, a)
        assert owner.owns(sync.id) and not other.owns(sync.id)
        assert a.syncs.get(sync.id).status == SyncStatus.FAILED


def test_a_dead_replicas_sync_is_adopted(replicas: Callable[..., Replica]) -> None:
    a, b = replicas(), replicas()
    sync = a.syncs.create("127.0.0.1:10001")
    wait_until(lambda: bool(a.tried or b.tried), "the first pass")
    owner, other = (a, b) if a.tried else (b, a)
    owner.die()
    tried_before = len(other.tried)
    wait_until(lambda: other.owns(sync.id) and len(other.tried) > tried_before, "the survivor to adopt the sync")
    # and a replica that stops cleanly hands its syncs on too
    third = replicas()
    other.syncs.stop()
    wait_until(lambda: third.owns(sync.id) and bool(third.tried), "the third replica to adopt the sync")


def test_a_sync_deleted_on_another_replica_is_deleted_by_its_owner(replicas: Callable[..., Replica]) -> None:
    a, b = replicas(), replicas()
    sync = a.syncs.create("127.0.0.1:10001")
    wait_until(lambda: bool(a.tried or b.tried), "the first pass")
    owner, other = (a, b) if a.tried else (b, a)
    other.syncs.delete(sync.id)
    wait_until(lambda: other.syncs.get(sync.id).status == SyncStatus.DELETED, "the owner to delete the sync")
    wait_until(lambda: not owner.owns(sync.id), "the owner to give the claim up")
    assert not other.owns(sync.id)
    tried = len(owner.tried) + len(other.tried)
    time.sleep(5 * POLL)
    assert len(owner.tried) + len(other.tried) == tried  # nobody runs a deleted sync


def test_one_shot_syncs_give_their_claim_up_when_done(
    replicas: Callable[..., Replica], empty_registry: str
) -> None:
    a, b = replicas(empty_registry), replicas(empty_registry)
    done = a.syncs.create("127.0.0.1:10001", MODE_ONCE)
    wait_until(lambda: a.syncs.get(done.id).status == SyncStatus.COMPLETED, "the one-shot sync to complete")
    wait_until(lambda: not a.owns(done.id) and not b.owns(done.id), "its claim to be released")
    assert (a.tried + b.tried).count("127.0.0.1:10001") == 1


def test_a_failed_one_shot_sync_is_released_and_can_be_rearmed_anywhere(replicas: Callable[..., Replica]) -> None:
    a, b = replicas(), replicas()
    failed = a.syncs.create("127.0.0.1:10002", MODE_ONCE)
    wait_until(lambda: a.syncs.get(failed.id).status == SyncStatus.FAILED, "the one-shot sync to fail")
    wait_until(lambda: not a.owns(failed.id) and not b.owns(failed.id), "its claim to be released")
    tried = len(a.tried) + len(b.tried)
    assert tried == 1
    rearmed = b.syncs.create("127.0.0.1:10002", MODE_ONCE)
    assert rearmed.id == failed.id
    wait_until(lambda: len(a.tried) + len(b.tried) == 2, "the re-armed sync to run once more")
    wait_until(lambda: b.syncs.get(failed.id).status == SyncStatus.FAILED, "the re-armed sync to fail again")
