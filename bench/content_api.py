"""Side-by-side benchmark of cairn's containerd content API against a private containerd 1.6.

What it measures, in one invocation, on the same files, against both servers
(containerd started as content-api.md section 9 describes; cairn as
``python -m cairn serve`` on free loopback ports), with Debian's ``ctr`` as
the client over each server's unix socket:

- ``ctr content ingest REF < file`` of one big random file (``--size-mib``,
  default 1 GiB), plain and with ``--expected-size/--expected-digest``: MB/s;
- ``ctr content get DIGEST > /dev/null`` of that blob: MB/s (ctr sends one
  Read RPC per 32 KiB, so this measures per-call server cost);
- ``--small-count`` distinct random 4 KiB blobs, each ingested and then each
  read with its own ``ctr`` process: ops/s and per-op latency p50/p99 (a
  ``ctr`` process start alone costs about 8 ms, so this is mostly fixed cost);
- cairn's own Python client, ``cairn.cli.client.ContentClient.ingest`` with
  4 MiB messages, of the big file (also against containerd when it works);
- the machine's limits in the same run: ``hashlib.sha256`` over the file in
  1 MiB updates, and writing the file plus fsync to the same filesystem.

How to read the output: MB/s is 10^6 bytes/s. Throughputs are medians over
``--runs`` runs whose server order alternates (cairn first in even runs);
latencies are pooled over all runs. The ratio column is cairn/containerd:
above 1.0 cairn is faster (for latency rows, below 1.0 is faster). The
target column holds the issue's targets (ingest >= 1.3x, get >= 1.0x, small
blobs >= 1.0x, Python client >= 50% of the hashlib limit). A second table
gives server and client CPU seconds per big operation, plus "other load": CPU
time the rest of the machine used during the operation (the machine is
shared; large values mean that run was disturbed).

Between runs every blob is removed with ``ctr content rm`` and fresh refs are
used, so each ingest really writes; for containerd, whose GC is held off so
ingested blobs survive, the benchmark also deletes the now unreferenced blob
files, since an ``--expected-digest`` ingest would otherwise link them
without receiving data (content-api.md 4.10).

Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from _profile import Profiler
from _report import CAIRN, CONTAINERD, MACHINE, Results
from _servers import Cairn, Containerd, Server

NAMESPACE = "bench"
SMALL_SIZE = 4096
CHUNK = 1 << 20
CLIENT_CHUNK = 4 << 20


# -- files ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blob:
    path: Path
    digest: str
    size: int


def write_random_file(path: Path, size: int) -> Blob:
    hasher = hashlib.sha256()
    with open(path, "wb") as f:
        remaining = size
        while remaining > 0:
            chunk = os.urandom(min(CHUNK, remaining))
            f.write(chunk)
            hasher.update(chunk)
            remaining -= len(chunk)
    return Blob(path, f"sha256:{hasher.hexdigest()}", size)


def make_small_blobs(directory: Path, count: int) -> list[Blob]:
    directory.mkdir(parents=True, exist_ok=True)
    return [write_random_file(directory / f"{i:05d}", SMALL_SIZE) for i in range(count)]


# -- workloads --------------------------------------------------------------------------------------
class Bench:
    """One invocation: the files, both servers, and the results."""

    def __init__(self, args: argparse.Namespace, work: Path, big: Blob, small: list[Blob],
                 servers: dict[str, Server], profiler: Profiler) -> None:
        self.args = args
        self.work = work
        self.big = big
        self.small = small
        self.servers = servers
        self.profiler = profiler
        self.results = Results()
        self.deadline = time.monotonic() + args.max_minutes * 60
        big_timeout = 60 + args.size_mib * 0.5
        self.ctr = {name: Ctr(s, big_timeout) for name, s in servers.items()}
        self.small_ctr = {name: Ctr(s, 30) for name, s in servers.items()}
        self.token = uuid.uuid4().hex[:8]

    def ref(self, kind: str, run: int, i: int = 0) -> str:
        return f"bench-{kind}-{self.token}-r{run}-{i}"

    def record(self, metric: str, server: str, t: Timed, value: float) -> None:
        self.results.add(metric, server, value)
        self.results.add_cpu(metric, server, t.server_cpu, t.client_cpu, t.other_cpu)
        log(f"  {server:<10} {metric:<16} {value:10.1f}  ({t.seconds:.2f}s, server CPU "
            f"{t.server_cpu:.2f}s, client CPU {t.client_cpu:.2f}s, other {t.other_cpu:.2f}s)")

    def big_phase(self, name: str, run: int) -> None:
        server, ctr, big = self.servers[name], self.ctr[name], self.big
        with self.profiler.phase(server, f"ingest-run{run}"):
            t = timed(server, lambda: ctr.ingest(self.ref("big", run), big))
        self.record("ingest", name, t, mbps(big.size, t.seconds))
        with self.profiler.phase(server, f"get-run{run}"):
            t = timed(server, lambda: ctr.get(big.digest))
        self.record("get", name, t, mbps(big.size, t.seconds))
        if run == 0 and self.args.verify:
            got = ctr.read(big.digest)
            if got != big.digest:
                raise RuntimeError(f"{name}: ctr content get returned {got}, want {big.digest}")
        ctr.rm([big.digest])
        with self.profiler.phase(server, f"ingest_expected-run{run}"):
            t = timed(server, lambda: ctr.ingest(self.ref("bigx", run), big, expected=True))
        self.record("ingest_expected", name, t, mbps(big.size, t.seconds))
        ctr.rm([big.digest])

    def small_phase(self, name: str, run: int) -> None:
        server, ctr = self.servers[name], self.small_ctr[name]
        with self.profiler.phase(server, f"small_ingest-run{run}"):
            done, took, lat = self._bounded(self.small, lambda i, b: ctr.ingest(self.ref("s", run, i), b))
        self._record_small("small_ingest", name, done, took, lat)
        if ctr.read(self.small[0].digest) != self.small[0].digest:
            raise RuntimeError(f"{name}: small blob 0 reads back wrong")
        with self.profiler.phase(server, f"small_get-run{run}"):
            _, took, lat = self._bounded(self.small[:done], lambda i, b: ctr.get(b.digest))
        self._record_small("small_get", name, len(lat), took, lat)
        ctr.rm([b.digest for b in self.small[:done]])

    def _bounded(self, blobs: list[Blob], op: Callable[[int, Blob], None]) -> tuple[int, float, list[float]]:
        """Run ``op`` per blob until done or the phase budget is spent; (count, seconds, latencies)."""
        stop_at = time.monotonic() + self.args.phase_budget
        latencies: list[float] = []
        start = time.perf_counter()
        for i, blob in enumerate(blobs):
            if time.monotonic() > stop_at:
                self.results.notes.append(f"phase stopped by --phase-budget after {i} of {len(blobs)} ops")
                break
            t0 = time.perf_counter()
            op(i, blob)
            latencies.append(time.perf_counter() - t0)
        return len(latencies), time.perf_counter() - start, latencies

    def _record_small(self, metric: str, name: str, done: int, took: float, lat: list[float]) -> None:
        self.results.add(metric, name, done / took)
        self.results.add_latencies(metric, name, lat)
        lat_ms = sorted(x * 1000 for x in lat)
        log(f"  {name:<10} {metric:<16} {done / took:10.1f} ops/s  "
            f"(p50 {lat_ms[len(lat_ms) // 2]:.1f} ms, max {lat_ms[-1]:.1f} ms, {done} ops)")

    def client_phase(self, name: str, run: int, client_cls: Any) -> None:
        server, ctr = self.servers[name], self.ctr[name]
        ref = self.ref("client", run)

        def ingest() -> None:
            client = client_cls(str(server.socket), NAMESPACE)
            try:
                with open(self.big.path, "rb") as f:
                    client.ingest(ref, f, chunk_size=CLIENT_CHUNK)
            finally:
                close = getattr(client, "close", None)
                if close is not None:
                    close()

        try:
            with self.profiler.phase(server, f"client_ingest-run{run}"):
                t = timed(server, ingest)
        except Exception as exc:  # a peer may reject what cairn's client sends; report, go on
            note = f"Python client against {name}: {type(exc).__name__}: {exc}"
            if note not in self.results.notes:
                self.results.notes.append(note)
            log("  " + note)
            return
        self.record("client_ingest", name, t, mbps(self.big.size, t.seconds))
        ctr.rm([self.big.digest])

    def limits(self) -> None:
        t = timed(self.servers[CAIRN], lambda: hash_file(self.big.path))
        self.record("hashlib", MACHINE, t, mbps(self.big.size, t.seconds))
        copy = self.work / "fsync-copy"
        t = timed(self.servers[CAIRN], lambda: write_fsync(self.big.path, copy))
        copy.unlink()
        self.record("write_fsync", MACHINE, t, mbps(self.big.size, t.seconds))

    def run(self) -> Results:
        phases = [p.strip() for p in self.args.workloads.split(",")]
        client_cls = load_client() if "client" in phases else None
        if "client" in phases and client_cls is None:
            self.results.notes.append("cairn.cli.client.ContentClient not importable: client row skipped")
        for run in range(self.args.runs):
            order = [CAIRN, CONTAINERD] if run % 2 == 0 else [CONTAINERD, CAIRN]
            log(f"run {run + 1}/{self.args.runs}: order {', '.join(order)}")
            if "limits" in phases:
                self.limits()
            for phase in ("big", "small", "client"):
                if phase not in phases or (phase == "client" and client_cls is None):
                    continue
                for name in order:
                    if time.monotonic() > self.deadline:
                        self.results.notes.append(f"stopped by --max-minutes in run {run + 1}")
                        return self.results
                    if phase == "big":
                        self.big_phase(name, run)
                    elif phase == "small":
                        self.small_phase(name, run)
                    else:
                        self.client_phase(name, run, client_cls)
        return self.results


def hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


def write_fsync(source: Path, target: Path) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(source, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                os.write(fd, view[:n])
        os.fsync(fd)
    finally:
        os.close(fd)


def load_client() -> Any:
    try:
        from cairn.cli.client import ContentClient
    except ImportError as exc:
        log(f"cairn.cli.client.ContentClient not importable ({exc}); skipping the client row")
        return None
    return ContentClient


# -- set-up, clean-up, output ---------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine_description() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import grpc

    containerd = subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"grpcio {grpc.__version__}, {containerd}")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start the servers; stop each by its own PID whatever happens."""
    try:
        for server in servers:
            server.start()
            log(f"{server.name} ready (pid {server.pid}, socket {server.socket})")
        yield
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {server.name}: {exc}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size-mib", type=int, default=1024, help="size of the big random file")
    p.add_argument("--small-count", type=int, default=1000, help="number of 4 KiB blobs")
    p.add_argument("--runs", type=int, default=3, help="alternating runs (median reported)")
    p.add_argument("--workloads", default="limits,big,small,client",
                   help="comma list of: limits, big, small, client")
    p.add_argument("--cairn-args", default="", help="extra `cairn serve` flags, e.g. '--grpc-workers 8'")
    p.add_argument("--cairn-cpus", default="", help="pin the cairn server with `taskset -c CPUS`")
    p.add_argument("--phase-budget", type=float, default=900, help="seconds per small-blob phase")
    p.add_argument("--max-minutes", type=float, default=240, help="stop starting new phases after this")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip reading the big blob back through a pipe and checking its digest")
    p.add_argument("--profile-dir", type=Path, help="py-spy the cairn server per phase into DIR")
    p.add_argument("--profile-native", action="store_true", help="py-spy --native (blocking)")
    p.add_argument("--json", type=Path, help="also write raw figures as JSON")
    args = p.parse_args(argv)
    if args.runs < 1 or args.size_mib < 1 or args.small_count < 1:
        p.error("--runs, --size-mib and --small-count must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for binary in ("ctr", "containerd"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} not found: apt-get install -y containerd")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    work = Path(tempfile.mkdtemp(prefix="cb", dir="/tmp"))  # short: unix socket paths <= 107 bytes
    profiler = Profiler(args.profile_dir, native=args.profile_native)
    try:
        log(f"work dir {work}; writing {args.size_mib} MiB + {args.small_count} x 4 KiB of random data")
        big = write_random_file(work / "big", args.size_mib << 20)
        small = make_small_blobs(work / "small", args.small_count)
        servers: dict[str, Server] = {
            CONTAINERD: Containerd(work / "cd"),
            CAIRN: Cairn(work / "cn", args.cairn_args, args.cairn_cpus),
        }
        with running(list(servers.values())):
            results = Bench(args, work, big, small, servers, profiler).run()
    except KeyboardInterrupt:
        log("interrupted: servers stopped, temp files removed")
        return 130
    finally:
        profiler.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  {machine_description()}")
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    if args.cairn_args or args.cairn_cpus:
        print(f"# cairn variant: args {args.cairn_args!r}, cpus {args.cairn_cpus or 'all'}")
    print(results.table(args.runs))
    for note in results.notes:
        print(f"note: {note}")
    if args.json:
        results.dump(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
