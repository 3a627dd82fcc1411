"""What each config-only instruction does to an image config, and how history records it.

ENV, LABEL, ARG, USER, EXPOSE, VOLUME, STOPSIGNAL, CMD, ENTRYPOINT, SHELL,
HEALTHCHECK, ONBUILD, MAINTAINER and WORKDIR's config part, with Docker's
rules: variables expanded only where Docker expands them (ENV values all with
the environment from *before* the instruction; ENV wins over ARG), shell-form
CMD/ENTRYPOINT wrapped in the stage's SHELL, ENTRYPOINT clearing an inherited
CMD, EXPOSE port ranges, HEALTHCHECK durations in Go syntax. Each function
returns the ``created_by`` text (``#(nop) ...``, as buildah writes it) and
changes the config dict in place; nothing here touches a filesystem.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.core.errors import InvalidArgumentError
from cairn.images.build.dockerfile import Instruction
from cairn.images.build.shell import process_word, process_words

__all__ = ["DEFAULT_PATH", "Scope", "apply_config", "command_form", "env_map", "expansion_env", "set_env"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


@dataclass(slots=True)
class Scope:
    """A stage's variables: declared ARGs (value None when unset) and the ``SHELL`` in force."""

    escape: str
    build_args: Mapping[str, str]
    meta: Mapping[str, str]
    args: dict[str, str | None] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    cmd_set: bool = False


def env_map(inner: Mapping[str, Any]) -> dict[str, str]:
    """The config's ``Env`` list as a dict (later entries win)."""
    out: dict[str, str] = {}
    for item in inner.get("Env") or []:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def set_env(inner: dict[str, Any], key: str, value: str) -> None:
    """Set ``key=value`` in ``Env``, replacing an existing entry in place."""
    env = list(inner.get("Env") or [])
    for index, item in enumerate(env):
        if str(item).partition("=")[0] == key:
            env[index] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    inner["Env"] = env


def expansion_env(inner: Mapping[str, Any], scope: Scope) -> dict[str, str]:
    """Variables for expanding an instruction: ARGs with values, overridden by ENV."""
    env = {key: value for key, value in scope.args.items() if value is not None}
    env.update(env_map(inner))
    return env


def _duration(text: str, flag: str) -> int:
    if text in ("0", ""):
        return 0
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise InvalidArgumentError(f"HEALTHCHECK --{flag}: invalid duration {text!r}")
    nanos = int(total)
    if 0 < nanos < 1_000_000:
        raise InvalidArgumentError(f"HEALTHCHECK --{flag} cannot be less than 1ms")
    return nanos


def _ports(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        match = _PORT.match(word)
        if not match:
            raise InvalidArgumentError(f"EXPOSE: invalid port specification {word!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        proto = (match.group(3) or "tcp").lower()
        if last < first or last > 65535:
            raise InvalidArgumentError(f"EXPOSE: invalid port range {word!r}")
        out.extend(f"{port}/{proto}" for port in range(first, last + 1))
    return out


def command_form(instruction: Instruction, shell: list[str]) -> list[str]:
    """The argv of a CMD/ENTRYPOINT/RUN: the exec form, or the shell form wrapped in ``shell``."""
    if instruction.exec_form is not None:
        return list(instruction.exec_form)
    return [*shell, instruction.args]


def _arg(instruction: Instruction, inner: dict[str, Any], scope: Scope) -> str:
    shown: list[str] = []
    for name, default in instruction.pairs:
        expanded = None if default is None else process_word(default, expansion_env(inner, scope), scope.escape)
        value: str | None
        if name in scope.build_args:
            value = scope.build_args[name]
        elif expanded is not None:
            value = expanded
        else:
            value = scope.meta.get(name)
        scope.args[name] = value
        scope.consumed.add(name)
        shown.append(name if expanded is None else f"{name}={expanded}")  # the default, never a build arg
    return "ARG " + " ".join(shown)


def apply_config(instruction: Instruction, doc: dict[str, Any], scope: Scope) -> str:
    """Apply a config-only ``instruction`` to ``doc`` (the whole config document); returns created_by.

    Raises :class:`InvalidArgumentError` for bad values (ports, durations,
    substitution syntax), naming the Dockerfile line.
    """
    try:
        return _apply(instruction, doc, scope)
    except InvalidArgumentError as exc:
        if exc.message.startswith("Dockerfile"):
            raise
        raise InvalidArgumentError(f"Dockerfile line {instruction.line}: {instruction.keyword}: "
                                   f"{exc.message}") from None


def _nop(scope: Scope, text: str) -> str:
    return " ".join([*scope.shell, "#(nop)", text])


def _apply(instruction: Instruction, doc: dict[str, Any], scope: Scope) -> str:
    inner: dict[str, Any] = doc.setdefault("config", {})
    keyword = instruction.keyword
    env = expansion_env(inner, scope)

    def word(text: str) -> str:
        return process_word(text, env, scope.escape)

    if keyword == "ARG":
        return _nop(scope, _arg(instruction, inner, scope))
    if keyword in ("ENV", "LABEL"):
        pairs = [(word(k), word(v or "")) for k, v in instruction.pairs]
        for key, value in pairs:
            if keyword == "ENV":
                set_env(inner, key, value)
            else:
                labels = dict(inner.get("Labels") or {})
                labels[key] = value
                inner["Labels"] = labels
        return _nop(scope, f"{keyword} " + " ".join(f"{k}={v}" for k, v in pairs))
    if keyword == "USER":
        inner["User"] = word(instruction.args)
        return _nop(scope, f"USER {inner['User']}")
    if keyword == "WORKDIR":
        path = word(instruction.args)
        if not path.startswith("/"):
            path = posixpath.join(inner.get("WorkingDir") or "/", path)
        inner["WorkingDir"] = posixpath.normpath(path)
        return _nop(scope, f"WORKDIR {inner['WorkingDir']}")
    if keyword == "EXPOSE":
        ports = _ports([p for w in instruction.words for p in process_words(w, env, scope.escape)])
        exposed = dict(inner.get("ExposedPorts") or {})
        exposed.update({port: {} for port in ports})
        inner["ExposedPorts"] = exposed
        return _nop(scope, "EXPOSE " + " ".join(ports))
    if keyword == "VOLUME":
        raw = list(instruction.exec_form) if instruction.exec_form is not None else list(instruction.words)
        volumes = [word(v) for v in raw]
        if not all(v.strip() for v in volumes):
            raise InvalidArgumentError("VOLUME specified can not be an empty string")
        merged = dict(inner.get("Volumes") or {})
        merged.update({v: {} for v in volumes})
        inner["Volumes"] = merged
        return _nop(scope, f"VOLUME {json.dumps(volumes)}")
    if keyword == "STOPSIGNAL":
        inner["StopSignal"] = word(instruction.words[0])
        return _nop(scope, f"STOPSIGNAL {inner['StopSignal']}")
    if keyword in ("CMD", "ENTRYPOINT"):
        argv = command_form(instruction, scope.shell)
        if keyword == "CMD":
            inner["Cmd"] = argv
            scope.cmd_set = True
        else:
            inner["Entrypoint"] = argv
            if not scope.cmd_set:
                inner["Cmd"] = None
        return _nop(scope, f"{keyword} {json.dumps(argv)}")
    if keyword == "SHELL":
        scope.shell = list(instruction.exec_form or ())
        inner["Shell"] = list(scope.shell)
        return _nop(scope, f"SHELL {json.dumps(scope.shell)}")
    if keyword == "HEALTHCHECK":
        inner["Healthcheck"] = _healthcheck(instruction, scope)
        return _nop(scope, f"HEALTHCHECK {instruction.args}")
    if keyword == "ONBUILD":
        inner["OnBuild"] = [*(inner.get("OnBuild") or []), instruction.args]
        return _nop(scope, f"ONBUILD {instruction.args}")
    if keyword == "MAINTAINER":
        doc["author"] = instruction.args
        return _nop(scope, f"MAINTAINER {instruction.args}")
    raise InvalidArgumentError(f"{keyword} is not a config-only instruction")


def _healthcheck(instruction: Instruction, scope: Scope) -> dict[str, Any]:
    trigger = instruction.trigger
    if trigger is None:
        return {"Test": ["NONE"]}
    test = ["CMD", *trigger.exec_form] if trigger.exec_form is not None else ["CMD-SHELL", trigger.args]
    check: dict[str, Any] = {"Test": test}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        value = instruction.flag(flag)
        if value is not None:
            nanos = _duration(value, flag)
            if nanos:
                check[key] = nanos
    retries = instruction.flag("retries")
    if retries is not None:
        if not retries.isdigit():
            raise InvalidArgumentError(f"HEALTHCHECK --retries: invalid number {retries!r}")
        if int(retries):
            check["Retries"] = int(retries)
    return check
