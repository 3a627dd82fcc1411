"""``/v2/<name>/manifests/<reference>`` (GET, HEAD, PUT, DELETE) and ``/v2/<name>/referrers/<digest>``.

Accept headers are ignored (DECISIONS.md oci 6): a manifest is always served
as the exact bytes pushed with the media type it was pushed with, so clients
that send six Accept lines, one comma-joined line or ``*`` all get the same.
"""

from __future__ import annotations

import json

from aiohttp import web

from cairn.api.http.registry.bodies import read_limited
from cairn.api.http.registry.context import Face, manifest_url
from cairn.api.http.registry.listing import next_link
from cairn.api.http.registry.paths import Route
from cairn.oci.model import mediatypes
from cairn.oci.registry import check_repository, parse_digest

__all__ = ["delete_manifest", "get_manifest", "list_referrers", "put_manifest"]

#: Referrers per response; more are reached through ``Link`` (DECISIONS.md oci 11).
REFERRERS_PAGE = 1000


async def get_manifest(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull")
    manifests = face.registry.manifests
    if request.method == "HEAD":
        found = await face.run(manifests.head, name, route.arg)
        head = web.StreamResponse(
            headers={"Docker-Content-Digest": str(found.digest), "Content-Type": found.media_type}
        )
        head.content_length = found.size
        return head
    found = await face.run(manifests.get, name, route.arg)
    return web.Response(
        body=found.data,
        headers={"Docker-Content-Digest": str(found.digest), "Content-Type": found.media_type},
    )


async def put_manifest(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "pull", "push")
    manifests = face.registry.manifests
    data = await read_limited(request, manifests.max_bytes)
    content_type = request.headers.get("Content-Type")
    extra_tags = request.query.getall("tag", [])
    pushed = await face.run(manifests.put, name, route.arg, data, content_type, extra_tags)
    response = web.Response(
        status=201,
        headers={"Location": manifest_url(name, pushed.digest), "Docker-Content-Digest": str(pushed.digest)},
    )
    if pushed.subject is not None:
        response.headers["OCI-Subject"] = str(pushed.subject)
    for tag in extra_tags:
        response.headers.add("OCI-Tag", tag)
    return response


async def delete_manifest(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    await face.require(request, name, "delete")
    await face.run(face.registry.manifests.delete, name, route.arg)
    return web.Response(status=202)


async def list_referrers(face: Face, request: web.Request, route: Route) -> web.StreamResponse:
    name = check_repository(route.name)
    subject = parse_digest(route.arg)
    await face.require(request, name, "pull")
    artifact_type = request.query.get("artifactType") or None
    last = request.query.get("last") or None
    found = await face.run(
        face.registry.manifests.referrers, name, subject, artifact_type, last, REFERRERS_PAGE + 1
    )
    body = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [d.to_dict() for d in found[:REFERRERS_PAGE]],
    }
    response = web.Response(body=json.dumps(body).encode(), content_type=mediatypes.OCI_INDEX)
    if artifact_type is not None:
        response.headers["OCI-Filters-Applied"] = "artifactType"
    if len(found) > REFERRERS_PAGE:
        query = {"last": str(found[REFERRERS_PAGE - 1].digest)}
        if artifact_type is not None:
            query["artifactType"] = artifact_type
        response.headers["Link"] = next_link(request.path, query)
    return response
