"""What every atheris harness in this directory shares: seeds and the libFuzzer entry point.

``python fuzz/<name>.py [libFuzzer flags] [corpus dirs]`` fuzzes one parser, e.g.
``python fuzz/manifest.py -runs=100000``. ``--seeds DIR`` writes the harness's seed
inputs into DIR and exits; pass DIR as a corpus directory to start from them
(libFuzzer also adds the new inputs it finds there). A crash (any exception the
parser's contract does not allow) ends the run with a non-zero exit status and a
``crash-*`` file holding the input.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import atheris

__all__ = ["main"]


def _instrument(modules: Sequence[str]) -> int:
    """Add coverage instrumentation to every loaded function of ``modules`` (and their submodules).

    ``atheris.instrument_imports`` misses most of cairn (only modules first imported inside
    its block, through its loader), and ``atheris.instrument_all`` takes about 40 s on
    everything loaded; this takes well under a second for cairn alone.
    """
    prefixes = tuple(modules)
    count = 0
    for obj in gc.get_objects():
        if inspect.isfunction(obj) and (obj.__module__ or "").startswith(prefixes):
            atheris.instrument_func(obj)
            count += 1
    return count


def main(
    test_one_input: Callable[[bytes], None], seeds: Sequence[bytes], modules: Sequence[str] = ("cairn",)
) -> None:
    args = sys.argv[:]
    if "--seeds" in args:
        target = Path(args[args.index("--seeds") + 1])
        target.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (target / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)
        return
    _instrument(modules)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()
