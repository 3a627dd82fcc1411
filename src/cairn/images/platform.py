"""Platforms (``os/arch/variant``) as pull asks for them and index entries offer them.

A pull names the platform it wants (``linux/arm64``, ``arm``, empty for the
host's), and a multi-platform index lists one manifest per platform. Both sides
are spelled loosely in the wild (``x86_64``, ``aarch64``, ``armhf``, ``arm64``
with or without ``v8``), so both are normalised the way containerd's
``platforms`` package does before they are compared; the normalised form is
also what error messages print, as Docker does
(``no matching manifest for linux/arm64/v8 in the manifest list entries``).

This module is not for reading manifests or talking to registries: it
compares values only.
"""

from __future__ import annotations

import platform as _host
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cairn.core.errors import InvalidArgumentError
from cairn.oci.model import Platform as OciPlatform

__all__ = ["Platform", "host", "normalize_arch", "parse"]

_KNOWN_OS = frozenset(
    {
        "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
        "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
    }
)  # fmt: skip
_KNOWN_ARCH = frozenset(
    {
        "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips",
        "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le",
        "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
    }
)  # fmt: skip
_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+")


def normalize_arch(architecture: str, variant: str | None) -> tuple[str, str | None]:
    """containerd's ``normalizeArch``, with arm64's implied ``v8`` written out.

    ``x86_64``/``x86-64`` -> ``amd64`` (variant ``v1`` dropped); ``aarch64`` ->
    ``arm64`` with default variant ``v8``; ``armhf`` -> ``arm/v7``; ``armel`` ->
    ``arm/v6``; bare ``arm`` -> ``arm/v7``; ``i386`` -> ``386``. Numeric
    variants gain their ``v`` (``arm/7`` -> ``arm/v7``).
    """
    arch = architecture.lower()
    var = (variant or "").lower() or None
    if arch == "i386":
        return "386", None
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", None if var in (None, "v1") else var
    if arch in ("aarch64", "arm64"):
        if var in (None, "8", "v8", "v8.0"):
            return "arm64", "v8"
        if var in ("9", "9.0", "v9.0"):
            return "arm64", "v9"
        return "arm64", var
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if var in (None, "7"):
            return "arm", "v7"
        if var in ("5", "6", "8"):
            return "arm", f"v{var}"
        return "arm", var
    return arch, var


def _normalize_os(os_name: str) -> str:
    name = os_name.lower()
    return "darwin" if name == "macos" else name


@dataclass(frozen=True)
class Platform:
    """A normalised platform: ``os``, ``architecture`` and ``variant`` (None when the arch has none).

    Construct with :meth:`parse`, :meth:`host` or :meth:`of`; the plain
    constructor keeps what it is given (the fields are compared as they are).
    """

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os[/arch[/variant]]`` or a lone arch (containerd ``platforms.Parse``), normalised.

        A lone known OS takes the host's architecture; a lone known
        architecture takes the host's OS. Raises InvalidArgumentError for an
        empty or malformed string, or a lone word that is neither.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgumentError("platform: empty platform string")
        parts = text.strip().split("/")
        if len(parts) > 3 or not all(_COMPONENT.fullmatch(p) for p in parts):
            raise InvalidArgumentError(
                f"invalid platform {text!r}: expected os[/arch[/variant]], e.g. linux/arm64"
            )
        if len(parts) == 1:
            word = parts[0].lower()
            here = cls.host()
            if word in _KNOWN_OS or word == "macos":
                return cls.of(word, here.architecture, here.variant)
            arch, _ = normalize_arch(word, None)
            if arch in _KNOWN_ARCH:
                return cls.of(here.os, word, None)
            raise InvalidArgumentError(
                f"invalid platform {text!r}: unknown operating system or architecture"
            )
        return cls.of(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def of(cls, os_name: str, architecture: str, variant: str | None = None) -> Platform:
        """The normalised platform of the three parts (no validation beyond normalising)."""
        arch, var = normalize_arch(architecture, variant)
        return cls(_normalize_os(os_name), arch, var)

    @classmethod
    def from_oci(cls, value: OciPlatform) -> Platform:
        """The normalised form of an index entry's (or config's) platform."""
        return cls.of(value.os, value.architecture, value.variant)

    @classmethod
    def host(cls) -> Platform:
        """The platform this process runs on (``linux/amd64`` on an x86-64 Linux host)."""
        os_name = "linux" if sys.platform.startswith("linux") else sys.platform
        machine = _host.machine() or "amd64"
        if machine.lower().startswith("armv"):  # armv7l, armv6l: the number is the variant
            digits = "".join(c for c in machine[4:] if c.isdigit())
            return cls.of(os_name, "arm", f"v{digits}" if digits else None)
        return cls.of(os_name, machine)

    def __str__(self) -> str:
        """``os/arch[/variant]``, as Docker prints a platform."""
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def matches(self, other: OciPlatform | Platform) -> bool:
        """Whether ``other`` (normalised first) is exactly this platform: os, arch and variant."""
        theirs = other if isinstance(other, Platform) else Platform.from_oci(other)
        return (theirs.os, theirs.architecture, theirs.variant) == (
            self.os,
            self.architecture,
            self.variant,
        )

    def compatible(self) -> list[Platform]:
        """This platform, then the ones it can also run, best first (containerd ``platforms.Only``).

        ``arm64/v8`` also runs ``arm`` v8 down to v5; ``arm/vN`` runs lower arm
        variants; ``amd64/vN`` runs lower amd64 levels.
        """
        out = [self]
        if self.architecture == "arm64" and self.variant == "v8":
            out.extend(Platform(self.os, "arm", f"v{n}") for n in (8, 7, 6, 5))
        elif self.architecture == "arm" and self.variant and self.variant[1:].isdigit():
            level = int(self.variant[1:])
            out.extend(Platform(self.os, "arm", f"v{n}") for n in range(level - 1, 4, -1))
        elif self.architecture == "amd64" and self.variant and self.variant[1:].isdigit():
            level = int(self.variant[1:])
            out.extend(Platform(self.os, "amd64", f"v{n}") for n in range(level - 1, 1, -1))
            out.append(Platform(self.os, "amd64", None))
        return out

    def best(self, candidates: Sequence[OciPlatform | None]) -> int | None:
        """The index of the candidate this platform should pull, or None when none can run here.

        An exact match wins; otherwise the best compatible one (see
        :meth:`compatible`); among equals the first listed. Entries without a
        platform never match.
        """
        ranks = {(p.os, p.architecture, p.variant): i for i, p in enumerate(self.compatible())}
        best: tuple[int, int] | None = None
        for position, candidate in enumerate(candidates):
            if candidate is None:
                continue
            theirs = Platform.from_oci(candidate)
            rank = ranks.get((theirs.os, theirs.architecture, theirs.variant))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, position)
        return None if best is None else best[1]


def parse(text: str) -> Platform:
    """Same as :meth:`Platform.parse`."""
    return Platform.parse(text)


def host() -> Platform:
    """Same as :meth:`Platform.host`."""
    return Platform.host()
