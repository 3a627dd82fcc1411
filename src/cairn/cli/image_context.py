"""The build context of ``cairn image build``: a directory as a tar stream, as the docker CLI sends it.

What goes in, and how (docker CLI 24, classic builder):

- every file, directory and symlink under the context directory, in sorted
  order, relative paths, mode and mtime kept, owner ``0:0`` with no names
  (docker's ``ChownOpts``), hard links as tar links, sockets left out;
- minus what ``.dockerignore`` excludes, with moby's ``patternmatcher`` rules
  (:class:`IgnoreRules`): ``*``/``?`` stay within a path component, ``**``
  spans any number, ``!`` re-includes, the last matching rule wins, and a
  pattern matching a directory excludes everything under it. The Dockerfile
  and ``.dockerignore`` themselves are always sent (the server reads them);
- a Dockerfile from outside the context (``-f ../Dockerfile``, ``-f -``) is
  added at the root under a generated name, ``.dockerfile.<12 hex>``, and that
  name is what the build is told to use.

:class:`ContextStream` turns that into ~1 MiB ``BuildContext`` chunks without
holding the archive in memory: a thread writes the tar into a small bounded
queue, the gRPC request iterator drains it, and the last chunk carries
``eof=true``. Build parameters travel as gRPC metadata (:func:`build_metadata`).

This module does not talk to servers; the server applies ``.dockerignore``
again and decides what the Dockerfile means.
"""

from __future__ import annotations

import io
import os
import queue
import secrets
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cairn.core.errors import InvalidArgumentError

__all__ = [
    "CHUNK_SIZE",
    "BuildContextSpec",
    "ContextStream",
    "IgnoreRules",
    "build_metadata",
    "parse_build_args",
    "prepare_context",
    "write_context",
]

#: Size of each BuildContext message (spec §2.2: stay well under ttrpc's 4 MiB).
CHUNK_SIZE: Final = 1 << 20
DOCKERIGNORE: Final = ".dockerignore"


# -- .dockerignore -------------------------------------------------------------------
class IgnoreRules:
    """The patterns of a ``.dockerignore``, matched with the server's own matcher.

    Matching is :class:`cairn.images.build.ignore.IgnoreMatcher` (moby's
    ``patternmatcher``), so the client never leaves out a path the server would
    keep; this class adds what a sender needs: pruning decisions for
    directories and docker's re-inclusion of the build files.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        from cairn.images.build.ignore import IgnoreMatcher  # the build package is heavy; only build needs it

        self.patterns: tuple[str, ...] = tuple(patterns)
        self._matcher = IgnoreMatcher(list(self.patterns))

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        """The rules of a ``.dockerignore`` text, cleaned as Docker's ``ReadAll`` does."""
        from cairn.images.build.ignore import parse_dockerignore

        return cls(parse_dockerignore(text))

    def plus_exceptions(self, paths: Sequence[str]) -> IgnoreRules:
        """These rules with ``!path`` appended (docker's ``TrimBuildFilesFromExcludes``)."""
        return IgnoreRules([*self.patterns, *(f"!{path}" for path in paths)])

    def excludes(self, path: str) -> bool:
        """Whether the slash-separated relative ``path`` (or a directory above it) is excluded."""
        return self._matcher.matches(path)

    def may_reinclude_under(self, directory: str) -> bool:
        """Whether a ``!`` pattern could re-include something under an excluded ``directory``.

        docker's ``TarWithOptions`` test: an exclusion pattern that starts with
        ``directory/``; otherwise the whole directory is skipped unread.
        """
        prefix = directory + "/"
        return any(p.startswith("!") and (p[1:] + "/").startswith(prefix) for p in self.patterns)


# -- what to send ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BuildContextSpec:
    """A prepared context: the directory, the Dockerfile's name in the tar, files to add at the root."""

    root: Path
    dockerfile: str
    ignore: IgnoreRules
    extra: Mapping[str, bytes] = field(default_factory=dict)


def prepare_context(
    directory: Path, dockerfile: str | None, read_stdin: Callable[[], bytes] | None = None
) -> BuildContextSpec:
    """Check the context and find the Dockerfile the way ``docker build`` does.

    ``dockerfile`` None means ``Dockerfile`` in the context; a path is relative
    to the current directory (docker's rule, not the context's); ``-`` reads it
    with ``read_stdin``. A Dockerfile outside the context is added under a
    generated name. InvalidArgumentError when the context is not a directory
    or the Dockerfile cannot be found.
    """
    try:
        root = directory.resolve(strict=True)
    except OSError:
        raise InvalidArgumentError(f"unable to prepare context: path {str(directory)!r} not found") from None
    if not root.is_dir():
        raise InvalidArgumentError(f"unable to prepare context: {str(directory)!r} is not a directory")
    ignore = _read_ignore(root)
    extra: dict[str, bytes] = {}
    if dockerfile == "-":
        if read_stdin is None:
            raise InvalidArgumentError("-f -: no standard input to read the Dockerfile from")
        name = f".dockerfile.{secrets.token_hex(6)}"
        extra[name] = read_stdin()
    else:
        path = (root / "Dockerfile") if dockerfile is None else Path(os.path.abspath(dockerfile))
        if not path.is_file():
            shown = "Dockerfile" if dockerfile is None else dockerfile
            raise InvalidArgumentError(f"Cannot locate specified Dockerfile: {shown}")
        resolved = path.parent.resolve() / path.name
        if resolved.is_relative_to(root):
            name = resolved.relative_to(root).as_posix()
        else:
            name = f".dockerfile.{secrets.token_hex(6)}"
            try:
                extra[name] = path.read_bytes()
            except OSError as exc:
                raise InvalidArgumentError(f"cannot read {dockerfile}: {exc.strerror or exc}") from None
    return BuildContextSpec(root, name, ignore.plus_exceptions([name, DOCKERIGNORE]), extra)


def _read_ignore(root: Path) -> IgnoreRules:
    try:
        text = (root / DOCKERIGNORE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return IgnoreRules([])
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {root / DOCKERIGNORE}: {exc.strerror or exc}") from None
    return IgnoreRules.parse(text)


def _walk(root: Path, ignore: IgnoreRules) -> Iterator[tuple[str, Path]]:
    """(name in the tar, path) of everything to send, sorted, excluded directories pruned."""

    def visit(directory: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read {directory}: {exc.strerror or exc}") from None
        for entry in entries:
            name = prefix + entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if ignore.excludes(name):
                if is_dir and ignore.may_reinclude_under(name):
                    yield from visit(Path(entry.path), name + "/")
                continue
            yield name, Path(entry.path)
            if is_dir:
                yield from visit(Path(entry.path), name + "/")

    yield from visit(root, "")


def write_context(spec: BuildContextSpec, out: io.RawIOBase | io.BufferedIOBase) -> None:
    """Write the context of ``spec`` as an uncompressed tar stream to ``out``.

    Blocks on the disk and on ``out``; InvalidArgumentError naming the file
    when one cannot be read.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _walk(spec.root, spec.ignore):
            try:
                info = tar.gettarinfo(str(path), arcname=name)
            except OSError as exc:
                raise InvalidArgumentError(f"cannot read {path}: {exc.strerror or exc}") from None
            if info is None:
                continue  # a socket or other file tar cannot hold
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                try:
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                except OSError as exc:
                    raise InvalidArgumentError(f"cannot read {path}: {exc.strerror or exc}") from None
            else:
                tar.addfile(info)
        for name, data in sorted(spec.extra.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))


# -- streaming -------------------------------------------------------------------------
class _Stopped(Exception):
    """Raised into the tar writer when the stream was stopped (the build ended or failed)."""


class _QueueWriter(io.RawIOBase):
    """A write-only file that cuts what it gets into ``size`` chunks on a bounded queue."""

    def __init__(
        self, feed: queue.Queue[bytes | BaseException | None], size: int, stopped: threading.Event
    ) -> None:
        self._feed = feed
        self._size = size
        self._stopped = stopped
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer += data
        while len(self._buffer) >= self._size:
            self.put(bytes(self._buffer[: self._size]))
            del self._buffer[: self._size]
        return len(data)

    def put(self, item: bytes | BaseException | None) -> None:
        while True:
            if self._stopped.is_set():
                raise _Stopped
            try:
                self._feed.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        if self._buffer:
            self.put(bytes(self._buffer))
            self._buffer.clear()


class ContextStream:
    """The context of ``spec`` as an iterator of chunks, written by a thread as it is read.

    :meth:`chunks` yields ``(data, eof)``: ~``chunk_size`` bytes each, the last
    one with ``eof`` True (empty if the archive ended on a chunk boundary).
    If writing fails, iteration stops without an ``eof`` chunk, :attr:`error`
    holds the failure and ``on_error`` is called (the client cancels the call
    there, so a short archive is never taken for a whole one). :meth:`stop`
    (idempotent) ends the writer; call it when the build is over.
    """

    DEPTH = 4

    def __init__(
        self, spec: BuildContextSpec, chunk_size: int = CHUNK_SIZE, on_error: Callable[[], None] | None = None
    ) -> None:
        self._spec = spec
        self._feed: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=self.DEPTH)
        self._stopped = threading.Event()
        self._writer = _QueueWriter(self._feed, chunk_size, self._stopped)
        self._thread = threading.Thread(target=self._write, name="cairn-build-context", daemon=True)
        self._on_error = on_error
        self.error: BaseException | None = None
        self.bytes_sent = 0

    def _write(self) -> None:
        try:
            write_context(self._spec, self._writer)
            self._writer.finish()
            self._writer.put(None)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            try:
                self._writer.put(exc)
            except _Stopped:
                return

    def chunks(self) -> Iterator[tuple[bytes, bool]]:
        self._thread.start()
        held: bytes | None = None
        while not self._stopped.is_set():
            try:
                item = self._feed.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                self.error = item
                if self._on_error is not None:
                    self._on_error()
                return
            if item is None:
                data = held or b""
                self.bytes_sent += len(data)
                yield data, True
                return
            if held is not None:
                self.bytes_sent += len(held)
                yield held, False
            held = item

    def stop(self) -> None:
        self._stopped.set()


# -- parameters --------------------------------------------------------------------------
def _printable(key: str, value: str) -> str:
    if not all(" " <= ch <= "~" for ch in value):
        raise InvalidArgumentError(
            f"{key} {value!r}: build parameters travel as gRPC metadata, which takes printable ASCII only"
        )
    return value


def build_metadata(
    *,
    dockerfile: str,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    platform: str | None = None,
    no_cache: bool = False,
) -> list[tuple[str, str]]:
    """The Build call's metadata (spec DECISIONS image-service 13): one pair per value, keys repeated."""
    pairs = [("dockerfile", _printable("dockerfile", dockerfile))]
    pairs += [("tag", _printable("tag", tag)) for tag in tags]
    pairs += [("build-arg", _printable("build-arg", f"{k}={v}")) for k, v in (build_args or {}).items()]
    if target:
        pairs.append(("target", _printable("target", target)))
    if platform:
        pairs.append(("platform", _printable("platform", platform)))
    if no_cache:
        pairs.append(("no-cache", "true"))
    return pairs


def parse_build_args(items: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """``K=V`` pairs; a bare ``K`` takes its value from ``environ`` and is dropped when unset (docker)."""
    args: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgumentError(f"--build-arg {item!r}: expected KEY=VALUE")
        if sep:
            args[key] = value
        elif key in environ:
            args[key] = environ[key]
    return args
