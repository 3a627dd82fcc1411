"""``cairn fsck``: check a store's blobs and references, report, and repair on request.

Runs against the catalog and content backend directly (:mod:`cairn.cli.store_access`),
beside running servers. Exit codes: 0 the store is clean (nothing found, or all of
it repaired), 1 problems remain, 2 bad usage. ``-o json`` prints one object (the
contract in :mod:`cairn.integrity.report`); progress of a long blob check goes to
stderr.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from cairn.cli.output import human_size
from cairn.cli.store_access import open_store, store_options
from cairn.core.errors import CairnError, InvalidArgumentError
from cairn.integrity import FsckOptions, Report, parse_rate, run_fsck
from cairn.settings import Settings
from cairn.warg.crypto import PublicKey
from cairn.warg.registry import load_operator_key

__all__ = ["fsck_command"]

#: Seconds between progress lines on stderr (a terminal gets one line, rewritten every second).
PROGRESS_SECONDS = 10.0


class _Progress:
    """Blob-check progress on stderr once a run takes longer than a moment."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._every = 1.0 if self._tty else PROGRESS_SECONDS
        self._started = time.monotonic()
        self._last = self._started
        self._shown = False

    def __call__(self, blobs: int, size: int) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        line = f"fsck: {blobs} blobs ({human_size(size)}) checked in {now - self._started:.0f}s"
        if self._tty:
            click.echo(f"\r{line}", err=True, nl=False)
            self._shown = True
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self._shown:
            click.echo("", err=True)


def _operator_key(settings: Settings) -> PublicKey | None:
    """The Warg operator's public key, to verify checkpoint signatures; None if its file is not at hand."""
    try:
        return load_operator_key(settings.warg_key_path, create=False).public_key
    except (CairnError, OSError):
        return None


def _human(report: Report) -> list[str]:
    lines = [f"checked {report.blobs_checked} blobs ({human_size(report.bytes_checked)})"
             + (f", after {report.blobs_skipped} checked by the interrupted run" if report.resumed else "")]
    for problem in report.problems:
        mark = " (repaired)" if problem.repaired else ""
        lines.append(f"{problem.kind}  {problem.subject}  {problem.detail}{mark}")
    for digest, where in report.quarantined.items():
        lines.append(f"quarantined  {digest}  -> {where}")
    left = sum(1 for p in report.problems if not p.repaired)
    if report.clean:
        lines.append("clean" + (f" ({len(report.problems)} problems repaired)" if report.problems else ""))
    else:
        lines.append(f"{left} problem(s) left; `cairn fsck --repair --peer URL` may fix blobs")
    return lines


@click.command("fsck")
@click.option("--repair", is_flag=True, help="Quarantine corrupt blobs and re-fetch bad or missing ones from --peer.")
@click.option("--peer", metavar="URL", help="OCI registry to re-fetch blobs from with --repair [CAIRN_REPAIR_PEER]")
@click.option("--workers", type=click.IntRange(min=1), help="Threads hashing blobs [one per CPU]")
@click.option("--rate", metavar="BYTES/S", default="0", help="Read at most this much per second, e.g. 50M [0: no limit]")
@click.option(
    "--resume/--restart",
    default=True,
    help="Continue an interrupted blob check, or start over [--resume]",
)
@click.option(
    "-o", "--output-format", type=click.Choice(["human", "json"]), default="human", show_default=True,
    help="How the report is shown on stdout.",
)
@store_options
def fsck_command(
    repair: bool, peer: str | None, workers: int | None, rate: str, resume: bool, output_format: str,
    **store: Any,
) -> None:
    """Check every blob's bytes against its digest and every catalog reference; exit 1 if problems remain."""
    try:
        bytes_per_second = parse_rate(rate)
    except InvalidArgumentError as exc:
        raise click.BadParameter(exc.message, param_hint="--rate") from None
    settings = Settings.load(store)
    peer = peer or settings.repair_peer or None
    if peer and not repair:
        raise click.UsageError("--peer is used by --repair; add --repair")
    options = FsckOptions(
        workers=workers or 0, rate=bytes_per_second, resume=resume, repair=repair, peer=peer,
        operator_key=_operator_key(settings),
    )
    progress = _Progress()
    try:
        with open_store(settings) as opened:
            report = run_fsck(opened.store.backend, opened.catalog, options, progress)
    except InvalidArgumentError as exc:  # no store there, a malformed URL: the command line's fault
        raise click.UsageError(exc.message) from None
    finally:
        progress.close()
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for line in _human(report):
            click.echo(line)
    sys.exit(0 if report.clean else 1)
