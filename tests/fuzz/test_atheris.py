"""Runs each coverage-guided atheris harness in ``fuzz/`` for a bounded number of inputs.

Each harness starts from its seed inputs (written into a fresh corpus directory)
and runs as a subprocess with ``-runs`` and ``-max_total_time`` bounds; any crash
(an exception its parser's contract does not allow, or a failed assertion) exits
non-zero and fails the test with the harness's output and the crashing input.
CAIRN_SLOW=1 runs :data:`~tests.fuzz.budget.SLOW_FACTOR` times as many inputs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.budget import SLOW, SLOW_FACTOR, tried

pytest.importorskip("atheris", reason="atheris is not installed (pip install -e '.[test]')")

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
#: Harness name -> inputs per default-tier run (the tar harness extracts to disk, ~100 inputs/s).
HARNESSES = {"manifest": 20_000, "warg_envelope": 20_000, "tar_context": 300}
MAX_SECONDS = 600 if SLOW else 25


@pytest.mark.timeout(MAX_SECONDS + 120)
@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_finds_no_crash(name: str, tmp_path: Path) -> None:
    runs = HARNESSES[name] * (SLOW_FACTOR if SLOW else 1)
    corpus = tmp_path / "corpus"
    harness = str(FUZZ / f"{name}.py")
    subprocess.run([sys.executable, harness, "--seeds", str(corpus)], check=True, timeout=60)
    result = subprocess.run(
        [sys.executable, harness, f"-runs={runs}", f"-max_total_time={MAX_SECONDS}",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(corpus)],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=MAX_SECONDS + 90,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-")))
    assert result.returncode == 0 and not crashes, f"{name} crashed ({crashes}):\n{result.stderr[-6000:]}"
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done, result.stderr[-2000:]
    tried(f"atheris-{name}", int(done.group(1)))
