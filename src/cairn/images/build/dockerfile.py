"""Dockerfile syntax: logical lines, instructions, flags, exec vs shell form, stages.

Parsing follows Docker's classic parser (moby/buildkit ``frontend/dockerfile/parser``):
parser directives (``# escape=``) only at the top, comments only at the start of a
line, continuation lines joined with the escape token removed, comment and empty
lines inside a continuation skipped, the keyword case-insensitive, and
``--flag=value`` words extracted before the arguments. ``dockerfile-parse`` was
tried first; its logical-line splitting ends an instruction at an empty line
inside a continuation and silently drops a bare keyword on the last line, and it
has no notion of flags or stages, so the few rules are implemented here instead.

Variables are *not* expanded here (that needs ARG/ENV scope at build time, see
:mod:`cairn.images.build.shell`); every syntax error is raised while parsing, as
:class:`InvalidArgumentError` naming the line, so a bad Dockerfile fails before
the first step runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from cairn.core.errors import InvalidArgumentError

__all__ = ["Dockerfile", "Instruction", "Stage", "iter_instructions", "parse_dockerfile", "parse_instruction"]

_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9._-]*$")
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Flags each instruction accepts; absent instructions take none.
_FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown", "chmod"}),
    "ADD": frozenset({"chown", "chmod"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
    "RUN": frozenset(),
}
#: BuildKit-only flags: named in a clearer error than "Unknown flag".
_BUILDKIT_FLAGS = frozenset({"mount", "network", "security", "link", "parents", "exclude", "checksum",
                             "keep-git-dir"})
_KEYWORDS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
_EXEC_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})


@dataclass(frozen=True, slots=True)
class Instruction:
    """One parsed instruction; string fields are raw (not yet expanded).

    ``exec_form`` is the JSON array form when the instruction was written that
    way; ``pairs`` holds ENV/LABEL/ARG ``(key, value)`` (ARG value ``None`` when
    absent); ``words`` the whitespace-split arguments of FROM, EXPOSE, STOPSIGNAL
    and shell-form COPY/ADD/VOLUME; ``trigger`` the instruction ONBUILD wraps and
    HEALTHCHECK's ``CMD`` (``None`` for ``HEALTHCHECK NONE``).
    """

    keyword: str
    original: str
    line: int
    args: str
    flags: tuple[tuple[str, str | None], ...] = ()
    exec_form: tuple[str, ...] | None = None
    pairs: tuple[tuple[str, str | None], ...] = ()
    words: tuple[str, ...] = ()
    trigger: Instruction | None = None

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (``""`` for a bare ``--name``), or None when absent."""
        for key, value in self.flags:
            if key == name:
                return "" if value is None else value
        return None

    def error(self, message: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"Dockerfile line {self.line}: {self.keyword} {message}")


@dataclass(frozen=True, slots=True)
class Stage:
    """A ``FROM`` and the instructions up to the next one."""

    index: int
    base: str
    name: str | None
    platform: str | None
    from_instruction: Instruction
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A whole Dockerfile: the escape token, the ARGs before the first FROM, and the stages."""

    escape: str
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]

    def stage_index(self, name: str) -> int | None:
        """The index of the stage called ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage.index
        return None


def _syntax(line: int, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"Dockerfile parse error line {line}: {message}")


def _logical_lines(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The escape token and ``(first line number, joined line)`` for each instruction."""
    lines = text.removeprefix("\ufeff").splitlines()
    escape = "\\"
    index = 0
    seen: set[str] = set()
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        if not match:
            break
        key, value = match.group(1).lower(), match.group(2)
        if key in seen:
            raise _syntax(index + 1, f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise _syntax(index + 1, f"invalid escape token '{value}' does not match ` or \\")
            escape = value
        index += 1
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    result: list[tuple[int, str]] = []
    while index < len(lines):
        raw = lines[index]
        index += 1
        stripped = raw.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        start = index
        line, ended = _trim_continuation(stripped, continuation)
        while not ended and index < len(lines):
            raw = lines[index]
            index += 1
            if raw.lstrip().startswith("#") or not raw.strip():
                continue
            part, ended = _trim_continuation(raw, continuation)
            line += part
        result.append((start, line))
    return escape, result


def _trim_continuation(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    match = continuation.search(line)
    if match:
        return line[: match.start()], False
    return line, True


def _split_flags(args: str, line: int) -> tuple[tuple[tuple[str, str | None], ...], str]:
    """Leading ``--name[=value]`` words, quotes removed, and the rest of the arguments."""
    flags: list[tuple[str, str | None]] = []
    rest = args.lstrip()
    while rest.startswith("--"):
        end = 0
        quote = ""
        while end < len(rest):
            ch = rest[end]
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in ("'", '"'):
                quote = ch
            elif ch.isspace():
                break
            end += 1
        if quote:
            raise _syntax(line, f"unterminated quote in flag {rest[:end]!r}")
        word, rest = rest[:end], rest[end:].lstrip()
        name, eq, value = word[2:].partition("=")
        if not name:
            raise _syntax(line, "flag name missing after --")
        flags.append((name.lower(), value.replace('"', "").replace("'", "") if eq else None))
    return tuple(flags), rest


def _parse_json(args: str) -> tuple[str, ...] | None:
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return tuple(value)


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (Docker's ``parseWords``)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    in_word = False
    pos = 0
    while pos < len(rest):
        ch = rest[pos]
        if not in_word:
            if ch.isspace():
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == len(rest):
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            pos += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if pos + 1 == len(rest):
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        word.append(ch)
        pos += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _name_values(keyword: str, rest: str, escape: str, line: int) -> tuple[tuple[str, str | None], ...]:
    words = _parse_words(rest, escape)
    if not words:
        raise _syntax(line, f"{keyword} requires at least one argument")
    if keyword == "ARG":
        pairs: list[tuple[str, str | None]] = []
        for word in words:
            name, eq, value = word.partition("=")
            if not _ARG_NAME.match(name):
                raise _syntax(line, f"ARG names can not be blank or contain symbols: {name!r}")
            pairs.append((name, value if eq else None))
        return tuple(pairs)
    if "=" not in words[0]:
        parts = re.split(r"\s+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise _syntax(line, f"{keyword} must have two arguments")
        return ((parts[0], parts[1]),)
    result: list[tuple[str, str | None]] = []
    for word in words:
        if "=" not in word:
            raise _syntax(line, f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        name, _, value = word.partition("=")
        if not name:
            raise _syntax(line, f"{keyword} names can not be blank")
        result.append((name, value))
    return tuple(result)


def _parse_instruction(line: int, text: str, escape: str, *, nested: bool = False) -> Instruction:
    parts = re.split(r"\s+", text.strip(), maxsplit=1)
    written = parts[0]
    keyword = written.upper()
    rest = parts[1] if len(parts) > 1 else ""
    if keyword not in _KEYWORDS:
        raise _syntax(line, f"unknown instruction: {keyword}")
    flags: tuple[tuple[str, str | None], ...] = ()
    if keyword in _FLAGS:
        flags, rest = _split_flags(rest, line)
        for name, _ in flags:
            if name in _BUILDKIT_FLAGS and name not in _FLAGS[keyword]:
                raise _syntax(line, f"{keyword} --{name} is a BuildKit feature that cairn does not support")
            if name not in _FLAGS[keyword]:
                raise _syntax(line, f"Unknown flag: {name}")
    rest = rest.strip()
    exec_form = _parse_json(rest) if keyword in _EXEC_FORM else None
    words = tuple(re.split(r"\s+", rest)) if rest else ()
    base = Instruction(keyword=keyword, original=text.strip(), line=line, args=rest, flags=flags,
                       exec_form=exec_form, words=words)

    def done(
        *, words: tuple[str, ...] = words, pairs: tuple[tuple[str, str | None], ...] = (),
        trigger: Instruction | None = None,
    ) -> Instruction:
        return replace(base, words=words, pairs=pairs, trigger=trigger)

    if keyword in ("ENV", "LABEL", "ARG"):
        return done(pairs=_name_values(keyword, rest, escape, line), words=())
    if keyword == "FROM":
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise _syntax(line, "FROM requires either one or three arguments")
        if len(words) == 3 and not _STAGE_NAME.match(words[2].lower()):
            raise _syntax(line, f"invalid name for build stage: {words[2]!r}, name can't start with a "
                          "number or contain symbols")
        return done()
    if keyword in ("RUN", "CMD", "ENTRYPOINT"):
        if exec_form is None and not rest:
            raise _syntax(line, f"{keyword} requires at least one argument")
        return done(words=())
    if keyword == "SHELL":
        if not exec_form:
            raise _syntax(line, "SHELL requires the arguments to be in JSON form")
        return done(words=())
    if keyword in ("COPY", "ADD"):
        count = len(exec_form) if exec_form is not None else len(words)
        if count < 2:
            raise _syntax(line, f"{keyword} requires at least two arguments, but got {count}")
        return done()
    if keyword in ("WORKDIR", "USER", "MAINTAINER"):
        if not rest:
            raise _syntax(line, f"{keyword} requires exactly one argument")
        return done(words=())
    if keyword in ("EXPOSE", "VOLUME"):
        if (exec_form is not None and not all(v.strip() for v in exec_form)) or (
            exec_form is None and not words
        ):
            raise _syntax(line, f"{keyword} requires at least one argument")
        return done()
    if keyword == "STOPSIGNAL":
        if len(words) != 1:
            raise _syntax(line, "STOPSIGNAL requires exactly one argument")
        return done()
    if keyword == "HEALTHCHECK":
        kind, _, command = rest.partition(" ")
        if kind.upper() == "NONE":
            if command.strip() or flags:
                raise _syntax(line, "HEALTHCHECK NONE takes no arguments")
            return done(words=())
        if kind.upper() != "CMD":
            raise _syntax(line, f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
        trigger = _parse_instruction(line, "CMD " + command, escape, nested=True)
        return done(words=(), trigger=trigger)
    if keyword == "ONBUILD":
        if nested:
            raise _syntax(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if not rest:
            raise _syntax(line, "ONBUILD requires at least one argument")
        inner = _parse_instruction(line, rest, escape, nested=True)
        if inner.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise _syntax(line, f"{inner.keyword} isn't allowed as an ONBUILD trigger")
        return done(words=(), trigger=inner)
    raise _syntax(line, f"unknown instruction: {keyword}")  # pragma: no cover - table is exhaustive


def parse_instruction(text: str, escape: str = "\\", line: int = 1) -> Instruction:
    """Parse one instruction line (an ONBUILD trigger stored in an image config)."""
    return _parse_instruction(line, text, escape)


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse a whole Dockerfile; raises :class:`InvalidArgumentError` naming the line."""
    escape, lines = _logical_lines(text)
    if not lines:
        raise InvalidArgumentError("Dockerfile parse error: file with no instructions")
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: Instruction | None = None
    body: list[Instruction] = []
    names: set[str] = set()

    def close() -> None:
        if current is None:
            return
        words = current.words
        name = words[2].lower() if len(words) == 3 else None
        if name is not None:
            if name in names:
                raise _syntax(current.line, f"duplicate name {name!r} for build stages")
            names.add(name)
        stages.append(Stage(len(stages), words[0], name, current.flag("platform"), current, tuple(body)))

    for number, text_line in lines:
        instruction = _parse_instruction(number, text_line, escape)
        if instruction.keyword == "FROM":
            close()
            current, body = instruction, []
        elif current is None:
            if instruction.keyword != "ARG":
                raise _syntax(number, f"{instruction.keyword} before the first FROM: no build stage in "
                              "current context")
            meta.append(instruction)
        else:
            body.append(instruction)
    if current is None:
        raise InvalidArgumentError("Dockerfile parse error: no build stage in current context (no FROM)")
    close()
    return Dockerfile(escape, tuple(meta), tuple(stages))


def iter_instructions(dockerfile: Dockerfile) -> Iterator[Instruction]:
    """Every instruction in file order (meta ARGs, then each stage's FROM and body)."""
    yield from dockerfile.meta_args
    for stage in dockerfile.stages:
        yield stage.from_instruction
        yield from stage.instructions
