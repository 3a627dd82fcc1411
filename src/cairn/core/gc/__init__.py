"""Garbage collection: remove what nothing names, from the catalog and then from the content backend.

:class:`GarbageCollector` marks what is live (registry tags and what they reach,
Directory records, Warg content, image store blobs, containerd ``gc.root`` /
``gc.ref.content*`` labels and leases, anything younger than the grace period)
and sweeps the rest in small, re-checked catalog transactions, so it runs safely
beside servers that are serving. :func:`lease_expired` reads containerd's
``containerd.io/gc.expire`` label. The core layer only: callers pass the
registry namespace and Directory repository in (:class:`GcPolicy`).
"""

from cairn.core.gc.collector import GarbageCollector
from cairn.core.gc.leases import EXPIRE_LABEL, lease_expired
from cairn.core.gc.marking import containerd_live, registry_live
from cairn.core.gc.policy import GcPolicy
from cairn.core.gc.result import GcResult

__all__ = [
    "EXPIRE_LABEL",
    "GarbageCollector",
    "GcPolicy",
    "GcResult",
    "containerd_live",
    "lease_expired",
    "registry_live",
]
