"""Reading Warg request bodies and paths as strictly as the reference server does.

specs/warg.md §8.1: a JSON body needs ``Content-Type: application/json``
(else 415); bytes that are not JSON are 400; JSON of the wrong shape, or with
a field the schema does not have, is 422. Path parameters are hash strings
whose ``:`` may arrive raw or as ``%3A`` (aiohttp decodes path parameters).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web

from cairn.api.http.warg.errors import BodyError
from cairn.core.errors import InvalidArgumentError
from cairn.warg.errors import WargFormatError
from cairn.warg.hashes import AnyHash

__all__ = ["hash_param", "int_field", "read_json", "reject_unknown", "str_field"]

#: Largest JSON body read (a record's contentBytes may be 1 MiB, so up to ~1.4 MB of base64).
MAX_JSON_BYTES = 4 << 20
#: Largest uint32 (registry indexes, lengths) and uint16 (fetch limit).
U32 = (1 << 32) - 1
U16 = (1 << 16) - 1


async def read_json(request: web.Request) -> Mapping[str, Any]:
    """The request's JSON object body."""
    media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise BodyError(415, "Expected request with `Content-Type: application/json`")
    data = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > MAX_JSON_BYTES:
            raise BodyError(413, f"request body is larger than {MAX_JSON_BYTES} bytes")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(400, f"Failed to parse the request body as JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BodyError(422, "Failed to deserialize the JSON body: expected an object")
    return body


def reject_unknown(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    for name in body:
        if name not in allowed:
            expected = ", ".join(f"`{n}`" for n in allowed)
            raise BodyError(422, f"Failed to deserialize the JSON body: unknown field `{name}`, expected one of {expected}")


def _missing(name: str) -> BodyError:
    return BodyError(422, f"Failed to deserialize the JSON body: missing field `{name}`")


def int_field(body: Mapping[str, Any], name: str, *, maximum: int = U32, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise BodyError(422, f"Failed to deserialize the JSON body: `{name}` must be an integer from 0 to {maximum}")
    return int(value)


def str_field(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise BodyError(422, f"Failed to deserialize the JSON body: `{name}` must be a string")
    return value


def hash_field(value: Any, what: str) -> AnyHash:
    """A hash string inside a body (422 when malformed: it fails deserialisation)."""
    if not isinstance(value, str):
        raise BodyError(422, f"Failed to deserialize the JSON body: {what} must be a hash string")
    try:
        return AnyHash.parse32(value)
    except WargFormatError as exc:
        raise BodyError(422, f"Failed to deserialize the JSON body: {what}: {exc.message}") from None


def hash_param(request: web.Request, name: str) -> AnyHash:
    """A hash string path parameter (400 when malformed); aiohttp has already decoded ``%3A``."""
    try:
        return AnyHash.parse32(request.match_info[name])
    except WargFormatError as exc:
        raise InvalidArgumentError(f"invalid path parameter `{name}`: {exc.message}") from None
