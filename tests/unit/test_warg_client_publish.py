"""Publishing: records chain on the verified head, content is uploaded, the outcome is followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.core.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError, UnavailableError
from cairn.warg.client import RecordRejectedError, WargClient
from cairn.warg.client.model import RecordStatus
from cairn.warg.client.publish import Publisher, build_record, sign_record
from cairn.warg.client.update import Updater
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import PackageName, package_record_id
from cairn.warg.records import PackageInit, PackageRecord, PackageYank, RecordTime
from cairn.warg.semver import Version
from cairn.warg.validation import Head
from tests.unit.warg_client_fake import REGISTRY, FakeRegistry

FOO = PackageName.parse("test:foo")


def test_a_record_chains_on_the_head_and_never_goes_back_in_time() -> None:
    head = Head(AnyHash.of(b"head"), RecordTime(2_000_000_000, 5))
    entries = [PackageYank(Version.parse("1.0.0"))]
    record = build_record(head, entries, now=RecordTime(1_000, 0))
    assert record.prev == head.record_id and record.version == 0
    assert record.time == head.timestamp  # the clock is behind the head: take the head's time
    later = build_record(head, entries, now=RecordTime(2_000_000_001, 0))
    assert later.time == RecordTime(2_000_000_001, 0)
    first = build_record(None, [PackageInit(PrivateKey.generate().public_key)])
    assert first.prev is None


def test_the_signed_envelope_decodes_to_the_record() -> None:
    key = PrivateKey.generate()
    record = build_record(None, [PackageInit(key.public_key)])
    envelope = sign_record(record, key)
    assert envelope.key_id == key.public_key.key_id
    assert PackageRecord.decode(envelope.content_bytes) == record


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _signed_init() -> tuple[PrivateKey, object]:
    key = PrivateKey.generate()
    return key, sign_record(build_record(None, [PackageInit(key.public_key)]), key)


def test_polling_starts_fast_and_backs_off_to_a_second() -> None:
    fake = FakeRegistry()
    _, envelope = _signed_init()
    fake.hold = RecordStatus("x", "processing")
    clock = _Clock()
    publisher = Publisher(fake, timeout=5, sleep=clock.sleep, clock=clock)
    with pytest.raises(UnavailableError, match="still processing after 5s"):
        publisher.submit(FOO, envelope, {})  # type: ignore[arg-type]
    assert clock.sleeps[:4] == [0.01, 0.02, 0.04, 0.08]
    assert max(clock.sleeps) == 1.0


def test_rejection_carries_the_servers_reason() -> None:
    fake = FakeRegistry()
    _, envelope = _signed_init()
    reason = "the package record was invalid: previous record hash does not match"
    fake.hold = RecordStatus("x", "rejected", reason=reason)
    with pytest.raises(RecordRejectedError, match="previous record hash does not match") as info:
        Publisher(fake, sleep=lambda _: None).submit(FOO, envelope, {})  # type: ignore[arg-type]
    assert info.value.reason == reason


def _client(tmp_path: Path, fake: FakeRegistry, key: PrivateKey | None) -> WargClient:
    client = WargClient(REGISTRY, tmp_path / "state", key)
    client.updater = Updater(fake)
    client.publisher = Publisher(fake, sleep=lambda _: None)
    return client


def test_publish_flow_uploads_missing_content_and_verifies_the_result(tmp_path: Path) -> None:
    fake = FakeRegistry()
    key = PrivateKey.generate()
    client = _client(tmp_path, fake, key)
    init = client.publish_init("test:foo")
    assert init.registry_index == 1
    content = tmp_path / "hello.wasm"
    content.write_bytes(b"\0asm hello")
    release = client.publish_release("test:foo", "1.0.0", content)
    assert fake.uploads == {str(AnyHash.of(b"\0asm hello")): b"\0asm hello"}
    track = client.info().packages["test:foo"]
    assert track.head_index == release.registry_index == 2
    assert str(track.state.head.record_id) == release.record_id  # type: ignore[union-attr]
    assert track.state.releases["1.0.0"].content == AnyHash.of(b"\0asm hello")
    # the record's prev is the verified head, and its id is what the server published
    last = fake.logs[str(FOO.log_id)][-1]
    assert str(package_record_id(last.envelope.content_bytes)) == release.record_id
    assert PackageRecord.decode(last.envelope.content_bytes).prev == AnyHash.parse(init.record_id)


def test_publish_init_twice_and_release_before_init_are_refused(tmp_path: Path) -> None:
    fake = FakeRegistry()
    client = _client(tmp_path, fake, PrivateKey.generate())
    with pytest.raises(NotFoundError, match="publish init test:foo"):
        client.yank("test:foo", "1.0.0")
    client.publish_init("test:foo")
    with pytest.raises(AlreadyExistsError, match="exists already"):
        client.publish_init("test:foo")


def test_publishing_needs_a_key(tmp_path: Path) -> None:
    client = _client(tmp_path, FakeRegistry(), None)
    with pytest.raises(FailedPreconditionError, match="cairn warg key new"):
        client.publish_init("test:foo")
