"""Optional py-spy sampling of the cairn server during one benchmark phase at a time.

With ``--profile-dir DIR`` the benchmark attaches ``py-spy record --format raw``
to the cairn server for each cairn phase and writes ``DIR/<phase>-run<N>.txt``
(collapsed stacks: ``frame;frame;... count``); ``profile_summary.py`` turns
those into top-frame tables. Profiled timings are distorted: use a separate
invocation for the figures.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _servers import Server

__all__ = ["Profiler"]

ATTACH_DELAY = 0.5


class Profiler:
    """Starts and stops one py-spy per phase; does nothing without an output directory."""

    def __init__(self, out_dir: Path | None, rate: int = 200, native: bool = False, idle: bool = False) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.native = native
        self.idle = idle
        self._active: subprocess.Popen[bytes] | None = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
            if self.py_spy is None:
                raise SystemExit("--profile-dir needs py-spy: .venv/bin/pip install py-spy")

    @contextmanager
    def phase(self, server: Server, name: str) -> Iterator[None]:
        if self.out_dir is None or server.name != "cairn":
            yield
            return
        assert self.py_spy is not None
        out = self.out_dir / f"{name}.txt"
        command = [
            self.py_spy, "record", "--pid", str(server.pid), "--format", "raw",
            "--output", str(out), "--rate", str(self.rate), "--function",
        ]
        command += ["--native"] if self.native else ["--nonblocking"]
        command += ["--idle"] if self.idle else []
        with open(self.out_dir / "py-spy.log", "ab") as log:
            self._active = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        time.sleep(ATTACH_DELAY)
        try:
            yield
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGINT makes py-spy write its output; idempotent."""
        proc, self._active = self._active, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
