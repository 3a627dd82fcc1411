"""Content digests: the one value type that names bytes everywhere in cairn.

A :class:`Digest` is parsed and validated once, where it enters (a face), and
travels inward as a value, so a malformed digest never reaches a path join or a
SQL key. ``str(digest)`` is the wire form ``algorithm:hex``.

Only sha256 and sha512 are supported (DECISIONS.md, content-api 12); the error
messages follow go-digest's, because that is what containerd clients print.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

from cairn.core.errors import InvalidArgumentError

__all__ = ["ALGORITHMS", "Digest", "Hasher", "new_hasher"]

#: Supported algorithms and the length of their lowercase hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

_FORMAT = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
_HEX = re.compile(r"^[a-f0-9]+\Z")


class Hasher(Protocol):
    """What hashlib objects offer and cairn relies on."""

    @property
    def name(self) -> str: ...

    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...

    def copy(self) -> Any: ...


def new_hasher(algorithm: str = "sha256") -> Hasher:
    """A fresh streaming hasher for ``algorithm`` (``sha256`` or ``sha512``)."""
    if algorithm not in ALGORITHMS:
        raise InvalidArgumentError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A validated ``algorithm:hex`` content digest."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        length = ALGORITHMS.get(self.algorithm)
        if length is None:
            raise InvalidArgumentError(
                f"digest {self.algorithm}:{self.hex}: unsupported digest algorithm"
            )
        if len(self.hex) != length:
            raise InvalidArgumentError(
                f"digest {self.algorithm}:{self.hex}: invalid checksum digest length"
            )
        if not _HEX.match(self.hex):
            raise InvalidArgumentError(
                f"digest {self.algorithm}:{self.hex}: invalid checksum digest format"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse the wire form; raises :class:`InvalidArgumentError` naming the problem."""
        return _parse(text)

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview, algorithm: str = "sha256") -> Digest:
        """The digest of ``data`` (held in memory; use a :class:`Hasher` for streams)."""
        hasher = new_hasher(algorithm)
        hasher.update(data)
        return cls(algorithm, hasher.hexdigest())

    @classmethod
    def from_hasher(cls, hasher: Hasher) -> Digest:
        """The digest of everything fed to ``hasher`` so far (does not consume it)."""
        return cls(hasher.name, hasher.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def short(self) -> str:
        """``sha256:ab12cd34ef56`` for log lines and tables."""
        return f"{self.algorithm}:{self.hex[:12]}"


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Digest:
    # Cached: ``ctr content get`` sends the same digest with every 32 KiB Read.
    if not isinstance(text, str) or not _FORMAT.match(text):
        raise InvalidArgumentError(f"digest {text!r}: invalid checksum digest format")
    algorithm, _, hex_ = text.partition(":")
    return Digest(algorithm, hex_)
