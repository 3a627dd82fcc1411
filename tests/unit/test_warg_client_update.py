"""The update verifier against an in-process registry: honest answers verify, every lie is refused.

Each lie (a tampered record, a forged or rolled-back checkpoint, a broken proof)
must fail with a message naming what did not match, and leave the stored state
exactly as it was.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cairn.core.errors import NotFoundError
from cairn.warg.checkpoint import SignedCheckpoint, TimestampedCheckpoint
from cairn.warg.client import VerificationError, WargClient
from cairn.warg.client.model import FetchLogsResult, PublishedRecord
from cairn.warg.client.state import ClientState
from cairn.warg.client.update import Updater
from cairn.warg.client.verify import check_progress
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import PackageName
from cairn.warg.merkle_log import LogProofBundle, prove_consistency
from cairn.warg.records import (
    Envelope,
    PackageGrantFlat,
    PackageInit,
    PackagePermission,
    PackageRecord,
    PackageRelease,
    PackageYank,
)
from cairn.warg.semver import Version
from tests.unit.warg_client_fake import REGISTRY, FakeRegistry

FOO = "test:foo"
BAR = "test:bar"


def _digest(text: str) -> AnyHash:
    return AnyHash.of(text.encode())


@pytest.fixture
def alice() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def registry(alice: PrivateKey) -> FakeRegistry:
    fake = FakeRegistry()
    fake.publish(
        FOO, alice, PackageInit(alice.public_key), PackageRelease(Version.parse("1.0.0"), _digest("a"))
    )
    fake.publish(BAR, alice, PackageInit(alice.public_key))
    return fake


def _client(tmp_path: Path, fake: FakeRegistry, page_limit: int | None = None) -> WargClient:
    client = WargClient(REGISTRY, tmp_path / "state")
    client.updater = Updater(fake, page_limit=page_limit)
    return client


def _stored(client: WargClient) -> dict[str, object]:
    """Everything stored, comparable: to check a failed update changed nothing."""
    state = client.info()
    return {
        "checkpoint": None if state.checkpoint is None else state.checkpoint.to_json(),
        "operator": (state.operator.state.to_json(), state.operator.head_index, state.operator.fetch_token),
        "packages": {
            name: (t.state.to_json(), t.head_index, t.fetch_token) for name, t in state.packages.items()
        },
    }


# -- honest registries -----------------------------------------------------------------------
def test_update_from_empty_state_verifies_and_stores_everything(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    client = _client(tmp_path, registry)
    report = client.update([FOO, BAR])
    assert report.previous_length is None
    assert report.checkpoint.contents.log_length == 3
    assert report.new_records == {"operator": 1, FOO: 1, BAR: 1}
    state = client.info()
    assert state.checkpoint is not None and state.checkpoint.contents.log_length == 3
    assert set(state.packages) == {FOO, BAR}
    foo = state.packages[FOO]
    assert foo.head_index == 1 and foo.fetch_token == registry.logs[str(foo.log_id)][-1].fetch_token
    assert "1.0.0" in foo.state.releases
    assert state.operator.state.namespaces.keys() == {"test"}
    assert registry.calls == ["checkpoint", "logs", "inclusion"]  # no consistency proof without a past


def test_update_is_incremental_and_tracks_known_packages(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    client = _client(tmp_path, registry)
    client.update([FOO, BAR])
    registry.publish(FOO, alice, PackageRelease(Version.parse("1.1.0"), _digest("b")))
    registry.publish(FOO, alice, PackageYank(Version.parse("1.0.0")))
    seen: list[dict[str, str | None]] = []
    honest = registry.fetch_logs

    def spy(
        log_length: int,
        operator: str | None = None,
        packages: dict[str, str | None] | None = None,
        limit: int | None = None,
    ) -> FetchLogsResult:
        seen.append(dict(packages or {}))
        return honest(log_length, operator, packages, limit)

    registry.fetch_logs = spy  # type: ignore[method-assign]
    registry.calls.clear()
    report = client.update()  # no names: every tracked package is updated
    assert report.previous_length == 3 and report.checkpoint.contents.log_length == 5
    assert report.new_records == {"operator": 0, FOO: 2, BAR: 0}
    assert registry.calls == ["checkpoint", "logs", "inclusion", "consistency"]
    foo_id = str(PackageName.parse(FOO).log_id)
    assert seen[0][foo_id] is not None  # it asked from the fetch token, not from the start
    releases = client.info().packages[FOO].state.releases
    assert releases["1.0.0"].yanked and not releases["1.1.0"].yanked


def test_pagination_follows_more_until_done(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    for i in range(5):
        registry.publish(FOO, alice, PackageRelease(Version.parse(f"2.0.{i}"), _digest(str(i))))
    client = _client(tmp_path, registry, page_limit=2)
    report = client.update([FOO])
    assert report.new_records[FOO] == 6
    assert registry.calls.count("logs") == 4  # 2 + 2 + 2 + a last page that is not full
    assert len(client.info().packages[FOO].state.releases) == 6


def test_unknown_package_is_not_found_and_nothing_stored(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    with pytest.raises(NotFoundError, match="package test:nope does not exist"):
        client.update(["test:nope"])
    assert client.info().checkpoint is None


def test_missing_ok_drops_an_unknown_package(tmp_path: Path, registry: FakeRegistry) -> None:
    state = ClientState(REGISTRY)
    report = Updater(registry).update(state, [PackageName.parse("test:nope")], missing_ok=True)
    assert report.missing == ["test:nope"]
    assert "test:nope" not in state.packages and state.checkpoint is not None


# -- lies ---------------------------------------------------------------------------------------
def _replace_record(fake: FakeRegistry, name: str, position: int, record: PublishedRecord) -> None:
    log_id = str(PackageName.parse(name).log_id)

    def lie(result: FetchLogsResult) -> FetchLogsResult:
        records = list(result.packages.get(log_id, []))
        if len(records) > position:
            records[position] = record
            result.packages[log_id] = records
        return result

    fake.on_logs = lie


def test_tampered_record_bytes_are_refused(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    honest = registry.logs[str(PackageName.parse(FOO).log_id)][0]
    tampered = dataclasses.replace(
        honest,
        envelope=dataclasses.replace(honest.envelope, content_bytes=honest.envelope.content_bytes + b"\x00"),
    )
    _replace_record(registry, FOO, 0, tampered)
    with pytest.raises(VerificationError, match=r"fetch token .* but its content hashes to"):
        client.update([FOO])
    assert client.info().checkpoint is None


def test_record_with_a_bad_signature_is_refused(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    honest = registry.logs[str(PackageName.parse(FOO).log_id)][0]
    other = Envelope.sign_package(PackageRecord.decode(honest.envelope.content_bytes), PrivateKey.generate())
    forged = dataclasses.replace(
        honest, envelope=dataclasses.replace(honest.envelope, signature=other.signature)
    )
    _replace_record(registry, FOO, 0, forged)
    with pytest.raises(
        VerificationError, match=r"record sha256:\w+ of package test:foo .* unable to verify signature"
    ):
        client.update([FOO])


def test_record_signed_by_a_key_without_permission_is_refused(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    client = _client(tmp_path, registry)
    client.update([FOO])
    mallory = PrivateKey.generate()
    registry.publish(FOO, mallory, PackageRelease(Version.parse("6.6.6"), _digest("evil")))
    before = _stored(client)
    with pytest.raises(VerificationError, match="did not have required permission release"):
        client.update()
    assert _stored(client) == before


def test_rolled_back_checkpoint_is_refused_and_state_kept(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    client = _client(tmp_path, registry)
    registry.publish(
        FOO, alice, PackageGrantFlat(PrivateKey.generate().public_key, (PackagePermission.RELEASE,))
    )
    client.update([FOO])
    before = _stored(client)
    old = registry.checkpoints[3]
    registry.on_checkpoint = lambda _: old
    with pytest.raises(
        VerificationError, match=r"checkpoint rollback: .* log length 3, .* already verified log length 4"
    ):
        client.update()
    assert _stored(client) == before


def test_same_length_with_other_roots_is_refused(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    client.update([FOO])
    honest = registry.checkpoints[registry.latest].contents
    forged = SignedCheckpoint.sign(
        dataclasses.replace(honest, log_root=_digest("another history"), timestamp=honest.timestamp + 1),
        registry.operator_key,
    )
    registry.on_checkpoint = lambda _: forged
    with pytest.raises(VerificationError, match=r"checkpoint mismatch: at log length 3 .* log root"):
        client.update()


def test_checkpoint_signed_by_an_unknown_key_is_refused(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    honest = registry.checkpoints[registry.latest]
    registry.on_checkpoint = lambda _: SignedCheckpoint.sign(honest.contents, PrivateKey.generate())
    with pytest.raises(
        VerificationError, match=r"signed by key sha256:\w+, which the operator log does not know"
    ):
        client.update([FOO])


def test_checkpoint_with_a_bad_signature_is_refused(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    honest = registry.checkpoints[registry.latest]
    other = SignedCheckpoint.sign(honest.contents, PrivateKey.generate())
    registry.on_checkpoint = lambda _: dataclasses.replace(honest, signature=other.signature)
    with pytest.raises(VerificationError, match="does not verify with operator key"):
        client.update([FOO])


def test_checkpoint_roots_that_the_heads_do_not_reach_are_refused(
    tmp_path: Path, registry: FakeRegistry
) -> None:
    """A checkpoint correctly signed over roots of another log: the inclusion proofs expose it."""
    client = _client(tmp_path, registry)
    honest = registry.checkpoints[registry.latest].contents
    forged = SignedCheckpoint.sign(
        TimestampedCheckpoint(honest.log_length, _digest("x"), honest.map_root, honest.timestamp),
        registry.operator_key,
    )
    registry.on_checkpoint = lambda _: forged
    with pytest.raises(VerificationError, match=r"inclusion proof of the operator log's head .* log root"):
        client.update([FOO])


def test_map_proof_of_another_log_is_refused(tmp_path: Path, registry: FakeRegistry) -> None:
    client = _client(tmp_path, registry)
    honest_inclusion = registry.prove_inclusion

    def swapped(log_length: int, leafs: list[int]) -> tuple[bytes, bytes]:
        log_bundle, _ = honest_inclusion(log_length, leafs)
        _, map_bundle = honest_inclusion(log_length, list(reversed(leafs)))
        return log_bundle, map_bundle

    registry.prove_inclusion = swapped  # type: ignore[method-assign,assignment]
    with pytest.raises(VerificationError, match="the map proof leads to root"):
        client.update([FOO])


def test_inconsistent_consistency_proof_is_refused(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    client = _client(tmp_path, registry)
    client.update([FOO])
    before = _stored(client)
    registry.publish(FOO, alice, PackageRelease(Version.parse("3.0.0"), _digest("c")))

    def corrupt(bundle: bytes) -> bytes:
        proof = LogProofBundle.decode(bundle)
        first = min(proof.hashes)
        proof.hashes[first] = bytes(32)
        return proof.encode()

    registry.on_consistency = corrupt
    with pytest.raises(VerificationError, match="consistency proof from log length 3 to 4"):
        client.update()
    assert _stored(client) == before


def test_consistency_proof_for_other_lengths_is_refused(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    client = _client(tmp_path, registry)
    client.update([FOO])
    registry.publish(FOO, alice, PackageRelease(Version.parse("3.0.0"), _digest("c")))
    registry.on_consistency = lambda _: prove_consistency(2, 4, registry.log).encode()
    with pytest.raises(VerificationError, match=r"the bundle proves lengths \[2\] -> 4"):
        client.update()


def test_forgotten_fetch_token_means_another_history(
    tmp_path: Path, registry: FakeRegistry, alice: PrivateKey
) -> None:
    client = _client(tmp_path, registry)
    client.update([FOO])
    fork = FakeRegistry(operator_key=registry.operator_key)
    fork.publish(FOO, alice, PackageInit(alice.public_key))
    fork.publish(BAR, alice, PackageInit(alice.public_key))
    fork.publish(BAR, alice, PackageGrantFlat(alice.public_key, (PackagePermission.YANK,)))
    client.updater = Updater(fork)
    with pytest.raises(VerificationError, match="its history is not the one this client knows"):
        client.update()


def test_check_progress_accepts_growth_and_first_sight() -> None:
    key = PrivateKey.generate()
    one = SignedCheckpoint.sign(TimestampedCheckpoint(1, _digest("1"), _digest("m1"), 1), key)
    two = SignedCheckpoint.sign(TimestampedCheckpoint(2, _digest("2"), _digest("m2"), 2), key)
    check_progress(None, one)
    check_progress(one, two)
    check_progress(two, SignedCheckpoint.sign(dataclasses.replace(two.contents, timestamp=9), key))
    with pytest.raises(VerificationError, match="map root"):
        check_progress(
            two, SignedCheckpoint.sign(dataclasses.replace(two.contents, map_root=_digest("x")), key)
        )
