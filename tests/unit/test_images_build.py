"""Build end to end against a real ImageStore (SQLite catalog, local content store), no server.

A busybox-static base image is made in the store; builds then run Docker
classic-builder steps: output lines, one image per step with parents, OCI
manifests and configs, layers with whiteouts, the cache (a second build hits
every step), ``no_cache``, build args, targets, tags, and the error kinds.
Cases with RUN need root and unshare and skip elsewhere.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.core.catalog import open_catalog
from cairn.core.content import open_content_store
from cairn.core.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from cairn.images import ImageRecord, ImageStore
from cairn.images.build import BuildEvent, BuildParams, build
from cairn.images.build import run as run_module
from cairn.images.build.commit import LayerWriter, commit_image, now_rfc3339
from cairn.images.platform import Platform
from cairn.oci.model import Reference, mediatypes

BUSYBOX = Path("/bin/busybox")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not BUSYBOX.exists(),
    reason="RUN isolation needs root, util-linux unshare and /bin/busybox (busybox-static)",
)
APPLETS = "sh echo ls cat id rm mkdir cp chown touch true false pwd test".split()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'cairn.db'}")
    content = open_content_store(f"file://{tmp_path / 'content'}", catalog)
    yield ImageStore(content, catalog.images)
    content.close()
    catalog.close()


def _add(archive: tarfile.TarFile, name: str, data: bytes | None = None, **fields: Any) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1_600_000_000
    if data is None and "linkname" not in fields:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif data is None:
        info.type = tarfile.SYMTYPE
    else:
        info.size, info.mode = len(data), 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    archive.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.fixture
def busybox(store: ImageStore, tmp_path: Path) -> ImageRecord:
    if not BUSYBOX.exists():
        pytest.skip("needs /bin/busybox (busybox-static)")
    with LayerWriter(tmp_path / "busybox.tar.gz") as writer:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for directory in ("bin", "etc", "root", "tmp"):
                _add(archive, directory)
            _add(archive, "bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
            for applet in APPLETS:
                _add(archive, f"bin/{applet}", linkname="busybox")
            _add(archive, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            _add(archive, "etc/group", b"root:x:0:\napp:x:1000:\n")
            _add(archive, "etc/motd", b"welcome\n")
    layer = writer.commit(store)
    config = {
        "created": now_rfc3339(), "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
        "history": [{"created": now_rfc3339(), "created_by": "busybox layer"}],
    }
    return commit_image(store, config, [layer], parent=None, references=[Reference.parse("busybox:latest")])


def _context(files: dict[str, str | bytes], compress: bool = True) -> list[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as archive:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            _add(archive, name, raw)
    data = buffer.getvalue()
    return [data[i : i + 4096] for i in range(0, len(data), 4096)]


class Run:
    def __init__(self, store: ImageStore, tmp_path: Path) -> None:
        self.store = store
        self.workdir = tmp_path / "builds"
        self.events: list[BuildEvent] = []

    def __call__(self, files: dict[str, str | bytes], **params: Any) -> ImageRecord:
        self.events = []
        return build(self.store, _context(files), BuildParams(**params), resolve_base=self.resolve,
                     events=self.events.append, workdir=self.workdir)

    def resolve(self, text: str, platform: Platform | None) -> ImageRecord:
        return self.store.lookup(text)

    @property
    def text(self) -> str:
        return "".join(e.stream for e in self.events)


@pytest.fixture
def run(store: ImageStore, tmp_path: Path) -> Run:
    return Run(store, tmp_path)


def _layer_names(store: ImageStore, image: ImageRecord, index: int) -> list[str]:
    layer = image.layers[index]
    with store.open_blob(layer.digest) as reader:
        data = gzip.decompress(reader.read_at(0, reader.size))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [m.name for m in archive.getmembers()]


MULTI_STAGE = """\
ARG BASE=busybox
FROM ${BASE} AS builder
ARG WHO=world
ENV GREETING=hello
WORKDIR /src
COPY a.txt b.txt ./
RUN echo "$GREETING $WHO from run" > /src/run.txt && rm /src/b.txt /etc/motd && mkdir -p /out \\
    && cp /src/run.txt /out/ && id -u > /out/uid

FROM ${BASE}
COPY --from=builder /out/ /app/
RUN chown app:app /app/run.txt
USER app
WORKDIR /app
CMD ["cat", "/app/run.txt"]
"""


@needs_root
def test_multi_stage_build_then_everything_from_cache(run: Run, store: ImageStore, busybox: ImageRecord) -> None:
    files: dict[str, str | bytes] = {"Dockerfile": MULTI_STAGE, "a.txt": "a\n", "b.txt": "b\n"}
    image = run(files, tags=("myapp:1", "myapp"), build_args={"WHO": "cairn"})
    text = run.text
    assert text.startswith("Step 1/13 : ARG BASE=busybox\nStep 2/13 : FROM ${BASE} AS builder\n"
                           f" ---> {busybox.short_id()}\n")
    assert " ---> Running in " in text and "Removing intermediate container " in text
    assert text.endswith(f"Successfully built {image.short_id()}\nSuccessfully tagged myapp:1\n"
                         "Successfully tagged myapp:latest\n")
    assert run.events[-1].aux == str(image.id)
    assert "Using cache" not in text

    assert image.manifest_media_type == mediatypes.OCI_MANIFEST
    assert image.config_media_type == mediatypes.OCI_CONFIG
    assert all(layer.media_type == mediatypes.OCI_LAYER_GZIP for layer in image.layers)
    config = store.config_json(image)
    assert config["config"]["Cmd"] == ["cat", "/app/run.txt"]
    assert (config["config"]["User"], config["config"]["WorkingDir"]) == ("app", "/app")
    assert config["rootfs"]["diff_ids"] == [str(layer.diff_id) for layer in image.layers]
    history = config["history"]
    assert [h.get("empty_layer", False) for h in history] == [False, False, False, True, True, True]
    assert history[2]["created_by"] == "/bin/sh -c chown app:app /app/run.txt"
    assert history[1]["created_by"].startswith("/bin/sh -c #(nop) COPY dir:")
    assert _layer_names(store, image, 1) == ["app", "app/run.txt", "app/uid"]
    assert store.lookup("myapp:1").id == image.id

    builder_image = _chain(store, image)[0]
    builder_config = store.config_json(builder_image)
    assert builder_config["history"][-1]["created_by"] == (
        '|1 WHO=cairn /bin/sh -c echo "$GREETING $WHO from run" > /src/run.txt && rm /src/b.txt /etc/motd '
        "&& mkdir -p /out     && cp /src/run.txt /out/ && id -u > /out/uid"
    )
    names = _layer_names(store, builder_image, len(builder_image.layers) - 1)
    assert names == ["etc", "etc/.wh.motd", "out", "out/run.txt", "out/uid", "src", "src/.wh.b.txt",
                     "src/run.txt"]

    again = run(files, tags=("myapp:1",), build_args={"WHO": "cairn"})
    assert again.id == image.id
    assert run.text.count(" ---> Using cache\n") == 10
    assert "Running in" not in run.text

    fresh = run(files, build_args={"WHO": "cairn"}, no_cache=True)
    assert "Using cache" not in run.text and fresh.id != image.id


def _chain(store: ImageStore, image: ImageRecord) -> list[ImageRecord]:
    """The builder stage's last image: the one whose newest history entry is its RUN."""
    found = []
    for record in store.all_images():
        config = store.config_json(record)
        history = config.get("history") or []
        if history and "from run" in history[-1].get("created_by", ""):
            found.append(record)
    return found


def test_scratch_build_with_copy_add_and_dockerignore(run: Run, store: ImageStore, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        _add(tar, "pkg/lib.txt", b"lib", uid=7, gid=8)
    files: dict[str, str | bytes] = {
        "Dockerfile": "FROM scratch\nENV D=/data\nCOPY --chown=1:2 --chmod=600 *.txt $D/\nADD pkg.tgz /opt/\n"
                      "WORKDIR /data\nWORKDIR /new\nCOPY dir .\nLABEL x=y\n",
        ".dockerignore": "ignored.txt\ndir/skip\n",
        "one.txt": "1", "two.txt": "2", "ignored.txt": "no", "pkg.tgz": archive.getvalue(),
        "dir/keep": "k", "dir/skip": "s",
    }
    image = run(files, tags=("scratchy",))
    config = store.config_json(image)
    assert config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                       "D=/data"]
    assert len(image.layers) == 4  # two COPY, one ADD, one WORKDIR that created /new
    assert [h.get("empty_layer", False) for h in config["history"]] == [True, False, False, True, False, False, True]
    assert _layer_names(store, image, 0) == ["data", "data/one.txt", "data/two.txt"]
    assert _layer_names(store, image, 1) == ["opt", "opt/pkg", "opt/pkg/lib.txt"]
    assert _layer_names(store, image, 2) == ["new"]
    assert _layer_names(store, image, 3) == ["new", "new/keep"]
    with store.open_blob(image.layers[0].digest) as reader:
        data = gzip.decompress(reader.read_at(0, reader.size))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmember("data/one.txt")
        assert (member.uid, member.gid, member.mode) == (1, 2, 0o600)
    assert " ---> Running in" in run.text  # config steps, as the classic builder prints them
    assert list((tmp_path / "builds").iterdir()) == []

    again = run(files)
    assert again.id == image.id
    changed = dict(files, **{"two.txt": "22"})
    third = run(changed)
    assert third.id != image.id
    assert run.text.count("Using cache") == 1  # ENV only; COPY's sources changed


def test_target_stage_and_unused_build_args(run: Run) -> None:
    files: dict[str, str | bytes] = {
        "Dockerfile": "FROM scratch AS first\nCOPY a /a\nFROM scratch\nCOPY b /b\n", "a": "a", "b": "b",
    }
    image = run(files, target="first", build_args={"NOPE": "1"})
    assert "Step 2/2 : COPY a /a" in run.text
    assert "[Warning] One or more build-args [NOPE] were not consumed\n" in run.text
    assert len(image.layers) == 1


@pytest.mark.parametrize(
    ("files", "params", "error", "message"),
    [
        ({"Dockerfile": "FROM scratch\nCOPY missing /x\n"}, {}, NotFoundError,
         "COPY failed: file not found in build context: missing"),
        ({"Dockerfile": "FROM scratch\nCOPY *.none /x/\n"}, {}, NotFoundError, "no source files"),
        ({"Dockerfile": "FROM scratch\nBOGUS x\n"}, {}, InvalidArgumentError, "line 2: unknown instruction: BOGUS"),
        ({"other": "x"}, {}, NotFoundError, "Cannot locate specified Dockerfile: Dockerfile"),
        ({"Dockerfile": "FROM scratch\n"}, {"target": "nope"}, InvalidArgumentError,
         "failed to reach build target nope"),
        ({"Dockerfile": "FROM scratch\n"}, {}, InvalidArgumentError, "No image was generated"),
        ({"Dockerfile": "FROM scratch\nCOPY a\n"}, {}, InvalidArgumentError, "COPY requires at least two"),
        ({"Dockerfile": "FROM scratch\nCOPY a b /c\n", "a": "a", "b": "b"}, {}, InvalidArgumentError,
         "must be a directory and end with a /"),
        ({"Dockerfile": "FROM scratch\nCOPY --from=1 a /a\n"}, {}, InvalidArgumentError,
         "refers to current or future build stage"),
        ({"Dockerfile": "FROM scratch\nCOPY --chown=nobody a /a\n", "a": "a"}, {}, FailedPreconditionError,
         "no such user: nobody"),
        ({"Dockerfile": "FROM scratch\n"}, {"tags": ("Bad:Tag",)}, InvalidArgumentError, "invalid reference"),
        ({"Dockerfile": "FROM nosuchimage\n"}, {}, NotFoundError, "No such image: nosuchimage"),
    ],
)
def test_failures_raise_the_right_kind(
    run: Run, tmp_path: Path, files: dict[str, str | bytes], params: dict[str, Any], error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        run(files, **params)
    assert list((tmp_path / "builds").iterdir()) == []


@needs_root
def test_a_failing_run_names_the_command_and_code(run: Run, busybox: ImageRecord, tmp_path: Path) -> None:
    with pytest.raises(FailedPreconditionError, match=r"The command '/bin/sh -c echo out; false' returned a "
                                                      "non-zero code: 1"):
        run({"Dockerfile": "FROM busybox\nRUN echo out; false\n"})
    assert "out\n" in run.text
    assert list((tmp_path / "builds").iterdir()) == []


def test_run_without_root_is_a_failed_precondition(
    run: Run, busybox: ImageRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module.os, "geteuid", lambda: 1000)
    with pytest.raises(FailedPreconditionError, match="RUN cannot be isolated"):
        run({"Dockerfile": "FROM busybox\nRUN true\n"})


@needs_root
def test_onbuild_triggers_run_in_the_child_and_are_cleared(run: Run, store: ImageStore, busybox: ImageRecord) -> None:
    run({"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /t\n"}, tags=("parent",))
    child = run({"Dockerfile": "FROM parent\nENV X=1\n"})
    assert "# Executing 1 build trigger\n" in run.text
    config = store.config_json(child)
    assert "OnBuild" not in config["config"] or not config["config"]["OnBuild"]
    assert _layer_names(store, child, len(child.layers) - 1) == ["t"]


def test_built_manifest_is_canonical_oci(run: Run, store: ImageStore) -> None:
    image = run({"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": "f"})
    manifest = json.loads(store.manifest_bytes(image))
    assert manifest["mediaType"] == mediatypes.OCI_MANIFEST
    assert manifest["config"] == {"mediaType": mediatypes.OCI_CONFIG, "digest": str(image.id),
                                  "size": len(store.config_bytes(image))}
    assert [layer["digest"] for layer in manifest["layers"]] == [str(layer.digest) for layer in image.layers]
    assert image.size == sum(layer.uncompressed_size for layer in image.layers)


def test_copy_builds_without_root_keep_owners_and_modes_virtually(
    run: Run, store: ImageStore, busybox: ImageRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without root nothing is chowned on disk; layers still say what the Dockerfile asked for."""
    monkeypatch.setattr(run_module.os, "geteuid", lambda: 1000)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        _add(tar, "ro", mode=0o555, uid=3, gid=4)
        _add(tar, "ro/secret", b"s", mode=0o000, uid=5, gid=6)
    image = run({
        "Dockerfile": "FROM busybox\nCOPY --chown=1:2 --chmod=640 f /etc/f\nADD a.tar /opt/\nWORKDIR /w\n"
                      "COPY --from=busybox /etc/passwd /copied\n",
        "f": "f", "a.tar": archive.getvalue(),
    })
    layers = [_layer_members(store, image, i) for i in range(1, 5)]
    assert [(m.name, m.uid, m.gid, m.mode) for m in layers[0]] == [("etc", 0, 0, 0o755), ("etc/f", 1, 2, 0o640)]
    assert [(m.name, m.uid, m.gid, m.mode) for m in layers[1]] == [
        ("opt", 0, 0, 0o755), ("opt/ro", 3, 4, 0o555), ("opt/ro/secret", 5, 6, 0o000)]
    assert [(m.name, m.uid, m.mode) for m in layers[2]] == [("w", 0, 0o755)]
    assert [(m.name, m.uid, m.gid, m.mode) for m in layers[3]] == [("copied", 0, 0, 0o644)]


def _layer_members(store: ImageStore, image: ImageRecord, index: int) -> list[tarfile.TarInfo]:
    with store.open_blob(image.layers[index].digest) as reader:
        data = gzip.decompress(reader.read_at(0, reader.size))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getmembers()
