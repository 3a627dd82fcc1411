"""``cairn content ...``: the containerd content API from the command line, like ``ctr content``.

Each command is one short conversation with a running server through
:class:`~cairn.cli.client.ContentClient`; rendering is ``output.py``'s job.
What this adds over ``ctr``: ``get`` verifies the digest of what it streams
and writes ``-O FILE`` only once verified; ``ingest`` hashes what it sends and
checks the committed digest, takes labels, and resumes an interrupted ingest
of the same ref; every listing speaks ``-o human|json|jsonl|raw``.

Client options (``--server``, ``--url``, ``-n``, ``-o``, ``--timeout``) go on
the group or on the command; the command's win.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.cli.client import ContentClient
from cairn.cli.connection import current_security, security_options
from cairn.cli.health import DEFAULT_URL
from cairn.cli.output import (
    BLOB_COLUMNS,
    INGEST_COLUMNS,
    TransferProgress,
    emit_list,
    emit_one,
    human_age,
    human_size,
    info_record,
    labels_text,
    merged_options,
    output_format_option,
    stack_options,
    status_record,
    timestamp_text,
)
from cairn.core.digest import Digest, Hasher, new_hasher
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    DataLossError,
    FailedPreconditionError,
)

__all__ = ["DEFAULT_SERVER", "ClientOptions", "content_group"]

#: Where ``cairn serve`` listens for gRPC by default (ARCHITECTURE.md, "Defaults a user sees").
DEFAULT_SERVER = "127.0.0.1:8888"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Where and how a client command talks to the server."""

    server: str = DEFAULT_SERVER
    url: str = DEFAULT_URL
    namespace: str = "default"
    output_format: str = "human"
    timeout: float | None = None

    def client(self) -> ContentClient:
        return ContentClient(self.server, self.namespace, self.timeout, security=current_security())


_OPTION_NAMES = ("server", "url", "namespace", "output_format", "timeout")


def _client_options(*, on_group: bool, output: bool = True) -> Callable[[F], F]:
    """The shared options; on the group with defaults and env twins, on commands as overrides."""

    def env(name: str) -> str | None:
        return name if on_group else None

    options = [
        click.option(
            "--server",
            envvar=env("CAIRN_SERVER"),
            default=DEFAULT_SERVER if on_group else None,
            show_default=on_group,
            show_envvar=on_group,
            metavar="SOCKET|HOST:PORT",
            help="gRPC address of the server: a unix socket path or HOST:PORT.",
        ),
        click.option(
            "--url",
            envvar=env("CAIRN_URL"),
            default=DEFAULT_URL if on_group else None,
            show_default=on_group,
            show_envvar=on_group,
            help="HTTP address of the server (not used by content commands).",
        ),
        click.option(
            "-n",
            "--namespace",
            envvar=env("CAIRN_NAMESPACE"),
            default="default" if on_group else None,
            show_default=on_group,
            show_envvar=on_group,
            help="containerd namespace.",
        ),
        click.option("--timeout", type=float, metavar="SECONDS", help="Deadline of each call [none]."),
    ]
    if output:
        options.append(output_format_option(on_group))
    return stack_options(options)


_uses_client = merged_options(ClientOptions, _OPTION_NAMES)


@click.group("content")
@_client_options(on_group=True)
@security_options
@click.pass_context
def content_group(ctx: click.Context, /, **options: Any) -> None:
    """Blobs and ingests of the content store, over containerd's content API."""
    ctx.obj = ClientOptions(**options)


# -- listing -------------------------------------------------------------------
def _digest_of(info: pb.Info) -> str:
    return str(info.digest)


@content_group.command("ls")
@click.argument("filters", nargs=-1, metavar="[FILTER]...")
@_client_options(on_group=False)
@_uses_client
def ls_command(opts: ClientOptions, filters: tuple[str, ...]) -> None:
    """List blobs; FILTERs (containerd syntax, ORed) select, e.g. 'labels.team==ml'."""
    with opts.client() as client:
        emit_list(
            client.list(filters),
            opts.output_format,
            record=info_record,
            columns=BLOB_COLUMNS,
            raw=_digest_of,
        )


def _info_lines(info: pb.Info) -> Iterator[str]:
    def when(ts: Any) -> str:
        text = timestamp_text(ts)
        return f"{text} ({human_age(ts)} ago)" if text else "-"

    yield f"digest:   {info.digest}"
    yield f"size:     {human_size(info.size)} ({info.size} bytes)"
    yield f"created:  {when(info.created_at)}"
    yield f"updated:  {when(info.updated_at)}"
    labels = sorted(info.labels.items())
    if not labels:
        yield "labels:   -"
    for i, (key, value) in enumerate(labels):
        yield f"{'labels:' if i == 0 else '':<10}{key}={value}"


@content_group.command("info")
@click.argument("digest")
@_client_options(on_group=False)
@_uses_client
def info_command(opts: ClientOptions, digest: str) -> None:
    """Show one blob: size, times, labels."""
    with opts.client() as client:
        info = client.info(digest)
    emit_one(
        info,
        opts.output_format,
        record=info_record,
        human=_info_lines,
        raw=lambda i: [i.digest],
    )


# -- reading -------------------------------------------------------------------
@contextmanager
def _sink(output: str) -> Iterator[BinaryIO]:
    """stdout, or a temporary file beside ``output`` renamed over it only if the block succeeds."""
    if output == "-":
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
        return
    target = Path(output)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _local_files(what: str) -> Iterator[None]:
    """Report a local file error as ``<what>: <reason>`` (exit 1); a closed pipe stays quiet."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CairnError(f"{what}: {exc.strerror or exc}") from None


@content_group.command("get")
@click.argument("digest")
@click.option(
    "-O",
    "--output",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the blob to FILE (only once verified) instead of stdout.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [auto].")
@_client_options(on_group=False, output=False)
@_uses_client
def get_command(opts: ClientOptions, digest: str, output: str, progress: bool | None) -> None:
    """Stream a blob to stdout or -O FILE, verifying its digest on the way."""
    wanted = Digest.parse(digest)
    hasher: Hasher = new_hasher(wanted.algorithm)
    where = "stdout" if output == "-" else output
    with opts.client() as client, _local_files(f"cannot write {where}"):
        size = client.info(digest).size
        with _sink(output) as sink, TransferProgress(f"get {wanted.short()}", size, progress) as bar:
            done = 0
            for chunk in client.read(digest):
                hasher.update(chunk)
                sink.write(chunk)
                done += len(chunk)
                bar(done)
            received = Digest.from_hasher(hasher)
            if received != wanted or done != size:
                where = (
                    "nothing was written to " + output
                    if output != "-"
                    else "the bytes already on stdout are not the blob"
                )
                raise DataLossError(
                    f"blob {wanted}: received {done} of {size} bytes hashing to {received}, "
                    f"not {wanted}; {where}"
                )


# -- writing -------------------------------------------------------------------
class _HashingReader:
    """Reads a source and hashes every byte, so the client knows what it really sent.

    Deliberately not seekable: on resume the client reads past what the
    server already holds instead of seeking, so the hash covers the whole
    source (and the client checks those bytes against the server's).
    """

    def __init__(self, source: BinaryIO, algorithm: str) -> None:
        self._source = source
        self._hasher = new_hasher(algorithm)
        self.bytes_read = 0
        self.at_end = False

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        if data:
            self._hasher.update(data)
            self.bytes_read += len(data)
        elif size != 0:
            self.at_end = True
        return data

    def digest(self) -> str:
        return str(Digest.from_hasher(self._hasher))


def _parse_labels(pairs: Iterable[str], what: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        labels[key] = value
    return labels


@contextmanager
def _open_source(path: str) -> Iterator[tuple[BinaryIO, int]]:
    """The source file (or stdin for ``-``) and its remaining size when knowable, else 0."""
    if path == "-":
        stream = sys.stdin.buffer
        yield stream, _remaining(stream)
        return
    with open(path, "rb") as f:
        yield f, _remaining(f)


def _remaining(stream: BinaryIO) -> int:
    try:
        st = os.fstat(stream.fileno())
        if stat.S_ISREG(st.st_mode):
            return max(0, st.st_size - stream.tell())
    except (OSError, ValueError):
        pass
    return 0


@content_group.command("ingest")
@click.argument("ref")
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--expected-digest", metavar="DIGEST", help="Commit only if the data has this digest.")
@click.option("--expected-size", type=click.IntRange(min=0), help="Commit only if the data has this size.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Label the blob (repeatable).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [auto].")
@_client_options(on_group=False)
@_uses_client
def ingest_command(
    opts: ClientOptions,
    ref: str,
    file: str,
    expected_digest: str | None,
    expected_size: int | None,
    labels: tuple[str, ...],
    progress: bool | None,
) -> None:
    """Store FILE (or stdin) as a blob under ingest REF; prints the digest.

    An interrupted ingest of the same REF resumes where the server stopped.
    """
    blob_labels = _parse_labels(labels, "--label")
    algorithm = Digest.parse(expected_digest).algorithm if expected_digest else "sha256"
    where = "stdin" if file == "-" else file
    with opts.client() as client, _local_files(f"cannot read {where}"), _open_source(file) as (source, size):
        reader = _HashingReader(source, algorithm)
        try:
            with TransferProgress(f"ingest {ref}", expected_size or size, progress) as bar:
                response = client.ingest(
                    ref,
                    reader,
                    total=expected_size or 0,
                    expected=expected_digest or "",
                    labels=blob_labels,
                    progress=bar,
                )
            digest, committed_size = response.digest, response.offset
            if digest != reader.digest():
                raise DataLossError(
                    f"ingest {ref!r}: the server committed {digest} but the bytes sent hash to "
                    f"{reader.digest()}"
                )
        except AlreadyExistsError as exc:
            # the data is there already: succeed like ctr, and still apply the labels
            if reader.at_end:
                digest = reader.digest()
            elif expected_digest:
                digest = expected_digest
            else:
                raise
            click.echo(f"cairn: {exc.message}; nothing new stored", err=True)
            committed_size = client.update_labels(digest, blob_labels).size
        except FailedPreconditionError as exc:
            raise FailedPreconditionError(
                f"{exc.message} (the ingest is kept: resume it with the right data, or drop it "
                f"with `cairn content abort {ref}`)"
            ) from None
        except KeyboardInterrupt:
            click.echo(
                f"interrupted: the server keeps what it received of {ref!r}; run the same "
                f"command again to resume (or `cairn content abort {ref}`)",
                err=True,
            )
            raise
    result: dict[str, Any] = {"ref": ref, "digest": digest, "size": int(committed_size)}
    emit_one(
        result,
        opts.output_format,
        record=lambda r: r,
        human=lambda r: [r["digest"]],
        raw=lambda r: [r["digest"]],
    )


# -- managing ------------------------------------------------------------------
@content_group.command("rm")
@click.argument("digests", nargs=-1, required=True, metavar="DIGEST...")
@_client_options(on_group=False)
@_uses_client
def rm_command(opts: ClientOptions, digests: tuple[str, ...]) -> None:
    """Remove blobs from the namespace; prints each removed digest."""
    removed: list[str] = []
    failed = 0
    with opts.client() as client:
        for digest in digests:
            try:
                client.delete(digest)
            except CairnError as exc:
                click.echo(f"cairn: {exc.message}", err=True)
                failed += 1
            else:
                removed.append(digest)
    emit_list(
        removed,
        opts.output_format,
        record=lambda d: {"digest": d},
        columns=None,
        raw=str,
    )
    if failed:
        sys.exit(1)


@content_group.command("label")
@click.argument("digest")
@click.argument("changes", nargs=-1, metavar="[KEY=VALUE|KEY=]...")
@_client_options(on_group=False)
@_uses_client
def label_command(opts: ClientOptions, digest: str, changes: tuple[str, ...]) -> None:
    """Set (KEY=VALUE) or delete (KEY=) labels of a blob; prints the resulting labels."""
    parsed = _parse_labels(changes, "KEY=VALUE")
    to_set = {k: v for k, v in parsed.items() if v}
    to_delete = [k for k, v in parsed.items() if not v]
    with opts.client() as client:
        info = client.update_labels(digest, to_set, to_delete)
    emit_one(
        info,
        opts.output_format,
        record=info_record,
        human=lambda i: [labels_text(i.labels)],
        raw=lambda i: [f"{k}={v}" for k, v in sorted(i.labels.items())],
    )


@content_group.command("active")
@click.argument("filters", nargs=-1, metavar="[FILTER]...")
@_client_options(on_group=False)
@_uses_client
def active_command(opts: ClientOptions, filters: Sequence[str]) -> None:
    """List active (uncommitted) ingests; FILTER like 'ref~=^layer-'."""
    with opts.client() as client:
        statuses = client.statuses(filters)
    emit_list(
        statuses,
        opts.output_format,
        record=status_record,
        columns=INGEST_COLUMNS,
        raw=lambda s: str(s.ref),
    )


@content_group.command("abort")
@click.argument("ref")
@_client_options(on_group=False, output=False)
@_uses_client
def abort_command(opts: ClientOptions, ref: str) -> None:
    """Drop an active ingest and what it received; prints the ref."""
    with opts.client() as client:
        client.abort(ref)
    click.echo(ref)
