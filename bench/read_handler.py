"""What cairn's own code costs per 32 KiB Read, without gRPC: the handler side of ``ctr content get``.

Run: ``.venv/bin/python bench/read_handler.py [--calls 20000]``

It opens a store the way ``cairn serve`` does (SQLite catalog, local
backend, in a temp dir), commits one 1 MiB blob, and times, per call in
microseconds of CPU (``time.thread_time``, one thread, no contention):

- the whole ``ContentServicer.Read`` for ``offset=k*32768, size=32768``,
  drained like grpcio drains it, with a stand-in servicer context;
- its parts: namespace from metadata, digest parse, the catalog visibility
  query, opening and closing the blob file, the ``pread``, the response
  message, the two metrics updates.

Compare the total with ``read_floor.py``: the floor server's CPU per Read is
grpcio's cost; cairn's server adds roughly this handler cost on top (plus the
GIL and cache effects of running it on grpcio's threads). Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cairn.api.grpc.content_v1 import ContentServicer
from cairn.api.grpc.context import namespace_of
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.metrics import Metrics
from cairn.core.catalog import open_catalog
from cairn.core.content import open_content_store
from cairn.core.digest import Digest
from cairn.settings import Settings

NAMESPACE = "bench"
READ = 32 << 10
BLOB = 1 << 20


class _Context:
    """Just what the Read handler asks of a grpc.ServicerContext."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("containerd-namespace", NAMESPACE), ("user-agent", "grpc-go/1.33.3"))

    def abort(self, code: Any, details: str) -> None:
        raise RuntimeError(f"{code}: {details}")


def per_call_us(action: Callable[[int], object], calls: int) -> float:
    """CPU microseconds per call of ``action(i)`` on this thread."""
    action(0)  # warm up: connections, caches
    start = time.thread_time()
    for i in range(calls):
        action(i)
    return (time.thread_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crh", dir="/tmp"))
    try:
        settings = Settings(data_dir=work)
        catalog = open_catalog(settings.catalog)
        store = open_content_store(settings.content, catalog)
        data = os.urandom(BLOB)
        with store.writer(NAMESPACE, "blob") as writer:
            writer.write(data, 0)
            info = writer.commit()
        digest, text = info.digest, str(info.digest)
        metrics = Metrics()
        servicer = ContentServicer(store, metrics)
        context: Any = _Context()
        chunks = BLOB // READ
        requests = [pb.ReadContentRequest(digest=text, offset=k * READ, size=READ) for k in range(chunks)]

        def whole(i: int) -> None:
            for _ in servicer.Read(requests[i % chunks], context):
                pass

        reader = store.reader_at(NAMESPACE, digest)

        def count_metrics(i: int) -> None:
            metrics.content_read_bytes.inc(READ)
            metrics.grpc_request(ContentServicer.SERVICE, "Read", "OK").inc()

        parts: dict[str, Callable[[int], object]] = {
            "whole ContentServicer.Read": whole,
            "namespace_of(context)": lambda i: namespace_of(context),
            "Digest.parse": lambda i: Digest.parse(text),
            "catalog.blob_size (SQLite)": lambda i: catalog.content.blob_size(NAMESPACE, text),
            "backend.open_blob + close": lambda i: store.backend.open_blob(digest).close(),
            "reader.read_at 32 KiB (pread)": lambda i: reader.read_at((i % chunks) * READ, READ),
            "ReadContentResponse(...)": lambda i: pb.ReadContentResponse(offset=0, data=data[:READ]),
            "metrics: read bytes + request count": count_metrics,
        }
        print(f"| part (of one 32 KiB Read) | CPU us per call, {args.calls} calls |\n|---|---|")
        for name, action in parts.items():
            print(f"| {name} | {per_call_us(action, args.calls):.1f} |")
        reader.close()
        store.close()
        catalog.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
