"""``cairn record ...`` and ``cairn sync ...``: the Directory face from the command line, like ``dirctl``.

Each command is one short conversation with a running server's
``store.v1.StoreService`` or ``store.v1.SyncService`` through
:class:`DirectoryClient`; rendering is ``output.py``'s job. The conventions are
the spec's (specs/directory.md §11): ``-o human|json|jsonl|raw``, data on
stdout and messages on stderr, and ``--stdin`` on ``push``, ``delete`` and
``sync create`` so that commands chain (``push -o raw`` prints only CIDs,
``push -o json | delete --stdin`` undoes a push).

What this adds over ``dirctl``: ``push`` computes every record's CID locally
and checks the server stored that CID; ``pull`` and ``verify --from-server``
check that the record received hashes to the CID asked for before printing
anything; many records go over one stream, pipelined.

Signing and key generation are offline (``cairn.directory.signatures``); only
``verify --from-server`` and ``push --sign-key`` talk to a server.

Client options (``--server``, ``--timeout``, ``-o``) go on the group or on the
command; the command's win.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import json_format, struct_pb2

from cairn.api.grpc.directory_store import signature_message, signature_of
from cairn.api.grpc.directory_sync import SYNC_MODE_HEADER
from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.sign.v1 import signature_pb2 as sign_pb
from cairn.api.grpc.gen.store.v1 import store_service_pb2 as store_pb
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as store_grpc
from cairn.api.grpc.gen.store.v1 import sync_service_pb2 as sync_pb
from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as sync_grpc
from cairn.cli.client import ContentClient
from cairn.cli.connection import GrpcSecurity, current_security, security_options
from cairn.cli.content import DEFAULT_SERVER
from cairn.cli.output import (
    Column,
    emit_list,
    emit_one,
    labels_text,
    merged_options,
    output_format_option,
    stack_options,
)
from cairn.core.cid import normalise_cid
from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
)
from cairn.directory.canonical import parse_json
from cairn.directory.records import Record
from cairn.directory.signatures import Signature, generate_key, sign_cid, verify_signature

__all__ = [
    "DirectoryClient",
    "DirectoryOptions",
    "record_group",
    "sync_group",
]

F = TypeVar("F", bound=Callable[..., Any])


# -- the client ------------------------------------------------------------------
class DirectoryClient(ContentClient):
    """A connection to one server's ``store.v1.StoreService`` and ``store.v1.SyncService``.

    It is a :class:`~cairn.cli.client.ContentClient` so that both faces share
    one way to reach a server (socket paths, ``unix:``, HOST:PORT, message
    limits, ``timeout`` per call) and one wording of failures: every method
    raises only :class:`~cairn.core.errors.CairnError` subclasses, "no server
    answers at ..." when nothing listens.

    The record methods take many records and use one stream for all of them,
    pipelined: every request is sent at once, then one response per request is
    read (the N-th answers the N-th; an error ends the stream, so either every
    record succeeded or the call raises). Records and signatures are plain
    protobuf messages here; this class does not compute or check CIDs.
    """

    def __init__(self, server: str, timeout: float | None = None, *, security: GrpcSecurity | None = None) -> None:
        super().__init__(server, timeout=timeout, security=security)
        self._store: Any = store_grpc.StoreServiceStub(self._channel)
        self._sync: Any = sync_grpc.SyncServiceStub(self._channel)

    # -- StoreService --------------------------------------------------------
    def push_records(
        self,
        records: Sequence[struct_pb2.Struct],
        signatures: Sequence[sign_pb.Signature | None] | None = None,
    ) -> list[str]:
        """Store ``records`` and return their CIDs as the server gives them, in order.

        With ``signatures`` (one per record, None for none) this is
        PushWithOptions, otherwise Push. InvalidArgumentError for a record or
        signature the server refuses, ResourceExhaustedError past 4 MiB.
        """
        if signatures is None:
            requests: list[Any] = [record_pb2.Record(data=data) for data in records]
            return [ref.cid for ref in self._exchange("Push", requests)]
        if len(signatures) != len(records):
            raise ValueError("push_records: one signature (or None) per record")
        requests = []
        for data, signature in zip(records, signatures, strict=True):
            options = store_pb.PushOptions()
            if signature is not None:
                options.signature.CopyFrom(signature)
            requests.append(
                store_pb.PushWithOptionsRequest(record=record_pb2.Record(data=data), options=options)
            )
        return [response.record_ref.cid for response in self._exchange("PushWithOptions", requests)]

    def pull_records(
        self, cids: Sequence[str], *, include_signature: bool = False
    ) -> list[tuple[struct_pb2.Struct, sign_pb.Signature | None]]:
        """Each record's document and, with ``include_signature``, its newest signature (None if unsigned).

        Without ``include_signature`` this is Pull, otherwise PullWithOptions.
        NotFoundError for a CID the server does not hold.
        """
        if not include_signature:
            pulled = self._exchange("Pull", [record_pb2.RecordRef(cid=cid) for cid in cids])
            return [(record.data, None) for record in pulled]
        requests = [
            store_pb.PullWithOptionsRequest(
                record_ref=record_pb2.RecordRef(cid=cid),
                options=store_pb.PullOptions(include_signature=True),
            )
            for cid in cids
        ]
        return [
            (response.record.data, response.signature if response.HasField("signature") else None)
            for response in self._exchange("PullWithOptions", requests)
        ]

    def lookup_records(self, cids: Sequence[str]) -> list[record_pb2.RecordMeta]:
        """Each record's RecordMeta (annotations, schema version, created_at); NotFoundError if unknown."""
        return self._exchange("Lookup", [record_pb2.RecordRef(cid=cid) for cid in cids])

    def delete_records(self, cids: Sequence[str]) -> None:
        """Delete the records and their signatures, in one client stream.

        What happens to a CID the server does not hold is the server's choice:
        cairn's deletes are idempotent (specs DECISIONS.md, directory 6).
        """
        requests = iter([record_pb2.RecordRef(cid=cid) for cid in cids])
        try:
            self._store.Delete(requests, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _exchange(self, method: str, requests: Sequence[Any]) -> list[Any]:
        """Send every request on one bidi stream, then read exactly one response per request."""
        call = getattr(self._store, method)(iter(requests), timeout=self.timeout, metadata=self._metadata)
        try:
            responses = list(call)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()
        if len(responses) != len(requests):
            raise DataLossError(
                f"{method}: the server answered {len(responses)} of {len(requests)} requests and "
                "ended the stream"
            )
        return responses

    # -- SyncService ---------------------------------------------------------
    def create_sync(self, remote_directory_url: str, *, once: bool = False) -> str:
        """Start replicating a remote node into this one; returns the new sync's id at once.

        ``once`` asks for a one-shot copy (status ends COMPLETED) rather than a
        continuous mirror, through :data:`SYNC_MODE_HEADER` metadata.
        InvalidArgumentError for a URL the server refuses.
        """
        metadata = (*self._metadata, (SYNC_MODE_HEADER, "once")) if once else self._metadata
        request = sync_pb.CreateSyncRequest(remote_directory_url=remote_directory_url)
        try:
            response = self._sync.CreateSync(request, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        return str(response.sync_id)

    def list_syncs(
        self, limit: int | None = None, offset: int | None = None
    ) -> Iterator[sync_pb.ListSyncsItem]:
        """The server's syncs in its order, streamed; ``limit`` None or 0 means all."""
        request = sync_pb.ListSyncsRequest()
        if limit is not None:
            request.limit = limit
        if offset is not None:
            request.offset = offset
        call = self._sync.ListSyncs(request, timeout=self.timeout, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()

    def get_sync(self, sync_id: str) -> sync_pb.GetSyncResponse:
        """One sync's status, remote and times; NotFoundError for an unknown id."""
        response: sync_pb.GetSyncResponse = self._sync_call(
            "GetSync", sync_pb.GetSyncRequest(sync_id=sync_id)
        )
        return response

    def delete_sync(self, sync_id: str) -> None:
        """Stop a sync (status DELETE_PENDING, then DELETED); replicated records are kept."""
        self._sync_call("DeleteSync", sync_pb.DeleteSyncRequest(sync_id=sync_id))

    def _sync_call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._sync, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None


# -- options -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DirectoryOptions:
    """Where and how a Directory command talks to the server, and how it shows data.

    ``output_format`` None means the command's own default: ``human``, except
    ``pull`` and ``sign``, whose data is a JSON document (``json``).
    """

    server: str = DEFAULT_SERVER
    timeout: float | None = None
    output_format: str | None = None

    def client(self) -> DirectoryClient:
        return DirectoryClient(self.server, self.timeout, security=current_security())

    def format(self, default: str = "human") -> str:
        return self.output_format or default


_OPTION_NAMES = ("server", "timeout", "output_format")


def _server_options(*, on_group: bool, server: bool = True) -> Callable[[F], F]:
    """The shared options; on the group with defaults and env twins, on commands as overrides.

    ``server=False`` (the offline ``sign``) leaves only ``-o``.
    """
    options: list[Callable[[F], F]] = []
    if server:
        options.append(
            click.option(
                "--server",
                envvar="CAIRN_SERVER" if on_group else None,
                default=DEFAULT_SERVER if on_group else None,
                show_default=on_group,
                show_envvar=on_group,
                metavar="SOCKET|HOST:PORT",
                help="gRPC address of the server: a unix socket path or HOST:PORT.",
            )
        )
        options.append(
            click.option(
                "--timeout",
                type=click.FloatRange(min=0, min_open=True),
                metavar="SECONDS",
                help="Deadline of each call [none].",
            )
        )
    options.append(output_format_option(on_group=False))  # no group default: pull and sign default to json
    return stack_options(options)


_uses_server = merged_options(DirectoryOptions, _OPTION_NAMES)


# -- local input ---------------------------------------------------------------------
@contextmanager
def _local_files(what: str) -> Iterator[None]:
    """Report a local file error as ``<what>: <reason>`` (exit 1); a closed pipe stays quiet."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CairnError(f"{what}: {exc.strerror or exc}") from None


def _read_input(path: str) -> tuple[str, str]:
    """The text of ``path`` (``-``: stdin) and how to name it in messages."""
    where = "stdin" if path == "-" else path
    with _local_files(f"cannot read {where}"):
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        return data.decode("utf-8"), where
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"{where}: not UTF-8 text (byte {exc.start})") from None


def _skip_space(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not JSON whitespace."""
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


def _json_texts(text: str, where: str) -> Iterator[str]:
    """The JSON values of ``text`` one after another (one document, JSON lines, or concatenated)."""
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    while pos < len(text):
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(
                f"{where}: not JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        yield text[pos:end]
        pos = _skip_space(text, end)


def _records_in(text: str, where: str) -> list[Record]:
    """The records of a push input: JSON objects, alone, in arrays, or one per line.

    Each is parsed with the Directory's own rules (numbers are doubles, as in
    a ``Struct``) and canonicalised, so its CID is known before anything is sent.
    """
    records: list[Record] = []
    for document in _json_texts(text, where):
        value = parse_json(document)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                raise InvalidArgumentError(
                    f"{where}: record {len(records) + 1} is a JSON {_json_kind(item)}, not an object"
                )
            records.append(Record.from_document(item))
    return records


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool) or value is None:
        return "literal"
    return "number"


def _values_in(text: str, where: str, keys: Sequence[str]) -> list[str]:
    """Values chained from another command: a JSON array (of strings, or of objects with one of
    ``keys``), JSON lines of such objects, or one plain value per line."""
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] not in '[{"':
        return [line.strip() for line in text.splitlines() if line.strip()]
    values: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict) and any(isinstance(value.get(key), str) for key in keys):
            values.append(next(value[key] for key in keys if isinstance(value.get(key), str)))
        else:
            raise InvalidArgumentError(
                f"{where}: expected strings or objects with {' or '.join(repr(k) for k in keys)}, "
                f"got {json.dumps(value)[:80]}"
            )

    for document in _json_texts(text, where):
        collect(json.loads(document))
    return values


def _cid(text: str, where: str) -> str:
    """The canonical form of a CID a user gave; InvalidArgumentError naming where it came from."""
    try:
        return normalise_cid(text)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{where}: {exc.message}") from None


def _cid_argument(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback: CID arguments are normalised, and a malformed one is a usage error."""
    try:
        if isinstance(value, tuple):
            return tuple(normalise_cid(v) for v in value)
        return None if value is None else normalise_cid(value)
    except InvalidArgumentError as exc:
        raise click.BadParameter(exc.message) from None


def _key_password(variable: str | None) -> bytes | None:
    """The password in the environment variable the user named (a flag would show in ``ps``)."""
    if variable is None:
        return None
    password = os.environ.get(variable)
    if password is None:
        raise click.BadParameter(
            f"the environment variable {variable} is not set", param_hint="--key-password-env"
        )
    return password.encode("utf-8")


def _read_key(path: str) -> bytes:
    with _local_files(f"cannot read {path}"):
        return Path(path).read_bytes()


# -- conversions ---------------------------------------------------------------------
def _struct(record: Record) -> struct_pb2.Struct:
    data = struct_pb2.Struct()
    json_format.ParseDict(record.document(), data)
    return data


def _received(cid: str, data: struct_pb2.Struct) -> Record:
    """The record the server sent for ``cid``, canonicalised; DataLossError if it has another CID."""
    try:
        document = json_format.MessageToDict(data)
    except ValueError as exc:  # NaN or an infinity in a number_value: not JSON
        raise DataLossError(f"record {cid}: the server sent data that is not JSON ({exc})") from None
    record = Record.from_document(document)
    if record.cid != cid:
        raise DataLossError(f"record {cid}: the server sent a record whose CID is {record.cid}")
    return record


def _signature_record(signature: Signature) -> dict[str, Any]:
    """A signature as JSON: the proto's own (snake_case) field names, every field present."""
    return {
        "annotations": dict(sorted(signature.annotations.items())),
        "signed_at": signature.signed_at,
        "algorithm": signature.algorithm,
        "signature": signature.signature,
        "certificate": signature.certificate,
        "content_type": signature.content_type,
        "content_bundle": signature.content_bundle,
    }


def _signature_from_json(text: str, where: str) -> Signature:
    """A signature file: what ``sign`` or ``pull --signature -o json`` print; protojson camelCase too."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{where}: not JSON ({exc})") from None
    if (
        isinstance(document, dict)
        and isinstance(document.get("signature"), dict | None)
        and "record" in document
    ):
        document = document["signature"]  # pull --signature's {"record", "signature"}
        if document is None:
            raise InvalidArgumentError(f"{where}: the record was pulled without a signature (null)")
    if not isinstance(document, dict):
        raise InvalidArgumentError(f"{where}: expected a JSON object (a signature)")
    try:
        return signature_of(json_format.ParseDict(document, sign_pb.Signature()))
    except json_format.ParseError as exc:
        reason = str(exc).split("\n", 1)[0]
        raise InvalidArgumentError(f"{where}: not a signature ({reason})") from None


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- cairn record ----------------------------------------------------------------------
@click.group("record")
@_server_options(on_group=True)
@security_options
@click.pass_context
def record_group(ctx: click.Context, /, **options: Any) -> None:
    """Directory records: push, pull, inspect and delete them; sign and verify offline."""
    ctx.obj = DirectoryOptions(**{k: v for k, v in options.items() if v is not None})


def _cid_record(cid: str) -> dict[str, Any]:
    return {"cid": cid}


@record_group.command("push")
@click.argument("file", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the record(s) from stdin instead of FILE.")
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False),
    metavar="KEY.pem",
    help="Sign each record's CID with this private key (PEM) and push the signature with it.",
)
@click.option(
    "--key-password-env",
    metavar="VAR",
    help="Name of the environment variable holding --sign-key's password.",
)
@_server_options(on_group=False)
@_uses_server
def push_command(
    opts: DirectoryOptions,
    file: str | None,
    from_stdin: bool,
    sign_key: str | None,
    key_password_env: str | None,
) -> None:
    """Store the record in FILE (or stdin); prints its CID.

    The input is one JSON object, a JSON array of objects, or JSON lines; all
    go over one stream and a CID is printed per record, in order (-o json: an
    array of {"cid"} that `record delete --stdin` takes). Each CID is computed
    here too and must equal the server's.
    """
    if from_stdin and file not in (None, "-"):
        raise click.UsageError("give FILE or --stdin, not both")
    if not from_stdin and file is None:
        raise click.UsageError("give a FILE of records, or --stdin")
    password = _key_password(key_password_env)
    if key_password_env is not None and sign_key is None:
        raise click.UsageError("--key-password-env needs --sign-key")
    text, where = _read_input("-" if from_stdin else file or "-")
    records = _records_in(text, where)
    if not records:
        click.echo(f"cairn: {where} holds no records; nothing pushed", err=True)
        return
    signatures: list[sign_pb.Signature | None] | None = None
    if sign_key is not None:
        key = _read_key(sign_key)
        signatures = [signature_message(sign_cid(record.cid, key, password)) for record in records]
    with opts.client() as client:
        stored = client.push_records([_struct(record) for record in records], signatures)
    cids: list[str] = []
    for record, cid in zip(records, stored, strict=True):
        if _cid(cid, "the server's answer") != record.cid:
            raise DataLossError(f"the server stored a record as {cid}, but its CID is {record.cid}")
        cids.append(record.cid)
    emit_list(cids, opts.format(), record=_cid_record, columns=None, raw=str)


@record_group.command("pull")
@click.argument("cid", callback=_cid_argument)
@click.option("--signature", "with_signature", is_flag=True, help="Also fetch the record's newest signature.")
@_server_options(on_group=False)
@_uses_server
def pull_command(opts: DirectoryOptions, cid: str, with_signature: bool) -> None:
    """Print the record named CID as JSON; -o raw: its canonical bytes, exactly.

    The record is checked to hash to CID before anything is printed, so
    `pull -o raw CID | sha256sum` is CID's digest. With --signature, json and
    jsonl print {"record", "signature"} (signature null if there is none).
    """
    fmt = opts.format("json")
    if with_signature and fmt == "raw":
        raise click.UsageError("--signature prints a JSON document: use -o json, jsonl or human")
    with opts.client() as client:
        ((data, signature),) = client.pull_records([cid], include_signature=with_signature)
    record = _received(cid, data)
    if fmt == "raw":
        sys.stdout.buffer.write(record.canonical)
        sys.stdout.buffer.flush()
        return
    document: Any = json.loads(record.canonical)
    if with_signature:
        document = {
            "record": document,
            "signature": None if signature is None else _signature_record(signature_of(signature)),
        }
    click.echo(_compact(document) if fmt == "jsonl" else _pretty(document))


def _meta_record(meta: record_pb2.RecordMeta) -> dict[str, Any]:
    return {
        "cid": meta.cid,
        "schema_version": meta.schema_version,
        "created_at": meta.created_at or None,
        "annotations": dict(sorted(meta.annotations.items())),
    }


_META_COLUMNS: Sequence[Column[record_pb2.RecordMeta]] = (
    Column("CID", lambda m: m.cid),
    Column("SCHEMA", lambda m: m.schema_version or "-"),
    Column("CREATED", lambda m: m.created_at or "-"),
    Column("ANNOTATIONS", lambda m: labels_text(m.annotations)),
)


@record_group.command("info")
@click.argument("cids", nargs=-1, required=True, metavar="CID...", callback=_cid_argument)
@_server_options(on_group=False)
@_uses_server
def info_command(opts: DirectoryOptions, cids: tuple[str, ...]) -> None:
    """Show records' metadata: schema version, created_at, annotations (one Lookup stream)."""
    with opts.client() as client:
        metas = client.lookup_records(cids)
    emit_list(metas, opts.format(), record=_meta_record, columns=_META_COLUMNS, raw=lambda m: str(m.cid))


@record_group.command("delete")
@click.argument("cids", nargs=-1, metavar="[CID]...", callback=_cid_argument)
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help='Also read CIDs from stdin: a JSON array (of CIDs or {"cid"} objects), JSON lines, or one per line.',
)
@_server_options(on_group=False)
@_uses_server
def delete_command(opts: DirectoryOptions, cids: tuple[str, ...], from_stdin: bool) -> None:
    """Delete records and their signatures in one stream; prints each CID deleted.

    `cairn record push --stdin -o json < batch.json | cairn record delete --stdin`
    undoes a push. Empty stdin deletes nothing and succeeds.
    """
    wanted = list(cids)
    if from_stdin:
        text, where = _read_input("-")
        wanted += [_cid(value, where) for value in _values_in(text, where, ("cid",))]
        if not wanted:
            click.echo("cairn: no CIDs on stdin; nothing deleted", err=True)
            return
    elif not wanted:
        raise click.UsageError("give CIDs, or --stdin")
    wanted = list(dict.fromkeys(wanted))
    with opts.client() as client:
        client.delete_records(wanted)
    emit_list(wanted, opts.format(), record=_cid_record, columns=None, raw=str)


def _signature_lines(cid: str, signature: Signature) -> Iterator[str]:
    yield f"cid:        {cid}"
    yield f"algorithm:  {signature.algorithm or '-'}"
    yield f"signed at:  {signature.signed_at or '-'}"
    yield f"signature:  {signature.signature}"
    annotations = sorted(signature.annotations.items())
    if not annotations:
        yield "annotations: -"
    for i, (key, value) in enumerate(annotations):
        yield f"{'annotations:' if i == 0 else '':<12}{key}={value}"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (umask applies); AlreadyExistsError rather than overwrite a key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise AlreadyExistsError(f"{path} exists already; not overwriting a key") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _generate_keys(prefix: str, password: bytes | None) -> None:
    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise AlreadyExistsError(f"{path} exists already; not overwriting a key")
    private_pem, public_pem = generate_key(password)
    with _local_files(f"cannot write {private_path}"):
        _write_new(private_path, private_pem, 0o600)
    try:
        with _local_files(f"cannot write {public_path}"):
            _write_new(public_path, public_pem, 0o644)
    except CairnError:
        private_path.unlink(missing_ok=True)
        raise
    click.echo(f"private key: {private_path} (mode 0600; keep it secret)", err=True)
    click.echo(f"public key:  {public_path}", err=True)


@record_group.command("sign")
@click.argument("cid", required=False, callback=_cid_argument)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False),
    metavar="KEY.pem",
    help="Private key (PEM) to sign with.",
)
@click.option(
    "--key-password-env", metavar="VAR", help="Name of the environment variable holding --key's password."
)
@click.option(
    "--generate-key",
    "generate_prefix",
    metavar="PREFIX",
    help="Instead of signing: write a new ECDSA P-256 key pair to PREFIX.key (0600) and PREFIX.pub "
    "(with --key-password-env, the private key is encrypted with that password).",
)
@_server_options(on_group=False, server=False)
@_uses_server
def sign_command(
    opts: DirectoryOptions,
    cid: str | None,
    key: str | None,
    key_password_env: str | None,
    generate_prefix: str | None,
) -> None:
    """Sign CID with --key, offline; prints the signature as JSON (save it for `verify --signature`).

    What is signed is the CID string itself (specs/directory.md §9.1), so a
    record need not be at hand. The public key is carried in the signature;
    -o raw prints only the base64 signature.
    """
    if generate_prefix is not None:
        if cid is not None or key is not None:
            raise click.UsageError("--generate-key takes no CID or --key")
        _generate_keys(generate_prefix, _key_password(key_password_env))
        return
    if cid is None or key is None:
        raise click.UsageError("give a CID and --key KEY.pem (or --generate-key PREFIX)")
    signature = sign_cid(cid, _read_key(key), _key_password(key_password_env))
    emit_one(
        signature,
        opts.format("json"),
        record=_signature_record,
        human=lambda s: _signature_lines(cid, s),
        raw=lambda s: [s.signature],
    )


@record_group.command("verify")
@click.argument("cid", callback=_cid_argument)
@click.option(
    "--signature",
    "signature_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="The signature to check: what `sign` or `pull --signature -o json` printed (- for stdin).",
)
@click.option(
    "--from-server", is_flag=True, help="Fetch CID's newest signature from the server (the default)."
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False),
    metavar="PUB.pem",
    help="Public key (PEM) the signature must verify with [the key carried in the signature].",
)
@_server_options(on_group=False)
@_uses_server
def verify_command(
    opts: DirectoryOptions,
    cid: str,
    signature_file: str | None,
    from_server: bool,
    key: str | None,
) -> None:
    """Check a signature over CID: exit 0 when valid, 1 with the reason otherwise.

    Without --key, the public key carried in the signature is used: that shows
    the signature is intact, not who made it; give --key to check the signer.
    """
    if signature_file is not None and from_server:
        raise click.UsageError("give --signature FILE or --from-server, not both")
    public_key = _read_key(key) if key is not None else None
    if signature_file is not None:
        text, where = _read_input(signature_file)
        signature = _signature_from_json(text, where)
    else:
        with opts.client() as client:
            ((data, message),) = client.pull_records([cid], include_signature=True)
        _received(cid, data)
        if message is None:
            raise NotFoundError(f"record {cid} has no signature at {opts.server}")
        signature = signature_of(message)
    verify_signature(cid, signature, public_key)  # InvalidArgumentError naming the reason: exit 1
    by = f"key {key}" if key is not None else "the public key carried in the signature"
    if key is None:
        click.echo("cairn: verified with the signature's own key; give --key to check who signed", err=True)
    result = {
        "cid": cid,
        "valid": True,
        "algorithm": signature.algorithm,
        "signed_at": signature.signed_at,
        "key": key,
    }
    emit_one(
        result,
        opts.format(),
        record=lambda r: r,
        human=lambda r: [
            f"valid signature on {cid} ({r['algorithm'] or '-'}, signed {r['signed_at'] or '-'}; {by})"
        ],
        raw=lambda r: [cid],
    )


# -- cairn sync ----------------------------------------------------------------------
@click.group("sync")
@_server_options(on_group=True)
@security_options
@click.pass_context
def sync_group(ctx: click.Context, /, **options: Any) -> None:
    """Replication of remote Directory nodes into this one."""
    ctx.obj = DirectoryOptions(**{k: v for k, v in options.items() if v is not None})


def _status_name(status: int) -> str:
    """``IN_PROGRESS`` for SYNC_STATUS_IN_PROGRESS; a number the client does not know stays visible."""
    try:
        return str(sync_pb.SyncStatus.Name(status)).removeprefix("SYNC_STATUS_")
    except ValueError:
        return f"UNKNOWN({status})"


def _sync_item_record(item: sync_pb.ListSyncsItem) -> dict[str, Any]:
    return {
        "sync_id": item.sync_id,
        "status": _status_name(item.status),
        "remote_directory_url": item.remote_directory_url,
    }


_SYNC_COLUMNS: Sequence[Column[sync_pb.ListSyncsItem]] = (
    Column("ID", lambda s: s.sync_id),
    Column("STATUS", lambda s: _status_name(s.status)),
    Column("REMOTE", lambda s: s.remote_directory_url),
)


def _each(values: Iterable[str], action: Callable[[str], str]) -> tuple[list[str], int]:
    """``action`` on every value; failures are reported on stderr and counted, the rest go on."""
    done: list[str] = []
    failed = 0
    for value in values:
        try:
            done.append(action(value))
        except CairnError as exc:
            click.echo(f"cairn: {exc.message}", err=True)
            failed += 1
    return done, failed


@sync_group.command("create")
@click.argument("remotes", nargs=-1, metavar="[REMOTE]...")
@click.option("--once", is_flag=True, help="Copy what the remote holds now, then stop (status COMPLETED).")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help='Also read REMOTEs from stdin: a JSON array (of URLs or objects with "remote_directory_url" '
    'or "url"), JSON lines, or one per line.',
)
@_server_options(on_group=False)
@_uses_server
def sync_create_command(
    opts: DirectoryOptions, remotes: tuple[str, ...], once: bool, from_stdin: bool
) -> None:
    """Replicate REMOTE (a node's address: host:port or http(s)://...) here; prints the sync id.

    Without --once the sync mirrors the remote until deleted (status stays
    IN_PROGRESS). The call returns at once: watch it with `cairn sync status ID`.
    """
    wanted = list(remotes)
    if from_stdin:
        text, where = _read_input("-")
        wanted += _values_in(text, where, ("remote_directory_url", "url"))
    if not wanted:
        raise click.UsageError("give a REMOTE, or --stdin")
    with opts.client() as client:
        created, failed = _each(wanted, lambda url: client.create_sync(url, once=once))
    emit_list(created, opts.format(), record=lambda i: {"sync_id": i}, columns=None, raw=str)
    if failed:
        sys.exit(1)


@sync_group.command("list")
@click.option("--limit", type=click.IntRange(min=0), metavar="N", help="At most N syncs [all].")
@click.option("--offset", type=click.IntRange(min=0), metavar="N", help="Skip the first N syncs.")
@_server_options(on_group=False)
@_uses_server
def sync_list_command(opts: DirectoryOptions, limit: int | None, offset: int | None) -> None:
    """List syncs: active, completed and failed ones."""
    with opts.client() as client:
        emit_list(
            client.list_syncs(limit, offset),
            opts.format(),
            record=_sync_item_record,
            columns=_SYNC_COLUMNS,
            raw=lambda s: str(s.sync_id),
        )


def _sync_record(sync: sync_pb.GetSyncResponse) -> dict[str, Any]:
    return {
        "sync_id": sync.sync_id,
        "status": _status_name(sync.status),
        "remote_directory_url": sync.remote_directory_url,
        "created_time": sync.created_time or None,
        "last_update_time": sync.last_update_time or None,
        "status_message": sync.status_message or None,
    }


def _sync_lines(sync: sync_pb.GetSyncResponse) -> Iterator[str]:
    yield f"id:       {sync.sync_id}"
    yield f"status:   {_status_name(sync.status)}"
    yield f"remote:   {sync.remote_directory_url}"
    yield f"created:  {sync.created_time or '-'}"
    yield f"updated:  {sync.last_update_time or '-'}"
    if sync.status_message:
        yield f"reason:   {sync.status_message}"


@sync_group.command("status")
@click.argument("sync_id", metavar="ID")
@_server_options(on_group=False)
@_uses_server
def sync_status_command(opts: DirectoryOptions, sync_id: str) -> None:
    """Show one sync: status, remote, times; -o raw prints only the status (for scripts that wait)."""
    with opts.client() as client:
        sync = client.get_sync(sync_id)
    emit_one(
        sync,
        opts.format(),
        record=_sync_record,
        human=_sync_lines,
        raw=lambda s: [_status_name(s.status)],
    )


@sync_group.command("delete")
@click.argument("sync_ids", nargs=-1, required=True, metavar="ID...")
@_server_options(on_group=False)
@_uses_server
def sync_delete_command(opts: DirectoryOptions, sync_ids: tuple[str, ...]) -> None:
    """Stop syncs; records already replicated stay. Prints each id deleted; a failure makes exit 1."""

    def delete(sync_id: str) -> str:
        client.delete_sync(sync_id)
        return sync_id

    with opts.client() as client:
        deleted, failed = _each(sync_ids, delete)
    emit_list(deleted, opts.format(), record=lambda i: {"sync_id": i}, columns=None, raw=str)
    if failed:
        sys.exit(1)
