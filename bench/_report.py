"""Collecting per-run figures and printing them as a cairn-vs-containerd table.

Throughputs (MB/s = 10^6 bytes/s, ops/s) are medians over runs; small-blob
latencies are p50/p99 over every operation of every run, pooled. Ratios are
cairn/containerd: above 1 is better for throughputs, below 1 for latencies.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CAIRN",
    "CONTAINERD",
    "MACHINE",
    "Metric",
    "Results",
    "METRICS",
    "percentile",
]

CAIRN = "cairn"
CONTAINERD = "containerd"
MACHINE = "machine"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool = True
    #: minimum cairn/containerd ratio the issue asks for (None: no target)
    target: float | None = None


METRICS: tuple[Metric, ...] = (
    Metric("ingest", "ctr content ingest, big file", "MB/s", target=1.3),
    Metric(
        "ingest_expected",
        "  same, --expected-size/--expected-digest",
        "MB/s",
        target=1.3,
    ),
    Metric("get", "ctr content get > /dev/null, big file", "MB/s", target=1.0),
    Metric("small_ingest", "ctr content ingest, 4 KiB blobs", "ops/s", target=1.0),
    Metric("small_ingest_p50", "  per-op latency p50", "ms", higher_is_better=False),
    Metric("small_ingest_p99", "  per-op latency p99", "ms", higher_is_better=False),
    Metric("small_get", "ctr content get, 4 KiB blobs", "ops/s", target=1.0),
    Metric("small_get_p50", "  per-op latency p50", "ms", higher_is_better=False),
    Metric("small_get_p99", "  per-op latency p99", "ms", higher_is_better=False),
    Metric("client_ingest", "Python ContentClient.ingest, big file, 4 MiB", "MB/s"),
)

LIMITS: tuple[Metric, ...] = (
    Metric("hashlib", "hashlib.sha256 over the file, 1 MiB updates", "MB/s"),
    Metric("write_fsync", "write + fsync of the file, same filesystem", "MB/s"),
)

#: rows of the CPU table: metric, unit, scale from seconds
CPU_METRICS = (
    ("ingest", "s", 1.0),
    ("ingest_expected", "s", 1.0),
    ("get", "s", 1.0),
    ("client_ingest", "s", 1.0),
    ("small_ingest", "ms", 1000.0),
    ("small_get", "ms", 1000.0),
)

#: the Python client must reach this fraction of the hashlib limit
CLIENT_TARGET = 0.5


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in (0, 100]."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.1f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


@dataclass
class Results:
    """Figures by metric and server: per-run values, pooled latencies, server CPU seconds."""

    values: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    latencies: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    server_cpu: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    client_cpu: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    other_load: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    switches: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, server: str, value: float) -> None:
        self.values[metric][server].append(value)

    def add_latencies(self, metric: str, server: str, seconds: list[float]) -> None:
        self.latencies[metric][server].extend(s * 1000 for s in seconds)

    def add_cpu(
        self,
        metric: str,
        server: str,
        server_s: float,
        client_s: float,
        load: float,
        switches: float,
    ) -> None:
        """Per operation: CPU seconds (server, client), server context switches; other load (CPU/s)."""
        self.server_cpu[metric][server].append(server_s)
        self.client_cpu[metric][server].append(client_s)
        self.other_load[metric][server].append(load)
        self.switches[metric][server].append(switches)

    def figure(self, metric: str, server: str) -> float | None:
        if metric.endswith(("_p50", "_p99")):
            samples = self.latencies[metric[:-4]][server]
            return percentile(samples, float(metric[-2:])) if samples else None
        return _median(self.values[metric][server])

    def ratio(self, metric: str) -> float | None:
        ours, theirs = self.figure(metric, CAIRN), self.figure(metric, CONTAINERD)
        return ours / theirs if ours is not None and theirs else None

    def _near(self, key: str, target: float | None) -> bool:
        """A missed ratio within 5 % of its target: a tie on this machine."""
        ratio = self.ratio(key)
        return ratio is not None and target is not None and ratio >= 0.95 * target

    def client_fraction(self) -> float | None:
        client, limit = (
            self.figure("client_ingest", CAIRN),
            self.figure("hashlib", MACHINE),
        )
        return client / limit if client is not None and limit else None

    def verdicts(self) -> dict[str, bool | None]:
        """Target met (True), missed (False) or not measured (None), by metric key."""
        out: dict[str, bool | None] = {}
        for m in METRICS:
            if m.target is not None:
                r = self.ratio(m.key)
                out[m.key] = None if r is None else r >= m.target
        fraction = self.client_fraction()
        out["client_ingest"] = None if fraction is None else fraction >= CLIENT_TARGET
        return out

    # -- printing ---------------------------------------------------------------
    def table(self, runs: int) -> str:
        verdicts = self.verdicts()
        rows: list[tuple[str, ...]] = [("metric", "unit", CONTAINERD, CAIRN, "cairn/containerd", "target")]
        for m in METRICS:
            if self.figure(m.key, CONTAINERD) is None and self.figure(m.key, CAIRN) is None:
                continue  # workload not run
            target = ""
            if m.key in verdicts:
                want = f">= {m.target:.1f}x" if m.target else f">= {CLIENT_TARGET:.0%} of hashlib"
                verdict = verdicts[m.key]
                target = f"{want} {'n/a' if verdict is None else 'met' if verdict else 'MISSED'}"
                if verdict is False and self._near(m.key, m.target):
                    target += " (within noise)"
            ratio = self.ratio(m.key)
            rows.append(
                (
                    m.label,
                    m.unit,
                    _fmt(self.figure(m.key, CONTAINERD), m.unit),
                    _fmt(self.figure(m.key, CAIRN), m.unit),
                    "n/a" if ratio is None else f"{ratio:.2f}x",
                    target,
                )
            )
        fraction = self.client_fraction()
        if fraction is not None:
            rows.append(("  Python client / hashlib limit", "", "", f"{fraction:.0%}", "", ""))
        for m in LIMITS:
            values = self.values[m.key][MACHINE]
            if values:
                spread = f"{_fmt(min(values))}-{_fmt(max(values))}"
                rows.append(
                    (m.label, m.unit, "", "", "", f"machine: {_fmt(statistics.median(values))} ({spread})")
                )
        title = f"medians over {runs} alternating runs; latencies pooled over all runs"
        return title + "\n" + _render(rows) + "\n\n" + self.cpu_table()

    def cpu_table(self) -> str:
        rows: list[tuple[str, ...]] = [
            (
                "per operation (median)",
                "unit",
                f"{CONTAINERD} server CPU",
                f"{CAIRN} server CPU",
                "ctr/client CPU, containerd",
                "ctr/client CPU, cairn",
                f"{CONTAINERD} ctx switches",
                f"{CAIRN} ctx switches",
                "other load, CPU/s (max)",
            )
        ]
        for key, unit, scale in CPU_METRICS:
            if not any(self.server_cpu[key].values()):
                continue
            loads = [v for values in self.other_load[key].values() for v in values]
            rows.append(
                (
                    key,
                    unit,
                    *(
                        _fmt(_scaled(_median(table[key][server]), scale))
                        for table in (self.server_cpu, self.client_cpu)
                        for server in (CONTAINERD, CAIRN)
                    ),
                    *(_fmt(_median(self.switches[key][server])) for server in (CONTAINERD, CAIRN)),
                    f"{statistics.median(loads):.2f} ({max(loads):.2f})" if loads else "",
                )
            )
        return _render(rows)

    def dump(self, path: Path) -> None:
        data = {
            "values": self.values,
            "latencies_ms": self.latencies,
            "server_cpu_s": self.server_cpu,
            "client_cpu_s": self.client_cpu,
            "other_load": self.other_load,
            "server_context_switches": self.switches,
            "notes": self.notes,
            "verdicts": self.verdicts(),
        }
        path.write_text(json.dumps(data, indent=1, sort_keys=True))


def _render(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
