"""``cairn image ...``: the image service (``arcbox.v1.ImageService``) from the command line, like ``docker``.

``pull``, ``push``, ``ls``, ``inspect``, ``rm``, ``tag``, ``exists`` and
``build`` are each one conversation with a running server through
:class:`~cairn.cli.image_client.ImageClient`. They read like the docker CLI
(``docker pull``, ``docker images``, ``docker rmi``, ``docker build``) and
follow cairn's conventions: data on stdout in ``-o human|json|jsonl|raw``,
progress and messages on stderr, exit 0 done, 1 failed, 2 bad usage.

Which lines are a result: ``pull`` prints the server's final ``Digest:`` and
``Status:`` lines, ``push`` its ``<tag>: digest: ... size: N`` line, ``build``
the new image ID; progress before them goes to stderr (``--progress``).

Rendering lives in ``image_output.py`` (tables, units, JSON shapes) and
``image_progress.py`` (progress displays); the build context in
``image_context.py``; credentials in ``image_auth.py``. Client options
(``--server``, ``--timeout``, ``-o``) go on the group or on the command; the
command's win.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from cairn.cli.connection import current_security, security_options
from cairn.cli.content import DEFAULT_SERVER
from cairn.cli.image_auth import Credentials, credentials_from_file, encode_auth
from cairn.cli.image_client import ImageClient
from cairn.cli.image_context import build_metadata, parse_build_args, prepare_context
from cairn.cli.image_output import (
    PUSH_RESULT,
    build_image_id,
    encode_filters,
    image_rows,
    info_record,
    ls_columns,
    short_id,
    split_target,
    summary_record,
)
from cairn.cli.image_progress import PROGRESS_MODES, BuildDisplay, TransferDisplay
from cairn.cli.output import emit_list, emit_one, merged_options, output_format_option, stack_options
from cairn.core.errors import CairnError, DataLossError, InvalidArgumentError
from cairn.oci.model import Reference

__all__ = ["ImageOptions", "image_group"]

F = TypeVar("F", bound=Callable[..., Any])

#: Deadline of unary calls (ls, inspect, rm, tag, exists) when --timeout is not given.
UNARY_TIMEOUT: Final = 120.0


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """Where and how an image command talks to the server, and how it shows data."""

    server: str = DEFAULT_SERVER
    timeout: float | None = None
    output_format: str = "human"

    def client(self) -> ImageClient:
        """Unary calls get ``--timeout`` or :data:`UNARY_TIMEOUT`; streams ``--timeout`` or none."""
        unary = self.timeout if self.timeout is not None else UNARY_TIMEOUT
        return ImageClient(self.server, timeout=unary, stream_timeout=self.timeout, security=current_security())


_OPTION_NAMES = ("server", "timeout", "output_format")


def _client_options(*, on_group: bool, output: bool = True) -> Callable[[F], F]:
    """The shared options; on the group with defaults and env twins, on commands as overrides."""
    options = [
        click.option(
            "--server",
            envvar="CAIRN_SERVER" if on_group else None,
            default=DEFAULT_SERVER if on_group else None,
            show_default=on_group,
            show_envvar=on_group,
            metavar="SOCKET|HOST:PORT",
            help="gRPC address of the server: a unix socket path or HOST:PORT.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help=f"Deadline of each call [{UNARY_TIMEOUT:g}; pull, push and build: none].",
        ),
    ]
    if output:
        options.append(output_format_option(on_group))
    return stack_options(options)


_uses_client = merged_options(ImageOptions, _OPTION_NAMES)


@click.group("image")
@_client_options(on_group=True)
@security_options
@click.pass_context
def image_group(ctx: click.Context, /, **options: Any) -> None:
    """Images: pull, push, list, inspect, remove, tag and build, over the image service."""
    ctx.obj = ImageOptions(**options)


# -- shared options --------------------------------------------------------------------
_progress_option = click.option(
    "--progress",
    type=click.Choice(PROGRESS_MODES),
    default="auto",
    show_default=True,
    help="Progress on stderr: bars per layer (tty), a line per change (plain), JSON lines, or none.",
)
_quiet_progress = click.option("-q", "--quiet", is_flag=True, help="No progress output (--progress none).")


def _auth_options(command: F) -> F:
    return stack_options(
        [
            click.option("-u", "--username", help="User name at the registry."),
            click.option("-p", "--password", help="Password or token (prefer --password-stdin)."),
            click.option("--password-stdin", is_flag=True, help="Read the password from stdin."),
            click.option(
                "--auth-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                envvar="REGISTRY_AUTH_FILE",
                show_envvar=True,
                help="Take credentials from a docker config.json or containers auth.json.",
            ),
        ]
    )(command)


def _registry_auth(
    reference: str, username: str | None, password: str | None, password_stdin: bool, auth_file: Path | None
) -> str:
    """The ``auth`` field for a pull or push of ``reference``: "" (anonymous) or X-Registry-Auth."""
    if password_stdin and password is not None:
        raise click.UsageError("--password and --password-stdin are exclusive")
    if (password is not None or password_stdin) and not username:
        raise click.UsageError("a password needs --username")
    if not username and auth_file is None:
        return ""
    try:
        parsed = Reference.parse(reference)
    except InvalidArgumentError as exc:
        raise click.BadParameter(exc.message, param_hint="REFERENCE") from None
    if username:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        elif password is None:
            if not sys.stdin.isatty():
                raise click.UsageError("--username needs --password or --password-stdin")
            password = click.prompt("Password", hide_input=True, err=True)
        return encode_auth(
            Credentials(username=username, password=password or "", server_address=parsed.registry)
        )
    found = credentials_from_file(Path(str(auth_file)), parsed)
    if found is None:
        click.echo(f"cairn: no credentials for {parsed.registry} in {auth_file}; going anonymously", err=True)
        return ""
    return encode_auth(found)


# -- pull and push --------------------------------------------------------------------------
@image_group.command("pull")
@click.argument("reference")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Platform to pick from a multi-platform image.")
@_auth_options
@_progress_option
@_quiet_progress
@_client_options(on_group=False)
@_uses_client
def pull_command(
    opts: ImageOptions,
    reference: str,
    platform: str | None,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    auth_file: Path | None,
    progress: str,
    quiet: bool,
) -> None:
    """Pull an image from a registry into the server's image store.

    Prints the server's final lines (Digest:, Status:); -o raw prints the
    image ID, -o json {reference, digest, status, up_to_date, id}.
    """
    auth = _registry_auth(reference, username, password, password_stdin, auth_file)
    lines: list[str] = []
    image_id: str | None = None
    with opts.client() as client:
        with TransferDisplay("none" if quiet else progress) as display:
            for message in client.pull(reference, auth=auth, platform=platform or ""):
                final = not message.id and message.status.startswith(("Digest: ", "Status: "))
                if final:
                    lines.append(message.status)
                if not final or display.mode == "json":
                    display(message)
        if opts.output_format != "human":
            image_id = client.exists(reference)
    digest = next((line.removeprefix("Digest: ") for line in lines if line.startswith("Digest: ")), None)
    status = next((line.removeprefix("Status: ") for line in lines if line.startswith("Status: ")), None)
    result: dict[str, Any] = {
        "reference": reference,
        "digest": digest,
        "status": status,
        "up_to_date": bool(status and status.startswith("Image is up to date")),
        "id": image_id,
    }
    emit_one(
        result,
        opts.output_format,
        record=dict,
        human=lambda _: lines,
        raw=lambda r: [r["id"]] if r["id"] else [],
    )


@image_group.command("push")
@click.argument("reference")
@_auth_options
@_progress_option
@_quiet_progress
@_client_options(on_group=False)
@_uses_client
def push_command(
    opts: ImageOptions,
    reference: str,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    auth_file: Path | None,
    progress: str,
    quiet: bool,
) -> None:
    """Push a local image (REFERENCE names it and its destination) to its registry.

    Prints "<tag>: digest: sha256:... size: N"; -o raw the digest, -o json
    {reference, tag, digest, size}.
    """
    auth = _registry_auth(reference, username, password, password_stdin, auth_file)
    result: dict[str, Any] = {"reference": reference, "tag": None, "digest": None, "size": None}
    line = ""
    with opts.client() as client, TransferDisplay("none" if quiet else progress) as display:
        for message in client.push(reference, auth=auth):
            matched = None if message.id else PUSH_RESULT.fullmatch(message.status)
            if matched is not None:
                line = message.status
                result.update(tag=matched["tag"], digest=matched["digest"], size=int(matched["size"]))
            if matched is None or display.mode == "json":
                display(message)
    emit_one(
        result,
        opts.output_format,
        record=dict,
        human=lambda _: [line] if line else [],
        raw=lambda r: [r["digest"]] if r["digest"] else [],
    )


# -- ls, inspect ------------------------------------------------------------------------------
@image_group.command("ls")
@click.option("-a", "--all", "include_all", is_flag=True, help="Also intermediate images (build parents).")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="dangling=true|false, label=K[=V], reference=PATTERN, before=IMAGE, since=IMAGE (repeatable).",
)
@click.option("--digests", is_flag=True, help="Show a DIGEST column (a row per repository digest).")
@click.option("--no-trunc", is_flag=True, help="Full image IDs.")
@click.option("-q", "--quiet", is_flag=True, help="Only image IDs, one per image.")
@_client_options(on_group=False)
@_uses_client
def ls_command(
    opts: ImageOptions,
    include_all: bool,
    filters: tuple[str, ...],
    digests: bool,
    no_trunc: bool,
    quiet: bool,
) -> None:
    """List images, newest first, like `docker images`."""
    try:
        filters_json = encode_filters(filters)
    except InvalidArgumentError as exc:
        raise click.BadParameter(exc.message, param_hint="--filter") from None
    with opts.client() as client:
        images = client.list_images(include_all=include_all, filters=filters_json, digests=digests)
    if quiet:
        for image_id in dict.fromkeys(short_id(image.id, no_trunc) for image in images):
            click.echo(image_id)
    elif opts.output_format == "human":
        emit_list(
            image_rows(images, digests),
            "human",
            record=lambda r: summary_record(r.image),
            columns=ls_columns(digests, no_trunc),
            raw=lambda r: r.image.id,
        )
    else:
        emit_list(images, opts.output_format, record=summary_record, columns=None, raw=lambda i: i.id)


@image_group.command("inspect")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@_client_options(on_group=False)
@_uses_client
def inspect_command(opts: ImageOptions, names: tuple[str, ...]) -> None:
    """Show images as JSON (a list, like `docker inspect`); NAME is an ID, ID prefix or reference."""
    found: list[dict[str, Any]] = []
    failed = 0
    with opts.client() as client:
        for name in names:
            try:
                found.append(info_record(client.inspect(name)))
            except CairnError as exc:
                click.echo(f"cairn: {exc.message}", err=True)
                failed += 1
    fmt = "json" if opts.output_format == "human" else opts.output_format
    emit_list(found, fmt, record=lambda r: r, columns=None, raw=lambda r: str(r["id"]))
    if failed:
        sys.exit(1)


# -- rm, tag, exists ----------------------------------------------------------------------------
def _removal_lines(record: dict[str, Any]) -> list[str]:
    return [f"Untagged: {u}" for u in record["untagged"]] + [f"Deleted: {d}" for d in record["deleted"]]


@image_group.command("rm")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("-f", "--force", is_flag=True, help="Remove even when other references name the image.")
@click.option("--no-prune", is_flag=True, help="Keep untagged parent images (default: remove them).")
@_client_options(on_group=False)
@_uses_client
def rm_command(opts: ImageOptions, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Untag images and delete those nothing else names, like `docker rmi`."""
    removed: list[dict[str, Any]] = []
    failed = 0
    with opts.client() as client:
        for name in names:
            try:
                response = client.remove(name, force=force, prune_parents=not no_prune)
            except CairnError as exc:
                click.echo(f"cairn: {exc.message}", err=True)
                failed += 1
                continue
            record = {"name": name, "untagged": list(response.untagged), "deleted": list(response.deleted)}
            removed.append(record)
            if opts.output_format in ("human", "raw"):
                for line in _removal_lines(record):
                    click.echo(line if opts.output_format == "human" else line.split(": ", 1)[1])
    if opts.output_format not in ("human", "raw"):
        emit_list(removed, opts.output_format, record=lambda r: r, columns=None, raw=str)
    if failed:
        sys.exit(1)


@image_group.command("tag")
@click.argument("source")
@click.argument("target", metavar="TARGET[:TAG]")
@_client_options(on_group=False, output=False)
@_uses_client
def tag_command(opts: ImageOptions, source: str, target: str) -> None:
    """Name the image SOURCE (ID, prefix or reference) TARGET; an existing tag moves to it."""
    repo, tag = split_target(target)
    with opts.client() as client:
        client.tag(source, repo, tag)


@image_group.command("exists")
@click.argument("reference")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; only the exit code answers.")
@_client_options(on_group=False)
@_uses_client
def exists_command(opts: ImageOptions, reference: str, quiet: bool) -> None:
    """Exit 0 and print the image ID if REFERENCE names a local image; exit 1 if not."""
    with opts.client() as client:
        image_id = client.exists(reference)
    if not quiet:
        if opts.output_format in ("json", "jsonl"):
            record = {"reference": reference, "exists": image_id is not None, "id": image_id}
            emit_one(record, opts.output_format, record=dict, human=list, raw=list)
        elif image_id is not None:
            click.echo(image_id)
        elif opts.output_format == "human":
            click.echo(f"cairn: No such image: {reference}", err=True)
    if image_id is None:
        sys.exit(1)


# -- build ----------------------------------------------------------------------------------------
@image_group.command("build")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-f",
    "--file",
    "dockerfile",
    metavar="PATH|-",
    help="The Dockerfile, relative to the current directory; - reads stdin [PATH/Dockerfile].",
)
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Tag the result (repeatable).")
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="KEY[=VALUE]", help="Set an ARG (repeatable)."
)
@click.option("--target", metavar="STAGE", help="Build this stage, not the last one.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Platform of the result and of FROM images.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@_progress_option
@click.option("-q", "--quiet", is_flag=True, help="No build output; print only the image ID.")
@_client_options(on_group=False)
@_uses_client
def build_command(
    opts: ImageOptions,
    path: Path,
    dockerfile: str | None,
    tags: tuple[str, ...],
    build_args: tuple[str, ...],
    target: str | None,
    platform: str | None,
    no_cache: bool,
    progress: str,
    quiet: bool,
) -> None:
    """Build an image from the Dockerfile in PATH (the context, default .); prints the image ID.

    The build's output goes to stderr as it comes; stdout gets the image ID
    (-o json: {id, tags}).
    """
    for tag in tags:
        try:
            if Reference.parse(tag).digest is not None:
                raise InvalidArgumentError(f"reference {tag!r}: a tag cannot carry a digest")
        except InvalidArgumentError as exc:
            raise click.BadParameter(exc.message, param_hint="--tag") from None
    try:
        args = parse_build_args(build_args, os.environ)
        spec = prepare_context(path, dockerfile, read_stdin=sys.stdin.buffer.read)
        metadata = build_metadata(
            dockerfile=spec.dockerfile,
            tags=tags,
            build_args=args,
            target=target,
            platform=platform,
            no_cache=no_cache,
        )
    except InvalidArgumentError as exc:
        raise click.UsageError(exc.message) from None
    display = BuildDisplay("none" if quiet else progress)
    image_id = error = ""
    with opts.client() as client:
        try:
            for message in client.build(spec, metadata):
                display(message)
                error = message.error or error
                image_id = build_image_id(message.aux) or image_id
        except CairnError as exc:
            if error and error.strip() not in exc.message:
                click.echo(error.rstrip("\n"), err=True)
            raise
    if error:
        raise CairnError(error.rstrip("\n"))
    if not image_id:
        raise DataLossError("the server ended the build without an image ID")
    result: dict[str, Any] = {"id": image_id, "tags": list(tags)}
    emit_one(result, opts.output_format, record=dict, human=lambda r: [r["id"]], raw=lambda r: [r["id"]])
