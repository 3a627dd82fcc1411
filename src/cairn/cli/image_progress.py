"""How ``cairn image pull|push|build`` show progress on stderr.

``--progress`` picks the display, as ``docker build --progress`` does:

- ``tty``: one row per layer (``<id>: <status>``, a bar and ``1.2MB/3.4MB``
  while bytes move), redrawn in place with rich; other lines print above the rows;
- ``plain``: one line per status change of a layer (``a1b2c3d4e5f6: Pull
  complete``), no byte counts: readable in CI logs;
- ``json``: every message exactly as received, one JSON object per line,
  with the proto's field names;
- ``none``: nothing (``-q``);
- ``auto`` (the default): ``tty`` when stderr is a terminal, else ``plain``.

Build output is Docker's classic-builder text (``BuildProgress.stream``),
written as it comes in every mode but ``json`` and ``none``.

This module renders only: which lines are a command's result (and go to
stdout) is the command's decision.
"""

from __future__ import annotations

import json
import re
import sys
from typing import IO, Any, Final, Protocol, Self

from cairn.cli.image_output import docker_size

__all__ = [
    "PROGRESS_MODES",
    "BuildDisplay",
    "ProgressMessage",
    "TransferDisplay",
    "message_record",
]

PROGRESS_MODES: Final = ("auto", "tty", "plain", "json", "none")
_LAYER_ID: Final = re.compile(r"[0-9a-f]{12}")
_BAR_STATUSES: Final = frozenset({"Downloading", "Extracting", "Pushing"})


class ProgressMessage(Protocol):
    """What PullProgress and PushProgress have in common."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def progress(self) -> str: ...
    @property
    def current(self) -> int: ...
    @property
    def total(self) -> int: ...


def message_record(message: ProgressMessage) -> dict[str, Any]:
    """A progress message as ``--progress json`` writes it (every field, proto names)."""
    return {
        "id": message.id,
        "status": message.status,
        "progress": message.progress,
        "current": int(message.current),
        "total": int(message.total),
    }


def _is_layer(message: ProgressMessage) -> bool:
    return bool(_LAYER_ID.fullmatch(message.id)) and not message.status.startswith("Pulling from")


def _line(message: ProgressMessage) -> str:
    return f"{message.id}: {message.status}" if message.id else message.status


class TransferDisplay:
    """Shows pull or push progress; call it with each message, ``close()`` at the end (idempotent)."""

    def __init__(self, mode: str, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "tty" if self._stream.isatty() else "plain"
        self.mode = mode
        self._last: dict[str, str] = {}
        self._rows: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, message: ProgressMessage) -> None:
        if self.mode == "json":
            self._write(json.dumps(message_record(message), separators=(",", ":")) + "\n")
        elif self.mode == "plain":
            key = message.id or "\0"
            if self._last.get(key) != message.status:
                self._last[key] = message.status
                self._write(_line(message) + "\n")
        elif self.mode == "tty":
            self._tty(message)

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def _tty(self, message: ProgressMessage) -> None:
        if self._rows is None:
            self._rows = _rich_rows(self._stream)
            self._rows.start()
        if not _is_layer(message):
            self._rows.console.print(_line(message), highlight=False, markup=False)
            return
        show = bool(message.progress) or (message.total > 0 and message.status in _BAR_STATUSES)
        total = message.total if message.total > 0 else None
        task = self._tasks.get(message.id)
        if task is None:
            self._tasks[message.id] = self._rows.add_task(
                message.status, total=total, completed=message.current, layer=message.id, show=show
            )
        else:
            self._rows.update(
                task, description=message.status, total=total, completed=message.current, show=show
            )

    def close(self) -> None:
        if self._rows is not None:
            self._rows.stop()
            self._rows = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rich_rows(stream: IO[str]) -> Any:
    """A rich Progress with Docker-like rows (imported late: rich is slow to import)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, Task
    from rich.text import Text

    class Label(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.fields.get('layer', '')}: {task.description}")

    class Bar(BarColumn):
        def render(self, task: Task) -> Any:
            return super().render(task) if task.fields.get("show") else Text("")

    class Amount(ProgressColumn):
        def render(self, task: Task) -> Text:
            if not task.fields.get("show") or not task.total:
                return Text("")
            return Text(f"{docker_size(int(task.completed), 4)}/{docker_size(int(task.total), 4)}")

    return Progress(Label(), Bar(bar_width=40), Amount(), console=Console(file=stream), auto_refresh=True)


class BuildDisplay:
    """Shows a build's messages: the classic-builder text, status lines on change, or JSON lines."""

    def __init__(self, mode: str, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.mode = mode
        self._status = ""

    def __call__(self, message: Any) -> None:
        if self.mode == "none":
            return
        if self.mode == "json":
            record = {k: getattr(message, k) for k in ("stream", "status", "progress", "error", "aux")}
            self._write(json.dumps(record, separators=(",", ":")) + "\n")
            return
        if message.stream:
            self._write(message.stream)
        if message.status and message.status != self._status:
            self._write(message.status + "\n")
        self._status = message.status or self._status

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
