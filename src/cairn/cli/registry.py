"""``cairn repo|tag|manifest|blob ...``: read an OCI registry from the command line.

Each command is one short conversation through
:class:`~cairn.oci.client.RegistryClient` with cairn's own ``/v2/`` face (``--url``)
or, when a reference names a registry (``host:port/repo:tag``), with that one:
plain http for loopback hosts or ``--insecure``, https otherwise. What these add
over ``skopeo inspect --raw``/``list-tags``: every listing speaks ``-o
human|json|jsonl|raw``, ``manifest get`` prints the manifest's bytes exactly as
served (so they pipe into ``sha256sum`` and match the digest), and ``blob get``
verifies the digest and writes ``-O FILE`` only once verified.

Client options (``--url``, ``--username``, ``--password``, ``--insecure``,
``--timeout``, ``-o``) go on the group or on the command; the command's win.
Rendering is ``output.py``'s job.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import click

from cairn.cli.health import DEFAULT_URL
from cairn.cli.output import (
    TransferProgress,
    emit_list,
    emit_one,
    human_size,
    output_format_option,
    stack_options,
)
from cairn.core.errors import (
    CairnError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
)
from cairn.oci.client import FetchedManifest, RegistryClient, UnreachableError, base_url
from cairn.oci.model import Descriptor, Reference

__all__ = ["RegistryOptions", "blob_group", "manifest_group", "repo_group", "tag_group"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """Where and how a registry command talks: the default server and the credentials."""

    url: str = DEFAULT_URL
    username: str | None = None
    password: str | None = None
    insecure: bool = False
    timeout: float = 30.0
    output_format: str = "human"

    @property
    def server(self) -> str:
        """``host[:port]`` of ``--url``: what references without a registry are relative to."""
        netloc = urlsplit(self.url if "://" in self.url else f"//{self.url}").netloc
        if not netloc:
            raise click.BadParameter(f"{self.url!r} is not an http(s) URL", param_hint="--url")
        return netloc

    def client_address(self) -> str:
        """``scheme://host[:port]`` of ``--url``, as the client speaks to it."""
        try:
            return base_url(self.url, self.insecure)
        except InvalidArgumentError as exc:
            raise click.BadParameter(exc.message, param_hint="--url") from None

    def client(self, registry: str | None = None) -> RegistryClient:
        """A client of ``registry`` (``host[:port]``), or of ``--url`` when None or the same host."""
        target = self.client_address() if registry is None or registry == self.server else registry
        try:
            base_url(target, self.insecure)
        except InvalidArgumentError as exc:
            raise click.BadParameter(exc.message, param_hint="REGISTRY") from None
        return RegistryClient(
            target,
            insecure=self.insecure,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
        )


_OPTION_NAMES = ("url", "username", "password", "insecure", "timeout", "output_format")


def _registry_options(*, on_group: bool, output: bool = True) -> Callable[[F], F]:
    """The shared options; on the group with defaults and env twins, on commands as overrides."""

    def env(name: str) -> str | None:
        return name if on_group else None

    options = [
        click.option(
            "--url",
            envvar=env("CAIRN_URL"),
            default=DEFAULT_URL if on_group else None,
            show_default=on_group,
            show_envvar=on_group,
            help="HTTP address of the cairn server; references without a registry part go there.",
        ),
        click.option(
            "--username",
            envvar=env("CAIRN_USERNAME"),
            show_envvar=on_group,
            help="User name for registries that ask for credentials.",
        ),
        click.option(
            "--password",
            envvar=env("CAIRN_PASSWORD"),
            show_envvar=on_group,
            help="Password for --username (prefer the environment variable).",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            default=False,
            help="Plain http also for registries that are not on a loopback address.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            metavar="SECONDS",
            help="Give up when the registry is silent this long [30].",
        ),
    ]
    if output:
        options.append(output_format_option(on_group))
    return stack_options(options)


def _uses_registry(command: F) -> F:
    """Merge a command's options over its group's, pass them as ``opts``, and word failures for users."""

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        ctx = click.get_current_context()
        opts = ctx.find_object(RegistryOptions) or RegistryOptions()
        given = {name: kwargs.pop(name) for name in _OPTION_NAMES if name in kwargs}
        insecure = bool(given.pop("insecure", False)) or opts.insecure
        opts = replace(opts, insecure=insecure, **{k: v for k, v in given.items() if v is not None})
        try:
            return command(opts, **kwargs)
        except UnauthenticatedError as exc:
            raise UnauthenticatedError(
                f"{exc.message} (give --username/--password or CAIRN_USERNAME/CAIRN_PASSWORD)"
            ) from None
        except UnreachableError as exc:
            if exc.address != opts.client_address():
                raise
            raise UnreachableError(
                f"{exc.message}; start `cairn serve` or point --url/CAIRN_URL at a running registry",
                exc.address,
            ) from None

    return run  # type: ignore[return-value]


def _group_options(ctx: click.Context, options: dict[str, Any]) -> None:
    ctx.obj = RegistryOptions(**{k: v for k, v in options.items() if v is not None})


# -- references ------------------------------------------------------------------
def _has_registry(text: str) -> bool:
    """Whether a reference names its registry: a first component with ``.`` or ``:``, or localhost."""
    first, sep, _ = text.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _parse_reference(opts: RegistryOptions, text: str, param: str) -> tuple[str | None, Reference]:
    """The registry to ask (None: ``--url``) and the parsed reference; bad text is a usage error."""
    full = text if _has_registry(text) else f"{opts.server}/{text}"
    try:
        reference = Reference.parse(full)
    except InvalidArgumentError as exc:
        reason = exc.message.removeprefix(f"reference {full!r}: ")
        raise click.BadParameter(f"reference {text!r}: {reason}", param_hint=param) from None
    return (reference.registry if full == text else None), reference


def _repository(opts: RegistryOptions, text: str) -> tuple[str | None, str]:
    registry, reference = _parse_reference(opts, text, "REPOSITORY")
    if reference.tag is not None or reference.digest is not None:
        raise click.BadParameter(
            f"{text!r}: expected a repository, without :tag or @digest", param_hint="REPOSITORY"
        )
    return registry, reference.repository


# -- listings --------------------------------------------------------------------
_PAGE_SIZE = click.option(
    "--page-size",
    type=click.IntRange(min=1),
    metavar="N",
    help="Ask the registry for N entries per request [the registry's default].",
)


@click.group("repo")
@_registry_options(on_group=True)
@click.pass_context
def repo_group(ctx: click.Context, /, **options: Any) -> None:
    """Repositories of a registry (its catalog)."""
    _group_options(ctx, options)


@repo_group.command("ls")
@click.argument("registry", required=False, metavar="[REGISTRY]")
@_PAGE_SIZE
@_registry_options(on_group=False)
@_uses_registry
def repo_ls_command(opts: RegistryOptions, registry: str | None, page_size: int | None) -> None:
    """List repositories of --url's registry, or of REGISTRY (host[:port])."""
    with opts.client(registry) as client:
        emit_list(
            client.catalog(page_size),
            opts.output_format,
            record=lambda name: {"repository": name},
            columns=None,
            raw=str,
        )


@click.group("tag")
@_registry_options(on_group=True)
@click.pass_context
def tag_group(ctx: click.Context, /, **options: Any) -> None:
    """Tags of a repository."""
    _group_options(ctx, options)


@tag_group.command("ls")
@click.argument("repository", metavar="REPOSITORY")
@_PAGE_SIZE
@_registry_options(on_group=False)
@_uses_registry
def tag_ls_command(opts: RegistryOptions, repository: str, page_size: int | None) -> None:
    """List the tags of REPOSITORY: a name on --url, or host:port/name."""
    registry, name = _repository(opts, repository)
    with opts.client(registry) as client:
        emit_list(
            client.tags(name, page_size),
            opts.output_format,
            record=lambda tag: {"repository": name, "tag": tag},
            columns=None,
            raw=str,
        )


# -- manifests -------------------------------------------------------------------
@click.group("manifest")
@_registry_options(on_group=True)
@click.pass_context
def manifest_group(ctx: click.Context, /, **options: Any) -> None:
    """Manifests and indexes, by tag or digest."""
    _group_options(ctx, options)


def _descriptor_record(descriptor: Descriptor) -> dict[str, Any]:
    return {"mediaType": descriptor.media_type, "digest": str(descriptor.digest), "size": descriptor.size}


def _descriptor_lines(descriptor: Descriptor) -> Iterator[str]:
    yield f"digest:      {descriptor.digest}"
    yield f"media type:  {descriptor.media_type}"
    yield f"size:        {human_size(descriptor.size)} ({descriptor.size} bytes)"


def _manifest_record(fetched: FetchedManifest) -> dict[str, Any]:
    try:
        document: Any = json.loads(fetched.data)
    except ValueError:
        document = fetched.data.decode("utf-8", "replace")
    return {**_descriptor_record(fetched.descriptor()), "manifest": document}


@manifest_group.command("get")
@click.argument("reference", metavar="REF")
@click.option("--head", is_flag=True, help="Only the descriptor (media type, digest, size), from a HEAD.")
@_registry_options(on_group=False)
@_uses_registry
def manifest_get_command(opts: RegistryOptions, reference: str, head: bool) -> None:
    """Print the manifest REF: repo:tag, repo@digest or host:port/repo:tag.

    By default the bytes exactly as served (pipe them: sha256sum matches the
    digest); -o json gives {mediaType, digest, size, manifest}. A reference
    without tag or digest means :latest.
    """
    registry, ref = _parse_reference(opts, reference, "REF")
    target: Any = ref.digest if ref.digest is not None else ref.tag_or_latest()
    with opts.client(registry) as client:
        if head:
            descriptor = client.head_manifest(ref.repository, target)
            if descriptor is None:
                raise NotFoundError(f"manifest {reference}: not found at {client.registry}")
            emit_one(
                descriptor,
                opts.output_format,
                record=_descriptor_record,
                human=_descriptor_lines,
                raw=lambda d: [str(d.digest)],
            )
            return
        fetched = client.get_manifest(ref.repository, target)
    if opts.output_format in ("json", "jsonl"):
        emit_one(fetched, opts.output_format, record=_manifest_record, human=lambda _: [], raw=lambda _: [])
        return
    sys.stdout.buffer.write(fetched.data)
    sys.stdout.buffer.flush()


# -- blobs -----------------------------------------------------------------------
@click.group("blob")
@_registry_options(on_group=True, output=False)
@click.pass_context
def blob_group(ctx: click.Context, /, **options: Any) -> None:
    """Blobs (layers, configs) by digest."""
    _group_options(ctx, options)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def _sink(output: str) -> Iterator[BinaryIO]:
    """stdout, or a temporary file beside ``output`` renamed over it only if the block succeeds."""
    if output == "-":
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise CairnError(f"cannot write {output}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 is for the temporary only
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@blob_group.command("get")
@click.argument("reference", metavar="REPOSITORY@DIGEST")
@click.option(
    "-O",
    "--output",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the blob to FILE (only once verified) instead of stdout.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [auto].")
@_registry_options(on_group=False, output=False)
@_uses_registry
def blob_get_command(opts: RegistryOptions, reference: str, output: str, progress: bool | None) -> None:
    """Stream the blob REPOSITORY@DIGEST to stdout or -O FILE, verifying its digest."""
    registry, ref = _parse_reference(opts, reference, "REPOSITORY@DIGEST")
    if ref.digest is None or ref.tag is not None:
        raise click.BadParameter(f"{reference!r}: expected REPOSITORY@DIGEST", param_hint="REPOSITORY@DIGEST")
    digest = ref.digest
    with opts.client(registry) as client, client.open_blob(ref.repository, digest) as reader:
        try:
            with (
                _sink(output) as sink,
                TransferProgress(f"get {digest.short()}", reader.size or 0, progress) as bar,
            ):
                done = 0
                for chunk in reader:
                    sink.write(chunk)
                    done += len(chunk)
                    bar(done)
                if not reader.verified:
                    raise DataLossError(f"blob {digest}: the registry's answer could not be verified")
        except DataLossError as exc:
            where = (
                f"nothing was written to {output}"
                if output != "-"
                else "the bytes on stdout are not the blob"
            )
            raise DataLossError(f"{exc.message}; {where}") from None
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise CairnError(
                f"cannot write {'stdout' if output == '-' else output}: {exc.strerror or exc}"
            ) from None
