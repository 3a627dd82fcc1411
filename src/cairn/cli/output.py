"""How client commands show data: ``-o human|json|jsonl|raw`` on stdout, progress on stderr.

One place decides the shapes, so every command renders the same thing the
same way: a blob is always ``{digest, size, created_at, updated_at, labels}``
and an ingest always ``{ref, offset, total, expected, started_at, updated_at}``;
sizes are integers, times RFC 3339 UTC strings. ``human`` is an aligned table
in the manner of ``ctr`` (human sizes and ages); ``json`` one document (an
array for lists); ``jsonl`` one object per line; ``raw`` the bare key values
(digests, refs) one per line, for shell pipelines.

This module is not for talking to servers or deciding what to show: commands
fetch, this renders.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Self, TypeVar

import click
from google.protobuf.timestamp_pb2 import Timestamp

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb

__all__ = [
    "BLOB_COLUMNS",
    "FORMATS",
    "INGEST_COLUMNS",
    "PROGRESS_THRESHOLD",
    "Column",
    "TransferProgress",
    "emit_list",
    "emit_one",
    "human_age",
    "human_size",
    "info_record",
    "labels_text",
    "merged_options",
    "output_format_option",
    "stack_options",
    "status_record",
    "timestamp_text",
]

FORMATS = ("human", "json", "jsonl", "raw")

_F = TypeVar("_F", bound=Callable[..., Any])
#: Transfers above this size get a progress bar when stderr is a terminal.
PROGRESS_THRESHOLD = 8 << 20

Record = dict[str, Any]
T = TypeVar("T")


# -- values --------------------------------------------------------------------
def timestamp_text(ts: Timestamp) -> str | None:
    """RFC 3339 UTC (``2026-01-02T03:04:05.123Z``), or None for an unset time."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return str(ts.ToJsonString())


def human_size(size: int) -> str:
    """``512 B``, ``4.0 KiB``, ``12.3 MiB``: binary units, one decimal."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(ts: Timestamp, now: float | None = None) -> str:
    """How long ago ``ts`` was, compactly: ``12s``, ``5m``, ``3h``, ``4d``; ``-`` when unset."""
    if timestamp_text(ts) is None or ts.seconds < 0:
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - ts.seconds - ts.nanos / 1e9)
    # from when the coarser unit still reads well: 90m rather than 1h, 36h rather than 1d
    for unit, width, from_ in (("d", 86400, 2 * 86400), ("h", 3600, 2 * 3600), ("m", 60, 60)):
        if seconds >= from_:
            return f"{int(seconds // width)}{unit}"
    return f"{int(seconds)}s"


def labels_text(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key, or ``-`` when there are none (as ``ctr``)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def info_record(info: pb.Info) -> Record:
    return {
        "digest": info.digest,
        "size": int(info.size),
        "created_at": timestamp_text(info.created_at),
        "updated_at": timestamp_text(info.updated_at),
        "labels": dict(sorted(info.labels.items())),
    }


def status_record(status: pb.Status) -> Record:
    return {
        "ref": status.ref,
        "offset": int(status.offset),
        "total": int(status.total),
        "expected": status.expected or None,
        "started_at": timestamp_text(status.started_at),
        "updated_at": timestamp_text(status.updated_at),
    }


# -- tables and documents ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Column(Generic[T]):
    title: str
    cell: Callable[[T], str]


BLOB_COLUMNS: Sequence[Column[pb.Info]] = (
    Column("DIGEST", lambda i: i.digest),
    Column("SIZE", lambda i: human_size(i.size)),
    Column("AGE", lambda i: human_age(i.created_at)),
    Column("LABELS", lambda i: labels_text(i.labels)),
)
INGEST_COLUMNS: Sequence[Column[pb.Status]] = (
    Column("REF", lambda s: s.ref),
    Column("SIZE", lambda s: human_size(s.offset)),
    Column("TOTAL", lambda s: human_size(s.total) if s.total else "-"),
    Column("AGE", lambda s: human_age(s.started_at)),
)


def _table(columns: Sequence[Column[T]], items: Iterable[T]) -> list[str]:
    rows = [[c.title for c in columns]] + [[c.cell(item) for c in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def emit_list(
    items: Iterable[T],
    fmt: str,
    *,
    record: Callable[[T], Record],
    columns: Sequence[Column[T]] | None,
    raw: Callable[[T], str],
) -> None:
    """Write a list of things to stdout; jsonl and raw stream, human and json collect first.

    With no ``columns`` the human form is the raw one (``rm`` prints bare digests, as ``ctr``).
    """
    if fmt == "human" and columns is not None:
        for line in _table(columns, items):
            click.echo(line)
    elif fmt == "json":
        click.echo(json.dumps([record(item) for item in items], indent=2))
    elif fmt == "jsonl":
        for item in items:
            click.echo(json.dumps(record(item), separators=(",", ":")))
    else:
        for item in items:
            click.echo(raw(item))


def emit_one(
    item: T,
    fmt: str,
    *,
    record: Callable[[T], Record],
    human: Callable[[T], Iterable[str]],
    raw: Callable[[T], Iterable[str]],
) -> None:
    """Write one thing to stdout: human lines, one JSON object, or its raw lines."""
    if fmt == "json":
        click.echo(json.dumps(record(item), indent=2))
    elif fmt == "jsonl":
        click.echo(json.dumps(record(item), separators=(",", ":")))
    else:
        for line in (human if fmt == "human" else raw)(item):
            click.echo(line)


# -- progress ------------------------------------------------------------------
class TransferProgress:
    """A rich progress bar on stderr, called with the bytes done so far.

    ``enabled`` True/False forces it on/off; None shows it only when stderr
    is a terminal and the transfer passes :data:`PROGRESS_THRESHOLD` (known
    from ``total``, or once that many bytes went by when the total is
    unknown).
    """

    def __init__(self, description: str, total: int, enabled: bool | None) -> None:
        self._description = description
        self._total = total
        self._enabled = enabled if enabled is not None else sys.stderr.isatty()
        self._forced = enabled is True
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int) -> None:
        if self._bar is None:
            if not self._enabled:
                return
            if not self._forced and max(done, self._total) <= PROGRESS_THRESHOLD:
                return
            self._start()
        self._bar.update(self._task, completed=done)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task(self._description, total=self._total or None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Self:
        self(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def output_format_option(on_group: bool) -> Callable[[_F], _F]:
    """``-o/--output-format``: defaults to ``human`` on a group, unset (inherit) on its commands."""
    return click.option(
        "-o",
        "--output-format",
        type=click.Choice(FORMATS),
        default="human" if on_group else None,
        show_default=on_group,
        help="How data is shown on stdout.",
    )


def stack_options(options: Sequence[Callable[[_F], _F]]) -> Callable[[_F], _F]:
    """One decorator applying ``options`` in order (the first is the first in ``--help``)."""

    def decorate(f: _F) -> _F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def merged_options(options_type: type[Any], names: Sequence[str]) -> Callable[[_F], _F]:
    """A command decorator: the group's ``options_type`` object with the command's own ``names`` over it.

    The group stores its options as ``ctx.obj``; a command repeats some of them
    (``cairn content ls --server X``). What the command was given wins; the
    merged object is passed as the command's first argument.
    """

    def decorate(command: _F) -> _F:
        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            ctx = click.get_current_context()
            opts = ctx.find_object(options_type) or options_type()
            given = {name: kwargs.pop(name) for name in names if name in kwargs}
            opts = replace(opts, **{k: v for k, v in given.items() if v is not None})
            return command(opts, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
