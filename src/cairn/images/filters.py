"""List filters of the image service, as Docker's ``GET /images/json`` takes them.

``filters`` is JSON ``map[string][]string`` (or the legacy
``map[string]map[string]bool``); keys ``dangling``, ``label``, ``reference``,
``before`` and ``since``. Several ``reference`` patterns are ORed, several
``label`` values must all match, different keys are ANDed.

``reference`` patterns are Go ``path.Match`` globs (``*`` and ``?`` stop at
``/``), which ``fnmatch`` is not, hence the small translator here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from cairn.core.errors import InvalidArgumentError

__all__ = ["ImageFilters", "glob_matches", "labels_match", "parse_filters", "reference_matches"]

_KEYS = ("dangling", "label", "reference", "before", "since")


@dataclass(frozen=True, slots=True)
class ImageFilters:
    """Parsed filters; empty tuples mean "not filtered by this key"."""

    dangling: bool | None = None
    labels: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    since: tuple[str, ...] = ()
    raw: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _values(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()):
        return tuple(k for k, v in value.items() if v)
    raise InvalidArgumentError(f"invalid filter '{key}': values must be a list of strings")


def parse_filters(text: str) -> ImageFilters:
    """Parse the request's ``filters`` JSON ("" = none); InvalidArgumentError naming the bad part."""
    if not text:
        return ImageFilters()
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid filters JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError("invalid filters JSON: expected an object of key -> values")
    parsed: dict[str, tuple[str, ...]] = {}
    for key, value in doc.items():
        if key not in _KEYS:
            raise InvalidArgumentError(f"invalid filter '{key}'")
        parsed[key] = _values(key, value)
    dangling: bool | None = None
    if parsed.get("dangling"):
        wanted = {v.lower() for v in parsed["dangling"]}
        if not wanted <= {"true", "false", "1", "0"}:
            raise InvalidArgumentError(
                f"invalid filter 'dangling={sorted(wanted)[0]}': use true or false"
            )
        if len({v in ("true", "1") for v in wanted}) > 1:
            raise InvalidArgumentError("invalid filter 'dangling': both true and false given")
        dangling = next(iter(wanted)) in ("true", "1")
    for pattern in parsed.get("reference", ()):
        _compile(pattern)
    return ImageFilters(
        dangling=dangling,
        labels=parsed.get("label", ()),
        references=parsed.get("reference", ()),
        before=parsed.get("before", ()),
        since=parsed.get("since", ()),
        raw=parsed,
    )


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    """Go ``path.Match`` syntax as a regular expression; InvalidArgumentError for a bad pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i == len(pattern):
                raise InvalidArgumentError(f"invalid reference pattern {pattern!r}: trailing backslash")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "]") else i + 1)
            if end < 0:
                raise InvalidArgumentError(f"invalid reference pattern {pattern!r}: unclosed [")
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append(f"[{'^/' if negate else ''}{re.escape(body).replace(chr(92) + '-', '-')}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def glob_matches(pattern: str, text: str) -> bool:
    return _compile(pattern).fullmatch(text) is not None


def labels_match(wanted: Sequence[str], labels: Mapping[str, str]) -> bool:
    """Every ``key`` or ``key=value`` in ``wanted`` holds for ``labels``."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def reference_matches(patterns: Sequence[str], familiar: Sequence[tuple[str, str]]) -> bool:
    """Any pattern matches ``name:tag`` or ``name`` of any of the image's (name, name:tag) pairs."""
    for pattern in patterns:
        for name, full in familiar:
            if glob_matches(pattern, full) or glob_matches(pattern, name):
                return True
    return False

