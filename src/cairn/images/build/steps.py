"""What one build step will do: its ``created_by``, its cache-key inputs, its filesystem change.

A step is prepared before the cache is consulted, because the cache key needs
what the step would do: the instruction after substitution, the build args a
RUN sees, the content hash of COPY/ADD sources. The filesystem change itself
(:data:`FsAction`) runs only on a cache miss, on the stage's root filesystem,
and returns whether a layer is due (WORKDIR only when it creates the
directory, DECISIONS.md image-service 15). The builder owns stages, the cache
and commits; this module owns the per-instruction rules.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.core.errors import FailedPreconditionError, InvalidArgumentError
from cairn.images.build.copy import (
    Source,
    copy_sources,
    download,
    find_sources,
    hash_sources,
    is_url,
    parse_chmod,
)
from cairn.images.build.dockerfile import Instruction
from cairn.images.build.instructions import (
    DEFAULT_PATH,
    Scope,
    apply_config,
    command_form,
    env_map,
    expansion_env,
)
from cairn.images.build.ownership import Ownership
from cairn.images.build.paths import resolve_in_root
from cairn.images.build.run import RunRequest, run_isolated
from cairn.images.build.shell import process_word
from cairn.images.build.users import resolve_chown

__all__ = ["PROXY_ARGS", "FsAction", "Prepared", "prepare_config", "prepare_copy", "prepare_run"]

#: A filesystem change of a step: gets the stage's root, returns whether a layer is due.
FsAction = Callable[[Path], bool]

#: Build args Docker passes to RUN without an ARG and leaves out of history and cache keys.
PROXY_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})


@dataclass(slots=True)
class Prepared:
    """A step ready to look up: history text, extra key parts, the config after it, its fs change."""

    created_by: str
    key_parts: list[str]
    doc: dict[str, Any]
    action: FsAction | None
    running: bool  # printed with " ---> Running in" / "Removing intermediate container"


def prepare_config(instruction: Instruction, doc: dict[str, Any], scope: Scope) -> Prepared:
    """A config-only instruction (and WORKDIR, whose action creates a missing directory)."""
    created_by = apply_config(instruction, doc, scope)
    action = _workdir_action(doc["config"]["WorkingDir"]) if instruction.keyword == "WORKDIR" else None
    return Prepared(created_by, [], doc, action, running=True)


def _workdir_action(path: str) -> FsAction:
    def action(root: Path) -> bool:
        target = resolve_in_root(root, path, follow_final=True)
        if target.exists():
            return False
        target.mkdir(parents=True, mode=0o755)
        os.chmod(target, 0o755)
        return True

    return action


def prepare_run(
    instruction: Instruction, doc: dict[str, Any], scope: Scope, *, build_args: Mapping[str, str],
    container: str, scratch: Path, output: Callable[[str], None], cancelled: Callable[[], bool],
) -> Prepared:
    """RUN: argv (SHELL-wrapped for the shell form), env = Env + ARGs in scope (+ proxy args).

    ``created_by`` is Docker's: ``|N K=V ... /bin/sh -c <cmd>`` when ARGs with
    values are in scope, ``RUN ["argv", ...]`` for the exec form. The action
    raises FailedPreconditionError for a non-zero exit
    (``The command '/bin/sh -c false' returned a non-zero code: 1``).
    """
    inner: dict[str, Any] = doc["config"]
    argv = command_form(instruction, scope.shell)
    env = env_map(inner)
    args = {k: v for k, v in sorted(scope.args.items()) if v is not None and k not in env}
    prefix = f"|{len(args)} " + "".join(f"{k}={v} " for k, v in args.items()) if args else ""
    shown = " ".join(argv) if instruction.exec_form is None else f"RUN {json.dumps(argv)}"
    run_env = [f"{k}={v}" for k, v in env.items()]
    run_env += [f"{k}={v}" for k, v in args.items()]
    run_env += [f"{k}={v}" for k, v in build_args.items() if k in PROXY_ARGS and k not in env]
    scope.consumed.update(k for k in build_args if k in PROXY_ARGS)
    if "PATH" not in env:
        run_env.append(f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in env:
        run_env.append(f"HOSTNAME={container[:12]}")
    request = RunRequest(tuple(argv), tuple(run_env), str(inner.get("User") or ""),
                         str(inner.get("WorkingDir") or "/"), container[:12])

    def action(root: Path) -> bool:
        code = run_isolated(root, request, scratch=scratch, output=output, cancelled=cancelled)
        if code != 0:
            raise FailedPreconditionError(f"The command '{' '.join(argv)}' returned a non-zero code: {code}")
        return True

    return Prepared(prefix + shown, [], doc, action, running=True)


def prepare_copy(
    instruction: Instruction, doc: dict[str, Any], scope: Scope, *,
    source_root: Callable[[str | None], tuple[Path, str]], downloads: Path,
    output: Callable[[str], None], ownership: Ownership, cancelled: Callable[[], bool],
) -> Prepared:
    """COPY/ADD: sources found and hashed now (``source_root(--from)`` gives their root and identity).

    Raises InvalidArgumentError (bad flags, several sources into a non-directory,
    a URL for COPY) naming the line, NotFoundError for missing sources.
    """
    try:
        return _prepare_copy(instruction, doc, scope, source_root, downloads, output, ownership, cancelled)
    except InvalidArgumentError as exc:
        if exc.message.startswith("Dockerfile"):
            raise
        raise InvalidArgumentError(
            f"Dockerfile line {instruction.line}: {instruction.keyword}: {exc.message}") from None


def _prepare_copy(
    instruction: Instruction, doc: dict[str, Any], scope: Scope,
    source_root: Callable[[str | None], tuple[Path, str]], downloads: Path,
    output: Callable[[str], None], ownership: Ownership, cancelled: Callable[[], bool],
) -> Prepared:
    keyword = instruction.keyword
    inner: dict[str, Any] = doc["config"]
    env = expansion_env(inner, scope)

    def word(text: str) -> str:
        return process_word(text, env, scope.escape)

    raw = list(instruction.exec_form) if instruction.exec_form is not None else list(instruction.words)
    words = [word(item) for item in raw]
    patterns, dest = words[:-1], words[-1]
    from_flag, chown, chmod = (word(v) if (v := instruction.flag(f)) is not None else None
                               for f in ("from", "chown", "chmod"))
    mode = parse_chmod(chmod) if chmod else None
    into = dest.endswith("/") or dest in (".", "")
    if not dest.startswith("/"):
        dest = posixpath.join("/", inner.get("WorkingDir") or "/", dest)
    dest = posixpath.normpath(dest)
    if into and dest != "/":
        dest += "/"
    root, origin = source_root(from_flag)
    sources: list[Source] = []
    for pattern in patterns:
        if is_url(pattern):
            if keyword != "ADD":
                raise InvalidArgumentError(f"source can't be a URL for {keyword}: {pattern}")
            output(f"Downloading {pattern}\n")
            sources.append(download(pattern, downloads))
        else:
            sources.extend(find_sources(root, [pattern], keyword))
    digest = hash_sources(sources)
    kind = "multi" if len(sources) > 1 else ("dir" if sources[0].host.is_dir() else "file")
    created_by = " ".join([*scope.shell, "#(nop)", f"{keyword} {kind}:{digest} in {dest} "])
    key_parts = [origin, chown or "", chmod or "", json.dumps(patterns)]

    def action(rootfs: Path) -> bool:
        owner = resolve_chown(rootfs, chown) if chown else None
        copy_sources(sources, dest, rootfs, owner=owner, chmod=mode, extract=keyword == "ADD",
                     instruction=keyword, ownership=ownership, cancelled=cancelled)
        return True

    return Prepared(created_by, key_parts, doc, action, running=False)
