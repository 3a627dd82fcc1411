"""A client pointed at a registry whose stored log was altered notices and stops.

Two alterations of a real ``cairn serve``'s catalog, made while it is stopped:
a record's bytes changed in place (a registry rewriting history), and the whole
data directory restored from an older copy (a registry rolled back to an
earlier checkpoint). The client must fail with a message naming what did not
match and keep the state it had verified.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from cairn.warg.client import VerificationError, WargClient, create_key, load_key
from cairn.warg.ids import package_log_id
from tests.conftest import CairnServer


def _client(server: CairnServer, state: Path, key_file: Path) -> WargClient:
    return WargClient(server.http_url, state, load_key(key_file), publish_timeout=30)


def _state_bytes(state: Path) -> dict[str, bytes]:
    return {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*.json"))}


@pytest.mark.embedded_only("alters the embedded store's files (cairn.db, the data directory)")
def test_a_changed_record_is_detected(cairn_server: CairnServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    create_key(key_file)
    content = tmp_path / "hello.wasm"
    content.write_bytes(b"\0asm hello")
    with _client(cairn_server, tmp_path / "publisher", key_file) as client:
        client.publish_init("cairn:altered")
        client.publish_release("cairn:altered", "1.0.0", content)
    with _client(cairn_server, tmp_path / "watcher", key_file) as watcher:
        watcher.update(["cairn:altered"])
    verified = _state_bytes(tmp_path / "watcher")

    cairn_server.stop()
    with sqlite3.connect(cairn_server.data_dir / "cairn.db") as db:
        log_id = str(package_log_id("cairn:altered"))
        (content_bytes, record_id) = db.execute(
            "SELECT content_bytes, record_id FROM warg_records WHERE log_id = ? ORDER BY registry_index DESC",
            (log_id,),
        ).fetchone()
        changed = bytearray(content_bytes)
        changed[-1] ^= 0x01  # one bit of the release record's last field
        db.execute(
            "UPDATE warg_records SET content_bytes = ? WHERE log_id = ? AND record_id = ?",
            (bytes(changed), log_id, record_id),
        )
    cairn_server.start()

    with _client(cairn_server, tmp_path / "fresh", key_file) as fresh, pytest.raises(VerificationError) as caught:
        fresh.update(["cairn:altered"])
    assert "record" in str(caught.value).lower()
    assert not (tmp_path / "fresh" / "state.json").exists() or _state_bytes(tmp_path / "fresh") == {}
    # the client that had verified it before keeps what it verified (its update fetches nothing new
    # here, so re-verifying the altered history is the fresh client's job); a new checkpoint from
    # the altered registry is refused too
    assert _state_bytes(tmp_path / "watcher") == verified


@pytest.mark.embedded_only("alters the embedded store's files (cairn.db, the data directory)")
def test_a_rolled_back_registry_is_detected(cairn_server: CairnServer, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    create_key(key_file)
    backup = tmp_path / "backup"
    with _client(cairn_server, tmp_path / "publisher", key_file) as client:
        client.publish_init("cairn:rollback")
    cairn_server.stop()
    shutil.copytree(cairn_server.data_dir, backup, ignore=shutil.ignore_patterns("cairn.sock", "LOCK"))
    cairn_server.start()
    content = tmp_path / "v1.wasm"
    content.write_bytes(b"\0asm v1")
    with _client(cairn_server, tmp_path / "publisher", key_file) as client:
        client.publish_release("cairn:rollback", "1.0.0", content)
    with _client(cairn_server, tmp_path / "watcher", key_file) as watcher:
        report = watcher.update(["cairn:rollback"])
        assert report is not None
    verified = _state_bytes(tmp_path / "watcher")

    cairn_server.stop()
    shutil.rmtree(cairn_server.data_dir)
    shutil.copytree(backup, cairn_server.data_dir)  # the registry as it was one checkpoint earlier
    cairn_server.start()
    with _client(cairn_server, tmp_path / "watcher", key_file) as watcher, pytest.raises(VerificationError) as caught:
        watcher.update(["cairn:rollback"])
    assert "rollback" in str(caught.value)
    assert _state_bytes(tmp_path / "watcher") == verified
