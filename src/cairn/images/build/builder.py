"""Build: run a Dockerfile's stages and steps the way Docker's classic builder does.

Each instruction is one step; each step after FROM yields an image recorded
with its parent (no references), so the chain is the classic builder's
intermediate images. RUN, COPY and ADD always add a layer, WORKDIR only when it
creates the directory (DECISIONS.md image-service 15), everything else adds an
``empty_layer`` history entry. Before a step runs, its cache key (the parent
image id, the platform, the instruction after substitution with the build args
in scope, and for COPY/ADD a hash of the sources' names, modes and bytes) is
looked up in the store's build cache; a hit reuses that image and prints
``---> Using cache``.

The root filesystem of a stage is unpacked only when a step needs it (a cache
miss of RUN, COPY, ADD or WORKDIR, or another stage's ``COPY --from``); after a
cache hit the reused layers are applied to it if it exists. Everything lives in
a private directory under the caller's ``workdir`` that is removed at the end,
whatever happened.
"""

from __future__ import annotations

import copy
import logging
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import CancelledError, InvalidArgumentError, NotFoundError
from cairn.images.build.commit import LayerWriter, commit_image, now_rfc3339, oci_layer
from cairn.images.build.context import apply_dockerignore, receive_context
from cairn.images.build.diff import Snapshot, take_snapshot, wait_past, write_diff
from cairn.images.build.dockerfile import Dockerfile, Instruction, Stage, parse_dockerfile, parse_instruction
from cairn.images.build.ignore import IgnoreMatcher, parse_dockerignore
from cairn.images.build.instructions import DEFAULT_PATH, Scope
from cairn.images.build.ownership import Ownership
from cairn.images.build.params import BaseResolver, BuildEvent, BuildParams
from cairn.images.build.paths import in_root_relative, resolve_in_root
from cairn.images.build.rootfs import open_layer_tar, unpack_layer, unpack_layers
from cairn.images.build.shell import process_word
from cairn.images.build.steps import PROXY_ARGS, FsAction, Prepared, prepare_config, prepare_copy, prepare_run
from cairn.images.model import ImageRecord, LayerRecord
from cairn.images.platform import Platform
from cairn.images.references import parse_reference, repo_tag
from cairn.images.store import ImageStore, cache_key
from cairn.oci.model import Reference

__all__ = ["build"]

log = logging.getLogger(__name__)

_CACHE_VERSION = "cairn-build-v1"
_MAX_DOCKERFILE = 16 << 20
#: Top-level config fields that describe the base's own build, not ours.
_DROPPED = ("created", "rootfs", "history", "container", "container_config", "docker_version", "id", "parent")
_CONFIG_ONLY = frozenset({
    "ARG", "ENV", "LABEL", "USER", "EXPOSE", "VOLUME", "STOPSIGNAL", "CMD", "ENTRYPOINT", "SHELL",
    "HEALTHCHECK", "ONBUILD", "MAINTAINER", "WORKDIR",
})


@dataclass(slots=True)
class _StageState:
    index: int
    name: str | None
    scope: Scope
    platform: Platform | None
    image: ImageRecord | None = None
    doc: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerRecord] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    rootfs: Path | None = None
    snapshot: Snapshot | None = None


def build(
    store: ImageStore,
    context: Iterable[bytes],
    params: BuildParams,
    *,
    resolve_base: BaseResolver,
    events: Callable[[BuildEvent], None],
    workdir: Path,
    cancelled: Callable[[], bool] = lambda: False,
) -> ImageRecord:
    """Build an image from a context tar stream; returns the final image (tagged with ``params.tags``).

    Blocks until done; events are Docker classic-builder ``stream`` lines and a
    last ``aux`` with ``sha256:<id>``. Raises cairn errors: InvalidArgumentError
    (Dockerfile syntax with the line, bad tags, bad context archive),
    NotFoundError (no Dockerfile, missing COPY source, unknown base image),
    FailedPreconditionError (RUN cannot be isolated here, or a RUN failed:
    ``The command '/bin/sh -c false' returned a non-zero code: 1``),
    CancelledError. Works in a private directory under ``workdir``, removed on return.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=workdir))
    try:
        return _Build(store, params, resolve_base, events, scratch, cancelled).run(context)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _tags(params: BuildParams) -> list[Reference]:
    refs: list[Reference] = []
    for text in params.tags:
        ref = parse_reference(text)
        if ref.digest is not None:
            raise InvalidArgumentError(f"invalid tag {text!r}: a digest cannot be used as a tag")
        refs.append(Reference(ref.registry, ref.repository, ref.tag_or_latest()))
    return refs


class _Build:
    def __init__(
        self, store: ImageStore, params: BuildParams, resolve_base: BaseResolver,
        events: Callable[[BuildEvent], None], scratch: Path, cancelled: Callable[[], bool],
    ) -> None:
        self.store = store
        self.params = params
        self.resolve_base = resolve_base
        self.events = events
        self.scratch = scratch
        self.cancelled = cancelled
        self.context = scratch / "context"
        self.platform = Platform.parse(params.platform) if params.platform else None
        self.stages: list[_StageState] = []
        self.consumed: set[str] = set()
        self.image_roots: dict[str, Path] = {}
        self.step = 0
        self.total = 0
        self.escape = "\\"
        self.dirs = 0
        self.ownership = Ownership()

    # -- plumbing ----------------------------------------------------------------
    def say(self, text: str) -> None:
        self.events(BuildEvent(stream=text))

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise CancelledError("build cancelled")

    def new_dir(self, prefix: str) -> Path:
        self.dirs += 1
        path = self.scratch / f"{prefix}-{self.dirs}"
        path.mkdir(parents=True)
        return path

    # -- the whole build ---------------------------------------------------------
    def run(self, context: Iterable[bytes]) -> ImageRecord:
        tags = _tags(self.params)
        self.context.mkdir()
        receive_context(context, self.context, ownership=self.ownership, cancelled=self.cancelled)
        dockerfile = self._read_dockerfile()
        self.escape = dockerfile.escape
        stages = self._stages_to_build(dockerfile)
        self.total = len(dockerfile.meta_args) + sum(1 + len(s.instructions) for s in stages)
        meta = self._meta_args(dockerfile)
        for stage in stages:
            self.check_cancelled()
            self._run_stage(stage, meta)
        final = self.stages[-1].image
        if final is None:
            raise InvalidArgumentError("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.params.build_args if k not in self.consumed and k not in PROXY_ARGS)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        for ref in tags:
            self.store.set_reference(ref, final.id)
        self.say(f"Successfully built {final.short_id()}\n")
        for ref in tags:
            self.say(f"Successfully tagged {repo_tag(ref)}\n")
        self.events(BuildEvent(aux=str(final.id)))
        log.info("built image %s in %d steps", final.id, self.step, extra={"digest": str(final.id)})
        return final

    def _read_dockerfile(self) -> Dockerfile:
        name = self.params.dockerfile or "Dockerfile"
        path = resolve_in_root(self.context, in_root_relative(name), follow_final=True)
        if name == "Dockerfile" and not path.exists():
            path = resolve_in_root(self.context, "dockerfile", follow_final=True)  # the CLI's fallback
        try:
            if path.stat().st_size > _MAX_DOCKERFILE:
                raise InvalidArgumentError(f"Dockerfile {name} is larger than {_MAX_DOCKERFILE} bytes")
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError(f"Cannot locate specified Dockerfile: {name}") from None
        ignore = resolve_in_root(self.context, ".dockerignore", follow_final=True)
        if ignore.is_file():
            patterns = parse_dockerignore(ignore.read_text(encoding="utf-8", errors="replace"))
            apply_dockerignore(self.context, IgnoreMatcher(patterns))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgumentError(f"Dockerfile {name} is not UTF-8 text") from None
        return parse_dockerfile(text)

    def _stages_to_build(self, dockerfile: Dockerfile) -> tuple[Stage, ...]:
        target = self.params.target
        if not target:
            return dockerfile.stages
        index = dockerfile.stage_index(target)
        if index is None:
            raise InvalidArgumentError(f"failed to reach build target {target} in Dockerfile")
        return dockerfile.stages[: index + 1]

    def _announce(self, instruction: Instruction) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {instruction.original}\n")

    def _meta_args(self, dockerfile: Dockerfile) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in dockerfile.meta_args:
            self._announce(instruction)
            for name, default in instruction.pairs:
                self.consumed.add(name)
                if name in self.params.build_args:
                    values[name] = self.params.build_args[name]
                elif default is not None:
                    values[name] = process_word(default, values, self.escape)
        return values

    # -- stages ------------------------------------------------------------------
    def _find_stage(self, name: str) -> _StageState | None:
        lowered = name.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        return None

    def _run_stage(self, stage: Stage, meta: dict[str, str]) -> None:
        self._announce(stage.from_instruction)
        try:
            base_text = process_word(stage.base, meta, self.escape)
            platform_text = process_word(stage.platform, meta, self.escape) if stage.platform else ""
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"Dockerfile line {stage.from_instruction.line}: FROM: {exc.message}") from None
        platform = Platform.parse(platform_text) if platform_text else self.platform
        scope = Scope(self.escape, self.params.build_args, meta, consumed=self.consumed)
        state = _StageState(stage.index, stage.name, scope, platform)
        if base_text.lower() == "scratch":
            host = platform or Platform.host()
            state.doc = {"architecture": host.architecture, "os": host.os}
            if host.variant:
                state.doc["variant"] = host.variant
            state.doc["config"] = {"Env": [f"PATH={DEFAULT_PATH}"]}
        else:
            prior = self._find_stage(base_text)
            base = prior.image if prior is not None else self.resolve_base(base_text, platform)
            if base is None:
                raise InvalidArgumentError(f"FROM {base_text}: that stage produced no image")
            self._adopt_base(state, base)
            self.say(f" ---> {base.short_id()}\n")
        self.stages.append(state)
        triggers = list(state.doc.get("config", {}).pop("OnBuild", None) or [])
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                self.check_cancelled()
                self._step(state, parse_instruction(str(text), self.escape, stage.from_instruction.line))
        for instruction in stage.instructions:
            self.check_cancelled()
            self._announce(instruction)
            self._step(state, instruction)

    def _adopt_base(self, state: _StageState, base: ImageRecord) -> None:
        doc = self.store.config_json(base)
        history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
        layered = sum(1 for h in history if not h.get("empty_layer"))
        for _ in range(len(base.layers) - layered):
            history.append({"created": doc.get("created", ""), "created_by": ""})
        for key in _DROPPED:
            doc.pop(key, None)
        doc.setdefault("config", {})
        if not isinstance(doc["config"], dict):
            doc["config"] = {}
        shell = doc["config"].get("Shell")
        if isinstance(shell, list) and shell:
            state.scope.shell = [str(part) for part in shell]
        state.doc = doc
        state.history = history
        state.layers = [oci_layer(layer) for layer in base.layers]
        state.image = base

    # -- steps -------------------------------------------------------------------
    def _step(self, state: _StageState, instruction: Instruction) -> None:
        container = secrets.token_hex(32)
        prepared = self._prepare(state, instruction, container)
        parent = str(state.image.id) if state.image is not None else "scratch"
        platform = str(state.platform) if state.platform else ""
        key = cache_key(_CACHE_VERSION, parent, platform, instruction.keyword, prepared.created_by,
                        *prepared.key_parts)
        if not self.params.no_cache:
            cached = self.store.cache_get(key)
            if cached is not None and cached.parent == (state.image.id if state.image else None):
                self.say(" ---> Using cache\n")
                self._adopt_cached(state, cached)
                self.say(f" ---> {cached.short_id()}\n")
                return
        if prepared.running:
            self.say(f" ---> Running in {container[:12]}\n")
        now = now_rfc3339()
        entry: dict[str, Any] = {"created": now, "created_by": prepared.created_by}
        layer = self._apply_fs(state, prepared.action) if prepared.action is not None else None
        if layer is None:
            entry["empty_layer"] = True
        else:
            state.layers.append(layer)
        state.doc = prepared.doc
        state.history.append(entry)
        image = commit_image(self.store, self._document(state, now), state.layers,
                             parent=state.image.id if state.image is not None else None)
        state.image = image
        self.store.cache_put(key, image.id)
        if prepared.running:
            self.say(f"Removing intermediate container {container[:12]}\n")
        self.say(f" ---> {image.short_id()}\n")

    def _document(self, state: _StageState, created: str) -> dict[str, Any]:
        doc = state.doc
        out: dict[str, Any] = {"created": created}
        for key in ("author", "architecture", "os", "os.version", "os.features", "variant"):
            if key in doc:
                out[key] = doc[key]
        out["config"] = doc.get("config", {})
        out["rootfs"] = {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in state.layers]}
        out["history"] = state.history
        for key, value in doc.items():
            out.setdefault(key, value)
        return out

    def _adopt_cached(self, state: _StageState, cached: ImageRecord) -> None:
        doc = self.store.config_json(cached)
        history = [h for h in doc.get("history") or [] if isinstance(h, dict)]
        for key in _DROPPED:
            doc.pop(key, None)
        doc.setdefault("config", {})
        previous = [layer.digest for layer in state.layers]
        layers = [oci_layer(layer) for layer in cached.layers]
        if state.rootfs is not None:
            if [layer.digest for layer in layers[: len(previous)]] == previous:
                for layer in layers[len(previous):]:
                    what = f"layer {layer.digest}"
                    with self.store.open_blob(layer.digest) as reader, open_layer_tar(reader, what) as archive:
                        unpack_layer(archive, state.rootfs, what, ownership=self.ownership,
                                     cancelled=self.cancelled)
            else:
                shutil.rmtree(state.rootfs, ignore_errors=True)
                state.rootfs = None
            state.snapshot = None
        state.doc, state.history, state.layers, state.image = doc, history, layers, cached

    def _rootfs(self, state: _StageState) -> Path:
        if state.rootfs is None:
            path = self.new_dir(f"rootfs-{state.index}")
            unpack_layers(lambda layer: self.store.open_blob(layer.digest), state.layers, path,
                          ownership=self.ownership, cancelled=self.cancelled)
            state.rootfs, state.snapshot = path, None
        return state.rootfs

    def _apply_fs(self, state: _StageState, action: FsAction) -> LayerRecord | None:
        root = self._rootfs(state)
        if state.snapshot is None:
            state.snapshot = take_snapshot(root)
        wait_past(state.snapshot, self.scratch)
        if not action(root):
            return None
        with LayerWriter(self.scratch / "layer.tar.gz") as writer:
            state.snapshot = write_diff(root, state.snapshot, writer, ownership=self.ownership,
                                        cancelled=self.cancelled)
        return writer.commit(self.store)

    def _prepare(self, state: _StageState, instruction: Instruction, container: str) -> Prepared:
        doc = copy.deepcopy(state.doc)
        keyword = instruction.keyword
        if keyword in _CONFIG_ONLY:
            return prepare_config(instruction, doc, state.scope)
        if keyword == "RUN":
            return prepare_run(instruction, doc, state.scope, build_args=self.params.build_args,
                               container=container, scratch=self.scratch / "run", output=self.say,
                               cancelled=self.cancelled)
        if keyword in ("COPY", "ADD"):
            return prepare_copy(
                instruction, doc, state.scope,
                source_root=lambda name: self._copy_root(name, state) if name else (self.context, "context"),
                downloads=self.scratch / "downloads", output=self.say, ownership=self.ownership,
                cancelled=self.cancelled,
            )
        raise InvalidArgumentError(f"Dockerfile line {instruction.line}: {keyword} cannot be used here")

    def _copy_root(self, name: str, state: _StageState) -> tuple[Path, str]:
        source: _StageState | None = None
        if name.isdigit():
            index = int(name)
            if index >= state.index:
                raise InvalidArgumentError(f"invalid from flag value {name}: refers to current or future build stage")
            source = self.stages[index]
        else:
            source = self._find_stage(name)
            if source is state:
                raise InvalidArgumentError(f"invalid from flag value {name}: refers to the current build stage")
        if source is not None:
            identity = str(source.image.id) if source.image is not None else f"scratch-{source.index}"
            return self._rootfs(source), f"stage:{identity}"
        image = self.resolve_base(name, state.platform)
        root = self.image_roots.get(str(image.id))
        if root is None:
            root = self.new_dir("image")
            unpack_layers(lambda layer: self.store.open_blob(layer.digest), image.layers, root,
                          ownership=self.ownership, cancelled=self.cancelled)
            self.image_roots[str(image.id)] = root
        return root, f"image:{image.id}"
