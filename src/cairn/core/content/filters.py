"""containerd's filter language, as ``ctr content ls`` and ``ctr content active`` send it.

A request carries a list of filter strings. The list is ORed; inside one string,
selectors separated by ``,`` are ANDed. A selector is ``fieldpath [op value]``:

- ``fieldpath`` is fields joined by ``.``; a field is ``[A-Za-z0-9_]+`` or a
  quoted string (``labels."containerd.io/gc.root"``). The whole path goes to the
  :data:`Fields` lookup as a tuple of segments.
- ``op`` is ``==``, ``!=`` or ``~=`` (an unanchored :func:`re.search`).
- ``value`` is ``[^\\s,]+`` or quoted. Quotes use Go string syntax with ``"``; the
  value of ``~=`` may also be quoted with ``/.../`` or ``|...|``, inside which
  only the delimiter may be escaped and every other backslash is kept for the
  regexp (``/^a\\.b/``).

Matching follows containerd 1.6: a bare fieldpath tests presence, ``==`` needs
presence and equality, and ``!=`` and ``~=`` compare an absent field as ``""``.
Parse errors are :class:`InvalidArgumentError` with containerd's text, e.g.
``filters: parse error: [labels. >|?|< x]: expected field or quoted``.

It is hand-written because no maintained Python library implements containerd's
filter grammar. It is not for other filter dialects (OCI referrers'
``artifactType``, Docker's ``key=value`` filters) and knows nothing about stores:
callers adapt their objects with :func:`content_fields`, :func:`ingest_fields` or
their own :data:`Fields`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

from cairn.core.errors import InvalidArgumentError

__all__ = ["Fields", "Filter", "content_fields", "ingest_fields", "parse_filters"]

Fields = Callable[[tuple[str, ...]], str | None]
"""Looks up a field path (unquoted segments); returns its value, or None when absent."""

_FIELD = re.compile(r"[A-Za-z0-9_]+")
_OPERATOR = re.compile(r"[=!~]+")
_OPERATORS = ("==", "!=", "~=")
_QUOTES = '"/|'
_SIMPLE_ESCAPES = dict(zip('abfnrtv\\"', '\a\b\f\n\r\t\v\\"', strict=True))
_NUMERIC_ESCAPE = re.compile(r"x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}")


class Filter(ABC):
    """A compiled filter; :meth:`match` is cheap and never raises on its own."""

    __slots__ = ()

    @abstractmethod
    def match(self, fields: Fields) -> bool:
        """True if the object that ``fields`` describes is selected."""


class Selector(Filter):
    """One ``fieldpath [op value]`` test; ``op`` is ``""`` for a presence test."""

    __slots__ = ("_regexp", "op", "path", "value")

    def __init__(
        self,
        path: tuple[str, ...],
        op: str = "",
        value: str = "",
        regexp: re.Pattern[str] | None = None,
    ) -> None:
        self.path, self.op, self.value, self._regexp = path, op, value, regexp

    def match(self, fields: Fields) -> bool:
        found = fields(self.path)
        if self.op == "":
            return found is not None
        if self.op == "==":
            return found is not None and found == self.value
        actual = "" if found is None else found  # containerd compares absent as ""
        if self.op == "!=":
            return actual != self.value
        assert self._regexp is not None
        return self._regexp.search(actual) is not None

    def __repr__(self) -> str:
        return f"Selector({self.path!r}, {self.op!r}, {self.value!r})"


class All(Filter):
    """True when every part matches; ``All(())`` matches everything."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Filter]) -> None:
        self.parts = tuple(parts)

    def match(self, fields: Fields) -> bool:
        return all(part.match(fields) for part in self.parts)

    def __repr__(self) -> str:
        return f"All({list(self.parts)!r})"


class Any(Filter):
    """True when at least one part matches; ``Any(())`` matches nothing."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Filter]) -> None:
        self.parts = tuple(parts)

    def match(self, fields: Fields) -> bool:
        return any(part.match(fields) for part in self.parts)

    def __repr__(self) -> str:
        return f"Any({list(self.parts)!r})"


_ALWAYS = All(())


def parse_filters(expressions: Sequence[str]) -> Filter:
    """Parse filter strings, ORed together; raise InvalidArgumentError on bad syntax.

    An empty list, or any element equal to ``""``, matches everything.
    """
    parsed = [_Parser(text).parse() for text in expressions]
    if not parsed or any(f is _ALWAYS for f in parsed):
        return _ALWAYS
    return parsed[0] if len(parsed) == 1 else Any(parsed)


def content_fields(digest: str, labels: Mapping[str, str]) -> Fields:
    """Fields of a committed blob: ``digest``, ``labels.<key>`` and ``size`` (never present).

    As in containerd, a label key is the path after ``labels`` joined with ``.``
    (``labels.a.b`` names the key ``a.b``), and ``digest`` ignores further segments.
    """

    def lookup(path: tuple[str, ...]) -> str | None:
        if not path:
            return None
        if path[0] == "digest":
            return digest
        if path[0] == "labels":
            return labels.get(".".join(path[1:]))
        return None  # "size" is accepted by containerd but not implemented there either

    return lookup


def ingest_fields(ref: str) -> Fields:
    """Fields of an active ingest: only ``ref``."""

    def lookup(path: tuple[str, ...]) -> str | None:
        return ref if path and path[0] == "ref" else None

    return lookup


class _Parser:
    """Recursive descent over one filter string; each method consumes what it names."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, pos: int, reason: str) -> InvalidArgumentError:
        text = self.text
        if pos < len(text):
            marked = f"{text[:pos]} >|{text[pos]}|< {text[pos + 1 :]}"
        else:
            marked = text
        return InvalidArgumentError(f"filters: parse error: [{marked}]: {reason}")

    def peek(self) -> str:
        """Skip whitespace; return the next character, or ``""`` at the end."""
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        self.pos = pos
        return text[pos] if pos < len(text) else ""

    def parse(self) -> Filter:
        if self.text == "":
            return _ALWAYS
        null = self.text.find("\x00")
        if null >= 0:
            raise self.error(null, "unexpected null")
        selectors = [self.selector()]
        while (ch := self.peek()) != "":
            if ch != ",":
                raise self.error(self.pos, f"unexpected input: {ch}")
            self.pos += 1
            selectors.append(self.selector())
        return selectors[0] if len(selectors) == 1 else All(selectors)

    def selector(self) -> Selector:
        path = [self.field()]
        while self.peek() == ".":
            self.pos += 1
            path.append(self.field())
        if self.peek() in ("", ","):
            return Selector(tuple(path))
        op = self.operator()
        value_pos = self.pos
        value = self.value(op == "~=")
        if op != "~=":
            return Selector(tuple(path), op, value)
        try:
            regexp = re.compile(value)
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            raise self.error(value_pos, f"invalid regexp: {exc}") from None
        return Selector(tuple(path), op, value, regexp)

    def field(self) -> str:
        ch = self.peek()
        if ch != "" and ch in _QUOTES:
            return self.quoted(allow_alternates=False)
        found = _FIELD.match(self.text, self.pos)
        if found is None:
            raise self.error(self.pos, "expected field or quoted")
        self.pos = found.end()
        return found.group()

    def operator(self) -> str:
        self.peek()
        found = _OPERATOR.match(self.text, self.pos)
        if found is None:
            raise self.error(self.pos, 'expected an operator ("=="|"!="|"~=")')
        if found.group() not in _OPERATORS:
            raise self.error(self.pos, f'unsupported operator "{found.group()}"')
        self.pos = found.end()
        return found.group()

    def value(self, allow_alternates: bool) -> str:
        ch = self.peek()
        if ch in ("", ","):
            raise self.error(self.pos, "expected value or quoted")
        if ch in _QUOTES:
            return self.quoted(allow_alternates)
        text, start, end = self.text, self.pos, self.pos
        while (
            end < len(text)
            and text[end] != ","
            and not text[end].isspace()
            and text[end].isprintable()
        ):
            end += 1
        if end == start:
            raise self.error(start, "expected value or quoted")
        self.pos = end
        return text[start:end]

    def quoted(self, allow_alternates: bool) -> str:
        """Read the quoted string at ``self.pos`` and return it unquoted."""
        text, start = self.text, self.pos
        quote = text[start]
        out = bytearray()  # Go's \x and octal escapes are bytes; decoded as UTF-8 at the end
        i = start + 1
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.error(start, "quoted literal not terminated")
            ch = text[i]
            if ch == quote:
                break
            if ch != "\\":
                out += ch.encode("utf-8", "surrogatepass")
                i += 1
                continue
            esc = text[i + 1] if i + 1 < len(text) else ""
            if esc in ("", "\n"):
                raise self.error(start, "quoted literal not terminated")
            if quote != '"':  # /.../ and |...|: only the delimiter is an escape
                out += (esc if esc == quote else "\\" + esc).encode("utf-8", "surrogatepass")
                i += 2
            elif esc in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[esc].encode()
                i += 2
            else:
                i = self.numeric_escape(start, i, out)
        self.pos = i + 1
        if quote != '"' and not allow_alternates:
            raise self.error(start, "invalid quote encountered")
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(start, "unquoting failed: invalid UTF-8") from None

    def numeric_escape(self, start: int, i: int, out: bytearray) -> int:
        """Decode the Go escape ``\\x..``, ``\\u....``, ``\\U........`` or ``\\ooo`` at ``i``."""
        found = _NUMERIC_ESCAPE.match(self.text, i + 1)
        if found is None:
            numeric = self.text[i + 1] in "xuU01234567"
            raise self.error(start, f"illegal {'numeric ' if numeric else ''}escape sequence")
        token = found.group()
        code = int(token, 8) if token[0] in "01234567" else int(token[1:], 16)
        if token[0] in "uU" and not (0xD800 <= code <= 0xDFFF or code > 0x10FFFF):
            out += chr(code).encode()  # Go rejects surrogates and runes past U+10FFFF
        elif token[0] not in "uU" and code <= 0xFF:
            out.append(code)  # \x and octal escapes are single bytes
        else:
            raise self.error(start, "illegal numeric escape sequence")
        return found.end()
