"""RFC 8288 ``Link`` headers, as registries page ``_catalog``, ``tags/list`` and referrers.

Written by hand: urllib3 has no Link parser and ``requests``' one splits on
commas inside quoted parameters; the grammar is small (``<uri>; name="value"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urljoin

from cairn.core.errors import InvalidArgumentError

__all__ = ["next_link", "parse_links"]


def parse_links(values: str | Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """``(uri, params)`` for each link-value of RFC 8288 ``Link`` header values, in order.

    Parameter names are lowercased, values unquoted; URIs are returned as written
    (resolve them against the request URL). Raises only InvalidArgumentError.
    """
    links: list[tuple[str, dict[str, str]]] = []
    for text in [values] if isinstance(values, str) else values:
        links.extend(_links_of(text))
    return links


def _links_of(text: str) -> list[tuple[str, dict[str, str]]]:
    links: list[tuple[str, dict[str, str]]] = []
    pos, end = 0, len(text)

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and text[pos] in chars:
            pos += 1

    while True:
        skip(" \t,")
        if pos >= end:
            return links
        if text[pos] != "<":
            raise InvalidArgumentError(f"Link: expected '<' at {text[pos:]!r}")
        close = text.find(">", pos)
        if close < 0:
            raise InvalidArgumentError(f"Link: unterminated '<' in {text!r}")
        uri, pos = text[pos + 1 : close].strip(), close + 1
        params: dict[str, str] = {}
        while True:
            skip(" \t")
            if pos >= end or text[pos] == ",":
                break
            if text[pos] != ";":
                raise InvalidArgumentError(f"Link: expected ';' or ',' at {text[pos:]!r}")
            pos += 1
            skip(" \t")
            start = pos
            while pos < end and text[pos] not in "=;, \t":
                pos += 1
            name = text[start:pos].lower()
            skip(" \t")
            value = ""
            if pos < end and text[pos] == "=":
                pos += 1
                skip(" \t")
                if pos < end and text[pos] == '"':
                    value, pos = _quoted(text, pos)
                else:
                    start = pos
                    while pos < end and text[pos] not in ";, \t":
                        pos += 1
                    value = text[start:pos]
            if name:
                params.setdefault(name, value)
        links.append((uri, params))


def _quoted(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    pos += 1
    while pos < len(text):
        char = text[pos]
        pos += 1
        if char == '"':
            return "".join(out), pos
        if char == "\\" and pos < len(text):
            char = text[pos]
            pos += 1
        out.append(char)
    raise InvalidArgumentError(f"Link: unterminated quoted string in {text!r}")


def next_link(values: str | Sequence[str], request_url: str) -> str | None:
    """The absolute URL of the ``rel="next"`` link, resolved against ``request_url``, or None.

    ``rel`` may list several relation types (``rel="next last"``); they compare
    case-insensitively. Raises only InvalidArgumentError.
    """
    for uri, params in parse_links(values):
        if "next" in params.get("rel", "").lower().split():
            return urljoin(request_url, uri)
    return None


# -- errors --------------------------------------------------------------------
