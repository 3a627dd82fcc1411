"""A deterministic OCI image layout for the skopeo workload, in pure Python.

``build_layout(dir, layers=4, layer_mib=64)`` writes an OCI layout
(oci-distribution.md 9.2) holding one image tagged ``v1``: ``layers`` layers,
each a tar of one file of ``layer_mib`` MiB of seeded pseudo-random bytes,
gzip-compressed at level 0. Level 0 makes a valid gzip stream (the magic
bytes skopeo looks for) whose deflate blocks are stored, so building is fast
and skopeo passes the layers through as they are: it neither recompresses
nor decompresses them (random data would not shrink anyway). The config's
``rootfs.diff_ids`` are the sha256 of the uncompressed tars. Same arguments,
same bytes, same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TAG", "Image", "build_layout"]

TAG = "v1"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Image:
    layout: Path
    manifest_digest: str
    blobs: dict[str, int]  # digest -> size: layers, config, manifest

    @property
    def size(self) -> int:
        """Bytes a copy moves: every blob plus the manifest."""
        return sum(self.blobs.values())


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _layer(index: int, size: int) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip level 0 of it) for layer ``index``."""
    payload = random.Random(f"cairn-bench-layer-{index}").randbytes(size)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"layer{index}.bin")
        info.size = size
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(payload))
    del payload
    tar_bytes = tar_buf.getvalue()
    return tar_bytes, gzip.compress(tar_bytes, compresslevel=0, mtime=0)


def build_layout(directory: Path, layers: int = 4, layer_mib: int = 64) -> Image:
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    blobs: dict[str, int] = {}

    def put(data: bytes) -> str:
        digest = _sha256(data)
        (blob_dir / digest.removeprefix("sha256:")).write_bytes(data)
        blobs[digest] = len(data)
        return digest

    layer_descriptors = []
    diff_ids = []
    for i in range(layers):
        tar_bytes, gz = _layer(i, layer_mib << 20)
        diff_ids.append(_sha256(tar_bytes))
        layer_descriptors.append({"mediaType": LAYER_TYPE, "digest": put(gz), "size": len(gz)})
        del tar_bytes, gz
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    config_digest = put(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
            "layers": layer_descriptors,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    manifest_digest = put(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index, sort_keys=True, separators=(",", ":")))
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return Image(directory, manifest_digest, blobs)
