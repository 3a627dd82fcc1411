"""Prometheus metrics of the faces, served at ``/metrics``.

One registry per server process (not the global default), so tests and
embedded uses can run several servers without clashing names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._grpc_children: dict[tuple[str, str, str], Any] = {}
        self.grpc_requests = Counter(
            "cairn_grpc_requests",
            "gRPC calls handled, by service, method and status code.",
            ["service", "method", "code"],
            registry=self.registry,
        )
        self.content_read_bytes = Counter(
            "cairn_content_read_bytes", "Blob bytes sent to clients.", registry=self.registry
        )
        self.content_written_bytes = Counter(
            "cairn_content_written_bytes", "Ingest bytes received from clients.", registry=self.registry
        )
        self.content_commits = Counter(
            "cairn_content_commits", "Ingests committed as blobs.", registry=self.registry
        )
        self.active_writers = Gauge(
            "cairn_content_active_writers", "Write streams holding an ingest ref.", registry=self.registry
        )
        self.http_requests = Counter(
            "cairn_http_requests",
            "HTTP requests handled, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )

    def grpc_request(self, service: str, method: str, code: str) -> Any:
        """The counter child for one (service, method, code), looked up once and kept."""
        key = (service, method, code)
        child = self._grpc_children.get(key)
        if child is None:
            child = self._grpc_children[key] = self.grpc_requests.labels(service, method, code)
        return child
