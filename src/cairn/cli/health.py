"""``cairn health``: is a server up? One GET of ``<url>/healthz``, with the stdlib only.

It answers the operator's first question before any other command fails in a
more confusing way; it is not a monitoring probe with retries (the HTTP
``/healthz`` endpoint itself is what orchestrators should poll).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from cairn.cli.output import FORMATS
from cairn.core.errors import UnavailableError

__all__ = ["DEFAULT_URL", "check_health", "health_command"]

#: Where ``cairn serve`` listens for HTTP by default (ARCHITECTURE.md, "Defaults a user sees").
DEFAULT_URL = "http://127.0.0.1:8090"


def check_health(url: str, timeout: float | None = None) -> dict[str, Any]:
    """The JSON of ``<url>/healthz``; UnavailableError naming the URL when it is not ``ok``."""
    endpoint = url.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(endpoint, timeout=timeout or 10.0) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace").strip()
        raise UnavailableError(
            f"server at {url} is not healthy: HTTP {exc.code} {exc.reason}"
            + (f": {detail}" if detail else "")
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        reason = getattr(reason, "strerror", None) or reason
        raise UnavailableError(
            f"no server answers at {url} ({reason}); start `cairn serve` "
            "or point --url/CAIRN_URL at a running one"
        ) from None
    try:
        status = json.loads(body)
    except ValueError:
        raise UnavailableError(f"{endpoint} did not answer JSON: {body[:200]!r}") from None
    if not isinstance(status, dict) or status.get("status") != "ok":
        raise UnavailableError(f"server at {url} is not healthy: {status}")
    return status


@click.command("health")
@click.option(
    "--url",
    envvar="CAIRN_URL",
    default=DEFAULT_URL,
    show_default=True,
    show_envvar=True,
    help="HTTP address of the server.",
)
@click.option("--timeout", type=float, metavar="SECONDS", help="Give up after this long [10].")
@click.option(
    "-o",
    "--output-format",
    type=click.Choice(FORMATS),
    default="human",
    show_default=True,
    help="human: ok; json/jsonl: the server's answer; raw: the status word.",
)
def health_command(url: str, timeout: float | None, output_format: str) -> None:
    """Check that the server at --url answers /healthz with status ok (exit 1 if not)."""
    status = check_health(url, timeout)
    if output_format == "json":
        click.echo(json.dumps(status, indent=2))
    elif output_format == "jsonl":
        click.echo(json.dumps(status, separators=(",", ":")))
    elif output_format == "raw":
        click.echo(status["status"])
    else:
        version = status.get("version")
        click.echo(f"ok (cairn {version} at {url})" if version else "ok")
