"""``.dockerignore``: which context paths COPY and ADD must not see.

Docker's rules (moby/patternmatcher and ``ignorefile.ReadAll``) differ from
``.gitignore`` and from ``fnmatch``: patterns are cleaned and made relative to
the context root, ``*`` and ``?`` never match ``/``, ``**`` matches any number
of directories, a pattern also excludes everything below a matching directory,
and the *last* matching pattern wins, so ``!keep`` re-includes. ``fnmatch``
lets ``*`` cross ``/`` and has no ``**``; ``pathspec`` implements gitignore
semantics (trailing ``/``, anchoring) that Docker does not have. So the
pattern-to-regex translation is ported here.

This module decides matches only; :mod:`cairn.images.build.context` applies them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from cairn.core.errors import InvalidArgumentError

__all__ = ["IgnoreMatcher", "parse_dockerignore"]

_REGEX_SPECIAL = frozenset(".+()|{}$^")


@dataclass(frozen=True, slots=True)
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(pattern):
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch == "[":
            end = pattern.find("]", i + 1 if i < len(pattern) and pattern[i] in "^!" else i)
            if end < 0:
                raise InvalidArgumentError(f".dockerignore: syntax error in pattern {pattern!r}")
            body = pattern[i:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(ch)
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise InvalidArgumentError(f".dockerignore: syntax error in pattern {pattern!r}: {exc}") from None


def parse_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` file, cleaned as Docker's ``ReadAll`` does."""
    patterns: list[str] = []
    for number, raw in enumerate(text.splitlines()):
        line = raw.removeprefix("\ufeff") if number == 0 else raw
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line.lstrip("/") or "/"
        patterns.append(("!" + line) if invert else line)
    return patterns


class IgnoreMatcher:
    """Docker's ``MatchesOrParentMatches`` over an ordered pattern list."""

    def __init__(self, patterns: list[str]) -> None:
        self._patterns: list[_Pattern] = []
        for text in patterns:
            exclusion = text.startswith("!")
            body = text[1:] if exclusion else text
            if not body:
                raise InvalidArgumentError('.dockerignore: illegal exclusion pattern: "!"')
            self._patterns.append(_Pattern(body, exclusion, _compile(body)))

    @property
    def empty(self) -> bool:
        return not self._patterns

    @property
    def has_exclusions(self) -> bool:
        """Whether some ``!`` pattern could re-include a path below an ignored directory."""
        return any(p.exclusion for p in self._patterns)

    def matches(self, path: str) -> bool:
        """Whether the context-relative ``path`` (``a/b/c``) is ignored."""
        matched = False
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.regex.match(path) is not None
            if not hit:
                for i in range(len(parents)):
                    if pattern.regex.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched
