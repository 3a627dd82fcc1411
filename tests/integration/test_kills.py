"""Randomised ``kill -9`` of ``cairn serve`` while clients write through every face at once.

Each round starts the server on the same data directory, lets an OCI pusher
(monolithic, single-POST and chunked uploads, tagged manifests), a containerd
content ingester, a Directory record pusher and a Warg publisher run
concurrently, SIGKILLs the server after a random delay, restarts it and
judges the store: ``cairn fsck`` is clean, the embedded store's files match
their names, every acknowledged write reads back byte for byte, and nothing
unacknowledged is half-visible (kill_workers.py says how each face is judged).

A handful of kills run in the default tier; ``CAIRN_SLOW=1`` runs 50. The
seed is printed and named in every failure; ``CAIRN_FAULT_SEED`` replays it
(the delays, sizes and operations; thread timing still varies). Figures go to
``CAIRN_RELIABILITY_REPORT`` when it is set.

The embedded backend is the target: replicas on PostgreSQL + S3 are killed in
test_replicas.py.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.conftest import CairnServer
from tests.faults import ReliabilityFigures, fsck, run_seed, stray_temporaries, verify_store
from tests.integration.kill_workers import ContentWorker, DirectoryWorker, OciWorker, WargWorker, Worker

SLOW = bool(os.environ.get("CAIRN_SLOW"))
KILLS = 50 if SLOW else 5
#: How long the clients write before the kill: long enough for every face to get writes
#: acknowledged in most rounds, short enough that the kill often lands mid-write.
DELAY = (0.3, 2.5)


def _judge(server: CairnServer, workers: list[Worker], context: str, full: bool = False) -> None:
    """After a restart: fsck, the store's own files, then each face's ledger."""
    fsck(server.data_dir, context)
    verify_store(server.data_dir)
    for worker in workers:
        try:
            worker.check(full)
        except AssertionError as exc:
            raise AssertionError(f"{context}: {worker.kind}: {exc}\nserver log:\n{server.log()[-4000:]}") from exc


@pytest.mark.embedded_only("fsck and the file checks read the embedded data directory; replicas: test_replicas.py")
@pytest.mark.timeout(120 + 40 * KILLS)  # a round takes 5-15 s on a busy 2-core machine
def test_random_kills_during_concurrent_writes(cairn_server: CairnServer, tmp_path: Path) -> None:
    seed = run_seed("test_random_kills_during_concurrent_writes")
    rng = random.Random(seed)
    figures = ReliabilityFigures("kills", seed)
    warg_state = tmp_path / "warg"
    warg_state.mkdir()
    workers: list[Worker] = [
        OciWorker(cairn_server, random.Random(rng.random()), figures),
        ContentWorker(cairn_server, random.Random(rng.random()), figures),
        DirectoryWorker(cairn_server, random.Random(rng.random()), figures),
        WargWorker(cairn_server, random.Random(rng.random()), figures, warg_state),
    ]
    started = time.monotonic()
    for kill in range(1, KILLS + 1):
        context = f"seed {seed}, kill {kill}/{KILLS}"
        for worker in workers:
            worker.start()
        time.sleep(rng.uniform(*DELAY))
        for worker in workers:
            worker.killing.set()
        cairn_server.kill()
        for worker in workers:
            try:
                worker.join()
            except AssertionError as exc:
                raise AssertionError(f"{context}: {exc}\nserver log:\n{cairn_server.log()[-4000:]}") from exc
        cairn_server.start()
        _judge(cairn_server, workers, context, full=kill == KILLS)
        figures.add("kills_survived")
        print(f"{context}: survived ({time.monotonic() - started:.0f}s)")
    # Known leak (reported, not failed): a kill between writing a small blob's temporary file
    # and renaming it leaves the file; restarts do not remove it yet.
    figures.details["stray_temporaries_left"] = len(stray_temporaries(cairn_server.data_dir))
    figures.details["seconds"] = round(time.monotonic() - started, 1)
    figures.save()
    assert figures.counts["kills_survived"] == KILLS
