"""``cairn content ...`` and ``cairn health`` as a user runs them, against a real ``cairn serve``.

Every command is a ``python -m cairn`` subprocess that finds the server through
``CAIRN_SERVER``/``CAIRN_URL`` (the fixture's unix socket and HTTP URL), so
option parsing, exit codes, stdout/stderr and the gRPC client are all real.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from cairn.cli.client import ContentClient
from tests.conftest import CairnServer, cairn_command, free_port

ZERO_DIGEST = "sha256:" + "0" * 64


def cairn(
    server: CairnServer,
    *args: str,
    stdin: bytes | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [*cairn_command(), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        check=False,
        env={**server.env(), **(env or {})},
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}")
    return result


def ingest(server: CairnServer, ref: str, data: bytes, *args: str) -> str:
    return cairn(server, "content", "ingest", ref, *args, stdin=data).stdout.decode().strip()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_rfc3339_utc(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text.replace("Z", "+00:00")) is not None


def test_ingest_file_and_stdin_then_get(cairn_server: CairnServer, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)

    from_file = cairn(cairn_server, "content", "ingest", "from-file", str(path))
    assert from_file.stdout.decode() == sha256(data) + "\n"
    other = os.urandom(4096)
    assert ingest(cairn_server, "from-stdin", other) == sha256(other)

    assert cairn(cairn_server, "content", "get", sha256(data)).stdout == data
    out = tmp_path / "out"
    got = cairn(cairn_server, "content", "get", sha256(other), "-O", str(out))
    assert got.stdout == b""
    assert out.read_bytes() == other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob", "out"]  # no temporary left

    # the same data again is no error: the digest, and a note on stderr
    again = cairn(cairn_server, "content", "ingest", "again", str(path))
    assert again.stdout.decode().strip() == sha256(data)
    assert "already exists" in again.stderr.decode()
    assert cairn(cairn_server, "content", "active", "-o", "raw").stdout == b""


def test_ingest_expected_digest_and_size(cairn_server: CairnServer) -> None:
    data = os.urandom(100_000)
    digest = ingest(
        cairn_server,
        "checked",
        data,
        "--expected-digest",
        sha256(data),
        "--expected-size",
        str(len(data)),
    )
    assert digest == sha256(data)

    wrong = os.urandom(1000)
    bad = cairn(
        cairn_server,
        "content",
        "ingest",
        "bad-digest",
        "--expected-digest",
        ZERO_DIGEST,
        stdin=wrong,
        check=False,
    )
    assert bad.returncode == 1
    message = bad.stderr.decode()
    assert sha256(wrong) in message and ZERO_DIGEST in message
    assert bad.stdout == b""

    short = cairn(
        cairn_server,
        "content",
        "ingest",
        "bad-size",
        "--expected-size",
        "1001",
        stdin=wrong,
        check=False,
    )
    assert short.returncode == 1
    assert "1000" in short.stderr.decode() and "1001" in short.stderr.decode()

    active = json.loads(cairn(cairn_server, "content", "active", "-o", "json").stdout)
    assert {a["ref"]: a["offset"] for a in active} == {"bad-digest": 1000, "bad-size": 1000}

    # an expected digest that is already stored: nothing is read, the digest is printed
    present = cairn(
        cairn_server,
        "content",
        "ingest",
        "present",
        "--expected-digest",
        sha256(data),
        stdin=b"not read",
    )
    assert present.stdout.decode().strip() == sha256(data)


def test_ls_in_every_format(cairn_server: CairnServer) -> None:
    first, second = os.urandom(1234), os.urandom(10 * 1024)
    ingest(cairn_server, "one", first, "--label", "team=ml", "--label", "tier=gold")
    ingest(cairn_server, "two", second)
    digests = sorted([sha256(first), sha256(second)])

    table = cairn(cairn_server, "content", "ls").stdout.decode().splitlines()
    assert table[0].split() == ["DIGEST", "SIZE", "AGE", "LABELS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert sorted(rows) == digests
    assert rows[sha256(first)][1:3] == ["1.2", "KiB"]
    assert rows[sha256(first)][-1] == "team=ml,tier=gold"
    assert rows[sha256(second)][1:3] == ["10.0", "KiB"]
    assert rows[sha256(second)][-1] == "-"

    listed = json.loads(cairn(cairn_server, "content", "ls", "-o", "json").stdout)
    assert isinstance(listed, list)
    by_digest = {item["digest"]: item for item in listed}
    assert sorted(by_digest) == digests
    one = by_digest[sha256(first)]
    assert set(one) == {"digest", "size", "created_at", "updated_at", "labels"}
    assert one["size"] == 1234
    assert one["labels"] == {"team": "ml", "tier": "gold"}
    assert is_rfc3339_utc(one["created_at"]) and is_rfc3339_utc(one["updated_at"])

    lines = cairn(cairn_server, "content", "ls", "-o", "jsonl").stdout.decode().splitlines()
    assert sorted(lines, key=lambda line: json.loads(line)["digest"]) == [
        json.dumps(by_digest[d], separators=(",", ":")) for d in digests
    ]

    raw = cairn(cairn_server, "content", "ls", "-o", "raw").stdout.decode().split("\n")
    assert sorted(raw[:-1]) == digests and raw[-1] == ""

    # filters, and the group-level option form
    filtered = cairn(cairn_server, "content", "-o", "raw", "ls", "labels.team==ml")
    assert filtered.stdout.decode().split() == [sha256(first)]


def test_info_label_rm(cairn_server: CairnServer) -> None:
    data = os.urandom(2048)
    digest = ingest(cairn_server, "labelled", data, "--label", "a=1")

    human = cairn(cairn_server, "content", "info", digest).stdout.decode()
    assert f"digest:   {digest}" in human and "(2048 bytes)" in human and "a=1" in human
    info = json.loads(cairn(cairn_server, "content", "info", digest, "-o", "json").stdout)
    assert info["digest"] == digest and info["size"] == 2048 and info["labels"] == {"a": "1"}

    labelled = cairn(cairn_server, "content", "label", digest, "b=2", "c=x=y")
    assert labelled.stdout.decode() == "a=1,b=2,c=x=y\n"
    deleted = cairn(cairn_server, "content", "label", digest, "a=", "-o", "json")
    after = json.loads(deleted.stdout)
    assert after["labels"] == {"b": "2", "c": "x=y"}
    assert after["updated_at"] >= after["created_at"]
    bad_pair = cairn(cairn_server, "content", "label", digest, "novalue", check=False)
    assert bad_pair.returncode == 2

    removed = cairn(cairn_server, "content", "rm", digest)
    assert removed.stdout.decode() == digest + "\n"
    assert cairn(cairn_server, "content", "ls", "-o", "raw").stdout == b""
    again = cairn(cairn_server, "content", "rm", digest, check=False)
    assert again.returncode == 1
    assert f"{digest}: not found" in again.stderr.decode()


def test_unknown_and_malformed_digests(cairn_server: CairnServer) -> None:
    for command in ("info", "get", "rm"):
        missing = cairn(cairn_server, "content", command, ZERO_DIGEST, check=False)
        assert missing.returncode == 1, command
        assert missing.stderr.decode().startswith("cairn: ")
        assert ZERO_DIGEST in missing.stderr.decode() and "not found" in missing.stderr.decode()
        assert missing.stdout == b""

        malformed = cairn(cairn_server, "content", command, "sha256:abc", check=False)
        assert malformed.returncode == 1, command
        assert "sha256:abc" in malformed.stderr.decode()
        assert "invalid checksum digest" in malformed.stderr.decode()


def test_namespaces_are_separate(cairn_server: CairnServer) -> None:
    data = os.urandom(512)
    digest = ingest(cairn_server, "ns", data)
    assert cairn(cairn_server, "content", "-n", "other", "ls", "-o", "raw").stdout == b""
    hidden = cairn(cairn_server, "content", "info", digest, check=False, env={"CAIRN_NAMESPACE": "other"})
    assert hidden.returncode == 1 and "not found in namespace other" in hidden.stderr.decode()
    assert cairn(cairn_server, "content", "ls", "-o", "raw").stdout.decode().split() == [digest]


def test_active_and_abort(cairn_server: CairnServer) -> None:
    with ContentClient(str(cairn_server.socket)) as client:
        with pytest.raises(OSError):
            client.ingest("layer-1", _FailingSource(os.urandom(3000), fail_at=2000), chunk_size=1000)
        with pytest.raises(OSError):
            client.ingest("other", _FailingSource(os.urandom(100), fail_at=50), chunk_size=50)

    table = cairn(cairn_server, "content", "active").stdout.decode().splitlines()
    assert table[0].split() == ["REF", "SIZE", "TOTAL", "AGE"]
    assert sorted(line.split()[0] for line in table[1:]) == ["layer-1", "other"]
    lines = cairn(cairn_server, "content", "active", "ref~=^layer-", "-o", "jsonl").stdout
    (status,) = [json.loads(line) for line in lines.decode().splitlines()]
    assert set(status) == {"ref", "offset", "total", "expected", "started_at", "updated_at"}
    assert status["ref"] == "layer-1" and status["offset"] == 2000 and status["total"] == 0
    assert is_rfc3339_utc(status["started_at"])

    assert cairn(cairn_server, "content", "abort", "layer-1").stdout == b"layer-1\n"
    assert cairn(cairn_server, "content", "active", "-o", "raw").stdout == b"other\n"
    unknown = cairn(cairn_server, "content", "abort", "layer-1", check=False)
    assert unknown.returncode == 1 and "layer-1" in unknown.stderr.decode()


class _FailingSource:
    """Gives ``fail_at`` bytes of ``data``, then fails like a dropped connection."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self._data = io.BytesIO(data)
        self._fail_at = fail_at

    def read(self, size: int = -1, /) -> bytes:
        left = self._fail_at - self._data.tell()
        if left <= 0:
            raise OSError("simulated interruption")
        return self._data.read(left if size < 0 else min(size, left))


@pytest.mark.parametrize("through", ["pipe", "file"])
def test_resume_interrupted_ingest(cairn_server: CairnServer, tmp_path: Path, through: str) -> None:
    data = os.urandom(5 * 1024 * 1024 + 99)
    with ContentClient(str(cairn_server.socket)) as client:
        with pytest.raises(OSError, match="simulated"):
            client.ingest("resumable", _FailingSource(data, fail_at=3 << 20), chunk_size=1 << 20)
        # The failing source cancels the call; a chunk still in flight then may or may not have
        # reached the server (it was never acknowledged), so the kept offset is whole chunks up
        # to the three sent. The resume below starts from whatever was kept.
        kept = client.status("resumable").offset
        assert 0 < kept <= 3 << 20 and kept % (1 << 20) == 0

    if through == "pipe":
        resumed = cairn(cairn_server, "content", "ingest", "resumable", stdin=data)
    else:
        path = tmp_path / "blob"
        path.write_bytes(data)
        resumed = cairn(cairn_server, "content", "ingest", "resumable", str(path))
    assert resumed.stdout.decode().strip() == sha256(data)
    assert cairn(cairn_server, "content", "active", "-o", "raw").stdout == b""
    assert cairn(cairn_server, "content", "get", sha256(data)).stdout == data


def test_resume_with_different_data_is_refused(cairn_server: CairnServer) -> None:
    with ContentClient(str(cairn_server.socket)) as client:
        with pytest.raises(OSError):
            client.ingest("mixed", _FailingSource(os.urandom(4096), fail_at=2048))
    refused = cairn(cairn_server, "content", "ingest", "mixed", stdin=os.urandom(4096), check=False)
    assert refused.returncode == 1
    assert "differ" in refused.stderr.decode() and "abort mixed" in refused.stderr.decode()
    assert cairn(cairn_server, "content", "active", "-o", "raw").stdout == b"mixed\n"


def test_tcp_address_and_health(cairn_server: CairnServer) -> None:
    data = os.urandom(100)
    digest = (
        cairn(cairn_server, "content", "--server", cairn_server.grpc_addr, "ingest", "tcp", stdin=data)
        .stdout.decode()
        .strip()
    )
    assert digest == sha256(data)

    assert cairn(cairn_server, "health").stdout.decode().startswith("ok")
    status = json.loads(cairn(cairn_server, "health", "-o", "json").stdout)
    assert status["status"] == "ok"


def test_unreachable_server(cairn_server: CairnServer, tmp_path: Path) -> None:
    nowhere = str(tmp_path / "nothing.sock")
    for server in (nowhere, f"127.0.0.1:{free_port()}"):
        result = cairn(cairn_server, "content", "--server", server, "ls", check=False)
        assert result.returncode == 1
        message = result.stderr.decode()
        assert f"no server answers at {server}" in message
        assert "cairn serve" in message and "CAIRN_SERVER" in message

    down = cairn(cairn_server, "health", "--url", f"http://127.0.0.1:{free_port()}", check=False)
    assert down.returncode == 1
    assert "no server answers at" in down.stderr.decode()
