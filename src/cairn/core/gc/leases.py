"""Lease expiry as containerd defines it: the ``containerd.io/gc.expire`` label, an RFC 3339 time."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime

__all__ = ["EXPIRE_LABEL", "lease_expired"]

log = logging.getLogger(__name__)

EXPIRE_LABEL = "containerd.io/gc.expire"
# Go writes up to nine fraction digits; Python's parser takes at most six.
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def expiry_of(labels: Mapping[str, str]) -> int | None:
    """The expiry time in ns since the epoch, or None (no label, or one that does not parse)."""
    text = labels.get(EXPIRE_LABEL)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        log.warning("ignoring lease label %s=%r: not an RFC 3339 time", EXPIRE_LABEL, text)
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1_000_000) * 1000


def lease_expired(labels: Mapping[str, str], now: int) -> bool:
    """Whether a lease with ``labels`` has expired at ``now`` (ns); leases without the label never do."""
    expiry = expiry_of(labels)
    return expiry is not None and expiry <= now
