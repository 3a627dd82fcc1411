"""Fixtures for driving real registry clients against cairn's ``/v2/`` face.

What is here:

- ``build_oci_layout``: an OCI image layout written in pure Python (tarfile + gzip with fixed
  mtimes), holding a three-layer image under ``IMAGE_REF`` and an amd64 + arm64 index under
  ``INDEX_REF``; ``oci_layout`` is one per session, which tests only read.
- ``registry``: the registry under test as ``host:port``; cairn (``cairn_server``) unless
  ``CAIRN_TEST_REGISTRY=docker-registry`` is set, which points the generic client tests at the
  reference registry to check the tests themselves.
- ``docker_registry``: Debian's ``docker-registry serve`` (CNCF distribution 2.8.2) on a free
  loopback port, as a peer.
- ``tools``: skopeo, podman and buildah with their storage, auth file, registries.conf and
  temporary files kept in one scratch directory (vfs driver, so no mounts are needed).
- ``assert_blobs_identical``: two layouts hold the same blobs, byte for byte.

Not for: the conformance suite, or anything that needs a container runtime.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.conftest import BACKENDS, Backend, CairnServer, free_port, require_binary

TIMEOUT = 120.0
"""Seconds any one client command may take."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])

IMAGE_REF = "v1"
INDEX_REF = "multi"
BIG_LAYER_BYTES = 4 * 1024 * 1024 + 321
MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"


# --------------------------------------------------------------------------- subprocesses


def run(command: list[str], *, check: bool = True, timeout: float = TIMEOUT,
        env: dict[str, str] | None = None, input: bytes | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` with a timeout; on failure (when ``check``) fail with its stderr."""
    result = subprocess.run(command, input=input, capture_output=True, timeout=timeout,
                            env=env, cwd=cwd, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')}{result.stdout.decode(errors='replace')[-2000:]}"
        )
    return result


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- OCI layout


@dataclass(frozen=True)
class Blob:
    """Bytes with a media type: a layer, a config, a manifest or an index."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class LayoutImage:
    """One image manifest with its config and layers, all as written into the layout."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    diff_ids: tuple[str, ...]

    def blobs(self) -> list[Blob]:
        return [self.manifest, self.config, *self.layers]

    def digests(self) -> set[str]:
        return {b.digest for b in self.blobs()}


@dataclass(frozen=True)
class OciLayout:
    """An OCI image layout on disk: ``image`` is tagged ``IMAGE_REF``, ``index`` is ``INDEX_REF``."""

    path: Path
    image: LayoutImage
    index: Blob
    platforms: dict[str, LayoutImage]

    def ref(self, name: str) -> str:
        """The skopeo/podman transport reference, ``oci:<dir>:<name>``."""
        return f"oci:{self.path}:{name}"

    def index_digests(self) -> set[str]:
        """Every blob reachable from the multi-arch index, the index included."""
        out = {self.index.digest}
        for image in self.platforms.values():
            out |= image.digests()
        return out


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A deterministic tar of ``files`` (directories made as needed); returns (tar, gzip of it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen: set[str] = set()
        for name, data in sorted(files.items()):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directory = "/".join(parts[:i])
                if directory not in seen:
                    seen.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, MTIME
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


def _image(files_per_layer: list[dict[str, bytes]], arch: str, cmd: list[str]) -> LayoutImage:
    layers, diff_ids = [], []
    for files in files_per_layer:
        raw, compressed = _tar_gz(files)
        layers.append(Blob(OCI_LAYER_GZIP, compressed))
        diff_ids.append(sha256(raw))
    config = Blob(OCI_CONFIG, canonical_json({
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"cairn test layer {i}"}
                    for i in range(len(layers))],
    }))
    manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }))
    return LayoutImage(manifest, config, tuple(layers), tuple(diff_ids))


def build_oci_layout(path: Path, seed: int = 20240601) -> OciLayout:
    """Write an OCI image layout at ``path`` (created) and describe what is in it.

    ``image``: three gzip layers (a few hundred bytes, ~300 KiB of text, ~4 MiB of random bytes)
    and a config whose ``rootfs.diff_ids`` are the sha256 of the uncompressed tars.
    ``index``: an OCI index of an amd64 and an arm64 image, one small layer each.
    """
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(500)]
    text = b" ".join(rng.choice(words) for _ in range(50_000))
    image = _image([
        {"etc/hello.txt": b"hello from cairn\n", "etc/os-release": b'NAME="cairn test"\n'},
        {"usr/share/doc/words.txt": text},
        {"opt/data/random.bin": rng.randbytes(BIG_LAYER_BYTES)},
    ], "amd64", ["/etc/hello.txt"])
    platforms = {
        arch: _image([{"arch.txt": f"built for {arch}\n".encode()}], arch, ["/arch.txt"])
        for arch in ("amd64", "arm64")
    }
    index = Blob(OCI_INDEX, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [img.manifest.descriptor(platform={"architecture": arch, "os": "linux"})
                      for arch, img in platforms.items()],
    }))

    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True)
    everything = [*image.blobs(), index, *(b for img in platforms.values() for b in img.blobs())]
    for blob in everything:
        (blobs_dir / blob.digest.split(":", 1)[1]).write_bytes(blob.data)
    (path / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (path / "index.json").write_bytes(canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            image.manifest.descriptor(annotations={REF_NAME: IMAGE_REF}),
            index.descriptor(annotations={REF_NAME: INDEX_REF}),
        ],
    }))
    return OciLayout(path, image, index, platforms)


@pytest.fixture(scope="session")
def oci_layout(tmp_path_factory: pytest.TempPathFactory) -> OciLayout:
    """One layout per session; tests read it and write their copies elsewhere."""
    return build_oci_layout(tmp_path_factory.mktemp("layout") / "src")


def layout_blobs(layout: Path) -> dict[str, Path]:
    """Digest -> file for every blob in an OCI layout (any algorithm)."""
    out: dict[str, Path] = {}
    for algorithm_dir in sorted((layout / "blobs").iterdir()):
        for blob in sorted(algorithm_dir.iterdir()):
            out[f"{algorithm_dir.name}:{blob.name}"] = blob
    return out


def layout_refs(layout: Path) -> dict[str, dict[str, Any]]:
    """``org.opencontainers.image.ref.name`` -> descriptor, from ``index.json``."""
    index = json.loads((layout / "index.json").read_bytes())
    return {d["annotations"][REF_NAME]: d for d in index["manifests"]
            if REF_NAME in d.get("annotations", {})}


def assert_blobs_identical(expected: Path | OciLayout, actual: Path, digests: Iterable[str]) -> None:
    """``actual`` holds exactly ``digests``, each byte-identical to ``expected``'s and to its name."""
    expected_path = expected.path if isinstance(expected, OciLayout) else expected
    want = set(digests)
    theirs = layout_blobs(actual)
    assert set(theirs) == want, (
        f"missing {sorted(want - set(theirs))}, unexpected {sorted(set(theirs) - want)}"
    )
    ours = layout_blobs(expected_path)
    for digest in sorted(want):
        data = theirs[digest].read_bytes()
        assert sha256(data) == digest, f"{theirs[digest]} does not hash to its name"
        assert data == ours[digest].read_bytes(), f"{digest} differs from {expected_path}"


# --------------------------------------------------------------------------- registries


def registry_url(server: CairnServer) -> str:
    """``host:port`` of cairn's registry face, as image references spell it."""
    return server.http_url.removeprefix("http://")


@dataclass
class DockerRegistry:
    """A Debian ``docker-registry serve`` child process (CNCF distribution 2.8.2)."""

    root: Path
    port: int = field(default_factory=free_port)
    htpasswd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, timeout: float = 20.0) -> None:
        config = self.root / "config.yml"
        lines = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {self.root / 'reg'}}}",
            "  delete: {enabled: true}",
            "  cache: {blobdescriptor: inmemory}",
            "http:",
            f"  addr: {self.host}",
            "  headers: {X-Content-Type-Options: [nosniff]}",
        ]
        if self.htpasswd is not None:
            lines.append(f"auth: {{htpasswd: {{realm: test-realm, path: {self.htpasswd}}}}}")
        config.write_text("\n".join(lines) + "\n")
        with open(self.root / "reg.log", "wb") as log:
            self.proc = subprocess.Popen([require_binary("docker-registry"), "serve", str(config)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer /v2/:\n{self.log()}")

    def log(self) -> str:
        path = self.root / "reg.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    root = tmp_path / "docker-registry"
    root.mkdir()
    registry = DockerRegistry(root)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def registry(request: pytest.FixtureRequest, cairn_backend: Backend) -> str:
    """``host:port`` of the registry under test: cairn on each backend, or docker-registry when
    ``CAIRN_TEST_REGISTRY=docker-registry`` (to validate a test against the reference)."""
    if os.environ.get("CAIRN_TEST_REGISTRY") == "docker-registry":
        if cairn_backend.name != BACKENDS[0]:
            pytest.skip("docker-registry stands in for cairn: one run is enough")
        peer: DockerRegistry = request.getfixturevalue("docker_registry")
        return peer.host
    server: CairnServer = request.getfixturevalue("cairn_server")
    return registry_url(server)


def error_codes(response: requests.Response) -> list[str]:
    """The ``code`` of each entry in an OCI error body."""
    return [e["code"] for e in response.json()["errors"]]


def get_manifest(host: str, repository: str, reference: str,
                 accept: str = MANIFEST_ACCEPT) -> requests.Response:
    return requests.get(f"http://{host}/v2/{repository}/manifests/{reference}",
                        headers={"Accept": accept}, timeout=30)


def get_blob(host: str, repository: str, digest: str) -> requests.Response:
    return requests.get(f"http://{host}/v2/{repository}/blobs/{digest}", timeout=60)


def push_blob(host: str, repository: str, data: bytes,
              headers: dict[str, str] | None = None) -> requests.Response:
    """POST an upload session, then PUT ``data`` monolithically to its Location with ``digest=``.

    Returns the PUT's response (201 expected), or the POST's when that did not give 202.
    """
    started = requests.post(f"http://{host}/v2/{repository}/blobs/uploads/",
                            headers={**(headers or {}), "Content-Length": "0"}, timeout=30)
    if started.status_code != 202:
        return started
    location = urljoin(f"http://{host}/", started.headers["Location"])
    separator = "&" if urlsplit(location).query else "?"
    return requests.put(f"{location}{separator}digest={sha256(data)}", data=data, timeout=60,
                        headers={**(headers or {}), "Content-Type": "application/octet-stream"})


# --------------------------------------------------------------------------- skopeo, podman, buildah


@dataclass
class ContainerTools:
    """skopeo, podman and buildah confined to ``root``: storage, run state, auth, temp files."""

    root: Path

    def __post_init__(self) -> None:
        for sub in ("storage", "run", "tmp", "libpod-tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.registries_conf.write_text("")
        self.auth_file.write_text('{"auths": {}}')

    @property
    def registries_conf(self) -> Path:
        return self.root / "registries.conf"

    @property
    def auth_file(self) -> Path:
        return self.root / "auth.json"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CAIRN_", "REGISTRY_AUTH", "CONTAINERS_", "DOCKER_"))}
        env["REGISTRY_AUTH_FILE"] = str(self.auth_file)
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.registries_conf)
        env["TMPDIR"] = str(self.root / "tmp")
        return env

    def storage_flags(self) -> list[str]:
        return ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--storage-driver", "vfs"]

    def storage_ref(self, image: str) -> str:
        """A skopeo ``containers-storage:`` reference into this store."""
        return f"containers-storage:[vfs@{self.root / 'storage'}+{self.root / 'run'}]{image}"

    def skopeo(self, *args: str, check: bool = True,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        return run([require_binary("skopeo"), "--registries-conf", str(self.registries_conf), *args],
                   check=check, timeout=timeout, env=self.env())

    def podman(self, *args: str, check: bool = True,
               timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        return run([require_binary("podman"), *self.storage_flags(),
                    "--tmpdir", str(self.root / "libpod-tmp"), "--cgroup-manager", "cgroupfs",
                    "--events-backend", "file", *args],
                   check=check, timeout=timeout, env=self.env())

    def buildah(self, *args: str, check: bool = True,
                timeout: float = TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        return run([require_binary("buildah"), *self.storage_flags(), *args],
                   check=check, timeout=timeout, env=self.env())


@pytest.fixture
def tools() -> Iterator[ContainerTools]:
    path = Path(tempfile.mkdtemp(prefix="cairn-ct-", dir="/tmp"))
    try:
        yield ContainerTools(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)
