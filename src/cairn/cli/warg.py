"""``cairn warg ...``: the verifying Warg client from the command line.

Every command is a thin shell over :class:`~cairn.warg.client.WargClient`:
parse arguments, call one method, render the answer with ``output.py``'s
conventions (``-o human|json|jsonl|raw`` on stdout, messages on stderr, exit 1
with ``cairn: <message>`` when something fails or does not verify).

Where things are (options go on the group or on the command; the command's win):

- ``--registry URL`` / ``CAIRN_WARG_URL``: the registry, default ``cairn serve``'s
  HTTP address; plain http only to loopback hosts unless ``--insecure``;
- ``--state-dir DIR`` / ``CAIRN_WARG_STATE_DIR``: what this client verified, one
  sub-directory per registry (default ``$XDG_CACHE_HOME/cairn/warg``);
- ``--key-file FILE`` / ``CAIRN_WARG_KEY_FILE``: the signing key, mode 0600
  (default ``$XDG_CONFIG_HOME/cairn/warg/signing.key``).

Operator commands (defining namespaces) are server-side and live with ``cairn serve``.
"""

from __future__ import annotations

import datetime
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from cairn.cli.output import TransferProgress, emit_one, human_size, output_format_option, stack_options
from cairn.core.errors import CairnError, DataLossError, InvalidArgumentError
from cairn.warg.client import (
    DEFAULT_REGISTRY,
    ClientState,
    PackageTrack,
    PublishResult,
    UpdateReport,
    WargClient,
    create_key,
    default_key_file,
    default_state_root,
    load_key,
    registry_url,
)
from cairn.warg.ids import PackageName
from cairn.warg.records import PackagePermission, RecordTime
from cairn.warg.semver import Version
from cairn.warg.validation import Release

__all__ = ["WargOptions", "warg_group"]

F = TypeVar("F", bound=Callable[..., Any])
Record = dict[str, Any]


# -- options -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WargOptions:
    """Where a warg command finds the registry, its state and its key, and how it shows data."""

    registry: str = DEFAULT_REGISTRY
    state_dir: str | None = None
    key_file: str | None = None
    insecure: bool = False
    timeout: float = 30.0
    output_format: str = "human"

    def client(self, *, with_key: bool = False, publish_timeout: float = 60.0) -> WargClient:
        try:
            registry = registry_url(self.registry, self.insecure)
        except InvalidArgumentError as exc:
            raise click.BadParameter(exc.message, param_hint="--registry") from None
        return WargClient(
            registry,
            Path(self.state_dir) if self.state_dir else default_state_root(),
            load_key(self.key_path) if with_key else None,
            insecure=self.insecure,
            timeout=self.timeout,
            publish_timeout=publish_timeout,
        )

    @property
    def key_path(self) -> Path:
        return Path(self.key_file) if self.key_file else default_key_file()


_OPTION_NAMES = ("registry", "state_dir", "key_file", "insecure", "timeout", "output_format")


def _warg_options(*, on_group: bool) -> Callable[[F], F]:
    """The shared options; on the group with defaults and env twins, on commands as overrides."""

    def env(name: str) -> str | None:
        return name if on_group else None

    return stack_options(
        [
            click.option(
                "--registry",
                envvar=env("CAIRN_WARG_URL"),
                default=DEFAULT_REGISTRY if on_group else None,
                show_default=on_group,
                show_envvar=on_group,
                metavar="URL",
                help="The Warg registry (API under URL/v1/).",
            ),
            click.option(
                "--state-dir",
                envvar=env("CAIRN_WARG_STATE_DIR"),
                show_envvar=on_group,
                type=click.Path(file_okay=False),
                help=f"What this client verified, per registry [{default_state_root()}].",
            ),
            click.option(
                "--key-file",
                envvar=env("CAIRN_WARG_KEY_FILE"),
                show_envvar=on_group,
                type=click.Path(dir_okay=False),
                help=f"The signing key (mode 0600) [{default_key_file()}].",
            ),
            click.option(
                "--insecure",
                is_flag=True,
                default=False,
                help="Allow plain http to registries that are not on a loopback address.",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0, min_open=True),
                metavar="SECONDS",
                help="Give up when the registry is silent this long [30].",
            ),
            output_format_option(on_group),
        ]
    )


def _uses_warg(command: F) -> F:
    """Merge a command's options over its group's and pass them as ``opts``."""

    @functools.wraps(command)
    def run(**kwargs: Any) -> Any:
        ctx = click.get_current_context()
        opts = ctx.find_object(WargOptions) or WargOptions()
        given = {name: kwargs.pop(name) for name in _OPTION_NAMES if name in kwargs}
        insecure = bool(given.pop("insecure", False)) or opts.insecure
        opts = replace(opts, insecure=insecure, **{k: v for k, v in given.items() if v is not None})
        return command(opts, **kwargs)

    return run  # type: ignore[return-value]


def _group_options(ctx: click.Context, options: dict[str, Any]) -> None:
    """The group's options, unless a parent warg group set them already (``warg key ...``)."""
    parent = ctx.find_object(WargOptions)
    if parent is None:
        ctx.obj = WargOptions(**{k: v for k, v in options.items() if v is not None})
        return
    insecure = bool(options.pop("insecure", False)) or parent.insecure
    ctx.obj = replace(parent, insecure=insecure, **{k: v for k, v in options.items() if v is not None})


# -- argument parsing ----------------------------------------------------------------
def _package_argument(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback: package names are checked up front, so a typo is a usage error (exit 2)."""
    try:
        if isinstance(value, tuple):
            return tuple(str(PackageName.parse(v)) for v in value)
        return None if value is None else str(PackageName.parse(value))
    except CairnError as exc:
        raise click.BadParameter(exc.message) from None


def _version_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return str(Version.parse(value))
    except CairnError as exc:
        raise click.BadParameter(exc.message) from None


def _name_at_version(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, str]:
    name, sep, version = value.rpartition("@")
    if not sep:
        raise click.BadParameter(f"{value!r}: expected NAME@VERSION, e.g. example:hello@1.0.0")
    try:
        return str(PackageName.parse(name)), str(Version.parse(version))
    except CairnError as exc:
        raise click.BadParameter(exc.message) from None


_PERMISSION = click.option(
    "--permission",
    "permissions",
    multiple=True,
    type=click.Choice([p.value for p in PackagePermission]),
    help="A permission (repeatable) [release].",
)
_PUBLISH_TIMEOUT = click.option(
    "--publish-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the registry to publish the record.",
)


# -- rendering ----------------------------------------------------------------------
def _time_text(when: RecordTime | None) -> str | None:
    """RFC 3339 UTC with the record's nanoseconds trimmed to what is there."""
    if when is None:
        return None
    base = datetime.datetime.fromtimestamp(when.seconds, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{when.nanos:09d}".rstrip("0")
    return f"{base}{'.' + fraction if fraction else ''}Z"


def _release_record(release: Release) -> Record:
    return {
        "version": str(release.version),
        "content": None if release.content is None else str(release.content),
        "recordId": str(release.record_id),
        "by": release.by,
        "time": _time_text(release.timestamp),
        "yanked": release.yanked,
        "yankedBy": release.yanked_by,
        "yankedAt": _time_text(release.yanked_at),
    }


def _package_record(track: PackageTrack) -> Record:
    state = track.state
    return {
        "name": str(track.name),
        "logId": str(track.log_id),
        "head": None
        if state.head is None
        else {
            "recordId": str(state.head.record_id),
            "registryIndex": track.head_index,
            "time": _time_text(state.head.timestamp),
        },
        "keys": {key_id: str(key) for key_id, key in sorted(state.keys.items())},
        "permissions": {
            key_id: sorted(str(p) for p in held) for key_id, held in sorted(state.permissions.items())
        },
        "releases": [
            _release_record(r) for r in sorted(state.releases.values(), key=lambda r: r.version.sort_key())
        ],
    }


def _state_record(state: ClientState, names: Sequence[str] | None = None) -> Record:
    checkpoint = state.checkpoint
    operator = state.operator
    return {
        "registry": state.registry,
        "checkpoint": None if checkpoint is None else checkpoint.to_json(),
        "operator": {
            "head": None
            if operator.state.head is None
            else {
                "recordId": str(operator.state.head.record_id),
                "registryIndex": operator.head_index,
                "time": _time_text(operator.state.head.timestamp),
            },
            "namespaces": {
                ns: ("defined" if value.imported_from is None else f"imported from {value.imported_from}")
                for ns, value in sorted(operator.state.namespaces.items())
            },
        },
        "packages": [
            _package_record(track)
            for name, track in sorted(state.packages.items())
            if names is None or name in names
        ],
    }


def _package_lines(package: Record) -> Iterator[str]:
    yield f"package {package['name']}"
    yield f"  log id:   {package['logId']}"
    head = package["head"]
    if head is not None:
        yield f"  head:     {head['recordId']} (registry index {head['registryIndex']}, {head['time']})"
    yield "  permissions:"
    for key_id, held in package["permissions"].items():
        yield f"    {key_id}  {','.join(held) or '-'}  {package['keys'].get(key_id, '')}".rstrip()
    if not package["releases"]:
        yield "  releases: none"
        return
    yield "  releases:"
    rows = [
        (
            r["version"],
            "yanked" if r["yanked"] else "released",
            r["content"] or "-",
            r["time"] or "-",
        )
        for r in package["releases"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        yield "    " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[3]


def _state_lines(record: Record) -> Iterator[str]:
    yield f"registry:   {record['registry']}"
    checkpoint = record["checkpoint"]
    if checkpoint is None:
        yield "checkpoint: none verified yet (`cairn warg update`)"
    else:
        contents = checkpoint["contents"]
        yield f"checkpoint: log length {contents['logLength']}, timestamp {contents['timestamp']}"
        yield f"  log root: {contents['logRoot']}"
        yield f"  map root: {contents['mapRoot']}"
        yield f"  signed by {checkpoint['keyId']}"
    operator = record["operator"]
    if operator["head"] is not None:
        head = operator["head"]
        yield f"operator:   head {head['recordId']} (registry index {head['registryIndex']})"
        yield f"  namespaces: {', '.join(operator['namespaces']) or '-'}"
    for package in record["packages"]:
        yield from _package_lines(package)


def _report_record(report: UpdateReport) -> Record:
    contents = report.checkpoint.contents
    return {
        "logLength": contents.log_length,
        "previousLogLength": report.previous_length,
        "logRoot": str(contents.log_root),
        "mapRoot": str(contents.map_root),
        "timestamp": contents.timestamp,
        "newRecords": dict(sorted(report.new_records.items())),
    }


def _report_lines(report: UpdateReport) -> Iterator[str]:
    record = _report_record(report)
    was = "" if record["previousLogLength"] is None else f" (was {record['previousLogLength']})"
    yield f"verified checkpoint: log length {record['logLength']}{was}"
    yield f"  log root: {record['logRoot']}"
    yield f"  map root: {record['mapRoot']}"
    news = [f"{log} +{n}" for log, n in record["newRecords"].items() if n]
    yield f"  new records: {', '.join(news) or 'none'}"


def _publish_record(result: PublishResult) -> Record:
    return {"package": result.name, "recordId": result.record_id, "registryIndex": result.registry_index}


def _emit_published(opts: WargOptions, result: PublishResult, what: str) -> None:
    emit_one(
        result,
        opts.output_format,
        record=_publish_record,
        human=lambda r: [
            f"published {what}: record {r.record_id} of {r.name} at registry index {r.registry_index}"
        ],
        raw=lambda r: [r.record_id],
    )


# -- cairn warg ----------------------------------------------------------------------
@click.group("warg")
@_warg_options(on_group=True)
@click.pass_context
def warg_group(ctx: click.Context, /, **options: Any) -> None:
    """Warg packages: publish, fetch and verify, download (a verifying client of any Warg registry)."""
    _group_options(ctx, options)


@warg_group.group("key")
@_warg_options(on_group=False)
@click.pass_context
def key_group(ctx: click.Context, /, **options: Any) -> None:
    """The signing key used to publish (a P-256 key in a 0600 file)."""
    _group_options(ctx, options)


def _key_record(item: tuple[Path, str, str]) -> Record:
    path, public, key_id = item
    return {"keyId": key_id, "publicKey": public, "file": str(path)}


def _emit_key(opts: WargOptions, path: Path, public: str, key_id: str) -> None:
    emit_one(
        (path, public, key_id),
        opts.output_format,
        record=_key_record,
        human=lambda i: [f"public key: {i[1]}", f"key id:     {i[2]}", f"file:       {i[0]}"],
        raw=lambda i: [i[1]],
    )


@key_group.command("new")
@click.option("--force", is_flag=True, help="Replace an existing key (its permissions are lost).")
@_warg_options(on_group=False)
@_uses_warg
def key_new_command(opts: WargOptions, force: bool) -> None:
    """Create a signing key in --key-file (mode 0600); prints its public key and key id."""
    key = create_key(opts.key_path, force=force)
    click.echo(f"cairn: new signing key in {opts.key_path} (mode 0600; keep it secret)", err=True)
    _emit_key(opts, opts.key_path, str(key.public_key), key.public_key.key_id)


@key_group.command("show")
@_warg_options(on_group=False)
@_uses_warg
def key_show_command(opts: WargOptions) -> None:
    """Print the public key and key id of the signing key (-o raw: the public key alone)."""
    key = load_key(opts.key_path)
    _emit_key(opts, opts.key_path, str(key.public_key), key.public_key.key_id)


@warg_group.group("publish")
@_warg_options(on_group=False)
@click.pass_context
def publish_group(ctx: click.Context, /, **options: Any) -> None:
    """Sign and publish package records; each waits until the registry published it."""
    _group_options(ctx, options)


@publish_group.command("init")
@click.argument("name", callback=_package_argument)
@_PUBLISH_TIMEOUT
@_warg_options(on_group=False)
@_uses_warg
def publish_init_command(opts: WargOptions, name: str, publish_timeout: float) -> None:
    """Start package NAME (namespace:name) with your key holding release and yank."""
    with opts.client(with_key=True, publish_timeout=publish_timeout) as client:
        result = client.publish_init(name)
    _emit_published(opts, result, f"init of {name}")


@publish_group.command("release")
@click.argument("name", callback=_package_argument)
@click.argument("version", callback=_version_argument)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_PUBLISH_TIMEOUT
@_warg_options(on_group=False)
@_uses_warg
def publish_release_command(
    opts: WargOptions, name: str, version: str, file: str, publish_timeout: float
) -> None:
    """Release VERSION of NAME with FILE as its content (uploaded when the registry lacks it)."""
    with opts.client(with_key=True, publish_timeout=publish_timeout) as client:
        result = client.publish_release(name, version, Path(file))
    _emit_published(opts, result, f"{name}@{version}")


@publish_group.command("yank")
@click.argument("name", callback=_package_argument)
@click.argument("version", callback=_version_argument)
@_PUBLISH_TIMEOUT
@_warg_options(on_group=False)
@_uses_warg
def publish_yank_command(opts: WargOptions, name: str, version: str, publish_timeout: float) -> None:
    """Yank VERSION of NAME (it stays in the log, marked yanked)."""
    with opts.client(with_key=True, publish_timeout=publish_timeout) as client:
        result = client.yank(name, version)
    _emit_published(opts, result, f"yank of {name}@{version}")


@publish_group.command("grant")
@click.argument("name", callback=_package_argument)
@click.argument("public_key", metavar="PUBLIC-KEY")
@_PERMISSION
@_PUBLISH_TIMEOUT
@_warg_options(on_group=False)
@_uses_warg
def publish_grant_command(
    opts: WargOptions, name: str, public_key: str, permissions: tuple[str, ...], publish_timeout: float
) -> None:
    """Grant PUBLIC-KEY (ecdsa-p256:...) permissions on NAME (default: release)."""
    with opts.client(with_key=True, publish_timeout=publish_timeout) as client:
        result = client.grant(name, public_key, permissions or ("release",))
    _emit_published(opts, result, f"grant on {name}")


@publish_group.command("revoke")
@click.argument("name", callback=_package_argument)
@click.argument("key_id", metavar="KEY-ID")
@_PERMISSION
@_PUBLISH_TIMEOUT
@_warg_options(on_group=False)
@_uses_warg
def publish_revoke_command(
    opts: WargOptions, name: str, key_id: str, permissions: tuple[str, ...], publish_timeout: float
) -> None:
    """Revoke permissions on NAME from KEY-ID (sha256:..., or the public key) (default: release)."""
    with opts.client(with_key=True, publish_timeout=publish_timeout) as client:
        result = client.revoke(name, key_id, permissions or ("release",))
    _emit_published(opts, result, f"revoke on {name}")


@warg_group.command("update")
@click.argument("names", nargs=-1, metavar="[NAME]...", callback=_package_argument)
@_warg_options(on_group=False)
@_uses_warg
def update_command(opts: WargOptions, names: tuple[str, ...]) -> None:
    """Fetch and verify the registry's latest checkpoint and every tracked package, plus NAMEs.

    Every record is validated and its signature checked, the checkpoint's
    signature and every log head's inclusion are proven, and the new checkpoint
    must extend the one verified before. Nothing is kept unless all of it verifies.
    """
    with opts.client() as client:
        report = client.update(names)
    for warning in report.warnings:
        click.echo(f"cairn: warning from the registry: {warning}", err=True)
    emit_one(
        report,
        opts.output_format,
        record=_report_record,
        human=_report_lines,
        raw=lambda r: [str(r.checkpoint.contents.log_length)],
    )


@warg_group.command("info")
@click.argument("name", required=False, callback=_package_argument)
@click.option("--update", "fetch", is_flag=True, help="Update first (NAME too), as `cairn warg update`.")
@_warg_options(on_group=False)
@_uses_warg
def info_command(opts: WargOptions, name: str | None, fetch: bool) -> None:
    """Show what this client verified: checkpoint, package heads, releases, who holds what.

    Without --update this reads the local state only. -o raw prints the tracked
    package names, or NAME's versions.
    """
    with opts.client() as client:
        if fetch:
            client.update([name] if name else [])
        state = client.info()
        if name is not None:
            client.package(name)  # NotFoundError with a hint when it is not tracked
    record = _state_record(state, [name] if name else None)
    if name is not None:
        package = record["packages"][0]
        emit_one(
            package,
            opts.output_format,
            record=lambda p: p,
            human=_package_lines,
            raw=lambda p: [r["version"] for r in p["releases"]],
        )
        return
    emit_one(
        record,
        opts.output_format,
        record=lambda r: r,
        human=_state_lines,
        raw=lambda r: [p["name"] for p in r["packages"]],
    )


@warg_group.command("download")
@click.argument("spec", metavar="NAME@VERSION", callback=_name_at_version)
@click.option(
    "-O",
    "--output",
    default="-",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write to FILE (it appears only once verified) instead of stdout.",
)
@click.option("--allow-yanked", is_flag=True, help="Download a yanked version too.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [auto].")
@_warg_options(on_group=False)
@_uses_warg
def download_command(
    opts: WargOptions, spec: tuple[str, str], output: str, allow_yanked: bool, progress: bool | None
) -> None:
    """Download VERSION of NAME, checking it hashes to the digest in the verified package log.

    To stdout (only once verified: it is spooled first) or -O FILE; with -O, the
    download is described on stdout per -o.
    """
    name, version = spec
    with opts.client() as client, TransferProgress(f"{name}@{version}", 0, progress) as bar:
        try:
            if output == "-":
                result = client.download(
                    name, version, sys.stdout.buffer, allow_yanked=allow_yanked, progress=bar
                )
                sys.stdout.buffer.flush()
            else:
                result = client.download(name, version, Path(output), allow_yanked=allow_yanked, progress=bar)
        except DataLossError as exc:
            where = "nothing was written" + ("" if output == "-" else f" to {output}")
            raise DataLossError(f"{exc.message}; {where}") from None
        except BrokenPipeError:
            raise
        except OSError as exc:
            where = "stdout" if output == "-" else output
            raise CairnError(f"cannot write {where}: {exc.strerror or exc}") from None
    summary = f"{result.name}@{result.version}: {result.digest} verified ({human_size(result.size)})"
    if output == "-":
        click.echo(f"cairn: {summary}", err=True)
        return
    emit_one(
        result,
        opts.output_format,
        record=lambda r: {
            "package": r.name,
            "version": r.version,
            "digest": r.digest,
            "size": r.size,
            "path": str(r.path),
        },
        human=lambda r: [f"{summary} -> {r.path}"],
        raw=lambda r: [str(r.path)],
    )
