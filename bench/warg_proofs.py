"""Warg log and map: build cost, proof build + evaluation time and proof sizes at growing lengths.

Run: ``.venv/bin/python bench/warg_proofs.py [--leaves 1000000] [--logs 10000] [--batch 5000]
[--lengths 1000 100000 1000000] [--samples 200]``

The registry's targets are >= 1,000 records/s through the log and map and
<= 2 ms per proof at 10^6 leaves. This builds a :class:`MemoryLog` of
``--leaves`` records spread over ``--logs`` package logs (shuffled, about
leaves/logs records each) and a :class:`MemoryMap` snapshot at each
``--lengths`` point, then times, per length:

- log inclusion: ``prove_inclusion`` of one leaf (a log head) + encode, and decode + evaluate;
- map inclusion: ``prove`` of that log's key under the snapshot root + encode, and decode + evaluate;
- consistency: ``prove_consistency`` from a random older length + encode, and decode + evaluate;

and "log+map sum", the four inclusion figures added: one head's full round trip.

Each snapshot's map is built with one batch holding the newest record of every
log changed since the previous snapshot (the map only has to be right at
checkpoints). Separately, ``--batch`` records are then applied as one
checkpoint batch to the largest map, to show the per-record update rate a
registry sees. Times are medians in microseconds; sizes are encoded bytes
(min-max). Uses only the in-memory readers: no catalog, no I/O.

Not a test: its only asserts check that each proof evaluates to its root. Well under a minute at
full size, most of it building the log.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.warg.hashes import AnyHash
from cairn.warg.merkle_log import (
    LogProofBundle,
    MemoryLog,
    evaluate_consistency,
    evaluate_inclusion,
    leaf_hash,
    prove_consistency,
    prove_inclusion,
)
from cairn.warg.merkle_map import MapProofBundle, MemoryMap, evaluate, key_path, map_leaf_hash


def median_us(action: Callable[[], object], samples: int) -> float:
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def span(values: list[bytes]) -> str:
    sizes = [len(v) for v in values]
    return f"{min(sizes)}-{max(sizes)}"


@dataclass
class World:
    """The registry's data: which log owns each index, the log, the map and its snapshots."""

    log_ids: list[AnyHash]
    record_ids: list[AnyHash]
    owners: list[int]
    paths: list[bytes]
    log: MemoryLog = field(default_factory=MemoryLog)
    tree: MemoryMap = field(default_factory=MemoryMap)
    map_roots: dict[int, bytes] = field(default_factory=dict)
    heads: dict[int, dict[int, int]] = field(default_factory=dict)  # length -> log -> its head index


def build(args: argparse.Namespace, lengths: list[int], rng: random.Random) -> World:
    log_ids = [AnyHash("sha256", hashlib.sha256(b"log %d" % i).digest()) for i in range(args.logs)]
    owners = [i % args.logs for i in range(args.leaves)]
    rng.shuffle(owners)
    record_ids = [AnyHash("sha256", hashlib.sha256(b"record %d" % i).digest()) for i in range(args.leaves)]
    world = World(log_ids, record_ids, owners, [key_path(log_id) for log_id in log_ids])

    start = time.perf_counter()
    for index in range(args.leaves):
        world.log.append(leaf_hash(log_ids[owners[index]], record_ids[index]))
    elapsed = time.perf_counter() - start
    print(
        f"log: {args.leaves} appends (leaf hash included) in {elapsed:.1f} s = {args.leaves / elapsed:,.0f}/s"
    )

    head: dict[int, int] = {}
    done = 0
    for length in lengths:
        changed = {}
        for index in range(done, length):
            head[owners[index]] = changed[owners[index]] = index
        batch = {world.paths[log]: map_leaf_hash(record_ids[index]) for log, index in changed.items()}
        start = time.perf_counter()
        world.map_roots[length] = world.tree.update(batch)
        elapsed = time.perf_counter() - start
        world.heads[length], done = dict(head), length
        print(
            f"map: snapshot at {length}: {len(batch)} keys changed in {elapsed:.2f} s "
            f"= {len(batch) / elapsed:,.0f} keys/s; {len(head)} logs, {len(world.tree.nodes)} nodes stored"
        )

    # A realistic checkpoint: --batch new records on the biggest map (old snapshots stay provable).
    later = {}
    for _ in range(args.batch):
        later[world.paths[rng.randrange(args.logs)]] = hashlib.sha256(
            b"later %d" % rng.randrange(1 << 30)
        ).digest()
    start = time.perf_counter()
    world.tree.update(later)
    elapsed = time.perf_counter() - start
    print(
        f"map: one checkpoint batch of {args.batch} records ({len(later)} distinct logs) in {elapsed:.2f} s "
        f"= {args.batch / elapsed:,.0f} records/s\n"
    )
    return world


def measure(world: World, length: int, samples: int, rng: random.Random) -> str:
    """One table row: proofs of log heads and consistency from random older lengths, at ``length``."""
    log, tree, map_root, log_root = world.log, world.tree, world.map_roots[length], world.log.root(length)
    heads = rng.sample(sorted(world.heads[length].items()), min(samples, len(world.heads[length])))
    olds = [rng.randrange(1, length + 1) for _ in range(samples)]
    log_bundles = [prove_inclusion(length, [index], log).encode() for _, index in heads]
    map_bundles = [MapProofBundle([tree.prove(world.paths[lg], map_root)]).encode() for lg, _ in heads]
    cons_bundles = [prove_consistency(old, length, log).encode() for old in olds]
    picks = itertools.count()

    def log_build() -> bytes:
        return prove_inclusion(length, [heads[next(picks) % len(heads)][1]], log).encode()

    def log_eval() -> None:
        k = next(picks) % len(heads)
        lg, index = heads[k]
        leaf = leaf_hash(world.log_ids[lg], world.record_ids[index])
        assert evaluate_inclusion(LogProofBundle.decode(log_bundles[k]), index, leaf) == log_root

    def map_build() -> bytes:
        return MapProofBundle(
            [tree.prove(world.paths[heads[next(picks) % len(heads)][0]], map_root)]
        ).encode()

    def map_eval() -> None:
        k = next(picks) % len(heads)
        lg, index = heads[k]
        peers = MapProofBundle.decode(map_bundles[k]).proofs[0]
        assert evaluate(world.paths[lg], map_leaf_hash(world.record_ids[index]), peers) == map_root

    def cons_build() -> bytes:
        return prove_consistency(olds[next(picks) % len(olds)], length, log).encode()

    def cons_eval() -> None:
        assert (
            evaluate_consistency(LogProofBundle.decode(cons_bundles[next(picks) % len(olds)]))[1] == log_root
        )

    times = [
        median_us(action, samples)
        for action in (log_build, log_eval, map_build, map_eval, cons_build, cons_eval)
    ]
    return (
        f"{length:>9} | {times[0]:>8.0f} / {times[1]:<8.0f} {span(log_bundles):>9} | "
        f"{times[2]:>8.0f} / {times[3]:<8.0f} {span(map_bundles):>9} | {sum(times[:4]):>11.0f} | "
        f"{times[4]:>9.0f} / {times[5]:<10.0f} {span(cons_bundles):>9}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--logs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=5_000, help="records in the timed checkpoint batch")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--samples", type=int, default=200, help="proofs timed per length and kind")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lengths = sorted(n for n in args.lengths if n <= args.leaves)
    world = build(args, lengths, rng)
    print("median microseconds (build = prove + encode, eval = decode + evaluate); sizes in bytes, min-max")
    print(
        f"{'length':>9} | {'log incl build/eval':>19} {'bytes':>9} | {'map incl build/eval':>19} {'bytes':>9} | "
        f"{'log+map sum':>11} | {'consistency build/eval':>22} {'bytes':>9}"
    )
    for length in lengths:
        print(measure(world, length, args.samples, rng))


if __name__ == "__main__":
    main()
