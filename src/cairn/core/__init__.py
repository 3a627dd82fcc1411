"""The core: one store of bytes by digest and one catalog of names; no protocol, no network."""

from cairn.core.digest import Digest
from cairn.core.errors import CairnError

__all__ = ["CairnError", "Digest"]
