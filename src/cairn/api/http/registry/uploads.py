"""``/v2/<name>/blobs/uploads/``: start (incl. single POST and mount), PATCH, PUT, status, cancel.

Every way real clients upload works on the same session: monolithic
``POST`` + ``PUT ?digest=`` with the body (oras, ctr), one streamed ``PATCH``
without ``Content-Range`` then an empty ``PUT`` (skopeo, podman with
``Transfer-Encoding: chunked``), chunked ``PATCH`` with ``Content-Range`` (416
when a chunk does not start at the current size; the session stays valid), and
single ``POST ?digest=`` with the body (201). Progress is reported as
``Range: 0-<last byte>`` (``0-0`` for an empty session, as distribution does and
the conformance suite expects).
"""

from __future__ import annotations

import re

from aiohttp import web

from cairn.api.http.registry.bodies import has_body, is_chunked, pump_into
from cairn.api.http.registry.context import Face, blob_url, upload_url
from cairn.api.http.registry.errors import RegistryError
from cairn.api.http.registry.paths import Route
from cairn.core.auth import Scope
from cairn.core.digest import ALGORITHMS, Digest
from cairn.oci.errors import DigestInvalidError, SizeInvalidError, UploadOutOfOrderError
from cairn.oci.registry import OpenUpload, check_repository, parse_digest

__all__ = ["cancel_upload", "finish_upload", "patch_upload", "start_upload", "upload_status"]

#: Bodies up to this size are read whole and stored in one worker call (under aiohttp's
#: 1 MiB ``client_max_size``); larger ones stream through :func:`pump_into`.
SMALL_BODY_BYTES = 256 << 10

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _progress(name: str, upload_id: str, offset: int, status: int) -> web.Response:
    return web.Response(
        status=status,
        headers={
            "Location": upload_url(name, upload_id),
            "Range": f"0-{max(offset - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        },
    )


def _created(name: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201, headers={"Location": blob_url(name, digest), "Docker-Content-Digest": str(digest)}
    )


def _digest_param(request: web.Request) -> Digest:
    text = request.query.get("digest")
    if not text:
        raise DigestInvalidError("the digest query parameter is required to complete an upload")
    return parse_digest(text)


def _chunk_range(request: web.Request) -> tuple[int, int] | None:
    """``Content-Range: <start>-<end>`` of a chunk (inclusive), or None when there is none."""
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE.match(header.strip())
    if match is None or int(match[2]) < int(match[1]):
        raise UploadOutOfOrderError(f"invalid Content-Range {header!r}: want <start>-<end>")
    start, end = int(match[1]), int(match[2])
    length = request.content_length
    if length is not None and length != end - start + 1:
        raise SizeInvalidError(f"Content-Range {header} covers {end - start + 1} bytes, Content-Length is {length}")
    return start, end


def _check_received(chunk: tuple[int, int] | None, received: int) -> None:
    """A chunk's body must be as long as its Content-Range says (also when sent chunked)."""
    if chunk is not None and received != chunk[1] - chunk[0] + 1:
        raise SizeInvalidError(
            f"Content-Range {chunk[0]}-{chunk[1]} announced {chunk[1] - chunk[0] + 1} bytes, {received} arrived"
        )


async def _append(face: Face, request: web.Request, upload: OpenUpload, chunk: tuple[int, int] | None) -> None:
    _check_received(chunk, await pump_into(request, upload))


async def _open(face: Face, name: str, upload_id: str, start: int | None) -> OpenUpload:
    """Hold the session; a chunk that does not start at its size gets 416 with the progress headers."""
    try:
        return await face.run(face.registry.uploads.open, name, upload_id, start)
    except UploadOutOfOrderError as exc:
        raise _out_of_order(name, upload_id, exc) from None


def _small_body(request: web.Request) -> bool:
    """A body of known length up to one piece: read it whole and store it in one worker call."""
    length = request.content_length
    return not is_chunked(request) and length is not None and length <= SMALL_BODY_BYTES


async def _store_small(
    face: Face, request: web.Request, name: str, upload_id: str, chunk: tuple[int, int] | None, digest: Digest | None
) -> int:
    """Append a small body and maybe complete, in one thread hop (4 KiB pushes are hop-bound)."""
    data = await request.read()
    _check_received(chunk, len(data))
    try:
        return await face.run(face.registry.uploads.store, name, upload_id, chunk[0] if chunk else None, data, digest)
    except UploadOutOfOrderError as exc:
        raise _out_of_order(name, upload_id, exc) from None


def _out_of_order(name: str, upload_id: str, exc: UploadOutOfOrderError) -> RegistryError:
    offset = int(exc.detail["Offset"]) if isinstance(exc.detail, dict) else 0
    progress = _progress(name, upload_id, offset, 416)
    return RegistryError(416, "BLOB_UPLOAD_INVALID", exc.message, exc.detail, progress.headers)


async def start_upload(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull", "push")
    registry = face.registry
    mount = request.query.get("mount")
    if mount:
        digest = parse_digest(mount)
        source = request.query.get("from")
        if source is not None:
            source = check_repository(source)
            if not await face.auth.allowed(request, Scope("repository", source, frozenset({"pull"}))):
                source = None  # not readable by this caller: fall back to an upload, as if unknown
            elif await face.run(registry.blobs.mount, name, digest, source):
                return _created(name, digest)
        elif not face.auth.enabled and await face.run(registry.blobs.mount, name, digest, None):
            return _created(name, digest)
    algorithm = request.query.get("digest-algorithm")
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise DigestInvalidError(f"digest algorithm {algorithm!r} is not supported (use sha256 or sha512)")
    single = request.query.get("digest")
    expected = parse_digest(single) if single else None
    upload_id = await face.run(registry.uploads.start, name)
    if expected is None:
        return _progress(name, upload_id, 0, 202)
    if _small_body(request):
        await _store_small(face, request, name, upload_id, None, expected)
        return _created(name, expected)
    upload = await face.run(registry.uploads.open, name, upload_id)
    try:
        await _append(face, request, upload, None)
        await face.run(upload.complete, expected)
    finally:
        await face.run(upload.close)
    return _created(name, expected)


async def patch_upload(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull", "push")
    chunk = _chunk_range(request)
    if _small_body(request):
        offset = await _store_small(face, request, name, route.arg, chunk, None)
        return _progress(name, route.arg, offset, 202)
    upload = await _open(face, name, route.arg, chunk[0] if chunk else None)
    try:
        await _append(face, request, upload, chunk)
    finally:
        await face.run(upload.close)
    return _progress(name, route.arg, upload.offset, 202)


async def finish_upload(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull", "push")
    digest = _digest_param(request)
    chunk = _chunk_range(request)
    if _small_body(request):
        await _store_small(face, request, name, route.arg, chunk, digest)
        return _created(name, digest)
    upload = await _open(face, name, route.arg, chunk[0] if chunk else None)
    try:
        if chunk is not None or has_body(request):
            await _append(face, request, upload, chunk)
        await face.run(upload.complete, digest)
    finally:
        await face.run(upload.close)
    return _created(name, digest)


async def upload_status(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull", "push")
    offset = await face.run(face.registry.uploads.offset, name, route.arg)
    return _progress(name, route.arg, offset, 204)


async def cancel_upload(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull", "push")
    await face.run(face.registry.uploads.cancel, name, route.arg)
    return web.Response(status=204)
