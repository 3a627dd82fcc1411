"""``cairn record ...`` and ``cairn sync ...`` as a user runs them, against a real ``cairn serve``.

Every command is a ``python -m cairn`` subprocess that finds the server through
``CAIRN_SERVER`` (the fixture's unix socket), so option parsing, exit codes,
stdout/stderr, the gRPC client and the server's StoreService are all real.
Records are the spec's vectors (``tests/vectors/directory``, a copy of
``shared/vectors/directory``), so a CID printed here is the CID upstream asserts.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from cairn.core.cid import cid_of_bytes
from cairn.directory.canonical import canonical_json
from tests.conftest import CairnServer, cairn_command, free_port

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "directory"
DEAD_REMOTE = "127.0.0.1:9"  # discard port: no Directory node answers there


def vectors() -> dict[str, Any]:
    path = VECTORS / "cids.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def record_vector(name: str) -> dict[str, Any]:
    return next(v for v in vectors()["record_vectors"] if v["file"] == name)


def cairn(
    server: CairnServer | None,
    *args: str,
    stdin: bytes | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cairn ARGS``; with no server, offline (CAIRN_SERVER points nowhere)."""
    base = server.env() if server is not None else {**os.environ, "CAIRN_SERVER": f"127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [*cairn_command(), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        check=False,
        env={**base, **(env or {})},
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}")
    return result


def out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode()


def variant(name: str) -> dict[str, Any]:
    """record_070 under another name: a different record, so a different CID."""
    document: dict[str, Any] = json.loads((VECTORS / "record_070.json").read_text())
    document["name"] = f"directory.agntcy.org/cairn/{name}"
    return document


def local_cid(document: object) -> str:
    return cid_of_bytes(canonical_json(document))


def keypair(tmp_path: Path, prefix: str) -> tuple[Path, Path]:
    cairn(None, "record", "sign", "--generate-key", str(tmp_path / prefix))
    return tmp_path / f"{prefix}.key", tmp_path / f"{prefix}.pub"


# -- push, pull, info ------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["record_070.json", "record_080_v4.json", "record_080_v5.json", "record_100.json"]
)
def test_push_raw_prints_the_cid_and_pull_raw_the_canonical_bytes(
    cairn_server: CairnServer, name: str
) -> None:
    vector = record_vector(name)
    pushed = cairn(cairn_server, "record", "push", str(VECTORS / name), "-o", "raw")
    assert out(pushed) == vector["cid"] + "\n"
    assert pushed.stderr == b""

    pulled = cairn(cairn_server, "record", "pull", vector["cid"], "-o", "raw").stdout
    assert pulled == vector["canonical_utf8"].encode()
    assert "sha256:" + hashlib.sha256(pulled).hexdigest() == vector["digest"]

    # pushing the same record again is no error and gives the same CID
    again = cairn(cairn_server, "record", "push", str(VECTORS / name), "-o", "raw")
    assert out(again) == vector["cid"] + "\n"


def test_push_and_pull_formats(cairn_server: CairnServer) -> None:
    vector = record_vector("record_070.json")
    cid, path = vector["cid"], str(VECTORS / "record_070.json")
    assert out(cairn(cairn_server, "record", "push", path)) == cid + "\n"
    assert json.loads(out(cairn(cairn_server, "record", "push", path, "-o", "json"))) == [{"cid": cid}]
    assert (
        out(cairn(cairn_server, "record", "-o", "jsonl", "push", path))
        == json.dumps({"cid": cid}, separators=(",", ":")) + "\n"
    )

    document = json.loads(vector["canonical_utf8"])
    default = out(cairn(cairn_server, "record", "pull", cid))  # pull defaults to pretty JSON
    assert default.startswith("{\n  ") and json.loads(default) == document
    jsonl = out(cairn(cairn_server, "record", "pull", cid, "-o", "jsonl"))
    assert jsonl.count("\n") == 1 and json.loads(jsonl) == document
    # the group's -o applies to its commands; the command's own wins
    assert cairn(cairn_server, "record", "-o", "raw", "pull", cid).stdout == vector["canonical_utf8"].encode()
    assert json.loads(out(cairn(cairn_server, "record", "-o", "raw", "pull", cid, "-o", "json"))) == document

    # the TCP address works as well as the socket
    tcp = cairn(cairn_server, "record", "--server", cairn_server.grpc_addr, "pull", cid, "-o", "raw")
    assert tcp.stdout == vector["canonical_utf8"].encode()


def test_info_shows_the_record_metadata(cairn_server: CairnServer) -> None:
    cid = record_vector("record_070.json")["cid"]
    other = record_vector("record_100.json")["cid"]
    cairn(cairn_server, "record", "push", str(VECTORS / "record_070.json"))
    cairn(cairn_server, "record", "push", str(VECTORS / "record_100.json"))

    (meta,) = json.loads(out(cairn(cairn_server, "record", "info", cid, "-o", "json")))
    assert meta["cid"] == cid
    assert meta["schema_version"] == "0.7.0"
    assert meta["created_at"] == "2025-03-19T17:06:37Z"
    assert meta["annotations"].get("key") == "value"  # the record's own annotations

    human = out(cairn(cairn_server, "record", "info", cid, other)).splitlines()
    assert human[0].split() == ["CID", "SCHEMA", "CREATED", "ANNOTATIONS"]
    assert human[1].split()[:3] == [cid, "0.7.0", "2025-03-19T17:06:37Z"]
    assert "key=value" in human[1]
    assert human[2].split()[0] == other
    assert out(cairn(cairn_server, "record", "info", cid, other, "-o", "raw")) == f"{cid}\n{other}\n"
    lines = out(cairn(cairn_server, "record", "info", other, cid, "-o", "jsonl")).splitlines()
    assert [json.loads(line)["cid"] for line in lines] == [other, cid]


# -- many records over one stream ----------------------------------------------------
def test_push_stdin_array_then_delete_stdin(cairn_server: CairnServer) -> None:
    documents = [variant(f"batch-{i}") for i in range(3)]
    expected = [local_cid(d) for d in documents]
    assert len(set(expected)) == 3

    pushed = cairn(
        cairn_server, "record", "push", "--stdin", "-o", "json", stdin=json.dumps(documents).encode()
    )
    assert json.loads(pushed.stdout) == [{"cid": cid} for cid in expected]
    for cid, document in zip(expected, documents, strict=True):
        assert json.loads(out(cairn(cairn_server, "record", "pull", cid))) == document

    deleted = cairn(cairn_server, "record", "delete", "--stdin", stdin=pushed.stdout)
    assert out(deleted) == "".join(f"{cid}\n" for cid in expected)
    for cid in expected:
        gone = cairn(cairn_server, "record", "info", cid, check=False)
        assert gone.returncode == 1 and gone.stdout == b""
        assert gone.stderr.decode().startswith("cairn: ")


def test_push_json_lines_and_delete_line_delimited(cairn_server: CairnServer) -> None:
    documents = [variant(f"lines-{i}") for i in range(2)]
    lines = "".join(json.dumps(d) + "\n" for d in documents).encode()
    cids = out(cairn(cairn_server, "record", "push", "-", "-o", "raw", stdin=lines)).splitlines()
    assert cids == [local_cid(d) for d in documents]

    # delete takes line-delimited CIDs (push -o raw) and CID arguments; deleting twice is no error
    deleted = cairn(cairn_server, "record", "delete", cids[0], "--stdin", "-o", "json", stdin=out_bytes(cids))
    assert json.loads(deleted.stdout) == [{"cid": cid} for cid in cids]
    assert cairn(cairn_server, "record", "delete", cids[1]).returncode == 0
    assert cairn(cairn_server, "record", "pull", cids[0], check=False).returncode == 1


def out_bytes(lines: list[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def test_empty_stdin_deletes_nothing(cairn_server: CairnServer) -> None:
    result = cairn(cairn_server, "record", "delete", "--stdin", stdin=b"")
    assert result.stdout == b""
    assert "nothing deleted" in result.stderr.decode()


# -- signatures ------------------------------------------------------------------------
def test_generate_key_sign_and_verify_offline(tmp_path: Path) -> None:
    key, pub = keypair(tmp_path, "signer")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    again = cairn(None, "record", "sign", "--generate-key", str(tmp_path / "signer"), check=False)
    assert again.returncode == 1 and "exists" in again.stderr.decode()  # never overwrites a key

    cid = record_vector("record_070.json")["cid"]
    signed = cairn(None, "record", "sign", cid, "--key", str(key))
    signature = json.loads(signed.stdout)  # sign defaults to JSON
    assert set(signature) == {
        "annotations",
        "signed_at",
        "algorithm",
        "signature",
        "certificate",
        "content_type",
        "content_bundle",
    }
    assert signature["signature"] and signature["signed_at"].endswith("Z")
    raw = out(cairn(None, "record", "sign", cid, "--key", str(key), "-o", "raw")).strip()
    assert raw and "\n" not in raw

    sig_file = tmp_path / "sig.json"
    sig_file.write_bytes(signed.stdout)
    valid = cairn(None, "record", "verify", cid, "--signature", str(sig_file), "--key", str(pub))
    assert out(valid).startswith(f"valid signature on {cid}")
    as_json = cairn(None, "record", "verify", cid, "--signature", "-", "-o", "json", stdin=signed.stdout)
    assert json.loads(as_json.stdout)["valid"] is True
    assert "--key" in as_json.stderr.decode()  # without --key: a note that the signer is not checked

    _, other_pub = keypair(tmp_path, "other")
    wrong_key = cairn(
        None, "record", "verify", cid, "--signature", str(sig_file), "--key", str(other_pub), check=False
    )
    assert wrong_key.returncode == 1 and wrong_key.stdout == b""
    assert "does not verify" in wrong_key.stderr.decode()

    other_cid = record_vector("record_100.json")["cid"]
    wrong_cid = cairn(None, "record", "verify", other_cid, "--signature", str(sig_file), check=False)
    assert wrong_cid.returncode == 1 and "does not verify" in wrong_cid.stderr.decode()


def test_push_signed_then_verify_from_server(cairn_server: CairnServer, tmp_path: Path) -> None:
    key, pub = keypair(tmp_path, "signer")
    _, other_pub = keypair(tmp_path, "other")
    vector = record_vector("record_080_v4.json")
    cid = vector["cid"]

    pushed = cairn(
        cairn_server,
        "record",
        "push",
        str(VECTORS / "record_080_v4.json"),
        "--sign-key",
        str(key),
        "-o",
        "raw",
    )
    assert out(pushed) == cid + "\n"

    valid = cairn(cairn_server, "record", "verify", cid, "--from-server", "--key", str(pub))
    assert out(valid).startswith(f"valid signature on {cid}")
    assert cairn(cairn_server, "record", "verify", cid).returncode == 0  # --from-server is the default
    wrong = cairn(
        cairn_server, "record", "verify", cid, "--from-server", "--key", str(other_pub), check=False
    )
    assert wrong.returncode == 1 and wrong.stdout == b""
    assert "does not verify" in wrong.stderr.decode()

    # pull --signature carries it; its output is also a signature file for verify
    pulled = cairn(cairn_server, "record", "pull", cid, "--signature")
    document = json.loads(pulled.stdout)
    assert document["record"] == json.loads(vector["canonical_utf8"])
    assert document["signature"]["signature"]
    sig_file = tmp_path / "pulled.json"
    sig_file.write_bytes(pulled.stdout)
    assert (
        cairn(None, "record", "verify", cid, "--signature", str(sig_file), "--key", str(pub)).returncode == 0
    )
    assert cairn(cairn_server, "record", "pull", cid, "--signature", "-o", "raw", check=False).returncode == 2


def test_signed_push_with_an_encrypted_key(cairn_server: CairnServer, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    key = tmp_path / "locked.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    pub = tmp_path / "locked.pub"
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    document = variant("locked")
    source = tmp_path / "rec.json"
    source.write_text(json.dumps(document))

    unset = cairn(
        cairn_server,
        "record",
        "push",
        str(source),
        "--sign-key",
        str(key),
        "--key-password-env",
        "CAIRN_TEST_KEY_PASSWORD",
        check=False,
    )
    assert unset.returncode == 2 and "CAIRN_TEST_KEY_PASSWORD" in unset.stderr.decode()

    pushed = cairn(
        cairn_server,
        "record",
        "push",
        str(source),
        "--sign-key",
        str(key),
        "--key-password-env",
        "KEYPW",
        "-o",
        "raw",
        env={"KEYPW": "s3cret"},
    )
    cid = out(pushed).strip()
    assert cid == local_cid(document)
    assert cairn(cairn_server, "record", "verify", cid, "--key", str(pub)).returncode == 0


def test_verify_unsigned_record_fails(cairn_server: CairnServer) -> None:
    cid = record_vector("record_100.json")["cid"]
    cairn(cairn_server, "record", "push", str(VECTORS / "record_100.json"))
    result = cairn(cairn_server, "record", "verify", cid, check=False)
    assert result.returncode == 1 and "no signature" in result.stderr.decode()
    pulled = json.loads(cairn(cairn_server, "record", "pull", cid, "--signature").stdout)
    assert pulled["signature"] is None


# -- errors ----------------------------------------------------------------------------
def test_errors_and_usage(cairn_server: CairnServer, tmp_path: Path) -> None:
    unknown = cid_of_bytes(b"no such record")
    missing = cairn(cairn_server, "record", "pull", unknown, check=False)
    assert missing.returncode == 1 and missing.stdout == b""
    assert missing.stderr.decode().startswith("cairn: ")

    malformed = cairn(cairn_server, "record", "pull", "not-a-cid", check=False)
    assert malformed.returncode == 2  # a usage error, caught before any call

    neither = cairn(cairn_server, "record", "push", check=False)
    assert neither.returncode == 2 and "--stdin" in neither.stderr.decode()

    bad = tmp_path / "bad.json"
    bad.write_text('{"name": ')
    not_json = cairn(cairn_server, "record", "push", str(bad), check=False)
    assert not_json.returncode == 1 and str(bad) in not_json.stderr.decode()
    scalar = cairn(cairn_server, "record", "push", "--stdin", stdin=b'[{"a": 1}, 2]', check=False)
    assert scalar.returncode == 1 and "not an object" in scalar.stderr.decode()
    assert cairn(cairn_server, "record", "info", check=False).returncode == 2

    nowhere = f"127.0.0.1:{free_port()}"
    down = cairn(cairn_server, "record", "--server", nowhere, "info", unknown, check=False)
    assert down.returncode == 1
    assert f"no server answers at {nowhere}" in down.stderr.decode()


# -- sync ------------------------------------------------------------------------------
def test_sync_create_list_status_delete(cairn_server: CairnServer) -> None:
    created = cairn(cairn_server, "sync", "create", DEAD_REMOTE, "--once", "-o", "raw", check=False)
    assert created.returncode == 0, created.stderr.decode()
    sync_id = out(created).strip()
    assert sync_id and "\n" not in sync_id

    statuses = {"PENDING", "IN_PROGRESS", "FAILED", "COMPLETED"}
    listed = json.loads(cairn(cairn_server, "sync", "list", "-o", "json").stdout)
    (item,) = [s for s in listed if s["sync_id"] == sync_id]
    assert item["remote_directory_url"] == DEAD_REMOTE and item["status"] in statuses
    table = out(cairn(cairn_server, "sync", "list")).splitlines()
    assert table[0].split() == ["ID", "STATUS", "REMOTE"]
    assert any(line.split()[0] == sync_id for line in table[1:])
    assert out(cairn(cairn_server, "sync", "list", "--limit", "1", "-o", "raw")).count("\n") == 1

    status = json.loads(cairn(cairn_server, "sync", "status", sync_id, "-o", "json").stdout)
    assert status["sync_id"] == sync_id and status["status"] in statuses
    assert out(cairn(cairn_server, "sync", "status", sync_id, "-o", "raw")).strip() in statuses
    assert "remote:   " + DEAD_REMOTE in out(cairn(cairn_server, "sync", "status", sync_id))

    # The dead remote makes the one-shot sync fail; the reason is shown.
    deadline = time.monotonic() + 30
    while status["status"] != "FAILED" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = json.loads(cairn(cairn_server, "sync", "status", sync_id, "-o", "json").stdout)
    assert status["status"] == "FAILED"
    assert DEAD_REMOTE in status["status_message"]
    assert "reason:   " in out(cairn(cairn_server, "sync", "status", sync_id))

    # chaining: create --stdin takes another command's JSON
    more = cairn(
        cairn_server,
        "sync",
        "create",
        "--stdin",
        "-o",
        "json",
        stdin=json.dumps([{"remote_directory_url": "127.0.0.1:10"}, "127.0.0.1:11"]).encode(),
    )
    assert len(json.loads(more.stdout)) == 2

    assert out(cairn(cairn_server, "sync", "delete", sync_id)) == sync_id + "\n"
    after = json.loads(cairn(cairn_server, "sync", "status", sync_id, "-o", "json").stdout)
    assert after["status"] in {"DELETE_PENDING", "DELETED"}

    bad = cairn(cairn_server, "sync", "create", "", check=False)
    assert bad.returncode == 1 and bad.stderr.decode().startswith("cairn: ")
    unknown = cairn(cairn_server, "sync", "status", "00000000-0000-4000-8000-000000000000", check=False)
    assert unknown.returncode == 1 and unknown.stdout == b""
