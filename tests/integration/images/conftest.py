"""Fixtures for ``arcbox.v1.ImageService`` against a real ``cairn serve`` and real registries.

What is here:

- ``image_set``: the deterministic images of ``layouts.py`` in one OCI layout (session):
  ``busybox`` (host architecture, Debian's static busybox), a multi-arch index of busybox plus
  two small images for other platforms, and a larger random image for the resume cases.
- ``source_registry``: Debian's ``docker-registry`` (distribution 2.8.2) on a free loopback port,
  filled once per session with ``skopeo copy``: ``lib/busybox:v1`` (OCI, digests preserved),
  ``lib/busybox-v2s2:v1`` (Docker schema 2, ``--format v2s2``), ``lib/multi:v1`` (the index,
  ``--all``). Tests that push use their own repository names in it.
- ``auth_registry``: another ``docker-registry`` behind htpasswd (``htpasswd -Bbn``) holding
  ``private/busybox:v1``; user ``cairn``, password ``s3cret``.
- ``images`` (a stub) on the per-test ``cairn_server``; ``make_server`` for servers with flags.
- (``proxy.py`` has ``ByteCountingProxy``, a loopback TCP proxy counting the bytes a registry
  sends back, able to hold, throttle or drop the transfer at a byte count.)
- helpers that run an RPC to its end: ``pull``, ``push``, ``build``, ``rpc_error``.

Every image is made offline; nothing is pulled from the internet.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as cpb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as cpb_grpc
from tests.conftest import Backend, CairnServer, require_binary
from tests.integration.images.layouts import (
    Image,
    busybox_image,
    dated_image,
    host_arch,
    index_of,
    random_image,
    small_image,
    write_layout,
)
from tests.integration.registry.conftest import Blob, ContainerTools, DockerRegistry, run

RPC_TIMEOUT = 120.0
IMAGES_NS = (("containerd-namespace", "images"),)
AUTH_USER, AUTH_PASSWORD = "cairn", "s3cret"
RESUME_LAYER_BYTES = 24 * 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)]


# --------------------------------------------------------------------------- test images


@dataclass(frozen=True)
class ImageSet:
    layout: Path
    busybox: Image
    multi: tuple[Image, ...]          # busybox (host platform) first
    index: Blob
    others: dict[str, Image]          # platform string -> image, for the non-host entries
    resume: Image
    dated: dict[int, Image]           # year -> image: 2021 and 2024 tier "a", 2022 tier "b"

    def ref(self, name: str) -> str:
        return f"oci:{self.layout}:{name}"


def is_static_elf(path: Path) -> bool:
    """An ELF executable without a PT_INTERP program header (no dynamic loader needed)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only
        return False
    endian = "<" if data[5] == 1 else ">"
    phoff, = struct.unpack_from(endian + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    return all(struct.unpack_from(endian + "I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def other_platforms() -> list[tuple[str, str | None]]:
    """Two platforms other than the host's, for the multi-arch index."""
    candidates: list[tuple[str, str | None]] = [("arm64", None), ("arm", "v7"), ("amd64", None)]
    return [c for c in candidates if c[0] != host_arch()][:2]


@pytest.fixture(scope="session")
def image_set(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    if not Path("/bin/busybox").exists() or not is_static_elf(Path("/bin/busybox")):
        if os.environ.get("CI"):
            pytest.fail("/bin/busybox must be Debian's busybox-static; the test command must install it")
        pytest.skip("/bin/busybox is not Debian's static busybox (apt-get install busybox-static)")
    busybox = busybox_image()
    others = {f"linux/{arch}" + (f"/{variant}" if variant else ""): small_image(arch, variant)
              for arch, variant in other_platforms()}
    multi = (busybox, *others.values())
    index = index_of(multi)
    resume = random_image(RESUME_LAYER_BYTES, "cairn-resume")
    dated = {2021: dated_image(2021, "a"), 2022: dated_image(2022, "b"), 2024: dated_image(2024, "a")}
    layout = write_layout(tmp_path_factory.mktemp("images") / "layout", {
        "busybox": busybox,
        "multi": (index, multi),
        "resume": resume,
        **{f"dated-{year}": image for year, image in dated.items()},
    })
    return ImageSet(layout, busybox, multi, index, others, resume, dated)


@pytest.fixture(scope="session")
def ctools() -> Iterator[ContainerTools]:
    """skopeo/umoci scratch space shared by the session fixtures and the tests."""
    path = Path(tempfile.mkdtemp(prefix="cairn-img-", dir="/tmp"))
    try:
        yield ContainerTools(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def skopeo_copy_in(tools: ContainerTools, source: str, host: str, target: str, *extra: str) -> None:
    tools.skopeo("copy", "--dest-tls-verify=false", *extra, source, f"docker://{host}/{target}")


def skopeo_inspect(tools: ContainerTools, reference: str, *extra: str) -> Any:
    """``skopeo inspect`` of ``docker://reference`` as JSON (``--raw`` ones too)."""
    out = tools.skopeo("inspect", "--tls-verify=false", *extra, f"docker://{reference}").stdout
    return json.loads(out)


def skopeo_raw(tools: ContainerTools, reference: str, *extra: str) -> bytes:
    return tools.skopeo("inspect", "--tls-verify=false", "--raw", *extra, f"docker://{reference}").stdout


# --------------------------------------------------------------------------- registries


@dataclass
class SourceRegistry:
    """The session's docker-registry and the references it was filled with."""

    registry: DockerRegistry
    v2s2_manifest: bytes = b""

    @property
    def host(self) -> str:
        return self.registry.host

    def ref(self, path: str) -> str:
        return f"{self.host}/{path}"

    @property
    def busybox(self) -> str:
        return self.ref("lib/busybox:v1")

    @property
    def busybox_v2s2(self) -> str:
        return self.ref("lib/busybox-v2s2:v1")

    @property
    def multi(self) -> str:
        return self.ref("lib/multi:v1")

    @property
    def resume(self) -> str:
        return self.ref("resume/big:v1")

    def dated(self, year: int) -> str:
        return self.ref(f"lib/dated:{year}")

    @property
    def v2s2_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.v2s2_manifest).hexdigest()

    def blob_path(self, digest: str) -> Path:
        """Where distribution's filesystem driver keeps a blob's bytes."""
        hex_ = digest.removeprefix("sha256:")
        return (self.registry.root / "reg" / "docker" / "registry" / "v2" / "blobs" / "sha256"
                / hex_[:2] / hex_ / "data")


@pytest.fixture(scope="session")
def source_registry(tmp_path_factory: pytest.TempPathFactory, image_set: ImageSet,
                    ctools: ContainerTools) -> Iterator[SourceRegistry]:
    registry = DockerRegistry(tmp_path_factory.mktemp("source-registry"))
    registry.start()
    try:
        host = registry.host
        skopeo_copy_in(ctools, image_set.ref("busybox"), host, "lib/busybox:v1", "--preserve-digests")
        skopeo_copy_in(ctools, image_set.ref("busybox"), host, "lib/busybox-v2s2:v1", "--format", "v2s2")
        skopeo_copy_in(ctools, image_set.ref("multi"), host, "lib/multi:v1", "--all", "--preserve-digests")
        skopeo_copy_in(ctools, image_set.ref("resume"), host, "resume/big:v1", "--preserve-digests")
        for year in image_set.dated:
            skopeo_copy_in(ctools, image_set.ref(f"dated-{year}"), host, f"lib/dated:{year}",
                           "--preserve-digests")
        source = SourceRegistry(registry)
        source.v2s2_manifest = skopeo_raw(ctools, source.busybox_v2s2)
        yield source
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory, image_set: ImageSet,
                  ctools: ContainerTools) -> Iterator[DockerRegistry]:
    root = tmp_path_factory.mktemp("auth-registry")
    line = run([require_binary("htpasswd"), "-Bbn", AUTH_USER, AUTH_PASSWORD]).stdout.strip()
    (root / "htpasswd").write_bytes(line + b"\n")
    registry = DockerRegistry(root, htpasswd=root / "htpasswd")
    registry.start()
    try:
        skopeo_copy_in(ctools, image_set.ref("busybox"), registry.host, "private/busybox:v1",
                       "--preserve-digests", "--dest-creds", f"{AUTH_USER}:{AUTH_PASSWORD}")
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    """An empty docker-registry of this test's own (push targets)."""
    root = tmp_path / "fresh-registry"
    root.mkdir()
    registry = DockerRegistry(root)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


def auth_string(username: str = AUTH_USER, password: str = AUTH_PASSWORD, server: str = "",
                *, urlsafe: bool = True, padded: bool = False) -> str:
    """``PullImageRequest.auth``: base64 of Docker's AuthConfig JSON (X-Registry-Auth)."""
    document = {"username": username, "password": password}
    if server:
        document["serveraddress"] = server
    data = json.dumps(document).encode()
    text = (base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)).decode()
    return text if padded else text.rstrip("=")


# --------------------------------------------------------------------------- servers and stubs


@pytest.fixture
def make_server(short_tmp: Path, cairn_backend: Backend) -> Iterator[Callable[..., CairnServer]]:
    """``make_server(*extra_args)``: a started ``cairn serve`` with stores of its own."""
    servers: list[CairnServer] = []

    def make(*extra_args: str) -> CairnServer:
        server = cairn_backend.server(short_tmp / f"data{len(servers)}", extra_args=list(extra_args))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        try:
            server.stop()
        finally:
            server.kill()


@pytest.fixture(scope="module")
def shared_images(cairn_backend: Backend) -> Iterator[pb_grpc.ImageServiceStub]:
    """One server for a module's stateless cases (invalid input, errors): saves a start per case."""
    path = Path(tempfile.mkdtemp(prefix="cairn-", dir="/tmp"))
    server = cairn_backend.server(path / "data")
    server.start()
    channel, stub = image_stub(server)
    try:
        yield stub
    finally:
        channel.close()
        try:
            server.stop()
        finally:
            server.kill()
            shutil.rmtree(path, ignore_errors=True)


def image_stub(server: CairnServer) -> tuple[grpc.Channel, pb_grpc.ImageServiceStub]:
    channel = grpc.insecure_channel(server.grpc_addr, options=CHANNEL_OPTIONS)
    return channel, pb_grpc.ImageServiceStub(channel)


@pytest.fixture
def images(cairn_server: CairnServer) -> Iterator[pb_grpc.ImageServiceStub]:
    channel, stub = image_stub(cairn_server)
    yield stub
    channel.close()


@pytest.fixture
def content(cairn_server: CairnServer) -> Iterator[cpb_grpc.ContentStub]:
    """The containerd content API on the same server (namespace via ``IMAGES_NS``)."""
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        yield cpb_grpc.ContentStub(channel)


def content_stub(server: CairnServer) -> tuple[grpc.Channel, cpb_grpc.ContentStub]:
    channel = grpc.insecure_channel(f"unix:{server.socket}")
    return channel, cpb_grpc.ContentStub(channel)


def content_size(stub: cpb_grpc.ContentStub, digest: str) -> int:
    """Size of a committed blob in namespace ``images`` (raises RpcError NOT_FOUND if absent)."""
    return int(stub.Info(cpb.InfoRequest(digest=digest), metadata=IMAGES_NS, timeout=30).info.size)


def content_digest(stub: cpb_grpc.ContentStub, digest: str) -> str:
    """sha256 of a blob read back through the content API, namespace ``images``."""
    hasher = hashlib.sha256()
    for chunk in stub.Read(cpb.ReadContentRequest(digest=digest), metadata=IMAGES_NS, timeout=60):
        hasher.update(chunk.data)
    return "sha256:" + hasher.hexdigest()


# --------------------------------------------------------------------------- RPC helpers


def pull(stub: pb_grpc.ImageServiceStub, reference: str, *, platform: str = "",
         auth: str = "") -> list[pb.PullProgress]:
    request = pb.PullImageRequest(reference=reference, platform=platform, auth=auth)
    return list(stub.Pull(request, timeout=RPC_TIMEOUT))


def push(stub: pb_grpc.ImageServiceStub, reference: str, *, auth: str = "") -> list[pb.PushProgress]:
    return list(stub.Push(pb.PushImageRequest(reference=reference, auth=auth), timeout=RPC_TIMEOUT))


def tag(stub: pb_grpc.ImageServiceStub, source: str, target: str) -> None:
    """Tag ``source`` as ``target`` (``repo:tag``; the tag after the last colon past any ``/``)."""
    repo, tag_ = target, ""
    if ":" in target.rsplit("/", 1)[-1]:
        repo, tag_ = target.rsplit(":", 1)
    stub.Tag(pb.TagImageRequest(source=source, repo=repo, tag=tag_), timeout=30)


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    """The RpcError ``call`` ends with, consuming a stream to its end."""
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__next__"):
            for _ in result:
                pass
    return info.value


def code_and_details(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return error.code(), error.details() or ""


def context_tar(files: dict[str, bytes | str]) -> bytes:
    """A deterministic build context: ``files`` (path -> content) as an uncompressed tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass(frozen=True)
class BuildParams:
    dockerfile: str = ""
    tags: Sequence[str] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    platform: str = ""
    no_cache: bool = False

    def metadata(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.dockerfile:
            out.append(("dockerfile", self.dockerfile))
        out += [("tag", tag) for tag in self.tags]
        out += [("build-arg", f"{k}={v}") for k, v in self.build_args.items()]
        if self.target:
            out.append(("target", self.target))
        if self.platform:
            out.append(("platform", self.platform))
        if self.no_cache:
            out.append(("no-cache", "true"))
        return out


def context_chunks(data: bytes, chunk: int = 64 * 1024) -> Iterator[pb.BuildContext]:
    for start in range(0, len(data), chunk):
        yield pb.BuildContext(data=data[start:start + chunk])
    yield pb.BuildContext(eof=True)


def build(stub: pb_grpc.ImageServiceStub, files: dict[str, bytes | str],
          params: BuildParams | None = None, *, chunk: int = 64 * 1024) -> list[pb.BuildProgress]:
    params = params or BuildParams()
    call = stub.Build(context_chunks(context_tar(files), chunk), metadata=params.metadata(),
                      timeout=RPC_TIMEOUT)
    return list(call)


def stream_text(messages: Iterable[pb.BuildProgress]) -> str:
    return "".join(m.stream for m in messages)
