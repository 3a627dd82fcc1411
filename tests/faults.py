"""Helpers of the fault-injection tests: store checks after a crash, ``cairn fsck``, seeds, figures.

The kill tests (tests/integration/test_crash_safety.py, test_kills.py) and the
disk-full tests (test_disk_full.py) judge a store the same way after each
fault: ``cairn fsck -o json`` must call it clean, and on the embedded backend
each blob file must hash to its name and each catalog name must have its bytes
(:func:`verify_store`, a check that does not trust the code under test).
Their figures (kills survived, writes verified) go to the JSON file named by
``CAIRN_RELIABILITY_REPORT`` for docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cairn_command

CHUNK = 1 << 20
#: The local backend writes small blobs to ``blobs/<alg>/.tmp-<uuid>`` and renames them.
TEMPORARY_PREFIX = ".tmp-"
FSCK_TIMEOUT = 300.0

__all__ = ["CHUNK", "ReliabilityFigures", "fsck", "run_seed", "stray_temporaries", "verify_store"]


def verify_store(data_dir: Path) -> dict[str, int]:
    """Check every blob file against its digest and every catalog row against its file (embedded store)."""
    blobs = data_dir / "content" / "blobs"
    sizes: dict[str, int] = {}
    for algorithm_dir in blobs.iterdir() if blobs.exists() else []:
        for path in algorithm_dir.iterdir():
            if path.name.startswith(TEMPORARY_PREFIX):
                continue  # never readable as a blob; counted by stray_temporaries()
            hasher = hashlib.new(algorithm_dir.name)
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
            assert hasher.hexdigest() == path.name, f"blob file {path} does not match its digest"
            sizes[f"{algorithm_dir.name}:{path.name}"] = path.stat().st_size
    with sqlite3.connect(data_dir / "cairn.db") as db:
        for digest, size in db.execute("SELECT digest, size FROM content_blobs"):
            assert sizes.get(digest) == size, f"catalog names {digest} ({size} B) without its bytes"
    return sizes


def stray_temporaries(data_dir: Path) -> list[Path]:
    """Temporary files a killed server left among the blob files (a leak of space, not of data)."""
    blobs = data_dir / "content" / "blobs"
    return sorted(blobs.glob(f"*/{TEMPORARY_PREFIX}*")) if blobs.exists() else []


def _fsck_available() -> bool:
    """Whether this tree has ``cairn fsck`` yet (it comes with the integrity work of issue 8)."""
    result = subprocess.run(
        [*cairn_command(), "fsck", "--help"], capture_output=True, check=False, timeout=60, env=_clean_env()
    )
    return result.returncode == 0


_FSCK: list[bool] = []


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "AWS_"))}


def fsck(data_dir: Path, context: str = "") -> dict[str, Any] | None:
    """Run ``cairn fsck -o json --data-dir`` and assert the store is clean; the report, or None without fsck.

    Safe while the store's server runs (maintenance commands share the catalog's
    transactions). Failing with CI set when the command is missing, like
    ``require_binary``: CI must run the real check.
    """
    if not _FSCK:
        _FSCK.append(_fsck_available())
    if not _FSCK[0]:
        if os.environ.get("CI"):
            pytest.fail("`cairn fsck` does not exist; the fault tests must check the store with it")
        return None
    result = subprocess.run(
        [*cairn_command(), "fsck", "-o", "json", "--data-dir", str(data_dir)],
        capture_output=True,
        check=False,
        timeout=FSCK_TIMEOUT,
        env=_clean_env(),
    )
    where = f" ({context})" if context else ""
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"cairn fsck{where} exited {result.returncode} without a JSON report:\n"
                    f"{result.stdout.decode(errors='replace')}\n{result.stderr.decode(errors='replace')}")
    assert result.returncode == 0 and report.get("clean") is True, (
        f"cairn fsck{where} found problems (exit {result.returncode}): {json.dumps(report.get('problems'))}\n"
        f"{result.stderr.decode(errors='replace')}"
    )
    return report


def run_seed(name: str) -> int:
    """The seed of a randomised fault test: ``CAIRN_FAULT_SEED`` to replay one, else a fresh one."""
    text = os.environ.get("CAIRN_FAULT_SEED")
    seed = int(text) if text else random.SystemRandom().randrange(1 << 32)
    print(f"{name}: seed {seed} (replay with CAIRN_FAULT_SEED={seed})")
    return seed


class ReliabilityFigures:
    """Counts of one fault test (kills survived, writes verified by kind), merged into the report file.

    The file named by ``CAIRN_RELIABILITY_REPORT`` holds one JSON object with a
    section per test; each :meth:`save` replaces this test's section and keeps
    the others, so several test modules can add to one file.
    """

    def __init__(self, section: str, seed: int | None = None) -> None:
        self.section = section
        self.seed = seed
        self.counts: Counter[str] = Counter()
        self.details: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, **dict(sorted(self.counts.items())), **self.details}

    def save(self) -> None:
        """Print the figures and write them into ``CAIRN_RELIABILITY_REPORT`` when it is set."""
        print(f"{self.section}: {json.dumps(self.as_dict())}")
        target = os.environ.get("CAIRN_RELIABILITY_REPORT")
        if not target:
            return
        path = Path(target)
        existing: dict[str, Any] = {}
        if path.exists():
            try:
                existing = json.loads(path.read_text())
            except json.JSONDecodeError:
                existing = {}
        existing[self.section] = self.as_dict()
        path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
