"""Side-by-side benchmark of cairn's OCI registry face against distribution 2.8.2.

Run: ``.venv/bin/python bench/registry.py [--big-mib 1024] [--small-count 1000] [--runs 2]``
(Debian's ``docker-registry`` and ``skopeo`` on PATH). Progress goes to
stderr, the tables to stdout. ``--only peer`` runs distribution alone.

What it measures, in one invocation, on the same data, against both
registries (distribution configured as oci-distribution.md 9.1; cairn as
``python -m cairn serve`` whose HTTP address serves ``/v2/``), each on a free
loopback port:

- a big random blob (``--big-mib``, 1 GiB by default), pushed as
  ``POST uploads/`` + one monolithic ``PUT ?digest=`` whose body streams
  from a file, and (a second blob) as ``POST`` + ``PATCH`` chunks of
  ``--chunk-mib`` (64) MiB with ``Content-Range`` + a final empty ``PUT``;
  pulled with ``GET`` and ``requests`` ``iter_content(1 MiB)``, discarded,
  and again hashing with sha256 and checking the digest: MB/s;
- ``--small-count`` (1,000) distinct random 4 KiB blobs pushed (POST + PUT
  with the body), then each HEAD, then each GET, with one client thread,
  then another ``--small-count`` blobs the same way with ``--threads`` (8)
  threads; one ``requests.Session`` per thread on a keep-alive connection
  opened before timing: ops/s;
- ``skopeo copy`` of a ``--layers`` x ``--layer-mib`` (4 x 64 MiB) OCI image
  (built in Python, deterministic; gzip level 0, so skopeo passes the layers
  through) from an ``oci:`` layout into the registry, then back out to a new
  ``oci:`` layout: MB/s over the image's bytes;
- the machine's limits in the same run: ``hashlib.sha256`` over the big blob
  in memory in 1 MiB updates, and write + fsync of it next to the servers'
  data.

How to read the output: MB/s is 10^6 bytes/s. Figures are medians over
``--runs`` runs; the server order alternates (cairn first in odd-numbered
runs). Each run starts both servers afresh on empty data directories, so every
push is a first write, and removes them afterwards. The ratio is
cairn/distribution (above 1.0 cairn is faster); the target column checks the
issue's targets (1 GiB push >= 2x, pull >= 1x, small-blob push and GET >= 2x,
skopeo copy in and out >= 1x); a miss within 5 % is marked "within noise".
The last table gives each server's CPU (``/proc/<pid>/stat``, all threads)
per GiB or per operation, the client's CPU the same way (this process and
skopeo), the median per-op latency, and "other load": CPU the rest of the
machine used per wall second meanwhile. The machine is shared: treat
differences under ~15-30 % as noise.

A response other than the one the spec gives (status, Location, Range,
Docker-Content-Digest, length or bytes read back) is reported as
misbehaviour with the request, what was expected and what came back; that
operation's row is then left out for that server and the benchmark goes on.

Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import importlib.metadata
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from _measure import Blob, Timed, mbps, timed, write_fsync, write_random_file
from _profile import PROFILERS, Profiler
from _registry_client import Registry, UnexpectedResponse, new_session
from _registry_image import TAG, Image, build_layout
from _registry_report import CAIRN, MACHINE, PEER, Metric, Results, sections
from _registry_servers import CairnRegistry, Distribution, RegistryServer, distribution_version

GIB = 1 << 30
SMALL_SIZE = 4096
SKOPEO_TIMEOUT = 900.0
WORKLOADS = ("limits", "big", "small", "skopeo")


@dataclass(frozen=True)
class SmallBlob:
    data: bytes
    digest: str


@dataclass(frozen=True)
class Data:
    """Everything pushed, generated and hashed once before any timing."""

    big_put: Blob
    big_patch: Blob
    small: dict[int, list[SmallBlob]]  # by thread count
    image: Image | None


class PhaseFailed(Exception):
    """An operation failed for one server: the rest of its phase is skipped."""


class Bench:
    """One invocation: the data, the servers of the current run, and the results."""

    def __init__(self, args: argparse.Namespace, work: Path, data: Data, profiler: Profiler) -> None:
        self.args = args
        self.work = work
        self.data = data
        self.profiler = profiler
        self.results = Results()
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.names = {"peer": [PEER], "cairn": [CAIRN], "both": [CAIRN, PEER]}[args.only]
        self.servers: dict[str, RegistryServer] = {}
        self.run_dir = work

    # -- recording ------------------------------------------------------------------------------
    def record_big(self, metric: str, name: str, t: Timed, size: int) -> None:
        value = mbps(size, t.seconds)
        self.results.add(metric, name, value)
        gib = size / GIB
        self.results.add_cpu(metric, name, t.server_cpu / gib, t.client_cpu / gib, t.load)
        log(
            f"  {name:<12} {metric:<16} {value:9.1f} MB/s  ({t.seconds:.2f}s; server CPU "
            f"{t.server_cpu:.2f}s = {t.server_cpu / gib:.2f} s/GiB; client {t.client_cpu:.2f}s; "
            f"load {t.load:.2f})"
        )

    def misbehaved(self, name: str, metric: str, exc: BaseException) -> None:
        if isinstance(exc, UnexpectedResponse):
            entry = {
                "server": name,
                "phase": metric,
                "request": exc.request,
                "expected": exc.expected,
                "got": exc.got,
            }
        else:
            entry = {
                "server": name,
                "phase": metric,
                "request": "",
                "expected": "",
                "got": f"{type(exc).__name__}: {exc}",
            }
        if entry not in self.results.misbehaviour:
            self.results.misbehaviour.append(entry)  # printed after the tables
        log(f"  {name:<12} {metric:<16} FAILED: {exc}")

    @contextmanager
    def guarded(self, name: str, metric: str) -> Iterator[None]:
        """Turn a failed operation into a misbehaviour entry and :class:`PhaseFailed`."""
        try:
            yield
        except (UnexpectedResponse, requests.RequestException, subprocess.SubprocessError, OSError) as exc:
            self.misbehaved(name, metric, exc)
            raise PhaseFailed(metric) from exc

    # -- big blob -------------------------------------------------------------------------------
    def big_phase(self, name: str, run: int) -> None:
        server = self.servers[name]
        reg = Registry(name, server.base)
        repo = "bench/big"
        put, patch = self.data.big_put, self.data.big_patch
        with new_session() as session:
            reg.ping(session)

            def op(metric: str, action: Callable[[], object], size: int) -> bool:
                """Time one operation; False if it failed (recorded as misbehaviour)."""
                os.sync()  # earlier writes are not billed to this operation
                try:
                    with self.guarded(name, metric), self.profiler.phase(server, f"{metric}-run{run}"):
                        t = timed(server, action)
                except PhaseFailed:
                    return False
                self.record_big(metric, name, t, size)
                return True

            if op(
                "big_push_put", lambda: reg.push_file(session, repo, put.path, put.digest, put.size), put.size
            ):
                op("big_pull", lambda: reg.pull(session, repo, put.digest, put.size, verify=False), put.size)
                op(
                    "big_pull_verify",
                    lambda: reg.pull(session, repo, put.digest, put.size, verify=True),
                    put.size,
                )
            chunk = self.args.chunk_mib << 20
            if op(
                "big_push_patch",
                lambda: reg.push_chunked(session, repo, patch.path, patch.digest, patch.size, chunk),
                patch.size,
            ):
                with self.guarded(name, "big_push_patch (HEAD afterwards)"):
                    reg.head(session, repo, patch.digest, patch.size)

    # -- small blobs ----------------------------------------------------------------------------
    def small_phase(self, name: str, run: int) -> None:
        reg = Registry(name, self.servers[name].base)
        for threads, blobs in self.data.small.items():
            try:
                self.small_pass(reg, name, run, threads, blobs)
            except PhaseFailed:
                continue  # the next thread count still runs

    def small_pass(self, reg: Registry, name: str, run: int, threads: int, blobs: list[SmallBlob]) -> None:
        """Push ``blobs`` with ``threads`` threads, then HEAD each, then GET each."""
        repo = f"bench/small-t{threads}"

        def push(s: requests.Session, b: SmallBlob) -> None:
            reg.push_bytes(s, repo, b.data, b.digest)

        def head(s: requests.Session, b: SmallBlob) -> None:
            reg.head(s, repo, b.digest, len(b.data))

        def get(s: requests.Session, b: SmallBlob) -> None:
            reg.get_small(s, repo, b.digest, b.data)

        pushed = self.small_ops(f"small_push_t{threads}", name, run, blobs, threads, push)
        self.small_ops(f"small_head_t{threads}", name, run, pushed, threads, head)
        self.small_ops(f"small_get_t{threads}", name, run, pushed, threads, get)

    def small_ops(
        self,
        metric: str,
        name: str,
        run: int,
        blobs: list[SmallBlob],
        threads: int,
        op: Callable[[requests.Session, SmallBlob], None],
    ) -> list[SmallBlob]:
        """``op`` once per blob over ``threads`` sessions, bounded by --phase-budget; returns those done."""
        server = self.servers[name]
        reg = Registry(name, server.base)
        sessions = [new_session() for _ in range(threads)]
        with self.guarded(name, f"{metric} (GET /v2/ before timing)"):
            for s in sessions:
                reg.ping(s)  # open each keep-alive connection before timing
        parts = [blobs[k::threads] for k in range(threads)]
        done: list[list[SmallBlob]] = [[] for _ in range(threads)]
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors: list[BaseException] = []
        budget = self.args.phase_budget

        def worker(k: int) -> None:
            stop_at = time.monotonic() + budget
            try:
                for blob in parts[k]:
                    if errors or time.monotonic() > stop_at:
                        break
                    t0 = time.perf_counter()
                    op(sessions[k], blob)
                    latencies[k].append(time.perf_counter() - t0)
                    done[k].append(blob)
            except Exception as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

        def action() -> None:
            if threads == 1:
                worker(0)
                return
            pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
            for th in pool:
                th.start()
            for th in pool:
                th.join(budget + 60)

        try:
            with self.profiler.phase(server, f"{metric}-run{run}"):
                t = timed(server, action)
        finally:
            for s in sessions:
                s.close()
        finished = [b for part in done for b in part]
        count = len(finished)
        if errors:
            with self.guarded(name, metric):
                raise errors[0]
        if count < len(blobs):
            self.results.note(
                f"{name} {metric} run {run + 1}: --phase-budget reached after {count} of {len(blobs)}"
            )
        if not count:
            return finished
        self.results.add(metric, name, count / t.seconds)
        self.results.add_cpu(metric, name, t.server_cpu / count * 1000, t.client_cpu / count * 1000, t.load)
        ms = sorted(x * 1000 for part in latencies for x in part)
        self.results.latency_ms[metric][name].append(ms[len(ms) // 2])
        log(
            f"  {name:<12} {metric:<16} {count / t.seconds:9.1f} ops/s  ({count} ops in {t.seconds:.2f}s; "
            f"p50 {ms[len(ms) // 2]:.2f} ms, p99 {ms[min(len(ms) - 1, len(ms) * 99 // 100)]:.2f} ms; "
            f"server CPU {t.server_cpu / count * 1000:.2f} ms/op; load {t.load:.2f})"
        )
        return finished

    # -- skopeo ---------------------------------------------------------------------------------
    def skopeo_phase(self, name: str, run: int) -> None:
        image = self.data.image
        assert image is not None
        server = self.servers[name]
        ref = f"docker://{server.base.removeprefix('http://')}/bench/img:{TAG}"
        out = self.run_dir / f"pulled-{name}"
        steps = (
            ("skopeo_in", ["--dest-tls-verify=false", f"oci:{image.layout}:{TAG}", ref]),
            ("skopeo_out", ["--src-tls-verify=false", ref, f"oci:{out}:{TAG}"]),
        )
        for metric, copy_args in steps:
            command = ["skopeo", "--insecure-policy", "copy", "--quiet", *copy_args]
            os.sync()
            with self.guarded(name, metric), self.profiler.phase(server, f"{metric}-run{run}"):
                t = timed(server, functools.partial(skopeo, command))
            self.record_big(metric, name, t, image.size)
        with self.guarded(name, "skopeo_out (layout check)"):
            check_pulled(out, image)
        shutil.rmtree(out, ignore_errors=True)

    # -- machine limits -------------------------------------------------------------------------
    def limits(self) -> None:
        big = self.data.big_put
        server = self.servers[self.names[0]]
        buf = big.path.read_bytes()  # not timed
        t = timed(server, functools.partial(hash_memory, buf, big.digest))
        del buf
        self.results.add("hashlib", MACHINE, mbps(big.size, t.seconds))
        log(f"  {MACHINE:<12} {'hashlib':<16} {mbps(big.size, t.seconds):9.1f} MB/s  (load {t.load:.2f})")
        copy = self.run_dir / "fsync-copy"
        os.sync()
        t = timed(server, lambda: write_fsync(big.path, copy))
        copy.unlink()
        self.results.add("write_fsync", MACHINE, mbps(big.size, t.seconds))
        log(f"  {MACHINE:<12} {'write_fsync':<16} {mbps(big.size, t.seconds):9.1f} MB/s  (load {t.load:.2f})")

    # -- the whole run --------------------------------------------------------------------------
    def start_servers(self, run: int) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"run{run}-", dir=self.work))
        made: dict[str, RegistryServer] = {
            PEER: Distribution(self.run_dir / "dist"),
            CAIRN: CairnRegistry(self.run_dir / "cairn", self.args.cairn_args),
        }
        self.servers = {n: made[n] for n in self.names}
        for server in self.servers.values():
            server.start()
            log(f"{server.name} ready (pid {server.pid}, {server.base})")
        cairn = self.servers.get(CAIRN)
        if isinstance(cairn, CairnRegistry) and not cairn.v2_ready():
            raise SystemExit(
                f"cairn serve is up but GET {cairn.base}/v2/ does not answer 200: its registry face "
                "is not there yet. Run with --only peer."
            )

    def stop_servers(self) -> None:
        for server in self.servers.values():
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {server.name}: {exc}")
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def run(self) -> Results:
        phases = [p for p in WORKLOADS if p in self.args.workloads]
        for run in range(self.args.runs):
            order = self.names if run % 2 == 0 else self.names[::-1]
            log(f"run {run + 1}/{self.args.runs}: order {', '.join(order)}")
            try:
                self.start_servers(run)
                if "limits" in phases:
                    self.limits()
                for phase in phases:
                    if phase == "limits":
                        continue
                    for name in order:
                        if time.monotonic() > self.deadline:
                            self.results.note(f"stopped by --max-minutes in run {run + 1}")
                            return self.results
                        try:
                            getattr(self, f"{phase}_phase")(name, run)
                        except PhaseFailed:
                            pass  # recorded; the other server and the next phases still run
                        except (
                            UnexpectedResponse,
                            requests.RequestException,
                            subprocess.SubprocessError,
                        ) as exc:
                            self.misbehaved(name, phase, exc)
            finally:
                self.stop_servers()
        return self.results


# -- helpers ----------------------------------------------------------------------------------------
def hash_memory(buf: bytes, digest: str) -> None:
    """sha256 over ``buf`` in 1 MiB updates (the hashing limit); checks ``digest``."""
    hasher = hashlib.sha256()
    with memoryview(buf) as view:
        for start in range(0, len(view), 1 << 20):
            hasher.update(view[start : start + (1 << 20)])
    if f"sha256:{hasher.hexdigest()}" != digest:
        raise RuntimeError("hashlib disagrees with the digest computed at generation")


def skopeo(command: list[str]) -> None:
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT, check=False
    )
    if result.returncode != 0:
        raise subprocess.SubprocessError(
            f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()[-800:]}"
        )


def check_pulled(out: Path, image: Image) -> None:
    """The pulled layout holds every blob of the pushed image, same sizes (names are digests)."""
    blob_dir = out / "blobs" / "sha256"
    got = {f"sha256:{p.name}": p.stat().st_size for p in blob_dir.iterdir()} if blob_dir.is_dir() else {}
    if got != image.blobs:
        raise subprocess.SubprocessError(f"pulled layout differs: expected {image.blobs}, got {got}")


def make_small(count: int) -> list[SmallBlob]:
    """``count`` distinct random 4 KiB blobs, hashed."""
    out = []
    for _ in range(count):
        data = os.urandom(SMALL_SIZE)
        out.append(SmallBlob(data, f"sha256:{hashlib.sha256(data).hexdigest()}"))
    return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tool_version(command: Sequence[str]) -> str:
    if shutil.which(command[0]) is None:
        return "absent"
    out = subprocess.run(list(command), capture_output=True, text=True, timeout=10, check=False)
    return out.stdout.strip().split()[-1] if out.stdout.strip() else "?"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine_description() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, requests {_version('requests')}, "
        f"urllib3 {_version('urllib3')}, distribution {distribution_version()}, "
        f"skopeo {tool_version(['skopeo', '--version'])}"
    )


def source_fingerprint() -> str:
    """A short hash of cairn's Python sources, and their newest mtime: which server code ran."""
    root = Path(importlib.import_module("cairn").__file__ or ".").parent
    hasher = hashlib.sha256()
    newest = 0.0
    for path in sorted(root.rglob("*.py")):
        hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))
    return f"cairn sources {hasher.hexdigest()[:12]} (newest file {stamp})"


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark cairn's OCI registry face (/v2/) against Debian's docker-registry "
        "(CNCF distribution 2.8.2), side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--big-mib", "--size", dest="big_mib", type=int, default=1024, help="big blob size, MiB")
    p.add_argument("--chunk-mib", type=int, default=64, help="PATCH chunk size, MiB")
    p.add_argument("--small-count", type=int, default=1000, help="4 KiB blobs per thread count")
    p.add_argument("--threads", type=int, default=8, help="client threads of the second small-blob pass")
    p.add_argument("--layers", type=int, default=4, help="layers of the skopeo image")
    p.add_argument("--layer-mib", type=int, default=64, help="size of each skopeo image layer, MiB")
    p.add_argument("--runs", type=int, default=2, help="alternating runs (medians reported)")
    p.add_argument("--only", choices=("both", "peer", "cairn"), default="both", help="servers to run")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of: {', '.join(WORKLOADS)}")
    p.add_argument("--cairn-args", default="", help="extra `cairn serve` flags")
    p.add_argument("--phase-budget", type=float, default=300, help="seconds per small-blob pass")
    p.add_argument("--max-minutes", type=float, default=120, help="start no phase after this")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp"), help="where the temp dir goes")
    p.add_argument("--profile-dir", type=Path, help="sample the cairn server per operation into DIR")
    p.add_argument("--profiler", choices=PROFILERS, default="py-spy", help="sampler for --profile-dir")
    p.add_argument("--json", type=Path, help="also write the raw figures as JSON")
    args = p.parse_args(argv)
    args.workloads = {w.strip() for w in args.workloads.split(",") if w.strip()}
    if not args.workloads <= set(WORKLOADS):
        p.error(f"--workloads takes a comma list of: {', '.join(WORKLOADS)}")
    positive = (
        args.big_mib,
        args.chunk_mib,
        args.small_count,
        args.threads,
        args.layers,
        args.layer_mib,
        args.runs,
    )
    if min(positive) < 1:
        p.error("sizes, counts, --threads and --runs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    needed = ["skopeo"] if "skopeo" in args.workloads else []
    needed += ["docker-registry"] if args.only != "cairn" else []
    for binary in needed:
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} not found: apt-get install -y {binary}")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    fingerprint = source_fingerprint()  # before the run: the code the server was started from
    work = Path(tempfile.mkdtemp(prefix="cairn-regbench-", dir=args.work_dir))
    profiler = Profiler(args.profile_dir, args.profiler)
    started = time.strftime("%Y-%m-%d %H:%M")
    try:
        log(
            f"work dir {work}; writing 2 x {args.big_mib} MiB + 2 x {args.small_count} x 4 KiB of random data"
        )
        data = Data(
            big_put=write_random_file(work / "big-put", args.big_mib << 20),
            big_patch=write_random_file(work / "big-patch", args.big_mib << 20),
            small={n: make_small(args.small_count) for n in sorted({1, args.threads})},
            image=build_layout(work / "image", args.layers, args.layer_mib)
            if "skopeo" in args.workloads
            else None,
        )
        bench = Bench(args, work, data, profiler)
        results = bench.run()
    except KeyboardInterrupt:
        log("interrupted: servers stopped, temp files removed")
        return 130
    finally:
        profiler.stop()
        shutil.rmtree(work, ignore_errors=True)
    image_mb = data.image.size / 1e6 if data.image else 0.0
    layout = sections(args.big_mib, args.chunk_mib, args.small_count, args.threads, image_mb)
    print(f"# {started}  {machine_description()}")
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {fingerprint}")
    if args.cairn_args:
        print(f"# cairn variant: serve {args.cairn_args}")
    print(f"medians over {args.runs} alternating run(s); servers {', '.join(bench.names)}")
    print(results.tables(layout))
    for note in results.notes:
        print(f"note: {note}")
    for m in results.misbehaviour:
        print(
            f"misbehaviour: {m['server']} {m['phase']}: {m['request']} expected {m['expected']}, got {m['got']}"
        )
    if args.json:
        metrics: list[Metric] = [m for _, ms in layout for m in ms]
        meta: dict[str, Any] = {
            "date": started,
            "machine": machine_description(),
            "command": sys.argv,
            "fingerprint": fingerprint,
            "image_bytes": data.image.size if data.image else 0,
        }
        results.dump(args.json, metrics, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
