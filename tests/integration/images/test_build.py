"""ImageService.Build: a multi-stage Dockerfile with RUN, COPY --from, ENV, WORKDIR, USER and a
deleted file, checked from the outside: pushed to docker-registry, exported with ``skopeo copy``
to an OCI layout and unpacked with ``umoci``. Also the build cache, build parameters in gRPC
metadata, ``.dockerignore``, compressed contexts and failures (image-service.md 5.8, 6;
DECISIONS image-service 2, 9, 13, 14, 15).

RUN needs unshare + chroot, so those cases need root (the server answers FAILED_PRECONDITION
without it); they skip elsewhere with the reason.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from tests.conftest import require_binary
from tests.integration.images.conftest import (
    RPC_TIMEOUT,
    BuildParams,
    ImageSet,
    SourceRegistry,
    build,
    code_and_details,
    context_chunks,
    context_tar,
    pull,
    push,
    stream_text,
)
from tests.integration.images.layouts import ENV, host_arch
from tests.integration.registry.conftest import (
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ContainerTools,
    DockerRegistry,
    layout_blobs,
    layout_refs,
    run,
)

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="RUN needs root and unshare (chroot isolation)",
)

MULTI_STAGE = """\
ARG BASE=busybox
FROM ${BASE} AS builder
ARG WHO=world
ENV GREETING=hello
WORKDIR /src
COPY a.txt b.txt ./
RUN echo "$GREETING $WHO from run" > /src/run.txt && rm /src/b.txt && mkdir -p /out \\
    && cp /src/run.txt /src/a.txt /out/ && id -u > /out/uid

FROM ${BASE}
COPY --from=builder /out/ /app/
COPY secret.txt /app/secret.txt
RUN rm /app/secret.txt && mkdir /app/data && chown app:app /app/data && touch /app/stamp
ENV MODE=prod
WORKDIR /app
USER app
RUN id -un > /app/data/whoami && touch /app/data/made-by-app
CMD ["cat", "/app/run.txt"]
"""
CONTEXT: dict[str, bytes | str] = {
    "Dockerfile": MULTI_STAGE,
    "a.txt": "file a\n",
    "b.txt": "file b, deleted in the builder\n",
    "secret.txt": "copied, then deleted\n",
}
STEPS = 16            # Docker counts the ARG before FROM too: 1 + 2 FROM + 5 builder + 8 final
FINAL_LAYERS = 2 + 4  # busybox's 2, COPY --from, COPY, RUN, RUN (WORKDIR /app exists: no layer)


def steps(messages: list[pb.BuildProgress]) -> list[tuple[int, int, str]]:
    """(N, M, instruction) of every ``Step N/M : ...`` line."""
    return [(int(m[1]), int(m[2]), m[3])
            for m in re.finditer(r"^Step (\d+)/(\d+) : (.*)$", stream_text(messages), re.M)]


def built_id(messages: list[pb.BuildProgress]) -> str:
    aux = [m.aux for m in messages if m.aux]
    assert aux and aux[-1] == messages[-1].aux, "the last message carries aux = the image ID"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", aux[-1]), aux[-1]
    return str(aux[-1])


def export(tools: ContainerTools, reference: str, layout: Path) -> dict[str, Any]:
    """``skopeo copy`` ``reference`` into an OCI layout; returns the manifest."""
    tools.skopeo("copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{reference}",
                 f"oci:{layout}:out")
    digest = layout_refs(layout)["out"]["digest"]
    return dict(json.loads(layout_blobs(layout)[digest].read_bytes()))


def blob_json(layout: Path, digest: str) -> Any:
    return json.loads(layout_blobs(layout)[digest].read_bytes())


def layer_members(layout: Path, digest: str) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layout_blobs(layout)[digest].read_bytes()))) as tar:
        return [m.name.removeprefix("./") for m in tar.getmembers()]


@pytest.fixture
def base(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry) -> str:
    """The busybox base, pulled (never from the internet); build-arg BASE names it."""
    pull(images, source_registry.busybox)
    return source_registry.busybox


@needs_root
def test_multi_stage_build(images: pb_grpc.ImageServiceStub, base: str, image_set: ImageSet,
                           fresh_registry: DockerRegistry, ctools: ContainerTools, tmp_path: Path) -> None:
    params = BuildParams(tags=["local/built:v1"], build_args={"BASE": base, "WHO": "cairn"})
    messages = build(images, CONTEXT, params)
    image_id = built_id(messages)
    text = stream_text(messages)
    assert [(n, m) for n, m, _ in steps(messages)] == [(n, STEPS) for n in range(1, STEPS + 1)]
    assert f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n" in text
    assert text.endswith("Successfully tagged local/built:v1\n")
    assert images.Exists(pb.ExistsImageRequest(reference="local/built:v1")).id == image_id

    info = images.Inspect(pb.InspectImageRequest(id=image_id))
    assert list(info.repo_tags) == ["local/built:v1"]
    assert (info.os, info.architecture) == ("linux", host_arch())
    assert info.config.user == "app"
    assert info.config.working_dir == "/app"
    assert list(info.config.env) == [*ENV, "MODE=prod"]
    assert list(info.config.cmd) == ["cat", "/app/run.txt"]
    assert list(info.root_fs.layers)[:2] == image_set.busybox.diff_ids
    assert len(info.root_fs.layers) == FINAL_LAYERS

    # Out through docker-registry and skopeo: an OCI image with gzip layers (DECISIONS 9).
    target = f"{fresh_registry.host}/built/app:v1"
    images.Tag(pb.TagImageRequest(source=image_id, repo=f"{fresh_registry.host}/built/app", tag="v1"))
    push(images, target)
    layout = tmp_path / "layout"
    manifest = export(ctools, target, layout)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["digest"] == image_id
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_LAYER_GZIP] * FINAL_LAYERS
    config = blob_json(layout, image_id)
    assert config["config"]["User"] == "app"
    assert config["config"]["WorkingDir"] == "/app"
    assert config["config"]["Env"] == [*ENV, "MODE=prod"]
    assert config["config"]["Cmd"] == ["cat", "/app/run.txt"]
    assert config["rootfs"]["diff_ids"] == list(info.root_fs.layers)
    history = config["history"]
    assert len(history) == 2 + 8  # the base's two, one per final-stage instruction
    assert len([h for h in history if not h.get("empty_layer")]) == FINAL_LAYERS

    # The deletion is a whiteout in the RUN layer; no injected stub leaks into a layer.
    members = [name for layer in manifest["layers"][2:] for name in layer_members(layout, layer["digest"])]
    assert "app/.wh.secret.txt" in members
    leaked = [n for n in members if n in ("etc/hosts", "etc/resolv.conf", "etc/hostname")
              or re.match(r"(proc|sys|dev)/.", n)]
    assert leaked == []

    # umoci unpacks what a runtime would see.
    bundle = tmp_path / "bundle"
    run([require_binary("umoci"), "unpack", "--image", f"{layout}:out", str(bundle)])
    rootfs = bundle / "rootfs"
    assert (rootfs / "app/run.txt").read_text() == "hello cairn from run\n"
    assert (rootfs / "app/a.txt").read_text() == "file a\n"
    assert (rootfs / "app/uid").read_text() == "0\n"
    assert (rootfs / "app/stamp").is_file()
    assert (rootfs / "app/data/whoami").read_text() == "app\n"
    for path in ("app/data", "app/data/whoami", "app/data/made-by-app"):
        assert (os.stat(rootfs / path).st_uid, os.stat(rootfs / path).st_gid) == (1000, 1000), path
    assert not (rootfs / "app/secret.txt").exists()
    assert not (rootfs / "app/b.txt").exists()
    assert not (rootfs / "src").exists()  # the builder stage's files stay there
    assert (rootfs / "usr/share/cairn/hello.txt").read_text() == "hello from cairn\n"
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["user"]["uid"] == 1000
    assert runtime["process"]["cwd"] == "/app"
    assert runtime["process"]["args"] == ["cat", "/app/run.txt"]
    assert "MODE=prod" in runtime["process"]["env"]


@needs_root
def test_second_build_hits_the_cache(images: pb_grpc.ImageServiceStub, base: str) -> None:
    params = BuildParams(build_args={"BASE": base, "WHO": "cairn"})
    first = build(images, CONTEXT, params)
    second = build(images, CONTEXT, params)
    assert built_id(second) == built_id(first)
    text = stream_text(second)
    uncached = [s for s in steps(second) if s[2].startswith(("FROM ", "ARG BASE"))]  # FROMs, meta ARG
    assert len(uncached) == 3
    assert text.count(" ---> Using cache\n") == STEPS - len(uncached)  # every other step
    assert " ---> Running in " not in text

    third = build(images, CONTEXT, BuildParams(build_args=params.build_args, no_cache=True))
    assert " ---> Using cache\n" not in stream_text(third)
    assert stream_text(third).count(" ---> Running in ") >= 3  # each RUN ran again


@needs_root
def test_target_stage(images: pb_grpc.ImageServiceStub, base: str) -> None:
    params = BuildParams(tags=["local/builder:v1"], build_args={"BASE": base}, target="builder")
    messages = build(images, CONTEXT, params)
    assert [n for n, _, _ in steps(messages)][-1] == 7  # stops after the builder stage
    info = images.Inspect(pb.InspectImageRequest(id="local/builder:v1"))
    assert info.id == built_id(messages)
    assert "GREETING=hello" in info.config.env
    assert info.config.working_dir == "/src"


def test_dockerignore_dockerfile_path_and_gzip_context(images: pb_grpc.ImageServiceStub,
                                                       fresh_registry: DockerRegistry,
                                                       ctools: ContainerTools, tmp_path: Path) -> None:
    files: dict[str, bytes | str] = {
        "build/Containerfile": "FROM scratch\nCOPY . /ctx/\nLABEL org.cairn.from=scratch\n",
        ".dockerignore": "ignored.txt\n*.tmp\nbuild\n",
        "keep.txt": "kept\n",
        "ignored.txt": "not sent\n",
        "x.tmp": "not sent either\n",
    }
    data = gzip.compress(context_tar(files), mtime=0)
    metadata = BuildParams(dockerfile="build/Containerfile", tags=[f"{fresh_registry.host}/ctx/app:v1"]).metadata()
    messages = list(images.Build(context_chunks(data, 100), metadata=metadata, timeout=RPC_TIMEOUT))
    image_id = built_id(messages)
    info = images.Inspect(pb.InspectImageRequest(id=image_id))
    assert dict(info.config.labels) == {"org.cairn.from": "scratch"}
    assert len(info.root_fs.layers) == 1

    push(images, f"{fresh_registry.host}/ctx/app:v1")
    manifest = export(ctools, f"{fresh_registry.host}/ctx/app:v1", tmp_path / "layout")
    names = set(layer_members(tmp_path / "layout", manifest["layers"][0]["digest"]))
    assert "ctx/keep.txt" in names
    assert "ctx/.dockerignore" in names  # Docker sends .dockerignore itself unless it is listed
    assert not names & {"ctx/ignored.txt", "ctx/x.tmp", "ctx/build/Containerfile"}, names


def test_context_split_anywhere(images: pb_grpc.ImageServiceStub) -> None:
    """Chunks of 1 byte and of 1 MiB give the same image; a half-close works as well as eof."""
    files: dict[str, bytes | str] = {"Dockerfile": "FROM scratch\nCOPY f /f\n", "f": os.urandom(300_000)}
    data = context_tar(files)
    ids = []
    for chunk in (1 << 20, 4093):
        ids.append(built_id(list(images.Build(context_chunks(data, chunk), timeout=RPC_TIMEOUT))))
    no_eof = (pb.BuildContext(data=data[i:i + 65536]) for i in range(0, len(data), 65536))
    ids.append(built_id(list(images.Build(no_eof, timeout=RPC_TIMEOUT))))
    assert len(set(ids)) == 1


@needs_root
def test_failing_run(images: pb_grpc.ImageServiceStub, base: str) -> None:
    dockerfile = "ARG BASE\nFROM ${BASE}\nRUN echo about to fail && exit 3\nLABEL never=reached\n"
    call = images.Build(context_chunks(context_tar({"Dockerfile": dockerfile})),
                        metadata=BuildParams(build_args={"BASE": base}, tags=["local/fail:v1"]).metadata(),
                        timeout=RPC_TIMEOUT)
    received: list[pb.BuildProgress] = []
    with pytest.raises(grpc.RpcError) as info:
        for message in call:
            received.append(message)
    code, details = code_and_details(info.value)
    assert code != grpc.StatusCode.OK, details
    assert received and received[-1].error, "the last message carries the error (DECISIONS 2)"
    assert "returned a non-zero code: 3" in received[-1].error
    assert "about to fail" in stream_text(received)  # the command's output is streamed
    assert "Step 4/" not in stream_text(received)
    assert images.Exists(pb.ExistsImageRequest(reference="local/fail:v1")).exists is False


@pytest.mark.parametrize(("files", "params", "fragment"), [
    ({"other.txt": "x"}, BuildParams(), "Dockerfile"),
    ({"Dockerfile": "FROM scratch\nNOTANINSTRUCTION x\n"}, BuildParams(), "notaninstruction"),
    ({"Dockerfile": "FROM scratch\nCOPY missing.txt /\n"}, BuildParams(), "missing.txt"),
    ({"Dockerfile": "FROM scratch AS one\nLABEL a=b\n"}, BuildParams(target="two"), "two"),
    ({"Dockerfile": "FROM scratch\n"}, BuildParams(tags=["Bad/Tag"]), "invalid reference format"),
])
def test_build_errors(files: dict[str, bytes | str], params: BuildParams, fragment: str,
                      shared_images: pb_grpc.ImageServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        build(shared_images, files, params)
    code, details = code_and_details(info.value)
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                    grpc.StatusCode.FAILED_PRECONDITION), details
    assert fragment.lower() in details.lower(), details


def test_from_an_image_that_is_nowhere(shared_images: pb_grpc.ImageServiceStub, fresh_registry: DockerRegistry) -> None:
    """FROM resolves locally, else pulls; a missing image fails with NOT_FOUND, never the internet."""
    dockerfile = f"FROM {fresh_registry.host}/no/such:image\n"
    with pytest.raises(grpc.RpcError) as info:
        build(shared_images, {"Dockerfile": dockerfile})
    code, details = code_and_details(info.value)
    assert code == grpc.StatusCode.NOT_FOUND, details

