"""Optional sampling of the cairn server during one benchmark phase at a time.

With ``--profile-dir DIR`` the benchmark attaches a sampler to the cairn
server for each cairn phase:

- ``--profiler py-spy`` (default): ``py-spy record --format raw --function``
  writes ``DIR/<phase>-run<N>.txt`` (collapsed Python stacks,
  ``frame;frame;... count``); ``profile_summary.py`` turns those into
  top-frame tables.
- ``--profiler perf``: ``perf record -g`` of every thread of the process,
  Python and grpc core and kernel alike, into ``DIR/<phase>-run<N>.perf.data``;
  read it with ``perf report -i FILE --no-children --sort dso,sym``.

Profiled timings are distorted: take figures from an unprofiled invocation.
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

__all__ = ["PROFILERS", "Profiler"]

PROFILERS = ("py-spy", "perf")
ATTACH_DELAY = 0.5


class Profiler:
    """Starts and stops one sampler per phase; does nothing without an output directory."""

    def __init__(self, out_dir: Path | None, kind: str = "py-spy", native: bool = False) -> None:
        self.out_dir = out_dir
        self.kind = kind
        self.native = native
        self._active: subprocess.Popen[bytes] | None = None
        self._binary = ""
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            here = str(Path(sys.executable).parent)
            found = shutil.which(kind, path=here) or shutil.which(kind)
            if found is None:
                hint = ".venv/bin/pip install py-spy" if kind == "py-spy" else "apt-get install linux-perf"
                raise SystemExit(f"--profile-dir needs {kind}: {hint}")
            self._binary = found

    def _command(self, pid: int, out_base: Path) -> list[str]:
        if self.kind == "perf":
            return [
                self._binary,
                "record",
                "-F",
                "999",
                "-g",
                "-p",
                str(pid),
                "-o",
                f"{out_base}.perf.data",
            ]
        command = [
            self._binary,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            f"{out_base}.txt",
            "--rate",
            "200",
            "--function",
        ]
        return command + (["--native"] if self.native else ["--nonblocking"])

    @contextmanager
    def phase(self, server: Server, name: str) -> Iterator[None]:
        if self.out_dir is None or server.name != "cairn":
            yield
            return
        command = self._command(server.pid, self.out_dir / name)
        with open(self.out_dir / f"{self.kind}.log", "ab") as log:
            self._active = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        time.sleep(ATTACH_DELAY)
        try:
            yield
        finally:
            self.stop()

    def stop(self) -> None:
        """SIGINT makes the sampler write its output; idempotent."""
        proc, self._active = self._active, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
