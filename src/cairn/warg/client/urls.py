"""Registry URLs: the one normal form, API paths under it, and the plain-http rule.

Every Warg API path is the registry URL joined with ``v1/...`` and every URL a
server hands out (upload targets, content sources) is relative to the registry
URL (specs/warg.md §8.1), so the registry URL must end with ``/`` or a path
prefix would be lost in the join. Normalising it once, here, also gives the state
directory one stable name per registry.

Plain ``http`` is allowed only to loopback hosts unless the user says
``insecure``: the client verifies what it is told, but credentials and the
choice of registry still travel in the clear over http.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, urljoin, urlsplit

from cairn.core.errors import InvalidArgumentError

__all__ = ["DEFAULT_REGISTRY", "api_url", "check_scheme", "is_loopback", "join", "registry_url"]

#: ``cairn serve``'s default HTTP address, where its Warg face answers under ``v1/``.
DEFAULT_REGISTRY = "http://127.0.0.1:8090/"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``), ``127.0.0.0/8`` and ``::1``."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_scheme(url: str, insecure: bool, what: str = "URL") -> None:
    """Refuse ``url`` unless it is https, or http to a loopback host, or http with ``insecure``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"{what} {url!r}: expected an http(s) URL")
    if parts.scheme == "http" and not insecure and not is_loopback(parts.hostname):
        raise InvalidArgumentError(
            f"{what} {url!r}: plain http is allowed only to localhost or a loopback address; "
            "use https, or pass --insecure"
        )


def registry_url(text: str, insecure: bool = False) -> str:
    """The normal form of a registry URL the user gave: scheme, host, path ending in ``/``.

    ``host[:port]`` without a scheme means http for loopback hosts and https
    otherwise (http with ``insecure``). Query and fragment are refused: they
    could not survive joining ``v1/...``.
    """
    given = text.strip()
    if not given:
        raise InvalidArgumentError("registry URL is empty")
    if "://" not in given:
        host = urlsplit(f"//{given}").hostname or ""
        given = f"{'http' if insecure or is_loopback(host) else 'https'}://{given}"
    parts = urlsplit(given)
    if parts.query or parts.fragment:
        raise InvalidArgumentError(f"registry URL {text!r}: a query or fragment is not allowed")
    check_scheme(given, insecure, "registry URL")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return f"{parts.scheme}://{parts.netloc.lower()}{path}"


def join(registry: str, url: str) -> str:
    """A URL the server handed out (relative ``v1/...`` or absolute), made absolute."""
    return urljoin(registry, url)


def api_url(registry: str, *segments: str) -> str:
    """``<registry>v1/<segment>/...``; segments are quoted but keep ``:`` (hash strings)."""
    return registry + "v1/" + "/".join(quote(segment, safe=":") for segment in segments)
