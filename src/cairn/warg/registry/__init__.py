"""The Warg registry (server side): publishing, the sequencer, checkpoints, proofs, ledger, content.

``WargRegistry`` composes the parts over cairn's catalog and content store; the
HTTP face (``cairn.api.http.warg``) maps its calls and errors onto the Warg API.
"""

from __future__ import annotations

from cairn.warg.registry.errors import (
    BundleFailureError,
    ContentRejectedError,
    ContentSourcesUnsupportedError,
    IncorrectProofError,
    NamespaceImportedError,
    NotSourcingError,
    PackageNotIncludedError,
    UnauthorizedRecordError,
    WargNotFoundError,
)
from cairn.warg.registry.operator_key import load_operator_key
from cairn.warg.registry.publishing import ContentUpload, Publisher, PublishPolicy, RecordStatus
from cairn.warg.registry.reading import LEDGER_CHUNK, FetchedLogs, RegistryReader
from cairn.warg.registry.sequencer import Sequencer
from cairn.warg.registry.service import WargRegistry

__all__ = [
    "LEDGER_CHUNK",
    "BundleFailureError",
    "ContentRejectedError",
    "ContentSourcesUnsupportedError",
    "ContentUpload",
    "FetchedLogs",
    "IncorrectProofError",
    "NamespaceImportedError",
    "NotSourcingError",
    "PackageNotIncludedError",
    "PublishPolicy",
    "Publisher",
    "RecordStatus",
    "RegistryReader",
    "Sequencer",
    "UnauthorizedRecordError",
    "WargNotFoundError",
    "WargRegistry",
    "load_operator_key",
]
