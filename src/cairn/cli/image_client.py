"""A small blocking client of ``arcbox.v1.ImageService``, as cairn serves it.

The ``cairn image`` commands use it, and so can scripts and benchmarks: one
method per RPC, plain protobuf messages back, and failures raised in cairn's
own error vocabulary. It is a :class:`~cairn.cli.client.ContentClient` so that
every face reaches a server the same way (socket paths, ``unix:``,
HOST:PORT, message limits) and words "nothing listens there" the same way.

Deadlines: ``timeout`` bounds each unary call; the streams (Pull, Push, Build)
take ``stream_timeout``, None by default, since a pull of a large image has
no natural bound. Stopping a stream's iteration early cancels the call, and
so the server's work.

It is not a Docker client: no credential helpers, no retries, no rendering
(``image_progress.py`` renders).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from cairn.cli.client import ContentClient
from cairn.cli.connection import GrpcSecurity
from cairn.cli.image_context import BuildContextSpec, ContextStream
from cairn.core.errors import CairnError, DataLossError

__all__ = ["ImageClient"]

Metadata = Sequence[tuple[str, str]]


class ImageClient(ContentClient):
    """A connection to one server's ``arcbox.v1.ImageService``.

    Every method blocks (streams: as they are iterated) and raises only
    :class:`~cairn.core.errors.CairnError` subclasses: NotFoundError for an
    image or registry object that is not there, InvalidArgumentError for a
    malformed reference, filter or platform, FailedPreconditionError for a
    remove conflict, UnauthenticatedError/PermissionDeniedError from a
    registry, UnavailableError when the server (or a registry) cannot be reached.
    """

    def __init__(
        self,
        server: str,
        timeout: float | None = None,
        stream_timeout: float | None = None,
        *,
        security: GrpcSecurity | None = None,
    ) -> None:
        super().__init__(server, timeout=timeout, security=security)
        self.stream_timeout = stream_timeout
        self._images: Any = pb_grpc.ImageServiceStub(self._channel)

    # -- unary ----------------------------------------------------------------------
    def list_images(
        self, *, include_all: bool = False, filters: str = "", digests: bool = False
    ) -> list[pb.ImageSummary]:
        """The images, newest first; ``filters`` is the JSON ``map[string][]string`` (or "")."""
        request = pb.ListImagesRequest(all=include_all, filters=filters, digests=digests)
        return list(self._unary("List", request).images)

    def inspect(self, name: str) -> pb.ImageInfo:
        """One image by ID, ID prefix, reference or ``name@digest``; NotFoundError ``No such image``."""
        info: pb.ImageInfo = self._unary("Inspect", pb.InspectImageRequest(id=name))
        return info

    def remove(
        self, name: str, *, force: bool = False, prune_parents: bool = False
    ) -> pb.RemoveImageResponse:
        """Untag and (when nothing else names it) delete an image; FailedPreconditionError on conflict."""
        request = pb.RemoveImageRequest(id=name, force=force, prune_parents=prune_parents)
        response: pb.RemoveImageResponse = self._unary("Remove", request)
        return response

    def tag(self, source: str, repo: str, tag: str) -> None:
        """Point ``repo:tag`` (``tag`` "" = latest) at the image ``source`` names; an existing tag moves."""
        self._unary("Tag", pb.TagImageRequest(source=source, repo=repo, tag=tag))

    def exists(self, reference: str) -> str | None:
        """The image ID ``reference`` names, or None; InvalidArgumentError for a malformed reference."""
        response = self._unary("Exists", pb.ExistsImageRequest(reference=reference))
        return str(response.id) if response.exists else None

    # -- streams --------------------------------------------------------------------
    def pull(self, reference: str, *, auth: str = "", platform: str = "") -> Iterator[pb.PullProgress]:
        """The progress messages of pulling ``reference``; the stream's failure is raised at its end."""
        request = pb.PullImageRequest(reference=reference, auth=auth, platform=platform)
        return self._server_stream("Pull", request)

    def push(self, reference: str, *, auth: str = "") -> Iterator[pb.PushProgress]:
        """The progress messages of pushing ``reference``; the last one is ``<tag>: digest: ... size: N``."""
        return self._server_stream("Push", pb.PushImageRequest(reference=reference, auth=auth))

    def build(self, context: BuildContextSpec, metadata: Metadata) -> Iterator[pb.BuildProgress]:
        """Send ``context`` as BuildContext chunks and yield the BuildProgress messages as they come.

        ``metadata`` carries the build parameters (:func:`~cairn.cli.image_context.build_metadata`).
        A local failure while reading the context cancels the call and is
        raised (InvalidArgumentError naming the file) instead of the cancellation.
        """
        call: Any = None

        def cancel() -> None:
            if call is not None:
                call.cancel()

        stream = ContextStream(context, on_error=cancel)
        requests = (pb.BuildContext(data=data, eof=eof) for data, eof in stream.chunks())
        call = self._images.Build(requests, timeout=self.stream_timeout, metadata=tuple(metadata))
        try:
            yield from call
        except grpc.RpcError as exc:
            if stream.error is not None:
                raise _local(stream.error) from None
            raise self._error(exc) from None
        finally:
            stream.stop()
            call.cancel()
        if stream.error is not None:
            raise _local(stream.error)

    # -- calls ----------------------------------------------------------------------
    def _unary(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._images, method)(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _server_stream(self, method: str, request: Any) -> Iterator[Any]:
        call = getattr(self._images, method)(request, timeout=self.stream_timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()


def _local(error: BaseException) -> CairnError:
    """A failure of the context writer, as the vocabulary error to show."""
    if isinstance(error, CairnError):
        return error
    return DataLossError(f"writing the build context failed: {error}")
