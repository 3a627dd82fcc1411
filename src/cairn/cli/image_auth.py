"""Registry credentials for ``cairn image pull|push``: Docker's ``X-Registry-Auth`` encoding.

The image service takes credentials as one string per call
(``PullImageRequest.auth``, ``PushImageRequest.auth``): Docker's
``X-Registry-Auth`` value, the URL-safe base64 (padded) of a JSON object with
``username``, ``password`` and ``serveraddress`` (and ``identitytoken`` or
``registrytoken`` when a credentials file holds one). :func:`encode_auth`
builds it the way the docker CLI does (Go's ``json.Marshal`` field order,
``base64.URLEncoding``); the server reads it with
:func:`cairn.images.credentials.decode_auth`.

:func:`credentials_from_file` reads a docker ``config.json`` or containers
``auth.json`` with the server's own :class:`~cairn.images.credentials.CredentialsFile`
(Docker Hub under any of its names, ``host/namespace`` keys most specific
first). Credential helpers (``credsStore``, ``credHelpers``) are not run; when
a file defers the registry to one, the error says so.

This module only encodes and looks up; deciding which registry to talk to and
checking credentials are the server's work.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cairn.core.errors import CairnError, InvalidArgumentError
from cairn.images.credentials import Credentials, CredentialsFile, normalize_registry
from cairn.oci.model import Reference

__all__ = ["Credentials", "credentials_from_file", "encode_auth"]


def encode_auth(credentials: Credentials) -> str:
    """URL-safe base64 of ``{"username","password","serveraddress",...}``, empty fields left out.

    The field order is Go's ``types.AuthConfig`` order, so the value is byte for
    byte what ``docker`` sends for the same credentials.
    """
    fields = (
        ("username", credentials.username),
        ("password", credentials.password),
        ("serveraddress", credentials.server_address),
        ("identitytoken", credentials.identity_token),
        ("registrytoken", credentials.registry_token),
    )
    document = {key: value for key, value in fields if value}
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(data).decode("ascii")


def credentials_from_file(path: Path, reference: Reference) -> Credentials | None:
    """The credentials ``path`` holds for ``reference``'s registry, or None when it has none.

    ``server_address`` is set to the registry. InvalidArgumentError naming the
    file when it is unreadable or malformed, or when a credential helper keeps
    the registry's credentials.
    """
    try:
        found = CredentialsFile.load(path).lookup(reference.registry, reference.repository)
    except CairnError as exc:
        raise InvalidArgumentError(exc.message) from None
    if found is not None:
        return Credentials(
            username=found.username,
            password=found.password,
            identity_token=found.identity_token,
            registry_token=found.registry_token,
            server_address=reference.registry,
        )
    helper = _helper_for(path, reference.registry)
    if helper:
        raise InvalidArgumentError(
            f"{path}: the credentials for {reference.registry} are kept by the credential helper "
            f"{helper!r}, which cairn does not run; give --username/--password instead"
        )
    return None


def _helper_for(path: Path, registry: str) -> str:
    """The credential helper ``path`` names for ``registry`` (``credHelpers``, else ``credsStore``), or ""."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return ""
    if not isinstance(document, dict):
        return ""
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if normalize_registry(str(key)) == registry and isinstance(name, str) and name:
                return name
    store = document.get("credsStore")
    return store if isinstance(store, str) else ""
