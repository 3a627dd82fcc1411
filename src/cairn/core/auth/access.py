"""What a caller may do: Docker-style scopes and the per-repository access policy.

A :class:`Scope` is the Docker token grammar's ``type[(class)]:name:action[,action]``
(``repository:team/app:pull,push``, ``registry:catalog:*``). An
:class:`AccessPolicy` answers which of a scope's actions a user holds. It comes
from an optional TOML file of ``[[rule]]`` tables::

    [[rule]]
    users = ["alice", "*"]          # "*": any authenticated user; "anonymous": no credentials
    repositories = ["team/*"]       # fnmatch globs on repository names ("*" also crosses "/")
    actions = ["pull", "push"]      # pull, push, delete; "*": every action

A user's rights on a repository are the union of the rules that name them and
match it; nothing is denied explicitly. Without a file every authenticated
user may do everything and anonymous callers nothing.

``registry:catalog:*`` (listing repositories) is granted to whoever holds
``pull`` through at least one rule: the face filters the listing down to the
repositories the caller may pull, so it reveals nothing more. Other
``registry`` resources are never granted.

This module is not for checking credentials (:mod:`cairn.core.auth.users`) or
for HTTP challenges (the registry face).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from cairn.core.auth.users import ANONYMOUS
from cairn.core.errors import InvalidArgumentError

__all__ = [
    "ACTIONS",
    "AccessPolicy",
    "AccessRule",
    "Scope",
    "load_policy",
    "parse_scope",
    "parse_scopes",
]

#: The actions a rule may name; ``*`` in a rule grants any action, ``*`` itself included.
ACTIONS = frozenset({"pull", "push", "delete", "*"})

#: In a rule's ``users``: any authenticated user (not anonymous callers).
ANY_USER = "*"

_TYPE = re.compile(r"^([a-z0-9]+)(?:\(([a-z0-9]+)\))?\Z")
_ACTION = re.compile(r"^(?:[a-z]+|\*)\Z")


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource and the actions asked for (or granted) on it.

    ``str()`` is the canonical wire text, actions sorted: ``repository:a/b:pull,push``.
    """

    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def with_actions(self, actions: Iterable[str]) -> Scope:
        return Scope(self.type, self.name, frozenset(actions))


def parse_scope(text: str) -> Scope:
    """Parse one scope; InvalidArgumentError names the text when it is not the Docker grammar.

    The first ``:`` ends the type and the last one starts the actions, so a
    name may hold ``:`` (repository names never do). A resource class such as
    ``repository(plugin)`` is accepted and dropped: cairn grants per name.
    """
    kind, sep, rest = text.partition(":")
    name, sep2, actions_text = rest.rpartition(":")
    match = _TYPE.match(kind)
    if not sep or not sep2 or match is None or not name:
        raise InvalidArgumentError(f"scope {text!r} is not type:name:action[,action]")
    actions = frozenset(a for a in actions_text.split(",") if a)
    bad = sorted(a for a in actions if not _ACTION.match(a))
    if bad:
        raise InvalidArgumentError(f"scope {text!r}: bad actions {', '.join(map(repr, bad))}")
    return Scope(match.group(1), name, actions)


def parse_scopes(texts: Iterable[str]) -> tuple[Scope, ...]:
    """Parse scopes given as repeated values and/or space-separated in one value.

    Scopes on the same resource are merged (``repository:a:pull repository:a:push``
    is one scope with both actions), in order of first appearance.
    """
    merged: dict[tuple[str, str], set[str]] = {}
    for text in texts:
        for part in text.split():
            scope = parse_scope(part)
            merged.setdefault((scope.type, scope.name), set()).update(scope.actions)
    return tuple(Scope(kind, name, frozenset(actions)) for (kind, name), actions in merged.items())


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Grant ``actions`` on repositories matching any of ``repositories`` to any of ``users``."""

    users: frozenset[str]
    repositories: tuple[str, ...]
    actions: frozenset[str]

    def applies_to(self, user: str | None) -> bool:
        if user is None:
            return ANONYMOUS in self.users
        return user in self.users or ANY_USER in self.users

    def matches(self, repository: str) -> bool:
        return any(fnmatchcase(repository, pattern) for pattern in self.repositories)


#: Without an access file: every authenticated user may do everything, anonymous callers nothing.
_DEFAULT_RULES = (AccessRule(frozenset({ANY_USER}), ("*",), frozenset({"*"})),)


class AccessPolicy:
    """The rules, and the question they answer: which of a scope's actions may this caller do."""

    def __init__(self, rules: Sequence[AccessRule], source: str = "<default>") -> None:
        self.rules = tuple(rules)
        self.source = source

    @classmethod
    def default(cls) -> AccessPolicy:
        """Every authenticated user may do everything; anonymous callers nothing."""
        return cls(_DEFAULT_RULES)

    def granted(self, user: str | None, scope: Scope) -> frozenset[str]:
        """The subset of ``scope.actions`` that ``user`` (None: anonymous) may do."""
        held: set[str] = set()
        if scope.type == "repository":
            for rule in self.rules:
                if rule.applies_to(user) and rule.matches(scope.name):
                    held |= rule.actions
        elif scope.type == "registry" and scope.name == "catalog":
            if any(rule.applies_to(user) and rule.actions & {"pull", "*"} for rule in self.rules):
                return scope.actions
        if "*" in held:
            return scope.actions
        return scope.actions & held


def load_policy(path: Path | None) -> AccessPolicy:
    """Read an access file (None: the default policy); InvalidArgumentError names file and rule."""
    if path is None:
        return AccessPolicy.default()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidArgumentError(f"access file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgumentError(f"access file {path}: {exc}") from None
    unknown = set(data) - {"rule"}
    if unknown:
        raise InvalidArgumentError(
            f"access file {path}: unknown keys {', '.join(sorted(unknown))} (expected [[rule]] tables)"
        )
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise InvalidArgumentError(f"access file {path}: 'rule' must be [[rule]] tables")
    rules = [_rule(f"access file {path} rule {i}", raw) for i, raw in enumerate(raw_rules, start=1)]
    return AccessPolicy(rules, source=str(path))


def _rule(where: str, raw: Any) -> AccessRule:
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"{where}: must be a table")
    unknown = set(raw) - {"users", "repositories", "actions"}
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    users = _strings(where, raw, "users")
    repositories = _strings(where, raw, "repositories")
    actions = _strings(where, raw, "actions")
    bad = sorted(set(actions) - ACTIONS)
    if bad:
        raise InvalidArgumentError(
            f"{where}: unknown actions {', '.join(map(repr, bad))} (allowed: pull, push, delete, *)"
        )
    return AccessRule(frozenset(users), tuple(repositories), frozenset(actions))


def _strings(where: str, raw: dict[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidArgumentError(f"{where}: {key} must be a non-empty list of non-empty strings")
    return value
