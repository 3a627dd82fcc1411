"""Conversions between cairn's content values and protobuf messages."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as v1
from cairn.core.content import Info, Status

__all__ = ["info_v1", "status_v1", "timestamp"]


def timestamp(ns: int) -> Timestamp:
    """A protobuf Timestamp from integer nanoseconds since the epoch."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return Timestamp(seconds=seconds, nanos=nanos)


def info_v1(info: Info) -> v1.Info:
    return v1.Info(
        digest=str(info.digest),
        size=info.size,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=dict(info.labels),
    )


def status_v1(status: Status) -> v1.Status:
    return v1.Status(
        ref=status.ref,
        offset=status.offset,
        total=status.total,
        started_at=timestamp(status.started_at),
        updated_at=timestamp(status.updated_at),
        expected=str(status.expected) if status.expected else "",
    )
