"""Figures of the registry benchmark and their tables: cairn against distribution.

Throughputs (MB/s = 10^6 bytes/s, ops/s) are medians over runs. Server CPU is
the server process's user + system CPU (``/proc/<pid>/stat``, all threads)
during the operation, per GiB moved or per operation, median over runs.
Ratios are cairn/distribution: above 1 cairn is faster.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CAIRN", "MACHINE", "PEER", "Layout", "Metric", "Results", "render", "sections"]

CAIRN = "cairn"
PEER = "distribution"
MACHINE = "machine"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str  # "MB/s" or "ops/s"
    #: minimum cairn/distribution ratio the issue asks for (None: no target)
    target: float | None = None

    @property
    def per_op(self) -> bool:
        return self.unit == "ops/s"


def small_metrics(threads: int) -> tuple[Metric, ...]:
    out: list[Metric] = []
    for n in sorted({1, threads}):
        out += [
            Metric(
                f"small_push_t{n}", f"push (POST + PUT with body), {n} thread{'s' * (n > 1)}", "ops/s", 2.0
            ),
            Metric(f"small_head_t{n}", f"HEAD, {n} thread{'s' * (n > 1)}", "ops/s"),
            Metric(f"small_get_t{n}", f"GET, {n} thread{'s' * (n > 1)}", "ops/s", 2.0),
        ]
    return tuple(out)


Layout = list[tuple[str, tuple[Metric, ...]]]


def sections(big_mib: int, chunk_mib: int, count: int, threads: int, image_mb: float) -> Layout:
    """The tables: a title and its rows, per section."""
    big = f"{big_mib} MiB" if big_mib != 1024 else "1 GiB"
    return [
        (
            f"big blob, {big}",
            (
                Metric("big_push_put", "push: POST + monolithic PUT ?digest= (file body)", "MB/s", 2.0),
                Metric(
                    "big_push_patch",
                    f"push: POST + PATCH {chunk_mib} MiB chunks (Content-Range) + empty PUT",
                    "MB/s",
                    2.0,
                ),
                Metric("big_pull", "pull: GET, iter_content(1 MiB), discarded", "MB/s", 1.0),
                Metric("big_pull_verify", "pull + sha256 verify in the client", "MB/s", 1.0),
            ),
        ),
        (f"small blobs, {count} x 4 KiB per thread count", small_metrics(threads)),
        (
            f"skopeo copy, OCI image of {image_mb:.0f} MB",
            (
                Metric("skopeo_in", "skopeo copy oci: -> docker:// (push)", "MB/s", 1.0),
                Metric("skopeo_out", "skopeo copy docker:// -> oci: (pull)", "MB/s", 1.0),
            ),
        ),
    ]


LIMITS: tuple[Metric, ...] = (
    Metric("hashlib", "hashlib.sha256 over the big blob in memory, 1 MiB updates", "MB/s"),
    Metric("write_fsync", "write + fsync of the big blob, same filesystem as the servers", "MB/s"),
)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{digits}f}"


def _nested() -> defaultdict[str, defaultdict[str, list[float]]]:
    return defaultdict(lambda: defaultdict(list))


@dataclass
class Results:
    """Per-run figures by metric and server."""

    values: defaultdict[str, defaultdict[str, list[float]]] = field(default_factory=_nested)
    #: server CPU seconds per GiB (MB/s metrics) or milliseconds per op (ops/s metrics)
    server_cpu: defaultdict[str, defaultdict[str, list[float]]] = field(default_factory=_nested)
    client_cpu: defaultdict[str, defaultdict[str, list[float]]] = field(default_factory=_nested)
    load: defaultdict[str, defaultdict[str, list[float]]] = field(default_factory=_nested)
    latency_ms: defaultdict[str, defaultdict[str, list[float]]] = field(default_factory=_nested)
    notes: list[str] = field(default_factory=list)
    misbehaviour: list[dict[str, str]] = field(default_factory=list)

    def add(self, metric: str, server: str, value: float) -> None:
        self.values[metric][server].append(value)

    def add_cpu(self, metric: str, server: str, server_cpu: float, client_cpu: float, load: float) -> None:
        self.server_cpu[metric][server].append(server_cpu)
        self.client_cpu[metric][server].append(client_cpu)
        self.load[metric][server].append(load)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def figure(self, metric: str, server: str) -> float | None:
        return _median(self.values[metric][server])

    def ratio(self, metric: str) -> float | None:
        ours, theirs = self.figure(metric, CAIRN), self.figure(metric, PEER)
        return ours / theirs if ours is not None and theirs else None

    def verdict(self, m: Metric) -> str:
        if m.target is None:
            return ""
        want = f">= {m.target:.1f}x"
        ratio = self.ratio(m.key)
        if ratio is None:
            return f"{want} n/a"
        if ratio >= m.target:
            return f"{want} met"
        return f"{want} MISSED" + (" (within noise)" if ratio >= 0.95 * m.target else "")

    def verdicts(self, metrics: Sequence[Metric]) -> dict[str, bool | None]:
        out: dict[str, bool | None] = {}
        for m in metrics:
            if m.target is not None:
                r = self.ratio(m.key)
                out[m.key] = None if r is None else r >= m.target
        return out

    # -- printing -------------------------------------------------------------------------------
    def tables(self, layout: Layout) -> str:
        parts: list[str] = []
        for title, metrics in layout:
            rows: list[tuple[str, ...]] = [
                (title, "unit", PEER, CAIRN, f"{CAIRN}/{PEER}", "target"),
            ]
            for m in metrics:
                if self.figure(m.key, PEER) is None and self.figure(m.key, CAIRN) is None:
                    continue
                ratio = self.ratio(m.key)
                rows.append(
                    (
                        m.label,
                        m.unit,
                        fmt(self.figure(m.key, PEER)),
                        fmt(self.figure(m.key, CAIRN)),
                        "n/a" if ratio is None else f"{ratio:.2f}x",
                        self.verdict(m),
                    )
                )
            if len(rows) > 1:
                parts.append(render(rows))
        limit_rows: list[tuple[str, ...]] = [("machine limits (same run)", "unit", "median", "min-max")]
        for m in LIMITS:
            values = self.values[m.key][MACHINE]
            if values:
                limit_rows.append(
                    (
                        m.label,
                        m.unit,
                        fmt(statistics.median(values)),
                        f"{fmt(min(values))}-{fmt(max(values))}",
                    )
                )
        if len(limit_rows) > 1:
            parts.append(render(limit_rows))
        cpu = self.cpu_table([m for _, metrics in layout for m in metrics])
        if cpu:
            parts.append(cpu)
        return "\n\n".join(parts)

    def cpu_table(self, metrics: Sequence[Metric]) -> str:
        rows: list[tuple[str, ...]] = [
            (
                "server CPU (median)",
                "unit",
                f"{PEER} server",
                f"{CAIRN} server",
                f"{CAIRN}/{PEER}",
                f"client, {PEER}",
                f"client, {CAIRN}",
                f"p50 ms, {PEER}",
                f"p50 ms, {CAIRN}",
                "other load CPU/s (max)",
            )
        ]
        for m in metrics:
            if not any(self.server_cpu[m.key].values()):
                continue
            peer, ours = (_median(self.server_cpu[m.key][s]) for s in (PEER, CAIRN))
            loads = [v for values in self.load[m.key].values() for v in values]
            lat = [_median(self.latency_ms[m.key][s]) for s in (PEER, CAIRN)]
            rows.append(
                (
                    m.key,
                    "ms/op" if m.per_op else "s/GiB",
                    fmt(peer),
                    fmt(ours),
                    f"{ours / peer:.2f}x" if ours is not None and peer else "n/a",
                    *(fmt(_median(self.client_cpu[m.key][s])) for s in (PEER, CAIRN)),
                    *(("" if v is None else f"{v:.2f}") for v in lat),
                    f"{statistics.median(loads):.2f} ({max(loads):.2f})" if loads else "",
                )
            )
        return render(rows) if len(rows) > 1 else ""

    def dump(self, path: Path, metrics: Sequence[Metric], meta: dict[str, Any]) -> None:
        data = {
            "meta": meta,
            "values": self.values,
            "medians": {
                m.key: {s: self.figure(m.key, s) for s in (PEER, CAIRN)} | {"ratio": self.ratio(m.key)}
                for m in metrics
            },
            "server_cpu_per_gib_s_or_per_op_ms": self.server_cpu,
            "client_cpu_per_gib_s_or_per_op_ms": self.client_cpu,
            "other_load": self.load,
            "latency_p50_ms": self.latency_ms,
            "verdicts": self.verdicts(metrics),
            "notes": self.notes,
            "misbehaviour": self.misbehaviour,
        }
        path.write_text(json.dumps(data, indent=1, sort_keys=True))


def render(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
