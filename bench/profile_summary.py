"""Top frames of py-spy ``--format raw`` profiles, as written by ``content_api.py --profile-dir``.

Run: ``.venv/bin/python bench/profile_summary.py DIR/get-run*.txt [--top 15]``

Each input line is ``frame;frame;...;leaf count`` (root first). Without
``--idle`` py-spy keeps only samples of threads that were running, so the
percentages approximate where the server's Python threads spent CPU:
"self" counts samples whose innermost frame is the function, "total" those
with the function anywhere on the stack. Several files are added together.
Frames of ``grpc/_server.py`` are grpcio's Python layer, ``cairn/...`` are
cairn's; time in C (grpc core, hashlib, syscalls) shows as the Python frame
that called it unless py-spy ran with ``--native``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME_LINE = re.compile(r" \(([^()]*):\d+\)$")


def short(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``func (path/file.py)``: one entry per function."""
    return _FRAME_LINE.sub(r" (\1)", frame)


def load(paths: list[Path]) -> tuple[Counter[str], Counter[str], int]:
    """Self and total sample counts per function, and the number of samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [short(f) for f in stack.split(";")]
            samples += count
            own[frames[-1]] += count
            for frame in set(frames):
                total[frame] += count
    return own, total, samples


def table(title: str, counts: Counter[str], samples: int, top: int) -> str:
    lines = [f"{title}:", "|   % | function (file) |", "|----:|----|"]
    for frame, count in counts.most_common(top):
        lines.append(f"| {100 * count / samples:4.1f} | `{frame}` |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    own, total, samples = load(args.files)
    if not samples:
        raise SystemExit("no samples")
    print(f"{samples} samples from {len(args.files)} file(s)\n")
    print(table("by self time", own, samples, args.top) + "\n")
    print(table("by total time (function on the stack)", total, samples, args.top))


if __name__ == "__main__":
    main()
