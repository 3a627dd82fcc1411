"""The Warg client end to end against a real ``cairn serve``: publish, verify, download, refuse.

The scenario of the issue: a package is started, two versions are released
with content upload, one is yanked, a second key is granted release and
publishes, is revoked, and its next record is rejected with the server's
reason; a client with an empty state fetches and verifies everything, then
again incrementally; downloads are checked against the verified digests. The
library is driven from Python (as the lead's end-to-end test does), and every
``cairn warg`` command runs at least once as a ``python -m cairn`` subprocess.

The server defines the namespace ``cairn`` by default (``warg.namespaces``).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cairn.core.errors import FailedPreconditionError, NotFoundError
from cairn.warg.client import RecordRejectedError, VerificationError, WargClient, create_key, load_key
from cairn.warg.client.state import StateStore
from cairn.warg.hashes import AnyHash
from tests.conftest import CairnServer, cairn_command

NAME = "cairn:hello"
SERVER_WAIT = 20.0


def _wait_for_warg(server: CairnServer) -> None:
    """The Warg face answers once its first checkpoint exists; skip if this server has no Warg face."""
    deadline = time.monotonic() + SERVER_WAIT
    while True:
        try:
            with urllib.request.urlopen(f"{server.http_url}/v1/fetch/checkpoint", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            if getattr(exc, "code", None) == 404 and time.monotonic() > deadline:
                pytest.skip("this cairn serve has no Warg face at /v1/ yet")
        if time.monotonic() > deadline:
            pytest.fail(f"the Warg face did not answer:\n{server.log()}")
        time.sleep(0.05)


@pytest.fixture
def registry(cairn_server: CairnServer) -> CairnServer:
    _wait_for_warg(cairn_server)
    return cairn_server


def _client(server: CairnServer, state: Path, key_file: Path | None = None) -> WargClient:
    key = None if key_file is None else load_key(key_file)
    return WargClient(server.http_url, state, key, publish_timeout=30)


def test_publish_verify_download_and_revoke(registry: CairnServer, tmp_path: Path) -> None:
    alice_key, bob_key = tmp_path / "alice.key", tmp_path / "bob.key"
    create_key(alice_key)
    bob_public = create_key(bob_key).public_key
    v1, v11, v2 = tmp_path / "v1.wasm", tmp_path / "v11.wasm", tmp_path / "v2.wasm"
    v1.write_bytes(b"\0asm\1\0\0\0 version one")
    v11.write_bytes(b"\0asm\1\0\0\0" + os.urandom(3 << 20))  # several upload chunks
    v2.write_bytes(b"\0asm\1\0\0\0 bob's version")

    with (
        _client(registry, tmp_path / "alice", alice_key) as alice,
        _client(registry, tmp_path / "bob", bob_key) as bob,
    ):
        init = alice.publish_init(NAME)
        assert init.registry_index == 1
        r1 = alice.publish_release(NAME, "1.0.0", v1)
        r11 = alice.publish_release(NAME, "1.1.0", v11)
        assert r1.registry_index is not None and r11.registry_index == r1.registry_index + 1
        alice.yank(NAME, "1.0.0")
        alice.grant(NAME, bob_public)  # release only, the default
        bob.publish_release(NAME, "2.0.0", v2)
        alice.revoke(NAME, bob_public.key_id)
        with pytest.raises(RecordRejectedError) as rejected:
            bob.publish_release(NAME, "3.0.0", v2)
        assert "did not have required permission release" in rejected.value.reason
        assert bob_public.key_id in rejected.value.message

        # a client that knows nothing verifies the whole history
        with _client(registry, tmp_path / "fresh") as fresh:
            report = fresh.update([NAME])
            assert report.previous_length is None
            assert report.new_records[NAME] == 7  # init, 2 releases, yank, grant, bob's release, revoke
            track = fresh.package(NAME)
            releases = track.state.releases
            assert sorted(releases) == ["1.0.0", "1.1.0", "2.0.0"]
            assert releases["1.0.0"].yanked and not releases["1.1.0"].yanked
            assert releases["1.1.0"].content == AnyHash.of(v11.read_bytes())
            assert releases["2.0.0"].by == bob_public.key_id
            assert track.state.permissions.get(bob_public.key_id, set()) == set()
            assert str(track.state.head.record_id) == alice.package(NAME).fetch_token  # type: ignore[union-attr]

            # ... and then only what is new, proven consistent with what it verified
            alice.publish_release(NAME, "1.2.0", v1)
            again = fresh.update()
            assert again.previous_length == report.checkpoint.contents.log_length
            assert again.new_records[NAME] == 1 and again.new_records["operator"] == 0

            out = tmp_path / "download.wasm"
            got = fresh.download(NAME, "1.1.0", out)
            assert out.read_bytes() == v11.read_bytes() and got.digest == str(AnyHash.of(v11.read_bytes()))
            with pytest.raises(FailedPreconditionError, match="was yanked"):
                fresh.download(NAME, "1.0.0", tmp_path / "yanked.wasm")
            fresh.download(NAME, "1.0.0", tmp_path / "yanked.wasm", allow_yanked=True)
            assert (tmp_path / "yanked.wasm").read_bytes() == v1.read_bytes()
            with pytest.raises(NotFoundError, match=r"no release 9\.9\.9"):
                fresh.download(NAME, "9.9.9", tmp_path / "none")


def test_a_rolled_back_registry_is_refused(registry: CairnServer, tmp_path: Path) -> None:
    """A state that verified a longer history than the server now shows (a rollback, as the
    reference memory store produces after a restart) makes the update fail and keeps the state."""
    key_file = tmp_path / "k.key"
    create_key(key_file)
    with _client(registry, tmp_path / "state", key_file) as client:
        client.publish_init("cairn:rolled")
        store = StateStore(tmp_path / "state", client.registry)
        state = store.load()
        assert state.checkpoint is not None
        contents = state.checkpoint.contents
        # pretend this client had verified a longer log: the registry's checkpoint now looks rolled back
        longer = type(contents)(
            contents.log_length + 5, contents.log_root, contents.map_root, contents.timestamp
        )
        state.checkpoint = type(state.checkpoint)(longer, state.checkpoint.key_id, state.checkpoint.signature)
        store.save(state)
        before = (store.directory / "state.json").read_bytes()
        with pytest.raises(VerificationError, match="checkpoint rollback"):
            client.update()
        assert (store.directory / "state.json").read_bytes() == before


# -- the CLI ------------------------------------------------------------------------------------
def _warg(
    server: CairnServer, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [*cairn_command(), "warg", *args],
        input=b"",
        capture_output=True,
        check=False,
        env={**server.env(), **env},
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"cairn warg {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
        )
    return result


def _json(result: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(result.stdout)


def test_every_cli_command(registry: CairnServer, tmp_path: Path) -> None:
    env = {
        "CAIRN_WARG_URL": registry.http_url,
        "CAIRN_WARG_STATE_DIR": str(tmp_path / "state"),
        "CAIRN_WARG_KEY_FILE": str(tmp_path / "alice.key"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    bob = ["--key-file", str(tmp_path / "bob.key"), "--state-dir", str(tmp_path / "bob-state")]
    content = tmp_path / "hello.wasm"
    content.write_bytes(b"\0asm\1\0\0\0 hello from the cli")

    key = _json(_warg(registry, env, "key", "new", "-o", "json"))
    assert stat.S_IMODE((tmp_path / "alice.key").stat().st_mode) == 0o600
    assert _json(_warg(registry, env, "key", "show", "-o", "json")) == key
    assert _warg(registry, env, "key", "new", check=False).returncode == 1  # never overwritten silently
    bob_public = _warg(registry, env, "key", "new", "-o", "raw", *bob).stdout.decode().strip()
    assert bob_public.startswith("ecdsa-p256:")

    init = _json(_warg(registry, env, "publish", "init", NAME, "-o", "json"))
    assert init["package"] == NAME and init["registryIndex"] == 1
    record_id = _warg(registry, env, "publish", "release", NAME, "1.0.0", str(content), "-o", "raw").stdout
    assert record_id.decode().strip().startswith("sha256:")
    _warg(registry, env, "publish", "release", NAME, "1.1.0", str(content))
    _warg(registry, env, "publish", "yank", NAME, "1.0.0")
    _warg(registry, env, "publish", "grant", NAME, bob_public, "--permission", "release")
    _warg(registry, env, *bob[:2], "publish", "release", NAME, "2.0.0", str(content), *bob[2:])
    _warg(registry, env, "publish", "revoke", NAME, bob_public, "--permission", "release")
    refused = _warg(registry, env, "publish", "release", NAME, "3.0.0", str(content), *bob, check=False)
    assert refused.returncode == 1
    assert b"cairn: the registry rejected record" in refused.stderr
    assert b"did not have required permission release" in refused.stderr

    update = _json(_warg(registry, env, "update", "-o", "json"))
    assert update["logLength"] == 8 and update["previousLogLength"] == 8
    info = _json(_warg(registry, env, "info", NAME, "-o", "json"))
    versions = {r["version"]: r for r in info["releases"]}
    assert versions.keys() == {"1.0.0", "1.1.0", "2.0.0"} and versions["1.0.0"]["yanked"]
    assert _warg(registry, env, "info", "-o", "raw").stdout.decode().split() == [NAME]
    assert b"checkpoint: log length 8" in _warg(registry, env, "info").stdout

    fresh = {**env, "CAIRN_WARG_STATE_DIR": str(tmp_path / "fresh")}
    human = _warg(registry, fresh, "update", NAME).stdout.decode()
    assert "verified checkpoint: log length 8" in human and f"{NAME} +7" in human
    out = tmp_path / "out.wasm"
    described = _json(_warg(registry, fresh, "download", f"{NAME}@1.1.0", "-O", str(out), "-o", "json"))
    assert out.read_bytes() == content.read_bytes() and described["digest"] == str(
        AnyHash.of(content.read_bytes())
    )
    streamed = _warg(registry, fresh, "download", f"{NAME}@2.0.0")
    assert streamed.stdout == content.read_bytes() and b"verified" in streamed.stderr
    yanked = _warg(registry, fresh, "download", f"{NAME}@1.0.0", check=False)
    assert yanked.returncode == 1 and yanked.stdout == b"" and b"was yanked" in yanked.stderr

    bad = _warg(registry, env, "download", "not-a-name@1.0.0", check=False)
    assert bad.returncode == 2
    remote = _warg(registry, env, "--registry", "http://registry.example/", "update", check=False)
    assert remote.returncode == 2 and b"plain http is allowed only to localhost" in remote.stderr


def test_the_typed_api_reads_every_endpoint(registry: CairnServer, tmp_path: Path) -> None:
    """The calls an update does not make: names, the monitor's verdict, the ledger."""
    key_file = tmp_path / "k.key"
    create_key(key_file)
    with _client(registry, tmp_path / "state", key_file) as client:
        client.publish_init(NAME)
        api = client.api
        log_id = str(client.package(NAME).log_id)
        assert api.fetch_names([log_id]) == {log_id: NAME}
        checkpoint = api.fetch_checkpoint()
        assert api.verify_checkpoint(checkpoint) == {"checkpoint": "verified", "signature": "verified"}
        ledger = api.ledger()
        assert ledger["hashAlgorithm"] == "sha256" and ledger["sources"][0]["url"] == "v1/ledger/records/0"
        packed = api.ledger_records(0)
        assert len(packed) == 64 * checkpoint.contents.log_length
        assert packed[64 + 32 :] == AnyHash.parse(client.package(NAME).fetch_token or "").digest
        with pytest.raises(NotFoundError, match=r"content sha256:0+ is unknown"):
            api.content_sources("sha256:" + "0" * 64)
