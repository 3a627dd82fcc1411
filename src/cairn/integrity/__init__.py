"""Keeping the store whole: ``cairn fsck`` checks, repair, and digest checks of reads as they are served.

Sits between the faces (``cairn.api``, ``cairn.cli``) and the domain packages:
it reads the catalog of every area (content names, registry tags and manifests,
images, Warg checkpoints) and the content backend directly, and uses the Warg
domain's Merkle log code and the OCI client. Nothing here serves a protocol.
"""

from __future__ import annotations

from cairn.integrity.blobs import BlobCheck
from cairn.integrity.fsck import FsckOptions, default_workers, run_fsck
from cairn.integrity.rate import RateLimit, parse_rate
from cairn.integrity.references import ReferenceCheck
from cairn.integrity.repair import Repairer
from cairn.integrity.report import KINDS, Problem, Report
from cairn.integrity.verified_reads import SequentialReads, WholeBlobCheck, corrupt_read
from cairn.integrity.warg import LeafFolder, WargLogCheck

__all__ = [
    "KINDS",
    "BlobCheck",
    "FsckOptions",
    "LeafFolder",
    "Problem",
    "RateLimit",
    "ReferenceCheck",
    "Repairer",
    "Report",
    "SequentialReads",
    "WargLogCheck",
    "WholeBlobCheck",
    "corrupt_read",
    "default_workers",
    "parse_rate",
    "run_fsck",
]
