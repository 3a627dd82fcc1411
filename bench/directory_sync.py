#!/usr/bin/env python3
"""Directory sync between two local ``cairn serve`` nodes: N signed records pushed to A, synced to B.

Usage: bench/directory_sync.py [--records 10000] [--profile-dir DIR]

Pushes ``--records`` records, each with a signature (2 manifests per record),
to node A over the StoreService, creates a sync on node B (the default
continuous mirror) and times until B holds every tag (B logs the end of its pass). Prints the time, the
manifests per second and the CPU seconds each node spent. The target
(the Directory sync issue) is 10,000 signed records in under 30 s.
With ``--profile-dir`` py-spy samples both nodes during the sync.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import requests
from google.protobuf.struct_pb2 import Struct

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cairn.api.grpc.gen.core.v1 import record_pb2  # noqa: E402
from cairn.api.grpc.gen.sign.v1 import signature_pb2  # noqa: E402
from cairn.api.grpc.gen.store.v1 import store_service_pb2 as spb  # noqa: E402
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as sgrpc  # noqa: E402
from cairn.api.grpc.gen.store.v1 import sync_service_pb2 as ypb  # noqa: E402
from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as ygrpc  # noqa: E402
from cairn.directory.records import Record  # noqa: E402
from cairn.directory.signatures import generate_key, sign_cid  # noqa: E402
from tests.conftest import CairnServer  # noqa: E402


def requests_for(n: int) -> Iterator[spb.PushWithOptionsRequest]:
    private, _ = generate_key()
    for i in range(n):
        document = {"name": f"bench/agent-{i}", "version": "1.0.0", "schema_version": "0.7.0",
                    "description": "a benchmark record " * 10, "skills": [{"name": "x", "id": i}]}
        signature = sign_cid(Record.from_document(document).cid, private)
        data = Struct()
        data.update(document)
        yield spb.PushWithOptionsRequest(
            record=record_pb2.Record(data=data),
            options=spb.PushOptions(signature=signature_pb2.Signature(
                signed_at=signature.signed_at, algorithm=signature.algorithm, signature=signature.signature,
                content_type=signature.content_type, content_bundle=signature.content_bundle)),
        )


def tag_count(server: CairnServer) -> int:
    count, last = 0, ""
    while True:
        r = requests.get(f"{server.http_url}/v2/dir/tags/list", params={"n": 10000, "last": last}, timeout=30)
        if r.status_code == 404:
            return 0
        tags = r.json().get("tags") or []
        count += len(tags)
        if len(tags) < 10000:
            return count
        last = tags[-1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--profile-dir", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cairn-sync-bench-", dir="/tmp"))
    a = CairnServer(root / "a", extra_args=["--sync-poll-seconds", "1"])
    b = CairnServer(root / "b", extra_args=["--sync-poll-seconds", "1"])
    samplers: list[subprocess.Popen[bytes]] = []
    try:
        a.start()
        b.start()
        with grpc.insecure_channel(a.grpc_addr) as channel:
            started = time.monotonic()
            cids = [r.record_ref.cid for r in sgrpc.StoreServiceStub(channel).PushWithOptions(
                requests_for(args.records))]
            print(f"pushed {len(cids)} signed records to A in {time.monotonic() - started:.1f}s")
        want = tag_count(a)
        assert a.proc is not None and b.proc is not None
        if args.profile_dir:
            args.profile_dir.mkdir(parents=True, exist_ok=True)
            for name, node in (("a", a), ("b", b)):
                assert node.proc is not None
                samplers.append(subprocess.Popen(
                    [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "--format", "raw", "--function",
                     "--pid", str(node.proc.pid), "--output", str(args.profile_dir / f"sync-{name}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1)
        cpu_a, cpu_b = cpu_seconds(a.proc.pid), cpu_seconds(b.proc.pid)
        with grpc.insecure_channel(b.grpc_addr) as channel:
            started = time.monotonic()
            ygrpc.SyncServiceStub(channel).CreateSync(ypb.CreateSyncRequest(remote_directory_url=a.grpc_addr))
            # B's log says when a pass ends (listing 20,000 tags to check would load B itself).
            while not re.search(r"copied \d+ manifests", b.log()) or tag_count(b) < want:
                if time.monotonic() - started > 600:
                    raise SystemExit("sync did not finish within 600 s")
                time.sleep(0.1)
            took = time.monotonic() - started
        print(f"synced {want} manifests ({args.records} records + signatures) in {took:.1f}s: "
              f"{want / took:.0f} manifests/s; CPU A {cpu_seconds(a.proc.pid) - cpu_a:.1f}s, "
              f"B {cpu_seconds(b.proc.pid) - cpu_b:.1f}s")
    finally:
        for sampler in samplers:
            sampler.send_signal(2)
            sampler.wait(30)
        a.stop()
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
