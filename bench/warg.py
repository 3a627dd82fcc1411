#!/usr/bin/env python3
"""Warg registry: sustained publish throughput, publish-to-published latency, proof time and size.

There is no peer in this run: the reference Warg server (Rust, bytecodealliance/registry)
is not packaged for Debian and building it needs a Rust toolchain and the network
(noted in docs/benchmarks.md). The issue's targets are absolute instead:

- publish >= 1,000 records/s (validated, logged and checkpointed) on the embedded default,
  with 1, 100 and 10,000 packages;
- publish-to-published latency p50 <= 50 ms (and p99 reported);
- inclusion and consistency proofs <= 2 ms at 10^6 leaves (the proof part is
  ``bench/warg_proofs.py``, which this script runs at the end unless ``--skip-proofs``).

Records are built and signed before the clock starts (a publisher's client work is
not the registry's); each package's records are sent in order, one in flight per
package, many packages at once over keep-alive connections (aiohttp client).
Throughput counts from the first request to the checkpoint that covers the last
record. Loopback only; every loop is bounded by count and by ``--timeout``.

    .venv/bin/python bench/warg.py                          # the recorded run
    .venv/bin/python bench/warg.py --records 2000 --skip-proofs   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from _servers import Cairn

from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import package_log_id, package_record_id
from cairn.warg.records import Envelope, PackageInit, PackageRecord, PackageRelease, RecordTime
from cairn.warg.semver import Version

NAMESPACE = "bench"


@dataclass
class Chain:
    """One package's records, in the order they must be published."""

    name: str
    envelopes: list[Envelope]


def build_chains(
    packages: int, releases: int, key: PrivateKey, content: str, prefix: str = "pkg"
) -> tuple[list[Chain], list[Chain]]:
    """(init chains, release chains): ``releases`` records spread round-robin over ``packages``."""
    start = RecordTime.now()
    inits: list[Chain] = []
    chains: list[Chain] = []
    for p in range(packages):
        name = f"{NAMESPACE}:{prefix}-{_word(p)}"
        record = PackageRecord(None, 0, start, (PackageInit(key=key.public_key, hash_algorithm="sha256"),))
        init = Envelope.sign_package(record, key)
        inits.append(Chain(name, [init]))
        chains.append(Chain(name, []))
    heads = [package_record_id(chain.envelopes[0].content_bytes) for chain in inits]
    digest = AnyHash.parse(content)
    for n in range(releases):
        p = n % packages
        when = RecordTime(start.seconds + 1, n + 1)  # after every init (which carry start)
        record = PackageRecord(heads[p], 0, when, (PackageRelease(Version.parse(f"1.0.{n}"), digest),))
        envelope = Envelope.sign_package(record, key)
        heads[p] = package_record_id(envelope.content_bytes)
        chains[p].envelopes.append(envelope)
    return inits, [c for c in chains if c.envelopes]


def _word(n: int) -> str:
    """A kebab word for ``n`` (package names' words start with a letter)."""
    letters = ""
    while True:
        letters = chr(97 + n % 26) + letters
        n //= 26
        if n == 0:
            return letters


class Client:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def publish(self, name: str, envelope: Envelope) -> dict[str, object]:
        body = {"packageName": name, "record": envelope.to_json()}
        async with self.session.post(f"{self.base}/v1/package/{package_log_id(name)}/record", json=body) as r:
            answer: dict[str, object] = await r.json()
            if r.status != 202:
                raise RuntimeError(f"publish answered {r.status}: {answer}")
            return answer

    async def state(self, name: str, record_id: str) -> dict[str, object]:
        async with self.session.get(f"{self.base}/v1/package/{package_log_id(name)}/record/{record_id}") as r:
            answer: dict[str, object] = await r.json()
            return answer

    async def length(self) -> int:
        async with self.session.get(f"{self.base}/v1/fetch/checkpoint") as r:
            return int((await r.json())["contents"]["logLength"])

    async def upload(self, url: str, data: bytes) -> None:
        async with self.session.post(f"{self.base}/{url}", data=data) as r:
            if r.status != 201:
                raise RuntimeError(f"upload answered {r.status}: {await r.text()}")


async def publish_chains(client: Client, chains: list[Chain], concurrency: int, deadline: float) -> int:
    """Publish every chain, each chain's records one at a time (the reference client's way),
    up to ``concurrency`` chains at once."""
    window = 1
    queue: asyncio.Queue[Chain] = asyncio.Queue()
    for chain in chains:
        queue.put_nowait(chain)
    sent = 0

    async def one(chain: Chain, envelope: Envelope, slots: asyncio.Semaphore) -> None:
        nonlocal sent
        try:
            await client.publish(chain.name, envelope)
            sent += 1
        finally:
            slots.release()

    async def worker() -> None:
        while not queue.empty() and time.monotonic() < deadline:
            chain = queue.get_nowait()
            slots = asyncio.Semaphore(window)
            tasks = []
            for envelope in chain.envelopes:
                await slots.acquire()
                tasks.append(asyncio.create_task(one(chain, envelope, slots)))
            await asyncio.gather(*tasks)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(chains)))))
    return sent


async def wait_for_length(client: Client, length: int, deadline: float) -> None:
    while await client.length() < length:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the log did not reach length {length} in time")
        await asyncio.sleep(0.002)


async def throughput(base: str, packages: int, releases: int, key: PrivateKey, concurrency: int,
                     timeout: float) -> dict[str, float]:
    content = b"bench content"
    digest = f"sha256:{hashlib.sha256(content).hexdigest()}"
    inits, chains = build_chains(packages, releases, key, digest)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(base, session)
        deadline = time.monotonic() + timeout
        # the content once, through the first init's chain: upload it for the first release
        start_length = await client.length()
        began = time.perf_counter()
        sent = await publish_chains(client, inits, concurrency, deadline)
        await wait_for_length(client, start_length + sent, deadline)
        init_seconds = time.perf_counter() - began
        first = chains[0]
        answer = await client.publish(first.name, first.envelopes[0])
        for missing in dict(answer.get("missingContent") or {}).values():  # type: ignore[call-overload]
            await client.upload(missing["upload"][0]["url"], content)
        first.envelopes = first.envelopes[1:]
        await wait_for_length(client, start_length + sent + 1, deadline)
        before = await client.length()
        began = time.perf_counter()
        released = await publish_chains(client, chains, concurrency, deadline)
        await wait_for_length(client, before + released, deadline)
        seconds = time.perf_counter() - began
    return {
        "packages": packages,
        "init_per_s": len(inits) / init_seconds,
        "records": released,
        "seconds": seconds,
        "per_s": released / seconds,
    }


async def latency(base: str, count: int, rate: float, key: PrivateKey, timeout: float) -> list[float]:
    """Publish ``count`` records at ``rate``/s (one package each) and time each until published."""
    inits, _ = build_chains(count, 0, key, "sha256:" + "0" * 64, prefix="latency")
    results: list[float] = []
    async with aiohttp.ClientSession() as session:
        client = Client(base, session)
        deadline = time.monotonic() + timeout

        async def one(chain: Chain) -> None:
            envelope = chain.envelopes[0]
            record_id = str(package_record_id(envelope.content_bytes))
            began = time.perf_counter()
            await client.publish(chain.name, envelope)
            while time.monotonic() < deadline:
                state = (await client.state(chain.name, record_id))["state"]
                if state == "published":
                    results.append(time.perf_counter() - began)
                    return
                if state == "rejected":
                    raise RuntimeError(f"{chain.name} rejected")
                await asyncio.sleep(0.001)

        tasks = []
        for chain in inits:
            tasks.append(asyncio.create_task(one(chain)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return results


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="releases per throughput run")
    parser.add_argument("--packages", default="1,100,10000", help="package counts, comma-separated")
    parser.add_argument("--concurrency", type=int, default=64, help="packages published at once")
    parser.add_argument("--latency-count", type=int, default=500)
    parser.add_argument("--latency-rate", type=float, default=100.0, help="publishes per second")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of each phase, seconds")
    parser.add_argument("--skip-proofs", action="store_true")
    args = parser.parse_args()

    key = PrivateKey.generate()
    print(f"# warg bench {datetime.date.today()} records={args.records} concurrency={args.concurrency}")
    rows = []
    for packages in [int(p) for p in args.packages.split(",")]:
        with tempfile.TemporaryDirectory(prefix="cairn-warg-bench-") as tmp:
            server = Cairn(Path(tmp), extra_args=f"--warg-namespaces {NAMESPACE}")
            server.start()
            try:
                base = f"http://127.0.0.1:{server.http_port}"
                row = asyncio.run(throughput(base, packages, args.records, key, args.concurrency, args.timeout))
                if packages == 100:
                    lat = asyncio.run(latency(base, args.latency_count, args.latency_rate, key, args.timeout))
                    row["p50_ms"] = statistics.median(lat) * 1000
                    row["p99_ms"] = percentile(lat, 0.99) * 1000
            finally:
                server.stop()
        rows.append(row)
        print(
            f"packages={packages:>6}  inits {row['init_per_s']:8.0f}/s  releases {row['records']:>6} in "
            f"{row['seconds']:6.2f}s = {row['per_s']:8.0f} records/s (target >= 1000)"
            + (f"  latency p50 {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms (target p50 <= 50 ms)"
               if "p50_ms" in row else ""),
            flush=True,
        )
    if not args.skip_proofs:
        return subprocess.call([sys.executable, str(Path(__file__).with_name("warg_proofs.py"))])
    return 0


if __name__ == "__main__":
    sys.exit(main())
