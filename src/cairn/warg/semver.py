"""Strict SemVer 2.0 versions with a total order that includes build metadata.

Hand-written rather than PyPI ``semver`` because that package (like the SemVer
spec's *precedence*) ignores build metadata when comparing, while Warg follows
Rust's ``semver`` crate: ``1.0.0+a`` and ``1.0.0+b`` are different releases and
must not collide in a package log. The order is the Rust crate's: major, minor,
patch, pre-release (a release sorts after its pre-releases), then build metadata
(none first; numeric identifiers by value, then by length; numeric before
alphanumeric; alphanumeric by ASCII). Parsing is strict: no leading zeros in
numbers or numeric pre-release identifiers, no ``v`` prefix, no empty
identifiers, no whitespace.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from cairn.warg.errors import WargFormatError

__all__ = ["Version"]

_NUM = r"0|[1-9][0-9]*"
_PRE_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_IDENT = r"[0-9A-Za-z-]+"
_PATTERN = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_IDENT}(?:\.{_PRE_IDENT})*))?"
    rf"(?:\+(?P<build>{_BUILD_IDENT}(?:\.{_BUILD_IDENT})*))?",
    re.ASCII,
)
_U64_MAX = 2**64 - 1
_U64_DIGITS = len(str(_U64_MAX))

PreKey = tuple[int, int, str]
BuildKey = tuple[int, int, str, int]


def _pre_key(ident: str) -> PreKey:
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


def _build_key(ident: str) -> BuildKey:
    if ident.isdigit():
        stripped = ident.lstrip("0")
        return (0, len(stripped), stripped, len(ident))
    return (1, 0, ident, 0)


@functools.total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A parsed version; ``str()`` is the original text, equality is exact (build included).

    Strict parsing makes the text unique per version, so equality of the fields
    (the dataclass ``==``) is equality of the text.
    """

    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _PATTERN.fullmatch(text)
        if match is None:
            raise WargFormatError(f"invalid semantic version `{text}`")
        pre = tuple(match["pre"].split(".")) if match["pre"] else ()
        build = tuple(match["build"].split(".")) if match["build"] else ()
        digits = [match["major"], match["minor"], match["patch"], *(p for p in pre if p.isdigit())]
        # Length first: int() refuses more than 4300 digits with a ValueError, and no u64 has 21.
        if max(len(d) for d in digits) > _U64_DIGITS or max(int(d) for d in digits) > _U64_MAX:
            raise WargFormatError(f"invalid semantic version `{text[:80]}`: number too large")
        major, minor, patch = (int(d) for d in digits[:3])
        return cls(major, minor, patch, pre, build)

    def sort_key(self) -> tuple[int, int, int, tuple[int, tuple[PreKey, ...]], tuple[BuildKey, ...]]:
        """The total-order key: a release (no pre-release) after all its pre-releases."""
        pre = (1, ()) if not self.pre else (0, tuple(_pre_key(p) for p in self.pre))
        return (self.major, self.minor, self.patch, pre, tuple(_build_key(b) for b in self.build))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"
