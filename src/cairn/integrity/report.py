"""What ``cairn fsck`` found: problems and counts, and the JSON form other tools rely on.

The JSON object is a contract (helpers and scripts parse it): ``clean``,
``blobs_checked``, ``bytes_checked`` and ``problems`` (each ``kind``,
``subject``, ``detail``, ``repaired``) are always there; further keys may be
added, never renamed. ``clean`` means nothing is left to fix: no problems, or
every problem repaired.

Not for finding or fixing problems (:mod:`.blobs`, :mod:`.references`,
:mod:`.warg`, :mod:`.repair`) nor for printing them (the CLI does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cairn.core.digest import Digest

__all__ = ["KINDS", "Problem", "Report"]

#: Every problem kind fsck reports, with what it means.
KINDS = {
    "corrupt-blob": "the blob's bytes do not hash to its digest",
    "missing-blob": "an image or Warg release names a blob whose bytes are missing",
    "dangling-name": "a content name (namespace, digest) whose bytes are missing",
    "dangling-tag": "a registry tag whose manifest is missing",
    "dangling-manifest-ref": "a manifest references a blob or manifest whose bytes are missing",
    "warg-checkpoint-mismatch": "a Warg checkpoint disagrees with the log it signs",
}


@dataclass(slots=True)
class Problem:
    """One thing wrong. ``digest`` is the blob whose bytes would fix it (None: bytes cannot)."""

    kind: str
    subject: str
    detail: str
    digest: Digest | None = None
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail, "repaired": self.repaired}


@dataclass(slots=True)
class Report:
    """The result of one fsck run."""

    blobs_checked: int = 0
    bytes_checked: int = 0
    #: blobs an interrupted earlier run had checked already, which this one skipped
    blobs_skipped: int = 0
    resumed: bool = False
    problems: list[Problem] = field(default_factory=list)
    #: where quarantined bytes went, by digest
    quarantined: dict[str, str] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return all(p.repaired for p in self.problems)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def digests_to_fetch(self) -> list[Digest]:
        """The blobs whose bytes would repair an unrepaired problem, each once, in order."""
        seen: dict[Digest, None] = {}
        for problem in self.problems:
            if problem.digest is not None and not problem.repaired:
                seen.setdefault(problem.digest)
        return list(seen)

    def mark_repaired(self, digest: Digest) -> None:
        for problem in self.problems:
            if problem.digest == digest:
                problem.repaired = True

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "blobs_checked": self.blobs_checked,
            "bytes_checked": self.bytes_checked,
            "problems": [p.to_json() for p in self.problems],
            "blobs_skipped": self.blobs_skipped,
            "resumed": self.resumed,
            "quarantined": dict(self.quarantined),
        }
