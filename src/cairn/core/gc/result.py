"""What one garbage collection did (or, for a dry run, would do)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["GcResult"]


@dataclass(slots=True)
class GcResult:
    """Counts of one run; the same object for real and dry runs (``dry_run`` says which).

    ``deleted`` lists the digests whose bytes were (or would be) removed.
    """

    dry_run: bool = False
    names_removed: int = 0
    manifests_removed: int = 0
    tags_removed: int = 0
    repository_links_removed: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    ingests_expired: int = 0
    leases_expired: int = 0
    uploads_aborted: int = 0
    seconds: float = 0.0
    deleted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
