#!/usr/bin/env python3
"""Image pull and push: cairn's ImageService against ``skopeo copy``, both with docker-registry.

Run: ``.venv/bin/python bench/images.py [--runs 3] [--workloads big,small] [--ops pull,push]``
(Debian's ``docker-registry`` and ``skopeo`` on PATH). Progress goes to stderr, the table to stdout.

Workloads (images built in Python, deterministic, gzip level 0 so skopeo passes layers through):

- ``big``: ``--big-layers`` x ``--big-layer-mib`` (4 x 64 MiB) layers of random bytes;
- ``small``: ``--small-layers`` (50) layers of ``--small-files`` (8) random 8 KiB files each.

Operations, each against docker-registry (distribution 2.8.2) on a free loopback port:

- ``pull``: the image is in a source registry (seeded once with ``skopeo copy``, not timed).
  skopeo: ``skopeo copy docker://SRC/bench/<w>:v1 oci:<fresh dir>:x``.
  cairn: ``ImageService.Pull`` into a ``cairn serve`` started afresh for the run (empty store),
  until the stream ends (layers stored, diff IDs verified, image recorded).
- ``push``: into an empty docker-registry started for that one push (so nothing is there to
  mount or skip). skopeo: ``skopeo copy --preserve-digests oci:<layout>:v1 docker://DST/...``.
  cairn: ``ImageService.Tag`` + ``Push`` of the image it pulled (same bytes, same digests).

MB/s is 10^6 bytes/s over every blob of the image (layers, config, manifest). Figures are
medians over ``--runs``; cairn and skopeo alternate going first. The ratio is cairn/skopeo
(above 1.0 cairn is faster). CPU columns: seconds of the cairn server, of skopeo, and of
docker-registry, medians per operation. Every result is checked (digests, image ID); a wrong
one aborts the benchmark. ``--max-minutes`` bounds the whole invocation.

Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from _profile import PROFILERS, Profiler
from _registry_image import TAG, Image, build_layout
from _registry_servers import Distribution, distribution_version
from _servers import Cairn

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc

SKOPEO_TIMEOUT = 900.0
RPC_TIMEOUT = 900.0
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- images -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    name: str
    image: Image
    config_digest: str
    layers: int


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def small_layout(directory: Path, layers: int, files: int, file_kib: int) -> Image:
    """``layers`` layers of ``files`` seeded random files each, gzip level 0, tagged ``v1``."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    blobs: dict[str, int] = {}

    def put(data: bytes) -> str:
        digest = _sha256(data)
        (blob_dir / digest.removeprefix("sha256:")).write_bytes(data)
        blobs[digest] = len(data)
        return digest

    rng = random.Random("cairn-bench-small-layers")
    descriptors, diff_ids = [], []
    for i in range(layers):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for j in range(files):
                data = rng.randbytes(file_kib << 10)
                info = tarfile.TarInfo(f"layer{i:03d}/file{j:02d}.bin")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        raw = buffer.getvalue()
        diff_ids.append(_sha256(raw))
        gz = gzip.compress(raw, compresslevel=0, mtime=0)
        descriptors.append({"mediaType": OCI_LAYER, "digest": put(gz), "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}},
                        sort_keys=True, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
        "layers": descriptors,
    }, sort_keys=True, separators=(",", ":")).encode()
    manifest_digest = put(manifest)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                            "annotations": {"org.opencontainers.image.ref.name": TAG}}]}
    (directory / "index.json").write_text(json.dumps(index, sort_keys=True, separators=(",", ":")))
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return Image(directory, manifest_digest, blobs)


def config_digest(image: Image) -> str:
    manifest = json.loads((image.layout / "blobs" / "sha256" /
                           image.manifest_digest.removeprefix("sha256:")).read_bytes())
    return str(manifest["config"]["digest"])


# -- measuring ----------------------------------------------------------------------------------
def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: skopeo
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Sample:
    seconds: float
    cairn_cpu: float
    skopeo_cpu: float
    registry_cpu: float


def measure(action: Callable[[], object], cairn: Cairn | None, registry: Distribution) -> Sample:
    cairn0 = cairn.cpu() if cairn else 0.0
    reg0, kids0 = registry.cpu(), _children_cpu()
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    return Sample(
        seconds,
        (cairn.cpu() - cairn0) if cairn else 0.0,
        _children_cpu() - kids0,
        registry.cpu() - reg0,
    )


def skopeo(*args: str) -> None:
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=SKOPEO_TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace')[-2000:]}")


# -- the benchmark ------------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, profiler: Profiler) -> None:
        self.args = args
        self.profiler = profiler
        self.work = work
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.samples: dict[tuple[str, str, str], list[Sample]] = defaultdict(list)
        self.counter = 0

    def fresh(self, prefix: str) -> Path:
        self.counter += 1
        path = self.work / f"{prefix}-{self.counter}"
        path.mkdir(parents=True)
        return path

    @contextmanager
    def registry(self) -> Iterator[Distribution]:
        directory = self.fresh("registry")
        server = Distribution(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)

    @contextmanager
    def cairn(self) -> Iterator[tuple[Cairn, pb_grpc.ImageServiceStub]]:
        directory = self.fresh("cairn")
        server = Cairn(directory, extra_args=self.args.cairn_args)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        try:
            yield server, pb_grpc.ImageServiceStub(channel)
        finally:
            channel.close()
            server.stop()
            shutil.rmtree(directory, ignore_errors=True)

    def record(self, workload: Workload, op: str, who: str, sample: Sample) -> None:
        self.samples[(workload.name, op, who)].append(sample)
        size = workload.image.size
        log(f"  {workload.name:<6} {op:<5} {who:<7} {size / sample.seconds / 1e6:9.1f} MB/s "
            f"({sample.seconds:.2f}s; cairn CPU {sample.cairn_cpu:.2f}s, skopeo CPU {sample.skopeo_cpu:.2f}s, "
            f"registry CPU {sample.registry_cpu:.2f}s)")

    # -- pull -------------------------------------------------------------------------------
    def pull_skopeo(self, workload: Workload, source: Distribution) -> None:
        target = self.fresh("skopeo-pull")
        sample = measure(lambda: skopeo("copy", "--src-tls-verify=false", "--preserve-digests",
                                        f"docker://127.0.0.1:{source.port}/bench/{workload.name}:{TAG}",
                                        f"oci:{target}:x"),
                         None, source)
        index = json.loads((target / "index.json").read_text())
        if index["manifests"][0]["digest"] != workload.image.manifest_digest:
            raise RuntimeError(f"skopeo pulled {index['manifests'][0]['digest']}, "
                               f"expected {workload.image.manifest_digest}")
        shutil.rmtree(target, ignore_errors=True)
        self.record(workload, "pull", "skopeo", sample)

    def pull_cairn(self, workload: Workload, source: Distribution, cairn: Cairn,
                   stub: pb_grpc.ImageServiceStub) -> str:
        reference = f"127.0.0.1:{source.port}/bench/{workload.name}:{TAG}"
        last: list[pb.PullProgress] = []

        def action() -> None:
            for message in stub.Pull(pb.PullImageRequest(reference=reference), timeout=RPC_TIMEOUT):
                last[:] = [message]

        with self.profiler.phase(cairn, f"pull-{workload.name}-{self.counter}"):
            sample = measure(action, cairn, source)
        if not last or not last[0].status.startswith("Status: Downloaded newer image"):
            raise RuntimeError(f"cairn pull ended with {last}")
        image_id = stub.Inspect(pb.InspectImageRequest(id=reference)).id
        if image_id != workload.config_digest:
            raise RuntimeError(f"cairn pulled image {image_id}, expected {workload.config_digest}")
        self.record(workload, "pull", "cairn", sample)
        return reference

    # -- push -------------------------------------------------------------------------------
    def push_skopeo(self, workload: Workload) -> None:
        with self.registry() as target:
            sample = measure(lambda: skopeo("copy", "--dest-tls-verify=false", "--preserve-digests",
                                            f"oci:{workload.image.layout}:{TAG}",
                                            f"docker://127.0.0.1:{target.port}/bench/{workload.name}:{TAG}"),
                             None, target)
        self.record(workload, "push", "skopeo", sample)

    def push_cairn(self, workload: Workload, cairn: Cairn, stub: pb_grpc.ImageServiceStub,
                   pulled: str) -> None:
        with self.registry() as target:
            repo = f"127.0.0.1:{target.port}/bench/{workload.name}"
            stub.Tag(pb.TagImageRequest(source=pulled, repo=repo, tag=TAG))
            last: list[pb.PushProgress] = []

            def action() -> None:
                for message in stub.Push(pb.PushImageRequest(reference=f"{repo}:{TAG}"), timeout=RPC_TIMEOUT):
                    last[:] = [message]

            sample = measure(action, cairn, target)
        want = f"{TAG}: digest: {workload.image.manifest_digest} size: "
        if not last or not last[0].status.startswith(want):
            raise RuntimeError(f"cairn push ended with {last}, expected {want}...")
        self.record(workload, "push", "cairn", sample)

    # -- one run ------------------------------------------------------------------------------
    def run(self, run: int, workloads: list[Workload], source: Distribution) -> None:
        cairn_first = run % 2 == 0
        for workload in workloads:
            if time.monotonic() > self.deadline:
                log("--max-minutes reached: stopping")
                return
            log(f"run {run + 1}, {workload.name} ({'cairn' if cairn_first else 'skopeo'} first)")
            with self.cairn() as (cairn, stub):
                if "pull" in self.args.ops:
                    if not cairn_first:
                        self.pull_skopeo(workload, source)
                    pulled = self.pull_cairn(workload, source, cairn, stub)
                    if cairn_first:
                        self.pull_skopeo(workload, source)
                else:
                    pulled = self.pull_cairn(workload, source, cairn, stub)  # untimed seeding
                    self.samples[(workload.name, "pull", "cairn")].pop()
                if "push" in self.args.ops:
                    if not cairn_first:
                        self.push_skopeo(workload)
                    self.push_cairn(workload, cairn, stub, pulled)
                    if cairn_first:
                        self.push_skopeo(workload)

    # -- report -------------------------------------------------------------------------------
    def report(self, workloads: list[Workload]) -> str:
        rows = [["workload", "op", "skopeo MB/s", "cairn MB/s", "cairn/skopeo",
                 "cairn CPU s", "skopeo CPU s", "registry CPU s (skopeo/cairn)", "runs"]]
        for workload in workloads:
            for op in ("pull", "push"):
                ours = self.samples.get((workload.name, op, "cairn"), [])
                theirs = self.samples.get((workload.name, op, "skopeo"), [])
                if not ours or not theirs:
                    continue
                size = workload.image.size
                cairn_mbps = statistics.median(size / s.seconds / 1e6 for s in ours)
                skopeo_mbps = statistics.median(size / s.seconds / 1e6 for s in theirs)
                rows.append([
                    workload.name, op, f"{skopeo_mbps:.1f}", f"{cairn_mbps:.1f}",
                    f"{cairn_mbps / skopeo_mbps:.2f}",
                    f"{statistics.median(s.cairn_cpu for s in ours):.2f}",
                    f"{statistics.median(s.skopeo_cpu for s in theirs):.2f}",
                    f"{statistics.median(s.registry_cpu for s in theirs):.2f}/"
                    f"{statistics.median(s.registry_cpu for s in ours):.2f}",
                    f"{min(len(ours), len(theirs))}",
                ])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                         for row in rows)


def header(args: argparse.Namespace, workloads: list[Workload]) -> str:
    lines = [
        f"cairn image service vs skopeo copy, docker-registry {distribution_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    ]
    for w in workloads:
        lines.append(f"  {w.name}: {w.layers} layers, {w.image.size / 1e6:.1f} MB (manifest {w.image.manifest_digest})")
    lines.append(f"runs: {args.runs}; MB/s = 10^6 bytes/s over all blobs; ratio = cairn/skopeo, > 1 is faster")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workloads", default="big,small")
    parser.add_argument("--ops", default="pull,push")
    parser.add_argument("--big-layers", type=int, default=4)
    parser.add_argument("--big-layer-mib", type=int, default=64)
    parser.add_argument("--small-layers", type=int, default=50)
    parser.add_argument("--small-files", type=int, default=8)
    parser.add_argument("--small-file-kib", type=int, default=8)
    parser.add_argument("--cairn-args", default="", help="extra `cairn serve` flags")
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--profile-dir", type=Path, help="sample the cairn server per pull into DIR")
    parser.add_argument("--profiler", choices=PROFILERS, default="py-spy", help="sampler for --profile-dir")
    args = parser.parse_args()
    args.ops = set(args.ops.split(","))
    for tool in ("skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install skopeo docker-registry)")

    work = Path(tempfile.mkdtemp(prefix="cairn-img-bench-", dir="/tmp"))
    try:
        workloads = []
        names = args.workloads.split(",")
        log("building images ...")
        if "big" in names:
            image = build_layout(work / "big", layers=args.big_layers, layer_mib=args.big_layer_mib)
            workloads.append(Workload("big", image, config_digest(image), args.big_layers))
        if "small" in names:
            image = small_layout(work / "small", args.small_layers, args.small_files, args.small_file_kib)
            workloads.append(Workload("small", image, config_digest(image), args.small_layers))
        bench = Bench(args, work, Profiler(args.profile_dir, args.profiler))
        with bench.registry() as source:
            for workload in workloads:  # seeding, not timed
                skopeo("copy", "--dest-tls-verify=false", "--preserve-digests", f"oci:{workload.image.layout}:{TAG}",
                       f"docker://127.0.0.1:{source.port}/bench/{workload.name}:{TAG}")
            for run in range(args.runs):
                bench.run(run, workloads, source)
        print(header(args, workloads))
        print(bench.report(workloads))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
