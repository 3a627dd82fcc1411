"""The state directory and the key file: atomic, incremental, refusing what is corrupt or exposed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import cairn.warg.client.state as state_module
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    DataLossError,
    NotFoundError,
    PermissionDeniedError,
)
from cairn.warg.client.keys import create_key, default_key_file, load_key
from cairn.warg.client.state import ClientState, StateStore, default_state_root, registry_dir_name
from cairn.warg.client.update import Updater
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import PackageName
from cairn.warg.records import PackageInit, PackageRelease, PackageYank
from cairn.warg.semver import Version
from tests.unit.warg_client_fake import REGISTRY, FakeRegistry


def _verified(fake: FakeRegistry, *names: str) -> ClientState:
    state = ClientState(REGISTRY)
    Updater(fake).update(state, [PackageName.parse(n) for n in names])
    return state


@pytest.fixture
def fake() -> FakeRegistry:
    key = PrivateKey.generate()
    registry = FakeRegistry()
    registry.publish("test:foo", key, PackageInit(key.public_key))
    registry.publish("test:foo", key, PackageRelease(Version.parse("1.0.0"), AnyHash.of(b"one")))
    registry.publish("test:foo", key, PackageYank(Version.parse("1.0.0")))
    registry.publish("test:bar", key, PackageInit(key.public_key))
    return registry


def test_empty_directory_loads_an_empty_state(tmp_path: Path) -> None:
    state = StateStore(tmp_path, REGISTRY).load()
    assert state.registry == REGISTRY and state.checkpoint is None and not state.packages


def test_save_then_load_round_trips(tmp_path: Path, fake: FakeRegistry) -> None:
    store = StateStore(tmp_path, REGISTRY)
    state = _verified(fake, "test:foo", "test:bar")
    store.save(state)
    loaded = store.load()
    assert loaded.checkpoint == state.checkpoint
    assert loaded.operator.state.to_json() == state.operator.state.to_json()
    assert (loaded.operator.head_index, loaded.operator.fetch_token) == (0, state.operator.fetch_token)
    for name, track in state.packages.items():
        again = loaded.packages[name]
        assert again.state.to_json() == track.state.to_json()
        assert (again.head_index, again.fetch_token) == (track.head_index, track.fetch_token)
    # a yanked release keeps its content digest (downloads of yanked versions need it)
    assert loaded.packages["test:foo"].state.releases["1.0.0"].content == AnyHash.of(b"one")


def test_unchanged_logs_are_not_rewritten_and_stale_ones_go(tmp_path: Path, fake: FakeRegistry) -> None:
    store = StateStore(tmp_path, REGISTRY)
    state = _verified(fake, "test:foo", "test:bar")
    store.save(state)
    logs = store.directory / "logs"
    before = {p.name: p.stat().st_mtime_ns for p in logs.iterdir()}
    key = PrivateKey.generate()
    fake.publish("test:baz", key, PackageInit(key.public_key))
    Updater(fake).update(state, [PackageName.parse("test:baz")])
    store.save(state)
    after = {p.name: p.stat().st_mtime_ns for p in logs.iterdir()}
    assert len(after) == 4  # operator, foo, bar, baz
    assert {n: t for n, t in after.items() if n in before} == before  # the same files, untouched
    fake.publish("test:baz", key, PackageRelease(Version.parse("1.0.0"), AnyHash.of(b"x")))
    Updater(fake).update(state)
    store.save(state)
    assert len(list(logs.iterdir())) == 4  # baz's old file was deleted


def test_a_save_killed_before_the_index_leaves_the_old_state(
    tmp_path: Path, fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path, REGISTRY)
    state = _verified(fake, "test:foo")
    store.save(state)
    key = PrivateKey.generate()
    fake.publish("test:baz", key, PackageInit(key.public_key))
    Updater(fake).update(state, [PackageName.parse("test:baz")])
    real = state_module._atomic_write

    def crash(path: Path, data: bytes) -> None:
        if path.name == "state.json":
            raise KeyboardInterrupt  # as a kill between the log files and the index
        real(path, data)

    monkeypatch.setattr(state_module, "_atomic_write", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(state)
    monkeypatch.undo()
    loaded = store.load()
    assert set(loaded.packages) == {"test:foo"}
    assert loaded.checkpoint is not None and loaded.checkpoint.contents.log_length == 5
    assert not list(store.directory.glob(".*.tmp"))


def test_a_corrupt_log_file_is_reported_not_believed(tmp_path: Path, fake: FakeRegistry) -> None:
    store = StateStore(tmp_path, REGISTRY)
    store.save(_verified(fake, "test:foo"))
    victim = next((store.directory / "logs").iterdir())
    victim.write_bytes(victim.read_bytes().replace(b'"headIndex"', b'"headIndeX"'))
    with pytest.raises(
        DataLossError, match=r"does not hash to its name\); remove the directory to start over"
    ):
        store.load()


def test_a_corrupt_index_is_reported(tmp_path: Path) -> None:
    store = StateStore(tmp_path, REGISTRY)
    store.directory.mkdir(parents=True)
    (store.directory / "state.json").write_text("{not json")
    with pytest.raises(DataLossError, match="unreadable"):
        store.load()
    (store.directory / "state.json").write_text(json.dumps({"format": 1, "registry": "http://other/"}))
    with pytest.raises(DataLossError, match="belongs to registry"):
        store.load()


def test_each_registry_gets_its_own_directory() -> None:
    a = registry_dir_name("http://127.0.0.1:8090/")
    b = registry_dir_name("http://127.0.0.1:8090/prefix/")
    c = registry_dir_name("https://127.0.0.1:8090/")
    assert len({a, b, c}) == 3
    assert a.startswith("127.0.0.1-8090-")


def test_default_directories_follow_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert default_state_root() == tmp_path / "cache" / "cairn" / "warg"
    assert default_key_file() == tmp_path / "config" / "cairn" / "warg" / "signing.key"


def test_the_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    store = StateStore(tmp_path, REGISTRY)
    other = StateStore(tmp_path, REGISTRY)
    with store.locked():
        # flock locks belong to the open file, so a second open in this process is excluded too
        with pytest.raises(CairnError, match="locked by another process"), other.locked(wait=0.1):
            pass
    with other.locked(wait=0.1):
        pass


# -- the key file ------------------------------------------------------------------------------
def test_a_new_key_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "signing.key"
    key = create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_key(path).public_key == key.public_key
    with pytest.raises(AlreadyExistsError, match="not overwriting"):
        create_key(path)
    assert create_key(path, force=True).public_key != key.public_key


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(PermissionDeniedError, match="chmod 600"):
        load_key(path)


def test_missing_or_bad_key_files_say_so_without_quoting_them(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="cairn warg key new"):
        load_key(tmp_path / "none")
    path = tmp_path / "bad.key"
    path.write_text("ecdsa-p256:c2VjcmV0LWJ1dC1icm9rZW4=\n")
    os.chmod(path, 0o600)
    with pytest.raises(CairnError) as info:
        load_key(path)
    assert "c2VjcmV0" not in info.value.message and "does not hold a Warg private key" in info.value.message
