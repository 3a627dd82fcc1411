"""Canonical JSON exactly as Go's ``encoding/json`` writes a generic value (specs/directory.md §2.1).

A record's CID is the SHA-256 of these bytes, so every byte must match what
upstream's Go server produces: keys sorted by UTF-8 bytes, no whitespace, every
number a double written Go's way, and Go's HTML-safe string escaping.

Speed matters because this runs for every pushed record. The fast path lets the
C encoder of :mod:`json` do the work: a walk first copies the value, turning
every float that Python would spell differently from Go into something it
spells the same (integral doubles below 2**53 become ints, whose text is the
same digits), then the C encoder writes it, then the few characters Go escapes
and Python does not (``< > &`` and U+2028/U+2029, which can only occur inside
strings) are replaced in the finished text. Numbers the fast path cannot
express (exponent forms, integral doubles of 2**53 and above, ``-0``) are rare;
they send the whole value through a plain Python encoder that formats numbers
with :func:`go_float`. Both paths are checked against each other and against
Go's output by the tests.

Lone surrogates (which a Python ``str`` can hold and Go strings cannot) are
written as U+FFFD, as Go does for invalid UTF-8.

This module is not for pretty printing or for JSON with integers wider than a
double: the value model is Go's ``interface{}``, where every number is a float64.
"""

from __future__ import annotations

import _json
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cairn.core.errors import InvalidArgumentError

__all__ = ["canonical_json", "go_float", "parse_canonical", "parse_json"]

_EXACT_INT_LIMIT = 2.0**53
# Go escapes these inside strings and Python does not; none can occur outside a string.
_GO_EXTRA_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _unencodable(value: object) -> object:
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


# The C encoder, called directly: json.dumps builds a new one (with a table for spotting
# circular references, which a fresh copy cannot have) on every call, and that costs about
# as much as the encoding itself for a small record.
_c_encoder = _json.make_encoder(
    None, _unencodable, _json.encode_basestring, None, ":", ",", True, False, False
)
_encode_string = _json.encode_basestring


def _encode_fast(value: object) -> str:
    return "".join(_c_encoder(value, 0))


class _NeedsSlowPath(Exception):
    """The fast path met a value it cannot write Go's way through the C encoder."""


def canonical_json(value: object) -> bytes:
    """Go ``encoding/json`` bytes of ``value`` (dict/list/tuple/str/bool/None/float/int).

    Ints are converted to doubles first, as a ``google.protobuf.Struct`` does.
    Raises :class:`InvalidArgumentError` for NaN, infinities, ints too large for
    a double, non-string keys and other types, and nesting too deep to walk.
    """
    try:
        try:
            text = _encode_fast(_prepare(value))
        except _NeedsSlowPath:
            parts: list[str] = []
            _encode_slow(value, parts)
            text = "".join(parts)
    except RecursionError:
        raise InvalidArgumentError("JSON value is nested too deeply") from None
    return _finish(text, value)


def _finish(text: str, value: object) -> bytes:
    """Apply the escapes Go adds to Python's output, then encode as UTF-8."""
    for char, escape in _GO_EXTRA_ESCAPES:
        if char in text:
            text = text.replace(char, escape)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return canonical_json(_replace_surrogates(value))


def go_float(number: float) -> str:
    """``number`` as Go's ``encoding/json`` writes a float64.

    Shortest round-trip digits (those of ``repr``); exponent form only when the
    magnitude is below 1e-6 or at least 1e21, with an explicit sign and no
    leading zeros in the exponent; ``-0`` for negative zero.
    """
    if math.isnan(number) or math.isinf(number):
        raise InvalidArgumentError(f"JSON cannot represent the number {number!r}")
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    sign = "-" if number < 0 else ""
    mantissa, _, exponent_text = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    # The value is 0.<digits> * 10**point, with no leading or trailing zeros in digits.
    digits = whole + fraction
    point = len(whole) + (int(exponent_text) if exponent_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    magnitude = abs(number)
    if magnitude < 1e-6 or magnitude >= 1e21:
        exponent = point - 1
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _reject_constant(name: str) -> object:
    raise InvalidArgumentError(f"invalid JSON: {name} is not a JSON value")


def _parse_number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidArgumentError(f"invalid JSON: number {text[:40]} is out of the range of a double")
    return value


_DECODER = json.JSONDecoder(
    parse_float=_parse_number, parse_int=_parse_number, parse_constant=_reject_constant
)


def parse_json(text: bytes | bytearray | memoryview | str) -> object:
    """Parse JSON text the way Go's ``json.Unmarshal`` into ``interface{}`` does.

    Every number, integers included, becomes a float. A duplicate key keeps its
    last value. NaN and Infinity are refused, and so is a number out of a
    double's range; lone surrogate escapes become U+FFFD. Input bytes must be
    UTF-8 without a BOM. Errors are :class:`InvalidArgumentError` with the position.
    """
    source = _source(text)
    try:
        value = _DECODER.decode(source)
    except json.JSONDecodeError as exc:
        raise _syntax_error(exc) from None
    except RecursionError:
        raise InvalidArgumentError("invalid JSON: nested too deeply") from None
    if _SURROGATE_ESCAPE.search(source):
        value = _replace_surrogates(value)
    return value


def _fast_number(text: str) -> float | int:
    value = float(text)
    try:
        return _prepare_float(value)
    except _NeedsSlowPath:
        if math.isinf(value):
            raise InvalidArgumentError(
                f"invalid JSON: number {text[:40]} is out of the range of a double"
            ) from None
        raise


_FAST_DECODER = json.JSONDecoder(
    parse_float=_fast_number, parse_int=_fast_number, parse_constant=_reject_constant
)


def parse_canonical(text: bytes | bytearray | memoryview | str) -> tuple[object, bytes]:
    """Parse JSON text and canonicalise it in one go: ``(value, canonical bytes)``.

    The bytes equal ``canonical_json(parse_json(text))``, but the common case
    costs a parse and an encode with no walk in between, because numbers are
    converted to their Go-printable form while parsing. In the value, a number
    is an ``int`` where the double is integral and below 2**53 and a ``float``
    otherwise (either way it stands for the same double). Errors as
    :func:`parse_json`.
    """
    source = _source(text)
    if not _SURROGATE_ESCAPE.search(source):
        try:
            value = _FAST_DECODER.decode(source)
        except _NeedsSlowPath:
            pass
        except json.JSONDecodeError as exc:
            raise _syntax_error(exc) from None
        except RecursionError:
            raise InvalidArgumentError("invalid JSON: nested too deeply") from None
        else:
            try:
                text_out = _encode_fast(value)
            except RecursionError:
                raise InvalidArgumentError("JSON value is nested too deeply") from None
            return value, _finish(text_out, value)
    value = parse_json(source)
    return value, canonical_json(value)


def _source(text: bytes | bytearray | memoryview | str) -> str:
    if isinstance(text, str):
        source = text
    else:
        try:
            source = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError(f"invalid JSON: not UTF-8 at byte {exc.start}") from None
    if source.startswith("\ufeff"):
        raise InvalidArgumentError("invalid JSON: starts with a byte order mark (BOM)")
    return source


def _syntax_error(exc: json.JSONDecodeError) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}"
    )


def _prepare(value: object) -> object:
    """A copy ``json.dumps`` writes exactly as Go would, or raise _NeedsSlowPath."""
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        out: dict[str, object] = {}
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise _NeedsSlowPath
            out[key] = item if type(item) is str else _prepare(item)
        return out
    if kind is list:
        return [item if type(item) is str else _prepare(item) for item in value]  # type: ignore[attr-defined]
    if kind is float:
        return _prepare_float(value)  # type: ignore[arg-type]
    if value is None or kind is bool:
        return value
    if kind is int:
        try:
            return _prepare_float(float(value))  # type: ignore[arg-type]
        except OverflowError:
            raise _NeedsSlowPath from None
    raise _NeedsSlowPath


def _prepare_float(number: float) -> float | int:
    if number.is_integer():
        # Integral doubles below 2**53 are printed exactly by Go; int() prints the same digits.
        if -_EXACT_INT_LIMIT < number < _EXACT_INT_LIMIT and (number or math.copysign(1.0, number) > 0):
            return int(number)
        raise _NeedsSlowPath
    # Non-integral doubles with 1e-4 <= |x| (< 2**52) are positional in repr, as in Go.
    if 1e-4 <= abs(number) < 1e16:
        return number
    raise _NeedsSlowPath  # exponent form in repr, NaN or infinity: the slow path decides


def _encode_slow(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_encode_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, float):
        out.append(go_float(value))
    elif isinstance(value, int):
        try:
            out.append(go_float(float(value)))
        except OverflowError:
            raise InvalidArgumentError(f"JSON number {value} is out of the range of a double") from None
    elif isinstance(value, Mapping):
        items: list[tuple[str, Any]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(f"JSON object keys must be strings, not {type(key).__name__}")
            items.append((key, item))
        items.sort(key=lambda pair: pair[0])
        out.append("{")
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            out.append(_encode_string(key))
            out.append(":")
            _encode_slow(item, out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode_slow(item, out)
        out.append("]")
    else:
        raise InvalidArgumentError(f"cannot encode a {type(value).__name__} as JSON")


def _replace_surrogates(value: object) -> object:
    """A copy with lone surrogates replaced by U+FFFD; a key that collides keeps the last value."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {
            _SURROGATE.sub("\ufffd", key) if isinstance(key, str) else key: _replace_surrogates(item)
            for key, item in value.items()
        }
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_replace_surrogates(item) for item in value]
    return value
