"""Side-by-side benchmark of garbage collection: ``cairn gc`` against distribution's ``garbage-collect``.

Run: ``.venv/bin/python bench/gc.py [--images 200] [--layers 4] [--layer-kib 64]``
(Debian's ``docker-registry`` on PATH). Progress goes to stderr, the table to stdout.

Both registries get the same data over ``/v2/``: ``--images`` images in one repository,
each a config and ``--layers`` random layers of ``--layer-kib`` KiB plus one layer all
images share, each tagged. Then every other tag is deleted (``DELETE`` of the manifest
by digest on distribution, which has no tag delete; ``DELETE`` of the tag on cairn) and
each store collects:

- distribution: stopped, then ``docker-registry garbage-collect --delete-untagged``
  (offline: it needs the registry stopped or read-only);
- cairn: ``python -m cairn gc`` while the server keeps serving (``--gc-grace-seconds 0``).

Reported: wall seconds, blobs deleted, and blobs examined per second; the ratio is
cairn/distribution on blobs per second (above 1.0 cairn is faster). Afterwards every
kept tag is pulled back from both (manifest, config and layers), so a collection that
deleted too much shows as an error rather than as speed.

Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from _registry_client import Registry, new_session
from _registry_servers import CairnRegistry, Distribution, RegistryServer

REPO = "bench/gc"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _images(count: int, layers: int, layer_bytes: int) -> list[tuple[bytes, list[bytes]]]:
    """(manifest, blobs) per image; deterministic so both registries get the same bytes."""
    shared = hashlib.sha256(b"shared").digest() * (layer_bytes // 32)
    images = []
    for i in range(count):
        seed = hashlib.sha256(f"image {i}".encode()).digest()
        blobs = [json.dumps({"architecture": "amd64", "os": "linux", "i": i}).encode(), shared]
        blobs += [hashlib.sha256(seed + bytes([j])).digest() * (layer_bytes // 32) for j in range(layers)]
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, "digest": _digest(blobs[0]), "size": len(blobs[0])},
                "layers": [{"mediaType": LAYER, "digest": _digest(b), "size": len(b)} for b in blobs[1:]],
            }
        ).encode()
        images.append((manifest, blobs))
    return images


def _fill(server: RegistryServer, images: list[tuple[bytes, list[bytes]]]) -> None:
    client, session = Registry(server.name, server.base), new_session()
    pushed: set[str] = set()
    for i, (manifest, blobs) in enumerate(images):
        for blob in blobs:
            if _digest(blob) not in pushed:
                client.push_bytes(session, REPO, blob, _digest(blob))
                pushed.add(_digest(blob))
        response = session.put(
            f"{server.base}/v2/{REPO}/manifests/t{i}", data=manifest, headers={"Content-Type": MANIFEST}, timeout=30
        )
        response.raise_for_status()


def _untag_half(server: RegistryServer, images: list[tuple[bytes, list[bytes]]]) -> None:
    session = new_session()
    for i in range(0, len(images), 2):
        reference = _digest(images[i][0]) if isinstance(server, Distribution) else f"t{i}"
        response = session.delete(f"{server.base}/v2/{REPO}/manifests/{reference}", timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"{server.name}: DELETE {reference} answered {response.status_code}")


def _check_kept(server: RegistryServer, images: list[tuple[bytes, list[bytes]]]) -> None:
    session = new_session()
    for i in range(1, len(images), 2):
        manifest, blobs = images[i]
        got = session.get(f"{server.base}/v2/{REPO}/manifests/t{i}", headers={"Accept": MANIFEST}, timeout=30)
        if got.content != manifest:
            raise RuntimeError(f"{server.name}: tag t{i} lost after GC ({got.status_code})")
        for blob in blobs:
            got = session.get(f"{server.base}/v2/{REPO}/blobs/{_digest(blob)}", timeout=30)
            if got.content != blob:
                raise RuntimeError(f"{server.name}: blob {_digest(blob)} of t{i} lost after GC ({got.status_code})")


def _blob_files(root: Path) -> int:
    return sum(1 for path in root.rglob("data") if path.is_file()) if root.exists() else 0


def _collect_distribution(server: Distribution) -> tuple[float, int]:
    before = _blob_files(server.data_dir / "docker" / "registry" / "v2" / "blobs")
    server.stop()
    started = time.perf_counter()
    subprocess.run(
        ["docker-registry", "garbage-collect", "--delete-untagged", str(server.directory / "config.yml")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    after = _blob_files(server.data_dir / "docker" / "registry" / "v2" / "blobs")
    server.start()
    return seconds, before - after


def _collect_cairn(server: CairnRegistry) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "cairn", "gc", "--data-dir", str(server.data_dir), "-o", "json",
         "--gc-grace-seconds", "0"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    return seconds, int(json.loads(out.stdout)["blobs_deleted"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-kib", type=int, default=64)
    args = parser.parse_args()
    images = _images(args.images, args.layers, args.layer_kib * 1024)
    blobs = len({_digest(b) for _, bs in images for b in bs}) + len(images)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cairn-gc-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        dist = Distribution(Path(tmp) / "distribution")
        cairn = CairnRegistry(Path(tmp) / "cairn", extra_args="--gc-interval-seconds 0")
        for server, collect in ((dist, _collect_distribution), (cairn, _collect_cairn)):
            server.start()
            try:
                print(f"{server.name}: pushing {len(images)} images ({blobs} blobs)", file=sys.stderr)
                _fill(server, images)
                _untag_half(server, images)
                seconds, deleted = collect(server)  # type: ignore[operator]
                _check_kept(server, images)
                rows.append((server.name, seconds, deleted, blobs / seconds))
            except requests.RequestException as exc:
                raise SystemExit(f"{server.name}: {exc}") from None
            finally:
                server.stop()
    print(f"{'store':<14}{'seconds':>10}{'deleted':>10}{'blobs/s':>12}")
    for name, seconds, deleted, rate in rows:
        print(f"{name:<14}{seconds:>10.2f}{deleted:>10}{rate:>12.0f}")
    print(f"ratio cairn/distribution (blobs examined per second): {rows[1][3] / rows[0][3]:.2f}")


if __name__ == "__main__":
    main()
