"""The Warg registry domain over a real SQLite catalog and content store (no HTTP).

What the HTTP tests cannot steer: several records settled in one batch (one
checkpoint for all, so the lengths in between have none), the operator key's
checks at start-up, namespaces added later, and a registry reopened on the
same catalog continuing where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.core.catalog import Catalog, open_catalog
from cairn.core.content import NamespacedStore, open_content_store
from cairn.core.errors import FailedPreconditionError
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import OPERATOR_LOG_ID, PackageName, package_record_id
from cairn.warg.records import Envelope, PackageInit, PackageRecord, PackageYank, RecordTime
from cairn.warg.registry import WargNotFoundError, WargRegistry, load_operator_key
from cairn.warg.registry.states import load_operator_state
from cairn.warg.semver import Version

ALICE = PrivateKey.parse("ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=")


class Backends:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog: Catalog = open_catalog(f"sqlite://{root / 'cairn.db'}")
        self.store: NamespacedStore = open_content_store(f"file://{root / 'content'}", self.catalog)

    def registry(self, key: PrivateKey) -> WargRegistry:
        return WargRegistry(self.catalog.warg, self.store, "registry", key)

    def close(self) -> None:
        self.store.close()
        self.catalog.close()


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[Backends]:
    b = Backends(tmp_path)
    yield b
    b.close()


def init_envelope(name: str, when: RecordTime) -> Envelope:
    record = PackageRecord(None, 0, when, (PackageInit(key=ALICE.public_key, hash_algorithm="sha256"),))
    return Envelope.sign_package(record, ALICE)


def test_records_queued_together_share_one_checkpoint(backends: Backends) -> None:
    operator = PrivateKey.generate()
    registry = backends.registry(operator)
    registry.initialise(["test"])
    assert registry.reader.checkpoint().contents.log_length == 1
    now = RecordTime.now()
    names = [PackageName.parse(f"test:batch-{chr(97 + n)}") for n in range(5)]
    for name in names:  # queued, not processed: the sequencer thread is not running
        registry.publisher.publish(name.log_id, name, init_envelope(str(name), now))
    first = package_record_id(init_envelope("test:batch-a", now).content_bytes)
    second_init = PackageRecord(
        first, 0, RecordTime(now.seconds + 1, 0), (PackageInit(key=ALICE.public_key, hash_algorithm="sha256"),)
    )
    rejected = Envelope.sign_package(second_init, ALICE)
    registry.publisher.publish(names[0].log_id, names[0], rejected)
    assert registry.sequencer.process() == 6
    latest = registry.reader.checkpoint().contents
    assert latest.log_length == 6  # one checkpoint for the batch
    assert registry.publisher.status(str(names[4].log_id), str(package_record_id(init_envelope(
        "test:batch-e", now).content_bytes))).state == "published"
    status = registry.publisher.status(str(names[0].log_id), str(package_record_id(rejected.content_bytes)))
    assert status.state == "rejected"
    assert status.reason == 'the package record was invalid: a second "init" entry was found'
    with pytest.raises(WargNotFoundError) as caught:  # no checkpoint at a length inside the batch
        registry.reader.prove_inclusion(3, [1])
    assert (caught.value.kind, caught.value.ident) == ("logLength", 3)
    log_bundle, map_bundle = registry.reader.prove_inclusion(6, [1, 2, 3, 4, 5])
    assert log_bundle and map_bundle


def test_reopened_registry_continues_and_adds_new_namespaces(backends: Backends) -> None:
    operator = PrivateKey.generate()
    first = backends.registry(operator)
    first.initialise(["test"])
    name = PackageName.parse("test:reopen")
    envelope = init_envelope(str(name), RecordTime.now())
    first.publisher.publish(name.log_id, name, envelope)
    first.sequencer.drain()
    before = first.reader.checkpoint().contents

    second = backends.registry(operator)
    second.initialise(["test"])  # nothing new: no operator record
    assert second.reader.checkpoint().contents == before
    second.initialise(["test", "later"])  # one operator record defining the new namespace
    after = second.reader.checkpoint().contents
    assert after.log_length == before.log_length + 1
    state = load_operator_state(backends.catalog.warg, str(OPERATOR_LOG_ID))
    assert state.namespace_state("later") is not None
    yank = PackageRecord(
        package_record_id(envelope.content_bytes), 0, RecordTime.now(), (PackageYank(Version.parse("1.0.0")),)
    )
    second.publisher.publish(name.log_id, name, Envelope.sign_package(yank, ALICE))
    second.sequencer.drain()
    assert second.reader.checkpoint().contents == after  # rejected (never released): the log did not grow


def test_a_different_operator_key_is_refused(backends: Backends) -> None:
    backends.registry(PrivateKey.generate()).initialise(["test"])
    with pytest.raises(FailedPreconditionError, match="not a committing key"):
        backends.registry(PrivateKey.generate()).initialise(["test"])


def test_operator_key_file_is_created_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "operator.key"
    created = load_operator_key(path, create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    assert str(load_operator_key(path, create=True)) == str(created)
    os.chmod(path, 0o644)
    with pytest.raises(FailedPreconditionError, match="readable by others"):
        load_operator_key(path, create=True)
    with pytest.raises(FailedPreconditionError, match="does not exist"):
        load_operator_key(tmp_path / "missing.key", create=False)


def test_fetch_tokens_must_name_accepted_records(backends: Backends) -> None:
    registry = backends.registry(PrivateKey.generate())
    registry.initialise(["test"])
    length = registry.reader.checkpoint().contents.log_length
    with pytest.raises(WargNotFoundError) as caught:
        registry.reader.fetch_logs(length, None, str(AnyHash.of(b"unknown")), {})
    assert caught.value.kind == "fetchToken"


def test_a_record_queued_before_its_predecessor_waits_for_it(backends: Backends) -> None:
    """A publisher may pipeline one log's records: arrival order does not have to be log order."""
    registry = backends.registry(PrivateKey.generate())
    registry.initialise(["test"])
    name = PackageName.parse("test:pipelined")
    now = RecordTime.now()
    first = init_envelope(str(name), now)
    chain = [first]
    for n in range(3):
        record = PackageRecord(package_record_id(chain[-1].content_bytes), 0, RecordTime(now.seconds + n + 1, 0), ())
        chain.append(Envelope.sign_package(record, ALICE))
    # the log must know the key before a record signed by it is accepted for publishing
    registry.publisher.publish(name.log_id, name, first)
    registry.sequencer.drain()
    for envelope in reversed(chain[1:]):  # records with no entries chain validly; sent last-first
        registry.publisher.publish(name.log_id, name, envelope)
    registry.sequencer.drain()
    states = [
        registry.publisher.status(str(name.log_id), str(package_record_id(e.content_bytes))) for e in chain
    ]
    assert [s.state for s in states] == ["published"] * 4
    assert [s.registry_index for s in states] == sorted(s.registry_index for s in states)  # type: ignore[type-var]
    # a record whose predecessor was rejected is rejected in its turn
    orphan_parent = PackageRecord(AnyHash.of(b"nowhere"), 0, RecordTime(now.seconds + 10, 0), ())
    parent = Envelope.sign_package(orphan_parent, ALICE)
    child = Envelope.sign_package(
        PackageRecord(package_record_id(parent.content_bytes), 0, RecordTime(now.seconds + 11, 0), ()), ALICE
    )
    registry.publisher.publish(name.log_id, name, child)
    registry.publisher.publish(name.log_id, name, parent)
    registry.sequencer.drain()
    for envelope in (parent, child):
        status = registry.publisher.status(str(name.log_id), str(package_record_id(envelope.content_bytes)))
        assert status.reason == "the package record was invalid: previous record hash does not match"
