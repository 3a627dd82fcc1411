"""Entry point of the ``cairn`` command; each command group lives in its own module.

Exit codes: 0 success, 1 the operation failed (the server said no, or a check
failed), 2 bad usage. Data goes to stdout; messages and progress to stderr.
"""

from __future__ import annotations

import logging
import sys

import click

from cairn import __version__
from cairn.cli.content import content_group
from cairn.cli.directory import record_group, sync_group
from cairn.cli.fsck import fsck_command
from cairn.cli.gc import gc_command
from cairn.cli.health import health_command
from cairn.cli.image import image_group
from cairn.cli.registry import blob_group, manifest_group, repo_group, tag_group
from cairn.cli.serve import serve_command
from cairn.cli.warg import warg_group
from cairn.core.errors import CairnError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cairn")
def cli() -> None:
    """cairn: one content-addressable store, many protocol faces."""


cli.add_command(serve_command)
cli.add_command(content_group)
cli.add_command(health_command)
cli.add_command(repo_group)
cli.add_command(tag_group)
cli.add_command(manifest_group)
cli.add_command(blob_group)
cli.add_command(record_group)
cli.add_command(sync_group)
cli.add_command(warg_group)
cli.add_command(image_group)
cli.add_command(fsck_command)
cli.add_command(gc_command)


def main() -> None:
    try:
        cli.main(prog_name="cairn", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CairnError as exc:
        click.echo(f"cairn: {exc.message}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
