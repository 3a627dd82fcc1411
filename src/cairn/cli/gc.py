"""``cairn gc``: one garbage collection of a store, run against its catalog and content directly.

Safe while servers are serving (cli/store_access.py): every removal is a
re-checked catalog transaction. ``--dry-run`` reports what would go and changes
nothing. What is kept and why: docs/gc.md.
"""

from __future__ import annotations

import json
from typing import Any

import click

from cairn.cli.store_access import open_store, store_options
from cairn.core.errors import InvalidArgumentError
from cairn.core.gc import GarbageCollector, GcResult
from cairn.settings import Settings

__all__ = ["gc_command"]


def _human(result: GcResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    return "\n".join(
        [
            f"{verb} {result.names_removed} content names, {result.manifests_removed} manifests, "
            f"{result.tags_removed} tags, {result.repository_links_removed} repository blob links",
            f"{verb} {result.blobs_deleted} blobs ({result.bytes_freed} bytes)",
            f"{'would expire' if result.dry_run else 'expired'} {result.ingests_expired} ingests, "
            f"{result.leases_expired} leases; {result.uploads_aborted} stray uploads",
        ]
    )


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; change nothing.")
@click.option("--gc-grace-seconds", type=int, help="Keep anything newer than this [CAIRN_GC_GRACE_SECONDS; 3600]")
@click.option(
    "--ingest-expiry-seconds", type=int, help="Abort content ingests idle this long [CAIRN_INGEST_EXPIRY_SECONDS; 86400]"
)
@click.option(
    "-o", "--output-format", type=click.Choice(["human", "json"]), default="human", show_default=True,
    help="human: counts; json: the result object.",
)
@store_options
def gc_command(dry_run: bool, output_format: str, **flags: Any) -> None:
    """Remove blobs, manifests and names that nothing keeps (see docs/gc.md)."""
    from cairn.server import gc_policy  # the server's policy, built from the same settings

    settings = Settings.load(flags)
    try:
        with open_store(settings) as opened:
            result = GarbageCollector(opened.catalog, opened.store, gc_policy(settings)).run(dry_run=dry_run)
    except InvalidArgumentError as exc:  # no store there, a malformed URL: the command line's fault
        raise click.UsageError(exc.message) from None
    if output_format == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(_human(result))
