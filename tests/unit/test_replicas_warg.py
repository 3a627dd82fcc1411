"""Several replicas serve one Warg registry from one PostgreSQL catalog (issue 7).

A "replica" here is a :class:`WargRegistry` over its own ``open_catalog`` of a
shared database URL: its own connection pool and its own claims session, as a
second ``cairn serve`` process would have. Only the holder of the claim
``warg-sequencer`` appends; these tests check that records published through
any replica end up in one log whose checkpoints verify, that a replica which
does not sequence answers from what the sequencing one committed, that the
claim passes on when its holder goes away, and that a log moved by another
sequencer behind a batch's back is never forked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from cairn.core.catalog import Catalog, Claims, open_catalog
from cairn.core.content import NamespacedStore, open_content_store
from cairn.core.errors import FailedPreconditionError
from cairn.warg import merkle_log, merkle_map
from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.crypto import PrivateKey, Signature
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import OPERATOR_LOG_ID, PackageName, package_record_id
from cairn.warg.records import Envelope, PackageInit, PackageRecord, RecordTime
from cairn.warg.registry import WargRegistry
from cairn.warg.registry.sequencer import CLAIM
from cairn.warg.registry.states import load_operator_state
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixture

ALICE = PrivateKey.parse("ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=")
OPERATOR = PrivateKey.generate()
WAIT = 8.0  # seconds any one wait may take


class Replica:
    """One registry process's worth of state over the shared catalog."""

    def __init__(self, url: str, content: Path, key: PrivateKey, *, shared_claims: bool = True) -> None:
        self.catalog: Catalog = open_catalog(url)
        self.store: NamespacedStore = open_content_store(f"file://{content}", self.catalog)
        claims: Claims | None = self.catalog.claims if shared_claims else None
        self.registry = WargRegistry(self.catalog.warg, self.store, "registry", key, claims=claims)
        self.closed = False

    @property
    def sequencing(self) -> bool:
        return self.catalog.claims.holding(CLAIM)

    def publish(self, name: str, envelope: Envelope) -> tuple[str, str]:
        package = PackageName.parse(name)
        self.registry.publisher.publish(package.log_id, package, envelope)
        return str(package.log_id), str(package_record_id(envelope.content_bytes))

    def die(self) -> None:
        """Go away as a killed process does: its sessions end, its claims with them."""
        self.catalog.close()
        self.registry.stop()
        self.store.close()
        self.closed = True

    def close(self) -> None:
        if not self.closed:
            self.registry.stop()
            self.store.close()
            self.catalog.close()
            self.closed = True


@pytest.fixture
def replicas(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Callable[..., Replica]]:  # noqa: F811
    url = postgres_server.create_database()
    opened: list[Replica] = []

    def open_replica(key: PrivateKey = OPERATOR, *, shared_claims: bool = True) -> Replica:
        replica = Replica(url, tmp_path / "content", key, shared_claims=shared_claims)
        opened.append(replica)
        return replica

    yield open_replica
    for replica in opened:
        replica.close()


def word(n: int) -> str:
    """A kebab-case word for ``n`` (package names take letters only): 0 -> "aa", 1 -> "ab"."""
    return chr(97 + n // 26 % 26) + chr(97 + n % 26)


def init_envelope(seconds: int = 0) -> Envelope:
    now = RecordTime.now()
    record = PackageRecord(
        None, 0, RecordTime(now.seconds + seconds, now.nanos), (PackageInit(key=ALICE.public_key, hash_algorithm="sha256"),)
    )
    return Envelope.sign_package(record, ALICE)


def next_envelope(prev: str) -> Envelope:
    """A record with no entries chaining onto ``prev`` (valid, and signed by the log's key)."""
    now = RecordTime.now()
    later = RecordTime(now.seconds + 100, 0)  # after every init_envelope's time
    return Envelope.sign_package(PackageRecord(AnyHash.parse(prev), 0, later, ()), ALICE)


def wait_until(done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def published(replica: Replica, records: list[tuple[str, str]]) -> bool:
    """Whether every record is published (as ``replica`` reports it); fails on a rejected one."""
    statuses = [replica.registry.publisher.status(log_id, record_id) for log_id, record_id in records]
    rejected = [status.reason for status in statuses if status.state == "rejected"]
    assert not rejected, rejected
    return all(status.state == "published" for status in statuses)


def assert_one_consistent_log(replica: Replica, operator: PrivateKey) -> int:
    """Rebuild the log and map from the accepted leaves and check every checkpoint against them.

    Returns the log's length. Every registry index is used once, every leaf is a distinct
    record, and each checkpoint's roots are the rebuilt ones and carry the operator's signature.
    """
    warg = replica.catalog.warg
    length = warg.registry_length()
    leaves = warg.leaves(0, length)
    assert len(leaves) == length
    assert len(set(leaves)) == length, "a record was accepted twice"
    log = merkle_log.MemoryLog()
    tree = merkle_map.MemoryMap()
    checked = 0
    map_root = merkle_map.EMPTY_ROOT
    for index, (log_id, record_id) in enumerate(leaves):
        log.append(merkle_log.leaf_hash(AnyHash.parse32(log_id), AnyHash.parse32(record_id)))
        map_root = tree.set(
            merkle_map.key_path(AnyHash.parse32(log_id)), merkle_map.map_leaf_hash(AnyHash.parse32(record_id))
        )
        row = warg.checkpoint(index + 1)
        if row is None:
            continue
        assert row.log_root == str(AnyHash("sha256", log.root())), f"log root of checkpoint {index + 1}"
        assert row.map_root == str(AnyHash("sha256", map_root)), f"map root of checkpoint {index + 1}"
        signed = SignedCheckpoint(
            TimestampedCheckpoint(row.log_length, AnyHash.parse32(row.log_root), AnyHash.parse32(row.map_root),
                                  row.timestamp),
            row.key_id, Signature.parse(row.signature),
        )
        assert signed.verify(operator.public_key)
        checked += 1
    latest = replica.registry.reader.checkpoint().contents
    assert latest.log_length == length
    assert checked >= 1
    return length


def start_together(*replicas: Replica, namespaces: tuple[str, ...] = ("test",)) -> None:
    """Initialise the replicas at the same time, as processes started together would, then start them."""

    def bring_up(replica: Replica) -> None:
        replica.registry.initialise(namespaces, timeout=WAIT)
        replica.registry.start()

    with ThreadPoolExecutor(len(replicas)) as pool:
        for future in [pool.submit(bring_up, replica) for replica in replicas]:
            future.result()


def test_replicas_starting_together_write_one_operator_record(replicas: Callable[..., Replica]) -> None:
    a, b, c = replicas(), replicas(), replicas()
    start_together(a, b, c)
    operator_records = a.catalog.warg.accepted_in_log(str(OPERATOR_LOG_ID), -1, 1 << 40, 100)
    assert len(operator_records) == 1  # the Init with the namespace, written by one replica
    state = load_operator_state(a.catalog.warg, str(OPERATOR_LOG_ID))
    assert state.namespace_state("test") is not None
    assert sum(r.sequencing for r in (a, b, c)) == 1
    # a later start with a new namespace adds exactly one record, whoever sequences
    d = replicas()
    d.registry.initialise(["test", "later"], timeout=WAIT)
    assert len(a.catalog.warg.accepted_in_log(str(OPERATOR_LOG_ID), -1, 1 << 40, 100)) == 2
    assert_one_consistent_log(a, OPERATOR)


def test_concurrent_publishes_through_both_replicas_form_one_log(replicas: Callable[..., Replica]) -> None:
    a, b = replicas(), replicas()
    start_together(a, b)
    sides = (a, b)

    def publish(n: int) -> tuple[str, str]:
        return sides[n % 2].publish(f"test:pkg-{word(n)}", init_envelope(n))

    with ThreadPoolExecutor(8) as pool:
        inits = list(pool.map(publish, range(24)))
    for replica in sides:  # the replica that does not sequence reports them published too
        wait_until(partial(published, replica, inits), "the inits to be published")
    # each package's next record through the other replica than its init
    follow_ups = [
        sides[(n + 1) % 2].publish(f"test:pkg-{word(n)}", next_envelope(record_id))
        for n, (_, record_id) in enumerate(inits[:8])
    ]
    wait_until(lambda: published(a, follow_ups) and published(b, follow_ups), "the follow-ups to be published")
    length = assert_one_consistent_log(b, OPERATOR)
    assert length == 1 + len(inits) + len(follow_ups)
    assert a.registry.reader.checkpoint() == b.registry.reader.checkpoint()


def test_the_replica_that_does_not_sequence_serves_the_sequencers_checkpoint(
    replicas: Callable[..., Replica],
) -> None:
    a, b = replicas(), replicas()
    start_together(a, b)
    leader, follower = (a, b) if a.sequencing else (b, a)
    assert leader.sequencing and not follower.sequencing
    record = follower.publish("test:served", init_envelope())
    wait_until(lambda: published(follower, [record]), "the record to be published")
    checkpoint = follower.registry.reader.checkpoint()
    assert checkpoint == leader.registry.reader.checkpoint()
    assert checkpoint.verify(OPERATOR.public_key)
    index = follower.registry.publisher.status(*record).registry_index
    assert index is not None
    log_bundle, _ = follower.registry.reader.prove_inclusion(checkpoint.contents.log_length, [index])
    leaf = merkle_log.leaf_hash(AnyHash.parse32(record[0]), AnyHash.parse32(record[1]))
    found = merkle_log.evaluate_inclusion(merkle_log.LogProofBundle.decode(log_bundle), index, leaf)
    assert found == checkpoint.contents.log_root.digest
    fetched = follower.registry.reader.fetch_logs(checkpoint.contents.log_length, None, None, {record[0]: None})
    assert [row.record_id for row in fetched.packages[record[0]]] == [record[1]]


def test_a_dead_sequencer_is_replaced_and_publishing_goes_on(replicas: Callable[..., Replica]) -> None:
    a, b = replicas(), replicas()
    start_together(a, b)
    leader, follower = (a, b) if a.sequencing else (b, a)
    before = [follower.publish(f"test:before-{word(n)}", init_envelope(n)) for n in range(3)]
    wait_until(lambda: published(follower, before), "the first records to be published")
    old = follower.registry.reader.checkpoint().contents

    leader.die()
    wait_until(lambda: follower.sequencing, "the surviving replica to take the sequencer's claim")
    after = [follower.publish(f"test:after-{word(n)}", init_envelope(n)) for n in range(3)]
    wait_until(lambda: published(follower, after), "records to be published by the new sequencer")
    new = follower.registry.reader.checkpoint().contents
    bundle = merkle_log.LogProofBundle.decode(
        follower.registry.reader.prove_consistency(old.log_length, new.log_length)
    )
    assert merkle_log.evaluate_consistency(bundle) == (old.log_root.digest, new.log_root.digest)
    assert assert_one_consistent_log(follower, OPERATOR) == 1 + len(before) + len(after)

    # a replacement replica joins without writing anything and follows
    c = replicas()
    start_together(c)
    assert not c.sequencing
    assert c.registry.reader.checkpoint().contents == new


def test_a_batch_behind_another_sequencers_commit_is_retried_not_forked(replicas: Callable[..., Replica]) -> None:
    """Two sequencers that both believe they hold the claim (as after a claim lost mid-batch)."""
    a = replicas(shared_claims=False)
    b = replicas(shared_claims=False)
    a.registry.initialise(["test"], timeout=WAIT)
    b.registry.initialise(["test"], timeout=WAIT)  # nothing to write; b now knows the log at length 1
    first = a.publish("test:first", init_envelope())
    assert a.registry.sequencer.process() == 1  # the log is at 2 now, b still thinks 1
    second = b.publish("test:second", init_envelope(1))
    assert b.registry.sequencer.process() == 1  # rolled back, reloaded, retried at 2
    assert b.catalog.warg.get_record(*second).registry_index == 2  # type: ignore[union-attr]
    assert published(a, [first, second])
    assert assert_one_consistent_log(a, OPERATOR) == 3


def test_a_replica_with_another_operator_key_refuses_to_start(replicas: Callable[..., Replica]) -> None:
    a = replicas()
    a.registry.initialise(["test"], timeout=WAIT)
    stranger = PrivateKey.generate()
    b = replicas(stranger)
    with pytest.raises(FailedPreconditionError) as caught:
        b.registry.initialise(["test"], timeout=WAIT)
    message = caught.value.message
    assert OPERATOR.public_key.key_id in message
    assert stranger.public_key.key_id in message
    assert "--warg-operator-key-file" in message
