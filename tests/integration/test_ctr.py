"""The real ``ctr`` (Debian's containerd package) against a real ``cairn serve``.

Every command goes through the unix socket in the data directory, as a user
would type it: ``ctr --address <socket> -n <ns> content ...``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CairnServer, require_binary


def ctr(server: CairnServer, *args: str, ns: str = "default", stdin: bytes | Path | None = None,
        check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run ctr; ``stdin`` bytes go through a pipe, a Path is opened as a (seekable) file."""
    command = [require_binary("ctr"), "--address", str(server.socket), "-n", ns, "--timeout", "30s", *args]
    if isinstance(stdin, Path):
        with stdin.open("rb") as f:
            result = subprocess.run(command, stdin=f, capture_output=True, timeout=timeout, check=False)
    else:
        result = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"ctr {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}"
        )
    return result


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def listed_digests(server: CairnServer, ns: str = "default") -> list[str]:
    return ctr(server, "content", "ls", "-q", ns=ns).stdout.decode().split()


def test_ingest_get_ls_rm(cairn_server: CairnServer) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    digest = sha256(data)
    ctr(cairn_server, "content", "ingest", "plain", stdin=data)
    assert listed_digests(cairn_server) == [digest]
    assert ctr(cairn_server, "content", "get", digest).stdout == data

    table = ctr(cairn_server, "content", "ls").stdout.decode().splitlines()
    assert table[0].split() == ["DIGEST", "SIZE", "AGE", "LABELS"]
    assert table[1].split()[0] == digest

    removed = ctr(cairn_server, "content", "rm", digest).stdout.decode().split()
    assert removed == [digest]
    assert listed_digests(cairn_server) == []
    missing = ctr(cairn_server, "content", "get", digest, check=False)
    assert missing.returncode != 0
    assert b"not found" in missing.stderr


def test_ingest_with_expected_digest_and_size(cairn_server: CairnServer) -> None:
    data = os.urandom(1_500_000)
    digest = sha256(data)
    ctr(cairn_server, "content", "ingest", "--expected-size", str(len(data)),
        "--expected-digest", digest, "checked", stdin=data)
    assert ctr(cairn_server, "content", "get", digest).stdout == data
    # Ingesting what is already there ends at once, successfully (ALREADY_EXISTS on open).
    again = ctr(cairn_server, "content", "ingest", "--expected-digest", digest, "again", stdin=data)
    assert again.returncode == 0


def test_ingest_with_wrong_expectations_fails_and_keeps_ingest(cairn_server: CairnServer) -> None:
    data = os.urandom(100_000)
    wrong = sha256(b"something else")
    bad = ctr(cairn_server, "content", "ingest", "--expected-digest", wrong, "wrongdigest",
              stdin=data, check=False)
    assert bad.returncode != 0
    assert b"unexpected commit digest" in bad.stderr
    assert "wrongdigest" in ctr(cairn_server, "content", "active").stdout.decode()

    short = ctr(cairn_server, "content", "ingest", "--expected-size", str(len(data) + 1),
                "wrongsize", stdin=data, check=False)
    assert short.returncode != 0
    assert listed_digests(cairn_server) == []


def test_label_set_and_delete(cairn_server: CairnServer) -> None:
    data = b"labelled blob"
    digest = sha256(data)
    ctr(cairn_server, "content", "ingest", "lab", stdin=data)
    out = ctr(cairn_server, "content", "label", digest, "a=1", "containerd.io/gc.root=now")
    assert sorted(out.stdout.decode().strip().split(",")) == ["a=1", "containerd.io/gc.root=now"]
    out = ctr(cairn_server, "content", "label", digest, "a=")
    assert out.stdout.decode().strip() == "containerd.io/gc.root=now"
    row = ctr(cairn_server, "content", "ls").stdout.decode().splitlines()[1]
    assert row.split()[-1] == "containerd.io/gc.root=now"
    filtered = ctr(cairn_server, "content", "ls", "-q", 'labels."containerd.io/gc.root"')
    assert filtered.stdout.decode().split() == [digest]
    assert ctr(cairn_server, "content", "ls", "-q", "labels.a").stdout.decode().split() == []


@pytest.mark.embedded_only
def test_namespaces_do_not_see_each_other(cairn_server: CairnServer) -> None:
    data = os.urandom(4096)
    digest = sha256(data)
    ctr(cairn_server, "content", "ingest", "mine", stdin=data, ns="team-a")
    assert listed_digests(cairn_server, "team-a") == [digest]
    assert listed_digests(cairn_server, "team-b") == []
    assert ctr(cairn_server, "content", "get", digest, ns="team-b", check=False).returncode != 0
    # The other namespace commits the same bytes: stored once on disk, named in both.
    ctr(cairn_server, "content", "ingest", "theirs", stdin=data, ns="team-b")
    assert listed_digests(cairn_server, "team-b") == [digest]
    ctr(cairn_server, "content", "rm", digest, ns="team-a")
    assert listed_digests(cairn_server, "team-a") == []
    assert ctr(cairn_server, "content", "get", digest, ns="team-b").stdout == data
    blob_files = list((cairn_server.data_dir / "content" / "blobs" / "sha256").iterdir())
    assert [p.name for p in blob_files] == [digest.split(":")[1]]


def _start_partial_ingest(server: CairnServer, ref: str, prefix: bytes) -> subprocess.Popen[bytes]:
    """A ctr ingest fed through a pipe that stays open after ``prefix``."""
    proc = subprocess.Popen(
        [require_binary("ctr"), "--address", str(server.socket), "content", "ingest", ref],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(prefix)
    proc.stdin.flush()
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a client mid-stream and close its pipes."""
    proc.kill()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except BrokenPipeError:
                pass
    proc.wait()


def _wait_for_offset(server: CairnServer, ref: str, offset: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        for line in ctr(server, "content", "active").stdout.decode().splitlines()[1:]:
            fields = line.split()
            if fields[0] == ref and _size_bytes(fields[1]) >= offset:
                return line
        time.sleep(0.1)
    raise AssertionError(f"ingest {ref} never reached {offset} bytes (last: {line!r})")


def _size_bytes(human: str) -> float:
    units = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if human.endswith(unit):
            return float(human[: -len(unit)]) * factor
    return float(human)


@pytest.mark.parametrize("restart", [False, True], ids=["same-server", "after-restart"])
def test_interrupted_ingest_is_active_and_resumes(
    cairn_server: CairnServer, restart: bool, tmp_path: Path
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    source = tmp_path / "blob"
    source.write_bytes(data)
    ref = "resumable"
    proc = _start_partial_ingest(cairn_server, ref, data[: 4 * 1024 * 1024])
    line = _wait_for_offset(cairn_server, ref, 4_000_000)
    assert line.split()[0] == ref
    _kill(proc)  # the client dies mid-stream

    if restart:
        cairn_server.restart()
    active = ctr(cairn_server, "content", "active").stdout.decode().splitlines()
    assert [row.split()[0] for row in active[1:]] == [ref]

    status = ctr(cairn_server, "content", "active").stdout.decode().splitlines()[1].split()
    assert _size_bytes(status[1]) >= 4_000_000

    # Resuming: ctr asks for the offset and seeks its input past what the server has.
    ctr(cairn_server, "content", "ingest", "--expected-digest", sha256(data), ref, stdin=source)
    assert ctr(cairn_server, "content", "get", sha256(data)).stdout == data
    assert ctr(cairn_server, "content", "active").stdout.decode().splitlines()[1:] == []


def test_second_writer_waits_for_the_first(cairn_server: CairnServer, tmp_path: Path) -> None:
    """ctr retries UNAVAILABLE until the ref is free; the second writer then resumes the first's data."""
    data = os.urandom(2 * 1024 * 1024)
    source = tmp_path / "blob"
    source.write_bytes(data)
    first = _start_partial_ingest(cairn_server, "shared-ref", data[: 1024 * 1024])
    _wait_for_offset(cairn_server, "shared-ref", 1_000_000)
    with source.open("rb") as f:
        second = subprocess.Popen(
            [require_binary("ctr"), "--address", str(cairn_server.socket), "content", "ingest",
             "--expected-digest", sha256(data), "shared-ref"],
            stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    time.sleep(1.0)
    assert second.poll() is None, "the second writer must wait while the ref is locked"
    _kill(first)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()
    assert ctr(cairn_server, "content", "get", sha256(data)).stdout == data


def test_active_filter_and_abort_by_rm_of_nothing(cairn_server: CairnServer) -> None:
    # ctr sends whole 1 MiB buffers, so feed it one.
    proc = _start_partial_ingest(cairn_server, "layer-1", b"x" * (1 << 20))
    _wait_for_offset(cairn_server, "layer-1", 1 << 20)
    _kill(proc)
    assert "layer-1" in ctr(cairn_server, "content", "active", "ref~=^layer-").stdout.decode()
    assert "layer-1" not in ctr(cairn_server, "content", "active", "ref==other").stdout.decode()
    # ctr rm of an unknown digest is silently fine (NOT_FOUND ignored by ctr).
    assert ctr(cairn_server, "content", "rm", sha256(b"nothing")).returncode == 0


def test_large_blob_roundtrip(cairn_server: CairnServer, tmp_path: Path) -> None:
    data = os.urandom(64 * 1024 * 1024 + 7)
    source = tmp_path / "big"
    source.write_bytes(data)
    with source.open("rb") as f:
        subprocess.run(
            [require_binary("ctr"), "--address", str(cairn_server.socket), "content", "ingest", "big"],
            stdin=f, check=True, capture_output=True, timeout=120,
        )
    out = tmp_path / "out"
    with out.open("wb") as f:
        subprocess.run(
            [require_binary("ctr"), "--address", str(cairn_server.socket), "content", "get", sha256(data)],
            stdout=f, check=True, timeout=120,
        )
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha256(data).split(":")[1]
