"""gRPC face of the image service: ``arcbox.v1.ImageService`` over cairn.images.

Thin translation. Pull, Push and Build run the domain call on a worker thread
and relay its progress through a bounded queue, so a slow client slows the
transfer instead of growing memory, and a client that hangs up cancels the
work between two chunks. Failures end the stream with the mapped non-OK
status (DECISIONS image-service 2); Build also sends a last ``BuildProgress``
with ``error`` set. Build parameters arrive as gRPC metadata (the seed's
``BuildContext`` has no field for them): ``dockerfile``, ``tag`` and
``build-arg`` (repeatable), ``target``, ``platform``, ``no-cache``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc

from cairn.api.grpc.errors import handles_errors
from cairn.api.grpc.gen.arcbox.v1 import common_pb2, image_pb2, image_pb2_grpc
from cairn.api.metrics import Metrics
from cairn.core.errors import CairnError, CancelledError, InvalidArgumentError
from cairn.images.build import BuildEvent, BuildParams
from cairn.images.progress import Progress
from cairn.images.service import ImageDetails, ImageService, ImageSummary

__all__ = ["ImageServicer", "build_params"]

#: Progress messages buffered between the worker and a slow client.
QUEUE_DEPTH = 256
#: How often a blocked producer looks whether the client is still there, in seconds.
_POLL = 0.5

R = TypeVar("R")
M = TypeVar("M")
_DONE = object()


class _Relay:
    """Runs one domain call on a thread; its events come out of :meth:`messages` in order."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_DEPTH)
        self._gone = threading.Event()
        self._error: BaseException | None = None
        context.add_callback(self._gone.set)

    def cancelled(self) -> bool:
        return self._gone.is_set()

    def emit(self, item: object) -> None:
        while True:
            if self._gone.is_set():
                raise CancelledError("the client went away")
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def run(self, work: Callable[[], object]) -> None:
        def target() -> None:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - re-raised on the handler's thread
                self._error = exc
            finally:
                while not self._gone.is_set():
                    try:
                        self._queue.put(_DONE, timeout=_POLL)
                        break
                    except queue.Full:
                        continue

        threading.Thread(target=target, name="image-call", daemon=True).start()

    def messages(self) -> Iterator[Any]:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._gone.is_set():
                    return
                continue
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item


def _pull_message(p: Progress) -> image_pb2.PullProgress:
    return image_pb2.PullProgress(id=p.id, status=p.status, progress=p.progress,
                                  current=p.current, total=p.total)


def _push_message(p: Progress) -> image_pb2.PushProgress:
    return image_pb2.PushProgress(id=p.id, status=p.status, progress=p.progress,
                                  current=p.current, total=p.total)


def _build_message(e: BuildEvent) -> image_pb2.BuildProgress:
    return image_pb2.BuildProgress(stream=e.stream, status=e.status, progress=e.progress,
                                   error=e.error, aux=e.aux)


def build_params(metadata: Iterable[tuple[str, str | bytes]]) -> BuildParams:
    """BuildParams from the call's metadata; InvalidArgumentError for a malformed value."""
    tags: list[str] = []
    args: dict[str, str] = {}
    single: dict[str, str] = {}
    for key, raw in metadata:
        value = raw.decode() if isinstance(raw, bytes) else raw
        if key == "tag":
            tags.append(value)
        elif key == "build-arg":
            name, eq, arg = value.partition("=")
            if not name or not eq:
                raise InvalidArgumentError(f"build-arg {value!r}: expected NAME=VALUE")
            args[name] = arg
        elif key in ("dockerfile", "target", "platform", "no-cache"):
            single[key] = value
    no_cache = single.get("no-cache", "").lower()
    if no_cache not in ("", "true", "false", "1", "0"):
        raise InvalidArgumentError(f"no-cache {no_cache!r}: use true or false")
    return BuildParams(
        dockerfile=single.get("dockerfile") or "Dockerfile",
        tags=tuple(tags),
        build_args=args,
        target=single.get("target") or None,
        platform=single.get("platform") or None,
        no_cache=no_cache in ("true", "1"),
    )


def _summary(s: ImageSummary) -> image_pb2.ImageSummary:
    return image_pb2.ImageSummary(
        id=str(s.image.id), repo_tags=s.repo_tags, repo_digests=s.repo_digests,
        created=s.image.created_seconds(), size=s.image.size, virtual_size=s.image.size,
        containers=0, labels=s.labels,
    )


def _info(d: ImageDetails) -> image_pb2.ImageInfo:
    c = d.config
    empty = common_pb2.Empty()
    return image_pb2.ImageInfo(
        id=str(d.image.id), repo_tags=d.repo_tags, repo_digests=d.repo_digests,
        parent=str(d.image.parent) if d.image.parent else "",
        comment=c.comment, created=c.created, author=c.author, architecture=c.architecture,
        os=c.os, os_version=c.os_version, size=d.image.size, virtual_size=d.image.size,
        config=image_pb2.ImageConfig(
            hostname=c.hostname, domainname=c.domainname, user=c.user, env=c.env, cmd=c.cmd,
            entrypoint=c.entrypoint, working_dir=c.working_dir, labels=dict(c.labels),
            exposed_ports={port: empty for port in c.exposed_ports},
            volumes={volume: empty for volume in c.volumes},
        ),
        root_fs=image_pb2.RootFS(type="layers", layers=[str(d) for d in c.diff_ids]),
    )


class ImageServicer(image_pb2_grpc.ImageServiceServicer):
    """``arcbox.v1.ImageService`` on an ImageService."""

    SERVICE = "arcbox.v1.ImageService"

    def __init__(self, images: ImageService, metrics: Metrics) -> None:
        self._images = images
        self._metrics = metrics

    @handles_errors
    def Pull(self, request: image_pb2.PullImageRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        relay = _Relay(context)
        self._images.check_pull(request.reference, request.auth, request.platform)  # before streaming
        relay.run(lambda: self._images.pull(
            request.reference, auth=request.auth, platform=request.platform,
            progress=relay.emit, cancelled=relay.cancelled))
        for p in relay.messages():
            yield _pull_message(p)

    @handles_errors
    def Push(self, request: image_pb2.PushImageRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        relay = _Relay(context)
        self._images.check_push(request.reference, request.auth)
        relay.run(lambda: self._images.push(
            request.reference, auth=request.auth, progress=relay.emit, cancelled=relay.cancelled))
        for p in relay.messages():
            yield _push_message(p)

    @handles_errors
    def List(self, request: image_pb2.ListImagesRequest, context: grpc.ServicerContext) -> Any:
        found = self._images.list(all=request.all, filters=request.filters)
        return image_pb2.ListImagesResponse(images=[_summary(s) for s in found])

    @handles_errors
    def Inspect(self, request: image_pb2.InspectImageRequest, context: grpc.ServicerContext) -> Any:
        return _info(self._images.inspect(request.id))

    @handles_errors
    def Remove(self, request: image_pb2.RemoveImageRequest, context: grpc.ServicerContext) -> Any:
        result = self._images.remove(request.id, force=request.force, prune_parents=request.prune_parents)
        return image_pb2.RemoveImageResponse(deleted=result.deleted, untagged=result.untagged)

    @handles_errors
    def Tag(self, request: image_pb2.TagImageRequest, context: grpc.ServicerContext) -> Any:
        self._images.tag(request.source, request.repo, request.tag)
        return common_pb2.Empty()

    @handles_errors
    def Exists(self, request: image_pb2.ExistsImageRequest, context: grpc.ServicerContext) -> Any:
        found = self._images.exists(request.reference)
        if found is None:
            return image_pb2.ExistsImageResponse(exists=False, id="")
        return image_pb2.ExistsImageResponse(exists=True, id=str(found.id))

    @handles_errors
    def Build(
        self, request_iterator: Iterator[image_pb2.BuildContext], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        params = build_params(context.invocation_metadata())
        relay = _Relay(context)

        def chunks() -> Iterator[bytes]:
            for message in request_iterator:
                if message.data:
                    yield message.data
                if message.eof:
                    return

        relay.run(lambda: self._images.build(chunks(), params, events=relay.emit,
                                             cancelled=relay.cancelled))
        try:
            for event in relay.messages():
                yield _build_message(event)
        except CairnError as exc:
            yield image_pb2.BuildProgress(error=exc.message)
            raise
