#!/usr/bin/env python3
"""Directory records: cairn's StoreService against records kept in distribution, and sync against skopeo.

Upstream Directory keeps records as OCI artifacts in a registry (Zot), so the
peer for the store workloads is what Directory asks of its registry per record,
done against Debian's ``docker-registry`` (distribution 2.8.2) over one
keep-alive HTTP connection: push = one-request blob upload of the canonical
JSON (plus the empty config once) and a manifest PUT tagged with the CID;
lookup = the manifest GET by tag; pull = manifest GET then blob GET. cairn does
the same work behind one gRPC stream (``store.v1.StoreService`` Push / Lookup /
Pull, all requests pipelined), including canonicalising the record.

Sync: node B syncs every record and signature from node A (one-shot, until
COMPLETED); the peer is ``skopeo sync`` of the same repository between two
distribution registries (upstream's later one-shot sync is such a registry copy).

Targets (issue 4): >= 2,000 pushes/s and >= 5,000 lookups/s for 1 KiB records;
10,000 signed records synced in under 30 s. Loopback only; every loop is
bounded by count and by ``--timeout``.

    .venv/bin/python bench/directory.py --count 10000 --sync-count 10000
    .venv/bin/python bench/directory.py --count 500 --sync-count 500   # smoke
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import requests
from _registry_servers import CairnRegistry, Distribution, distribution_version
from google.protobuf.struct_pb2 import Struct

from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.sign.v1 import signature_pb2
from cairn.api.grpc.gen.store.v1 import store_service_pb2 as pb
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as pb_grpc
from cairn.api.grpc.gen.store.v1 import sync_service_pb2 as sync_pb
from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as sync_grpc
from cairn.directory.canonical import canonical_json
from cairn.directory.records import Record
from cairn.directory.signatures import generate_key, sign_cid

EMPTY = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY).hexdigest()
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def documents(count: int, size: int, seed: str) -> list[dict[str, Any]]:
    """``count`` distinct records whose canonical JSON is about ``size`` bytes."""
    base = {
        "schema_version": "0.7.0",
        "created_at": "2026-01-01T00:00:00Z",
        "version": "v1.0.0",
        "authors": ["bench"],
        "annotations": {"team": "cairn"},
    }
    out = []
    for i in range(count):
        doc = dict(base, name=f"bench/{seed}/{i}")
        doc["description"] = "d" * max(0, size - len(canonical_json(doc)) - len(',"description":""'))
        out.append(doc)
    return out


def channel(server: CairnRegistry) -> grpc.Channel:
    return grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}",
        options=[("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)],
    )


def struct_record(document: dict[str, Any]) -> record_pb2.Record:
    data = Struct()
    data.update(document)
    return record_pb2.Record(data=data)


def timed(action: Callable[[], int]) -> float:
    start = time.perf_counter()
    done = action()
    return done / (time.perf_counter() - start)


# -- cairn -------------------------------------------------------------------------------------


def cairn_store(server: CairnRegistry, docs: list[dict[str, Any]]) -> dict[str, float]:
    messages = [struct_record(d) for d in docs]
    with channel(server) as ch:
        stub = pb_grpc.StoreServiceStub(ch)
        cids: list[str] = []

        def push() -> int:
            cids.extend(r.cid for r in stub.Push(iter(messages)))
            return len(cids)

        refs = []

        def lookup() -> int:
            return sum(1 for _ in stub.Lookup(iter(refs)))

        def pull() -> int:
            return sum(1 for _ in stub.Pull(iter(refs)))

        rates = {"push": timed(push)}
        refs.extend(record_pb2.RecordRef(cid=c) for c in cids)
        rates["lookup"] = timed(lookup)
        rates["pull"] = timed(pull)
    return rates


# -- distribution (the registry upstream Directory writes to) ----------------------------------


def _put_blob(session: requests.Session, base: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = session.post(f"{base}/v2/dir/blobs/uploads/", timeout=30)
    r.raise_for_status()
    location = r.headers["Location"]
    if not location.startswith("http"):
        location = base + location
    sep = "&" if "?" in location else "?"
    r = session.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    r.raise_for_status()
    return {"mediaType": "application/json", "digest": digest, "size": len(data)}


def distribution_store(server: Distribution, docs: list[dict[str, Any]]) -> dict[str, float]:
    base = server.base
    session = requests.Session()
    _put_blob(session, base, EMPTY)
    config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2}
    cids: list[tuple[str, str]] = []

    def push() -> int:
        for document in docs:
            record = Record.from_document(document)  # the canonicalisation Directory does too
            layer = _put_blob(session, base, record.canonical)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": OCI_MANIFEST,
                    "config": config,
                    "layers": [layer],
                    "annotations": {"org.agntcy.dir/type": "record", "org.agntcy.dir/cid": record.cid},
                }
            ).encode()
            r = session.put(
                f"{base}/v2/dir/manifests/{record.cid}",
                data=manifest,
                headers={"Content-Type": OCI_MANIFEST},
                timeout=30,
            )
            r.raise_for_status()
            cids.append((record.cid, layer["digest"]))
        return len(cids)

    def lookup() -> int:
        for cid, _ in cids:
            r = session.get(f"{base}/v2/dir/manifests/{cid}", headers={"Accept": OCI_MANIFEST}, timeout=30)
            r.raise_for_status()
            json.loads(r.content)["annotations"]
        return len(cids)

    def pull() -> int:
        for cid, digest in cids:
            r = session.get(f"{base}/v2/dir/manifests/{cid}", headers={"Accept": OCI_MANIFEST}, timeout=30)
            r.raise_for_status()
            r = session.get(f"{base}/v2/dir/blobs/{digest}", timeout=30)
            r.raise_for_status()
        return len(cids)

    return {"push": timed(push), "lookup": timed(lookup), "pull": timed(pull)}


# -- sync --------------------------------------------------------------------------------------


def push_signed(server: CairnRegistry, docs: list[dict[str, Any]]) -> None:
    private, _ = generate_key()

    def requests_() -> Iterator[pb.PushWithOptionsRequest]:
        for document in docs:
            s = sign_cid(Record.from_document(document).cid, private)
            signature = signature_pb2.Signature(
                annotations=s.annotations,
                signed_at=s.signed_at,
                algorithm=s.algorithm,
                signature=s.signature,
                certificate=s.certificate,
                content_type=s.content_type,
                content_bundle=s.content_bundle,
            )
            yield pb.PushWithOptionsRequest(
                record=struct_record(document), options=pb.PushOptions(signature=signature)
            )

    with channel(server) as ch:
        answered = sum(1 for _ in pb_grpc.StoreServiceStub(ch).PushWithOptions(requests_()))
    assert answered == len(docs)


def cairn_sync(source: CairnRegistry, target: CairnRegistry, timeout: float) -> float:
    with channel(target) as ch:
        stub = sync_grpc.SyncServiceStub(ch)
        start = time.perf_counter()
        sync_id = stub.CreateSync(
            sync_pb.CreateSyncRequest(remote_directory_url=f"127.0.0.1:{source.grpc_port}"),
            metadata=[("cairn-sync-mode", "once")],
        ).sync_id
        deadline = start + timeout
        while time.perf_counter() < deadline:
            status = stub.GetSync(sync_pb.GetSyncRequest(sync_id=sync_id)).status
            if status == sync_pb.SYNC_STATUS_COMPLETED:
                return time.perf_counter() - start
            if status == sync_pb.SYNC_STATUS_FAILED:
                raise RuntimeError("cairn sync failed")
            time.sleep(0.02)
    raise RuntimeError(f"cairn sync did not complete in {timeout:.0f}s")


def skopeo_sync(source: str, target: str, work: Path, timeout: float) -> float:
    """``skopeo sync`` of repository ``dir`` from one registry (``host:port``) to another; seconds taken."""
    conf = work / "registries.conf"
    conf.write_text("")
    start = time.perf_counter()
    done = subprocess.run(
        [
            "skopeo",
            "--registries-conf",
            str(conf),
            "sync",
            "--all",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"{source}/dir",
            target,
        ],
        check=False,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"skopeo sync {source}/dir -> {target} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="records per size (1 KiB and 64 KiB)")
    parser.add_argument("--sizes", default="1024,65536", help="record sizes in bytes, comma-separated")
    parser.add_argument("--sync-count", type=int, default=10_000, help="signed records for the sync workload")
    parser.add_argument("--skip-peer-sync", action="store_true", help="do not time skopeo sync")
    parser.add_argument("--timeout", type=float, default=900.0, help="bound on each workload, seconds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-dir-", dir="/tmp"))
    servers: list[Any] = []
    try:

        def start(server: Any) -> Any:
            servers.append(server)
            server.start()
            return server

        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            docs = documents(args.count, size, f"s{size}")
            cairn = start(CairnRegistry(work / f"cairn-{size}"))
            peer = start(Distribution(work / f"dist-{size}"))
            ours, theirs = cairn_store(cairn, docs), distribution_store(peer, docs)
            for op in ("push", "lookup", "pull"):
                rows.append((f"{op} {size // 1024} KiB", ours[op], theirs[op]))
            for server in (cairn, peer):
                server.stop()
                servers.remove(server)

        a = start(CairnRegistry(work / "sync-a"))
        b = start(CairnRegistry(work / "sync-b"))
        push_signed(a, documents(args.sync_count, 1024, "sync"))
        ours_sync = cairn_sync(a, b, args.timeout)
        theirs_sync = None
        if not args.skip_peer_sync:
            pa = start(Distribution(work / "sync-pa"))
            pb_ = start(Distribution(work / "sync-pb"))
            skopeo_sync(
                f"127.0.0.1:{a.http_port}", f"127.0.0.1:{pa.port}", work, args.timeout
            )  # fill, untimed
            theirs_sync = skopeo_sync(f"127.0.0.1:{pa.port}", f"127.0.0.1:{pb_.port}", work, args.timeout)

        print(
            f"\nDirectory benchmark {datetime.date.today()} (cairn vs distribution {distribution_version()}; "
            f"{args.count} records per size, pipelined over one stream / one connection)\n"
        )
        print(f"{'workload':<16} {'cairn/s':>10} {'peer/s':>10} {'cairn/peer':>11}")
        for name, mine, peers in rows:
            print(f"{name:<16} {mine:>10.0f} {peers:>10.0f} {mine / peers:>10.2f}x")
        peer_text = f"{theirs_sync:.1f} s (skopeo sync)" if theirs_sync else "not run"
        ratio = f", cairn/peer speed {theirs_sync / ours_sync:.2f}x" if theirs_sync else ""
        print(f"\nsync {args.sync_count} signed records: cairn {ours_sync:.1f} s, peer {peer_text}{ratio}")
        target = {"push 1 KiB": 2000, "lookup 1 KiB": 5000}
        for name, mine, _ in rows:
            if name in target:
                print(f"target {name} >= {target[name]}/s: {'met' if mine >= target[name] else 'MISSED'}")
        print(f"target sync < 30 s: {'met' if ours_sync < 30 else 'MISSED'}")
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - report and keep cleaning up
                print(f"could not stop {server.name}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
