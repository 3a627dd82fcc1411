"""User and group names resolved from an image's own ``/etc/passwd`` and ``/etc/group``.

``USER``, ``COPY --chown`` and ``ADD --chown`` name users of the image, not of
the host, so Python's ``pwd``/``grp`` (which read the host's files) cannot be
used. The files are read through :func:`resolve_in_root`, so a symlinked
``/etc/passwd`` cannot point the builder at a host file. The rules follow
runc's ``GetExecUser`` (USER) and Docker's ``parseChownFlag`` (``--chown``).

This module does not change any process's identity; :mod:`cairn.images.build.run` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cairn.core.errors import FailedPreconditionError, InvalidArgumentError
from cairn.images.build.paths import resolve_in_root

__all__ = ["ExecUser", "resolve_chown", "resolve_user"]

_MAX_ID = 2**32 - 2


@dataclass(frozen=True, slots=True)
class ExecUser:
    """Who a RUN runs as: ids, supplementary groups and home directory."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _read_db(root: Path | None, name: str) -> list[list[str]]:
    if root is None:
        return []
    path = resolve_in_root(root, f"/etc/{name}", follow_final=True)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _numeric(text: str) -> int | None:
    if text.isdigit():
        value = int(text)
        if value > _MAX_ID:
            raise InvalidArgumentError(f"user or group id {text} is out of range")
        return value
    return None


def _find_user(root: Path | None, user: str) -> tuple[str, int, int, str] | None:
    """``(name, uid, gid, home)`` of the passwd entry matching ``user`` by name or uid."""
    number = _numeric(user)
    for fields in _read_db(root, "passwd"):
        if len(fields) < 4:
            continue
        try:
            uid, gid = int(fields[2]), int(fields[3])
        except ValueError:
            continue
        if fields[0] == user or (number is not None and uid == number):
            return fields[0], uid, gid, fields[5] if len(fields) > 5 else "/"
    return None


def _find_group(root: Path | None, group: str) -> int | None:
    number = _numeric(group)
    if number is not None:
        return number
    for fields in _read_db(root, "group"):
        if len(fields) >= 3 and fields[0] == group:
            try:
                return int(fields[2])
            except ValueError:
                continue
    return None


def resolve_user(root: Path | None, spec: str) -> ExecUser:
    """The identity for ``USER spec`` (``user[:group]``, names or ids); root when ``spec`` is empty.

    Raises :class:`FailedPreconditionError` when a name is not in the image's files.
    """
    user, _, group = (spec or "0").partition(":")
    found = _find_user(root, user)
    if found is None:
        number = _numeric(user)
        if number is None:
            raise FailedPreconditionError(
                f"unable to find user {user}: no matching entries in passwd file"
            )
        name, uid, gid, home = "", number, 0, "/"
    else:
        name, uid, gid, home = found
    if group:
        found_gid = _find_group(root, group)
        if found_gid is None:
            raise FailedPreconditionError(
                f"unable to find group {group}: no matching entries in group file"
            )
        gid = found_gid
    supplementary = [gid]
    if name:
        for fields in _read_db(root, "group"):
            if len(fields) >= 4 and name in fields[3].split(","):
                try:
                    extra = int(fields[2])
                except ValueError:
                    continue
                if extra not in supplementary:
                    supplementary.append(extra)
    return ExecUser(uid, gid, tuple(supplementary), home or "/")


def resolve_chown(root: Path | None, spec: str) -> tuple[int, int]:
    """``(uid, gid)`` for ``--chown=user[:group]``; without a group the gid is the uid (Docker's rule).

    Raises :class:`InvalidArgumentError` for a malformed value and
    :class:`FailedPreconditionError` for a name the image does not define.
    """
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgumentError(f"invalid chown string format: {spec}")
    user = parts[0]
    uid = _numeric(user)
    if uid is None:
        found = _find_user(root, user)
        if found is None:
            raise FailedPreconditionError(f"unable to convert uid/gid chown string to host mapping: "
                                          f"can't find uid for user {user}: no such user: {user}")
        uid = found[1]
    if len(parts) == 1:
        return uid, uid
    group = parts[1]
    gid = _find_group(root, group)
    if gid is None:
        raise FailedPreconditionError(f"unable to convert uid/gid chown string to host mapping: "
                                      f"can't find gid for group {group}: no such group: {group}")
    return uid, gid
