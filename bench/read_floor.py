"""The grpcio floor under ``ctr content get``: a do-nothing Python Read server against containerd.

Run: ``.venv/bin/python bench/read_floor.py [--size-mib 256] [--runs 3] [--workers 4 32] [--cpus '' 0]
[--grpc-experiments=-event_engine_listener]``

``ctr content get`` sends one Read RPC per 32 KiB, so its speed is set by the
server's cost per call. This script separates grpcio's share of that cost from
cairn's: it serves ``Info`` and ``Read`` of one blob from memory with grpcio's
synchronous server (the model ``cairn serve`` uses) and no other work (no
catalog, no files, no metrics, no error mapping), and times ``ctr content get
> /dev/null`` against it and against a private containerd 1.6 holding the same
blob, alternating. Each server variant (``--workers`` x ``--cpus``, pinned with
``taskset``, x ``--grpc-experiments``, grpc core's ``GRPC_EXPERIMENTS``
environment variable) is a separate process. Whatever this floor server reaches is the
most any handler-side change in cairn can give on this machine; the gap
between it and cairn is cairn's own per-call code.

Not a test, and not a server for anything else: ``--serve`` is its internal mode.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _measure import Ctr, mbps, timed, write_random_file
from _servers import Containerd, Server

READ_BYTES = 32 << 10  # what ctr asks for per Read


class FloorServer(Server):
    """``read_floor.py --serve`` in its own process, optionally pinned."""

    def __init__(self, directory: Path, blob: Path, workers: int, cpus: str, experiments: str) -> None:
        super().__init__(directory)
        self.blob, self.workers, self.cpus, self.experiments = blob, workers, cpus, experiments
        self.name = f"floor w{workers}" + (f" cpus {cpus}" if cpus else "")
        self.name += f" GRPC_EXPERIMENTS={experiments}" if experiments else ""

    @property
    def socket(self) -> Path:
        return self.directory / "floor.sock"

    def start(self) -> None:
        command = [
            sys.executable,
            __file__,
            "--serve",
            str(self.socket),
            "--blob",
            str(self.blob),
            "--workers",
            str(self.workers),
        ]
        env = dict(os.environ, GRPC_EXPERIMENTS=self.experiments) if self.experiments else None
        self._spawn(["taskset", "-c", self.cpus, *command] if self.cpus else command, env)
        self._wait_until(self.socket.is_socket)


def serve(socket: str, blob: Path, workers: int) -> None:
    """Serve Info and Read of ``blob`` (held in memory) until killed."""
    import grpc

    from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
    from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc

    data = blob.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    class Floor(pb_grpc.ContentServicer):
        def Info(self, request: pb.InfoRequest, context: object) -> pb.InfoResponse:
            info = pb.InfoResponse(info=pb.Info(digest=digest, size=len(data)))
            info.info.created_at.GetCurrentTime()
            return info

        def Read(self, request: pb.ReadContentRequest, context: object) -> Iterator[pb.ReadContentResponse]:
            end = len(data) if request.size <= 0 else min(len(data), request.offset + request.size)
            for offset in range(request.offset, end, 1 << 20):
                yield pb.ReadContentResponse(offset=offset, data=data[offset : min(end, offset + (1 << 20))])

    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_send_message_length", 16 << 20), ("grpc.so_reuseport", 0)],
    )
    pb_grpc.add_ContentServicer_to_server(Floor(), server)
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    server.wait_for_termination()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[4, 32])
    p.add_argument("--cpus", nargs="+", default=["", "0"], help="'' for no pinning")
    p.add_argument(
        "--grpc-experiments",
        action="append",
        metavar="VALUE",
        help="a GRPC_EXPERIMENTS value for the floor server, repeatable; write "
        "--grpc-experiments=-event_engine_listener ('' for grpcio's defaults; "
        "default: both of these)",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--blob", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.grpc_experiments = args.grpc_experiments or ["", "-event_engine_listener"]
    if args.serve:
        serve(args.serve, args.blob, args.workers[0])
        return 0

    work = Path(tempfile.mkdtemp(prefix="cf", dir="/tmp"))
    servers: list[Server] = [Containerd(work / "cd")]
    try:
        blob = write_random_file(work / "blob", args.size_mib << 20)
        variants = itertools.product(args.workers, args.cpus, args.grpc_experiments)
        servers += [FloorServer(work / f"f{i}", blob.path, *v) for i, v in enumerate(variants)]
        for server in servers:
            server.start()
        Ctr(servers[0], 600).ingest("floor", blob)
        figures: dict[str, list[tuple[float, float, float]]] = {s.name: [] for s in servers}
        for run in range(args.runs):
            for server in servers if run % 2 == 0 else servers[::-1]:
                ctr = Ctr(server, 600)
                t = timed(server, functools.partial(ctr.get, blob.digest))
                reads = blob.size / READ_BYTES
                figures[server.name].append(
                    (mbps(blob.size, t.seconds), t.server_cpu / reads * 1000, t.server_switches / reads)
                )
                print(
                    f"  {server.name:<18} {figures[server.name][-1][0]:7.1f} MB/s  (load {t.load:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(row[0] for row in figures[servers[0].name])
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} ctr content get of {args.size_mib} MiB, "
        f"medians of {args.runs} alternating runs"
    )
    print("| server | MB/s | x containerd | server CPU-ms per Read | server context switches per Read |")
    print("|---|---|---|---|---|")
    for name, rows in figures.items():
        speed, cpu, switches = (statistics.median(row[i] for row in rows) for i in range(3))
        print(f"| {name} | {speed:.1f} | {speed / base:.2f} | {cpu:.3f} | {switches:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
