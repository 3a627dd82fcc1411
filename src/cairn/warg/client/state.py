"""The client's memory of one registry: what it verified last, kept so the next update is incremental.

A client that remembers the last verified checkpoint can prove the registry only
grew since (consistency), and one that remembers each log's validated state and
fetch token only fetches and validates new records. This module keeps that
memory on disk; it decides nothing about what to believe (``update.py`` does).

Layout, one directory per registry URL under the state root::

    <root>/<host-port-path>-<hash8>/
        state.json          index: registry URL, checkpoint, which log file holds each log
        logs/<sha256>.json  one log's validated state, head index and fetch token
        lock                flock()ed while a process reads-modifies-writes the state

Why so: an update changes the checkpoint and several logs together, and a
killed client must leave either the old state or the new one, never a mix. Log
files are named by the hash of their bytes, written (temp file + rename) before
the index, and never modified; the index is replaced last, in one rename; only
then are log files the new index no longer names deleted. Unchanged logs are
not rewritten, so a registry with many packages costs only what changed. A log
file whose bytes do not hash to its name is reported as corrupt rather than
believed.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import CairnError, DataLossError, UnavailableError
from cairn.warg.checkpoint import SignedCheckpoint
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import OPERATOR_LOG_ID, PackageName
from cairn.warg.validation import OperatorLogState, PackageLogState, Release

__all__ = [
    "ClientState",
    "OperatorTrack",
    "PackageTrack",
    "StateStore",
    "default_state_root",
    "registry_dir_name",
]

STATE_FORMAT = 1
_INDEX = "state.json"
_LOGS = "logs"
_LOCK_WAIT = 60.0


def default_state_root() -> Path:
    """``$XDG_CACHE_HOME/cairn/warg`` (``~/.cache/cairn/warg`` when the variable is unset).

    A cache, not configuration: deleting it only costs a full fetch and
    validation next time (and the memory of the last checkpoint, so the first
    update after that trusts the registry's history afresh).
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cairn" / "warg"


def registry_dir_name(registry: str) -> str:
    """A readable, unique directory name for a normalised registry URL (host, port, path, hash)."""
    readable = re.sub(r"[^A-Za-z0-9.]+", "-", registry.split("://", 1)[-1]).strip("-") or "registry"
    return f"{readable[:80]}-{hashlib.sha256(registry.encode()).hexdigest()[:8]}"


@dataclass
class OperatorTrack:
    """The operator log as validated so far: its state, head's registry index, fetch token."""

    state: OperatorLogState = field(default_factory=OperatorLogState)
    head_index: int | None = None
    fetch_token: str | None = None


@dataclass
class PackageTrack:
    """One package log as validated so far."""

    name: PackageName
    state: PackageLogState = field(default_factory=PackageLogState)
    head_index: int | None = None
    fetch_token: str | None = None

    @property
    def log_id(self) -> AnyHash:
        return self.name.log_id


@dataclass
class ClientState:
    """Everything the client believes about one registry; mutable working copy of the stored one."""

    registry: str
    checkpoint: SignedCheckpoint | None = None
    operator: OperatorTrack = field(default_factory=OperatorTrack)
    packages: dict[str, PackageTrack] = field(default_factory=dict)


class StateStore:
    """The state directory of one registry under ``root``."""

    def __init__(self, root: Path, registry: str) -> None:
        self.registry = registry
        self.directory = root / registry_dir_name(registry)

    # -- reading ---------------------------------------------------------------
    def load(self) -> ClientState:
        """A fresh working copy of the stored state (an empty one if nothing is stored)."""
        index_path = self.directory / _INDEX
        try:
            index = json.loads(index_path.read_bytes())
        except FileNotFoundError:
            return ClientState(self.registry)
        except (OSError, ValueError) as exc:
            raise self._corrupt(exc, _INDEX) from None
        try:
            if index.get("format") != STATE_FORMAT:
                raise ValueError(f"{_INDEX} has unknown format {index.get('format')!r}")
            if index.get("registry") != self.registry:
                raise ValueError(f"{_INDEX} belongs to registry {index.get('registry')!r}")
            state = ClientState(self.registry)
            if index.get("checkpoint") is not None:
                state.checkpoint = SignedCheckpoint.from_json(index["checkpoint"])
            if index.get("operator") is not None:
                document = self._log_file(index["operator"])
                state.operator = OperatorTrack(
                    OperatorLogState.from_json(document["state"]),
                    _opt_int(document.get("headIndex")),
                    _opt_str(document.get("fetchToken")),
                )
            for name, file_name in dict(index.get("packages") or {}).items():
                document = self._log_file(file_name)
                releases = [Release.from_json(value) for value in document.get("releases") or []]
                state.packages[name] = PackageTrack(
                    PackageName.parse(name),
                    PackageLogState.from_parts(document["state"], releases),
                    _opt_int(document.get("headIndex")),
                    _opt_str(document.get("fetchToken")),
                )
        except (CairnError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._corrupt(exc) from None
        return state

    def _log_file(self, name: Any) -> dict[str, Any]:
        if not isinstance(name, str) or not re.fullmatch(r"[0-9a-f]{64}\.json", name):
            raise ValueError(f"bad log file name {name!r}")
        path = self.directory / _LOGS / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{_LOGS}/{name}: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != name[:64]:
            raise ValueError(f"{_LOGS}/{name} does not hash to its name")
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError(f"{_LOGS}/{name} is not a JSON object")
        return document

    def _corrupt(self, exc: BaseException, where: str | None = None) -> CairnError:
        reason = exc.message if isinstance(exc, CairnError) else str(exc)
        if isinstance(exc, KeyError):
            reason = f"field {reason} is missing"
        if where is not None:
            reason = f"{where}: {reason}"
        return DataLossError(
            f"the warg state in {self.directory} is unreadable ({reason}); "
            f"remove the directory to start over"
        )

    # -- writing ---------------------------------------------------------------
    def save(self, state: ClientState) -> None:
        """Store ``state`` atomically: all of it or (if killed midway) none of it."""
        logs = self.directory / _LOGS
        logs.mkdir(parents=True, exist_ok=True)
        keep: set[str] = set()
        operator_file: str | None = None
        if state.operator.state.head is not None:
            operator_file = self._write_log(
                {
                    "logId": str(OPERATOR_LOG_ID),
                    "headIndex": state.operator.head_index,
                    "fetchToken": state.operator.fetch_token,
                    "state": state.operator.state.to_json(),
                }
            )
            keep.add(operator_file)
        packages: dict[str, str] = {}
        for name, track in sorted(state.packages.items()):
            packages[name] = self._write_log(
                {
                    "name": name,
                    "logId": str(track.log_id),
                    "headIndex": track.head_index,
                    "fetchToken": track.fetch_token,
                    "state": track.state.summary_json(),
                    # releases apart, with the content digest of yanked versions kept (the
                    # reference state shape drops it, but `download --allow-yanked` needs it)
                    "releases": [r.to_json(keep_content=True) for r in track.state.releases.values()],
                }
            )
            keep.add(packages[name])
        index = {
            "format": STATE_FORMAT,
            "registry": state.registry,
            "checkpoint": None if state.checkpoint is None else state.checkpoint.to_json(),
            "operator": operator_file,
            "packages": packages,
        }
        _fsync_dir(logs)
        _atomic_write(self.directory / _INDEX, _dump(index))
        _fsync_dir(self.directory)
        for path in logs.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _write_log(self, document: dict[str, Any]) -> str:
        data = _dump(document)
        name = hashlib.sha256(data).hexdigest() + ".json"
        path = self.directory / _LOGS / name
        if not path.exists():
            _atomic_write(path, data)
        return name

    @contextmanager
    def locked(self, wait: float = _LOCK_WAIT) -> Iterator[None]:
        """Hold the directory's lock: one read-modify-write of the state at a time."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "lock", "a+b") as lock:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                        raise UnavailableError(
                            f"the warg state in {self.directory} is locked by another process"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _dump(document: Any) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, and rename it over ``path``."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise CairnError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value
