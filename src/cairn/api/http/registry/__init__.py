"""The OCI Distribution ``/v2/`` face: routes, handlers and the OCI error form.

:func:`cairn.api.http.registry.app.add_registry_routes` mounts it on cairn's aiohttp application. Handlers
are thin: they parse the wire (paths, query, headers, bodies), ask the auth gate,
call :mod:`cairn.oci.registry` off the event loop, and write headers the spec
and real clients want.
"""

from __future__ import annotations

__all__: list[str] = []
