"""Reports how many inputs the fuzz properties tried, per parser family."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fuzz.budget import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.section("fuzz inputs tried")
    for family, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{family:24} {count:>8}")
    terminalreporter.write_line(f"{'total':24} {sum(TALLY.values()):>8}")
    report = os.environ.get("CAIRN_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(dict(sorted(TALLY.items())), indent=2) + "\n")
