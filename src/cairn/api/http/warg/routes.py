"""The ``/v1/`` routes of the Warg API (specs/warg.md §8.2), the content files and the discovery document.

Handlers are thin: read the request strictly (``bodies``), call the registry in
a worker thread (catalog and disk work never run on the event loop), turn the
result into the exact JSON the reference sends. Every error goes through
``errors.error_json``. A middleware gives every ``/v1/`` answer its JSON form,
including unknown routes and wrong methods, and answers a ``Warg-Registry``
federation header with 501 (as JSON: DECISIONS.md warg 11).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from cairn.api.http.ranges import is_whole_get, send_blob, send_verified_file
from cairn.api.http.warg.bodies import (
    U16,
    hash_field,
    hash_param,
    int_field,
    read_json,
    reject_unknown,
    str_field,
)
from cairn.api.http.warg.errors import BodyError, error_json, json_response
from cairn.core.catalog.warg import WargRecordRow
from cairn.core.digest import Digest
from cairn.core.errors import CairnError
from cairn.warg.checkpoint import SignedCheckpoint
from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import b64encode
from cairn.warg.ids import PackageName
from cairn.warg.records import Envelope
from cairn.warg.registry import LEDGER_CHUNK, RecordStatus, WargRegistry

__all__ = ["add_warg_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Bytes read from the socket per content upload write.
UPLOAD_CHUNK = 1 << 20
LEDGER_TYPE = "application/vnd.warg.ledger.packed"


class _Face:
    def __init__(self, registry: WargRegistry, base_url: str, verify_reads_max_bytes: int = 16 << 20) -> None:
        self.registry = registry
        self.base_url = base_url.rstrip("/") + "/"
        self.verify_reads_max_bytes = verify_reads_max_bytes

    # -- fetch -----------------------------------------------------------------------
    async def checkpoint(self, request: web.Request) -> web.Response:
        signed = await asyncio.to_thread(self.registry.reader.checkpoint)
        return json_response(signed.to_json())

    async def fetch_logs(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reject_unknown(body, ("logLength", "limit", "operator", "packages"))
        log_length = int_field(body, "logLength")
        limit = int_field(body, "limit", maximum=U16, required=False)
        operator = str_field(body, "operator", required=False)
        packages_field = body.get("packages") or {}
        if not isinstance(packages_field, dict):
            raise BodyError(422, "Failed to deserialize the JSON body: `packages` must be an object")
        packages: dict[str, str | None] = {}
        for log_id, token in packages_field.items():
            hash_field(log_id, "a package log id")
            if token is not None and not isinstance(token, str):
                raise BodyError(422, "Failed to deserialize the JSON body: fetch tokens must be strings or null")
            packages[log_id] = token
        assert log_length is not None
        fetched = await asyncio.to_thread(self.registry.reader.fetch_logs, log_length, limit, operator, packages)
        answer: dict[str, Any] = {"more": fetched.more}
        if fetched.operator:
            answer["operator"] = [_published(row) for row in fetched.operator]
        if fetched.packages:
            answer["packages"] = {log_id: [_published(r) for r in rows] for log_id, rows in fetched.packages.items()}
        return json_response(answer)

    async def fetch_names(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reject_unknown(body, ("packages",))
        ids = body.get("packages")
        if not isinstance(ids, list):
            raise BodyError(422, "Failed to deserialize the JSON body: missing field `packages`")
        log_ids = [str(hash_field(item, "a package log id")) for item in ids]
        names = await asyncio.to_thread(self.registry.reader.names, log_ids)
        return json_response({"packages": names})

    # -- packages --------------------------------------------------------------------
    async def publish(self, request: web.Request) -> web.Response:
        log_id = hash_param(request, "logId")
        body = await read_json(request)
        reject_unknown(body, ("packageName", "record", "contentSources"))
        name_text = str_field(body, "packageName")
        assert name_text is not None
        try:
            name = PackageName.parse(name_text)
        except WargFormatError as exc:
            raise BodyError(422, f"Failed to deserialize the JSON body: packageName: {exc.message}") from None
        record = body.get("record")
        if not isinstance(record, dict):
            raise BodyError(422, "Failed to deserialize the JSON body: missing field `record`")
        reject_unknown(record, ("contentBytes", "keyId", "signature"))
        try:
            envelope = Envelope.from_json(record)
        except WargFormatError as exc:
            raise BodyError(422, f"Failed to deserialize the JSON body: record: {exc.message}") from None
        if len(envelope.content_bytes) > 1 << 20:
            raise BodyError(413, "record contentBytes is larger than 1 MiB")
        sources = body.get("contentSources")
        if sources is not None and not isinstance(sources, dict):
            raise BodyError(422, "Failed to deserialize the JSON body: `contentSources` must be an object")
        status = await asyncio.to_thread(
            self.registry.publisher.publish, log_id, name, envelope, content_sources=bool(sources)
        )
        return json_response(self._record_json(str(log_id), status), 202)

    async def record(self, request: web.Request) -> web.Response:
        log_id = str(hash_param(request, "logId"))
        record_id = str(hash_param(request, "recordId"))
        status = await asyncio.to_thread(self.registry.publisher.status, log_id, record_id)
        return json_response(self._record_json(log_id, status))

    async def upload(self, request: web.Request) -> web.Response:
        log_id = str(hash_param(request, "logId"))
        record_id = str(hash_param(request, "recordId"))
        digest = str(hash_param(request, "digest"))
        upload = await asyncio.to_thread(self.registry.publisher.begin_upload, log_id, record_id, digest)
        try:
            async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
                await asyncio.to_thread(upload.write, chunk)
            await asyncio.to_thread(upload.finish)
        except BaseException:
            await asyncio.to_thread(upload.abort)
            raise
        return web.Response(status=201)

    def _record_json(self, log_id: str, status: RecordStatus) -> dict[str, Any]:
        answer: dict[str, Any] = {"recordId": status.record_id, "state": status.state}
        if status.state == "sourcing":
            answer["missingContent"] = {
                digest: {
                    "upload": [
                        {
                            "type": "http",
                            "method": "POST",
                            "url": f"v1/package/{log_id}/record/{status.record_id}/content/{digest}",
                        }
                    ]
                }
                for digest in status.missing
            }
        elif status.state == "rejected":
            answer["reason"] = status.reason
        elif status.state == "published":
            answer["registryIndex"] = status.registry_index
        return answer

    # -- content ---------------------------------------------------------------------
    async def content_sources(self, request: web.Request) -> web.Response:
        digest = str(hash_param(request, "digest"))
        size = await asyncio.to_thread(self.registry.reader.content_size, digest)
        url = f"{self.base_url}content/{digest.replace(':', '-')}"
        source = {"type": "httpGet", "url": url, "acceptRanges": True, "size": size}
        return json_response({"contentSources": {digest: [source]}})

    async def content_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        digest = name.replace("-", ":", 1)
        try:
            reader = await asyncio.to_thread(self.registry.reader.open_content, digest)
        except CairnError:
            raise web.HTTPNotFound() from None
        verify = Digest.parse(digest) if reader.size <= self.verify_reads_max_bytes else None
        if reader.path is not None:
            reader.close()
            headers = {"Content-Type": "application/octet-stream"}
            if verify is not None and is_whole_get(request):
                return await send_verified_file(request, reader.path, reader.size, verify, headers, asyncio.to_thread)
            return web.FileResponse(reader.path, headers=headers)
        try:  # a backend without local files (S3): ranges answered as FileResponse does
            return await send_blob(
                request, reader, {"Content-Type": "application/octet-stream"}, asyncio.to_thread, verify
            )
        finally:
            reader.close()

    # -- proofs and monitor ----------------------------------------------------------
    async def prove_consistency(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reject_unknown(body, ("from", "to"))
        old, new = int_field(body, "from"), int_field(body, "to")
        assert old is not None and new is not None
        bundle = await asyncio.to_thread(self.registry.reader.prove_consistency, old, new)
        return json_response({"proof": b64encode(bundle)})

    async def prove_inclusion(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        reject_unknown(body, ("logLength", "leafs"))
        log_length = int_field(body, "logLength")
        leafs = body.get("leafs")
        if not isinstance(leafs, list):
            raise BodyError(422, "Failed to deserialize the JSON body: missing field `leafs`")
        if len(leafs) > 1000:
            raise BodyError(422, "Failed to deserialize the JSON body: `leafs` has more than 1000 items")
        indexes = [int_field({"leafs": leaf}, "leafs") for leaf in leafs]
        assert log_length is not None
        log_bundle, map_bundle = await asyncio.to_thread(
            self.registry.reader.prove_inclusion, log_length, [i for i in indexes if i is not None]
        )
        return json_response({"log": b64encode(log_bundle), "map": b64encode(map_bundle)})

    async def verify_checkpoint(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            offered = SignedCheckpoint.from_json(body)
        except WargFormatError as exc:
            raise BodyError(422, f"Failed to deserialize the JSON body: {exc.message}") from None
        checkpoint, signature = await asyncio.to_thread(self.registry.reader.verify_checkpoint, offered)
        return json_response({"checkpoint": checkpoint, "signature": signature})

    # -- ledger ----------------------------------------------------------------------
    async def ledger(self, request: web.Request) -> web.Response:
        length = await asyncio.to_thread(self.registry.reader.ledger_length)
        sources = [
            {
                "firstRegistryIndex": start,
                "lastRegistryIndex": min(start + LEDGER_CHUNK, length) - 1,
                "url": f"v1/ledger/records/{start}",
                "contentType": LEDGER_TYPE,
            }
            for start in range(0, length, LEDGER_CHUNK)
        ]
        return json_response({"hashAlgorithm": "sha256", "sources": sources})

    async def ledger_records(self, request: web.Request) -> web.Response:
        try:
            start = int(request.match_info["start"])
        except ValueError:
            raise BodyError(400, "ledger start must be a registry index") from None
        if start < 0:
            raise BodyError(400, "ledger start must be a registry index")
        data = await asyncio.to_thread(self.registry.reader.ledger_records, start)
        return web.Response(body=data, headers={"Content-Type": LEDGER_TYPE})

    # -- discovery -------------------------------------------------------------------
    async def well_known(self, request: web.Request) -> web.Response:
        return json_response({"wargUrl": self.base_url.rstrip("/")})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=_openapi_document(), headers={"Content-Type": "application/json"})


def _published(row: WargRecordRow) -> dict[str, Any]:
    return {
        "contentBytes": b64encode(row.content_bytes),
        "keyId": row.key_id,
        "signature": row.signature,
        "registryIndex": row.registry_index,
        "fetchToken": row.record_id,
    }


@functools.cache
def _openapi_document() -> bytes:
    """The packaged OpenAPI document, read once (it never changes while serving)."""
    return bytes(resources.files("cairn.api.http.warg").joinpath("openapi.json").read_bytes())


@web.middleware
async def _warg_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Warg's error forms for every ``/v1/`` request; other paths pass through untouched."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    if "Warg-Registry" in request.headers:
        return json_response({"status": 501, "message": "`Warg-Registry` header is not supported"}, 501)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return json_response({"status": 404, "message": "the requested resource was not found"}, 404)
    except web.HTTPMethodNotAllowed as exc:
        return json_response({"status": 405, "message": f"method {exc.method} is not allowed here"}, 405)
    except web.HTTPException as exc:
        return json_response({"status": exc.status, "message": exc.reason}, exc.status)
    except (CairnError, BodyError) as exc:
        return error_json(exc)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # noqa: BLE001 - the Warg API answers even a bug with its JSON 500
        return error_json(exc)


def add_warg_routes(
    app: web.Application, registry: WargRegistry, base_url: str, *, verify_reads_max_bytes: int = 16 << 20
) -> None:
    """Serve the Warg API under ``/v1/``; ``base_url`` is where clients reach this server.

    ``verify_reads_max_bytes``: whole content downloads up to this size are checked against their
    digest as they are sent (0: never).
    """
    face = _Face(registry, base_url, verify_reads_max_bytes)
    app.middlewares.append(_warg_json)
    router = app.router
    router.add_get("/v1/fetch/checkpoint", face.checkpoint)
    router.add_post("/v1/fetch/logs", face.fetch_logs)
    router.add_post("/v1/fetch/names", face.fetch_names)
    router.add_post("/v1/package/{logId}/record", face.publish)
    router.add_get("/v1/package/{logId}/record/{recordId}", face.record)
    router.add_post("/v1/package/{logId}/record/{recordId}/content/{digest}", face.upload)
    router.add_get("/v1/content/{digest}", face.content_sources)
    router.add_post("/v1/proof/consistency", face.prove_consistency)
    router.add_post("/v1/proof/inclusion", face.prove_inclusion)
    router.add_post("/v1/verify/checkpoint", face.verify_checkpoint)
    router.add_get("/v1/ledger", face.ledger)
    router.add_get("/v1/ledger/records/{start}", face.ledger_records)
    router.add_get("/v1/openapi.json", face.openapi)
    router.add_get("/content/{file}", face.content_file)
    router.add_get("/.well-known/wasm-pkg/registry.json", face.well_known)
    router.add_route("*", "/v1/{tail:.*}", _unknown)


async def _unknown(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()

