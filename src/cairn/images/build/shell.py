"""Dockerfile variable substitution: ``$V``, ``${V}``, ``${V:-d}``, ``${V:+a}`` with quotes and escapes.

Docker does not substitute with a shell: its builder has its own small lexer
(moby/buildkit ``frontend/dockerfile/shell/lex.go``) that expands variables,
removes quotes and escapes, and optionally splits into words, and Dockerfiles in
the wild depend on its exact rules (single quotes are literal, a backslash
escapes only ``"``, ``$`` and itself inside double quotes, an unset variable is
empty, a trailing escape is dropped). No Python library implements those rules:
``shlex`` has no ``${V:-d}`` and different escapes, and ``dockerfile-parse``
substitutes variables without honouring quotes or modifiers. So this module
ports the lexer.

This module does not know which instruction may be expanded or which variables
are in scope; :mod:`cairn.images.build.dockerfile` and the builder decide that.
"""

from __future__ import annotations

from collections.abc import Mapping

from cairn.core.errors import InvalidArgumentError

__all__ = ["process_word", "process_words"]

_EOF = ""


class _Words:
    """Collects characters into words; unquoted whitespace separates words."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self._buf: list[str] = []
        self._in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self._in_word:
                self.words.append("".join(self._buf))
                self._buf = []
                self._in_word = False
        else:
            self._buf.append(ch)
            self._in_word = True

    def add_raw(self, text: str) -> None:
        self._buf.append(text)
        self._in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self._in_word:
            self.words.append("".join(self._buf))
            self._buf = []
            self._in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def error(self, message: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{message} in {self.text!r}")

    def process_stop_on(self, stop: str) -> tuple[str, list[str]]:
        """Scan until ``stop`` (or the end when ``stop`` is empty); returns the word and the split words."""
        result: list[str] = []
        words = _Words()
        while self.peek() != _EOF:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == self.escape:
                self.next()
                ch = self.next()
                if ch == _EOF:
                    break  # an escape at the very end is dropped
                result.append(ch)
                words.add_raw(ch)
            elif ch == "'":
                text = self.single_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == '"':
                text = self.double_quote()
                result.append(text)
                words.add_raw(text)
            elif ch == "$":
                text = self.dollar()
                result.append(text)
                words.add_string(text)
            else:
                self.next()
                result.append(ch)
                words.add_char(ch)
        if stop:
            raise self.error(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        self.next()  # the opening quote
        out: list[str] = []
        while True:
            ch = self.next()
            if ch == _EOF:
                raise self.error("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        self.next()  # the opening quote
        out: list[str] = []
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise self.error("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                following = self.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        out: list[str] = []
        ch = self.peek()
        if ch and ch.isdigit():
            while self.peek() and self.peek().isdigit():
                out.append(self.next())
            return "".join(out)
        while True:
            ch = self.peek()
            if ch == _EOF or not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()  # the {
        if self.peek() == _EOF:
            raise self.error("syntax error: missing '}'")
        if self.peek() in ("{", "}", ":"):
            raise self.error("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        value = self.env.get(name)
        if ch == "}":
            return value or ""
        if ch == ":":
            modifier = self.next()
            word, _ = self.process_stop_on("}")
            if modifier == "-":
                return value if value else word
            if modifier == "+":
                return word if value else ""
            if modifier == "?":
                if not value:
                    raise self.error(f"{name}: {word or 'is not allowed to be unset or empty'}")
                return value
            raise self.error(f"unsupported modifier ({modifier}) in substitution")
        if ch in ("-", "+", "?"):
            word, _ = self.process_stop_on("}")
            if ch == "-":
                return value if value is not None else word
            if ch == "+":
                return word if value is not None else ""
            if value is None:
                raise self.error(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch == _EOF:
            raise self.error("syntax error: missing '}'")
        raise self.error(f"unsupported modifier ({ch}) in substitution")


def process_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """``text`` with variables expanded and quotes and escapes removed, as one word.

    Raises :class:`InvalidArgumentError` for unterminated quotes, bad ``${...}``
    syntax and ``${V?message}`` on an unset variable.
    """
    word, _ = _Lexer(text, env, escape).process_stop_on("")
    return word


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` expanded like :func:`process_word`, then split on unquoted whitespace.

    Whitespace coming from an unquoted variable's value splits too, as in Docker.
    """
    _, words = _Lexer(text, env, escape).process_stop_on("")
    return words
