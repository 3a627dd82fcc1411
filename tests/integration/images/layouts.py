"""Deterministic test images, written as OCI image layouts in pure Python (no network, no daemon).

- :func:`busybox_image`: a two-layer image around Debian's static ``/bin/busybox``
  (busybox-static): layer 1 is ``bin/busybox`` with applet symlinks, ``etc/passwd`` and
  ``etc/group`` (``root`` and ``app`` uid/gid 1000), ``tmp``, ``root`` and ``home/app``;
  layer 2 a few text files. The config has Env, Cmd, WorkingDir, Labels, ExposedPorts,
  Volumes, an author and a fixed ``created``, so Inspect has something to map.
- :func:`small_image`: a one-layer image for another platform (a text file naming it).
- :func:`random_image`: one layer of incompressible bytes (gzip level 0), for the resume and
  corruption cases.
- :func:`write_layout`: the blobs plus ``index.json`` naming each image or index by ref name.

Same arguments, same bytes: every tar entry has a fixed mtime, owner and mode, gzip has mtime 0.
Not for: anything that needs a real registry (see ``conftest.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import platform
import random
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.registry.conftest import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME,
    Blob,
    canonical_json,
    sha256,
)

MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"
CREATED_UNIX = 1_700_000_000
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "rm", "mkdir", "id", "touch", "cp", "mv", "chown", "chmod",
           "env", "true", "false", "test", "[", "sleep", "printf", "pwd", "whoami", "ln", "stat",
           "wc", "head", "grep", "sed", "find")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\n"
LABELS = {"org.opencontainers.image.title": "cairn test busybox", "org.cairn.test": "busybox"}
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CAIRN_TEST=1"]
GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
          "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
          "riscv64": "riscv64"}


def host_arch() -> str:
    """The host's architecture in OCI (GOARCH) spelling: ``amd64``, ``arm64``, ..."""
    machine = platform.machine().lower()
    return GOARCH.get(machine, machine)


# --------------------------------------------------------------------------- tar layers


@dataclass(frozen=True)
class Entry:
    """One tar member: a regular file (``data``), a directory or a symlink (``target``)."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    kind: str = "file"  # file | dir | symlink
    target: str = ""
    uid: int = 0
    gid: int = 0


def file(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, data, mode, "file", uid=uid, gid=gid)


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, mode=mode, kind="dir", uid=uid, gid=gid)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, mode=0o777, kind="symlink", target=target)


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """A PAX tar of ``entries`` in the order given, parents added first when missing."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen: set[str] = set()
        for entry in entries:
            parts = entry.path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                parent = "/".join(parts[:i])
                if parent not in seen:
                    seen.add(parent)
                    tar.addfile(_info(directory(parent)))
            if entry.path in seen:
                continue
            seen.add(entry.path)
            info = _info(entry)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buffer.getvalue()


def _info(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mode, info.mtime, info.uid, info.gid = entry.mode, MTIME, entry.uid, entry.gid
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.target
    else:
        info.size = len(entry.data)
    return info


@dataclass(frozen=True)
class Layer:
    blob: Blob            # the gzip blob as pushed
    diff_id: str          # sha256 of the uncompressed tar
    uncompressed_size: int


def layer(entries: Iterable[Entry], compresslevel: int = 6) -> Layer:
    raw = tar_bytes(entries)
    return Layer(Blob(OCI_LAYER_GZIP, gzip.compress(raw, compresslevel=compresslevel, mtime=0)),
                 sha256(raw), len(raw))


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Image:
    """A manifest with its config and layers, and what the config says."""

    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]
    architecture: str
    variant: str | None = None
    config_json: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        """The image ID: the config digest."""
        return self.config.digest

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def diff_ids(self) -> list[str]:
        return [entry.diff_id for entry in self.layers]

    @property
    def size(self) -> int:
        """Sum of the uncompressed layer sizes (Docker's Size)."""
        return sum(entry.uncompressed_size for entry in self.layers)

    def chain_ids(self) -> list[str]:
        """ChainIDs, bottom layer first."""
        out: list[str] = []
        for diff_id in self.diff_ids:
            out.append(diff_id if not out else sha256(f"{out[-1]} {diff_id}".encode()))
        return out

    def blobs(self) -> list[Blob]:
        return [self.manifest, self.config, *(entry.blob for entry in self.layers)]

    def platform(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": "linux"}
        if self.variant:
            out["variant"] = self.variant
        return out


def make_image(layers: Sequence[Layer], *, arch: str, variant: str | None = None,
               config: dict[str, Any] | None = None, author: str = "",
               created: str = CREATED) -> Image:
    document: dict[str, Any] = {"created": created}
    if author:
        document["author"] = author
    document |= {"architecture": arch, "os": "linux"}
    if variant:
        document["variant"] = variant
    document["config"] = config or {}
    document["rootfs"] = {"type": "layers", "diff_ids": [entry.diff_id for entry in layers]}
    document["history"] = [{"created": created, "created_by": f"cairn test layer {i}"}
                           for i in range(len(layers))]
    config_blob = Blob(OCI_CONFIG, canonical_json(document))
    manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [entry.blob.descriptor() for entry in layers],
    }))
    return Image(manifest, config_blob, tuple(layers), arch, variant, document)


def busybox_layers() -> tuple[Layer, Layer]:
    binary = BUSYBOX.read_bytes()
    base = [
        directory("bin"),
        file("bin/busybox", binary, 0o755),
        *(symlink(f"bin/{name}", "busybox") for name in APPLETS),
        directory("etc"),
        file("etc/passwd", PASSWD),
        file("etc/group", GROUP),
        directory("home"),
        directory("home/app", 0o755, 1000, 1000),
        directory("root", 0o700),
        directory("tmp", 0o1777),
        directory("usr"),
        directory("var"),
    ]
    extra = [
        file("etc/motd", b"welcome to the cairn test busybox\n"),
        file("usr/share/cairn/hello.txt", b"hello from cairn\n"),
        file("srv/data/numbers.txt", b"".join(b"%d\n" % i for i in range(1000))),
    ]
    return layer(base), layer(extra)


def busybox_image(arch: str | None = None) -> Image:
    return make_image(busybox_layers(), arch=arch or host_arch(), author="cairn tests", config={
        "User": "",
        "Env": ENV,
        "Cmd": ["sh"],
        "WorkingDir": "/",
        "Labels": LABELS,
        "ExposedPorts": {"8080/tcp": {}},
        "Volumes": {"/data": {}},
    })


def small_image(arch: str, variant: str | None = None) -> Image:
    name = arch + (f"/{variant}" if variant else "")
    files = [file("platform.txt", f"built for linux/{name}\n".encode())]
    return make_image([layer(files)], arch=arch, variant=variant,
                      config={"Env": ENV[:1], "Cmd": ["cat", "/platform.txt"],
                              "Labels": {"org.cairn.platform": name}})


def dated_image(year: int, tier: str) -> Image:
    """A one-layer image created on 1 June of ``year``, labelled with the year and ``tier``."""
    created = f"{year}-06-01T12:00:00Z"
    files = [file("year.txt", f"{year}\n".encode())]
    return make_image([layer(files)], arch=host_arch(), created=created,
                      config={"Cmd": ["cat", "/year.txt"],
                              "Labels": {"org.cairn.year": str(year), "org.cairn.tier": tier}})


def random_image(size: int, seed: str) -> Image:
    """One layer holding ``size`` seeded random bytes, gzip level 0 (stored, about ``size``)."""
    payload = random.Random(seed).randbytes(size)
    return make_image([layer([file("random.bin", payload)], compresslevel=0)], arch=host_arch(),
                      config={"Cmd": ["true"], "Labels": {"org.cairn.seed": seed}})


def index_of(images: Sequence[Image]) -> Blob:
    return Blob(OCI_INDEX, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [img.manifest.descriptor(platform=img.platform()) for img in images],
    }))


# --------------------------------------------------------------------------- layouts


def write_layout(path: Path, refs: dict[str, Image | tuple[Blob, Sequence[Image]]]) -> Path:
    """An OCI layout at ``path``: ``refs`` maps a ref name to an image or to (index, images)."""
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    manifests = []
    for name, what in refs.items():
        images: Sequence[Image]
        if isinstance(what, Image):
            top, images = what.manifest, [what]
        else:
            top, images = what
        for blob in [top, *(b for img in images for b in img.blobs())]:
            target = blobs_dir / blob.digest.split(":", 1)[1]
            if not target.exists():
                target.write_bytes(blob.data)
        manifests.append(top.descriptor(annotations={REF_NAME: name}))
    (path / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (path / "index.json").write_bytes(canonical_json({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
    return path


def digest_of_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()
